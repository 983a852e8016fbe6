/* ip4.c - validate IPv4 packets from the guest and dispatch them
 *
 * Theory of operation
 * -------------------
 * Every header field comes from the guest and is checked before use, in this
 * order, each failure a counted drop:
 *
 * - malformed: fewer bytes than a minimal header, version not 4, IHL below 5
 *   (20 bytes), header longer than the bytes we have, total length shorter
 *   than the header or longer than the frame.  Bytes past the total length
 *   are Ethernet padding and are ignored from here on.
 * - checksum: the header, options included, must sum to zero.
 * - DHCP: UDP to port 67, unfragmented, goes to the control plane (ctl.c)
 *   before the next check, as a DHCP client's source is 0.0.0.0.
 * - martian source: the guest may not claim a loopback, multicast, broadcast,
 *   class E or "this network" source address, nor one of ours (a rule marked
 *   DP_RULE_F_LOCAL, fwd.c: slirp4netns's gateway and DNS address).
 * - fragment: a set More Fragments flag or a non-zero offset hands the packet
 *   to frag.c, which reassembles it and, once complete, passes the whole
 *   datagram to ip4_l4_input() like any unfragmented packet.
 * - protocol: TCP and UDP go to tcp.c and udp.c, whatever the destination
 *   (fwd.c decides later where, if anywhere, it maps to on the host).  ICMP
 *   to one of our addresses is answered by icmp.c itself; ICMP to anything
 *   else goes through a ping socket (icmp.c too).  Other protocols are
 *   dropped.
 *
 * Packets we originate get a fresh 20-byte header from ip4_hdr_fill(): no
 * options, TTL DP_IP4_TTL, an identification that counts up.  TCP builds its
 * segments in place through ip_tx_start() and ip_tx_commit(), which take
 * 128-bit addresses and serve IPv6 as well (a 40-byte header from ip6.c's
 * ip6_hdr_fill(), chosen by the address family).  UDP and ICMP, whose
 * datagrams may exceed the link MTU (up to 65507 bytes of UDP payload), hand
 * a whole transport packet to ip_tx_l4(), which sends it as one packet if it
 * fits the MTU, or else as fragments of at most the MTU each (fragment
 * payloads a multiple of 8 bytes, one identification for all of them): IPv4
 * fragments, or for IPv6 packets carrying a fragment header, as the source
 * of an IPv6 packet must do itself (RFC 8200, 4.5).
 */

#include <arpa/inet.h>

#include "dp.h"

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

/* What ip_tx_*() need of the IPv6 header (ip6.c parses it): its length, the
 * payload length and next header fields, and the fragment header's length */
#define IP6_HLEN		40
#define IP6_OFF_PLEN		4
#define IP6_OFF_NEXT		6
#define IP6_FRAG_HLEN		8

/* Fragment field: More Fragments flag and offset, Don't Fragment aside */
#define IP4_MF			0x2000
#define IP4_OFFMASK		0x1fff

/**
 * ip4_is_local() - tell whether an address is one the data plane answers for
 * @dp:		data plane
 * @addr:	IPv4 address, network byte order
 *
 * Return: true for the addresses of rules marked DP_RULE_F_LOCAL
 *	   (slirp4netns's gateway and DNS address, fwd.c)
 */
bool ip4_is_local(const struct dp *dp, uint32_t addr)
{
	union inany_addr a;

	inany_from_v4(&a, addr);
	return fwd_is_local(dp, &a);
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
 * ip4_src_is_martian() - tell whether the guest may not use a source address
 * @dp:		data plane
 * @addr:	source address, network byte order
 *
 * Return: true for addresses no guest packet may come from
 */
static bool ip4_src_is_martian(const struct dp *dp, uint32_t addr)
{
	uint32_t h = ntohl(addr);

	return (h >> 24) == 0 || (h >> 24) == 127 || (h >> 28) >= 0xe ||
	       ip4_is_local(dp, addr);
}

/**
 * ip4_input() - handle one IPv4 packet from the guest
 * @dp:		data plane
 * @eth_src:	source MAC address of the frame, for replies
 * @pkt:	IPv4 packet, after the Ethernet header
 * @len:	bytes available from @pkt (may include Ethernet padding)
 */
void ip4_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len)
{
	struct ip4_pkt ip;
	size_t hlen, tot_len;
	uint16_t frag;

	if (len < IP4_HLEN || (pkt[IP4_OFF_VER_IHL] >> 4) != 4) {
		DP_COUNT(dp, drop_ip4_malformed);
		return;
	}

	hlen = (size_t)(pkt[IP4_OFF_VER_IHL] & 0x0f) * 4;
	tot_len = rd16(pkt + IP4_OFF_TOT_LEN);
	if (hlen < IP4_HLEN || hlen > len || tot_len < hlen || tot_len > len) {
		DP_COUNT(dp, drop_ip4_malformed);
		return;
	}

	if (csum(pkt, hlen, 0)) {
		DP_COUNT(dp, drop_ip4_checksum);
		return;
	}

	ip.eth_src = eth_src;
	ip.saddr = rd32n(pkt + IP4_OFF_SADDR);
	ip.daddr = rd32n(pkt + IP4_OFF_DADDR);
	ip.tos = pkt[IP4_OFF_TOS];
	ip.proto = pkt[IP4_OFF_PROTO];
	ip.l4 = pkt + hlen;
	ip.l4_len = tot_len - hlen;
	frag = rd16(pkt + IP4_OFF_FRAG);

	if (ip.proto == IPPROTO_UDP && !(frag & (IP4_MF | IP4_OFFMASK)) &&
	    ip.l4_len >= 4 && rd16(ip.l4 + 2) == DP_DHCP_SERVER_PORT) {
		ctl_queue(dp, eth_src, pkt, tot_len);	/* DHCP: Python */
		return;
	}

	if (ip4_src_is_martian(dp, ip.saddr)) {
		DP_COUNT(dp, drop_ip4_martian);
		return;
	}

	if (frag & (IP4_MF | IP4_OFFMASK)) {
		struct l4_pkt p = {
			.eth_src = eth_src, .tos = ip.tos, .proto = ip.proto,
			.l4 = ip.l4, .l4_len = ip.l4_len,
		};

		inany_from_v4(&p.src, ip.saddr);
		inany_from_v4(&p.dst, ip.daddr);
		frag_input(dp, &p, rd16(pkt + IP4_OFF_ID),
			   (size_t)(frag & IP4_OFFMASK) * 8, frag & IP4_MF);
		return;
	}

	ip4_l4_input(dp, &ip);
}

/**
 * ip4_l4_input() - dispatch a whole IPv4 packet (or reassembled datagram) by
 * protocol
 * @dp:		data plane
 * @ip:		validated packet, martian sources already dropped
 */
void ip4_l4_input(struct dp *dp, const struct ip4_pkt *ip)
{
	switch (ip->proto) {
	case IPPROTO_ICMP:
		if (ip4_is_local(dp, ip->daddr))
			icmp4_input(dp, ip);
		else
			ping4_input(dp, ip);
		break;
	case IPPROTO_TCP:
	case IPPROTO_UDP: {
		struct l4_pkt p = {
			.eth_src = ip->eth_src, .tos = ip->tos,
			.proto = ip->proto, .l4 = ip->l4, .l4_len = ip->l4_len,
		};

		inany_from_v4(&p.src, ip->saddr);
		inany_from_v4(&p.dst, ip->daddr);
		if (ip->proto == IPPROTO_TCP)
			tcp_input(dp, &p);
		else
			udp_input(dp, &p);
		break;
	}
	default:
		DP_COUNT(dp, drop_ip4_proto);
		break;
	}
}

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
	ip4_hdr_build(hdr, saddr, daddr, proto, tos, l4_len, dp->ip4_id++, 0);
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
 * ip_is_local() - tell whether an address is one the data plane answers for
 * @dp:		data plane
 * @addr:	address, either family
 *
 * Return: true for the rules marked DP_RULE_F_LOCAL of either family (and
 *	   our IPv6 link-local address)
 */
bool ip_is_local(const struct dp *dp, const union inany_addr *addr)
{
	if (inany_is_v4(addr))
		return ip4_is_local(dp, inany_v4(addr));
	return ip6_is_local(dp, addr);
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
	uint8_t *l3 = eth_tx_start(dp, dp->guest_mac,
				   v4 ? ETH_TYPE_IP4 : ETH_TYPE_IP6);
	size_t hlen = ip_hdr_len(dst);

	if (v4)
		ip4_hdr_fill(dp, l3, inany_v4(src), inany_v4(dst), 0, 0, 0);
	else
		ip6_hdr_fill(l3, src, dst, 0, DP_IP6_HOP_LIMIT, 0);
	dp->tx_l3 = l3;
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
	uint8_t *l3 = dp->tx_l3;

	dp->tx_l3 = NULL;
	if ((l3[IP4_OFF_VER_IHL] >> 4) == 6) {
		wr16(l3 + IP6_OFF_PLEN, (uint16_t)l4_len);
		l3[IP6_OFF_NEXT] = proto;
		eth_tx_commit(dp, IP6_HLEN + l4_len);
		return;
	}

	dp->ip4_id--;	/* ip4_hdr_fill() counts once per packet */
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
		uint8_t *l3 = eth_tx_start(dp, dp->guest_mac, ETH_TYPE_IP6);

		ip6_hdr_fill(l3, src, dst, proto, DP_IP6_HOP_LIMIT, l4_len);
		memcpy(l3 + IP6_HLEN, l4, l4_len);
		eth_tx_commit(dp, IP6_HLEN + l4_len);
		return;
	}

	id = dp->ip6_frag_id++;
	chunk = (dp->cfg.mtu - IP6_HLEN - IP6_FRAG_HLEN) & ~(size_t)7;
	do {
		size_t n = l4_len - off < chunk ? l4_len - off : chunk;
		uint8_t *l3 = eth_tx_start(dp, dp->guest_mac, ETH_TYPE_IP6);
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

	id = dp->ip4_id++;
	chunk = l4_len <= room ? l4_len : room & ~(size_t)7;
	off = 0;
	do {
		size_t n = l4_len - off < chunk ? l4_len - off : chunk;
		uint16_t frag = (uint16_t)(off / 8);
		uint8_t *l3;

		if (off + n < l4_len)
			frag |= IP4_MF;

		l3 = eth_tx_start(dp, dp->guest_mac, ETH_TYPE_IP4);
		ip4_hdr_build(l3, saddr, daddr, proto, 0, n, id, frag);
		memcpy(l3 + IP4_HLEN, l4 + off, n);
		eth_tx_commit(dp, IP4_HLEN + n);
		off += n;
	} while (off < l4_len);
}
