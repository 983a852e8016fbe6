/* icmp.h - ICMP echo state, see icmp.c */
#ifndef ICMP_H
#define ICMP_H

#include <stdint.h>

struct dp;
struct flow;
struct ip4_pkt;
struct l4_pkt;

/**
 * struct ping_flow - ping state of one guest identifier and destination
 * @last_ms:	time of the last echo request or reply
 */
struct ping_flow {
	uint64_t last_ms;
};

void icmp4_input(struct dp *dp, const struct ip4_pkt *ip);
void ping4_input(struct dp *dp, const struct ip4_pkt *ip);
void icmp6_input(struct dp *dp, const struct l4_pkt *p, uint8_t hop_limit);
void ping_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void ping_timer(struct dp *dp, struct flow *f);

#endif /* ICMP_H */
