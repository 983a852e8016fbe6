/* tcp.h - TCP translation state, see tcp.c */
#ifndef TCP_H
#define TCP_H

#include <stdint.h>

struct dp;
struct flow;
struct l4_pkt;

/**
 * struct tcp_flow - per-connection TCP state (to be completed by tcp.c)
 * @state:	connection state
 */
struct tcp_flow {
	uint8_t state;
};

void tcp_input(struct dp *dp, const struct l4_pkt *p);
void tcp_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void tcp_timer(struct dp *dp, struct flow *f);

#endif /* TCP_H */
