/* fwd.c - the address map: where a guest's destination goes on the host
 *
 * Theory of operation
 * -------------------
 * Translation happens when a flow opens its host socket, and only there; every
 * frame to the guest keeps the address the guest used, so the guest never
 * sees what an address stands for on the host.  Where a destination leads is
 * decided by a small table of rules that Python sets (cfg.rules, at most
 * DP_RULES_MAX): the first rule whose prefix holds the address says
 *
 * - DP_RULE_REDIRECT: the host address @to, same port: slirp4netns's gateway
 *   is the host's 127.0.0.1 (::1 over IPv6), pasta's --map-host-loopback
 *   likewise, pasta's --map-guest-addr the host's own address;
 * - DP_RULE_DNS: port 53, UDP and TCP, is the host's first nameserver
 *   (cfg.dns_upstream4, else cfg.dns_upstream6, found by Python and changed
 *   with dp_dns_upstream()), also when that nameserver is on the host's
 *   loopback (systemd-resolved's 127.0.0.53, dnsmasq's 127.0.0.1): podman
 *   and rootlesskit, which leave the host's loopback closed otherwise,
 *   depend on it.  Other ports reach nothing with DP_RULE_F_DNS_ONLY
 *   (slirp4netns's DNS address); else the rules after it decide, as if it
 *   were not there (pasta's --dns-forward, and its gateway, whose port 53
 *   is the host's nameserver and the rest the host's loopback).  The host
 *   socket's family need not be the guest's;
 * - DP_RULE_BLOCK: nothing (slirp4netns's virtual network, the gateway
 *   with --disable-host-loopback).
 *
 * A destination no rule holds is itself, unless it is loopback, multicast,
 * broadcast, "this network" (0/8) or class E, or for IPv6 ::, ::1, the
 * IPv4-compatible ::/96, link-local or multicast: those reach nothing.
 *
 * Rules marked DP_RULE_F_LOCAL are addresses we own on the link: ARP and
 * NDP answer for them and echo requests to them are answered here
 * (icmp.c), as slirp4netns's gateway and DNS address are.  With
 * cfg.neigh_all (pasta's model) ARP and NDP answer for every address but
 * the guest's (ip4.c, ndp.c), and echo requests go out like the rest.
 *
 * The other way, a host client of a forwarded port appears in the guest as
 * fwd_guest_view() says: the address of the redirect whose target it is
 * (the host's 127.0.0.1 as slirp4netns's gateway, the host's own address
 * as pasta's --map-guest-addr); the gateway (cfg.gw4, cfg.gw6) if the
 * guest could not answer it as it is (loopback, unspecified, the guest's own
 * address, a blocked one, IPv6 link-local, the other family); else itself,
 * so that servers in the guest see real client addresses.
 *
 * Host sockets that flows open bind first to cfg.outbound4 (IPv4 sockets,
 * --outbound-addr) or cfg.outbound6 (IPv6, --outbound-addr6) when set:
 * fwd_bind_outbound().
 *
 * Port forwarding goes the other way.  Python binds a host socket for each
 * forward (add_hostfwd, --publish, pasta's -t and -u) and registers it here
 * with dp_fwd_add(): up to DP_FWD_MAX listeners, each in the epoll set as
 * EPOLL_REF_LISTEN.  A TCP listener's new connections are accepted in a
 * batch and opened into the guest by tcp.c (tcp_conn_from_host()); a UDP
 * listener's datagrams go to udp.c (udp_listener_input(), which counts the flows
 * it starts in the listener's @connections, as fwd.c counts accepted
 * connections).  A listener registered with dp_fwd_add_splice() instead is a
 * socket inside the guest's namespace (pasta's -T and -U), whose @guest is
 * the host address it leads to: its connections are spliced to the host
 * (splice.c), its datagrams relayed there (udp.c, udp_listener_input()).
 *
 * Limits
 * ------
 * DP_RULES_MAX rules, looked at once per new flow (not per packet) and per
 * ARP, NDP or ICMP request; DP_FWD_MAX listeners; DP_FWD_ACCEPT_BATCH
 * connections accepted from one per wake-up.  Listeners and accepted
 * connections count against the forwards' share of the socket budget
 * (flow.c, Host sockets), which keeps DP_SOCK_FWD_RESERVE sockets that the
 * guest's own flows cannot take.  When no descriptor can be had for a
 * connection even after recycling an idle flow (the budget is used up, or
 * accept4() says EMFILE or ENFILE, and the connection stays in the listen
 * backlog), the listener leaves the epoll set for DP_FWD_ACCEPT_PAUSE_MS
 * (fwd_accept_paused) and fwd_timer() puts it back: level-triggered, it
 * would otherwise wake the loop at once, forever.  Only the first accept of
 * a wake-up, for the connection epoll reported, may recycle a flow or
 * pause; a later one that finds no room ends the batch, and the next
 * wake-up starts afresh.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "flow.h"
#include "fwd.h"
#include "inany.h"
#include "ip.h"
#include "nslo.h"
#include "splice.h"
#include "tcp.h"
#include "udp.h"
#include "util.h"

/* IPv4 address blocks, host byte order: network, mask */
#define IP4_BLOCK_THIS_NET	0x00000000U, 0xff000000U	/* 0/8 */
#define IP4_BLOCK_LOOPBACK	0x7f000000U, 0xff000000U	/* 127/8 */
#define IP4_BLOCK_MULTICAST	0xe0000000U, 0xf0000000U	/* 224/4 */
#define IP4_BLOCK_RESERVED	0xf0000000U, 0xf0000000U	/* 240/4 */
#define DNS_PORT		53
/* Bits of the 16-byte form before an IPv4-mapped address's own */
#define INANY_V4_PREFIX		96

/**
 * ip4_in() - tell whether an address is in a block
 * @addr:	address, host byte order
 * @net:	block, host byte order
 * @mask:	block mask, host byte order
 *
 * Return: true if inside
 */
static bool ip4_in(uint32_t addr, uint32_t net, uint32_t mask)
{
	return (addr & mask) == net;
}

/**
 * fwd_ip4_is_loopback() - tell whether an IPv4 address is loopback
 * @addr:	address, network byte order
 *
 * Return: true for 127/8
 */
bool fwd_ip4_is_loopback(uint32_t addr)
{
	return ip4_in(ntohl(addr), IP4_BLOCK_LOOPBACK);
}

/**
 * fwd_is_loopback() - tell whether an address, either family, is loopback
 * @addr:	address
 *
 * Return: true for 127/8 (IPv4-mapped) and ::1
 */
static bool fwd_is_loopback(const union inany_addr *addr)
{
	return inany_is_v4(addr) ? fwd_ip4_is_loopback(inany_v4(addr)) :
				   inany_is_loopback6(addr);
}

/**
 * fwd_prefix_holds() - tell whether a prefix holds an address
 * @prefix:	prefix address, 16 bytes
 * @len:	its length in bits, at most 128
 * @addr:	address
 *
 * Return: true if the first @len bits are the same
 */
static bool fwd_prefix_holds(const uint8_t *prefix, unsigned len,
			     const union inany_addr *addr)
{
	unsigned whole = len / 8, rest = len % 8;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));

	if (memcmp(prefix, addr->a, whole))
		return false;
	return !rest || !((prefix[whole] ^ addr->a[whole]) & mask);
}

/**
 * fwd_rule_after() - the next rule that holds an address
 * @dp:		data plane
 * @addr:	address, either family
 * @prev:	a rule of @dp's, to look after; NULL to look from the first
 *
 * Return: the first rule after @prev whose prefix holds @addr, or NULL
 */
static const struct dp_rule *fwd_rule_after(const struct dp *dp,
					    const union inany_addr *addr,
					    const struct dp_rule *prev)
{
	uint32_t i = prev ? (uint32_t)(prev - dp->cfg.rules) + 1 : 0;

	for (; i < dp->cfg.n_rules; i++) {
		const struct dp_rule *r = &dp->cfg.rules[i];

		if (fwd_prefix_holds(r->addr, r->prefix_len, addr))
			return r;
	}
	return NULL;
}

/**
 * fwd_rule() - the rule that decides where an address leads
 * @dp:		data plane
 * @addr:	address, either family
 *
 * Return: the first rule whose prefix holds @addr, or NULL
 */
static const struct dp_rule *fwd_rule(const struct dp *dp,
				      const union inany_addr *addr)
{
	return fwd_rule_after(dp, addr, NULL);
}

/**
 * fwd_rules_valid() - check the rules of a configuration from Python
 * @cfg:	configuration
 *
 * Return: true if every rule is one fwd.c understands: a known kind, a
 *	   prefix of at most 128 bits (96 at least for an IPv4-mapped one),
 *	   single addresses for DNS and redirects, a redirect's target not
 *	   unspecified
 */
bool fwd_rules_valid(const struct dp_config *cfg)
{
	uint32_t i;

	if (cfg->n_rules > DP_RULES_MAX)
		return false;
	for (i = 0; i < cfg->n_rules; i++) {
		const struct dp_rule *r = &cfg->rules[i];
		union inany_addr a, to;

		memcpy(a.a, r->addr, sizeof(a.a));
		memcpy(to.a, r->to, sizeof(to.a));
		if (r->prefix_len > 128 ||
		    (inany_is_v4(&a) && r->prefix_len < INANY_V4_PREFIX) ||
		    r->kind > DP_RULE_REDIRECT ||
		    (r->kind != DP_RULE_BLOCK && r->prefix_len != 128) ||
		    (r->kind == DP_RULE_REDIRECT && inany_is_unspecified(&to)))
			return false;
	}
	return true;
}

/**
 * fwd_is_local() - tell whether an address is one of ours on the link
 * @dp:		data plane
 * @addr:	address, either family
 *
 * Every packet from the guest asks this of its source (ip4.c and ip6.c drop
 * our own addresses as martians), and nearly every one of the same source.
 * The rules do not change once dp_new() took them, so the last answer is
 * kept (@dp->fwd.local_memo) and given again for the same address without
 * walking the rules.
 *
 * Return: true if the rule that holds it is marked DP_RULE_F_LOCAL
 */
bool fwd_is_local(struct dp *dp, const union inany_addr *addr)
{
	struct fwd_local_memo *m = &dp->fwd.local_memo;
	const struct dp_rule *r;

	if (m->valid && inany_equal(&m->addr, addr))
		return m->local;

	r = fwd_rule(dp, addr);
	m->addr = *addr;
	m->local = r && (r->flags & DP_RULE_F_LOCAL);
	m->valid = true;
	return m->local;
}

/**
 * fwd_host_lo_open() - tell whether a rule leads the guest to the host's
 * loopback (slirp4netns's gateway, pasta's --map-host-loopback)
 * @dp:		data plane
 *
 * Return: true if some redirect's target is a loopback address
 */
bool fwd_host_lo_open(const struct dp *dp)
{
	uint32_t i;

	for (i = 0; i < dp->cfg.n_rules; i++) {
		const struct dp_rule *r = &dp->cfg.rules[i];
		union inany_addr to;

		memcpy(to.a, r->to, sizeof(to.a));
		if (r->kind == DP_RULE_REDIRECT && fwd_is_loopback(&to))
			return true;
	}
	return false;
}

/**
 * fwd_dns_query() - the guest sends to the DNS forwarder
 * @dp:		data plane
 *
 * Python gets DP_NOTICE_DNS_USED, at most every DP_DNS_RECHECK_MS, to look
 * whether the host's resolver changed: so a guest that uses DNS follows the
 * host's, and one that does not costs nothing.
 */
void fwd_dns_query(struct dp *dp)
{
	if (!dp->fwd.dns_notice_ms ||
	    dp->now_ms - dp->fwd.dns_notice_ms >= DP_DNS_RECHECK_MS) {
		dp->fwd.dns_notice_ms = dp->now_ms;
		dp->notices |= DP_NOTICE_DNS_USED;
	}
}

/**
 * fwd_dns_upstream() - the host's nameserver as a socket address, for a new
 * flow to a DNS rule's address
 * @dp:		data plane
 * @sa:		filled with the nameserver's address, port 53
 * @sa_len:	filled with the length of @sa
 *
 * Return: 0, or -1 if there is none the guest may reach
 */
static int fwd_dns_upstream(struct dp *dp, struct sockaddr_storage *sa,
			    socklen_t *sa_len)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	const struct dp_config *c = &dp->cfg;
	union inany_addr up6;

	fwd_dns_query(dp);
	memset(sa, 0, sizeof(*sa));
	if (c->dns_upstream4) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(DNS_PORT);
		sin->sin_addr.s_addr = c->dns_upstream4;
		*sa_len = sizeof(*sin);
		return 0;
	}

	memcpy(up6.a, c->dns_upstream6, sizeof(up6.a));
	if (inany_is_unspecified(&up6))
		return -1;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(DNS_PORT);
	memcpy(&sin6->sin6_addr, up6.a, sizeof(up6.a));
	*sa_len = sizeof(*sin6);
	return 0;
}

/**
 * fwd_unroutable() - tell whether no rule-free destination may be this one
 * @addr:	destination on the host, either family
 *
 * Return: true for IPv4 0/8, loopback, multicast and class E; for IPv6
 *	   multicast, link-local, ::1 and ::/96 (:: and IPv4-compatible)
 */
static bool fwd_unroutable(const union inany_addr *addr)
{
	static const union inany_addr loopback6 = { .a = { [15] = 1 } };
	uint32_t h;

	if (!inany_is_v4(addr))
		return inany_is_multicast6(addr) || inany_is_linklocal6(addr) ||
		       !memcmp(addr->a, loopback6.a, 12);
	h = ntohl(inany_v4(addr));
	return ip4_in(h, IP4_BLOCK_THIS_NET) || ip4_in(h, IP4_BLOCK_LOOPBACK) ||
	       ip4_in(h, IP4_BLOCK_MULTICAST) || ip4_in(h, IP4_BLOCK_RESERVED);
}

/**
 * fwd_sockaddr() - a host socket address for an address and a port
 * @addr:	address, either family
 * @port:	port, host byte order
 * @sa:		filled
 * @sa_len:	filled with the length of @sa
 */
void fwd_sockaddr(const union inany_addr *addr, uint16_t port,
		  struct sockaddr_storage *sa, socklen_t *sa_len)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inany_is_v4(addr)) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = inany_v4(addr);
		*sa_len = sizeof(*sin);
		return;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, addr->a, sizeof(addr->a));
	*sa_len = sizeof(*sin6);
}

/**
 * fwd_guest_to_host() - translate a guest's destination to a host socket
 * address
 * @dp:		data plane
 * @remote:	destination as the guest addressed it
 * @port:	destination port, host byte order (0 for ICMP)
 * @proto:	IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6
 * @sa:		filled with the host address to connect or send to
 * @sa_len:	filled with the length of @sa
 *
 * Return: 0 if the destination is reachable, -1 if the guest may not reach
 *	   it (the caller answers as an unreachable host and counts the drop)
 */
int fwd_guest_to_host(struct dp *dp, const union inany_addr *remote,
		      uint16_t port, uint8_t proto,
		      struct sockaddr_storage *sa, socklen_t *sa_len)
{
	const struct dp_rule *r;
	bool icmp = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;

	if (!inany_is_v4(remote) && !dp->cfg.enable_ipv6)
		return -1;

	/* a DNS rule lets other ports through to the rules after it */
	for (r = fwd_rule(dp, remote); r && r->kind == DP_RULE_DNS;
	     r = fwd_rule_after(dp, remote, r)) {
		if (port == DNS_PORT && !icmp)
			return fwd_dns_upstream(dp, sa, sa_len);
		if (r->flags & DP_RULE_F_DNS_ONLY)
			return -1;
	}
	if (r && r->kind == DP_RULE_BLOCK)
		return -1;
	if (r && r->kind == DP_RULE_REDIRECT) {
		union inany_addr to;

		memcpy(to.a, r->to, sizeof(to.a));
		fwd_sockaddr(&to, port, sa, sa_len);
		return 0;
	}

	if (fwd_unroutable(remote) ||
	    (inany_is_v4(remote) &&
	     inany_v4(remote) == (dp->cfg.net4 | ~dp->cfg.mask4)))
		return -1;
	fwd_sockaddr(remote, port, sa, sa_len);
	return 0;
}

/**
 * fwd_is_dns() - tell whether a guest destination is a DNS forwarder
 * @dp:		data plane
 * @addr:	destination address as the guest wrote it
 * @port:	destination port, host byte order
 *
 * Return: true for port 53 of a DP_RULE_DNS rule's address (an IPv6 one
 *	   only with -6)
 */
bool fwd_is_dns(const struct dp *dp, const union inany_addr *addr,
		uint16_t port)
{
	const struct dp_rule *r;

	if (port != DNS_PORT || (!inany_is_v4(addr) && !dp->cfg.enable_ipv6))
		return false;
	r = fwd_rule(dp, addr);
	return r && r->kind == DP_RULE_DNS;
}

/**
 * dp_dns_upstream() - the host's nameserver changed
 * @dp:		data plane
 * @addr4:	its IPv4 address, network byte order, 0 if it has none
 * @addr6:	16 bytes, its IPv6 address (used without an IPv4 one), all
 *		zero for none; NULL for none
 *
 * New flows to a DNS rule's address go there.  So do the next queries of UDP
 * flows already open: such a flow is closed and opened anew when the guest
 * sends on it again (udp.c), so that answers already on their way from the
 * old nameserver still reach the guest.  TCP connections already open stay
 * with the old one.
 *
 * Return: 0, or -1 with errno EINVAL if @dp is NULL
 */
int dp_dns_upstream(struct dp *dp, uint32_t addr4, const uint8_t *addr6)
{
	if (!dp) {
		errno = EINVAL;
		return -1;
	}
	dp->cfg.dns_upstream4 = addr4;
	memset(dp->cfg.dns_upstream6, 0, sizeof(dp->cfg.dns_upstream6));
	if (addr6)
		memcpy(dp->cfg.dns_upstream6, addr6,
		       sizeof(dp->cfg.dns_upstream6));
	if (!++dp->fwd.dns_gen)
		dp->fwd.dns_gen = 1;
	return 0;
}

/**
 * fwd_bind_outbound() - bind a new host socket to the outbound source address
 * @dp:		data plane
 * @sock:	socket, not yet connected
 * @family:	its address family
 *
 * Return: 0 (also when no outbound address is set for @family), or -1 with
 *	   errno set
 */
int fwd_bind_outbound(const struct dp *dp, int sock, int family)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	union inany_addr out6;

	if (family == AF_INET6) {
		memcpy(out6.a, dp->cfg.outbound6, sizeof(out6.a));
		if (inany_is_unspecified(&out6))
			return 0;
		memcpy(&sin6.sin6_addr, out6.a, sizeof(out6.a));
		return bind(sock, (struct sockaddr *)&sin6, sizeof(sin6));
	}

	if (family != AF_INET || !dp->cfg.outbound4)
		return 0;

	sin.sin_addr.s_addr = dp->cfg.outbound4;
	return bind(sock, (struct sockaddr *)&sin, sizeof(sin));
}

/**
 * fwd_find() - the listener slot of a forward id
 * @dp:		data plane
 * @id:		forward id, as Python numbers them
 *
 * Return: slot, or NULL
 */
static struct fwd_listener *fwd_find(struct dp *dp, int id)
{
	int i;

	for (i = 0; i < DP_FWD_MAX; i++) {
		if (dp->fwd.listeners[i].sock >= 0 && dp->fwd.listeners[i].id == id)
			return &dp->fwd.listeners[i];
	}
	return NULL;
}

/**
 * fwd_init() - allocate the listener slots, every one free
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno ENOMEM
 */
int fwd_init(struct dp *dp)
{
	int i;

	dp->fwd.dns_gen = 1;
	dp->fwd.listeners = calloc(DP_FWD_MAX, sizeof(*dp->fwd.listeners));
	if (!dp->fwd.listeners) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < DP_FWD_MAX; i++)
		dp->fwd.listeners[i].sock = -1;
	return 0;
}

/**
 * fwd_cleanup() - free the listener slots (Python closes the sockets)
 * @dp:		data plane, possibly only partly set up
 */
void fwd_cleanup(struct dp *dp)
{
	free(dp->fwd.listeners);
	dp->fwd.listeners = NULL;
}

/**
 * fwd_epoll_add() - watch a listener for readability
 * @dp:		data plane
 * @l:		listener, @sock set
 *
 * Return: 0, or -1 with errno set
 */
static int fwd_epoll_add(struct dp *dp, const struct fwd_listener *l)
{
	struct epoll_event ev = {
		.events = EPOLLIN,
		.data.u64 = (uint64_t)EPOLL_REF_LISTEN << 56 |
			    (uint64_t)(l - dp->fwd.listeners),
	};

	return epoll_ctl(dp->epoll_fd, EPOLL_CTL_ADD, l->sock, &ev);
}

/**
 * fwd_add() - take a listener slot for a socket
 * @dp:		data plane
 * @id:		forward id, unique
 * @sock:	the socket
 * @proto:	IPPROTO_TCP or IPPROTO_UDP
 * @to:		where it leads: a guest address, or with @splice a host one
 * @to_port:	port there, host byte order
 * @splice:	a socket of the guest's namespace, spliced to the host
 *
 * Return: as dp_fwd_add()
 */
static int fwd_add(struct dp *dp, int id, int sock, int proto,
		   const union inany_addr *to, uint16_t to_port, bool splice)
{
	struct fwd_listener *l = NULL;
	int i;

	if (sock < 0 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
	    !to_port || inany_is_unspecified(to)) {
		errno = EINVAL;
		return -1;
	}
	if (fwd_find(dp, id)) {
		errno = EEXIST;
		return -1;
	}
	for (i = 0; i < DP_FWD_MAX && !l; i++) {
		if (dp->fwd.listeners[i].sock < 0)
			l = &dp->fwd.listeners[i];
	}
	if (!l) {
		errno = ENOSPC;
		return -1;
	}

	l->sock = sock;
	if (fwd_epoll_add(dp, l)) {
		l->sock = -1;
		return -1;
	}
	/* a forwarded UDP port takes bursts for all its clients: the receive
	 * buffer of a guest's own UDP socket, best effort (capped by
	 * net.core.rmem_max) */
	if (proto == IPPROTO_UDP) {
		int rcvbuf = DP_UDP_SOCK_RCVBUF;

		setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
	}

	l->id = id;
	l->proto = (uint8_t)proto;
	l->guest = *to;
	l->guest_port = to_port;
	l->splice = splice;
	l->connections = 0;
	l->paused_until_ms = 0;
	flow_sock_adopt(dp);
	return 0;
}

/**
 * dp_fwd_add() - forward a bound host socket into the guest
 * @dp:		data plane
 * @id:		forward id (Python's), unique
 * @sock:	bound host socket, listening for TCP; Python keeps owning it and
 *		closes it after dp_fwd_remove()
 * @proto:	IPPROTO_TCP or IPPROTO_UDP
 * @guest_addr:	guest address, 16 bytes: IPv6, or IPv4-mapped for IPv4 (an
 *		IPv6 one only with cfg.enable_ipv6)
 * @guest_port:	guest port, host byte order
 *
 * Return: 0, or -1 with errno set (EINVAL, ENOSPC if DP_FWD_MAX are in use,
 *	   EEXIST for a duplicate id, or epoll's error)
 */
int dp_fwd_add(struct dp *dp, int id, int sock, int proto,
	       const uint8_t *guest_addr, uint16_t guest_port)
{
	union inany_addr guest;

	if (!dp || !guest_addr) {
		errno = EINVAL;
		return -1;
	}
	memcpy(guest.a, guest_addr, sizeof(guest.a));
	if (!inany_is_v4(&guest) && (!dp->cfg.enable_ipv6 ||
				     inany_is_multicast6(&guest))) {
		errno = EINVAL;
		return -1;
	}
	return fwd_add(dp, id, sock, proto, &guest, guest_port, false);
}

/**
 * dp_fwd_add_splice() - splice a socket of the guest's namespace to the host
 * @dp:		data plane
 * @id:		forward id (Python's), unique
 * @sock:	socket bound in the guest's namespace (its loopback), listening
 *		for TCP; Python keeps owning it and closes it after
 *		dp_fwd_remove()
 * @proto:	IPPROTO_TCP or IPPROTO_UDP
 * @host_addr:	the host address it leads to, 16 bytes as for dp_fwd_add()
 *		(the host's loopback, for pasta's -T and -U)
 * @host_port:	the host port, host byte order
 *
 * Return: as dp_fwd_add()
 */
int dp_fwd_add_splice(struct dp *dp, int id, int sock, int proto,
		      const uint8_t *host_addr, uint16_t host_port)
{
	union inany_addr host;

	if (!dp || !host_addr) {
		errno = EINVAL;
		return -1;
	}
	memcpy(host.a, host_addr, sizeof(host.a));
	return fwd_add(dp, id, sock, proto, &host, host_port, true);
}

/**
 * fwd_remove() - stop watching a forwarded host socket and free its slot
 * (dp_fwd_remove() in dp.c also forgets the UDP flows replying through it)
 * @dp:		data plane
 * @id:		forward id
 *
 * Return: the socket, still open (Python closes it), or -1 with errno ENOENT
 *	   if there is no such forward
 */
int fwd_remove(struct dp *dp, int id)
{
	struct fwd_listener *l = fwd_find(dp, id);
	int sock;

	if (!l) {
		errno = ENOENT;
		return -1;
	}

	if (!l->paused_until_ms)
		epoll_ctl(dp->epoll_fd, EPOLL_CTL_DEL, l->sock, NULL);
	sock = l->sock;
	flow_sock_release(dp, FLOW_SOCK_FWD);
	l->sock = -1;
	l->paused_until_ms = 0;
	return sock;
}

/**
 * fwd_sa_is_loopback() - tell whether a host socket address is on loopback
 * @sa:		socket address, AF_INET or AF_INET6
 *
 * Return: true for 127/8, ::1 and 127/8 mapped into IPv6
 */
bool fwd_sa_is_loopback(const struct sockaddr_storage *sa)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	union inany_addr a;

	if (sa->ss_family == AF_INET)
		return fwd_ip4_is_loopback(sin->sin_addr.s_addr);
	if (sa->ss_family != AF_INET6)
		return false;
	memcpy(a.a, &sin6->sin6_addr, sizeof(a.a));
	return inany_is_loopback6(&a) ||
	       (inany_is_v4(&a) && fwd_ip4_is_loopback(inany_v4(&a)));
}

/**
 * fwd_redirected_from() - the address of the redirect whose target a host
 * address is
 * @dp:		data plane
 * @host:	address on the host
 * @like:	an address of the family wanted
 * @from:	set to the rule's address
 *
 * Return: true if a redirect of that family leads to @host
 */
static bool fwd_redirected_from(const struct dp *dp,
				const union inany_addr *host,
				const union inany_addr *like,
				union inany_addr *from)
{
	uint32_t i;

	for (i = 0; i < dp->cfg.n_rules; i++) {
		const struct dp_rule *r = &dp->cfg.rules[i];

		memcpy(from->a, r->addr, sizeof(from->a));
		if (r->kind == DP_RULE_REDIRECT &&
		    !memcmp(r->to, host->a, sizeof(host->a)) &&
		    inany_is_v4(from) == inany_is_v4(like))
			return true;
	}
	return false;
}

/**
 * fwd_guest_reaches() - tell whether the guest can answer a host address as
 * it is
 * @dp:		data plane
 * @a:		the address, of the guest's family
 *
 * Return: false for loopback, unspecified, the guest's own address, IPv6
 *	   link-local and blocked addresses
 */
static bool fwd_guest_reaches(const struct dp *dp, const union inany_addr *a)
{
	const struct dp_rule *r = fwd_rule(dp, a);

	if (fwd_is_loopback(a) || inany_is_unspecified(a) ||
	    (r && r->kind == DP_RULE_BLOCK))
		return false;
	if (inany_is_v4(a))
		return inany_v4(a) != dp->cfg.guest4;
	return !inany_is_linklocal6(a) && memcmp(a->a, dp->cfg.guest6, 16);
}

/**
 * fwd_sa_to_inany() - a socket address as a 128-bit address and a port
 * @sa:		socket address, AF_INET or AF_INET6
 * @addr:	set to the address (IPv4-mapped for IPv4)
 * @port:	set to the port, host byte order
 */
void fwd_sa_to_inany(const struct sockaddr_storage *sa,
		     union inany_addr *addr, uint16_t *port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

	if (sa->ss_family == AF_INET) {
		*port = ntohs(sin->sin_port);
		inany_from_v4(addr, sin->sin_addr.s_addr);
	} else {
		*port = ntohs(sin6->sin6_port);
		memcpy(addr->a, &sin6->sin6_addr, sizeof(addr->a));
	}
}

/**
 * fwd_guest_view() - the address and port a host client has in the guest
 * @dp:		data plane
 * @sa:		the client's socket address
 * @guest:	the forward's guest address: the view is of its family
 * @addr:	set to the address the guest sees: a redirect's address if the
 *		client is its target, the gateway if the guest could not answer
 *		the client as it is (fwd_guest_reaches(), or the other family),
 *		else the client's own
 * @port:	set to the client's port, host byte order
 */
void fwd_guest_view(const struct dp *dp, const struct sockaddr_storage *sa,
		    const union inany_addr *guest, union inany_addr *addr,
		    uint16_t *port)
{
	union inany_addr a;

	fwd_sa_to_inany(sa, &a, port);
	if (fwd_redirected_from(dp, &a, guest, addr))
		return;
	if (inany_is_v4(&a) != inany_is_v4(guest) ||
	    !fwd_guest_reaches(dp, &a))
		ip_gateway(dp, guest, addr);
	else
		*addr = a;
}

/**
 * fwd_pause() - stop accepting on a listener for DP_FWD_ACCEPT_PAUSE_MS: there
 * is no descriptor for its next connection, which waits in the backlog
 * @dp:		data plane, @now_ms current
 * @l:		TCP listener, in the epoll set
 */
void fwd_pause(struct dp *dp, struct fwd_listener *l)
{
	epoll_ctl(dp->epoll_fd, EPOLL_CTL_DEL, l->sock, NULL);
	l->paused_until_ms = dp->now_ms + DP_FWD_ACCEPT_PAUSE_MS;
	if (!dp->fwd.deadline_ms || l->paused_until_ms < dp->fwd.deadline_ms)
		dp->fwd.deadline_ms = l->paused_until_ms;
	DP_COUNT(dp, fwd_accept_paused);
	flow_sock_short(dp);
}

/**
 * fwd_timer() - put listeners whose pause is over back in the epoll set
 * @dp:		data plane, @now_ms current
 *
 * One that epoll refuses stays paused for another DP_FWD_ACCEPT_PAUSE_MS.
 * Runs at most once per pause: DP_FWD_MAX slots looked at.
 */
void fwd_timer(struct dp *dp)
{
	uint64_t next = 0;
	int i;

	for (i = 0; i < DP_FWD_MAX; i++) {
		struct fwd_listener *l = &dp->fwd.listeners[i];

		if (l->sock < 0 || !l->paused_until_ms)
			continue;
		if (l->paused_until_ms <= dp->now_ms) {
			if (fwd_epoll_add(dp, l))
				l->paused_until_ms = dp->now_ms +
						     DP_FWD_ACCEPT_PAUSE_MS;
			else
				l->paused_until_ms = 0;
		}
		if (l->paused_until_ms && (!next || l->paused_until_ms < next))
			next = l->paused_until_ms;
	}
	dp->fwd.deadline_ms = next;
}

/**
 * fwd_sock_event() - a forwarded host socket is readable
 * @dp:		data plane
 * @index:	listener slot
 */
void fwd_sock_event(struct dp *dp, uint32_t index)
{
	struct fwd_listener *l;
	int n;

	if (index >= DP_FWD_MAX || dp->fwd.listeners[index].sock < 0)
		return;
	l = &dp->fwd.listeners[index];

	if (l->proto == IPPROTO_UDP) {
		udp_listener_input(dp, l);
		return;
	}
	if (l->splice) {
		splice_accept(dp, l);
		return;
	}

	for (n = 0; n < DP_FWD_ACCEPT_BATCH; n++) {
		struct sockaddr_storage sa;
		socklen_t sa_len = sizeof(sa);
		union inany_addr src;
		uint16_t src_port;
		int fd;

		/* only the first accept knows a connection waits */
		fd = flow_sock_accept(dp, l->sock, (struct sockaddr *)&sa,
				      &sa_len, !n);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				DP_COUNT(dp, fwd_accept_errors);
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* out of descriptors or memory for a connection that
			 * stays queued and would wake us at once again; later
			 * in the batch, the next wake-up finds out */
			if (!n && (errno == EMFILE || errno == ENFILE ||
				   errno == ENOBUFS || errno == ENOMEM))
				fwd_pause(dp, l);
			break;
		}

		DP_COUNT(dp, fwd_tcp_accepted);
		if (nslo_enabled(dp) && fwd_sa_is_loopback(&sa)) {
			splice_from_host(dp, l, fd, &sa);	/* counts it in l */
			continue;
		}
		l->connections++;
		fwd_guest_view(dp, &sa, &l->guest, &src, &src_port);
		tcp_conn_from_host(dp, fd, &src, src_port, &l->guest,
				   l->guest_port);
	}
}

/**
 * dp_fwd_connections() - how many connections (TCP) or flows (UDP) a forward
 * has brought into the guest
 * @dp:		data plane
 * @id:		forward id
 *
 * Return: the count, or -1 if there is no such forward
 */
int64_t dp_fwd_connections(struct dp *dp, int id)
{
	struct fwd_listener *l = dp ? fwd_find(dp, id) : NULL;

	return l ? (int64_t)l->connections : -1;
}
