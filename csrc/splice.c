/* splice.c - the guest's loopback to the host's: TCP by splice(2)
 *
 * Theory of operation
 * -------------------
 * pasta's -T forwards ports of the guest namespace's own loopback to the
 * host's loopback.  The guest's loopback never reaches the TAP, so Python
 * opens listening sockets inside the guest's namespace at setup (on
 * 127.0.0.1 and ::1, by netns.py's helper, passed back over SCM_RIGHTS) and
 * registers each here with dp_fwd_add_splice(), naming the host address and
 * port it leads to.  fwd.c hands their readiness to splice_accept(): each
 * connection accepted (DP_FWD_ACCEPT_BATCH per wake-up at most) becomes a
 * FLOW_SPLICE flow, whose @sock is the accepted socket (side SPLICE_NS) and
 * whose @splice.host_sock is a new non-blocking connection to the host's
 * loopback (side SPLICE_HOST), registered in epoll as EPOLL_REF_SPLICE.
 *
 * Bytes never cross user space: each direction has a pipe, filled from the
 * source socket with splice() and emptied into the other socket with
 * splice(), both non-blocking.  splice_move() alternates the two for at most
 * DP_SPLICE_ROUNDS rounds per event and direction, and each round only moves
 * bytes forward (a short write leaves them in the pipe for the next round,
 * it never hands the round its work back).  A side is watched for EPOLLIN
 * while its pipe has room, for EPOLLOUT while the other pipe holds bytes for
 * it; a full pipe stops the reading, so the loop never spins on a readable
 * socket it cannot take from.  A side that hung up (EPOLLHUP, which epoll
 * reports whatever it is asked for) leaves the epoll set for good: what it
 * still holds is read when the other side's events move the flow (that side
 * is watched for EPOLLOUT until the FIN is read, so a round that empties the
 * pipe cannot leave the rest unread for ever), and bytes still meant for it
 * cannot be delivered (a reset).
 *
 * pasta's --host-lo-to-ns-lo takes the same path the other way (nslo.c): a
 * -t connection accepted on the host from its loopback (fwd.c) becomes a
 * FLOW_SPLICE flow by splice_from_host(), whose @sock is the accepted socket
 * and whose @splice.host_sock, the socket dialled, is one of nslo.c's pool
 * of the guest's namespace, connecting to its loopback at the forward's
 * port.  The sides are named for -T (SPLICE_NS is always the flow's @sock);
 * nothing here depends on where each socket lives.
 *
 * States (flow.h): SPLICE_ST_CONNECTING until the connect() to the host
 * completes, SPLICE_ST_ESTABLISHED, SPLICE_ST_HALF_CLOSED once one direction's
 * FIN is passed on.
 *
 * Closing: a FIN (a splice() that reads 0) is passed on with
 * shutdown(SHUT_WR) once its pipe is empty; when both directions are shut
 * the flow is closed.  Any error (a reset, a refused connect, EPIPE) resets
 * the other side too (SO_LINGER 0, then close), as a proxy must carry it.
 * A connect() not done within DP_TCP_CONNECT_TIMEOUT_MS, or a connection
 * idle for DP_TCP_IDLE_TIMEOUT_MS, is reset as well.
 *
 * Limits
 * ------
 * Six descriptors per connection (two sockets, two pipes), all counted in
 * the forwards' share of the socket budget (flow.c, Host sockets): the
 * accepted socket through flow_sock_accept() (which pauses the listener when
 * none is left, fwd.c), the other five with flow_fds_take(); a connection
 * that cannot have them is reset at once (drop_splice_fds).  Pipes of
 * DP_SPLICE_PIPE_SIZE bytes (the kernel's default if it refuses the size);
 * DP_SPLICE_ROUNDS rounds of two splice() calls per direction and event.
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp.h"
#include "dp_limits.h"
#include "flow.h"
#include "fwd.h"
#include "inany.h"
#include "nslo.h"
#include "splice.h"

#define SPLICE_FDS	5	/* besides the accepted socket: host socket, pipes */
#define SPLICE_KEY_PROTO 0	/* flow keys of spliced connections: no guest
				 * flow has it (nor a loopback guest address) */

/**
 * splice_other() - the other side
 * @side:	SPLICE_NS or SPLICE_HOST
 *
 * Return: the side that is not @side
 */
static int splice_other(int side)
{
	return side == SPLICE_NS ? SPLICE_HOST : SPLICE_NS;
}

/**
 * splice_fd() - the socket of a side
 * @f:		spliced flow
 * @side:	SPLICE_NS or SPLICE_HOST
 *
 * Return: its descriptor
 */
static int splice_fd(const struct flow *f, int side)
{
	return side == SPLICE_NS ? f->sock : f->splice.host_sock;
}

/**
 * splice_watch() - watch each side for what it can do next
 * @dp:		data plane
 * @f:		spliced flow
 *
 * Return: 0, or -1 if epoll refused (the caller resets the flow)
 */
static int splice_watch(struct dp *dp, struct flow *f)
{
	const struct splice_flow *s = &f->splice;
	bool connecting = f->state == SPLICE_ST_CONNECTING;
	uint32_t ev[2] = { 0, 0 };
	int side;

	for (side = SPLICE_NS; side <= SPLICE_HOST; side++) {
		int other = splice_other(side);

		if (s->hup[side])
			continue;
		if (!connecting && !s->eof[side] &&
		    s->in_pipe[side] < s->pipe_cap)
			ev[side] |= EPOLLIN;
		/* a side that hung up before its FIN was read is not watched:
		 * what it still holds is read when this one can take more */
		if (s->in_pipe[other] || (s->hup[other] && !s->eof[other]))
			ev[side] |= EPOLLOUT;
	}
	if (connecting)
		ev[SPLICE_HOST] = EPOLLOUT;
	return flow_epoll_set(dp, f, ev[SPLICE_NS]) ||
	       flow_epoll_set_splice(dp, f, s->host_sock, &f->splice.host_events,
				     ev[SPLICE_HOST]) ? -1 : 0;
}

/**
 * splice_pipes_close() - close both pipes
 * @s:		spliced connection state, pipes open
 */
static void splice_pipes_close(struct splice_flow *s)
{
	int d;

	for (d = 0; d < 2; d++) {
		close(s->pipe[d][0]);
		close(s->pipe[d][1]);
		s->pipe[d][0] = s->pipe[d][1] = -1;
	}
}

/**
 * splice_release() - close what a spliced flow holds besides @sock and give
 * it back to the budget
 * @dp:		data plane
 * @f:		spliced flow
 */
static void splice_release(struct dp *dp, struct flow *f)
{
	struct splice_flow *s = &f->splice;

	close(s->host_sock);	/* leaves epoll with it */
	s->host_sock = -1;
	splice_pipes_close(s);
	flow_fds_give(dp, FLOW_SOCK_FWD, SPLICE_FDS);
}

/**
 * splice_close() - close a spliced flow, both sides
 * @dp:		data plane
 * @f:		spliced flow
 * @why:	reason, for flow_close()
 */
static void splice_close(struct dp *dp, struct flow *f,
			 enum flow_close_reason why)
{
	splice_release(dp, f);
	flow_close(dp, f, why);
}

/**
 * splice_cleanup() - release what spliced flows hold besides their @sock
 * @dp:		data plane, going away: flow_table_cleanup() closes the rest
 */
void splice_cleanup(struct dp *dp)
{
	struct flow *f;

	flow_foreach(dp, f) {
		if (f->type == FLOW_SPLICE)
			splice_release(dp, f);
	}
}

/**
 * splice_reset() - reset both sides and free the flow
 * @dp:		data plane
 * @f:		spliced flow
 */
static void splice_reset(struct dp *dp, struct flow *f)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(f->sock, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	setsockopt(f->splice.host_sock, SOL_SOCKET, SO_LINGER, &rst,
		   sizeof(rst));
	DP_COUNT(dp, splice_resets);
	splice_close(dp, f, FLOW_CLOSE_RESET);
}

/**
 * splice_move() - move bytes of one direction through its pipe
 * @dp:		data plane
 * @f:		spliced flow, connected
 * @d:		direction, named after its source side
 *
 * At most DP_SPLICE_ROUNDS rounds of a read into the pipe and a write out of
 * it; the FIN goes on once the pipe is empty.
 *
 * Return: 0, or -1 on an error of either socket (the caller resets)
 */
static int splice_move(struct dp *dp, struct flow *f, int d)
{
	struct splice_flow *s = &f->splice;
	int src = splice_fd(f, d), dst = splice_fd(f, splice_other(d));
	unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
	int round;

	for (round = 0; round < DP_SPLICE_ROUNDS; round++) {
		bool moved = false;
		ssize_t n;

		if (!s->eof[d] && s->in_pipe[d] < s->pipe_cap) {
			n = splice(src, NULL, s->pipe[d][1], NULL,
				   s->pipe_cap - s->in_pipe[d], flags);
			if (n > 0) {
				s->in_pipe[d] += (uint32_t)n;
				moved = true;
			} else if (!n) {
				s->eof[d] = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
		if (s->in_pipe[d]) {
			n = splice(s->pipe[d][0], NULL, dst, NULL,
				   s->in_pipe[d], flags);
			if (n > 0) {
				s->in_pipe[d] -= (uint32_t)n;
				DP_COUNT_N(dp, splice_bytes, n);
				moved = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return -1;
			}
		}
		if (!moved)
			break;
		s->last_ms = dp->now_ms;
	}

	if (s->eof[d] && !s->in_pipe[d] && !s->shut[d]) {
		if (shutdown(dst, SHUT_WR) && errno != ENOTCONN)
			return -1;
		s->shut[d] = true;
		flow_set_state(f, SPLICE_ST_HALF_CLOSED);
	}
	return 0;
}

/**
 * splice_connected() - the connect() to the host's loopback completed
 * @dp:		data plane
 * @f:		spliced flow, connecting
 *
 * Return: 0 if connected, -1 if it failed (counted)
 */
static int splice_connected(struct dp *dp, struct flow *f)
{
	socklen_t sl = sizeof(int);
	int err = 0;

	if (getsockopt(f->splice.host_sock, SOL_SOCKET, SO_ERROR, &err, &sl) ||
	    err) {
		DP_COUNT(dp, splice_conn_failed);
		return -1;
	}
	flow_set_state(f, SPLICE_ST_ESTABLISHED);
	DP_COUNT(dp, splice_conn_opened);
	flow_timer_set(dp, f, dp->now_ms + DP_TCP_IDLE_TIMEOUT_MS);
	return 0;
}

/**
 * splice_sock_event() - handle readiness of either side of a spliced flow
 * @dp:		data plane
 * @f:		spliced flow
 * @side:	SPLICE_NS or SPLICE_HOST
 * @events:	epoll events
 */
void splice_sock_event(struct dp *dp, struct flow *f, int side,
		       uint32_t events)
{
	struct splice_flow *s = &f->splice;
	int err = 0;
	socklen_t sl = sizeof(err);

	if (f->state == SPLICE_ST_CONNECTING) {
		/* only the host side is watched until it is connected */
		if (side != SPLICE_HOST || splice_connected(dp, f)) {
			splice_reset(dp, f);
			return;
		}
	} else if (events & EPOLLERR &&
		   (getsockopt(splice_fd(f, side), SOL_SOCKET, SO_ERROR, &err,
			       &sl) || err)) {
		splice_reset(dp, f);
		return;
	}

	if (splice_move(dp, f, SPLICE_NS) || splice_move(dp, f, SPLICE_HOST)) {
		splice_reset(dp, f);
		return;
	}
	if (s->shut[SPLICE_NS] && s->shut[SPLICE_HOST]) {
		DP_COUNT(dp, splice_conn_closed);
		splice_close(dp, f, FLOW_CLOSE_DONE);
		return;
	}
	if (events & EPOLLHUP) {
		s->hup[side] = true;
		/* bytes still meant for it cannot be delivered */
		if (s->in_pipe[splice_other(side)]) {
			splice_reset(dp, f);
			return;
		}
	}
	if (splice_watch(dp, f))
		splice_reset(dp, f);
}

/**
 * splice_timer() - a spliced flow's deadline: a connect() that took too long,
 * or the idle timeout
 * @dp:		data plane
 * @f:		spliced flow whose deadline passed
 */
void splice_timer(struct dp *dp, struct flow *f)
{
	uint64_t idle_end = f->splice.last_ms + DP_TCP_IDLE_TIMEOUT_MS;

	if (f->state != SPLICE_ST_CONNECTING && idle_end > dp->now_ms) {
		flow_timer_set(dp, f, idle_end);
		return;
	}
	DP_COUNT(dp, splice_timeouts);
	splice_reset(dp, f);
}

/**
 * splice_pipes() - open the two pipes of a new connection, sized
 * @s:		its state: @pipe filled, @pipe_cap set
 *
 * Return: 0, or -1 with errno set (nothing left open)
 */
static int splice_pipes(struct splice_flow *s)
{
	int d, cap[2];

	for (d = 0; d < 2; d++) {
		if (pipe2(s->pipe[d], O_NONBLOCK | O_CLOEXEC)) {
			if (d) {	/* only the first pair is open */
				close(s->pipe[0][0]);
				close(s->pipe[0][1]);
			}
			return -1;
		}
		fcntl(s->pipe[d][0], F_SETPIPE_SZ, DP_SPLICE_PIPE_SIZE);
		cap[d] = fcntl(s->pipe[d][0], F_GETPIPE_SZ);
	}
	if (cap[0] <= 0 || cap[1] <= 0) {
		splice_pipes_close(s);
		errno = EINVAL;
		return -1;
	}
	s->pipe_cap = (uint32_t)(cap[0] < cap[1] ? cap[0] : cap[1]);
	return 0;
}

/**
 * splice_open() - open the other side of an accepted connection
 * @dp:		data plane, @now_ms current
 * @l:		the listener it came in on: a splice listener, or a -t one
 *		with @to_ns_lo
 * @fd:		accepted socket, counted in the forwards' share
 * @sa:		its peer
 * @to_ns_lo:	dial the namespace's loopback, of @sa's family, at @l's
 *		guest port with a socket of nslo.c's pool, rather than @l's
 *		host address from the host
 *
 * Return: 0, or -1 with @fd reset and closed (the drop counted)
 */
static int splice_open(struct dp *dp, struct fwd_listener *l, int fd,
		       const struct sockaddr_storage *sa, bool to_ns_lo)
{
	struct splice_flow s = { .last_ms = dp->now_ms };
	struct sockaddr_storage to;
	union inany_addr peer, dst;
	bool connect_failed;
	struct flow_key key;
	socklen_t to_len;
	uint16_t port;
	struct flow *f;

	if (flow_fds_take(dp, FLOW_SOCK_FWD, SPLICE_FDS)) {
		DP_COUNT(dp, drop_splice_fds);
		goto reset;
	}
	fwd_sa_to_inany(sa, &peer, &port);
	dst = l->guest;
	if (to_ns_lo && inany_is_v4(&peer))
		inany_from_v4(&dst, htonl(INADDR_LOOPBACK));
	else if (to_ns_lo)
		dst = (union inany_addr){ .a[15] = 1 };	/* ::1 */
	fwd_sockaddr(&dst, l->guest_port, &to, &to_len);
	flow_key_fill(&key, SPLICE_KEY_PROTO, &peer, port, &l->guest,
		      l->guest_port);
	if (flow_lookup(dp, &key) || splice_pipes(&s)) {
		DP_COUNT(dp, drop_splice_fds);
		goto give_back;
	}
	if (to_ns_lo)
		s.host_sock = nslo_dial(dp, &to, to_len, &connect_failed);
	else
		s.host_sock = flow_sock_dial(&to, to_len, &connect_failed);
	if (s.host_sock < 0) {
		if (connect_failed)
			DP_COUNT(dp, splice_conn_failed);
		else if (!to_ns_lo)	/* nslo.c counted its empty pool */
			DP_COUNT(dp, drop_splice_fds);
		goto close_pipes;
	}
	f = flow_adopt(dp, FLOW_SPLICE, &key, fd, FLOW_SOCK_FWD);
	if (!f)		/* a full table, counted */
		goto close_host;

	flow_set_state(f, SPLICE_ST_CONNECTING);
	f->splice = s;
	l->connections++;
	flow_timer_set(dp, f, dp->now_ms + DP_TCP_CONNECT_TIMEOUT_MS);
	if (splice_watch(dp, f)) {
		splice_reset(dp, f);
		return -1;
	}
	return 0;

close_host:
	close(s.host_sock);
close_pipes:
	splice_pipes_close(&s);
give_back:
	flow_fds_give(dp, FLOW_SOCK_FWD, SPLICE_FDS);
reset:
	setsockopt(fd, SOL_SOCKET, SO_LINGER,
		   &(struct linger){ .l_onoff = 1, .l_linger = 0 },
		   sizeof(struct linger));
	flow_sock_close(dp, fd, FLOW_SOCK_FWD);
	return -1;
}

/**
 * splice_accept() - accept connections on a splice listener (its socket in
 * the guest's namespace is readable)
 * @dp:		data plane
 * @l:		listener, TCP, @splice set
 */
void splice_accept(struct dp *dp, struct fwd_listener *l)
{
	int n;

	for (n = 0; n < DP_FWD_ACCEPT_BATCH; n++) {
		struct sockaddr_storage sa;
		socklen_t sa_len = sizeof(sa);
		int fd;

		fd = flow_sock_accept(dp, l->sock, (struct sockaddr *)&sa,
				      &sa_len, !n);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				DP_COUNT(dp, fwd_accept_errors);
			if (!n && (errno == EMFILE || errno == ENFILE ||
				   errno == ENOBUFS || errno == ENOMEM))
				fwd_pause(dp, l);
			return;
		}
		DP_COUNT(dp, splice_accepted);
		splice_open(dp, l, fd, &sa, false);
	}
}

/**
 * splice_from_host() - splice a -t connection from the host's loopback to
 * the namespace's loopback (--host-lo-to-ns-lo, nslo.c)
 * @dp:		data plane
 * @l:		the -t listener, TCP, @splice not set
 * @fd:		the accepted socket, counted in the forwards' share
 * @sa:		its peer, on the host's loopback
 */
void splice_from_host(struct dp *dp, struct fwd_listener *l, int fd,
		     const struct sockaddr_storage *sa)
{
	splice_open(dp, l, fd, sa, true);
}
