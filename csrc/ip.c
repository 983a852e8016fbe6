/* ip.c - IP output to the guest, both families
 *
 * Theory of operation
 * -------------------
 * Everything the data plane sends to the guest above the link layer leaves
 * through this file, whatever the family: the transport files hand it
 * 128-bit addresses (inany.h) and it picks the header by address family.
 * This is the transmit side of the stack only; it calls down (eth.c), never
 * up, and ip4.c and ip6.c keep the receive side.
 *
 * Packets we originate get a fresh 20-byte header from ip4_hdr_fill(): no
 * options, TTL DP_IP4_TTL, an identification that counts up.  TCP builds its
 * segments in place through ip_tx_start() and ip_tx_commit(), which take
 * 128-bit addresses and serve IPv6 as well (a 40-byte header from
 * ip6_hdr_fill(), chosen by the address family).  UDP and ICMP, whose
 * datagrams may exceed the link MTU (up to 65507 bytes of UDP payload), hand
 * a whole transport packet to ip_tx_l4(), which sends it as one packet if it
 * fits the MTU, or else as fragments of at most the MTU each (fragment
 * payloads a multiple of 8 bytes, one identification for all of them): IPv4
 * fragments, or for IPv6 packets carrying a fragment header, as the source
 * of an IPv6 packet must do itself (RFC 8200, 4.5).
 *
 * ICMP destination unreachable errors are IP's own messages (RFC 1122,
 * 3.2.2): tcp.c and udp.c report a refused or unreachable remote with
 * ip_tx_unreach(), which quotes the offending packet's header and first
 * ICMP_QUOTE_L4 transport bytes, never answers a packet sent to a group
 * address, and maps the code to ICMPv6's for IPv6.
 */

#include <netinet/in.h>
#include <string.h>

#include "checksum.h"
#include "dp.h"
#include "dp_limits.h"
#include "eth.h"
#include "inany.h"
#include "ip.h"
#include "util.h"

/**
 * ip4_hdr_build() - write a 20-byte IPv4 header
 * @hdr:	where the header goes, IP4_HLEN bytes
 * @saddr:	source address, network byte order
 * @daddr:	destination address, network byte order
 * @proto:	protocol number
 * @tos:	type of service byte
 * @l4_len:	payload length; the caller keeps IP4_HLEN + @l4_len <= 65535
 * @id:		identification
 * @frag:	fragment field: IP4_MF and the offset in units of 8 bytes
 */
static void ip4_hdr_build(uint8_t *hdr, uint32_t saddr, uint32_t daddr,
			  uint8_t proto, uint8_t tos, size_t l4_len,
			  uint16_t id, uint16_t frag)
{
	uint16_t sum;

	hdr[IP4_OFF_VER_IHL] = 4 << 4 | IP4_HLEN / 4;
	hdr[IP4_OFF_TOS] = tos;
	wr16(hdr + IP4_OFF_TOT_LEN, (uint16_t)(IP4_HLEN + l4_len));
	wr16(hdr + IP4_OFF_ID, id);
	wr16(hdr + IP4_OFF_FRAG, frag);
	hdr[IP4_OFF_TTL] = DP_IP4_TTL;
	hdr[IP4_OFF_PROTO] = proto;
	wr16(hdr + IP4_OFF_CSUM, 0);
	wr32n(hdr + IP4_OFF_SADDR, saddr);
	wr32n(hdr + IP4_OFF_DADDR, daddr);

	sum = csum(hdr, IP4_HLEN, 0);
	memcpy(hdr + IP4_OFF_CSUM, &sum, sizeof(sum));
}

/**
 * ip6_hdr_fill() - write a 40-byte IPv6 header
 * @hdr:	where the header goes, IP6_HLEN bytes
 * @src:	source address
 * @dst:	destination address
 * @next:	next header (protocol)
 * @hops:	hop limit
 * @payload_len:	bytes after the header, at most 65535
 */
void ip6_hdr_fill(uint8_t *hdr, const union inany_addr *src,
		  const union inany_addr *dst, uint8_t next, uint8_t hops,
		  size_t payload_len)
{
	hdr[IP6_OFF_VER] = 6 << 4;
	hdr[1] = hdr[2] = hdr[3] = 0;
	wr16(hdr + IP6_OFF_PLEN, (uint16_t)payload_len);
	hdr[IP6_OFF_NEXT] = next;
	hdr[IP6_OFF_HOPS] = hops;
	memcpy(hdr + IP6_OFF_SADDR, src->a, sizeof(src->a));
	memcpy(hdr + IP6_OFF_DADDR, dst->a, sizeof(dst->a));
}

/**
 * ip4_hdr_fill() - write a 20-byte IPv4 header for a packet we originate
 * @dp:		data plane, for the identification counter
 * @hdr:	where the header goes, IP4_HLEN bytes, payload follows
 * @saddr:	source address, network byte order
 * @daddr:	destination address, network byte order
 * @proto:	protocol number
 * @tos:	type of service byte
 * @l4_len:	payload length; the caller keeps IP4_HLEN + @l4_len <= 65535
 */
void ip4_hdr_fill(struct dp *dp, uint8_t *hdr, uint32_t saddr, uint32_t daddr,
		  uint8_t proto, uint8_t tos, size_t l4_len)
{
	ip4_hdr_build(hdr, saddr, daddr, proto, tos, l4_len, dp->ip.ip4_id++, 0);
}

/**
 * ip_hdr_len() - length of the IP header we build for an address family
 * @addr:	an address of the packet (IPv4-mapped for IPv4)
 *
 * Return: IP4_HLEN for IPv4, IP6_HLEN for IPv6 (no options, no extension
 *	   headers)
 */
size_t ip_hdr_len(const union inany_addr *addr)
{
	return inany_is_v4(addr) ? IP4_HLEN : IP6_HLEN;
}

/**
 * ip_gateway() - the gateway address of the family of another address
 * @dp:		data plane
 * @like:	an address of the family wanted
 * @gw:		set to the gateway, the source of errors we send
 */
void ip_gateway(const struct dp *dp, const union inany_addr *like,
		union inany_addr *gw)
{
	if (inany_is_v4(like))
		inany_from_v4(gw, dp->cfg.gw4);
	else
		memcpy(gw->a, dp->cfg.gw6, sizeof(gw->a));
}

/**
 * ip_tx_start() - start an IP packet to the guest in the transmit queue
 * @dp:		data plane, guest MAC address known
 * @src:	source address (the remote end, as the guest knows it)
 * @dst:	destination address (the guest), same family as @src
 * @room:	set to the largest transport header plus payload that fits the
 *		link MTU
 *
 * Finish with ip_tx_commit(); nothing else may use the transmit queue
 * in between.
 *
 * Return: where the transport header goes
 */
uint8_t *ip_tx_start(struct dp *dp, const union inany_addr *src,
		     const union inany_addr *dst, size_t *room)
{
	bool v4 = inany_is_v4(dst);
	uint8_t *l3 = eth_tx_start(dp, dp->eth.guest_mac,
				   v4 ? ETH_TYPE_IP4 : ETH_TYPE_IP6);
	size_t hlen = ip_hdr_len(dst);

	if (v4)
		ip4_hdr_fill(dp, l3, inany_v4(src), inany_v4(dst), 0, 0, 0);
	else
		ip6_hdr_fill(l3, src, dst, 0, DP_IP6_HOP_LIMIT, 0);
	dp->ip.tx_l3 = l3;
	*room = dp->cfg.mtu - hlen;
	return l3 + hlen;
}

/**
 * ip_tx_commit() - finish the IP header begun by ip_tx_start() and queue it
 * @dp:		data plane
 * @proto:	IPPROTO_TCP, IPPROTO_UDP...
 * @l4_len:	transport header plus payload written, at most the room given
 */
void ip_tx_commit(struct dp *dp, uint8_t proto, size_t l4_len)
{
	uint8_t *l3 = dp->ip.tx_l3;

	dp->ip.tx_l3 = NULL;
	if ((l3[IP4_OFF_VER_IHL] >> 4) == 6) {
		wr16(l3 + IP6_OFF_PLEN, (uint16_t)l4_len);
		l3[IP6_OFF_NEXT] = proto;
		eth_tx_commit(dp, IP6_HLEN + l4_len);
		return;
	}

	dp->ip.ip4_id--;	/* ip4_hdr_fill() counts once per packet */
	ip4_hdr_fill(dp, l3, rd32n(l3 + IP4_OFF_SADDR),
		     rd32n(l3 + IP4_OFF_DADDR), proto, 0, l4_len);
	eth_tx_commit(dp, IP4_HLEN + l4_len);
}

/**
 * ip_pseudo_csum() - partial checksum of the pseudo-header of a transport
 * @src:	source address
 * @dst:	destination address, same family
 * @proto:	IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMPV6
 * @l4_len:	transport header plus payload length
 *
 * Return: partial sum to pass to csum() over the transport header and data
 */
uint32_t ip_pseudo_csum(const union inany_addr *src,
			const union inany_addr *dst, uint8_t proto,
			size_t l4_len)
{
	if (!inany_is_v4(src))
		return csum_pseudo6(src->a, dst->a, proto, (uint32_t)l4_len);
	return csum_pseudo4(inany_v4(src), inany_v4(dst), proto,
			    (uint16_t)l4_len);
}

/**
 * ip6_tx_l4() - send a transport packet to the guest over IPv6, with
 * fragment headers if it does not fit the MTU (RFC 8200, 4.5)
 * @dp:		data plane, guest MAC address known
 * @src:	source address
 * @dst:	destination address (the guest)
 * @proto:	IPPROTO_UDP, IPPROTO_ICMPV6...
 * @l4:		transport header and payload, checksum already set
 * @l4_len:	bytes at @l4, at most DP_IP_MAX_LEN
 */
static void ip6_tx_l4(struct dp *dp, const union inany_addr *src,
		      const union inany_addr *dst, uint8_t proto,
		      const uint8_t *l4, size_t l4_len)
{
	size_t chunk, off = 0;
	uint32_t id;

	if (IP6_HLEN + l4_len <= dp->cfg.mtu) {
		uint8_t *l3 = eth_tx_start(dp, dp->eth.guest_mac, ETH_TYPE_IP6);

		ip6_hdr_fill(l3, src, dst, proto, DP_IP6_HOP_LIMIT, l4_len);
		memcpy(l3 + IP6_HLEN, l4, l4_len);
		eth_tx_commit(dp, IP6_HLEN + l4_len);
		return;
	}

	id = dp->ip.ip6_frag_id++;
	chunk = (dp->cfg.mtu - IP6_HLEN - IP6_FRAG_HLEN) & ~(size_t)7;
	do {
		size_t n = l4_len - off < chunk ? l4_len - off : chunk;
		uint8_t *l3 = eth_tx_start(dp, dp->eth.guest_mac, ETH_TYPE_IP6);
		uint8_t *fh = l3 + IP6_HLEN;

		ip6_hdr_fill(l3, src, dst, IPPROTO_FRAGMENT, DP_IP6_HOP_LIMIT,
			     IP6_FRAG_HLEN + n);
		fh[0] = proto;
		fh[1] = 0;
		wr16(fh + 2, (uint16_t)(off | (off + n < l4_len)));
		wr16(fh + 4, (uint16_t)(id >> 16));
		wr16(fh + 6, (uint16_t)id);
		memcpy(fh + IP6_FRAG_HLEN, l4 + off, n);
		eth_tx_commit(dp, IP6_HLEN + IP6_FRAG_HLEN + n);
		off += n;
	} while (off < l4_len);
}

/**
 * ip_tx_l4() - send a transport packet to the guest, fragmented to the MTU
 * if it does not fit in one frame
 * @dp:		data plane, guest MAC address known
 * @src:	source address (the remote end, as the guest knows it)
 * @dst:	destination address (the guest)
 * @proto:	IPPROTO_UDP, IPPROTO_ICMP...
 * @l4:		transport header and payload, checksum already set
 * @l4_len:	bytes at @l4
 *
 * A packet that would exceed DP_IP_MAX_LEN with its IPv4 header, or as an
 * IPv6 payload, is counted under drop_ip_too_big.  IPv6 packets go to
 * ip6_tx_l4().
 */
void ip_tx_l4(struct dp *dp, const union inany_addr *src,
	      const union inany_addr *dst, uint8_t proto, const uint8_t *l4,
	      size_t l4_len)
{
	size_t room = dp->cfg.mtu - IP4_HLEN, chunk, off;
	uint32_t saddr = inany_v4(src), daddr = inany_v4(dst);
	uint16_t id;

	if (l4_len > DP_IP_MAX_LEN - (inany_is_v4(dst) ? IP4_HLEN : 0)) {
		DP_COUNT(dp, drop_ip_too_big);
		return;
	}
	if (!inany_is_v4(dst)) {
		ip6_tx_l4(dp, src, dst, proto, l4, l4_len);
		return;
	}

	id = dp->ip.ip4_id++;
	chunk = l4_len <= room ? l4_len : room & ~(size_t)7;
	off = 0;
	do {
		size_t n = l4_len - off < chunk ? l4_len - off : chunk;
		uint16_t frag = (uint16_t)(off / 8);
		uint8_t *l3;

		if (off + n < l4_len)
			frag |= IP4_MF;

		l3 = eth_tx_start(dp, dp->eth.guest_mac, ETH_TYPE_IP4);
		ip4_hdr_build(l3, saddr, daddr, proto, 0, n, id, frag);
		memcpy(l3 + IP4_HLEN, l4 + off, n);
		eth_tx_commit(dp, IP4_HLEN + n);
		off += n;
	} while (off < l4_len);
}

/**
 * ip4_is_unicast() - tell whether a destination is one host, not a group
 * @dp:		data plane, for the virtual network's broadcast address
 * @addr:	IPv4 address, network byte order
 *
 * Return: false for multicast, limited and directed broadcast and 0.0.0.0:
 *	   no ICMP error may answer packets sent there (RFC 1122)
 */
bool ip4_is_unicast(const struct dp *dp, uint32_t addr)
{
	uint32_t h = ntohl(addr);

	return h != 0 && (h >> 28) != 0xe && h != 0xffffffffU &&
	       addr != (dp->cfg.net4 | ~dp->cfg.mask4);
}

/**
 * ip6_tx_unreach() - send an IPv6 guest an ICMPv6 destination unreachable
 * @dp:		data plane
 * @from:	source of the error (the remote, or the gateway)
 * @guest:	the guest, source of the offending packet
 * @remote:	destination of the offending packet, as the guest wrote it
 * @proto:	its protocol
 * @l4_head:	its first ICMP_QUOTE_L4 transport bytes
 * @l4_len:	its transport length, for the quoted IPv6 header
 * @code:	ICMPv4 unreachable code, mapped to ICMPv6's
 */
static void ip6_tx_unreach(struct dp *dp, const union inany_addr *from,
			     const union inany_addr *guest,
			     const union inany_addr *remote, uint8_t proto,
			     const uint8_t *l4_head, size_t l4_len,
			     uint8_t code)
{
	uint8_t msg[ICMP_HLEN + IP6_HLEN + ICMP_QUOTE_L4];
	uint16_t sum;

	if (inany_is_multicast6(remote))
		return;
	if (l4_len > DP_IP_MAX_LEN)
		l4_len = DP_IP_MAX_LEN;

	msg[ICMP_OFF_TYPE] = ICMP6_DEST_UNREACH;
	msg[ICMP_OFF_CODE] = code == ICMP_UNREACH_PORT ? ICMP6_UNREACH_PORT :
							 ICMP6_UNREACH_ADDR;
	memset(msg + ICMP_OFF_CSUM, 0, ICMP_HLEN - ICMP_OFF_CSUM);
	ip6_hdr_fill(msg + ICMP_HLEN, guest, remote, proto, DP_IP6_HOP_LIMIT,
		     l4_len);
	memcpy(msg + ICMP_HLEN + IP6_HLEN, l4_head, ICMP_QUOTE_L4);
	sum = csum(msg, sizeof(msg), ip_pseudo_csum(from, guest, IPPROTO_ICMPV6,
						   sizeof(msg)));
	memcpy(msg + ICMP_OFF_CSUM, &sum, sizeof(sum));

	ip_tx_l4(dp, from, guest, IPPROTO_ICMPV6, msg, sizeof(msg));
	DP_COUNT(dp, icmp_unreach_sent);
}

/**
 * ip_tx_unreach() - send the guest an ICMP destination unreachable
 * @dp:		data plane
 * @from:	source of the error (the remote, or the gateway)
 * @guest:	the guest, source of the offending packet
 * @remote:	destination of the offending packet, as the guest wrote it
 * @proto:	its protocol
 * @l4_head:	its first ICMP_QUOTE_L4 transport bytes (ports, or ICMP header)
 * @l4_len:	its transport length, for the quoted IP header
 * @code:	ICMPv4 unreachable code (1 host, 3 port...), mapped for IPv6
 * @info:	the four bytes after the checksum (next-hop MTU for code 4), 0;
 *		IPv4 only
 */
void ip_tx_unreach(struct dp *dp, const union inany_addr *from,
		     const union inany_addr *guest,
		     const union inany_addr *remote, uint8_t proto,
		     const uint8_t *l4_head, size_t l4_len, uint8_t code,
		     uint32_t info)
{
	uint8_t msg[ICMP_HLEN + IP4_HLEN + ICMP_QUOTE_L4];
	uint16_t sum;

	if (!dp->eth.guest_mac_known || inany_is_v4(remote) != inany_is_v4(from))
		return;
	if (!inany_is_v4(remote)) {
		ip6_tx_unreach(dp, from, guest, remote, proto, l4_head,
			       l4_len, code);
		return;
	}
	if (!ip4_is_unicast(dp, inany_v4(remote)))
		return;

	if (l4_len > DP_IP_MAX_LEN - IP4_HLEN)
		l4_len = DP_IP_MAX_LEN - IP4_HLEN;

	msg[ICMP_OFF_TYPE] = ICMP_DEST_UNREACH;
	msg[ICMP_OFF_CODE] = code;
	wr16(msg + ICMP_OFF_CSUM, 0);
	wr16(msg + ICMP_OFF_INFO, (uint16_t)(info >> 16));
	wr16(msg + ICMP_OFF_INFO + 2, (uint16_t)info);
	ip4_hdr_fill(dp, msg + ICMP_HLEN, inany_v4(guest), inany_v4(remote),
		     proto, 0, l4_len);
	memcpy(msg + ICMP_HLEN + IP4_HLEN, l4_head, ICMP_QUOTE_L4);
	sum = csum(msg, sizeof(msg), 0);
	memcpy(msg + ICMP_OFF_CSUM, &sum, sizeof(sum));

	ip_tx_l4(dp, from, guest, IPPROTO_ICMP, msg, sizeof(msg));
	DP_COUNT(dp, icmp_unreach_sent);
}
