/* ip6.h - IPv6 packets from the guest, checked and dispatched, see ip6.c */
#ifndef IP6_H
#define IP6_H

#include <stdbool.h>
#include <stdint.h>

#include "inany.h"

struct dp;
struct l4_pkt;

/* Our IPv6 link-local address, fe80::2: the source of router advertisements
 * (RFC 4861 wants a link-local one), answered like the gateway */
#define DP_LL6_ADDR { .a = { 0xfe, 0x80, [15] = 2 } }

void ip6_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len);
void ip6_payload_input(struct dp *dp, const struct l4_pkt *p,
		       uint8_t hop_limit, bool first);
bool ip6_is_local(struct dp *dp, const union inany_addr *addr);

#endif /* IP6_H */
