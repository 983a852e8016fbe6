/* ip6.c - validate IPv6 packets from the guest and dispatch them
 *
 * Theory of operation
 * -------------------
 * IPv6 is served only with -6 (cfg.enable_ipv6); without it eth.c counts every
 * IPv6 frame under drop_ipv6 and nothing here runs, so nothing is advertised
 * either.  With it, the guest's IPv6 packets reach the same transport code as
 * IPv4 ones: addresses are 128 bits everywhere (inany.h), so TCP and UDP get
 * a struct l4_pkt whatever the family, and the host socket they open is of
 * the family fwd.c maps the destination to.
 *
 * Every header field comes from the guest and is checked before use, each
 * failure a counted drop:
 *
 * - malformed: fewer bytes than the 40-byte header, version not 6, a payload
 *   length of 0 (jumbograms, which an Ethernet link cannot carry) or larger
 *   than the bytes we have.  Bytes past the payload length are padding.
 * - martian source: multicast, loopback, IPv4-mapped, or one of our own
 *   addresses.  The unspecified source :: is only valid for neighbour
 *   solicitations during duplicate address detection, so it passes for
 *   ICMPv6 alone and ndp.c deals with it.  IPv4-mapped destinations are
 *   refused too: inany.h would take them for IPv4 addresses.
 * - extension headers: hop-by-hop options (first only), destination options
 *   and routing headers with no segments left are skipped; a routing header
 *   with segments left would make us a router of the guest's choosing and is
 *   dropped, as is any header that does not fit in the payload.  At most
 *   DP_IP6_EXT_MAX headers are walked; a longer chain is dropped under
 *   drop_ip6_ext_limit, so no packet costs more than a fixed amount of work.
 * - fragments: a fragment header that is not atomic (offset 0, no More
 *   Fragments) hands the rest of the packet to frag.c, which reassembles it
 *   with the same slots as IPv4 and, once whole, comes back here through
 *   ip6_payload_input() for the headers after the fragment header.  A second
 *   fragment header is dropped.
 * - DHCPv6 (pasta's model, cfg.dhcpv6): UDP to port DP_DHCPV6_SERVER_PORT
 *   at a multicast address, right after the IPv6 header, goes to the
 *   control plane (ctl.c) whole, for slirpd/dhcpv6.py to answer.
 * - protocol: TCP and UDP go to tcp.c and udp.c.  ICMPv6 goes to icmp.c,
 *   which hands neighbour discovery to ndp.c, answers echo requests to our
 *   addresses and sends the rest through ping sockets.  Other protocols,
 *   "no next header" included, are dropped.
 *
 * Our addresses are those of the rules marked DP_RULE_F_LOCAL (fwd.c:
 * slirp4netns's gateway and DNS address) and the link-local fe80::2 that
 * router advertisements come from.
 * Packets we originate get a 40-byte header from ip6_hdr_fill() (traffic
 * class and flow label 0); ip.c's ip_tx_*() choose it by address family.
 */

#include <netinet/in.h>

#include "ctl.h"
#include "dp.h"
#include "dp_limits.h"
#include "frag.h"
#include "fwd.h"
#include "icmp.h"
#include "inany.h"
#include "ip.h"
#include "ip6.h"
#include "tcp.h"
#include "udp.h"
#include "util.h"

/* Extension headers: next header and length (in 8 bytes, minus one) first */
#define IP6_EXT_HOPOPTS		0
#define IP6_EXT_ROUTING		43
#define IP6_EXT_FRAGMENT	44
#define IP6_EXT_DSTOPTS		60
#define IP6_EXT_MINLEN		8
/* Routing header: segments left; fragment header: offset and M flag, id */
#define IP6_RH_OFF_SEGS_LEFT	3
#define IP6_FH_OFF_FRAG		2
#define IP6_FH_OFF_ID		4
#define IP6_FH_OFFMASK		0xfff8
#define IP6_FH_MORE		0x0001

/**
 * ip6_is_local() - tell whether an address is one the data plane answers for
 * @dp:		data plane
 * @addr:	IPv6 address
 *
 * Return: true for the rules marked DP_RULE_F_LOCAL (slirp4netns's gateway
 *	   and DNS address, fwd.c) and fe80::2
 */
bool ip6_is_local(struct dp *dp, const union inany_addr *addr)
{
	static const union inany_addr ll = DP_LL6_ADDR;

	return fwd_is_local(dp, addr) || inany_equal(addr, &ll);
}

/**
 * ip6_src_is_martian() - tell whether the guest may not use a source address
 * @dp:		data plane
 * @addr:	source address
 *
 * Return: true for addresses no guest packet may come from (:: is checked
 *	   by the caller)
 */
static bool ip6_src_is_martian(struct dp *dp,
			       const union inany_addr *addr)
{
	return inany_is_multicast6(addr) || inany_is_loopback6(addr) ||
	       inany_is_v4(addr) || ip6_is_local(dp, addr);
}

/**
 * ip6_is_dhcpv6() - tell whether a packet is for the DHCPv6 server
 * @dp:		data plane
 * @p:		packet, @proto the next header after the IPv6 header
 *
 * Return: true with cfg.dhcpv6 for UDP to port DP_DHCPV6_SERVER_PORT at a
 *	   multicast address (the guest's one way to reach a DHCPv6 server)
 */
static bool ip6_is_dhcpv6(const struct dp *dp, const struct l4_pkt *p)
{
	return dp->cfg.dhcpv6 && p->proto == IPPROTO_UDP &&
	       inany_is_multicast6(&p->dst) && p->l4_len >= UDP_HLEN &&
	       rd16(p->l4 + UDP_OFF_DPORT) == DP_DHCPV6_SERVER_PORT;
}

/**
 * ip6_dispatch() - hand a packet past its extension headers to its protocol
 * @dp:		data plane
 * @p:		packet: @proto the upper-layer protocol, @l4 its header
 * @hop_limit:	hop limit of the packet, 0 if reassembled (ndp.c refuses it)
 */
static void ip6_dispatch(struct dp *dp, const struct l4_pkt *p,
			 uint8_t hop_limit)
{
	if (inany_is_unspecified(&p->src) && p->proto != IPPROTO_ICMPV6) {
		DP_COUNT(dp, drop_ip6_martian);
		return;
	}

	switch (p->proto) {
	case IPPROTO_ICMPV6:
		icmp6_input(dp, p, hop_limit);
		break;
	case IPPROTO_TCP:
		tcp_input(dp, p);
		break;
	case IPPROTO_UDP:
		udp_input(dp, p);
		break;
	default:
		DP_COUNT(dp, drop_ip6_proto);
		break;
	}
}

/**
 * ip6_payload_input() - walk the extension headers of a packet, then dispatch
 * @dp:		data plane
 * @p:		packet: @proto is the first next header, @l4 and @l4_len the
 *		bytes after the IPv6 header (or after the fragment header of a
 *		reassembled datagram)
 * @hop_limit:	hop limit of the packet, 0 for a reassembled datagram
 * @first:	true for the bytes right after the IPv6 header: hop-by-hop
 *		options may come first and fragments are reassembled; false
 *		for a reassembled datagram
 */
void ip6_payload_input(struct dp *dp, const struct l4_pkt *p,
		       uint8_t hop_limit, bool first)
{
	struct l4_pkt q = *p;
	unsigned n;

	for (n = 0; n <= DP_IP6_EXT_MAX; n++) {
		size_t hlen;
		uint16_t frag;
		uint32_t id;

		if (q.proto != IP6_EXT_HOPOPTS && q.proto != IP6_EXT_ROUTING &&
		    q.proto != IP6_EXT_FRAGMENT && q.proto != IP6_EXT_DSTOPTS) {
			ip6_dispatch(dp, &q, hop_limit);
			return;
		}
		if (n == DP_IP6_EXT_MAX) {
			DP_COUNT(dp, drop_ip6_ext_limit);
			return;
		}

		if (q.l4_len < IP6_EXT_MINLEN ||
		    (q.proto == IP6_EXT_HOPOPTS && (n || !first))) {
			DP_COUNT(dp, drop_ip6_ext_header);
			return;
		}
		hlen = q.proto == IP6_EXT_FRAGMENT ? IP6_EXT_MINLEN :
						     ((size_t)q.l4[1] + 1) * 8;
		if (hlen > q.l4_len) {
			DP_COUNT(dp, drop_ip6_ext_header);
			return;
		}

		switch (q.proto) {
		case IP6_EXT_ROUTING:
			if (q.l4[IP6_RH_OFF_SEGS_LEFT]) {
				DP_COUNT(dp, drop_ip6_ext_header);
				return;
			}
			break;
		case IP6_EXT_FRAGMENT:
			frag = rd16(q.l4 + IP6_FH_OFF_FRAG);
			if (!(frag & (IP6_FH_OFFMASK | IP6_FH_MORE)))
				break;	/* atomic fragment: the whole packet */
			if (!first) {
				DP_COUNT(dp, drop_ip6_ext_header);
				return;
			}
			id = (uint32_t)rd16(q.l4 + IP6_FH_OFF_ID) << 16 |
			     rd16(q.l4 + IP6_FH_OFF_ID + 2);
			q.proto = q.l4[0];
			q.l4 += hlen;
			q.l4_len -= hlen;
			frag_input(dp, &q, id, frag & IP6_FH_OFFMASK,
				   frag & IP6_FH_MORE);
			return;
		default:
			break;
		}

		q.proto = q.l4[0];
		q.l4 += hlen;
		q.l4_len -= hlen;
	}
}

/**
 * ip6_input() - handle one IPv6 packet from the guest
 * @dp:		data plane, cfg.enable_ipv6 set
 * @eth_src:	source MAC address of the frame, for replies
 * @pkt:	IPv6 packet, after the Ethernet header
 * @len:	bytes available from @pkt (may include Ethernet padding)
 */
void ip6_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len)
{
	struct l4_pkt p = { .eth_src = eth_src };
	size_t plen;

	if (len < IP6_HLEN || (pkt[IP6_OFF_VER] >> 4) != 6) {
		DP_COUNT(dp, drop_ip6_malformed);
		return;
	}

	plen = rd16(pkt + IP6_OFF_PLEN);
	if (!plen || IP6_HLEN + plen > len) {
		DP_COUNT(dp, drop_ip6_malformed);
		return;
	}

	memcpy(p.src.a, pkt + IP6_OFF_SADDR, sizeof(p.src.a));
	memcpy(p.dst.a, pkt + IP6_OFF_DADDR, sizeof(p.dst.a));
	if (ip6_src_is_martian(dp, &p.src) || inany_is_v4(&p.dst)) {
		DP_COUNT(dp, drop_ip6_martian);
		return;
	}

	p.tos = (uint8_t)((pkt[0] & 0x0f) << 4 | pkt[1] >> 4);
	p.proto = pkt[IP6_OFF_NEXT];
	p.l4 = pkt + IP6_HLEN;
	p.l4_len = plen;
	if (ip6_is_dhcpv6(dp, &p)) {
		ctl_queue(dp, eth_src, ETH_TYPE_IP6, pkt, IP6_HLEN + plen);
		return;
	}
	ip6_payload_input(dp, &p, pkt[IP6_OFF_HOPS], true);
}
