/* udp.c - UDP between the guest and host sockets
 *
 * Theory of operation
 * -------------------
 * Every (guest address and port, remote address and port) pair the guest
 * sends from is a flow (flow.c) with its own *connected* host UDP socket:
 *
 * - guest to host: udp_input() checks the datagram (header, length, checksum),
 *   finds its flow or opens one, and holds it for the flow's socket
 *   (udp_queue(): a list per flow through struct udp_ctx, O(1) per datagram)
 *   until the receive batch ends, as tcp.c holds segments.  udp_batch_end()
 *   then sends each flow's datagrams, in order, with one sendmmsg()
 *   (udp_flow_send()): consecutive datagrams of one size, the last of a run
 *   possibly shorter, become one message with UDP_SEGMENT that the kernel
 *   cuts back into exactly those datagrams; every other datagram is a message
 *   of its own.  A new flow asks fwd.c where the remote address leads: the
 *   gateway to the host's 127.0.0.1, the DNS address's port 53 to the host's
 *   nameserver, anything else to itself.  A destination the guest may not
 *   reach is a counted drop (drop_unreachable), answered with an ICMP port
 *   unreachable from our own addresses or host unreachable from the gateway
 *   otherwise, so that the guest's application fails at once instead of
 *   timing out.
 * - host to guest: the socket is connected, so the kernel only delivers
 *   datagrams from the address and port we connected to.  They go back to the
 *   guest from the remote address and port *as the guest wrote them* (the
 *   flow key): a reply from the host's 127.0.0.1 comes from the gateway, a
 *   nameserver's from the DNS address.  udp_sock_event() reads up to
 *   DP_UDP_RECV_BATCH datagrams per recvmmsg(), DP_UDP_RECV_ROUNDS times per
 *   event, into buffers with room for a UDP header in front of the payload,
 *   and udp_tx_read() sends them on: a datagram that fits the MTU is built in
 *   one frame (with virtio-net headers its checksum left to the guest's
 *   kernel, udp_tx_partial()), a larger one goes to ip_tx_l4(), which
 *   fragments it to the guest's MTU.  After a full round the frames are
 *   written out and the CPU handed over (dp_yield_cpu(), dp.c's "Handing
 *   over the CPU"), so that the guest's reader takes them before the next.
 * - UDP segmentation: where the kernel has it, a UDP socket sends a buffer
 *   of equal-size datagrams as one (UDP_SEGMENT, Linux 4.18) and receives
 *   what GRO coalesced as one buffer with its size (UDP_GRO, 5.0); a TAP
 *   with TUN_F_USO4/6 (6.2) carries such a buffer as one frame with a
 *   VIRTIO_NET_HDR_GSO_UDP_L4 header, both ways (tap.c).  So:
 *   a guest's UDP_SEGMENT send reaches us as one super-datagram, whose
 *   header tap.c checked and udp_gso_sound() checks against the packet, and
 *   leaves as one UDP_SEGMENT message; a buffer our socket got from UDP_GRO
 *   goes to the guest as one GSO frame with the same gso_size
 *   (udp_tx_gro()); and a run of datagrams of one size in one read is
 *   coalesced into one GSO frame here (udp_tx_run()), what GRO would have
 *   made of them: one TAP write for up to DP_UDP_GSO_SEGS datagrams.  The
 *   guest's kernel cuts a GSO frame at its gso_size before delivering it to
 *   a socket without UDP_GRO.
 * - fallbacks: a TAP without USO (older kernels refuse it, a BESS peer or a
 *   TAP without virtio-net headers has none) gets one frame per datagram,
 *   GRO'd buffers cut here; a kernel that does not know UDP_SEGMENT
 *   (udp_gso_probe(): getsockopt() fails) gets one message per datagram; a
 *   UDP_SEGMENT message the kernel refuses (EINVAL: a path MTU below the
 *   size, more segments than it takes; EIO: a device without checksum
 *   offload) is sent again cut here, one message per datagram, and the flow
 *   sends no more UDP_SEGMENT (udp_flow.no_gso); UDP_GRO refused once is not
 *   asked for again.  cfg.offloads_off turns each off for tests.
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
 *   address, and the guest's replies leave through the forward's socket
 *   (sendmmsg() with the client's address, held and batched like any guest
 *   datagram), so the client hears them from the port it sent to.
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
 *   A flow is UDP_ST_ONE_WAY from its first datagram on and UDP_ST_BOTH_WAYS
 *   once the other side answered: a datagram on its socket for a flow of
 *   the guest's (or of a client of a -U socket), one from the guest for a
 *   forwarded port's flow.
 *
 * Checksums: a guest datagram with a wrong checksum is dropped; a zero
 * checksum means "none" for IPv4; a partial sum that the virtio-net header
 * names (checksum offload) is not verified.  Ours are computed, or left
 * partial to a guest with virtio-net headers for a datagram in one frame.
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
 * drop_udp_truncated.  DP_UDP_TX_BATCH guest datagrams are held at most
 * (one per frame of a receive batch; a full batch is sent first); a held
 * datagram points into the receive ring, and one outside it (reassembled)
 * is sent at once.  A GSO frame or UDP_SEGMENT message we build holds at
 * most DP_UDP_GSO_SEGS datagrams and DP_UDP_GSO_BYTES of payload; a guest's
 * super-datagram at most DP_UDP_GSO_SEGS_IN (beyond DP_UDP_GSO_SEGS it is
 * cut here), each of them fitting the guest's MTU.  A datagram the socket
 * refuses (a full send buffer drops the rest of the flow's batch) is counted
 * under drop_udp_send.  Every send loop makes progress at each call: a
 * sendmmsg() either sends a message or its first message is dropped or cut.
 */

#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/errqueue.h>

#include "checksum.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "flow.h"
#include "fwd.h"
#include "inany.h"
#include "ip.h"
#include "ip4.h"
#include "tap.h"
#include "udp.h"
#include "util.h"

#define UDP_DNS_PORT		53

#ifndef SOL_UDP
#define SOL_UDP			17
#endif

/* Room for one UDP_SEGMENT (u16) or UDP_GRO (int) control message */
#define UDP_CMSG_SPACE		CMSG_SPACE(sizeof(int))

/* Room for one such control message, aligned as struct cmsghdr (a union with
 * it would align it too, but its flexible array member makes that union
 * invalid ISO C) */
struct udp_cmsg {
	_Alignas(struct cmsghdr) char buf[UDP_CMSG_SPACE];
};

/**
 * struct udp_rx_vec - the recvmmsg() vector over the receive buffers, built
 * once by udp_init() and mended between reads, not built again per read
 * @mm:		one message per buffer of struct udp_ctx's @buf
 * @iov:	their iovecs: each buffer after room for a UDP header
 * @cm:		their control buffers, for UDP_GRO's size
 * @names:	the source addresses @mm asks for (NULL for none)
 * @gro:	@mm asks for UDP_GRO control messages
 * @used:	messages the last recvmmsg() may have written back into
 */
struct udp_rx_vec {
	struct mmsghdr mm[DP_UDP_RECV_BATCH];
	struct iovec iov[DP_UDP_RECV_BATCH];
	struct udp_cmsg cm[DP_UDP_RECV_BATCH];
	struct sockaddr_storage *names;
	bool gro;
	unsigned used;
};

/**
 * udp_rx_vec_build() - point every message of the vector at its buffer
 * @dp:		data plane, receive buffers allocated
 * @names:	DP_UDP_RECV_BATCH source addresses to ask for, or NULL
 * @gro:	ask for UDP_GRO control messages
 */
static void udp_rx_vec_build(struct dp *dp, struct sockaddr_storage *names,
			     bool gro)
{
	struct udp_rx_vec *v = dp->udp.rx;
	int i;

	memset(v->mm, 0, sizeof(v->mm));
	for (i = 0; i < DP_UDP_RECV_BATCH; i++) {
		v->iov[i].iov_base = udp_rx_data(dp, i);
		v->iov[i].iov_len = DP_UDP_BUF - UDP_HLEN;
		v->mm[i].msg_hdr.msg_iov = &v->iov[i];
		v->mm[i].msg_hdr.msg_iovlen = 1;
		if (names) {
			v->mm[i].msg_hdr.msg_name = &names[i];
			v->mm[i].msg_hdr.msg_namelen = sizeof(names[i]);
		}
		if (gro) {
			v->mm[i].msg_hdr.msg_control = v->cm[i].buf;
			v->mm[i].msg_hdr.msg_controllen = sizeof(v->cm[i].buf);
		}
	}
	v->names = names;
	v->gro = gro;
	v->used = 0;
}

/**
 * udp_rx_vec_ready() - make the vector ready for the next recvmmsg()
 * @dp:		data plane
 * @names:	as for udp_rx_vec_build()
 * @gro:	as for udp_rx_vec_build()
 *
 * recvmmsg() writes back the name and control lengths of the messages it
 * filled: those few are set again.  Only a read that asks for other names
 * or other control messages than the last builds the whole vector again,
 * so a read costs O(datagrams it got), not O(DP_UDP_RECV_BATCH).
 */
static void udp_rx_vec_ready(struct dp *dp, struct sockaddr_storage *names,
			     bool gro)
{
	struct udp_rx_vec *v = dp->udp.rx;
	unsigned i;

	if (v->names != names || v->gro != gro) {
		udp_rx_vec_build(dp, names, gro);
		return;
	}
	for (i = 0; i < v->used; i++) {
		struct msghdr *h = &v->mm[i].msg_hdr;

		if (names)
			h->msg_namelen = sizeof(names[i]);
		if (gro)
			h->msg_controllen = sizeof(v->cm[i].buf);
		h->msg_flags = 0;
	}
	v->used = 0;
}

/**
 * udp_init() - allocate the receive buffers of UDP and ping sockets
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno set
 */
int udp_init(struct dp *dp)
{
	dp->udp.buf = malloc((size_t)DP_UDP_RECV_BATCH * DP_UDP_BUF);
	dp->udp.rx = malloc(sizeof(*dp->udp.rx));
	if (!dp->udp.buf || !dp->udp.rx) {
		udp_cleanup(dp);
		errno = ENOMEM;
		return -1;
	}
	dp->udp.gro = !(dp->cfg.offloads_off & DP_OFFLOAD_NO_UDP_GRO);
	udp_rx_vec_build(dp, NULL, false);
	return 0;
}

/**
 * udp_cleanup() - free the receive buffers
 * @dp:		data plane, possibly only partly set up
 */
void udp_cleanup(struct dp *dp)
{
	free(dp->udp.buf);
	free(dp->udp.rx);
	dp->udp.buf = NULL;
	dp->udp.rx = NULL;
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
	return dp->udp.buf + (size_t)i * DP_UDP_BUF + UDP_HLEN;
}

/**
 * udp_recv_batch_gro() - read datagrams and, if asked, their sources and
 * coalesced sizes with one recvmmsg()
 * @dp:		data plane
 * @fd:		UDP or ping socket, non-blocking
 * @names:	DP_UDP_RECV_BATCH source addresses to fill, or NULL
 * @name_lens:	their lengths, filled with @names (NULL without @names)
 * @gro:	the socket has UDP_GRO on: read each buffer's UDP_GRO control
 *		message into dp->udp.rx_gso (0 where there is none)
 *
 * Lengths go to @dp->udp.rx_len, SIZE_MAX for a datagram that did not fit
 * (counted as drop_udp_truncated; skip it).
 *
 * Return: number of datagrams read, 0 if none was waiting, -1 with errno set
 *	   on other errors
 */
static int udp_recv_batch_gro(struct dp *dp, int fd,
			      struct sockaddr_storage *names,
			      socklen_t *name_lens, bool gro)
{
	struct mmsghdr *mm = dp->udp.rx->mm;
	int i, n;

	udp_rx_vec_ready(dp, names, gro);
	do
		n = recvmmsg(fd, mm, DP_UDP_RECV_BATCH, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);

	/* the message after the last filled may have been written to too */
	dp->udp.rx->used = n < 0 ? 1 : n < DP_UDP_RECV_BATCH ? (unsigned)n + 1 :
				     DP_UDP_RECV_BATCH;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;

	for (i = 0; i < n; i++) {
		struct cmsghdr *c;

		dp->udp.rx_len[i] = mm[i].msg_len;
		dp->udp.rx_gso[i] = 0;
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC) {
			DP_COUNT(dp, drop_udp_truncated);
			dp->udp.rx_len[i] = SIZE_MAX;
		}
		if (names)
			name_lens[i] = mm[i].msg_hdr.msg_namelen;
		if (!gro)
			continue;
		for (c = CMSG_FIRSTHDR(&mm[i].msg_hdr); c;
		     c = CMSG_NXTHDR(&mm[i].msg_hdr, c)) {
			int v;

			if (c->cmsg_level != SOL_UDP ||
			    c->cmsg_type != UDP_GRO ||
			    c->cmsg_len < CMSG_LEN(sizeof(v)))
				continue;
			memcpy(&v, CMSG_DATA(c), sizeof(v));
			if (v > 0 && v <= UINT16_MAX)
				dp->udp.rx_gso[i] = (uint16_t)v;
		}
	}

	return n;
}

/**
 * udp_recv_batch_from() - read datagrams and, if asked, their sources with one
 * recvmmsg()
 * @dp:		data plane
 * @fd:		UDP or ping socket, non-blocking
 * @names:	DP_UDP_RECV_BATCH source addresses to fill, or NULL
 * @name_lens:	their lengths, filled with @names (NULL without @names)
 *
 * As udp_recv_batch_gro() without UDP_GRO.
 *
 * Return: number of datagrams read, 0 if none was waiting, -1 with errno set
 *	   on other errors
 */
static int udp_recv_batch_from(struct dp *dp, int fd,
			       struct sockaddr_storage *names,
			       socklen_t *name_lens)
{
	return udp_recv_batch_gro(dp, fd, names, name_lens, false);
}

/**
 * udp_recv_batch() - read datagrams from a socket with one recvmmsg()
 * @dp:		data plane
 * @fd:		UDP or ping socket, non-blocking
 *
 * Lengths go to @dp->udp.rx_len, SIZE_MAX for a datagram that did not fit
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
	ip_tx_unreach(dp, local ? &p->dst : &gw, &p->src, &p->dst,
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
 * udp_gso_probe() - find out once whether the host kernel takes UDP_SEGMENT
 * @dp:		data plane
 * @s:		a new UDP socket
 *
 * Linux 4.18 and later know the option (getsockopt() answers 0); an older
 * kernel would ignore the control message and send the whole buffer as one
 * datagram, so it must not be tried there.
 */
static void udp_gso_probe(struct dp *dp, int s)
{
	socklen_t sl = sizeof(int);
	int v;

	dp->udp.gso_probed = true;
	dp->udp.gso = !(dp->cfg.offloads_off & DP_OFFLOAD_NO_UDP_GSO) &&
		      !getsockopt(s, SOL_UDP, UDP_SEGMENT, &v, &sl);
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
	int s, one = 1, rcvbuf = DP_UDP_SOCK_RCVBUF;
	struct sockaddr_storage sa;
	socklen_t sa_len;
	struct flow *f;

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

	/* the kernel caps it at net.core.rmem_max (then doubles it): best
	 * effort, ignored if refused */
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (setsockopt(s, sa.ss_family == AF_INET ? SOL_IP : SOL_IPV6,
		       sa.ss_family == AF_INET ? IP_RECVERR : IPV6_RECVERR,
		       &one, sizeof(one)) ||
	    fwd_bind_outbound(dp, s, sa.ss_family)) {
		DP_COUNT(dp, drop_udp_socket);
		flow_sock_close(dp, s, FLOW_SOCK_GUEST);
		return NULL;
	}

	f = flow_open(dp, FLOW_UDP, key, s, FLOW_SOCK_GUEST, &sa, sa_len,
		      DP_CNT_drop_udp_socket);
	if (!f)
		return NULL;
	flow_set_state(f, UDP_ST_ONE_WAY);

	if (!dp->udp.gso_probed)
		udp_gso_probe(dp, s);
	f->udp.fwd_sock = -1;
	if (dp->udp.gro) {
		/* refused once (before Linux 5.0), never asked again */
		f->udp.gro = !setsockopt(s, SOL_UDP, UDP_GRO, &one,
					 sizeof(one));
		dp->udp.gro = f->udp.gro;
	}
	f->udp.dns_gen = fwd_is_dns(dp, &p->dst, key->remote_port) ?
			 dp->fwd.dns_gen : 0;
	udp_flow_idle_start(dp, f, key->remote_port == UDP_DNS_PORT);
	return f;
}

/**
 * udp_gso_sound() - check a GSO super-datagram against its virtio-net header
 * @dp:		data plane, dispatching the frame that carries it
 * @p:		the packet, UDP header checked, its checksum field the one the
 *		header's NEEDS_CSUM names (tap_rx_l4_csum())
 * @len:	its UDP length field
 * @gso:	the header's gso_size: payload bytes per datagram
 *
 * A guest kernel cuts what it sends with UDP_SEGMENT into datagrams of @gso
 * bytes that each fit its MTU, at most DP_UDP_GSO_SEGS_IN of them, the last
 * possibly shorter, and more than one (a payload of @gso or less is not sent
 * as GSO); the UDP length field covers the whole payload, exactly the IP
 * payload.  Anything else is a lie, counted under drop_vnet_gso.
 *
 * Return: true if sound
 */
static bool udp_gso_sound(struct dp *dp, const struct l4_pkt *p, size_t len,
			  uint16_t gso)
{
	size_t l3_len = (size_t)(p->l4 - dp->tap.rx_frame) - DP_ETH_HLEN;
	size_t payload = len - UDP_HLEN;

	if (len != p->l4_len || payload <= gso ||
	    (payload + gso - 1) / gso > DP_UDP_GSO_SEGS_IN ||
	    l3_len + UDP_HLEN + gso > dp->cfg.mtu) {
		DP_COUNT(dp, drop_vnet_gso);
		return false;
	}
	return true;
}

/**
 * udp_queue() - hold a guest datagram for its flow's socket until batch end
 * @dp:		data plane
 * @f:		its flow
 * @data:	payload
 * @len:	payload bytes
 * @gso:	gso_size of a GSO super-datagram, 0 for one datagram
 *
 * O(1): the flow finds its entry of the batch through @f->udp.batch, and
 * its datagrams are linked in arrival order.  A full batch is sent first.  A
 * payload outside the receive ring (a reassembled datagram, in a slot that
 * frag.c may reuse) is sent at once, with what its flow held before it.
 */
static void udp_queue(struct dp *dp, struct flow *f, const uint8_t *data,
		      size_t len, uint16_t gso)
{
	struct udp_ctx *u = &dp->udp;
	uint32_t idx = flow_index(dp, f);
	struct udp_tx_flow *b = NULL;
	struct udp_tx_dgram *d;
	bool in_ring;

	if (u->ndgrams == DP_UDP_TX_BATCH)
		udp_batch_end(dp);

	if (f->udp.batch && f->udp.batch <= u->nflows) {
		b = &u->fl[f->udp.batch - 1];
		if (b->idx != idx || b->gen != f->gen)
			b = NULL;	/* left over from an earlier batch */
	}
	if (!b) {	/* nflows <= ndgrams < DP_UDP_TX_BATCH: room */
		b = &u->fl[u->nflows++];
		b->idx = idx;
		b->gen = f->gen;
		b->first = b->last = 0;
		f->udp.batch = (uint16_t)u->nflows;
	}

	d = &u->d[u->ndgrams++];
	d->data = data;
	d->len = (uint32_t)len;
	d->gso = gso;
	d->next = 0;
	if (b->last)
		u->d[b->last - 1].next = (uint16_t)u->ndgrams;
	else
		b->first = (uint16_t)u->ndgrams;
	b->last = (uint16_t)u->ndgrams;

	in_ring = data >= dp->tap.rx_buf &&
		  data < dp->tap.rx_buf + (size_t)DP_RX_RING * DP_FRAME_MAX;
	if (!in_ring)
		udp_batch_end(dp);
}

/**
 * struct udp_msgs - the messages of one flow's sendmmsg() being built
 * @mm:		messages
 * @iov:	their payloads; a message's are consecutive
 * @cm:		each message's UDP_SEGMENT control message, if it has one
 * @dgrams:	datagrams each message carries, for the counters
 * @seg:	each message's segment size, 0 for one datagram
 * @n:		messages used
 * @niov:	entries of @iov used
 * @open:	the last message may take more datagrams of its size
 * @bytes:	payload bytes of the last message
 */
struct udp_msgs {
	struct mmsghdr mm[DP_UDP_TX_BATCH];
	struct iovec iov[DP_UDP_TX_BATCH];
	struct udp_cmsg cm[DP_UDP_TX_BATCH];
	uint16_t dgrams[DP_UDP_TX_BATCH];
	uint16_t seg[DP_UDP_TX_BATCH];
	unsigned n;
	unsigned niov;
	bool open;
	size_t bytes;
};

/**
 * udp_flow_fd() - where a flow's datagrams to the host leave
 * @f:		UDP flow
 *
 * Return: its own connected socket, or the forward's socket it replies by
 */
static int udp_flow_fd(const struct flow *f)
{
	return f->sock >= 0 ? f->sock : f->udp.fwd_sock;
}

/**
 * udp_msg_segment() - give a message a UDP_SEGMENT control message
 * @m:		messages being built
 * @k:		index of the message
 * @seg:	payload bytes per datagram
 */
static void udp_msg_segment(struct udp_msgs *m, unsigned k, uint16_t seg)
{
	struct msghdr *mh = &m->mm[k].msg_hdr;
	struct cmsghdr *c;

	mh->msg_control = m->cm[k].buf;
	mh->msg_controllen = CMSG_SPACE(sizeof(seg));
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(seg));
	memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	m->seg[k] = seg;
}

/**
 * udp_msg_add() - start a message with one payload
 * @m:		messages being built, with room for one more
 * @f:		flow, for the destination of a forward's reply
 * @data:	payload
 * @len:	payload bytes
 */
static void udp_msg_add(struct udp_msgs *m, struct flow *f,
			const uint8_t *data, size_t len)
{
	struct msghdr *mh = &m->mm[m->n].msg_hdr;

	memset(mh, 0, sizeof(*mh));
	m->iov[m->niov].iov_base = (void *)data;
	m->iov[m->niov].iov_len = len;
	mh->msg_iov = &m->iov[m->niov++];
	mh->msg_iovlen = 1;
	if (f->sock < 0) {
		mh->msg_name = &f->udp.peer.sa;
		mh->msg_namelen = f->udp.peer_len;
	}
	m->dgrams[m->n] = 1;
	m->seg[m->n] = 0;
	m->n++;
	m->bytes = len;
}

/**
 * udp_sendmmsg() - one sendmmsg() of held datagrams, again after EINTR
 * @fd:		socket
 * @mm:		messages
 * @n:		how many, at least one
 *
 * Return: messages sent (more than 0), 0 if the socket is full (EAGAIN,
 *	   ENOBUFS: what is left is dropped), or -1 if it refused the first
 *	   message (errno says why; the others may still go)
 */
static int udp_sendmmsg(int fd, struct mmsghdr *mm, unsigned n)
{
	int rc;

	do
		rc = sendmmsg(fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (rc < 0 && errno == EINTR);

	if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		       errno == ENOBUFS))
		return 0;
	return rc;
}

/**
 * udp_send_singles() - send datagrams one per message, dropping failures
 * @dp:		data plane
 * @fd:		socket
 * @mm:		messages, one datagram each
 * @n:		how many
 *
 * Each udp_sendmmsg() either sends at least one message or refuses the
 * first: a full socket drops what is left, any other refusal that one
 * datagram, so every pass makes progress.
 */
static void udp_send_singles(struct dp *dp, int fd, struct mmsghdr *mm,
			     unsigned n)
{
	unsigned k = 0;

	while (k < n) {
		int rc = udp_sendmmsg(fd, mm + k, n - k);

		if (rc > 0) {
			k += (unsigned)rc;
		} else if (!rc) {
			DP_COUNT_N(dp, drop_udp_send, n - k);
			return;
		} else {
			DP_COUNT(dp, drop_udp_send);
			k++;
		}
	}
}

/**
 * udp_send_cut() - send a message the kernel would not segment, cut here
 * @dp:		data plane
 * @f:		flow
 * @mh:		the message: several iovecs of one datagram each (a run of
 *		guest datagrams), or one iovec holding datagrams of @seg bytes
 *		(a guest's super-datagram)
 * @seg:	payload bytes per datagram
 */
static void udp_send_cut(struct dp *dp, struct flow *f,
			 const struct msghdr *mh, uint16_t seg)
{
	struct mmsghdr mm[DP_UDP_GSO_SEGS_IN];
	struct iovec iov[DP_UDP_GSO_SEGS_IN];
	unsigned n = 0;
	size_t i;

	memset(mm, 0, sizeof(mm));
	if (mh->msg_iovlen > 1) {
		for (i = 0; i < mh->msg_iovlen && n < DP_UDP_GSO_SEGS_IN; i++)
			iov[n++] = mh->msg_iov[i];
	} else {
		const uint8_t *p = mh->msg_iov[0].iov_base;
		size_t left = mh->msg_iov[0].iov_len;

		/* udp_gso_sound(): DP_UDP_GSO_SEGS_IN segments at most */
		while (left && n < DP_UDP_GSO_SEGS_IN) {
			size_t l = left < seg ? left : seg;

			iov[n].iov_base = (void *)p;
			iov[n++].iov_len = l;
			p += l;
			left -= l;
		}
	}

	for (i = 0; i < n; i++) {
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = mh->msg_name;
		mm[i].msg_hdr.msg_namelen = mh->msg_namelen;
	}
	udp_send_singles(dp, udp_flow_fd(f), mm, n);
}

/**
 * udp_msgs_send() - send the messages built for a flow with sendmmsg()
 * @dp:		data plane
 * @f:		flow
 * @m:		messages, emptied
 *
 * As udp_send_singles(), except that a UDP_SEGMENT message the kernel
 * refuses for its segmentation (EINVAL: more segments or a larger size than
 * it takes, the path MTU below the size; EIO: a device without checksum
 * offload; EMSGSIZE, ENOPROTOOPT) is sent again cut into datagrams, and the
 * flow's later datagrams go one per message (@f->udp.no_gso).
 */
static void udp_msgs_send(struct dp *dp, struct flow *f, struct udp_msgs *m)
{
	int fd = udp_flow_fd(f);
	unsigned k = 0, i;

	/* udp_flow_send() set m->n and every message below it; cppcheck's
	 * whole-program pass sees only the uninitialised rest of the struct
	 */
	/* cppcheck-suppress ctuuninitvar */
	while (k < m->n) {
		int rc = udp_sendmmsg(fd, m->mm + k, m->n - k);

		if (rc > 0) {
			for (i = k; i < k + (unsigned)rc; i++)
				if (m->seg[i])
					DP_COUNT(dp, udp_gso_sent);
			k += (unsigned)rc;
			continue;
		}
		if (!rc) {
			for (i = k; i < m->n; i++)
				DP_COUNT_N(dp, drop_udp_send, m->dgrams[i]);
			break;
		}
		if (m->seg[k] && (errno == EINVAL || errno == EIO ||
				  errno == EMSGSIZE || errno == ENOPROTOOPT)) {
			f->udp.no_gso = true;
			DP_COUNT(dp, udp_gso_fallback);
			udp_send_cut(dp, f, &m->mm[k].msg_hdr, m->seg[k]);
		} else {
			DP_COUNT_N(dp, drop_udp_send, m->dgrams[k]);
		}
		k++;
	}
	m->n = m->niov = 0;
	m->open = false;
}

/**
 * udp_flow_send() - send a flow's held datagrams, in order
 * @dp:		data plane
 * @f:		flow, the one they were held for
 * @first:	index + 1 of its first held datagram
 *
 * Consecutive datagrams of one size (the last of a run may be shorter, not
 * empty) become one message with UDP_SEGMENT, up to DP_UDP_GSO_SEGS and
 * DP_UDP_GSO_BYTES; so does a guest's super-datagram, or it is cut here if
 * the socket cannot segment it.  Every other datagram is a message of its
 * own, and all go with one sendmmsg() (more only if the kernel stops early).
 */
static void udp_flow_send(struct dp *dp, struct flow *f, uint16_t first)
{
	bool gso_ok = dp->udp.gso && !f->udp.no_gso;
	struct udp_ctx *u = &dp->udp;
	struct udp_msgs m;
	uint16_t i;

	m.n = m.niov = 0;
	m.open = false;
	for (i = first; i; i = u->d[i - 1].next) {
		const struct udp_tx_dgram *g = &u->d[i - 1];
		unsigned last;

		/* a flow holds DP_UDP_TX_BATCH datagrams at most: no more
		 * messages or payloads than that, but be sure */
		if (m.n == DP_UDP_TX_BATCH || m.niov == DP_UDP_TX_BATCH)
			udp_msgs_send(dp, f, &m);
		last = m.n - 1;	/* used only while m.open, so m.n > 0 */

		if (g->gso) {
			unsigned segs = (g->len + g->gso - 1) / g->gso;

			udp_msg_add(&m, f, g->data, g->len);
			m.dgrams[m.n - 1] = (uint16_t)segs;
			m.open = false;
			if (gso_ok && segs <= DP_UDP_GSO_SEGS &&
			    g->len <= DP_UDP_GSO_BYTES) {
				udp_msg_segment(&m, m.n - 1, g->gso);
				continue;
			}
			/* cut here, after what the flow sent before */
			m.n--;
			m.niov--;
			udp_msgs_send(dp, f, &m);
			udp_msg_add(&m, f, g->data, g->len);
			udp_send_cut(dp, f, &m.mm[0].msg_hdr, g->gso);
			m.n = m.niov = 0;
			continue;
		}

		if (m.open && g->len && g->len <= m.iov[m.niov - 1].iov_len &&
		    m.mm[last].msg_hdr.msg_iovlen < DP_UDP_GSO_SEGS &&
		    m.bytes + g->len <= DP_UDP_GSO_BYTES) {
			size_t size = m.iov[m.niov - 1].iov_len;

			m.iov[m.niov].iov_base = (void *)g->data;
			m.iov[m.niov++].iov_len = g->len;
			m.mm[last].msg_hdr.msg_iovlen++;
			m.dgrams[last]++;
			m.bytes += g->len;
			if (!m.seg[last])
				udp_msg_segment(&m, last, (uint16_t)size);
			m.open = g->len == size;	/* a shorter one ends it */
			continue;
		}

		udp_msg_add(&m, f, g->data, g->len);
		m.open = gso_ok && g->len && g->len <= UINT16_MAX;
	}
	udp_msgs_send(dp, f, &m);
}

/**
 * udp_batch_end() - send the guest datagrams held in this receive batch
 * @dp:		data plane
 *
 * Called by dp.c after each batch of frames is dispatched, while the receive
 * ring still holds the payloads, and by udp_queue() when the batch is full.
 * One sendmmsg() per flow (udp_flow_send()); a flow freed since its
 * datagrams were held has them counted under drop_udp_send.
 */
void udp_batch_end(struct dp *dp)
{
	struct udp_ctx *u = &dp->udp;
	unsigned i;

	for (i = 0; i < u->nflows; i++) {
		const struct udp_tx_flow *b = &u->fl[i];
		struct flow *f = flow_at(dp, b->idx);
		uint16_t j;

		if (!flow_closed(f) && f->gen == b->gen) {
			udp_flow_send(dp, f, b->first);
			continue;
		}
		for (j = b->first; j; j = u->d[j - 1].next)
			DP_COUNT(dp, drop_udp_send);
	}
	u->ndgrams = u->nflows = 0;
}

/**
 * udp_input() - handle one UDP datagram from the guest
 * @dp:		data plane
 * @p:		validated IP packet carrying it (reassembled if it was
 *		fragmented), or a GSO super-datagram (tap.c checked its
 *		virtio-net header, udp_gso_sound() checks the rest)
 *
 * The datagram is held for its flow's socket until the batch ends
 * (udp_queue()).
 */
void udp_input(struct dp *dp, const struct l4_pkt *p)
{
	uint16_t sport, dport, sum, gso = 0;
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
	case TAP_CSUM_PARTIAL:
		gso = dp->tap.rx_off.gso_size;	/* 0 unless a GSO frame */
		if (gso && !udp_gso_sound(dp, p, len, gso))
			return;
		break;
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
		if (f->udp.dns_gen != dp->fwd.dns_gen) {
			udp_batch_end(dp);	/* its held datagrams first */
			flow_close(dp, f, FLOW_CLOSE_DNS);
			f = NULL;
		}
	}
	if (!f) {
		f = udp_flow_open(dp, p, len, &key);
		if (!f)
			return;
	}

	if (f->sock < 0)	/* a forwarded port's flow: the guest answers */
		flow_set_state(f, UDP_ST_BOTH_WAYS);
	if (!f->udp.client_lo)
		f->udp.last_ms = dp->now_ms;
	flow_touch(dp, f);
	if (gso)
		DP_COUNT(dp, udp_gso_in);
	udp_queue(dp, f, p->l4 + UDP_HLEN, len - UDP_HLEN, gso);
}

/**
 * udp_hdr_fill() - write the UDP header of a datagram to the guest
 * @h:		where the header goes, the payload behind it
 * @f:		flow: the ports
 * @l4_len:	header and payload bytes, at most 65535
 */
static void udp_hdr_fill(uint8_t *h, const struct flow *f, size_t l4_len)
{
	wr16(h + UDP_OFF_SPORT, f->key.remote_port);
	wr16(h + UDP_OFF_DPORT, f->key.guest_port);
	wr16(h + UDP_OFF_LEN, (uint16_t)l4_len);
	wr16(h + UDP_OFF_CSUM, 0);
}

/**
 * udp_tx_partial() - build a datagram to the guest in one frame, checksum
 * left to the guest's kernel
 * @dp:		data plane with virtio-net headers
 * @f:		flow
 * @seg:	payloads, copied one after the other into the frame
 * @n:		entries of @seg
 * @total:	their bytes together: the frame fits one IP packet
 * @gso:	payload bytes per datagram of a super-datagram the guest's
 *		kernel cuts (dp->tap.uso), 0 for one datagram that fits the MTU
 *
 * The checksum field gets the pseudo-header sum, as for TCP
 * (tcp_offload_commit()): the guest verifies nothing for local delivery.
 */
static void udp_tx_partial(struct dp *dp, const struct flow *f,
			   const struct iovec *seg, unsigned n, size_t total,
			   uint16_t gso)
{
	size_t l4_off = DP_ETH_HLEN + ip_hdr_len(&f->key.guest_addr);
	size_t l4_len = UDP_HLEN + total, room, off = UDP_HLEN;
	uint8_t *h;
	uint16_t sum;
	unsigned i;

	h = ip_tx_start(dp, &f->key.remote_addr, &f->key.guest_addr, &room);
	for (i = 0; i < n; i++) {
		memcpy(h + off, seg[i].iov_base, seg[i].iov_len);
		off += seg[i].iov_len;
	}
	udp_hdr_fill(h, f, l4_len);
	sum = (uint16_t)~csum_fold(ip_pseudo_csum(&f->key.remote_addr,
						  &f->key.guest_addr,
						  IPPROTO_UDP, l4_len));
	memcpy(h + UDP_OFF_CSUM, &sum, sizeof(sum));
	tap_tx_csum_partial(dp, l4_off, UDP_OFF_CSUM);
	if (gso) {
		tap_tx_gso_udp(dp, l4_off + UDP_HLEN, gso);
		DP_COUNT(dp, udp_gso_out);
		DP_COUNT_N(dp, udp_gso_out_datagrams,
			   (total + gso - 1) / gso);
	}
	ip_tx_commit(dp, IPPROTO_UDP, l4_len);
}

/**
 * udp_seg_max() - largest payload of a datagram to the guest in one frame
 * @dp:		data plane
 * @f:		flow
 *
 * Return: the MTU less the IP and UDP headers
 */
static size_t udp_seg_max(const struct dp *dp, const struct flow *f)
{
	return dp->cfg.mtu - ip_hdr_len(&f->key.guest_addr) - UDP_HLEN;
}

/**
 * udp_tx_guest() - send a datagram from a flow's socket to the guest
 * @dp:		data plane
 * @f:		flow
 * @data:	payload, with UDP_HLEN free bytes before it (which may be
 *		overwritten)
 * @len:	payload length
 *
 * With virtio-net headers, a datagram that fits the MTU is built in place
 * with its checksum left to the guest (udp_tx_partial()); otherwise the
 * checksum is computed here and ip_tx_l4() fragments it as needed.  Either
 * way the payload is copied before this returns.
 */
static void udp_tx_guest(struct dp *dp, const struct flow *f, uint8_t *data,
			 size_t len)
{
	const union inany_addr *src = &f->key.remote_addr;
	const union inany_addr *dst = &f->key.guest_addr;
	uint8_t *h = data - UDP_HLEN;
	size_t l4_len = UDP_HLEN + len;
	uint16_t sum;

	if (dp->tap.vnet_len && len <= udp_seg_max(dp, f)) {
		struct iovec one = { .iov_base = data, .iov_len = len };

		udp_tx_partial(dp, f, &one, 1, len, 0);
		return;
	}

	udp_hdr_fill(h, f, l4_len);
	sum = csum(h, l4_len, ip_pseudo_csum(src, dst, IPPROTO_UDP, l4_len));
	if (!sum)
		sum = 0xffff;	/* zero would mean "no checksum" */
	memcpy(h + UDP_OFF_CSUM, &sum, sizeof(sum));

	ip_tx_l4(dp, src, dst, IPPROTO_UDP, h, l4_len);
}

/**
 * udp_tx_gro() - send the guest a buffer the host kernel coalesced (UDP_GRO)
 * @dp:		data plane
 * @f:		flow
 * @data:	payload, with UDP_HLEN free bytes before it
 * @len:	payload bytes, more than @gso
 * @gso:	bytes of each datagram in it, all but the last (shorter)
 *
 * One GSO frame the guest's kernel cuts, if the guest takes UDP GSO and
 * each datagram fits its MTU; otherwise the datagrams one by one, each
 * header written over the tail of the datagram before it, which
 * udp_tx_guest() has copied out by then.
 */
static void udp_tx_gro(struct dp *dp, const struct flow *f, uint8_t *data,
		       size_t len, uint16_t gso)
{
	size_t off;

	if (dp->tap.uso && gso <= udp_seg_max(dp, f) &&
	    (len + gso - 1) / gso <= DP_UDP_GSO_SEGS &&
	    len <= DP_UDP_GSO_BYTES) {
		struct iovec all = { .iov_base = data, .iov_len = len };

		udp_tx_partial(dp, f, &all, 1, len, gso);
		return;
	}

	for (off = 0; off < len; off += gso)
		udp_tx_guest(dp, f, data + off,
			     len - off < gso ? len - off : gso);
}

/**
 * udp_tx_run() - coalesce a run of a read's datagrams into one GSO frame
 * @dp:		data plane, the guest taking UDP GSO (dp->tap.uso)
 * @f:		flow the datagrams came from
 * @i:		first datagram of the run in the last read
 * @n:		datagrams in the last read
 *
 * The run is the datagrams from @i on of @i's size, the last of them
 * possibly shorter (not empty), up to DP_UDP_GSO_SEGS and DP_UDP_GSO_BYTES:
 * what the host kernel's GRO would have made of them.  @i's size must fit
 * the guest's MTU with its headers.
 *
 * Return: datagrams sent, 1 or more (one: sent as a datagram of its own)
 */
static int udp_tx_run(struct dp *dp, const struct flow *f, int i, int n)
{
	size_t size = dp->udp.rx_len[i], total = 0;
	struct iovec iov[DP_UDP_GSO_SEGS];
	unsigned k = 0;
	int j;

	for (j = i; j < n && k < DP_UDP_GSO_SEGS; j++) {
		size_t l = dp->udp.rx_len[j];

		if (l == SIZE_MAX || !l || l > size || dp->udp.rx_gso[j] ||
		    total + l > DP_UDP_GSO_BYTES)
			break;
		iov[k].iov_base = udp_rx_data(dp, j);
		iov[k++].iov_len = l;
		total += l;
		if (l < size) {
			j++;
			break;	/* a shorter one ends the run */
		}
	}

	if (k < 2) {
		udp_tx_guest(dp, f, udp_rx_data(dp, i), size);
		return 1;
	}
	udp_tx_partial(dp, f, iov, k, total, (uint16_t)size);
	return (int)k;
}

/**
 * udp_tx_read() - send the guest what the last read of a flow's socket got
 * @dp:		data plane
 * @f:		flow
 * @n:		datagrams read (udp_recv_batch_gro()), some perhaps
 *		coalesced by UDP_GRO, some perhaps truncated (skipped)
 *
 * Per datagram O(1): a buffer of several goes through udp_tx_gro(); with
 * UDP GSO towards the guest, runs of one size become one frame
 * (udp_tx_run()); everything else goes one datagram per udp_tx_guest().
 */
static void udp_tx_read(struct dp *dp, const struct flow *f, int n)
{
	size_t seg_max = udp_seg_max(dp, f);
	int i = 0;

	while (i < n) {
		size_t len = dp->udp.rx_len[i];
		uint16_t gso = dp->udp.rx_gso[i];

		if (len == SIZE_MAX) {
			i++;
		} else if (gso && len > gso) {
			DP_COUNT(dp, udp_gro_in);
			udp_tx_gro(dp, f, udp_rx_data(dp, i), len, gso);
			i++;
		} else if (dp->tap.uso && len && len <= seg_max && i + 1 < n) {
			i += udp_tx_run(dp, f, i, n);
		} else {
			udp_tx_guest(dp, f, udp_rx_data(dp, i), len);
			i++;
		}
	}
}

/**
 * udp_err_code() - the ICMP unreachable code to relay for a socket error
 * @ee:		extended error from the socket's error queue, or NULL
 *
 * Return: ICMPv4 destination unreachable code (ip_tx_unreach() maps it for
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
		ip_tx_unreach(dp, &f->key.remote_addr, &f->key.guest_addr,
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
	if (sendto(f->udp.fwd_sock, udp_rx_data(dp, i), dp->udp.rx_len[i],
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
	int round, n, i;

	if (events & EPOLLERR)
		udp_sock_errors(dp, f);

	if (!(events & EPOLLIN))
		return;

	for (round = 0; round < DP_UDP_RECV_ROUNDS; round++) {
		n = udp_recv_batch_gro(dp, f->sock, NULL, NULL, f->udp.gro);
		if (n <= 0)
			break;	/* a pending error comes again as EPOLLERR */

		if (f->udp.splice) {	/* no GRO on these: one datagram each */
			for (i = 0; i < n; i++) {
				if (dp->udp.rx_len[i] != SIZE_MAX)
					udp_splice_reply(dp, f, i);
			}
		} else {
			udp_tx_read(dp, f, n);
		}
		flow_set_state(f, UDP_ST_BOTH_WAYS);
		f->udp.last_ms = dp->now_ms;
		flow_touch(dp, f);

		if (n < DP_UDP_RECV_BATCH)
			break;
		dp_yield_cpu(dp);	/* the guest's reader takes this round first */
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
		flow_close(dp, f, FLOW_CLOSE_IDLE);
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
		flow_set_state(f, UDP_ST_ONE_WAY);
		udp_flow_idle_start(dp, f, false);
		l->connections++;
		DP_COUNT(dp, fwd_udp_flows);
	}

	/* a flow of the guest's own with the same key keeps its socket */
	if (f->sock < 0) {
		f->udp.fwd_sock = l->sock;
		memcpy(&f->udp.peer, sa, sa_len);
		f->udp.peer_len = sa_len;
		f->udp.client_lo = !dp->fwd.host_lo_open &&
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
	f = flow_open(dp, FLOW_UDP, &key, s, FLOW_SOCK_FWD, &to, to_len,
		      DP_CNT_drop_udp_socket);
	if (!f)
		return NULL;
	flow_set_state(f, UDP_ST_ONE_WAY);
	f->udp.splice = true;
	f->udp.fwd_sock = l->sock;
	memcpy(&f->udp.peer, sa, sa_len);
	f->udp.peer_len = sa_len;
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
			size_t len = dp->udp.rx_len[i];
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
		dp_yield_cpu(dp);	/* as udp_sock_event() */
	}
}

/**
 * udp_fwd_forget() - a forwarded host UDP socket goes away: free its flows
 * @dp:		data plane
 * @sock:	its descriptor, still open (Python closes it afterwards)
 *
 * Every flow whose replies leave by @sock is freed; none owns @sock, so
 * flow_close() closes nothing of it (a spliced flow's own host socket goes).
 */
void udp_fwd_forget(struct dp *dp, int sock)
{
	struct flow *f;

	flow_foreach(dp, f) {
		if (f->type == FLOW_UDP && (f->sock < 0 || f->udp.splice) &&
		    f->udp.fwd_sock == sock)
			flow_close(dp, f, FLOW_CLOSE_FWD_GONE);
	}
}
