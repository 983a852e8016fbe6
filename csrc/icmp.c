/* icmp.c - ICMP: echo for our own addresses, ping sockets for the rest,
 * and the errors we send the guest
 *
 * Theory of operation
 * -------------------
 * Echo to one of our addresses (a rule marked DP_RULE_F_LOCAL, fwd.c:
 * slirp4netns's gateway or DNS address): the guest pings its gateway to
 * check the link.  Such a request (ip4.c filters on the destination) is
 * answered here, with the identifier, sequence number and payload copied and
 * the checksum computed afresh.  The reply's source is the address that was
 * pinged, its destination the request's source (ip4.c already dropped
 * martian sources, so that address can take a reply).
 *
 * Echo to anything else goes through the host's unprivileged ICMP sockets
 * (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)), no privilege needed.  Each
 * (guest, echo identifier, destination) is a flow (flow.c) with its own
 * socket, connected to where fwd.c maps the destination (pasta's mapped
 * gateway: the host's loopback).  The kernel picks the
 * identifier of a ping socket itself and rewrites it in what we send, so
 * replies get the guest's identifier (the flow key) back, and a fresh
 * checksum, before they go to the guest from the destination as the guest
 * wrote it.  A flow is closed DP_PING_IDLE_MS after its last request or reply;
 * it is PING_ST_UNANSWERED until the first reply, PING_ST_ANSWERED after.
 * When net.ipv4.ping_group_range does not include our group, socket() fails
 * with EACCES: the request is counted under drop_ping_forbidden, and a
 * one-shot notice (DP_NOTICE_PING_FORBIDDEN) lets Python log it once.
 *
 * ICMPv6 (with -6, from ip6.c) takes the same paths: icmp6_input() checks
 * the checksum over the IPv6 pseudo-header, hands neighbour discovery
 * (types 133 to 137) to ndp.c, answers echo requests (type 128) to our
 * addresses itself and sends the others through IPv6 ping sockets
 * (socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)), the same flows as IPv4
 * with the ICMPv6 types and checksum.
 *
 * With cfg.no_icmp (pasta's --no-icmp) the guest's ICMP and ICMPv6, echo to
 * our addresses included, are counted under drop_icmp_off, unanswered;
 * neighbour discovery still goes to ndp.c, as with pasta.
 *
 * Errors to the guest: ip_tx_unreach() builds a destination unreachable
 * quoting a transport header as the guest sent it, for destinations the guest
 * may not reach and for ICMP errors the host relays (udp.c).  None is sent
 * about a packet to a multicast or broadcast address (RFC 1122, RFC 4443).
 * Callers give ICMPv4 codes; for an IPv6 guest the message is an ICMPv6
 * destination unreachable with the matching code (port unreachable, or
 * address unreachable for everything else).
 *
 * Checks, each failure a counted drop: the message holds an ICMP header and
 * its checksum is correct; it is an echo request; a local reply fits the link
 * MTU.  Other ICMP messages from the guest (errors about packets we sent,
 * timestamps) are dropped.
 *
 * Limits
 * ------
 * Ping flows share DP_FLOW_MAX with TCP and UDP, one socket each, and are
 * recycled like UDP flows when sockets run short (flow.c, Host sockets): a
 * request that finds none counts under drop_ping_socket.  Replies are
 * read with the UDP receive buffers (udp_recv_batch()), up to
 * DP_UDP_RECV_BATCH per event; a reply larger than the MTU is fragmented by
 * ip_tx_l4().  Local echo replies are not fragmented: over the MTU, they are
 * dropped (drop_icmp_too_big).
 */

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checksum.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "eth.h"
#include "flow.h"
#include "fwd.h"
#include "icmp.h"
#include "inany.h"
#include "ip.h"
#include "ip4.h"
#include "ip6.h"
#include "ndp.h"
#include "udp.h"
#include "util.h"

/* ICMP identifier (echo request and reply) */
#define ICMP_OFF_ID		4

#define ICMP_ECHO_REPLY		0
#define ICMP_ECHO_REQUEST	8

/* ICMPv6 types (RFC 4443, RFC 4861) */
#define ICMP6_ECHO_REQUEST	128
#define ICMP6_ECHO_REPLY	129
#define ICMP6_NDP_FIRST		133	/* router solicitation */
#define ICMP6_NDP_LAST		137	/* redirect */

/**
 * icmp4_valid() - check an ICMP message's length and checksum
 * @dp:		data plane
 * @ip:		validated IPv4 packet carrying the message
 *
 * Return: true if it may be read, else false (the drop is counted)
 */
static bool icmp4_valid(struct dp *dp, const struct ip4_pkt *ip)
{
	if (ip->l4_len < ICMP_HLEN) {
		DP_COUNT(dp, drop_icmp_malformed);
		return false;
	}
	if (csum(ip->l4, ip->l4_len, 0)) {
		DP_COUNT(dp, drop_icmp_checksum);
		return false;
	}
	return true;
}

/**
 * icmp4_input() - handle one ICMP message addressed to us
 * @dp:		data plane
 * @ip:		validated IPv4 packet carrying the message
 */
void icmp4_input(struct dp *dp, const struct ip4_pkt *ip)
{
	uint16_t sum;
	uint8_t *r;

	if (!icmp4_valid(dp, ip))
		return;

	if (ip->l4[ICMP_OFF_TYPE] != ICMP_ECHO_REQUEST) {
		DP_COUNT(dp, drop_icmp_type);
		return;
	}

	if (IP4_HLEN + ip->l4_len > dp->cfg.mtu) {
		DP_COUNT(dp, drop_icmp_too_big);
		return;
	}

	r = eth_tx_start(dp, ip->eth_src, ETH_TYPE_IP4);
	ip4_hdr_fill(dp, r, ip->daddr, ip->saddr, IPPROTO_ICMP, ip->tos,
		     ip->l4_len);

	r += IP4_HLEN;
	memcpy(r, ip->l4, ip->l4_len);
	r[ICMP_OFF_TYPE] = ICMP_ECHO_REPLY;
	r[ICMP_OFF_CODE] = 0;
	wr16(r + ICMP_OFF_CSUM, 0);
	sum = csum(r, ip->l4_len, 0);
	memcpy(r + ICMP_OFF_CSUM, &sum, sizeof(sum));

	eth_tx_commit(dp, IP4_HLEN + ip->l4_len);
	DP_COUNT(dp, icmp_echo_replies);
}

/**
 * ping_flow_open() - open the ping socket of a new echo flow
 * @dp:		data plane
 * @p:		first echo request, checked
 * @key:	flow key
 *
 * Return: the flow, or NULL if the request is dropped (counted)
 */
static struct flow *ping_flow_open(struct dp *dp, const struct l4_pkt *p,
				   const struct flow_key *key)
{
	struct sockaddr_storage sa;
	socklen_t sa_len;
	struct flow *f;
	int s;

	if (fwd_guest_to_host(dp, &key->remote_addr, 0, p->proto, &sa,
			      &sa_len)) {
		union inany_addr gw;

		DP_COUNT(dp, drop_unreachable);
		ip_gateway(dp, &key->remote_addr, &gw);
		ip_tx_unreach(dp, &gw, &key->guest_addr, &key->remote_addr,
			      p->proto, p->l4, p->l4_len, ICMP_UNREACH_HOST,
			      0);
		return NULL;
	}

	s = flow_sock_open(dp, sa.ss_family,
			   SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			   sa.ss_family == AF_INET ? IPPROTO_ICMP :
						     IPPROTO_ICMPV6);
	if (s < 0) {	/* EMFILE: none left even after recycling a flow */
		if (errno == EACCES || errno == EPERM) {
			DP_COUNT(dp, drop_ping_forbidden);
			dp_notice(dp, DP_NOTICE_PING_FORBIDDEN);
		} else {
			DP_COUNT(dp, drop_ping_socket);
		}
		return NULL;
	}

	if (fwd_bind_outbound(dp, s, sa.ss_family)) {
		DP_COUNT(dp, drop_ping_socket);
		flow_sock_close(dp, s, FLOW_SOCK_GUEST);
		return NULL;
	}

	f = flow_open(dp, FLOW_PING, key, s, FLOW_SOCK_GUEST, &sa, sa_len,
		      DP_CNT_drop_ping_socket);
	if (!f)
		return NULL;
	flow_set_state(f, PING_ST_UNANSWERED);

	flow_timer_set(dp, f, dp->now_ms + DP_PING_IDLE_MS);
	return f;
}

/**
 * ping_send() - send a checked echo request through its flow's ping socket
 * @dp:		data plane
 * @p:		echo request (@proto IPPROTO_ICMP or IPPROTO_ICMPV6), not to
 *		one of our addresses
 */
static void ping_send(struct dp *dp, const struct l4_pkt *p)
{
	struct flow_key key;
	struct flow *f;

	flow_key_fill(&key, p->proto, &p->src, rd16(p->l4 + ICMP_OFF_ID),
		      &p->dst, 0);

	f = flow_lookup(dp, &key);
	if (!f) {
		f = ping_flow_open(dp, p, &key);
		if (!f)
			return;
	}

	f->ping.last_ms = dp->now_ms;
	flow_touch(dp, f);
	if (send(f->sock, p->l4, p->l4_len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		DP_COUNT(dp, drop_ping_send);
	else
		DP_COUNT(dp, ping_requests);
}

/**
 * ping4_input() - send an echo request to a host beyond the gateway
 * @dp:		data plane
 * @ip:		validated IPv4 packet carrying the message (reassembled if it
 *		was fragmented), not to one of our addresses
 */
void ping4_input(struct dp *dp, const struct ip4_pkt *ip)
{
	struct l4_pkt p = {
		.eth_src = ip->eth_src, .tos = ip->tos, .proto = IPPROTO_ICMP,
		.l4 = ip->l4, .l4_len = ip->l4_len,
	};

	if (!icmp4_valid(dp, ip))
		return;

	if (ip->l4[ICMP_OFF_TYPE] != ICMP_ECHO_REQUEST ||
	    ip->l4[ICMP_OFF_CODE]) {
		DP_COUNT(dp, drop_icmp_type);
		return;
	}

	inany_from_v4(&p.src, ip->saddr);
	inany_from_v4(&p.dst, ip->daddr);
	ping_send(dp, &p);
}

/**
 * icmp6_echo_reply() - answer an echo request to one of our IPv6 addresses
 * @dp:		data plane
 * @p:		echo request, checked
 */
static void icmp6_echo_reply(struct dp *dp, const struct l4_pkt *p)
{
	uint16_t sum;
	uint8_t *r;

	if (IP6_HLEN + p->l4_len > dp->cfg.mtu) {
		DP_COUNT(dp, drop_icmp_too_big);
		return;
	}

	r = eth_tx_start(dp, p->eth_src, ETH_TYPE_IP6);
	ip6_hdr_fill(r, &p->dst, &p->src, IPPROTO_ICMPV6, DP_IP6_HOP_LIMIT,
		     p->l4_len);
	r += IP6_HLEN;
	memcpy(r, p->l4, p->l4_len);
	r[ICMP_OFF_TYPE] = ICMP6_ECHO_REPLY;
	wr16(r + ICMP_OFF_CSUM, 0);
	sum = csum(r, p->l4_len, ip_pseudo_csum(&p->dst, &p->src,
						IPPROTO_ICMPV6, p->l4_len));
	memcpy(r + ICMP_OFF_CSUM, &sum, sizeof(sum));

	eth_tx_commit(dp, IP6_HLEN + p->l4_len);
	DP_COUNT(dp, icmp_echo_replies);
}

/**
 * icmp6_input() - handle one ICMPv6 message from the guest
 * @dp:		data plane
 * @p:		the message (@l4, @l4_len) and its addresses
 * @hop_limit:	hop limit of the packet, 0 if it was reassembled
 */
void icmp6_input(struct dp *dp, const struct l4_pkt *p, uint8_t hop_limit)
{
	uint8_t type;

	if (p->l4_len < ICMP_HLEN) {
		DP_COUNT(dp, drop_icmp_malformed);
		return;
	}

	if (csum(p->l4, p->l4_len, ip_pseudo_csum(&p->src, &p->dst,
						  IPPROTO_ICMPV6, p->l4_len))) {
		DP_COUNT(dp, drop_icmp_checksum);
		return;
	}

	type = p->l4[ICMP_OFF_TYPE];
	if (type >= ICMP6_NDP_FIRST && type <= ICMP6_NDP_LAST) {
		ndp_input(dp, p, hop_limit);
		return;
	}

	if (dp->cfg.no_icmp) {
		DP_COUNT(dp, drop_icmp_off);
		return;
	}

	if (type != ICMP6_ECHO_REQUEST || p->l4[ICMP_OFF_CODE] ||
	    inany_is_unspecified(&p->src) || inany_is_multicast6(&p->dst)) {
		DP_COUNT(dp, drop_icmp_type);
		return;
	}

	if (ip6_is_local(dp, &p->dst))
		icmp6_echo_reply(dp, p);
	else
		ping_send(dp, p);
}

/**
 * ping_sock_event() - pass echo replies from a ping socket to the guest
 * @dp:		data plane
 * @f:		ping flow
 * @events:	epoll events
 */
void ping_sock_event(struct dp *dp, struct flow *f, uint32_t events)
{
	bool v4 = inany_is_v4(&f->key.guest_addr);
	int i, n;

	if (events & EPOLLERR) {
		/* errors of ping sockets are not relayed: clear them */
		socklen_t sl = sizeof(int);
		int err;

		getsockopt(f->sock, SOL_SOCKET, SO_ERROR, &err, &sl);
	}

	if (!(events & EPOLLIN))
		return;

	n = udp_recv_batch(dp, f->sock);
	for (i = 0; i < n; i++) {
		uint8_t *r = udp_rx_data(dp, i);
		size_t len = dp->udp.rx_len[i];
		uint16_t sum;

		if (len == SIZE_MAX || len < ICMP_HLEN ||
		    r[ICMP_OFF_TYPE] != (v4 ? ICMP_ECHO_REPLY :
					      ICMP6_ECHO_REPLY))
			continue;

		wr16(r + ICMP_OFF_ID, f->key.guest_port);
		wr16(r + ICMP_OFF_CSUM, 0);
		sum = csum(r, len, v4 ? 0 : ip_pseudo_csum(&f->key.remote_addr,
							   &f->key.guest_addr,
							   IPPROTO_ICMPV6,
							   len));
		memcpy(r + ICMP_OFF_CSUM, &sum, sizeof(sum));

		ip_tx_l4(dp, &f->key.remote_addr, &f->key.guest_addr,
			 f->key.proto, r, len);
		DP_COUNT(dp, ping_replies);
		flow_set_state(f, PING_ST_ANSWERED);
	}
	if (n > 0) {
		f->ping.last_ms = dp->now_ms;
		flow_touch(dp, f);
	}
}

/**
 * ping_timer() - close a ping flow idle for DP_PING_IDLE_MS, or re-arm
 * @dp:		data plane
 * @f:		ping flow whose deadline passed
 */
void ping_timer(struct dp *dp, struct flow *f)
{
	uint64_t end = f->ping.last_ms + DP_PING_IDLE_MS;

	if (end <= dp->now_ms)
		flow_close(dp, f, FLOW_CLOSE_IDLE);
	else
		flow_timer_set(dp, f, end);
}
