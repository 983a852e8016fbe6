/* tcp_buf.c - TCP segments to the guest: built in the TAP's transmit queue
 *
 * Theory of operation
 * -------------------
 * tcp.c runs the state machine; this file builds what it sends.  Every
 * segment to the guest is written in place in the transmit queue:
 * ip_tx_start() reserves the IP header, tcp_hdr_fill() writes the TCP
 * header, tcp_csum_commit() (or, with a virtio-net header,
 * tcp_offload_commit(): a partial checksum, and one GSO frame for several
 * segments) finishes it.
 *
 * - control segments: tcp_send_ctl() sends SYN, ACK, FIN and RST with the
 *   window we advertise (tcp_wnd_field(), scaled; tcp_wnd_sent() records its
 *   right edge) and, once SACK is permitted, SACK blocks for the data held
 *   out of order (tcp_sack_opts()).  tcp_rst_reply() answers a segment that
 *   has no flow.
 * - data: tcp_data_from_sock() peeks the host socket's unacknowledged data
 *   (MSG_PEEK with SO_PEEK_OFF, so the socket holds it until the guest ACKs
 *   it) straight into the payloads of up to DP_TCP_GUEST_QUEUE frames of the
 *   queue (tap_tx_reserve()), then tcp_tx_data() writes their headers; at
 *   the socket's EOF tcp_send_fin() follows.  tcp_consume() drops from the
 *   socket what the guest acknowledged.
 * - the window: tcp_wnd_update() computes the one we advertise from the
 *   host socket's free send buffer, and keeps EPOLLOUT on while the socket
 *   is nearly full (tcp_epoll_out()).
 *
 * Nothing here changes a connection's state: it only calls down (ip.c,
 * tap.c, the host socket).
 */

#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/sock_diag.h>

#include "checksum.h"
#include "dp.h"
#include "dp_limits.h"
#include "flow.h"
#include "inany.h"
#include "ip.h"
#include "tap.h"
#include "tcp_buf.h"
#include "tcp_conn.h"
#include "tcp_internal.h"
#include "tcp_ooo.h"
#include "util.h"

/**
 * tcp_csum_commit() - checksum a segment built after ip_tx_start(), queue it
 * @dp:		data plane
 * @src:	source address, as given to ip_tx_start()
 * @dst:	destination address, as given to ip_tx_start()
 * @th:		TCP header, checksum field zero, payload behind it
 * @l4_len:	header plus payload bytes
 */
void tcp_csum_commit(struct dp *dp, const union inany_addr *src,
		     const union inany_addr *dst, uint8_t *th,
		     size_t l4_len)
{
	uint16_t sum;

	sum = csum(th, l4_len, ip_pseudo_csum(src, dst, IPPROTO_TCP, l4_len));
	memcpy(th + TCP_OFF_CSUM, &sum, sizeof(sum));
	ip_tx_commit(dp, IPPROTO_TCP, l4_len);
}

/**
 * tcp_offload_commit() - queue a data segment, checksum and cutting left to
 * the guest's kernel
 * @dp:		data plane with virtio-net headers
 * @f:		flow
 * @th:		TCP header (no options) built after ip_tx_start(), checksum
 *		field zero, payload behind it
 * @len:	payload bytes, more than the guest's MSS for a GSO segment
 *
 * The checksum field gets the pseudo-header sum over the whole segment, as
 * Linux's own stack leaves it for CHECKSUM_PARTIAL: the guest verifies
 * nothing for local delivery, and fixes the sum up per segment if it ever
 * forwards the segment.
 */
void tcp_offload_commit(struct dp *dp, const struct flow *f,
			uint8_t *th, size_t len)
{
	size_t l4_off = DP_ETH_HLEN + ip_hdr_len(&f->key.guest_addr);
	size_t l4_len = TCP_HLEN + len;
	uint16_t sum;

	sum = (uint16_t)~csum_fold(ip_pseudo_csum(&f->key.remote_addr,
						  &f->key.guest_addr,
						  IPPROTO_TCP, l4_len));
	memcpy(th + TCP_OFF_CSUM, &sum, sizeof(sum));
	tap_tx_csum_partial(dp, l4_off, TCP_OFF_CSUM);
	if (len > f->tcp.mss)
		tap_tx_gso_tcp(dp, !inany_is_v4(&f->key.guest_addr),
			       l4_off + TCP_HLEN, f->tcp.mss);
	ip_tx_commit(dp, IPPROTO_TCP, l4_len);
}

/**
 * tcp_frame_payload() - largest payload of one data frame to the guest
 * @dp:		data plane
 * @f:		flow
 *
 * Return: the MSS without virtio-net headers; with them, as many whole MSS
 *	   as fit a maximal IP datagram (the guest's kernel cuts the segment)
 */
size_t tcp_frame_payload(const struct dp *dp, const struct flow *f)
{
	size_t mss = f->tcp.mss, max;

	if (!dp->tap.vnet_len)
		return mss;

	max = DP_IP_MAX_LEN - ip_hdr_len(&f->key.guest_addr) - TCP_HLEN;
	return max < mss ? mss : max / mss * mss;
}

/**
 * tcp_hdr_fill() - write a TCP header
 * @th:		where the header goes
 * @sport:	source port, host order
 * @dport:	destination port, host order
 * @seq:	sequence number
 * @ack:	acknowledgement number (written even without TCP_ACK)
 * @flags:	TCP_ACK, TCP_PSH...
 * @wnd:	window field value
 * @hlen:	header length with options, a multiple of 4
 */
void tcp_hdr_fill(uint8_t *th, uint16_t sport, uint16_t dport,
		  uint32_t seq, uint32_t ack, uint8_t flags,
		  uint16_t wnd, size_t hlen)
{
	uint32_t v;

	wr16(th + TCP_OFF_SPORT, sport);
	wr16(th + TCP_OFF_DPORT, dport);
	v = htonl(seq);
	memcpy(th + TCP_OFF_SEQ, &v, sizeof(v));
	v = htonl(ack);
	memcpy(th + TCP_OFF_ACK, &v, sizeof(v));
	th[TCP_OFF_DOFF] = (uint8_t)(hlen / 4 << 4);
	th[TCP_OFF_FLAGS] = flags;
	wr16(th + TCP_OFF_WND, wnd);
	wr16(th + TCP_OFF_CSUM, 0);
	wr16(th + TCP_OFF_URG, 0);
}

/**
 * tcp_wnd_field() - the window field for segments of a flow
 * @t:		TCP state
 *
 * Return: @wnd_to_guest scaled, at most 65535
 */
uint16_t tcp_wnd_field(const struct tcp_flow *t)
{
	uint32_t w = t->wnd_to_guest >> t->ws_to_guest;

	return w > 0xffff ? 0xffff : (uint16_t)w;
}

/**
 * tcp_wnd_sent() - note the window a segment to the guest advertises
 * @t:		TCP state, @seq_from_guest being the segment's ack number
 * @wnd:	the window in bytes (the field, scaled unless in a SYN)
 *
 * The right edge only moves right: a window that shrank (the socket filled)
 * does not take back what an earlier one offered (RFC 9293, 3.8.6).
 */
void tcp_wnd_sent(struct tcp_flow *t, uint32_t wnd)
{
	uint32_t edge = t->seq_from_guest + wnd;

	if (SEQ_GT(edge, t->seq_wnd_edge))
		t->seq_wnd_edge = edge;
}

/**
 * tcp_sack_opts() - SACK blocks for the data held out of order
 * @t:		TCP state, SACK permitted
 * @o:		where the options go, behind the fixed header
 * @room:	bytes the frame has for the TCP header and options (MTU bound)
 *
 * Return: bytes of options written (a multiple of 4), 0 if nothing is held
 */
size_t tcp_sack_opts(const struct tcp_flow *t, uint8_t *o, size_t room)
{
	struct tcp_sack_block b[TCP_SACK_BLOCKS_MAX];
	unsigned i, n, max = TCP_SACK_BLOCKS_MAX;

	/* on tiny MTUs, as many blocks as the frame has room for */
	if (room < TCP_HLEN + 4 + 8 * max)
		max = room < TCP_HLEN + 4 ? 0 :
		      (unsigned)((room - TCP_HLEN - 4) / 8);
	n = tcp_ooo_sack(t->ooo, t->seq_from_guest, b, max);
	if (!n)
		return 0;

	o[0] = TCP_OPT_NOP;
	o[1] = TCP_OPT_NOP;
	o[2] = TCP_OPT_SACK;
	o[3] = (uint8_t)(2 + 8 * n);
	for (i = 0; i < n; i++) {
		uint32_t start = htonl(b[i].start), end = htonl(b[i].end);

		memcpy(o + 4 + 8 * i, &start, 4);
		memcpy(o + 8 + 8 * i, &end, 4);
	}
	return 4 + 8 * n;
}

/**
 * tcp_send_ctl() - send a segment without payload on a flow
 * @dp:		data plane
 * @f:		flow
 * @flags:	TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN (adds MSS and window scale
 *		options, unscaled window)
 * @seq:	sequence number
 */
void tcp_send_ctl(struct dp *dp, struct flow *f, uint8_t flags,
		  uint32_t seq)
{
	struct tcp_flow *t = &f->tcp;
	size_t room, hlen = TCP_HLEN;
	uint16_t wnd = tcp_wnd_field(t);
	uint8_t *th;

	th = ip_tx_start(dp, &f->key.remote_addr, &f->key.guest_addr, &room);

	if (flags & TCP_SYN) {
		size_t mss = dp->cfg.mtu - ip_hdr_len(&f->key.guest_addr) -
			     TCP_HLEN;
		uint8_t *o = th + TCP_HLEN;

		o[0] = TCP_OPT_MSS;
		o[1] = TCP_OPT_MSS_LEN;
		wr16(o + 2, (uint16_t)(mss > 0xffff ? 0xffff : mss));
		hlen += TCP_OPT_MSS_LEN;
		if (t->flags & TCP_F_WS) {
			o[4] = TCP_OPT_NOP;
			o[5] = TCP_OPT_WS;
			o[6] = TCP_OPT_WS_LEN;
			o[7] = t->ws_to_guest;
			hlen += 1 + TCP_OPT_WS_LEN;
		}
		/* our SYN offers SACK, our SYN-ACK accepts the guest's offer */
		if (!(flags & TCP_ACK) || t->flags & TCP_F_SACK) {
			o = th + hlen;
			o[0] = TCP_OPT_NOP;
			o[1] = TCP_OPT_NOP;
			o[2] = TCP_OPT_SACK_OK;
			o[3] = TCP_OPT_SACK_OK_LEN;
			hlen += 4;
		}
		/* RFC 7323: the window of a SYN is never scaled */
		wnd = t->wnd_to_guest > 0xffff ? 0xffff :
		      (uint16_t)t->wnd_to_guest;
	} else if (flags == TCP_ACK && t->flags & TCP_F_SACK) {
		hlen += tcp_sack_opts(t, th + TCP_HLEN,
				      dp->cfg.mtu - ip_hdr_len(&f->key.guest_addr));
	}

	tcp_hdr_fill(th, f->key.remote_port, f->key.guest_port, seq,
		     t->seq_from_guest, flags, wnd, hlen);
	tcp_csum_commit(dp, &f->key.remote_addr, &f->key.guest_addr, th, hlen);

	if (flags & TCP_ACK) {
		t->seq_ack_sent = t->seq_from_guest;
		t->flags &= ~TCP_F_ACK_DUE;
		if (!(flags & TCP_RST))
			tcp_wnd_sent(t, flags & TCP_SYN ? wnd :
					(uint32_t)wnd << t->ws_to_guest);
	}
	if (flags & TCP_RST)
		DP_COUNT(dp, tcp_rst_sent);
}

/**
 * tcp_rst_reply() - answer a segment that has no connection with a RST
 * @dp:		data plane
 * @p:		packet the segment came in (for the addresses)
 * @seg:	the segment (RFC 793 "Reset Generation")
 */
void tcp_rst_reply(struct dp *dp, const struct l4_pkt *p,
		   const struct tcp_seg *seg)
{
	uint32_t seq = 0, ack = 0;
	uint8_t flags = TCP_RST;
	size_t room;
	uint8_t *th;

	if (seg->flags & TCP_RST)
		return;

	if (seg->flags & TCP_ACK) {
		seq = seg->ack;
	} else {
		ack = seg->seq + (uint32_t)seg->len +
		      !!(seg->flags & TCP_SYN) + !!(seg->flags & TCP_FIN);
		flags |= TCP_ACK;
	}

	th = ip_tx_start(dp, &p->dst, &p->src, &room);
	tcp_hdr_fill(th, seg->dport, seg->sport, seq, ack, flags, 0, TCP_HLEN);
	tcp_csum_commit(dp, &p->dst, &p->src, th, TCP_HLEN);
	DP_COUNT(dp, tcp_rst_sent);
}

/**
 * tcp_epoll_out() - watch or stop watching the socket for writability
 * @dp:		data plane
 * @f:		flow, connected
 * @on:		true to add EPOLLOUT
 *
 * Events are edge-triggered: once EPOLLOUT was reported, a socket that is
 * full again reports nothing more until it is polled anew.  Turning EPOLLOUT
 * on while it is already on is therefore a fresh registration (the kernel
 * polls the socket, which marks it as waiting for space), not a no-op.
 *
 * Return: 0, or -1 if epoll refused
 */
int tcp_epoll_out(struct dp *dp, struct flow *f, bool on)
{
	if (on && f->epoll_events & EPOLLOUT)
		return flow_epoll_rearm(dp, f);
	return flow_epoll_set(dp, f, TCP_EPOLL_EVENTS | (on ? EPOLLOUT : 0));
}

/**
 * tcp_wnd_update() - compute the window to advertise from the socket
 * @dp:		data plane
 * @f:		flow with a socket
 *
 * The window is the socket's free send buffer as the kernel counts it
 * (SO_MEMINFO: SO_SNDBUF less the memory queued, headers and all), less a
 * margin, and no more than the connection's share of the guest's transmit
 * queue: that many frames of the size its data frames have had of late
 * (struct tcp_flow's @frame_bytes), or of the MSS if larger.  With TSO the
 * guest's frames carry up to 64 KiB whatever the MTU; counted as one MSS
 * each, the window at MTU 1500 was a 45th of what the queue holds, and the
 * guest waited on it (issue 17, item 5).  When the kernel calls the socket
 * not writable (more than two thirds of SO_SNDBUF queued:
 * sk_stream_is_writeable()), EPOLLOUT is watched: the host peer reads
 * slower than the guest writes, and the guest gets a window update once the
 * socket drained to a third free, a window of at least a twelfth of
 * SO_SNDBUF.  The test is the kernel's own, on the
 * kernel's own numbers: with any other (SIOCOUTQ counts payload only) we
 * could decide the socket is full while the kernel has just said it is not,
 * and wait for an EPOLLOUT that never comes.
 *
 * Return: 0, or -1 if epoll failed
 */
int tcp_wnd_update(struct dp *dp, struct flow *f)
{
	uint32_t mem[SK_MEMINFO_VARS] = { 0 };
	socklen_t sl = sizeof(mem);
	struct tcp_flow *t = &f->tcp;
	long sndbuf, queued, w;
	unsigned long segs, frame;

	if (getsockopt(f->sock, SOL_SOCKET, SO_MEMINFO, mem, &sl) ||
	    sl <= SK_MEMINFO_WMEM_QUEUED * sizeof(mem[0]))
		return 0;
	sndbuf = mem[SK_MEMINFO_SNDBUF];
	queued = mem[SK_MEMINFO_WMEM_QUEUED];

	w = sndbuf - sndbuf / DP_TCP_SNDBUF_MARGIN - queued;
	if (w < 0)
		w = 0;
	if (w > DP_TCP_WND_MAX)
		w = DP_TCP_WND_MAX;
	segs = DP_TCP_GUEST_QUEUE / (dp->tcp.conns ? dp->tcp.conns : 1);
	if (segs < DP_TCP_WND_MIN_SEGS)
		segs = DP_TCP_WND_MIN_SEGS;
	frame = t->frame_bytes > t->mss ? t->frame_bytes : t->mss;
	if (w > (long)(segs * frame))
		w = (long)(segs * frame);
	if (!(t->flags & TCP_F_WS) && w > 0xffff)
		w = 0xffff;
	t->wnd_to_guest = (uint32_t)w;

	/* sk_stream_is_writeable(): free space at least half of what's queued */
	if (queued * 3 > sndbuf * 2 && !(t->flags & TCP_F_WND_LIMITED)) {
		t->flags |= TCP_F_WND_LIMITED;
		return tcp_epoll_out(dp, f, true);
	}
	return 0;
}

/**
 * tcp_consume() - drop from the socket the bytes the guest acked
 * @f:		flow
 *
 * Return: 0, or -1 if the socket failed
 */
int tcp_consume(struct flow *f)
{
	struct tcp_flow *t = &f->tcp;
	uint32_t upto = t->flags & TCP_F_FIN_ACKED ? t->seq_fin_to_guest :
						    t->seq_acked;
	ssize_t rc;

	if (!SEQ_GT(upto, t->seq_consumed))
		return 0;

	/* MSG_TRUNC on TCP: Linux discards the bytes, no buffer is read or
	 * written (cppcheck's POSIX model wants one) */
	do
		/* cppcheck-suppress nullPointer */
		rc = recv(f->sock, NULL, upto - t->seq_consumed,
			  MSG_DONTWAIT | MSG_TRUNC);
	while (rc < 0 && errno == EINTR);

	if (rc < 0)
		return errno == EAGAIN ? 0 : -1;

	t->seq_consumed += (uint32_t)rc;
	return 0;
}

/**
 * tcp_tx_data() - build data segments around payloads already in place
 * @dp:		data plane, transmit buffers reserved by tap_tx_reserve()
 * @f:		flow
 * @iov:	payload areas, one per frame, in tap_tx_ahead() order
 * @bytes:	bytes received into @iov, filling each area before the next
 */
void tcp_tx_data(struct dp *dp, struct flow *f, const struct iovec *iov,
		 size_t bytes)
{
	struct tcp_flow *t = &f->tcp;
	uint16_t wnd = tcp_wnd_field(t);
	unsigned i;

	for (i = 0; bytes; i++) {
		size_t len = iov[i].iov_len < bytes ? iov[i].iov_len : bytes;
		uint8_t flags = TCP_ACK;
		size_t room;
		uint8_t *th;

		bytes -= len;
		if (!bytes)
			flags |= TCP_PSH;

		th = ip_tx_start(dp, &f->key.remote_addr, &f->key.guest_addr,
				 &room);
		/* The payload is where tap_tx_ahead() said: nothing to move */
		if (th + TCP_HLEN != (uint8_t *)iov[i].iov_base)
			memmove(th + TCP_HLEN, iov[i].iov_base, len);

		tcp_hdr_fill(th, f->key.remote_port, f->key.guest_port,
			     t->seq_to_guest, t->seq_from_guest, flags, wnd,
			     TCP_HLEN);
		if (dp->tap.vnet_len)
			tcp_offload_commit(dp, f, th, len);
		else
			tcp_csum_commit(dp, &f->key.remote_addr,
					&f->key.guest_addr, th, TCP_HLEN + len);
		t->seq_to_guest += (uint32_t)len;
	}

	if (SEQ_GT(t->seq_to_guest, t->seq_max))
		t->seq_max = t->seq_to_guest;
	t->seq_ack_sent = t->seq_from_guest;
	t->flags &= ~TCP_F_ACK_DUE;
	tcp_wnd_sent(t, (uint32_t)wnd << t->ws_to_guest);
}

/**
 * tcp_send_fin() - send our FIN after the last byte of host data
 * @dp:		data plane
 * @f:		flow, TCP_F_HOST_EOF set
 */
void tcp_send_fin(struct dp *dp, struct flow *f)
{
	struct tcp_flow *t = &f->tcp;

	tcp_send_ctl(dp, f, TCP_FIN | TCP_ACK, t->seq_fin_to_guest);
	t->seq_to_guest = t->seq_fin_to_guest + 1;
	if (SEQ_GT(t->seq_to_guest, t->seq_max))
		t->seq_max = t->seq_to_guest;
	t->flags |= TCP_F_FIN_SENT;
}

/**
 * tcp_data_from_sock() - send the guest what fits its window from the socket
 * @dp:		data plane
 * @f:		flow, established
 *
 * Peeks at the socket from where the last peek stopped, directly into frames,
 * until the guest's window is full or the socket has nothing more.  End of
 * file, once every byte before it is out, becomes our FIN.
 *
 * Return: 0, or -1 if the socket failed (the caller resets the flow)
 */
int tcp_data_from_sock(struct dp *dp, struct flow *f)
{
	size_t hdr = DP_ETH_HLEN + ip_hdr_len(&f->key.guest_addr) + TCP_HLEN;
	size_t seg_max = tcp_frame_payload(dp, f);
	struct iovec iov[DP_TCP_RECV_FRAMES];
	struct tcp_flow *t = &f->tcp;

	t->flags &= ~TCP_F_SEND_DUE;
	if (f->state != TCP_ST_ESTABLISHED ||
	    (t->flags & (TCP_F_FIN_SENT | TCP_F_FIN_ACKED)))
		return 0;

	if (tcp_consume(f))
		return -1;

	for (;;) {
		uint32_t flight = t->seq_to_guest - t->seq_acked;
		struct msghdr mh = { .msg_iov = iov };
		size_t avail, want = 0;
		unsigned n, i;
		ssize_t rc;

		if (t->flags & TCP_F_HOST_EOF &&
		    t->seq_to_guest == t->seq_fin_to_guest) {
			tcp_send_fin(dp, f);
			return 0;
		}

		if (flight >= t->wnd_from_guest)
			return 0;

		avail = t->wnd_from_guest - flight;
		n = (unsigned)((avail + seg_max - 1) / seg_max);
		if (n > DP_TCP_RECV_FRAMES)
			n = DP_TCP_RECV_FRAMES;
		n = tap_tx_reserve(dp, n);

		for (i = 0; i < n; i++) {
			size_t len = avail - want < seg_max ? avail - want :
							      seg_max;

			iov[i].iov_base = tap_tx_ahead(dp, i) + hdr;
			iov[i].iov_len = len;
			want += len;
		}
		mh.msg_iovlen = n;

		do
			rc = recvmsg(f->sock, &mh, MSG_PEEK | MSG_DONTWAIT);
		while (rc < 0 && errno == EINTR);

		if (rc < 0)
			return errno == EAGAIN ? 0 : -1;

		if (rc == 0) {
			t->flags |= TCP_F_HOST_EOF;
			t->seq_fin_to_guest = t->seq_to_guest;
			continue;
		}

		tcp_tx_data(dp, f, iov, (size_t)rc);
		if ((size_t)rc < want)
			return 0;
	}
}
