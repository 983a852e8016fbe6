/* ip.h - IP output to the guest for both families, see ip.c */
#ifndef IP_H
#define IP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inany.h"

struct dp;

/* Fixed part of the IPv4 header and offsets of its fields */
#define IP4_HLEN		20
#define IP4_OFF_VER_IHL		0
#define IP4_OFF_TOS		1
#define IP4_OFF_TOT_LEN		2
#define IP4_OFF_ID		4
#define IP4_OFF_FRAG		6
#define IP4_OFF_TTL		8
#define IP4_OFF_PROTO		9
#define IP4_OFF_CSUM		10
#define IP4_OFF_SADDR		12
#define IP4_OFF_DADDR		16
/* Fragment field: More Fragments flag and offset, Don't Fragment aside */
#define IP4_MF			0x2000
#define IP4_OFFMASK		0x1fff

/* IPv6 header and offsets of its fields; the fragment header's length */
#define IP6_HLEN		40
#define IP6_OFF_VER		0
#define IP6_OFF_PLEN		4
#define IP6_OFF_NEXT		6
#define IP6_OFF_HOPS		7
#define IP6_OFF_SADDR		8
#define IP6_OFF_DADDR		24
#define IP6_FRAG_HLEN		8

/* UDP header: source port, destination port, length, checksum */
#define UDP_HLEN		8
#define UDP_OFF_SPORT		0
#define UDP_OFF_DPORT		2
#define UDP_OFF_LEN		4
#define UDP_OFF_CSUM		6

/* ICMP header: type, code, checksum; for destination unreachable, the four
 * bytes after the checksum */
#define ICMP_HLEN		8
#define ICMP_OFF_TYPE		0
#define ICMP_OFF_CODE		1
#define ICMP_OFF_CSUM		2
#define ICMP_OFF_INFO		4
/* Destination unreachable: types and the codes we send or relay */
#define ICMP_DEST_UNREACH	3
#define ICMP_UNREACH_HOST	1
#define ICMP_UNREACH_PORT	3
#define ICMP_UNREACH_NEEDFRAG	4
#define ICMP6_DEST_UNREACH	1
#define ICMP6_UNREACH_ADDR	3
#define ICMP6_UNREACH_PORT	4
/* Transport bytes an ICMP error quotes after the IP header (RFC 792) */
#define ICMP_QUOTE_L4		8

/**
 * struct l4_pkt - a validated TCP or UDP packet from the guest, any family,
 * handed up by ip4.c and ip6.c
 * @eth_src:	source MAC of the frame that carried it
 * @src:	source address (the guest), IPv4-mapped for IPv4
 * @dst:	destination address as the guest wrote it
 * @tos:	type of service / traffic class
 * @proto:	IPPROTO_TCP or IPPROTO_UDP
 * @l4:		transport header and payload
 * @l4_len:	bytes at @l4, from the IP length field (padding removed)
 */
struct l4_pkt {
	const uint8_t *eth_src;
	union inany_addr src;
	union inany_addr dst;
	uint8_t tos;
	uint8_t proto;
	const uint8_t *l4;
	size_t l4_len;
};

/**
 * struct ip_ctx - state of IP output, owned by ip.c
 * @ip4_id:		identification field of the next IPv4 packet we build
 * @ip6_frag_id:	identification of the next IPv6 datagram we fragment
 * @tx_l3:		IP header of the packet ip_tx_start() began, or NULL
 */
struct ip_ctx {
	uint16_t ip4_id;
	uint32_t ip6_frag_id;
	uint8_t *tx_l3;
};

void ip4_hdr_fill(struct dp *dp, uint8_t *hdr, uint32_t saddr, uint32_t daddr,
		  uint8_t proto, uint8_t tos, size_t l4_len);
void ip6_hdr_fill(uint8_t *hdr, const union inany_addr *src,
		  const union inany_addr *dst, uint8_t next, uint8_t hops,
		  size_t payload_len);
size_t ip_hdr_len(const union inany_addr *addr);
void ip_gateway(const struct dp *dp, const union inany_addr *like,
		union inany_addr *gw);
uint32_t ip_pseudo_csum(const union inany_addr *src,
			const union inany_addr *dst, uint8_t proto,
			size_t l4_len);
uint8_t *ip_tx_start(struct dp *dp, const union inany_addr *src,
		     const union inany_addr *dst, size_t *room);
void ip_tx_commit(struct dp *dp, uint8_t proto, size_t l4_len);
bool ip4_is_unicast(const struct dp *dp, uint32_t addr);
void ip_tx_unreach(struct dp *dp, const union inany_addr *from,
		   const union inany_addr *guest,
		   const union inany_addr *remote, uint8_t proto,
		   const uint8_t *l4_head, size_t l4_len, uint8_t code,
		   uint32_t info);
void ip_tx_l4(struct dp *dp, const union inany_addr *src,
	      const union inany_addr *dst, uint8_t proto, const uint8_t *l4,
	      size_t l4_len);

#endif /* IP_H */
