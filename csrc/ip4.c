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
 * Packets we originate are built by ip.c.
 */

#include <arpa/inet.h>

#include "checksum.h"
#include "ctl.h"
#include "dp.h"
#include "dp_limits.h"
#include "frag.h"
#include "fwd.h"
#include "icmp.h"
#include "inany.h"
#include "ip.h"
#include "ip4.h"
#include "ip6.h"
#include "tcp.h"
#include "udp.h"
#include "util.h"

/**
 * ip4_is_local() - tell whether an address is one the data plane answers for
 * @dp:		data plane
 * @addr:	IPv4 address, network byte order
 *
 * Return: true for the addresses of rules marked DP_RULE_F_LOCAL
 *	   (slirp4netns's gateway and DNS address, fwd.c)
 */
bool ip4_is_local(struct dp *dp, uint32_t addr)
{
	union inany_addr a;

	inany_from_v4(&a, addr);
	return fwd_is_local(dp, &a);
}

/**
 * ip4_src_is_martian() - tell whether the guest may not use a source address
 * @dp:		data plane
 * @addr:	source address, network byte order
 *
 * Return: true for addresses no guest packet may come from
 */
static bool ip4_src_is_martian(struct dp *dp, uint32_t addr)
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
		ctl_queue(dp, eth_src, ETH_TYPE_IP4, pkt, tot_len); /* DHCP */
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
		if (dp->cfg.no_icmp)
			DP_COUNT(dp, drop_icmp_off);
		else if (ip4_is_local(dp, ip->daddr))
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
 * ip_is_local() - tell whether an address is one the data plane answers for
 * @dp:		data plane
 * @addr:	address, either family
 *
 * Return: true for the rules marked DP_RULE_F_LOCAL of either family (and
 *	   our IPv6 link-local address)
 */
bool ip_is_local(struct dp *dp, const union inany_addr *addr)
{
	if (inany_is_v4(addr))
		return ip4_is_local(dp, inany_v4(addr));
	return ip6_is_local(dp, addr);
}
