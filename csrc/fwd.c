/* fwd.c - the address map: where a guest's destination goes on the host
 *
 * Theory of operation
 * -------------------
 * The guest sees a small virtual network (slirp4netns's, by default
 * 10.0.2.0/24) in which two addresses are special.  Translation happens when
 * a flow opens its host socket, and only there; every frame to the guest keeps
 * the address the guest used, so the guest never sees the host's addresses:
 *
 * - the gateway (network+2) is the host itself: its 127.0.0.1, unless the
 *   configuration disables host loopback, in which case it reaches nothing.
 * - the DNS address (network+3), port 53, UDP and TCP, is the first
 *   nameserver of the host's /etc/resolv.conf (cfg.dns_upstream4, found by
 *   Python), also when that nameserver is on the host's loopback
 *   (systemd-resolved's 127.0.0.53, dnsmasq's 127.0.0.1) and host loopback
 *   is disabled: slirp4netns forwards DNS there too, and podman and
 *   rootlesskit, which pass --disable-host-loopback by default, depend on
 *   it.  That one port of that one address is the only way to the host's
 *   loopback the flag leaves open.  Other ports of the DNS address reach
 *   nothing.
 * - any other address in the virtual network, loopback, multicast,
 *   broadcast, "this network" (0/8) and class E reach nothing.
 * - everything else is itself: the host connects to it.
 *
 * With -6 the IPv6 addresses work the same way: the IPv6 gateway (fd00::2)
 * is the host's ::1 unless host loopback is disabled, the IPv6 DNS address
 * (fd00::3) port 53 is the host's nameserver, and the rest of the prefix,
 * ::, ::1, multicast, link-local, IPv4-mapped and IPv4-compatible addresses
 * reach nothing.  Either DNS address forwards to the first IPv4 nameserver
 * (cfg.dns_upstream4), or if there is none to the first IPv6 one
 * (cfg.dns_upstream6): the host socket's family need not be the guest's.
 *
 * Host sockets that flows open bind first to cfg.outbound4 (IPv4 sockets,
 * --outbound-addr) or cfg.outbound6 (IPv6, --outbound-addr6) when set:
 * fwd_bind_outbound().
 *
 * Port forwarding goes the other way.  Python binds a host socket for each
 * forward (add_hostfwd, --publish) and registers it here with dp_fwd_add():
 * up to DP_FWD_MAX listeners, each in the epoll set as EPOLL_REF_LISTEN.  A
 * TCP listener's new connections are accepted in a batch and opened into the
 * guest by tcp.c (tcp_conn_from_host()); a UDP listener's datagrams go to
 * udp.c (udp_fwd_input(), which counts the flows it starts in the listener's
 * @connections, as fwd.c counts accepted connections).  The guest sees the
 * host client as the gateway when it is on the host's loopback, and with its
 * own address otherwise, so servers in the guest see real client addresses.
 * A forward into an IPv6 guest address shows clients it could not answer
 * directly (IPv4 ones, link-local ones) as the IPv6 gateway; one into an IPv4
 * address shows IPv6 clients as the IPv4 gateway.
 *
 * Limits
 * ------
 * DP_FWD_MAX listeners; DP_FWD_ACCEPT_BATCH connections accepted from one per
 * wake-up.  Listeners and accepted connections count against the forwards'
 * share of the socket budget (flow.c, Host sockets), which keeps
 * DP_SOCK_FWD_RESERVE sockets that the guest's own flows cannot take.  When
 * no descriptor can be had for a connection even after recycling an idle
 * flow (the budget is used up, or accept4() says EMFILE or ENFILE, and the
 * connection stays in the listen backlog), the listener leaves the epoll set
 * for DP_FWD_ACCEPT_PAUSE_MS (fwd_accept_paused) and fwd_timer() puts it
 * back: level-triggered, it would otherwise wake the loop at once, forever.
 * Only the first accept of a wake-up, for the connection epoll reported,
 * may recycle a flow or pause; a later one that finds no room ends the
 * batch, and the next wake-up starts afresh.
 */

#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dp.h"

/* IPv4 address blocks, host byte order: network, mask */
#define IP4_BLOCK_THIS_NET	0x00000000U, 0xff000000U	/* 0/8 */
#define IP4_BLOCK_LOOPBACK	0x7f000000U, 0xff000000U	/* 127/8 */
#define IP4_BLOCK_MULTICAST	0xe0000000U, 0xf0000000U	/* 224/4 */
#define IP4_BLOCK_RESERVED	0xf0000000U, 0xf0000000U	/* 240/4 */
#define DNS_PORT		53

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
 * fwd_in_net6() - tell whether an address is inside the guest's IPv6 prefix
 * @dp:		data plane
 * @addr:	IPv6 address
 *
 * Return: true if its first 64 bits are cfg.net6's
 */
bool fwd_in_net6(const struct dp *dp, const union inany_addr *addr)
{
	return !memcmp(addr->a, dp->cfg.net6, 8);
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
	if (!dp->dns_notice_ms ||
	    dp->now_ms - dp->dns_notice_ms >= DP_DNS_RECHECK_MS) {
		dp->dns_notice_ms = dp->now_ms;
		dp->notices |= DP_NOTICE_DNS_USED;
	}
}

/**
 * fwd_dns_upstream() - the host's nameserver as a socket address, for a new
 * flow to the DNS address
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
 * fwd_guest_to_host6() - translate a guest's IPv6 destination to a host
 * socket address
 * @dp:		data plane
 * @remote:	destination as the guest addressed it, not IPv4-mapped
 * @port:	destination port, host byte order (0 for ICMPv6)
 * @proto:	IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMPV6
 * @sa:		filled with the host address to connect or send to
 * @sa_len:	filled with the length of @sa
 *
 * Return: 0 if the destination is reachable, -1 if not
 */
static int fwd_guest_to_host6(struct dp *dp,
			      const union inany_addr *remote, uint16_t port,
			      uint8_t proto, struct sockaddr_storage *sa,
			      socklen_t *sa_len)
{
	static const union inany_addr loopback = { .a = { [15] = 1 } };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
	const struct dp_config *c = &dp->cfg;
	union inany_addr daddr = *remote;

	if (!c->enable_ipv6)
		return -1;

	if (!memcmp(remote->a, c->gw6, sizeof(remote->a))) {
		if (c->disable_host_loopback)
			return -1;
		daddr = loopback;
	} else if (!memcmp(remote->a, c->dns6, sizeof(remote->a))) {
		if (c->disable_dns || port != DNS_PORT ||
		    proto == IPPROTO_ICMPV6)
			return -1;
		return fwd_dns_upstream(dp, sa, sa_len);
	} else if (fwd_in_net6(dp, remote) || inany_is_multicast6(remote) ||
		   inany_is_linklocal6(remote) || inany_is_loopback6(remote) ||
		   !memcmp(remote->a, loopback.a, 12)) {
		return -1;	/* the last: ::/96, :: and IPv4-compatible */
	}

	memset(sa, 0, sizeof(*sa));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, daddr.a, sizeof(daddr.a));
	*sa_len = sizeof(*sin6);
	return 0;
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
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	const struct dp_config *c = &dp->cfg;
	uint32_t daddr, h;

	if (!inany_is_v4(remote))
		return fwd_guest_to_host6(dp, remote, port, proto, sa, sa_len);

	daddr = inany_v4(remote);
	h = ntohl(daddr);

	if (daddr == c->gw4) {
		if (c->disable_host_loopback)
			return -1;
		daddr = htonl(INADDR_LOOPBACK);
	} else if (daddr == c->dns4) {
		if (c->disable_dns || port != DNS_PORT || proto == IPPROTO_ICMP)
			return -1;
		return fwd_dns_upstream(dp, sa, sa_len);
	} else if ((daddr & c->mask4) == c->net4 ||
		   ip4_in(h, IP4_BLOCK_THIS_NET) ||
		   ip4_in(h, IP4_BLOCK_LOOPBACK) ||
		   ip4_in(h, IP4_BLOCK_MULTICAST) ||
		   ip4_in(h, IP4_BLOCK_RESERVED)) {
		return -1;
	}

	memset(sa, 0, sizeof(*sa));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = daddr;
	*sa_len = sizeof(*sin);
	return 0;
}

/**
 * fwd_is_dns() - tell whether a guest destination is the DNS forwarder
 * @dp:		data plane
 * @addr:	destination address as the guest wrote it
 * @port:	destination port, host byte order
 *
 * Return: true for port 53 of the DNS address (IPv4, or IPv6 with -6),
 *	   unless the forwarder is disabled
 */
bool fwd_is_dns(const struct dp *dp, const union inany_addr *addr,
		uint16_t port)
{
	const struct dp_config *c = &dp->cfg;

	if (port != DNS_PORT || c->disable_dns)
		return false;
	if (inany_is_v4(addr))
		return inany_v4(addr) == c->dns4;
	return c->enable_ipv6 && !memcmp(addr->a, c->dns6, sizeof(addr->a));
}

/**
 * dp_dns_upstream() - the host's nameserver changed
 * @dp:		data plane
 * @addr4:	its IPv4 address, network byte order, 0 if it has none
 * @addr6:	16 bytes, its IPv6 address (used without an IPv4 one), all
 *		zero for none; NULL for none
 *
 * New flows to the DNS address go there.  So do the next queries of UDP
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
	if (!++dp->dns_gen)
		dp->dns_gen = 1;
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
		if (dp->fwd[i].sock >= 0 && dp->fwd[i].id == id)
			return &dp->fwd[i];
	}
	return NULL;
}

/**
 * fwd_init() - mark every listener slot free
 * @dp:		data plane
 */
void fwd_init(struct dp *dp)
{
	int i;

	for (i = 0; i < DP_FWD_MAX; i++)
		dp->fwd[i].sock = -1;
	dp->dns_gen = 1;
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
			    (uint64_t)(l - dp->fwd),
	};

	return epoll_ctl(dp->epoll_fd, EPOLL_CTL_ADD, l->sock, &ev);
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
	struct fwd_listener *l = NULL;
	union inany_addr guest;
	int i;

	if (!dp || !guest_addr) {
		errno = EINVAL;
		return -1;
	}
	memcpy(guest.a, guest_addr, sizeof(guest.a));
	if (sock < 0 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
	    !guest_port || inany_is_unspecified(&guest) ||
	    (!inany_is_v4(&guest) && (!dp->cfg.enable_ipv6 ||
				      inany_is_multicast6(&guest)))) {
		errno = EINVAL;
		return -1;
	}
	if (fwd_find(dp, id)) {
		errno = EEXIST;
		return -1;
	}
	for (i = 0; i < DP_FWD_MAX && !l; i++) {
		if (dp->fwd[i].sock < 0)
			l = &dp->fwd[i];
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

	l->id = id;
	l->proto = (uint8_t)proto;
	l->guest = guest;
	l->guest_port = guest_port;
	l->connections = 0;
	l->paused_until_ms = 0;
	flow_sock_adopt(dp);
	return 0;
}

/**
 * dp_fwd_remove() - stop forwarding a host socket (TCP connections already
 * accepted stay; UDP flows replying through it are freed: udp_fwd_forget())
 * @dp:		data plane
 * @id:		forward id
 *
 * Return: 0, or -1 with errno ENOENT if there is no such forward
 */
int dp_fwd_remove(struct dp *dp, int id)
{
	struct fwd_listener *l = dp ? fwd_find(dp, id) : NULL;

	if (!l) {
		errno = ENOENT;
		return -1;
	}

	if (!l->paused_until_ms)
		epoll_ctl(dp->epoll_fd, EPOLL_CTL_DEL, l->sock, NULL);
	udp_fwd_forget(dp, l->sock);
	flow_sock_release(dp, FLOW_SOCK_FWD);
	l->sock = -1;
	l->paused_until_ms = 0;
	return 0;
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
 * fwd_guest_view() - the address and port a host client has in the guest
 * @dp:		data plane
 * @sa:		the client's socket address
 * @guest:	the forward's guest address: the view is of its family
 * @addr:	set to the address the guest sees: the gateway for the host's
 *		loopback and for clients the guest could not answer directly
 *		(the other family, IPv6 link-local), else the client's own
 * @port:	set to the client's port, host byte order
 */
void fwd_guest_view(const struct dp *dp, const struct sockaddr_storage *sa,
		    const union inany_addr *guest, union inany_addr *addr,
		    uint16_t *port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	union inany_addr a;

	if (sa->ss_family == AF_INET) {
		*port = ntohs(sin->sin_port);
		inany_from_v4(&a, sin->sin_addr.s_addr);
	} else {
		*port = ntohs(sin6->sin6_port);
		memcpy(a.a, &sin6->sin6_addr, sizeof(a.a));
	}

	if (inany_is_v4(guest)) {
		if (!inany_is_v4(&a) || fwd_ip4_is_loopback(inany_v4(&a)))
			inany_from_v4(&a, dp->cfg.gw4);
	} else if (inany_is_v4(&a) || inany_is_loopback6(&a) ||
		   inany_is_linklocal6(&a) || fwd_in_net6(dp, &a)) {
		memcpy(a.a, dp->cfg.gw6, sizeof(a.a));
	}
	*addr = a;
}

/**
 * fwd_pause() - stop accepting on a listener for DP_FWD_ACCEPT_PAUSE_MS: there
 * is no descriptor for its next connection, which waits in the backlog
 * @dp:		data plane, @now_ms current
 * @l:		TCP listener, in the epoll set
 */
static void fwd_pause(struct dp *dp, struct fwd_listener *l)
{
	epoll_ctl(dp->epoll_fd, EPOLL_CTL_DEL, l->sock, NULL);
	l->paused_until_ms = dp->now_ms + DP_FWD_ACCEPT_PAUSE_MS;
	if (!dp->fwd_deadline_ms || l->paused_until_ms < dp->fwd_deadline_ms)
		dp->fwd_deadline_ms = l->paused_until_ms;
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
		struct fwd_listener *l = &dp->fwd[i];

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
	dp->fwd_deadline_ms = next;
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

	if (index >= DP_FWD_MAX || dp->fwd[index].sock < 0)
		return;
	l = &dp->fwd[index];

	if (l->proto == IPPROTO_UDP) {
		udp_fwd_input(dp, l);
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

		fwd_guest_view(dp, &sa, &l->guest, &src, &src_port);
		DP_COUNT(dp, fwd_tcp_accepted);
		l->connections++;
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
