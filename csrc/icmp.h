/* icmp.h - ICMP echo state, see icmp.c */
#ifndef ICMP_H
#define ICMP_H

#include <stdint.h>

struct dp;
struct flow;
struct ip4_pkt;

/**
 * struct ping_flow - per-identifier ping state (to be completed by icmp.c)
 * @idle:	placeholder
 */
struct ping_flow {
	uint8_t idle;
};

void icmp4_input(struct dp *dp, const struct ip4_pkt *ip);
void ping4_input(struct dp *dp, const struct ip4_pkt *ip);
void ping_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void ping_timer(struct dp *dp, struct flow *f);

#endif /* ICMP_H */
