/* ip4.h - IPv4 packets from the guest, checked and dispatched, see ip4.c */
#ifndef IP4_H
#define IP4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inany.h"

struct dp;

/**
 * struct ip4_pkt - a validated IPv4 packet, handed from ip4.c to L4 handlers
 * @eth_src:	source MAC of the frame that carried it
 * @saddr:	source address, network byte order
 * @daddr:	destination address, network byte order
 * @tos:	type of service byte
 * @proto:	protocol number
 * @l4:		start of the payload, after any IP options
 * @l4_len:	payload length, from the IP total length (padding removed)
 */
struct ip4_pkt {
	const uint8_t *eth_src;
	uint32_t saddr;
	uint32_t daddr;
	uint8_t tos;
	uint8_t proto;
	const uint8_t *l4;
	size_t l4_len;
};

void ip4_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len);
void ip4_l4_input(struct dp *dp, const struct ip4_pkt *ip);
bool ip4_is_local(struct dp *dp, uint32_t addr);
bool ip_is_local(struct dp *dp, const union inany_addr *addr);

#endif /* IP4_H */
