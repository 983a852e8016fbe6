/* udp.c - UDP between the guest and host sockets
 *
 * Theory of operation
 * -------------------
 * Every (guest address and port, remote address and port) pair the guest
 * sends from is a flow (flow.c) with its own *connected* host UDP socket:
 *
 * - guest to host: udp_input() checks the datagram (header, length, checksum),
 *   finds its flow or opens one, and send()s the payload on the flow's socket.
 *   A new flow asks fwd.c where the remote address leads: the gateway to the
 *   host's 127.0.0.1, the DNS address's port 53 to the host's nameserver,
 *   anything else to itself.  A destination the guest may not reach is a
 *   counted drop (drop_unreachable), answered with an ICMP port unreachable
 *   from our own addresses or host unreachable from the gateway otherwise, so
 *   that the guest's application fails at once instead of timing out.
 * - host to guest: the socket is connected, so the kernel only delivers
 *   datagrams from the address and port we connected to.  They go back to the
 *   guest from the remote address and port *as the guest wrote them* (the
 *   flow key): a reply from the host's 127.0.0.1 comes from the gateway, a
 *   nameserver's from the DNS address.  udp_sock_event() reads up to
 *   DP_UDP_RECV_BATCH datagrams per recvmmsg(), DP_UDP_RECV_ROUNDS times per
 *   event, into buffers with room for a UDP header in front of the payload,
 *   writes the header there, and hands the packet to ip_tx_l4(), which
 *   fragments it to the guest's MTU when it is larger.
 * - errors: the sockets have IP_RECVERR (IPV6_RECVERR) set.  When the host
 *   answers one of our datagrams with an ICMP destination unreachable (nobody
 *   listens on that port...), the error queue says which, epoll says
 *   EPOLLERR, and we relay the same ICMP error to the guest (ICMPv6 for an
 *   IPv6 guest), quoting the datagram as the guest sent it, so its connected
 *   socket sees ECONNREFUSED as it would on a real network.  Fragmentation
 *   needed is not relayed: we reassemble and fragment for the guest, its path
 *   MTU is not the host's.
 * - port forwarding (add_hostfwd, --publish): Python binds an unconnected
 *   host socket per UDP forward and owns it; fwd.c calls
 *   udp_listener_input() when it is readable.  It reads DP_UDP_RECV_BATCH
 *   datagrams per recvmmsg(), with their sources, and relays each to the
 *   forward's guest address and port.
 *   Each host client (source address and port) is a flow keyed as the guest
 *   sees it (fwd_guest_view(): the host's loopback is the gateway, other
 *   addresses of the guest's family stay themselves) and counted in the forward's
 *   @connections.  Such a flow has no socket of its own (@sock is -1):
 *   struct udp_flow holds the forward's socket and the client's real
 *   address, and the guest's replies leave with sendto() through the
 *   forward's socket, so the client hears them from the port it sent to.
 *   Nothing here closes that socket; when the forward is removed,
 *   udp_fwd_forget() frees its flows before Python closes it.
 * - the guest's loopback to the host's (pasta's -U): a socket bound inside
 *   the guest's namespace is registered like a forward (splice set, fwd.c);
 *   udp_listener_input() reads its datagrams with their sources and sends each
 *   on the flow of its client: a connected host socket to the host address
 *   and port of the forward (the host's loopback), counted in the forwards'
 *   share of the socket budget.  The host's answers on that socket go back
 *   with sendto() through the namespace's socket, to the client, from the
 *   port it sent to; no frame crosses the TAP either way.
 * - life: a flow lives while datagrams pass in either direction and is closed
 *   DP_UDP_IDLE_MS after the last one (DP_UDP_DNS_IDLE_MS for port 53, where a
 *   query rarely has a follow-up), or cfg.udp_idle_ms if set; forwarded flows
 *   alike, without the DNS case, except that when no rule leads the guest to
 *   the host's loopback (fwd_host_lo_open(): --disable-host-loopback,
 *   pasta's --no-map-gw) a forwarded flow of a client on the host's
 *   loopback lives on the client's datagrams only: else the guest alone could keep a way to 127.0.0.1:PORT
 *   open for as long as it likes, whoever has that port by then.  The timer is armed once and checked against
 *   the last activity when it fires, so traffic does not touch the timer.
 *
 * Checksums: a guest datagram with a wrong checksum is dropped; a zero
 * checksum means "none" for IPv4.  Ours are always computed.
 *
 * Limits
 * ------
 * One socket per flow the guest starts, none for forwarded flows; flows
 * limited by DP_FLOW_MAX, their sockets by the guest's share of the socket
 * budget (flow.c, Host sockets).  When that share is used up, or socket()
 * says EMFILE or ENFILE, a new flow takes the socket of the least recently
 * used UDP or ping flow idle for DP_SOCK_RECYCLE_IDLE_MS (flow_touch() keeps
 * the order at every datagram, both ways); if there is none, the datagram is
 * counted under drop_udp_socket.
 * Datagrams up to 65507 bytes of payload both ways: receive buffers are
 * DP_UDP_RECV_BATCH of DP_UDP_BUF bytes, allocated once in udp_init(); a
 * larger host datagram (IPv6 jumbograms only) is dropped as
 * drop_udp_truncated.  Guest datagrams go out with one send() each.
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/errqueue.h>

#include "dp.h"

/* UDP header: source port, destination port, length, checksum */
#define UDP_HLEN		8
#define UDP_OFF_SPORT		0
#define UDP_OFF_DPORT		2
#define UDP_OFF_LEN		4
#define UDP_OFF_CSUM		6

#define UDP_DNS_PORT		53

/* ICMP destination unreachable codes we send or relay */
#define ICMP_UNREACH_HOST	1
#define ICMP_UNREACH_PORT	3
#define ICMP_UNREACH_NEEDFRAG	4
#define ICMP_DEST_UNREACH	3
/* ICMPv6 destination unreachable (host IPv6 sockets), port unreachable code */
#define ICMP6_DEST_UNREACH	1
#define ICMP6_UNREACH_PORT	4

/**
 * udp_init() - allocate the receive buffers of UDP and ping sockets
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno set
 */
int udp_init(struct dp *dp)
{
	dp->udp_buf = malloc((size_t)DP_UDP_RECV_BATCH * DP_UDP_BUF);
	if (!dp->udp_buf) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/**
 * udp_cleanup() - free the receive buffers
 * @dp:		data plane, possibly only partly set up
 */
void udp_cleanup(struct dp *dp)
{
	free(dp->udp_buf);
	dp->udp_buf = NULL;
}

/**
 * udp_rx_data() - where datagram @i of the last udp_recv_batch() is
 * @dp:		data plane
 * @i:		index, below DP_UDP_RECV_BATCH
 *
 * Return: start of the payload; UDP_HLEN bytes before it are free for a header
 */
uint8_t *udp_rx_data(struct dp *dp, int i)
{
	return dp->udp_buf + (size_t)i * DP_UDP_BUF + UDP_HLEN;
}

/**
 * udp_recv_batch_from() - read datagrams and, if asked, their sources with one
 * recvmmsg()
 * @dp:		data plane
 * @fd:		UDP or ping socket, non-blocking
 * @names:	DP_UDP_RECV_BATCH source addresses to fill, or NULL
 * @name_lens:	their lengths, filled with @names (NULL without @names)
 *
 * Lengths go to @dp->udp_rx_len, SIZE_MAX for a datagram that did not fit
 * (counted as drop_udp_truncated; skip it).
 *
 * Return: number of datagrams read, 0 if none was waiting, -1 with errno set
 *	   on other errors
 */
static int udp_recv_batch_from(struct dp *dp, int fd,
			       struct sockaddr_storage *names,
			       socklen_t *name_lens)
{
	struct mmsghdr mm[DP_UDP_RECV_BATCH];
	struct iovec iov[DP_UDP_RECV_BATCH];
	int i, n;

	memset(mm, 0, sizeof(mm));
	for (i = 0; i < DP_UDP_RECV_BATCH; i++) {
		iov[i].iov_base = udp_rx_data(dp, i);
		iov[i].iov_len = DP_UDP_BUF - UDP_HLEN;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		if (names) {
			mm[i].msg_hdr.msg_name = &names[i];
			mm[i].msg_hdr.msg_namelen = sizeof(names[i]);
		}
	}

	do
		n = recvmmsg(fd, mm, DP_UDP_RECV_BATCH, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;

	for (i = 0; i < n; i++) {
		dp->udp_rx_len[i] = mm[i].msg_len;
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC) {
			DP_COUNT(dp, drop_udp_truncated);
			dp->udp_rx_len[i] = SIZE_MAX;
		}
		if (names)
			name_lens[i] = mm[i].msg_hdr.msg_namelen;
	}

	return n;
}

/**
 * udp_recv_batch() - read datagrams from a socket with one recvmmsg()
 * @dp:		data plane
 * @fd:		UDP or ping socket, non-blocking
 *
 * Lengths go to @dp->udp_rx_len, SIZE_MAX for a datagram that did not fit
 * (counted as drop_udp_truncated; skip it).
 *
 * Return: number of datagrams read, 0 if none was waiting, -1 with errno set
 *	   on other errors
 */
int udp_recv_batch(struct dp *dp, int fd)
{
	return udp_recv_batch_from(dp, fd, NULL, NULL);
}

/**
 * udp_unreach() - answer a datagram the guest may not send with ICMP
 * @dp:		data plane
 * @p:		the datagram, header checked
 * @len:	its UDP length
 *
 * Port unreachable from our own addresses (nothing listens there), host
 * unreachable from the gateway for anything else.
 */
static void udp_unreach(struct dp *dp, const struct l4_pkt *p, size_t len)
{
	union inany_addr gw;
	bool local = ip_is_local(dp, &p->dst);

	ip_gateway(dp, &p->dst, &gw);
	icmp_tx_unreach(dp, local ? &p->dst : &gw, &p->src, &p->dst,
			IPPROTO_UDP, p->l4, len,
			local ? ICMP_UNREACH_PORT : ICMP_UNREACH_HOST, 0);
}

/**
 * udp_flow_idle_start() - set a new flow's idle timeout and arm its timer
 * @dp:		data plane
 * @f:		new UDP flow
 * @dns:	true for a flow to a nameserver (port 53), closed sooner
 */
static void udp_flow_idle_start(struct dp *dp, struct flow *f, bool dns)
{
	if (dp->cfg.udp_idle_ms)
		f->udp.idle_ms = dp->cfg.udp_idle_ms;
	else if (dns)
		f->udp.idle_ms = DP_UDP_DNS_IDLE_MS;
	else
		f->udp.idle_ms = DP_UDP_IDLE_MS;
	f->udp.last_ms = dp->now_ms;
	flow_touch(dp, f);
	flow_timer_set(dp, f, dp->now_ms + f->udp.idle_ms);
}

/**
 * udp_flow_open() - open the host socket of a new flow
 * @dp:		data plane
 * @p:		first datagram of the flow, header checked
 * @len:	its UDP length
 * @key:	flow key
 *
 * Return: the flow, or NULL if the datagram is dropped (counted)
 */
static struct flow *udp_flow_open(struct dp *dp, const struct l4_pkt *p,
				  size_t len, const struct flow_key *key)
{
	struct sockaddr_storage sa;
	socklen_t sa_len;
	struct flow *f;
	int s, one = 1;

	if (fwd_guest_to_host(dp, &p->dst, key->remote_port, IPPROTO_UDP,
			      &sa, &sa_len)) {
		DP_COUNT(dp, drop_unreachable);
		udp_unreach(dp, p, len);
		return NULL;
	}

	/* none to be had even after recycling an idle flow: a drop */
	s = flow_sock_open(dp, sa.ss_family,
			   SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			   IPPROTO_UDP);
	if (s < 0) {
		DP_COUNT(dp, drop_udp_socket);
		return NULL;
	}

	if (setsockopt(s, sa.ss_family == AF_INET ? SOL_IP : SOL_IPV6,
		       sa.ss_family == AF_INET ? IP_RECVERR : IPV6_RECVERR,
		       &one, sizeof(one)) ||
	    fwd_bind_outbound(dp, s, sa.ss_family) ||
	    connect(s, (struct sockaddr *)&sa, sa_len)) {
		DP_COUNT(dp, drop_udp_socket);
		flow_sock_close(dp, s, FLOW_SOCK_GUEST);
		return NULL;
	}

	f = flow_alloc(dp, FLOW_UDP, key);
	if (!f) {
		flow_sock_close(dp, s, FLOW_SOCK_GUEST);
		return NULL;
	}
	f->sock = s;
	f->udp.fwd_sock = -1;
	f->udp.dns_gen = fwd_is_dns(dp, &p->dst, key->remote_port) ?
			 dp->dns_gen : 0;

	if (flow_epoll_set(dp, f, EPOLLIN)) {
		DP_COUNT(dp, drop_udp_socket);
		flow_free(dp, f);
		return NULL;
	}

	udp_flow_idle_start(dp, f, key->remote_port == UDP_DNS_PORT);
	return f;
}

/**
 * udp_input() - handle one UDP datagram from the guest
 * @dp:		data plane
 * @p:		validated IP packet carrying it (reassembled if it was
 *		fragmented)
 */
void udp_input(struct dp *dp, const struct l4_pkt *p)
{
	uint16_t sport, dport, sum;
	struct flow_key key;
	struct flow *f;
	size_t len;

	if (p->l4_len < UDP_HLEN) {
		DP_COUNT(dp, drop_udp_malformed);
		return;
	}

	len = rd16(p->l4 + UDP_OFF_LEN);
	sport = rd16(p->l4 + UDP_OFF_SPORT);
	dport = rd16(p->l4 + UDP_OFF_DPORT);
	if (len < UDP_HLEN || len > p->l4_len || !sport || !dport) {
		DP_COUNT(dp, drop_udp_malformed);
		return;
	}

	/* zero: no checksum, allowed for IPv4 only (RFC 768, RFC 8200); a
	 * partial sum left to us by checksum offload (tap.c) is not checked */
	memcpy(&sum, p->l4 + UDP_OFF_CSUM, sizeof(sum));
	switch (tap_rx_l4_csum(dp, p->l4, UDP_OFF_CSUM, false)) {
	case TAP_CSUM_BAD:
		return;
	case TAP_CSUM_VERIFY:
		if ((sum || !inany_is_v4(&p->src)) &&
		    csum(p->l4, len, ip_pseudo_csum(&p->src, &p->dst,
						    IPPROTO_UDP, len))) {
			DP_COUNT(dp, drop_udp_checksum);
			return;
		}
		break;
	}

	flow_key_fill(&key, IPPROTO_UDP, &p->src, sport, &p->dst, dport);
	f = flow_lookup(dp, &key);
	if (f && f->udp.dns_gen) {
		fwd_dns_query(dp);
		if (f->udp.dns_gen != dp->dns_gen) {
			flow_free(dp, f);	/* the host's nameserver changed */
			f = NULL;
		}
	}
	if (!f) {
		f = udp_flow_open(dp, p, len, &key);
		if (!f)
			return;
	}

	if (!f->udp.client_lo)
		f->udp.last_ms = dp->now_ms;
	flow_touch(dp, f);
	if (f->sock >= 0) {
		if (send(f->sock, p->l4 + UDP_HLEN, len - UDP_HLEN,
			 MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			DP_COUNT(dp, drop_udp_send);
	} else if (sendto(f->udp.fwd_sock, p->l4 + UDP_HLEN, len - UDP_HLEN,
			  MSG_DONTWAIT | MSG_NOSIGNAL, &f->udp.peer.sa,
			  f->udp.peer_len) < 0) {
		DP_COUNT(dp, drop_udp_send);	/* a reply to a forward's client */
	}
}

/**
 * udp_tx_guest() - send a datagram from a flow's socket to the guest
 * @dp:		data plane
 * @f:		flow
 * @data:	payload, with UDP_HLEN free bytes before it
 * @len:	payload length
 */
static void udp_tx_guest(struct dp *dp, const struct flow *f, uint8_t *data,
			 size_t len)
{
	const union inany_addr *src = &f->key.remote_addr;
	const union inany_addr *dst = &f->key.guest_addr;
	uint8_t *h = data - UDP_HLEN;
	size_t l4_len = UDP_HLEN + len;
	uint16_t sum;

	wr16(h + UDP_OFF_SPORT, f->key.remote_port);
	wr16(h + UDP_OFF_DPORT, f->key.guest_port);
	wr16(h + UDP_OFF_LEN, (uint16_t)l4_len);
	wr16(h + UDP_OFF_CSUM, 0);
	sum = csum(h, l4_len, ip_pseudo_csum(src, dst, IPPROTO_UDP, l4_len));
	if (!sum)
		sum = 0xffff;	/* zero would mean "no checksum" */
	memcpy(h + UDP_OFF_CSUM, &sum, sizeof(sum));

	ip_tx_l4(dp, src, dst, IPPROTO_UDP, h, l4_len);
}

/**
 * udp_err_code() - the ICMP unreachable code to relay for a socket error
 * @ee:		extended error from the socket's error queue, or NULL
 *
 * Return: ICMPv4 destination unreachable code (icmp_tx_unreach() maps it for
 *	   IPv6 guests), or -1 if the error is not relayed: not a destination
 *	   unreachable, or fragmentation needed
 */
static int udp_err_code(const struct sock_extended_err *ee)
{
	if (!ee)
		return -1;
	if (ee->ee_origin == SO_EE_ORIGIN_ICMP6 &&
	    ee->ee_type == ICMP6_DEST_UNREACH)
		return ee->ee_code == ICMP6_UNREACH_PORT ? ICMP_UNREACH_PORT :
							   ICMP_UNREACH_HOST;
	if (ee->ee_origin != SO_EE_ORIGIN_ICMP ||
	    ee->ee_type != ICMP_DEST_UNREACH ||
	    ee->ee_code == ICMP_UNREACH_NEEDFRAG)
		return -1;
	return ee->ee_code;
}

/**
 * udp_sock_errors() - relay the ICMP errors queued on a flow's socket
 * @dp:		data plane
 * @f:		flow
 *
 * Reads at most DP_UDP_RECV_BATCH errors, then clears any unqueued error.
 */
static void udp_sock_errors(struct dp *dp, struct flow *f)
{
	char cbuf[CMSG_SPACE(sizeof(struct sock_extended_err) +
			     sizeof(struct sockaddr_storage))];
	uint8_t quote[UDP_HLEN];
	socklen_t sl;
	int i, err, code;

	for (i = 0; i < DP_UDP_RECV_BATCH; i++) {
		struct iovec iov = {
			.iov_base = udp_rx_data(dp, 0),
			.iov_len = DP_UDP_BUF - UDP_HLEN,
		};
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		const struct sock_extended_err *ee = NULL;
		struct cmsghdr *c;
		ssize_t n;

		n = recvmsg(f->sock, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (n < 0)
			break;

		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if ((c->cmsg_level == SOL_IP &&
			     c->cmsg_type == IP_RECVERR) ||
			    (c->cmsg_level == SOL_IPV6 &&
			     c->cmsg_type == IPV6_RECVERR))
				ee = (const struct sock_extended_err *)
				     CMSG_DATA(c);
		}

		code = udp_err_code(ee);
		if (code < 0)
			continue;

		/* the datagram as the guest sent it: its ports, not ours */
		wr16(quote + UDP_OFF_SPORT, f->key.guest_port);
		wr16(quote + UDP_OFF_DPORT, f->key.remote_port);
		wr16(quote + UDP_OFF_LEN, (uint16_t)(UDP_HLEN + n));
		wr16(quote + UDP_OFF_CSUM, 0);
		icmp_tx_unreach(dp, &f->key.remote_addr, &f->key.guest_addr,
				&f->key.remote_addr, IPPROTO_UDP, quote,
				UDP_HLEN + (size_t)n, (uint8_t)code, 0);
		DP_COUNT(dp, udp_icmp_relayed);
	}

	sl = sizeof(err);
	getsockopt(f->sock, SOL_SOCKET, SO_ERROR, &err, &sl);
}

/**
 * udp_splice_reply() - pass a host answer of a spliced flow back into the
 * guest's namespace
 * @dp:		data plane
 * @f:		spliced UDP flow
 * @i:		datagram of the last udp_recv_batch()
 */
static void udp_splice_reply(struct dp *dp, const struct flow *f, int i)
{
	if (sendto(f->udp.fwd_sock, udp_rx_data(dp, i), dp->udp_rx_len[i],
		   MSG_DONTWAIT | MSG_NOSIGNAL, &f->udp.peer.sa,
		   f->udp.peer_len) < 0)
		DP_COUNT(dp, drop_udp_send);
	else
		DP_COUNT(dp, splice_udp_replies);
}

/**
 * udp_sock_event() - handle readiness of a flow's socket
 * @dp:		data plane
 * @f:		UDP flow
 * @events:	epoll events
 */
void udp_sock_event(struct dp *dp, struct flow *f, uint32_t events)
{
	int round, i, n;

	if (events & EPOLLERR)
		udp_sock_errors(dp, f);

	if (!(events & EPOLLIN))
		return;

	for (round = 0; round < DP_UDP_RECV_ROUNDS; round++) {
		n = udp_recv_batch(dp, f->sock);
		if (n <= 0)
			break;	/* a pending error comes again as EPOLLERR */

		for (i = 0; i < n; i++) {
			if (dp->udp_rx_len[i] == SIZE_MAX)
				continue;
			if (f->udp.splice)
				udp_splice_reply(dp, f, i);
			else
				udp_tx_guest(dp, f, udp_rx_data(dp, i),
					     dp->udp_rx_len[i]);
		}
		f->udp.last_ms = dp->now_ms;
		flow_touch(dp, f);

		if (n < DP_UDP_RECV_BATCH)
			break;
	}
}

/**
 * udp_timer() - close a flow idle for its timeout, or re-arm its timer
 * @dp:		data plane
 * @f:		UDP flow whose deadline passed
 */
void udp_timer(struct dp *dp, struct flow *f)
{
	uint64_t end = f->udp.last_ms + f->udp.idle_ms;

	if (end <= dp->now_ms)
		flow_free(dp, f);
	else
		flow_timer_set(dp, f, end);
}

/**
 * udp_clear_error() - clear a socket's pending error, so that epoll does not
 * report it again and again
 * @sock:	a forward's socket whose recvmmsg() failed
 */
static void udp_clear_error(int sock)
{
	socklen_t sl = sizeof(int);
	int err;

	getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &sl);
}

/**
 * udp_fwd_flow() - the flow of a datagram that came in on a forwarded port
 * @dp:		data plane
 * @l:		the forward
 * @sa:		the datagram's source, the host client
 * @sa_len:	length of @sa
 *
 * The flow goes from the forward's guest address and port to the client as
 * the guest sees it (fwd_guest_view()).  A new one has no socket: replies
 * leave by @l->sock, to @sa.  If another client has the same guest view (the
 * same port on another loopback address), the latest sender gets the
 * replies, as with slirp4netns.
 *
 * Return: the flow, or NULL if the datagram is dropped (counted)
 */
static struct flow *udp_fwd_flow(struct dp *dp, struct fwd_listener *l,
				 const struct sockaddr_storage *sa,
				 socklen_t sa_len)
{
	union inany_addr src;
	struct flow_key key;
	uint16_t src_port;
	struct flow *f;

	if (sa_len > sizeof(f->udp.peer) ||
	    (sa->ss_family != AF_INET && sa->ss_family != AF_INET6)) {
		DP_COUNT(dp, drop_udp_malformed);
		return NULL;
	}

	fwd_guest_view(dp, sa, &l->guest, &src, &src_port);
	if (!src_port) {
		DP_COUNT(dp, drop_udp_malformed);
		return NULL;
	}

	flow_key_fill(&key, IPPROTO_UDP, &l->guest, l->guest_port, &src,
		      src_port);
	f = flow_lookup(dp, &key);
	if (!f) {
		f = flow_alloc(dp, FLOW_UDP, &key);
		if (!f)
			return NULL;
		udp_flow_idle_start(dp, f, false);
		l->connections++;
		DP_COUNT(dp, fwd_udp_flows);
	}

	/* a flow of the guest's own with the same key keeps its socket */
	if (f->sock < 0) {
		f->udp.fwd_sock = l->sock;
		memcpy(&f->udp.peer, sa, sa_len);
		f->udp.peer_len = sa_len;
		f->udp.client_lo = !dp->host_lo_open &&
				   fwd_sa_is_loopback(sa);
	}
	return f;
}

/**
 * udp_splice_flow() - the flow of a datagram from a client in the guest's
 * namespace, on a spliced socket (pasta's -U)
 * @dp:		data plane
 * @l:		the forward: its socket in the namespace, the host address
 * @sa:		the datagram's source, the client
 * @sa_len:	length of @sa
 *
 * A new flow gets a host socket connected to the forward's host address and
 * port, counted in the forwards' share.
 *
 * Return: the flow, or NULL if the datagram is dropped (counted)
 */
static struct flow *udp_splice_flow(struct dp *dp, struct fwd_listener *l,
				    const struct sockaddr_storage *sa,
				    socklen_t sa_len)
{
	struct sockaddr_storage to;
	union inany_addr peer;
	struct flow_key key;
	socklen_t to_len;
	uint16_t port;
	struct flow *f;
	int s;

	if (sa_len > sizeof(f->udp.peer) ||
	    (sa->ss_family != AF_INET && sa->ss_family != AF_INET6)) {
		DP_COUNT(dp, drop_udp_malformed);
		return NULL;
	}
	fwd_sa_to_inany(sa, &peer, &port);
	flow_key_fill(&key, IPPROTO_UDP, &peer, port, &l->guest,
		      l->guest_port);
	f = flow_lookup(dp, &key);
	if (f)
		return f;

	fwd_sockaddr(&l->guest, l->guest_port, &to, &to_len);
	s = flow_sock_open_in(dp, FLOW_SOCK_FWD, to.ss_family,
			      SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			      IPPROTO_UDP);
	if (s < 0) {
		DP_COUNT(dp, drop_udp_socket);
		return NULL;
	}
	if (connect(s, (struct sockaddr *)&to, to_len)) {
		DP_COUNT(dp, drop_udp_socket);
		flow_sock_close(dp, s, FLOW_SOCK_FWD);
		return NULL;
	}
	f = flow_alloc(dp, FLOW_UDP, &key);
	if (!f) {
		flow_sock_close(dp, s, FLOW_SOCK_FWD);
		return NULL;
	}
	f->sock = s;
	f->sock_share = FLOW_SOCK_FWD;
	f->udp.splice = true;
	f->udp.fwd_sock = l->sock;
	memcpy(&f->udp.peer, sa, sa_len);
	f->udp.peer_len = sa_len;
	if (flow_epoll_set(dp, f, EPOLLIN)) {
		DP_COUNT(dp, drop_udp_socket);
		flow_free(dp, f);
		return NULL;
	}
	udp_flow_idle_start(dp, f, false);
	l->connections++;
	return f;
}

/**
 * udp_listener_input() - relay the datagrams waiting on a forward's socket
 * @dp:		data plane
 * @l:		the forward, its socket readable
 *
 * Reads up to DP_UDP_RECV_BATCH datagrams with their sources per recvmmsg(),
 * DP_UDP_RECV_ROUNDS times.  A forwarded host port's (udp_fwd_flow()) go to
 * the guest from their client's flow; a spliced socket's, in the guest's
 * namespace (udp_splice_flow()), to the host through their client's flow's
 * socket.
 */
void udp_listener_input(struct dp *dp, struct fwd_listener *l)
{
	struct sockaddr_storage names[DP_UDP_RECV_BATCH];
	socklen_t name_lens[DP_UDP_RECV_BATCH];
	int round, i, n;

	for (round = 0; round < DP_UDP_RECV_ROUNDS; round++) {
		n = udp_recv_batch_from(dp, l->sock, names, name_lens);
		if (n < 0) {
			udp_clear_error(l->sock);
			break;
		}

		for (i = 0; i < n; i++) {
			uint8_t *data = udp_rx_data(dp, i);
			size_t len = dp->udp_rx_len[i];
			struct flow *f;

			if (len == SIZE_MAX)
				continue;
			f = l->splice ? udp_splice_flow(dp, l, &names[i],
							name_lens[i]) :
					udp_fwd_flow(dp, l, &names[i],
						     name_lens[i]);
			if (!f)
				continue;
			f->udp.last_ms = dp->now_ms;
			flow_touch(dp, f);
			if (!l->splice) {
				DP_COUNT(dp, fwd_udp_datagrams);
				udp_tx_guest(dp, f, data, len);
			} else if (send(f->sock, data, len,
					MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
				DP_COUNT(dp, drop_udp_send);
			} else {
				DP_COUNT(dp, splice_udp_datagrams);
			}
		}

		if (n < DP_UDP_RECV_BATCH)
			break;
	}
}

/**
 * udp_fwd_forget() - a forwarded host UDP socket goes away: free its flows
 * @dp:		data plane
 * @sock:	its descriptor, still open (Python closes it afterwards)
 *
 * Every flow whose replies leave by @sock is freed; none owns @sock, so
 * flow_free() closes nothing of it (a spliced flow's own host socket goes).
 */
void udp_fwd_forget(struct dp *dp, int sock)
{
	uint32_t i;

	for (i = 0; i < dp->flow_high_water; i++) {
		struct flow *f = &dp->flows[i];

		if (f->type == FLOW_UDP && (f->sock < 0 || f->udp.splice) &&
		    f->udp.fwd_sock == sock)
			flow_free(dp, f);
	}
}
