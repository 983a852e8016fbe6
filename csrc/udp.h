/* udp.h - UDP translation state, see udp.c */
#ifndef UDP_H
#define UDP_H

#include <stdint.h>

struct dp;
struct flow;
struct l4_pkt;

/**
 * struct udp_flow - per-flow UDP state (to be completed by udp.c)
 * @idle:	placeholder
 */
struct udp_flow {
	uint8_t idle;
};

void udp_input(struct dp *dp, const struct l4_pkt *p);
void udp_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void udp_timer(struct dp *dp, struct flow *f);

#endif /* UDP_H */
