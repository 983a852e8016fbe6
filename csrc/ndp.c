/* ndp.c - IPv6 neighbour discovery: our addresses, router advertisements
 *
 * Theory of operation
 * -------------------
 * With -6 the guest needs three things from its link to use IPv6 (RFC 4861):
 *
 * - the link-layer address of our addresses.  A neighbour solicitation for
 *   one of them (a rule marked DP_RULE_F_LOCAL, fwd.c: slirp4netns's gateway
 *   and DNS address; our link-local fe80::2) gets a neighbour advertisement
 *   with our MAC address, the Router, Solicited and Override flags set, back
 *   to the soliciting node (to all nodes, ff02::1, if it solicited from ::
 *   during duplicate address detection: that address is ours, the guest must
 *   not take it).  With cfg.neigh_all (pasta's model) every address is ours
 *   but the guest's own (cfg.guest6) and those the guest probes for from ::
 *   (duplicate address detection of its own addresses), as with pasta.
 *   Solicitations for any other address are not ours to answer: in
 *   particular the guest's own duplicate address detection, for its
 *   link-local and SLAAC addresses, goes unanswered and succeeds.  They are
 *   counted under drop_ndp_not_for_us.
 * - a router: a router solicitation gets a router advertisement from fe80::2
 *   (router advertisements must come from a link-local address) announcing
 *   us as default router for DP_NDP_ROUTER_LIFETIME_S, with the options
 *   source link-layer address, MTU (cfg.mtu), prefix information (cfg.net6,
 *   /64, on-link and autonomous, so SLAAC gives the guest an address) and,
 *   when cfg.rdnss6 is set, RDNSS (RFC 8106) naming it.  With cfg.ra_managed
 *   (pasta's model, whose ndp.c always sets it) the Managed flag tells the
 *   guest to ask DHCPv6 for an address too; Other-configuration is never
 *   set.  The answer goes to the soliciting address, or to all nodes from
 *   ::.  With cfg.no_ra (pasta's --no-ra, and its --config-net, which sets
 *   addresses and routes itself) solicitations are counted under
 *   drop_ndp_no_ra, unanswered.
 *   With cfg.no_ndp (pasta's --no-ndp) no solicitation at all is answered,
 *   neighbour ones included (drop_ndp_off): the guest's neighbours are its
 *   own business, as with pasta.
 * - nothing else: router and neighbour advertisements and redirects from the
 *   guest are dropped (drop_ndp_type); we learn the guest's MAC address from
 *   every frame it sends (eth.c) and never need its neighbour entries.
 *
 * Checks, each failure a counted drop (drop_ndp_malformed): the hop limit is
 * 255 (the packet was not forwarded, RFC 4861 6.1 and 7.1), the code is 0,
 * the message holds its fixed part, every option has a non-zero length that
 * fits, and a solicitation from :: carries no source link-layer address
 * option.  Checksums were checked by icmp.c.
 *
 * Nothing is advertised before the guest asks, and nothing at all without -6
 * (ip6.c never runs then): Linux guests solicit a router as soon as their
 * interface is up.  Once one has, ndp_timer() repeats the advertisement to
 * all nodes every DP_NDP_RA_INTERVAL_MS (cfg.ra_interval_ms if set), so the
 * default route, prefix and RDNSS the guest learnt never expire, as a router
 * on a real link would (RFC 4861, 6.2.4); dp_poll() runs it when due.
 */

#include <netinet/in.h>

#include "checksum.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "eth.h"
#include "inany.h"
#include "ip.h"
#include "ip6.h"
#include "ndp.h"
#include "util.h"

/* NDP message types (RFC 4861) */
#define NDP_RS			133
#define NDP_RA			134
#define NDP_NS			135
#define NDP_NA			136

/* Fixed parts: router solicitation 8 bytes, neighbour solicitation 24 (the
 * target after 8), router advertisement 16 */
#define NDP_RS_LEN		8
#define NDP_NS_LEN		24
#define NDP_NS_OFF_TARGET	8
#define NDP_RA_LEN		16

/* Neighbour advertisement flags (first byte after the checksum) */
#define NDP_NA_ROUTER		0x80
#define NDP_NA_SOLICITED	0x40
#define NDP_NA_OVERRIDE		0x20
/* Router advertisement flags (the byte after the current hop limit):
 * addresses from DHCPv6 (Managed) */
#define NDP_RA_MANAGED		0x80

/* Options: type, length in units of 8 bytes */
#define NDP_OPT_SRC_LLADDR	1
#define NDP_OPT_TGT_LLADDR	2
#define NDP_OPT_PREFIX		3
#define NDP_OPT_MTU		5
#define NDP_OPT_RDNSS		25
#define NDP_OPT_UNIT		8
#define NDP_OPT_LLADDR_LEN	8
#define NDP_OPT_PREFIX_LEN	32
#define NDP_OPT_MTU_LEN		8
#define NDP_OPT_RDNSS_LEN	24

/* Prefix information: on-link and autonomous address configuration */
#define NDP_PREFIX_ONLINK	0x80
#define NDP_PREFIX_AUTO		0x40
#define NDP_PREFIX_LEN		64

/* The unspecified address, ::, also "not set" in struct dp_config */
static const union inany_addr ndp_unspecified;

/* All nodes (ff02::1), and as an Ethernet multicast address */
static const union inany_addr ndp_all_nodes = { .a = { 0xff, 0x02, [15] = 1 } };
#define NDP_ALL_NODES_MAC	((const uint8_t []){ 0x33, 0x33, 0, 0, 0, 1 })

/* NDP packets are sent, and must be received, with this hop limit */
#define NDP_HOP_LIMIT		255

#define NDP_IP6_HLEN		40

/* Largest message we build: a router advertisement with every option */
#define NDP_MSG_MAX		(NDP_RA_LEN + NDP_OPT_LLADDR_LEN + \
				 NDP_OPT_MTU_LEN + NDP_OPT_PREFIX_LEN + \
				 NDP_OPT_RDNSS_LEN)

/**
 * wr32() - write a 32-bit value as big-endian to an unaligned position
 * @p:		first byte of the field
 * @v:		value in host byte order
 */
static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)(v >> 16));
	wr16(p + 2, (uint16_t)v);
}

/**
 * ndp_opts_valid() - check the options after a message's fixed part
 * @p:		message
 * @fixed:	length of its fixed part
 * @has_lladdr:	set to true if a source link-layer address option is there
 *
 * Return: true if every option has a non-zero length that fits
 */
static bool ndp_opts_valid(const struct l4_pkt *p, size_t fixed,
			   bool *has_lladdr)
{
	size_t off = fixed;

	*has_lladdr = false;
	while (off < p->l4_len) {
		size_t len;

		if (p->l4_len - off < 2 || !p->l4[off + 1])
			return false;
		len = (size_t)p->l4[off + 1] * NDP_OPT_UNIT;
		if (len > p->l4_len - off)
			return false;
		if (p->l4[off] == NDP_OPT_SRC_LLADDR)
			*has_lladdr = true;
		off += len;
	}
	return true;
}

/**
 * ndp_send() - send an NDP message we built to the guest
 * @dp:		data plane
 * @eth_dst:	destination MAC address
 * @src:	source address
 * @dst:	destination address
 * @msg:	message, checksum field zero
 * @len:	its length
 */
static void ndp_send(struct dp *dp, const uint8_t *eth_dst,
		     const union inany_addr *src, const union inany_addr *dst,
		     uint8_t *msg, size_t len)
{
	uint16_t sum;
	uint8_t *l3;

	sum = csum(msg, len, ip_pseudo_csum(src, dst, IPPROTO_ICMPV6, len));
	memcpy(msg + 2, &sum, sizeof(sum));

	l3 = eth_tx_start(dp, eth_dst, ETH_TYPE_IP6);
	ip6_hdr_fill(l3, src, dst, IPPROTO_ICMPV6, NDP_HOP_LIMIT, len);
	memcpy(l3 + NDP_IP6_HLEN, msg, len);
	eth_tx_commit(dp, NDP_IP6_HLEN + len);
}

/**
 * ndp_reply_to() - where an answer to a solicitation goes
 * @p:		the solicitation
 * @dst:	set to its source, or to all nodes (ff02::1) if that is ::
 * @eth_dst:	set to the matching MAC address, room for DP_MAC_LEN
 */
static void ndp_reply_to(const struct l4_pkt *p, union inany_addr *dst,
			 uint8_t *eth_dst)
{
	if (inany_is_unspecified(&p->src)) {
		*dst = ndp_all_nodes;
		memcpy(eth_dst, NDP_ALL_NODES_MAC, DP_MAC_LEN);
	} else {
		*dst = p->src;
		memcpy(eth_dst, p->eth_src, DP_MAC_LEN);
	}
}

/**
 * ndp_put_lladdr() - write a link-layer address option with our MAC address
 * @dp:		data plane
 * @opt:	where it goes, NDP_OPT_LLADDR_LEN bytes
 * @type:	NDP_OPT_SRC_LLADDR or NDP_OPT_TGT_LLADDR
 */
static void ndp_put_lladdr(const struct dp *dp, uint8_t *opt, uint8_t type)
{
	opt[0] = type;
	opt[1] = NDP_OPT_LLADDR_LEN / NDP_OPT_UNIT;
	memcpy(opt + 2, dp->cfg.gw_mac, DP_MAC_LEN);
}

/**
 * ndp_is_ours() - tell whether we answer neighbour solicitations for an
 * address
 * @dp:		data plane
 * @p:		the solicitation (its source tells duplicate address detection)
 * @target:	its target address
 *
 * Return: true for one of our addresses, see the theory above
 */
static bool ndp_is_ours(struct dp *dp, const struct l4_pkt *p,
			const union inany_addr *target)
{
	if (!dp->cfg.neigh_all)
		return ip6_is_local(dp, target);
	return !inany_is_unspecified(&p->src) &&
	       !inany_is_multicast6(target) && !inany_is_unspecified(target) &&
	       memcmp(target->a, dp->cfg.guest6, sizeof(target->a));
}

/**
 * ndp_neigh_sol() - answer a neighbour solicitation for one of our addresses
 * @dp:		data plane
 * @p:		the solicitation, options checked
 */
static void ndp_neigh_sol(struct dp *dp, const struct l4_pkt *p)
{
	uint8_t msg[NDP_NS_LEN + NDP_OPT_LLADDR_LEN] = { NDP_NA };
	uint8_t eth_dst[DP_MAC_LEN];
	union inany_addr target, dst;

	memcpy(target.a, p->l4 + NDP_NS_OFF_TARGET, sizeof(target.a));
	if (!ndp_is_ours(dp, p, &target)) {
		DP_COUNT(dp, drop_ndp_not_for_us);
		return;
	}

	ndp_reply_to(p, &dst, eth_dst);
	msg[4] = NDP_NA_ROUTER | NDP_NA_OVERRIDE |
		 (inany_is_unspecified(&p->src) ? 0 : NDP_NA_SOLICITED);
	memcpy(msg + NDP_NS_OFF_TARGET, target.a, sizeof(target.a));
	ndp_put_lladdr(dp, msg + NDP_NS_LEN, NDP_OPT_TGT_LLADDR);

	ndp_send(dp, eth_dst, &target, &dst, msg, sizeof(msg));
	DP_COUNT(dp, ndp_na_sent);
}

/**
 * ndp_send_ra() - send a router advertisement and arm the next unsolicited one
 * @dp:		data plane
 * @dst:	destination address
 * @eth_dst:	destination MAC address
 */
static void ndp_send_ra(struct dp *dp, const union inany_addr *dst,
			const uint8_t *eth_dst)
{
	static const union inany_addr ll = DP_LL6_ADDR;
	uint8_t msg[NDP_MSG_MAX] = { NDP_RA };
	uint8_t *o;

	msg[4] = DP_IP6_HOP_LIMIT;	/* current hop limit */
	msg[5] = dp->cfg.ra_managed ? NDP_RA_MANAGED : 0;	/* O: never */
	wr16(msg + 6, DP_NDP_ROUTER_LIFETIME_S);
	/* reachable time and retransmission timer: unspecified (0) */
	o = msg + NDP_RA_LEN;

	ndp_put_lladdr(dp, o, NDP_OPT_SRC_LLADDR);
	o += NDP_OPT_LLADDR_LEN;

	o[0] = NDP_OPT_MTU;
	o[1] = NDP_OPT_MTU_LEN / NDP_OPT_UNIT;
	wr32(o + 4, dp->cfg.mtu);
	o += NDP_OPT_MTU_LEN;

	o[0] = NDP_OPT_PREFIX;
	o[1] = NDP_OPT_PREFIX_LEN / NDP_OPT_UNIT;
	o[2] = NDP_PREFIX_LEN;
	o[3] = NDP_PREFIX_ONLINK | NDP_PREFIX_AUTO;
	wr32(o + 4, DP_NDP_PREFIX_VALID_S);
	wr32(o + 8, DP_NDP_PREFIX_PREFERRED_S);
	memcpy(o + 16, dp->cfg.net6, NDP_PREFIX_LEN / 8);
	o += NDP_OPT_PREFIX_LEN;

	if (memcmp(dp->cfg.rdnss6, ndp_unspecified.a, 16)) {
		o[0] = NDP_OPT_RDNSS;
		o[1] = NDP_OPT_RDNSS_LEN / NDP_OPT_UNIT;
		wr32(o + 4, DP_NDP_RDNSS_LIFETIME_S);
		memcpy(o + 8, dp->cfg.rdnss6, 16);
		o += NDP_OPT_RDNSS_LEN;
	}

	ndp_send(dp, eth_dst, &ll, dst, msg, (size_t)(o - msg));
	DP_COUNT(dp, ndp_ra_sent);

	dp->ndp.ra_deadline_ms = dp->now_ms + (dp->cfg.ra_interval_ms ?
					   dp->cfg.ra_interval_ms :
					   DP_NDP_RA_INTERVAL_MS);
}

/**
 * ndp_timer() - send the periodic unsolicited router advertisement
 * @dp:		data plane, @ra_deadline_ms due
 */
void ndp_timer(struct dp *dp)
{
	ndp_send_ra(dp, &ndp_all_nodes, NDP_ALL_NODES_MAC);
}

/**
 * ndp_input() - handle a neighbour discovery message from the guest
 * @dp:		data plane
 * @p:		ICMPv6 message of a type from 133 to 137, checksum checked
 * @hop_limit:	hop limit of the packet that carried it, 0 if reassembled
 */
void ndp_input(struct dp *dp, const struct l4_pkt *p, uint8_t hop_limit)
{
	uint8_t type = p->l4[0];
	size_t fixed;
	bool lladdr;

	if (type != NDP_RS && type != NDP_NS) {
		DP_COUNT(dp, drop_ndp_type);
		return;
	}

	fixed = type == NDP_RS ? NDP_RS_LEN : NDP_NS_LEN;
	if (hop_limit != NDP_HOP_LIMIT || p->l4[1] || p->l4_len < fixed ||
	    !ndp_opts_valid(p, fixed, &lladdr) ||
	    (lladdr && inany_is_unspecified(&p->src))) {
		DP_COUNT(dp, drop_ndp_malformed);
		return;
	}

	if (dp->cfg.no_ndp) {
		DP_COUNT(dp, drop_ndp_off);
	} else if (type == NDP_RS && dp->cfg.no_ra) {
		DP_COUNT(dp, drop_ndp_no_ra);
	} else if (type == NDP_RS) {
		union inany_addr dst;
		uint8_t eth_dst[DP_MAC_LEN];

		ndp_reply_to(p, &dst, eth_dst);
		ndp_send_ra(dp, &dst, eth_dst);
	} else
		ndp_neigh_sol(dp, p);
}
