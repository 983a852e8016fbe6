/* tcp.c - TCP between the guest and host sockets, translated at layer 4
 *
 * Theory of operation
 * -------------------
 * There is no TCP stack here.  Each guest connection is spliced onto one
 * ordinary host socket, and the host kernel does the real TCP work towards the
 * peer: congestion control, retransmission, buffering.  This file only speaks
 * enough TCP towards the guest to move bytes between its segments and the
 * socket, pasta-style, with two rules that keep memory bounded:
 *
 * - guest to host: a segment's payload is written to the socket, and only
 *   the bytes the socket took are acknowledged.  What does not fit is simply
 *   not acked, and the guest retransmits it: the socket's send buffer is the
 *   only buffer for data in sequence.  A segment ahead of a hole (a loss, or
 *   reordering) is held in the flow's out-of-order queue (tcp_ooo.c, bounded)
 *   and announced with SACK blocks; once the hole is filled it follows the
 *   filling segment to the socket.  The window we advertise is the
 *   socket's free send buffer (SO_SNDBUF less what SO_MEMINFO says is
 *   queued); when the socket is nearly full we watch for EPOLLOUT and send
 *   a window update once it drains.  Data beyond the right edge of the
 *   windows we advertised is not taken, in sequence or not: the guest's
 *   own TCP keeps to them, and a guest that does not gets nothing for it.
 *   Held runs are fed to the socket one at a time, and the feeding stops
 *   at the first write the socket does not take whole (tcp_ooo_feed()):
 *   no write can hand the loop back the data it just queued.
 * - host to guest: data stays in the socket's receive queue until the guest
 *   acks it.  It is read with MSG_PEEK at the socket's SO_PEEK_OFF offset
 *   (which the kernel advances past what we peeked), straight into the
 *   payload area of several transmit frames at once (one recvmsg() with an
 *   iovec spanning up to DP_TCP_RECV_FRAMES frames); the headers are written
 *   around it afterwards.  With virtio-net headers (tap.c) a frame holds as
 *   many whole MSS of payload as fit one IP datagram, sent as one GSO
 *   segment whose checksum the guest's kernel completes if it needs to;
 *   without them, one MSS per frame and a computed checksum.  Acked bytes
 *   are dropped with recv(MSG_TRUNC).  To retransmit, we rewind: SO_PEEK_OFF
 *   back to zero, the next sequence number back to the guest's last ack, and
 *   everything from there is sent again (go-back-N, on three duplicate ACKs
 *   or on a retransmission timeout).
 *
 * Segments from the guest are validated (length, data offset, checksum,
 * bounded option parsing) and acted upon at once, except for what is cheaper
 * in bulk: payloads are queued (pointing into the receive ring) and written
 * with one sendmsg() per flow at the end of the receive batch
 * (tcp_batch_end(), called by dp.c before the ring is reused), followed by
 * one ACK per flow, acked bytes are discarded and new host data is sent.
 *
 * Life of a connection (guest-initiated; its TCP_ST_* states are flow.h's
 * enum flow_state, in struct flow's @state):
 *
 *   guest SYN -> TCP_ST_CONNECTING: non-blocking connect() to fwd.c's address
 *     connect() done -> SYN-ACK to the guest, TCP_ST_SYN_ACK_SENT
 *     connect() failed, or DP_TCP_CONNECT_TIMEOUT_MS -> RST (or ICMP
 *     unreachable) to the guest
 *   guest ACKs the SYN-ACK -> TCP_ST_ESTABLISHED
 *
 * Closing is a pair of independent half-closes, kept as flags so that each
 * direction keeps working while the other is shut:
 *
 *   guest FIN, once all its data is in the socket -> shutdown(SHUT_WR)
 *   socket EOF, once all host data went out -> FIN to the guest
 *   both done and our FIN acked -> flow released (socket closed)
 *   guest RST -> close with SO_LINGER 0, so the host peer sees a reset
 *   socket error (ECONNRESET...) -> RST to the guest
 *
 * Life of a connection (host-initiated, port forwarding):
 *
 *   fwd.c accepts on a forwarded port -> tcp_conn_from_host(): the socket
 *     becomes a flow keyed by the guest's side of the forward and the client
 *     as the guest sees it; SYN to the guest (MSS, window scale offered),
 *     TCP_ST_SYN_SENT.  Refused (socket closed with SO_LINGER 0) while the
 *     guest's MAC is unknown, or if that flow already exists
 *   guest SYN-ACK acking our SYN -> its ISN, MSS, window scale and window
 *     are recorded, our ACK goes out, TCP_ST_ESTABLISHED
 *   guest RST acking our SYN (closed port) -> socket closed with SO_LINGER
 *     0, so the host client's connect() sees a reset at once
 *   no answer -> the SYN again, DP_TCP_RTO_MS doubling up to
 *     DP_TCP_RTO_MAX_MS, and after DP_TCP_FWD_SYN_RETRIES (about 23 s) a RST
 *     both ways
 *
 * From TCP_ST_ESTABLISHED on, everything above applies unchanged (data the
 * host client wrote before the guest answered is still in the socket, sent
 * once established): nothing there assumes who connected.  Addresses are
 * union inany_addr throughout and frames go through
 * ip_tx_start()/ip_tx_commit(), so IPv6 needs no second copy either.
 *
 * Timers: one per flow (flow_timer_set()): the connect timeout (or the SYN
 * retransmissions of a forwarded connection), then the retransmission timer
 * (DP_TCP_RTO_MS doubling to DP_TCP_RTO_MAX_MS; after DP_TCP_RETRIES
 * expiries without progress both sides are reset), which also probes a zero
 * window, and otherwise the idle timeouts: DP_TCP_FIN_TIMEOUT_MS once either
 * side sent a FIN, DP_TCP_IDLE_TIMEOUT_MS when established.
 *
 * Limits
 * ------
 * Connections share the flow table (DP_FLOW_MAX flows): a SYN that finds it
 * full gets a RST, a forwarded connection is refused.  No per-connection buffer exists: the host kernel's socket
 * buffers are the only ones, so the windows we advertise are capped at
 * DP_TCP_WND_MAX and the window scale we offer is DP_TCP_WS.  The guest's TAP
 * drops frames when its transmit ring is full, so the windows of all open
 * connections together invite at most DP_TCP_GUEST_QUEUE frames (each gets
 * DP_TCP_WND_MIN_SEGS at least), of the size the connection's data frames
 * have had lately (with TSO up to 64 KiB at any MTU), or of the MSS.
 * Out-of-order guest data is held within the DP_TCP_OOO_* limits.  We send
 * SACK blocks but ignore the guest's (a rewind resends from its last ACK),
 * and there are no timestamps.
 * A failed connect() is a RST, or an ICMP host or network unreachable for
 * EHOSTUNREACH and ENETUNREACH (the guest's connect() fails at once).  Needs
 * SO_PEEK_OFF on TCP sockets (Linux 6.10).
 */

#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "checksum.h"
#include "dp.h"
#include "dp_limits.h"
#include "flow.h"
#include "fwd.h"
#include "inany.h"
#include "ip.h"
#include "tap.h"
#include "tcp.h"
#include "tcp_buf.h"
#include "tcp_conn.h"
#include "tcp_internal.h"
#include "tcp_ooo.h"
#include "util.h"

static void tcp_timer_arm(struct dp *dp, struct flow *f);

/**
 * tcp_flow_close() - release a TCP flow and its socket
 * @dp:		data plane
 * @f:		flow, type FLOW_TCP
 * @why:	reason, for flow_close()
 */
static void tcp_flow_close(struct dp *dp, struct flow *f,
			   enum flow_close_reason why)
{
	tcp_ooo_free(dp, &f->tcp.ooo);
	dp->tcp.conns--;
	flow_close(dp, f, why);
}

/**
 * tcp_close_rst_host() - release a flow so that the host peer sees a reset
 * @dp:		data plane
 * @f:		flow, freed
 */
static void tcp_close_rst_host(struct dp *dp, struct flow *f)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (f->sock >= 0)
		setsockopt(f->sock, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	tcp_flow_close(dp, f, FLOW_CLOSE_RESET);
}

/**
 * tcp_reset() - reset a connection both ways and release it
 * @dp:		data plane
 * @f:		flow, freed
 *
 * The RST carries the highest sequence number we sent: if the guest has not
 * received all of it, it answers with a challenge ACK, which finds no flow and
 * gets a RST with its own acknowledgement number (tcp_rst_reply()).
 */
static void tcp_reset(struct dp *dp, struct flow *f)
{
	if (f->state != TCP_ST_CONNECTING)
		tcp_send_ctl(dp, f, TCP_RST | TCP_ACK, f->tcp.seq_max);
	else
		tcp_send_ctl(dp, f, TCP_RST | TCP_ACK, 0);
	tcp_close_rst_host(dp, f);
}

/**
 * tcp_reset_from_host() - the socket failed or was reset: tell the guest
 * @dp:		data plane
 * @f:		flow, freed
 */
static void tcp_reset_from_host(struct dp *dp, struct flow *f)
{
	DP_COUNT(dp, tcp_rst_from_host);
	tcp_reset(dp, f);
}

/**
 * tcp_rewind() - go back to the guest's last ack and send from there again
 * @f:		flow
 *
 * Return: 0, or -1 if the socket failed
 */
static int tcp_rewind(struct flow *f)
{
	struct tcp_flow *t = &f->tcp;
	int zero = 0;

	if (tcp_consume(f) ||
	    setsockopt(f->sock, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)))
		return -1;

	t->seq_to_guest = t->seq_consumed;
	t->seq_recover = t->seq_max;
	t->flags &= ~TCP_F_FIN_SENT;
	t->dup_acks = 0;
	return 0;
}

/**
 * tcp_check_close() - release the flow once both half-closes are complete
 * @dp:		data plane
 * @f:		flow
 *
 * Return: true if @f was freed
 */
static bool tcp_check_close(struct dp *dp, struct flow *f)
{
	uint16_t both = TCP_F_GUEST_FIN | TCP_F_FIN_ACKED;

	if ((f->tcp.flags & both) != both)
		return false;

	DP_COUNT(dp, tcp_conn_closed);
	tcp_flow_close(dp, f, FLOW_CLOSE_DONE);
	return true;
}

/**
 * tcp_flush() - a flow's deferred work at the end of a receive batch
 * @dp:		data plane
 * @f:		flow
 * @iov:	guest payloads queued for the socket, in sequence order
 * @n:		entries in @iov
 *
 * Writes the payloads with one sendmsg() (the bytes taken are the ones we
 * ack), completes a queued guest FIN, discards acked bytes, sends new host
 * data, and one ACK if none of that data carried it.
 */
static void tcp_flush(struct dp *dp, struct flow *f, struct iovec *iov,
		      unsigned n)
{
	struct tcp_flow *t = &f->tcp;

	t->flags &= ~TCP_F_BATCHED;

	if (n) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
		size_t total = 0;
		unsigned i;
		ssize_t rc;

		for (i = 0; i < n; i++)
			total += iov[i].iov_len;

		do
			rc = sendmsg(f->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (rc < 0 && errno == EINTR);

		if (rc < 0 && errno != EAGAIN) {
			tcp_reset_from_host(dp, f);
			return;
		}
		if (rc < 0)
			rc = 0;

		t->seq_from_guest += (uint32_t)rc;
		t->flags |= TCP_F_ACK_DUE;
		if ((size_t)rc < total) {
			DP_COUNT(dp, tcp_sock_full);
			if (!(t->flags & TCP_F_WND_LIMITED)) {
				t->flags |= TCP_F_WND_LIMITED;
				if (tcp_epoll_out(dp, f, true)) {
					tcp_reset(dp, f);
					return;
				}
			}
		}
	}

	if (t->flags & TCP_F_GUEST_FIN_QUEUED) {
		t->flags &= ~TCP_F_GUEST_FIN_QUEUED;
		if (t->seq_from_guest == t->seq_fin_from_guest) {
			shutdown(f->sock, SHUT_WR);
			t->seq_from_guest++;
			t->flags |= TCP_F_GUEST_FIN | TCP_F_ACK_DUE;
		}
	}
	/* what did not fit is dropped: the guest sends it again, and held
	 * runs stay held until the socket took them */
	t->seq_queued = t->seq_from_guest;
	tcp_ooo_release(dp, &t->ooo, t->seq_from_guest);

	if (t->flags & TCP_F_SEND_DUE && tcp_data_from_sock(dp, f)) {
		tcp_reset_from_host(dp, f);
		return;
	}
	if (tcp_consume(f)) {
		tcp_reset_from_host(dp, f);
		return;
	}

	if (t->flags & TCP_F_ACK_DUE) {
		if (tcp_wnd_update(dp, f)) {
			tcp_reset(dp, f);
			return;
		}
		tcp_send_ctl(dp, f, TCP_ACK, t->seq_to_guest);
	}

	if (!tcp_check_close(dp, f))
		tcp_timer_arm(dp, f);
}

/**
 * tcp_batch_end() - do the TCP work deferred during a receive batch
 * @dp:		data plane
 *
 * Called by dp.c after each batch of frames is dispatched, while the receive
 * ring still holds the payloads the batch points to.  Entries of one flow are
 * gathered into one iovec, in arrival (that is, sequence) order.
 */
void tcp_batch_end(struct dp *dp)
{
	struct tcp_ctx *b = &dp->tcp;
	struct iovec iov[DP_TCP_BATCH];
	unsigned i, j;

	for (i = 0; i < b->count; i++) {
		struct tcp_batch_ent *e = &b->ent[i];
		unsigned n = 0;
		struct flow *f;

		if (e->idx == UINT32_MAX)
			continue;
		f = flow_at(dp, e->idx);

		for (j = i; j < b->count; j++) {
			struct tcp_batch_ent *o = &b->ent[j];

			if (o->idx != e->idx || o->gen != e->gen)
				continue;
			if (o->data) {
				iov[n].iov_base = (void *)o->data;
				iov[n++].iov_len = o->len;
			}
			if (j > i)
				o->idx = UINT32_MAX;
		}

		if (flow_closed(f) || f->gen != e->gen ||
		    !(f->tcp.flags & TCP_F_BATCHED))
			continue;

		tcp_flush(dp, f, iov, n);
	}

	b->count = 0;
}

/**
 * tcp_batch_add() - defer a flow's work, and maybe a payload, to batch end
 * @dp:		data plane
 * @f:		flow
 * @data:	guest payload for the socket, or NULL
 * @len:	bytes at @data
 * @held:	@data is in the flow's out-of-order queue, valid until the
 *		flow's tcp_flush() (not in the receive ring)
 */
static void tcp_batch_add(struct dp *dp, struct flow *f, const uint8_t *data,
			  size_t len, bool held)
{
	struct tcp_ctx *b = &dp->tcp;
	struct tcp_batch_ent *e;
	bool in_ring;

	if (!data && (f->tcp.flags & TCP_F_BATCHED))
		return;

	e = &b->ent[b->count++];
	e->idx = flow_index(dp, f);
	e->gen = f->gen;
	e->data = data;
	e->len = len;
	f->tcp.flags |= TCP_F_BATCHED;

	/* A payload outside the receive ring (a reassembled datagram) may not
	 * outlive this call: write it out now; so does a full batch, with this
	 * entry, which the caller has already counted in @seq_queued */
	in_ring = !data || held || (data >= dp->tap.rx_buf &&
			    data < dp->tap.rx_buf + (size_t)DP_RX_RING *
						DP_FRAME_MAX);
	if (!in_ring || b->count == DP_TCP_BATCH)
		tcp_batch_end(dp);
}

/**
 * tcp_opts_parse() - read MSS, window scale and SACK from a SYN's options
 * @seg:	segment
 * @mss:	set to the MSS option's value, 0 if absent
 * @ws:		set to the window scale option's shift, -1 if absent
 * @sack_ok:	set to whether SACK is permitted
 *
 * Return: 0, or -1 if the options are malformed
 */
static int tcp_opts_parse(const struct tcp_seg *seg, unsigned *mss, int *ws,
			  bool *sack_ok)
{
	const uint8_t *o = seg->opts;
	size_t i = 0;

	*mss = 0;
	*ws = -1;
	*sack_ok = false;
	while (i < seg->opt_len) {
		uint8_t kind = o[i], len;

		if (kind == TCP_OPT_EOL)
			break;
		if (kind == TCP_OPT_NOP) {
			i++;
			continue;
		}
		if (i + 2 > seg->opt_len)
			return -1;
		len = o[i + 1];
		if (len < 2 || i + len > seg->opt_len)
			return -1;

		if (kind == TCP_OPT_MSS && len == TCP_OPT_MSS_LEN)
			*mss = rd16(o + i + 2);
		else if (kind == TCP_OPT_WS && len == TCP_OPT_WS_LEN)
			*ws = o[i + 2] > DP_TCP_WS_MAX ? DP_TCP_WS_MAX :
							 o[i + 2];
		else if (kind == TCP_OPT_SACK_OK && len == TCP_OPT_SACK_OK_LEN)
			*sack_ok = true;
		i += len;
	}

	return 0;
}

/**
 * tcp_mss() - the segment size for a guest, from its SYN's MSS option
 * @dp:		data plane
 * @guest:	the guest's address (its family sets the IP header size)
 * @mss:	the option's value, 0 if absent
 *
 * Return: @mss, or DP_TCP_MSS_DEFAULT without one, raised to DP_TCP_MSS_MIN,
 *	   and at most what the MTU carries (which wins on tiny MTUs)
 */
static uint16_t tcp_mss(const struct dp *dp, const union inany_addr *guest,
			unsigned mss)
{
	size_t mss_max = dp->cfg.mtu - ip_hdr_len(guest) - TCP_HLEN;

	if (!mss)
		mss = DP_TCP_MSS_DEFAULT;
	if (mss < DP_TCP_MSS_MIN)
		mss = DP_TCP_MSS_MIN;
	return (uint16_t)(mss > mss_max ? mss_max : mss);
}

/**
 * tcp_isn() - initial sequence number of a new connection
 * @dp:		data plane, for the secret seed and the clock
 * @f:		flow, key set
 *
 * Return: a hard to guess sequence number, different per slot and over time
 */
static uint32_t tcp_isn(const struct dp *dp, const struct flow *f)
{
	uint64_t h = dp->flow.seed ^ (dp->now_ms << 20) ^
		     ((uint64_t)f->gen << 40) ^ flow_index(dp, f);

	h *= 0x9e3779b97f4a7c15ULL;
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	return (uint32_t)(h >> 32);
}

/**
 * tcp_connected() - the host socket connected: send the guest our SYN-ACK
 * @dp:		data plane
 * @f:		flow in TCP_ST_CONNECTING
 */
static void tcp_connected(struct dp *dp, struct flow *f)
{
	struct tcp_flow *t = &f->tcp;

	if (flow_epoll_set(dp, f, TCP_EPOLL_EVENTS)) {
		DP_COUNT(dp, drop_tcp_socket);
		tcp_reset(dp, f);
		return;
	}

	DP_COUNT(dp, tcp_conn_opened);
	flow_set_state(f, TCP_ST_SYN_ACK_SENT);
	t->rto_at = 0;
	if (tcp_wnd_update(dp, f)) {
		tcp_reset(dp, f);
		return;
	}
	tcp_send_ctl(dp, f, TCP_SYN | TCP_ACK, t->seq_to_guest);
	t->seq_to_guest = t->seq_max = t->seq_to_guest + 1;
	t->seq_consumed = t->seq_to_guest;
}

/**
 * tcp_conn_failed() - the host connect() failed: reset the guest's attempt
 * @dp:		data plane
 * @f:		flow in TCP_ST_CONNECTING, freed
 * @err:	errno of the failure
 */
static void tcp_conn_failed(struct dp *dp, struct flow *f, int err)
{
	DP_COUNT(dp, tcp_conn_failed);

	if (err == EHOSTUNREACH || err == ENETUNREACH) {
		/* quote the guest's SYN: ports and sequence number */
		uint8_t head[TCP_SYN_QUOTE_LEN];
		uint32_t seq = htonl(f->tcp.seq_from_guest - 1);

		wr16(head + TCP_OFF_SPORT, f->key.guest_port);
		wr16(head + TCP_OFF_DPORT, f->key.remote_port);
		memcpy(head + TCP_OFF_SEQ, &seq, sizeof(seq));
		ip_tx_unreach(dp, &f->key.remote_addr, &f->key.guest_addr,
			      &f->key.remote_addr, IPPROTO_TCP, head, TCP_HLEN,
			      err == EHOSTUNREACH ? TCP_ICMP_HOST_UNREACH :
						    TCP_ICMP_NET_UNREACH, 0);
	} else {
		tcp_send_ctl(dp, f, TCP_RST | TCP_ACK, 0);
	}
	tcp_flow_close(dp, f, FLOW_CLOSE_SOCKET);
}

/**
 * tcp_conn_from_guest() - a guest SYN without a flow: open the host socket
 * @dp:		data plane
 * @p:		packet carrying the SYN
 * @seg:	the SYN
 * @key:	flow key of the connection
 */
static void tcp_conn_from_guest(struct dp *dp, const struct l4_pkt *p,
				const struct tcp_seg *seg,
				const struct flow_key *key)
{
	struct sockaddr_storage sa;
	struct tcp_flow *t;
	socklen_t sa_len;
	int one = 1, zero = 0;
	struct flow *f;
	bool sack_ok;
	unsigned mss;
	int ws;

	if (tcp_opts_parse(seg, &mss, &ws, &sack_ok)) {
		DP_COUNT(dp, drop_tcp_malformed);
		return;
	}

	if (fwd_guest_to_host(dp, &p->dst, seg->dport, IPPROTO_TCP, &sa,
			      &sa_len)) {
		DP_COUNT(dp, drop_unreachable);
		tcp_rst_reply(dp, p, seg);
		return;
	}

	f = flow_alloc(dp, FLOW_TCP, key);
	if (!f) {
		tcp_rst_reply(dp, p, seg);
		return;
	}
	dp->tcp.conns++;

	/* EMFILE: none left even after recycling a flow */
	if (flow_sock_attach(dp, f, sa.ss_family,
			     SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			     IPPROTO_TCP) ||
	    setsockopt(f->sock, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) ||
	    fwd_bind_outbound(dp, f->sock, sa.ss_family)) {
		DP_COUNT(dp, drop_tcp_socket);
		tcp_flow_close(dp, f, FLOW_CLOSE_SOCKET);
		tcp_rst_reply(dp, p, seg);
		return;
	}
	/* the guest already coalesced what it wanted to: don't delay it */
	setsockopt(f->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	t = &f->tcp;
	flow_set_state(f, TCP_ST_CONNECTING);
	t->seq_from_guest = t->seq_queued = t->seq_ack_sent = seg->seq + 1;
	t->seq_wnd_edge = t->seq_from_guest;	/* nothing offered yet */
	t->seq_to_guest = t->seq_max = t->seq_acked = tcp_isn(dp, f);
	t->seq_consumed = t->seq_recover = t->seq_to_guest;
	t->mss = tcp_mss(dp, &f->key.guest_addr, mss);
	if (ws >= 0) {
		t->flags |= TCP_F_WS;
		t->ws_from_guest = (uint8_t)ws;
		t->ws_to_guest = DP_TCP_WS;
	}
	if (sack_ok)
		t->flags |= TCP_F_SACK;
	t->wnd_from_guest = seg->wnd;	/* never scaled in a SYN */
	t->rto_ms = DP_TCP_RTO_MS;
	t->last_act_ms = dp->now_ms;
	t->rto_at = dp->now_ms + DP_TCP_CONNECT_TIMEOUT_MS;

	switch (flow_connect(dp, f, &sa, sa_len, TCP_EPOLL_EVENTS | EPOLLOUT,
			     DP_CNT_drop_tcp_socket)) {
	case 0:
		tcp_connected(dp, f);
		if (flow_closed(f))
			return;
		break;
	case 1:		/* EINPROGRESS: EPOLLOUT says when it is done */
		break;
	default:
		tcp_conn_failed(dp, f, errno);
		return;
	}

	tcp_timer_arm(dp, f);
}

/**
 * tcp_ack_input() - process the acknowledgement and window of a segment
 * @dp:		data plane
 * @f:		flow, established
 * @seg:	segment, TCP_ACK set
 *
 * Return: false if the segment acks what we never sent (then dropped)
 */
static bool tcp_ack_input(struct dp *dp, struct flow *f,
			  const struct tcp_seg *seg)
{
	struct tcp_flow *t = &f->tcp;
	uint32_t wnd = (uint32_t)seg->wnd << t->ws_from_guest;

	if (SEQ_GT(seg->ack, t->seq_max)) {
		t->flags |= TCP_F_ACK_DUE;
		return false;
	}

	if (SEQ_GT(seg->ack, t->seq_acked)) {
		t->seq_acked = seg->ack;
		if (t->flags & TCP_F_HOST_EOF &&
		    SEQ_GT(seg->ack, t->seq_fin_to_guest))
			t->flags |= TCP_F_FIN_ACKED;
		if (SEQ_LT(t->seq_to_guest, t->seq_acked))
			t->seq_to_guest = t->seq_acked;
		t->dup_acks = 0;
		t->retries = 0;
		t->rto_ms = DP_TCP_RTO_MS;
		t->rto_at = 0;
		t->flags |= TCP_F_SEND_DUE;
	} else if (seg->ack == t->seq_acked) {
		if (!seg->len && !(seg->flags & TCP_FIN) &&
		    wnd == t->wnd_from_guest && t->seq_max != t->seq_acked) {
			if (++t->dup_acks == TCP_DUP_ACK_THRESHOLD &&
			    SEQ_GT(t->seq_acked, t->seq_recover)) {
				DP_COUNT(dp, tcp_retransmits);
				if (tcp_rewind(f)) {
					tcp_reset_from_host(dp, f);
					return false;
				}
				t->flags |= TCP_F_SEND_DUE;
			}
		} else if (t->seq_max == t->seq_acked) {
			t->retries = 0;	/* a live guest, e.g. probed */
		}
	} else {
		return true;	/* an old ack: leave the window alone */
	}

	if (wnd > t->wnd_from_guest)
		t->flags |= TCP_F_SEND_DUE;
	t->wnd_from_guest = wnd;
	if (!wnd)
		t->flags &= ~TCP_F_SEND_DUE;
	return true;
}

/**
 * tcp_ooo_feed() - queue the held data that continues what is queued
 * @dp:		data plane
 * @f:		flow, established
 *
 * Each pass queues the rest of one held run (tcp_ooo_next()), so there are at
 * most DP_TCP_OOO_SEGS passes.  A pass may fill the batch, and the batch end
 * it causes (tcp_flush()) writes to the socket: if the socket took less than
 * was queued, @seq_queued goes back to what it took, and the runs after it
 * would be offered again, and again fail to fit, forever.  So the loop stops
 * as soon as a write came up short: what is held stays held until the
 * socket has room (EPOLLOUT, tcp_sock_event()) or the guest sends again.
 */
static void tcp_ooo_feed(struct dp *dp, struct flow *f)
{
	struct tcp_flow *t = &f->tcp;
	const uint8_t *data;
	size_t len;

	while ((data = tcp_ooo_next(t->ooo, t->seq_queued, &len))) {
		uint32_t want = t->seq_queued + (uint32_t)len;

		t->seq_queued = want;
		tcp_batch_add(dp, f, data, len, true);
		if (flow_closed(f) || t->seq_queued != want)
			return;	/* closed, or a write came up short */
	}
}

/**
 * tcp_data_input() - take the payload and FIN of a segment
 * @dp:		data plane
 * @f:		flow, established
 * @seg:	segment
 *
 * In-sequence payload is queued for the socket (tcp_flush() writes it), up
 * to the right edge of the windows we advertised: what lies beyond is not
 * taken (the guest sends it again once the window opens), nor its FIN.  Then
 * whatever the out-of-order queue holds that now continues it is queued too
 * (tcp_ooo_feed()).  A payload ahead of it goes to that queue (tcp_ooo.c) if
 * it lies inside the window, the socket is not full (TCP_F_WND_LIMITED: a
 * hole we made by a short write is no loss, the guest sends it again
 * anyway) and the queue has room; else it is dropped.  Either way an
 * immediate duplicate ACK (with SACK blocks, if permitted) makes the guest
 * resend the hole early.
 */
static void tcp_data_input(struct dp *dp, struct flow *f,
			   const struct tcp_seg *seg)
{
	struct tcp_flow *t = &f->tcp;
	const uint8_t *data = seg->data;
	bool fin = seg->flags & TCP_FIN;
	size_t len = seg->len;
	uint32_t seq = seg->seq;

	if (len)	/* the frame's size, for tcp_wnd_update() */
		t->frame_bytes += (uint32_t)(len / DP_TCP_FRAME_AVG) -
				  t->frame_bytes / DP_TCP_FRAME_AVG;
	if (!len && !fin) {
		/* an old sequence number: a window probe or a keepalive */
		if (SEQ_LT(seq, t->seq_queued))
			t->flags |= TCP_F_ACK_DUE;
		return;
	}

	if (t->flags & (TCP_F_GUEST_FIN | TCP_F_GUEST_FIN_QUEUED)) {
		t->flags |= TCP_F_ACK_DUE;	/* a retransmitted FIN */
		return;
	}

	if (SEQ_LT(seq, t->seq_queued)) {
		uint32_t skip = t->seq_queued - seq;

		if (skip > len) {
			t->flags |= TCP_F_ACK_DUE;	/* all old */
			return;
		}
		data += skip;
		len -= skip;
		seq = t->seq_queued;
	} else if (SEQ_GT(seq, t->seq_queued)) {
		if (fin || SEQ_GT(seq + (uint32_t)len, t->seq_wnd_edge) ||
		    t->flags & TCP_F_WND_LIMITED ||
		    tcp_ooo_insert(dp, &t->ooo, t->seq_queued, seq, data, len))
			DP_COUNT(dp, drop_tcp_out_of_window);
		else
			DP_COUNT(dp, tcp_ooo_held);
		tcp_send_ctl(dp, f, TCP_ACK, t->seq_to_guest);
		return;
	}

	if (SEQ_GT(seq + (uint32_t)len, t->seq_wnd_edge)) {
		DP_COUNT(dp, drop_tcp_beyond_window);
		len = SEQ_GT(t->seq_wnd_edge, seq) ? t->seq_wnd_edge - seq : 0;
		fin = false;
	}
	if (fin) {
		t->flags |= TCP_F_GUEST_FIN_QUEUED;
		t->seq_fin_from_guest = t->seq_queued + (uint32_t)len;
	}
	t->flags |= TCP_F_ACK_DUE;
	if (!len)
		return;
	t->seq_queued += (uint32_t)len;
	tcp_batch_add(dp, f, data, len, false);

	/* the batch may have been written out meanwhile, and the flow closed */
	if (!fin && !flow_closed(f))
		tcp_ooo_feed(dp, f);
}

/**
 * tcp_rst_acceptable() - tell whether a guest RST is for this connection
 * @t:		TCP state
 * @seq:	sequence number of the RST
 *
 * Return: true if @seq is in the window we advertised (RFC 5961 would want
 *	   it exact; the guest is on our side of the link, this is enough to
 *	   ignore stale resets)
 */
static bool tcp_rst_acceptable(const struct tcp_flow *t, uint32_t seq)
{
	uint32_t wnd = t->wnd_to_guest > 0xffff ? t->wnd_to_guest : 0xffff;

	return SEQ_GE(seq, t->seq_from_guest) &&
	       SEQ_LE(seq, t->seq_from_guest + wnd);
}

/**
 * tcp_syn_ack_input() - the guest answered the SYN of a forwarded connection
 * @dp:		data plane
 * @f:		flow in TCP_ST_SYN_SENT
 * @seg:	segment from the guest, not a RST
 *
 * A SYN-ACK that acks our SYN gives the guest's ISN, MSS, window scale and
 * window: the connection is established and the batch end sends our ACK (with
 * any data the host client already wrote).  An ACK of anything else gets a
 * RST (RFC 793, SYN-SENT state); everything else is ignored.
 */
static void tcp_syn_ack_input(struct dp *dp, struct flow *f,
			      const struct tcp_seg *seg)
{
	struct tcp_flow *t = &f->tcp;
	bool sack_ok;
	unsigned mss;
	int ws;

	if (!(seg->flags & TCP_ACK))
		return;		/* a simultaneous open: not from a server */
	if (seg->ack != t->seq_acked + 1) {
		DP_COUNT(dp, drop_tcp_bad_ack);
		tcp_send_ctl(dp, f, TCP_RST, seg->ack);
		return;
	}
	if (!(seg->flags & TCP_SYN))
		return;
	if (tcp_opts_parse(seg, &mss, &ws, &sack_ok)) {
		DP_COUNT(dp, drop_tcp_malformed);
		return;
	}

	t->seq_from_guest = t->seq_queued = t->seq_ack_sent = seg->seq + 1;
	/* the window of our SYN, which the guest may fill already */
	t->seq_wnd_edge = t->seq_from_guest +
			  (t->wnd_to_guest > 0xffff ? 0xffff : t->wnd_to_guest);
	t->mss = tcp_mss(dp, &f->key.guest_addr, mss);
	if (ws >= 0) {
		t->ws_from_guest = (uint8_t)ws;
	} else {
		/* no scaling either way (RFC 7323) */
		t->flags &= ~TCP_F_WS;
		t->ws_to_guest = 0;
		t->ws_from_guest = 0;
	}
	if (sack_ok)
		t->flags |= TCP_F_SACK;
	t->wnd_from_guest = seg->wnd;	/* never scaled in a SYN */

	flow_set_state(f, TCP_ST_ESTABLISHED);
	t->seq_acked = seg->ack;
	t->retries = 0;
	t->rto_ms = DP_TCP_RTO_MS;
	t->rto_at = 0;
	DP_COUNT(dp, tcp_fwd_conn_opened);

	if (tcp_wnd_update(dp, f)) {
		tcp_reset(dp, f);
		return;
	}
	/* our ACK, and whatever the host client wrote meanwhile */
	t->flags |= TCP_F_ACK_DUE | TCP_F_SEND_DUE;
}

/**
 * tcp_flow_input() - a guest segment for an existing flow
 * @dp:		data plane
 * @f:		flow
 * @seg:	validated segment
 */
static void tcp_flow_input(struct dp *dp, struct flow *f,
			   const struct tcp_seg *seg)
{
	struct tcp_flow *t = &f->tcp;

	t->last_act_ms = dp->now_ms;

	if (seg->flags & TCP_RST) {
		if (f->state == TCP_ST_SYN_SENT) {
			/* acceptable if it acks our SYN (RFC 793): the
			 * guest port is closed */
			if (!(seg->flags & TCP_ACK) ||
			    seg->ack != t->seq_acked + 1) {
				DP_COUNT(dp, drop_tcp_out_of_window);
				return;
			}
			DP_COUNT(dp, tcp_fwd_conn_failed);
		} else if (!tcp_rst_acceptable(t, seg->seq)) {
			DP_COUNT(dp, drop_tcp_out_of_window);
			return;
		}
		DP_COUNT(dp, tcp_rst_from_guest);
		tcp_close_rst_host(dp, f);
		return;
	}

	switch (f->state) {
	case TCP_ST_CONNECTING:
		return;		/* a retransmitted SYN: connect() is on it */
	case TCP_ST_SYN_SENT:
		tcp_syn_ack_input(dp, f, seg);
		if (f->state != TCP_ST_ESTABLISHED)
			return;
		break;
	case TCP_ST_SYN_ACK_SENT:
		if (seg->flags & TCP_SYN) {
			if (!(seg->flags & TCP_ACK) &&
			    seg->seq + 1 == t->seq_from_guest)
				tcp_send_ctl(dp, f, TCP_SYN | TCP_ACK,
					     t->seq_acked);
			return;
		}
		if (!(seg->flags & TCP_ACK))
			return;
		if (seg->ack != t->seq_acked + 1) {
			DP_COUNT(dp, drop_tcp_bad_ack);
			tcp_send_ctl(dp, f, TCP_RST, seg->ack);
			return;
		}
		flow_set_state(f, TCP_ST_ESTABLISHED);
		t->seq_acked = seg->ack;
		t->wnd_from_guest = (uint32_t)seg->wnd << t->ws_from_guest;
		t->retries = 0;
		t->rto_ms = DP_TCP_RTO_MS;
		t->rto_at = 0;
		/* the host may have spoken first */
		t->flags |= TCP_F_SEND_DUE;
		tcp_data_input(dp, f, seg);
		break;
	case TCP_ST_ESTABLISHED:
		if (seg->flags & TCP_SYN) {
			/* RFC 5961 challenge ACK: a stale guest answers RST */
			tcp_send_ctl(dp, f, TCP_ACK, t->seq_to_guest);
			return;
		}
		if (!(seg->flags & TCP_ACK))
			return;
		if (tcp_ack_input(dp, f, seg) && !flow_closed(f))
			tcp_data_input(dp, f, seg);
		break;
	default:
		return;
	}

	/* a payload written out early (not in the receive ring) may have
	 * failed and released the flow */
	if (!flow_closed(f))
		tcp_batch_add(dp, f, NULL, 0, false);
}

/**
 * tcp_input() - handle one TCP segment from the guest
 * @dp:		data plane
 * @p:		validated IP packet carrying it
 */
void tcp_input(struct dp *dp, const struct l4_pkt *p)
{
	const uint8_t *th = p->l4;
	struct flow_key key;
	struct tcp_seg seg;
	struct flow *f;
	size_t hlen;
	uint32_t v;

	if (p->l4_len < TCP_HLEN) {
		DP_COUNT(dp, drop_tcp_malformed);
		return;
	}

	hlen = (size_t)(th[TCP_OFF_DOFF] >> 4) * 4;
	if (hlen < TCP_HLEN || hlen > p->l4_len) {
		DP_COUNT(dp, drop_tcp_malformed);
		return;
	}

	switch (tap_rx_l4_csum(dp, th, TCP_OFF_CSUM, true)) {
	case TAP_CSUM_BAD:
		return;
	case TAP_CSUM_VERIFY:
		if (csum(th, p->l4_len, ip_pseudo_csum(&p->src, &p->dst,
						       IPPROTO_TCP,
						       p->l4_len))) {
			DP_COUNT(dp, drop_tcp_checksum);
			return;
		}
		break;
	}

	seg.sport = rd16(th + TCP_OFF_SPORT);
	seg.dport = rd16(th + TCP_OFF_DPORT);
	memcpy(&v, th + TCP_OFF_SEQ, sizeof(v));
	seg.seq = ntohl(v);
	memcpy(&v, th + TCP_OFF_ACK, sizeof(v));
	seg.ack = ntohl(v);
	seg.flags = th[TCP_OFF_FLAGS];
	seg.wnd = rd16(th + TCP_OFF_WND);
	seg.opts = th + TCP_HLEN;
	seg.opt_len = hlen - TCP_HLEN;
	seg.data = th + hlen;
	seg.len = p->l4_len - hlen;

	if (!seg.sport || !seg.dport) {
		DP_COUNT(dp, drop_tcp_malformed);
		return;
	}

	flow_key_fill(&key, IPPROTO_TCP, &p->src, seg.sport, &p->dst,
		      seg.dport);
	f = flow_lookup(dp, &key);
	if (f) {
		tcp_flow_input(dp, f, &seg);
		return;
	}

	if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) == TCP_SYN) {
		tcp_conn_from_guest(dp, p, &seg, &key);
		return;
	}

	DP_COUNT(dp, drop_tcp_no_flow);
	tcp_rst_reply(dp, p, &seg);
}

/**
 * tcp_sock_drained() - the socket has room again after it was nearly full
 * @dp:		data plane
 * @f:		flow, established, TCP_F_WND_LIMITED set
 *
 * The held data that a short write left behind goes first (its batch end
 * writes it and acks it with the new window); if there is none, a window
 * update lets the guest send.  EPOLLOUT goes off unless the socket is still
 * nearly full.  @f may be closed on return (a failed write).
 *
 * Return: 0, or -1 if epoll failed (the caller resets the flow)
 */
static int tcp_sock_drained(struct dp *dp, struct flow *f)
{
	struct tcp_flow *t = &f->tcp;

	t->flags &= ~TCP_F_WND_LIMITED;
	tcp_ooo_feed(dp, f);
	if (flow_closed(f))
		return 0;
	if (t->flags & TCP_F_BATCHED) {
		tcp_batch_end(dp);
		if (flow_closed(f))
			return 0;
	} else {
		if (tcp_wnd_update(dp, f))
			return -1;
		tcp_send_ctl(dp, f, TCP_ACK, t->seq_to_guest);
	}
	if (t->flags & TCP_F_WND_LIMITED)
		return 0;
	return tcp_epoll_out(dp, f, false);
}

/**
 * tcp_sock_event() - handle epoll events of a flow's socket
 * @dp:		data plane
 * @f:		flow
 * @events:	epoll events
 */
void tcp_sock_event(struct dp *dp, struct flow *f, uint32_t events)
{
	struct tcp_flow *t = &f->tcp;

	t->last_act_ms = dp->now_ms;

	if (f->state == TCP_ST_CONNECTING) {
		int err = 0;
		socklen_t sl = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(f->sock, SOL_SOCKET, SO_ERROR, &err, &sl))
			err = errno;
		if (err)
			tcp_conn_failed(dp, f, err);
		else
			tcp_connected(dp, f);
		if (!flow_closed(f))
			tcp_timer_arm(dp, f);
		return;
	}

	if (events & EPOLLERR) {
		tcp_reset_from_host(dp, f);
		return;
	}

	if (events & EPOLLOUT && t->flags & TCP_F_WND_LIMITED) {
		if (tcp_sock_drained(dp, f)) {
			tcp_reset(dp, f);
			return;
		}
		if (flow_closed(f))
			return;
	}

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP) &&
	    tcp_data_from_sock(dp, f)) {
		tcp_reset_from_host(dp, f);
		return;
	}

	if (!tcp_check_close(dp, f))
		tcp_timer_arm(dp, f);
}

/**
 * tcp_timer_arm() - set the flow's deadline from its state
 * @dp:		data plane
 * @f:		flow
 *
 * The retransmission timer runs while anything we sent is unacked or the
 * guest's window is zero (then it sends probes); otherwise the idle timeout
 * of the state runs from the last activity.
 */
static void tcp_timer_arm(struct dp *dp, struct flow *f)
{
	struct tcp_flow *t = &f->tcp;
	uint64_t when;

	if (f->state == TCP_ST_CONNECTING) {
		when = t->rto_at;
	} else if (f->state == TCP_ST_SYN_ACK_SENT ||
		   f->state == TCP_ST_SYN_SENT ||
		   t->seq_max != t->seq_acked ||
		   (!t->wnd_from_guest && !(t->flags & TCP_F_FIN_ACKED))) {
		if (!t->rto_at)
			t->rto_at = dp->now_ms + t->rto_ms;
		when = t->rto_at;
	} else {
		t->rto_at = 0;
		when = t->last_act_ms +
		       (t->flags & (TCP_F_GUEST_FIN | TCP_F_HOST_EOF) ?
			DP_TCP_FIN_TIMEOUT_MS : DP_TCP_IDLE_TIMEOUT_MS);
	}

	flow_timer_set(dp, f, when);
}

/**
 * tcp_timer() - a flow's deadline passed
 * @dp:		data plane
 * @f:		flow
 */
void tcp_timer(struct dp *dp, struct flow *f)
{
	struct tcp_flow *t = &f->tcp;

	if (f->state == TCP_ST_CONNECTING) {
		tcp_conn_failed(dp, f, ETIMEDOUT);
		return;
	}

	if (t->rto_at && t->rto_at <= dp->now_ms) {
		t->rto_at = 0;
		if (f->state == TCP_ST_SYN_SENT &&
		    ++t->retries > DP_TCP_FWD_SYN_RETRIES) {
			/* the guest never answered: the host client gets a
			 * reset, and a half-open guest socket too */
			DP_COUNT(dp, tcp_fwd_conn_failed);
			tcp_send_ctl(dp, f, TCP_RST, t->seq_max);
			tcp_close_rst_host(dp, f);
			return;
		}
		if (f->state != TCP_ST_SYN_SENT &&
		    ++t->retries > DP_TCP_RETRIES) {
			tcp_reset(dp, f);
			return;
		}
		t->rto_ms = t->rto_ms * 2 > DP_TCP_RTO_MAX_MS ?
			    DP_TCP_RTO_MAX_MS : t->rto_ms * 2;

		if (f->state == TCP_ST_SYN_ACK_SENT) {
			DP_COUNT(dp, tcp_retransmits);
			tcp_send_ctl(dp, f, TCP_SYN | TCP_ACK, t->seq_acked);
		} else if (f->state == TCP_ST_SYN_SENT) {
			DP_COUNT(dp, tcp_retransmits);
			tcp_send_ctl(dp, f, TCP_SYN, t->seq_acked);
		} else if (t->seq_max != t->seq_acked) {
			DP_COUNT(dp, tcp_rto_expired);
			DP_COUNT(dp, tcp_retransmits);
			if (tcp_rewind(f) || tcp_data_from_sock(dp, f)) {
				tcp_reset_from_host(dp, f);
				return;
			}
		} else if (!t->wnd_from_guest) {
			/* an old sequence number: the guest answers with its
			 * current window */
			DP_COUNT(dp, tcp_window_probes);
			tcp_send_ctl(dp, f, TCP_ACK, t->seq_acked - 1);
		}
	} else if (!t->rto_at) {
		uint64_t idle = t->flags & (TCP_F_GUEST_FIN | TCP_F_HOST_EOF) ?
				DP_TCP_FIN_TIMEOUT_MS : DP_TCP_IDLE_TIMEOUT_MS;

		if (dp->now_ms - t->last_act_ms >= idle) {
			DP_COUNT(dp, tcp_idle_timeouts);
			tcp_reset(dp, f);
			return;
		}
	}

	tcp_timer_arm(dp, f);
}

/**
 * tcp_fwd_refuse() - refuse a connection accepted on a forwarded port
 * @dp:		data plane
 * @fd:		accepted socket, closed with SO_LINGER 0: the client sees a
 *		reset at once rather than an accepted connection that ends
 */
static void tcp_fwd_refuse(struct dp *dp, int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	DP_COUNT(dp, tcp_fwd_refused);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	flow_sock_close(dp, fd, FLOW_SOCK_FWD);
}

/**
 * tcp_conn_from_host() - a connection accepted on a forwarded host port
 * @dp:		data plane
 * @fd:		accepted socket, non-blocking, owned from here on
 * @src:	the host client as the guest sees it
 * @src_port:	its port, host byte order
 * @guest:	guest address to connect to
 * @guest_port:	guest port, host byte order
 *
 * The socket becomes a flow in TCP_ST_SYN_SENT and a SYN goes to the guest;
 * tcp_syn_ack_input() takes it from there.  Refused (socket reset) while the
 * guest's MAC address is unknown (it never sent a frame, so it could not be
 * reached), when the same four-tuple is already a flow, or when the flow table
 * is full.
 */
void tcp_conn_from_host(struct dp *dp, int fd, const union inany_addr *src,
			uint16_t src_port, const union inany_addr *guest,
			uint16_t guest_port)
{
	int one = 1, zero = 0;
	struct flow_key key;
	struct tcp_flow *t;
	struct flow *f;

	if (!dp->eth.guest_mac_known || !src_port) {
		tcp_fwd_refuse(dp, fd);
		return;
	}

	flow_key_fill(&key, IPPROTO_TCP, guest, guest_port, src, src_port);
	if (flow_lookup(dp, &key)) {
		tcp_fwd_refuse(dp, fd);
		return;
	}

	f = flow_adopt(dp, FLOW_TCP, &key, fd, FLOW_SOCK_FWD);
	if (!f) {
		tcp_fwd_refuse(dp, fd);
		return;
	}
	dp->tcp.conns++;

	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) ||
	    flow_epoll_set(dp, f, TCP_EPOLL_EVENTS)) {
		DP_COUNT(dp, drop_tcp_socket);
		DP_COUNT(dp, tcp_fwd_refused);
		tcp_close_rst_host(dp, f);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	t = &f->tcp;
	flow_set_state(f, TCP_ST_SYN_SENT);
	t->seq_acked = t->seq_recover = tcp_isn(dp, f);
	t->seq_to_guest = t->seq_max = t->seq_consumed = t->seq_acked + 1;
	/* until the guest's SYN-ACK says otherwise: the largest segment */
	t->mss = (uint16_t)(dp->cfg.mtu - ip_hdr_len(guest) - TCP_HLEN);
	t->flags |= TCP_F_WS;
	t->ws_to_guest = DP_TCP_WS;
	t->rto_ms = DP_TCP_RTO_MS;
	t->last_act_ms = dp->now_ms;
	if (tcp_wnd_update(dp, f)) {
		DP_COUNT(dp, drop_tcp_socket);
		DP_COUNT(dp, tcp_fwd_refused);
		tcp_close_rst_host(dp, f);
		return;
	}

	tcp_send_ctl(dp, f, TCP_SYN, t->seq_acked);
	tcp_timer_arm(dp, f);
}

/**
 * tcp_cleanup() - free what TCP flows hold besides their sockets
 * @dp:		data plane, going away
 */
void tcp_cleanup(struct dp *dp)
{
	struct flow *f;

	flow_foreach(dp, f) {
		if (f->type == FLOW_TCP)
			tcp_ooo_free(dp, &f->tcp.ooo);
	}
}
