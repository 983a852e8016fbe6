/* udp.h - UDP translation state, see udp.c */
#ifndef UDP_H
#define UDP_H

#include <stdint.h>

struct dp;
struct flow;
struct l4_pkt;

/**
 * struct udp_flow - per-flow UDP state
 * @last_ms:	time of the last datagram in either direction
 * @idle_ms:	the flow is closed this long after @last_ms
 */
struct udp_flow {
	uint64_t last_ms;
	uint32_t idle_ms;
};

void udp_input(struct dp *dp, const struct l4_pkt *p);
void udp_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void udp_timer(struct dp *dp, struct flow *f);

#endif /* UDP_H */
