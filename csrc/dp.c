/* dp.c - the slirpd data plane object and its poll loop
 *
 * Theory of operation
 * -------------------
 * slirpd gives an unprivileged network namespace a virtual Ethernet link (a
 * TAP device) and plays, on the far end of it, the gateway, the DNS forwarder
 * and, through host sockets, the rest of the world.  This C core does the per
 * frame work; Python does configuration, the control API and the event loop.
 *
 * Data flows one way through the files, each named after what it speaks:
 *
 *   TAP -> tap.c (receive ring) -> eth.c -> arp.c
 *                                        -> ip4.c -> icmp.c, tcp.c, udp.c
 *                                        -> ip6.c -> icmp.c (ndp.c), tcp.c,
 *                                                    udp.c
 *                                                    -> flow.c -> host socket
 *   host socket -> tcp.c, udp.c, icmp.c -> ip4.c (ip_tx_*()) -> eth.c
 *               -> tap.c (transmit queue) -> TAP
 *
 * Besides the TAP, sockets inside the guest's namespace (pasta's -T and -U:
 * its loopback to the host's) go host socket to host socket: splice.c for
 * TCP, udp.c for UDP.
 *
 * With --pcap, tap.c also hands each batch, both ways, to pcap.c.
 *
 * One struct dp holds all state: the TAP descriptor, an epoll descriptor that
 * Python waits on, the frame buffers and the counters.  Everything is
 * allocated in dp_new() and released in dp_free(): nothing is allocated per
 * frame and nothing lives in static storage, so several instances can coexist
 * (tests) and AddressSanitizer sees every byte released.
 *
 * Python's event loop hands its own epoll descriptor to dp_watch_fd() and
 * calls dp_wait(), which blocks here and serves every wake-up of the data
 * plane without going back to Python, until Python has something to do: one
 * of its descriptors is readable (the API socket, a signal's wake-up pipe),
 * a notice is raised, or Python's own deadline passed.  After a wake-up
 * that did work it polls for up to DP_SPIN_MAX_US before it sleeps again
 * (dp_spin(): a CPU that went idle takes tens of microseconds to wake), for
 * a window that shrinks to nothing when traffic stops.  (dp_poll() is the
 * same work without blocking, once; tests use it.)  One wake-up fetches up
 * to DP_EPOLL_BATCH ready descriptors: the TAP (up to the budget of frames
 * is read, in batches of DP_RX_RING, each batch dispatched and its
 * replies written out before the next) and flow sockets (handed to their
 * protocol file).  Then due flow timers run (flow.c finds them,
 * dp_flow_timer() hands each to its protocol file as socket events are), incomplete
 * datagrams past their reassembly timeout are dropped (frag.c: reassembly has
 * no flow, so it keeps a deadline of its own, which dp_timeout_ms() also
 * reports), forward listeners paused for want of descriptors go back into
 * the epoll set (fwd.c, a deadline of their own too), the transmit queue
 * is flushed, and last the slots of the flows closed during the batch are
 * freed (flow_defer_sweep(): until then nothing reuses a flow some caller
 * still points to).  dp_poll() never blocks, never
 * exits and never aborts: I/O errors come back as return codes, and whatever
 * the guest sends is either handled or counted as a drop under a named reason
 * (dp_counters.h).  Events worth one log line rather than one per packet
 * (ping sockets refused by the host) are raised once as notices, which Python
 * reads with dp_notices() after each poll.
 *
 * Ownership: on success, dp_new() takes the TAP descriptor and dp_free()
 * closes it.  On failure the caller keeps it.
 *
 * Handing over the CPU
 * --------------------
 * Under load we never sleep: the TAP or a socket always has more.  The
 * reader of what we relay (the host's receiver of the guest's datagrams, the
 * guest's of the host's) is woken by our send, and the scheduler often puts
 * it on our CPU, where it waits until our time slice ends, milliseconds in
 * which we deliver thousands of datagrams to a socket buffer that holds about
 * 90 of 1400 bytes (the default 208 KiB): the rest are dropped, our work on
 * them wasted.  So after each full batch, 64 frames from the TAP
 * (dp_tap_input()) or a round of DP_UDP_RECV_BATCH datagrams towards the
 * guest (udp.c), dp_yield_cpu() writes out the transmit queue and lets
 * whatever is runnable on our CPU go first.  On 2 CPUs with iperf3 -u -b 0
 * (medians of three runs) that took the datagrams delivered guest to host
 * from 2.2 to 3.0-3.3 Gbit/s, host to guest from 2.7 to 3.3-3.4 and to a
 * forwarded port from 1.3 to 2.4-2.5; TCP, which has flow control, did not
 * move.  Fairness is kept: the scheduler counts what we ran, not when.
 *
 * Limits
 * ------
 * All sizes are in dp_limits.h.  The guest is untrusted: every length is
 * checked before the bytes it covers are read, and no header field is used to
 * size anything without a bound.  Every loop on the data path ends: it is
 * bounded by a constant of dp_limits.h (frames per wake-up, DP_EPOLL_BATCH
 * events, DP_UDP_RECV_BATCH datagrams times DP_UDP_RECV_ROUNDS, accepts per
 * wake-up, DP_IP6_EXT_MAX headers, DP_TCP_OOO_SEGS held runs), or each pass
 * makes progress that nothing later in the loop can undo (bytes peeked into
 * frames, fragments of one datagram, bytes of a capture written).  Where a
 * write inside a loop could undo the loop's progress (TCP's held runs, whose
 * bytes a short write gives back), the loop stops at that write
 * (tcp_ooo_feed()).
 */

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_counters.h"
#include "dp_limits.h"
#include "eth.h"
#include "flow.h"
#include "frag.h"
#include "fwd.h"
#include "icmp.h"
#include "inany.h"
#include "ndp.h"
#include "pcap.h"
#include "nslo.h"
#include "splice.h"
#include "tap.h"
#include "tcp.h"
#include "tcp_conn.h"
#include "udp.h"
#include "util.h"

#define DP_CNT_NAME(name)	#name,
static const char *const dp_counter_names[] = {
	DP_COUNTERS(DP_CNT_NAME)
};
#undef DP_CNT_NAME

_Static_assert(sizeof(dp_counter_names) / sizeof(dp_counter_names[0]) ==
	       DP_CNT_COUNT, "counter names and enum dp_counter differ");

/**
 * dp_config_valid() - check a configuration coming from Python
 * @cfg:	configuration
 *
 * Return: true if the data plane can work with it
 */
static bool dp_config_valid(const struct dp_config *cfg)
{
	static const uint8_t zero16[16];
	const uint8_t zero[DP_MAC_LEN] = { 0 };

	if (mac_is_multicast(cfg->gw_mac) ||
	    !memcmp(cfg->gw_mac, zero, DP_MAC_LEN))
		return false;

	if (cfg->mtu < DP_MTU_MIN || cfg->mtu > DP_MTU_MAX)
		return false;

	if (cfg->enable_ipv6 && (cfg->mtu < DP_MTU_MIN_IP6 ||
				 !memcmp(cfg->gw6, zero16, 16)))
		return false;

	return (cfg->gw4 != 0 || cfg->enable_ipv6) && fwd_rules_valid(cfg);
}

/**
 * dp_new() - create a data plane on a TAP descriptor
 * @cfg:	configuration, copied
 * @tap_fd:	TAP descriptor (IFF_TAP | IFF_NO_PI, plus IFF_VNET_HDR if
 *		@cfg->vnet_hdr), owned by the data plane on success
 *
 * Return: new data plane, or NULL with errno set (EINVAL for a bad
 *	   configuration or descriptor, ENOMEM, or a system call's error)
 */
struct dp *dp_new(const struct dp_config *cfg, int tap_fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct dp *dp;
	int err;

	if (!cfg || tap_fd < 0 || !dp_config_valid(cfg)) {
		errno = EINVAL;
		return NULL;
	}

	dp = calloc(1, sizeof(*dp));
	if (!dp) {
		errno = ENOMEM;
		return NULL;
	}

	dp->cfg = *cfg;
	dp->tap.fd = tap_fd;
	dp->epoll_fd = -1;
	dp->fwd.host_lo_open = fwd_host_lo_open(dp);

	pcap_init(dp);
	if (fwd_init(dp) || tap_init(dp) || flow_table_init(dp) ||
	    frag_init(dp) || udp_init(dp) || ctl_init(dp))
		goto fail;

	dp->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (dp->epoll_fd < 0)
		goto fail;

	ev.data.u64 = (uint64_t)EPOLL_REF_TAP << 56;
	if (epoll_ctl(dp->epoll_fd, EPOLL_CTL_ADD, tap_fd, &ev))
		goto fail;

	return dp;

fail:
	err = errno;
	if (dp->epoll_fd >= 0)
		close(dp->epoll_fd);
	flow_table_cleanup(dp);
	udp_cleanup(dp);
	frag_cleanup(dp);
	ctl_cleanup(dp);
	pcap_cleanup(dp);
	tap_cleanup(dp);
	fwd_cleanup(dp);
	free(dp);
	errno = err;
	return NULL;
}

/**
 * dp_free() - destroy a data plane, closing its TAP and epoll descriptors
 * @dp:		data plane, or NULL
 */
void dp_free(struct dp *dp)
{
	if (!dp)
		return;

	tcp_cleanup(dp);
	splice_cleanup(dp);
	flow_table_cleanup(dp);
	nslo_cleanup(dp);
	close(dp->epoll_fd);
	close(dp->tap.fd);
	udp_cleanup(dp);
	frag_cleanup(dp);
	ctl_cleanup(dp);
	pcap_cleanup(dp);
	tap_cleanup(dp);
	fwd_cleanup(dp);
	free(dp);
}

/**
 * dp_epoll_fd() - descriptor to wait on before calling dp_poll()
 * @dp:		data plane
 *
 * Return: epoll descriptor, readable when the TAP has frames; -1 if @dp is NULL
 */
int dp_epoll_fd(const struct dp *dp)
{
	return dp ? dp->epoll_fd : -1;
}

/**
 * dp_clock_us() - monotonic clock in microseconds
 *
 * Return: microseconds since an arbitrary point
 */
static uint64_t dp_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/**
 * dp_clock_ms() - monotonic clock in milliseconds
 *
 * Return: milliseconds since an arbitrary point, never 0
 */
static uint64_t dp_clock_ms(void)
{
	return dp_clock_us() / 1000 + 1;
}

/**
 * dp_tap_input() - read and dispatch frames from the TAP
 * @dp:		data plane
 * @budget:	read at most this many frames
 * @status:	set to 0, DP_POLL_TAP_GONE or DP_POLL_ERROR
 *
 * Return: number of frames read
 */
static int dp_tap_input(struct dp *dp, int budget, int *status)
{
	int total = 0;

	*status = 0;
	while (total < budget) {
		int want = budget - total, n, i;

		if (want > DP_RX_RING)
			want = DP_RX_RING;

		n = tap_read_batch(dp, want, status);
		for (i = 0; i < n; i++) {
			size_t len;
			const uint8_t *frame = tap_rx_frame(dp, i, &len);

			DP_COUNT(dp, frames_in);
			if (!frame)
				continue;	/* virtio-net header: dropped */
			DP_COUNT_N(dp, bytes_in, len);
			eth_input(dp, frame, len);
			dp->tap.rx_frame = NULL;
		}
		tcp_batch_end(dp);	/* before the ring is read into again */
		udp_batch_end(dp);
		frag_batch_end(dp);	/* after TCP: it may point into a slot */
		tap_tx_flush(dp);
		total += n;

		if (n == DP_RX_RING)
			dp_yield_cpu(dp);	/* and more is likely waiting */
		if (*status || n < want)
			break;
	}

	return total;
}

/**
 * dp_flow_event() - hand a socket event to the protocol of its flow
 * @dp:		data plane
 * @ref:	epoll reference of the flow
 * @events:	epoll events
 */
static void dp_flow_event(struct dp *dp, uint64_t ref, uint32_t events)
{
	struct flow *f = flow_from_epoll(dp, ref);

	if (!f)
		return;

	switch (f->type) {
	case FLOW_TCP:
		tcp_sock_event(dp, f, events);
		break;
	case FLOW_UDP:
		udp_sock_event(dp, f, events);
		break;
	case FLOW_PING:
		ping_sock_event(dp, f, events);
		break;
	case FLOW_SPLICE:
		splice_sock_event(dp, f, SPLICE_NS, events);
		break;
	}
}

/**
 * dp_fwd_remove() - stop forwarding a host socket (TCP connections already
 * accepted stay; UDP flows replying through it are closed: udp_fwd_forget())
 * @dp:		data plane
 * @id:		forward id
 *
 * Return: 0, or -1 with errno ENOENT if there is no such forward
 */
int dp_fwd_remove(struct dp *dp, int id)
{
	int sock;

	if (!dp) {
		errno = ENOENT;
		return -1;
	}
	sock = fwd_remove(dp, id);
	if (sock < 0)
		return -1;
	udp_fwd_forget(dp, sock);
	return 0;
}

/**
 * dp_flow_timer() - hand a flow whose deadline passed to its protocol
 * @dp:		data plane, @now_ms current
 * @f:		flow, its deadline cleared (flow_timers_run())
 */
static void dp_flow_timer(struct dp *dp, struct flow *f)
{
	switch (f->type) {
	case FLOW_TCP:
		tcp_timer(dp, f);
		break;
	case FLOW_UDP:
		udp_timer(dp, f);
		break;
	case FLOW_PING:
		ping_timer(dp, f);
		break;
	case FLOW_SPLICE:
		splice_timer(dp, f);
		break;
	}
}

/**
 * dp_dispatch() - wait for events, then handle them, the due timers and the
 * transmit queue
 * @dp:		data plane, TAP not gone
 * @budget:	read at most this many frames from the TAP
 * @wait_ms:	how long epoll_wait() may block: 0 not at all, -1 forever
 * @outer:	set if the caller's descriptor (dp_watch_fd()) is readable, or
 *		a signal interrupted the wait
 *
 * Return: number of frames read plus socket events handled, or a DP_POLL_*
 *	   status
 */
static int dp_dispatch(struct dp *dp, int budget, int wait_ms, bool *outer)
{
	struct epoll_event ev[DP_EPOLL_BATCH];
	int n, i, done = 0, status = 0;

	n = epoll_wait(dp->epoll_fd, ev, DP_EPOLL_BATCH, wait_ms);
	if (n < 0 && errno != EINTR)
		return DP_POLL_ERROR;
	if (n < 0)
		*outer = true;

	dp->now_ms = dp_clock_ms();

	for (i = 0; i < n && !status; i++) {
		uint64_t kind = ev[i].data.u64 >> 56;

		if (kind == EPOLL_REF_TAP) {
			if (budget > 0)
				done += dp_tap_input(dp, budget, &status);
		} else if (kind == EPOLL_REF_LISTEN) {
			fwd_sock_event(dp, (uint32_t)ev[i].data.u64);
			done++;
		} else if (kind == EPOLL_REF_OUTER) {
			*outer = true;
		} else if (kind == EPOLL_REF_SPLICE) {
			struct flow *f = flow_from_epoll(dp, ev[i].data.u64);

			if (f && f->type == FLOW_SPLICE)
				splice_sock_event(dp, f, SPLICE_HOST,
						  ev[i].events);
			done++;
		} else {
			dp_flow_event(dp, ev[i].data.u64, ev[i].events);
			done++;
		}
	}

	if (dp->flow.next_deadline_ms && dp->flow.next_deadline_ms <= dp->now_ms)
		flow_timers_run(dp, dp_flow_timer);

	/* reassembly has no flow: its timeouts are checked on their own */
	if (dp->frag.deadline_ms && dp->frag.deadline_ms <= dp->now_ms)
		frag_timer(dp);

	if (dp->ndp.ra_deadline_ms && dp->ndp.ra_deadline_ms <= dp->now_ms)
		ndp_timer(dp);

	/* forward listeners paused for want of descriptors try again */
	if (dp->fwd.deadline_ms && dp->fwd.deadline_ms <= dp->now_ms)
		fwd_timer(dp);

	tap_tx_flush(dp);
	/* the batch is over: nothing holds a flow now, closed slots go back */
	flow_defer_sweep(dp);
	return status ? status : done;
}

/**
 * dp_poll() - handle what the guest and the host sockets have for us, without
 * blocking
 * @dp:		data plane
 * @budget:	read at most this many frames from the TAP; sockets and timers
 *		are served whatever the budget
 *
 * Return: number of frames read plus socket events handled (0 if nothing was
 *	   waiting), DP_POLL_TAP_GONE if the TAP went away (then on every later
 *	   call), or DP_POLL_ERROR with errno set on an unexpected error
 */
int dp_poll(struct dp *dp, int budget)
{
	bool outer = false;

	if (!dp) {
		errno = EINVAL;
		return DP_POLL_ERROR;
	}
	if (dp->tap.gone)
		return DP_POLL_TAP_GONE;

	return dp_dispatch(dp, budget, 0, &outer);
}

/**
 * dp_watch_fd() - add the caller's descriptor to what dp_wait() waits for
 * @dp:		data plane
 * @fd:		descriptor (Python's own epoll set, say), watched for EPOLLIN
 *		until dp_free(); the caller keeps it open that long
 *
 * Return: 0, or -1 with errno set
 */
int dp_watch_fd(struct dp *dp, int fd)
{
	struct epoll_event ev = {
		.events = EPOLLIN,
		.data.u64 = (uint64_t)EPOLL_REF_OUTER << 56,
	};

	if (!dp) {
		errno = EINVAL;
		return -1;
	}
	return epoll_ctl(dp->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

/**
 * dp_spin_adapt() - size the busy-poll window by the idle time that ended
 * @dp:		data plane
 * @idle_us:	microseconds from the end of the last work to this wake-up
 *
 * An idle time longer than DP_SPIN_MAX_US is not worth polling through: the
 * window halves.  One the window was too short for (we polled, then slept)
 * doubles it.  One it covered leaves it as it is.
 */
static void dp_spin_adapt(struct dp *dp, uint64_t idle_us)
{
	unsigned grown = dp->spin_us ? dp->spin_us * 2 : DP_SPIN_START_US;

	if (idle_us > DP_SPIN_MAX_US)
		dp->spin_us /= 2;
	else if (idle_us >= dp->spin_us)
		dp->spin_us = grown < DP_SPIN_MAX_US ? grown : DP_SPIN_MAX_US;
}

/**
 * dp_spin() - poll without sleeping for the busy-poll window
 * @dp:		data plane
 * @budget:	frames to read from the TAP per poll, as for dp_poll()
 * @outer:	set if the caller's descriptor is readable or a signal came
 *
 * A CPU that went idle while we slept in epoll_wait() takes tens of
 * microseconds to wake (on a virtual machine, through the hypervisor): most
 * of a small packet's round trip.  So after a wake-up that did work,
 * the next one is awaited by polling, yielding the CPU between polls to
 * whatever else is runnable on it, for dp->spin_us (dp_spin_adapt()).
 *
 * Return: as dp_poll(): 0 if the window passed with nothing to do
 */
static int dp_spin(struct dp *dp, int budget, bool *outer)
{
	uint64_t start = dp_clock_us();

	do {
		int rc = dp_dispatch(dp, budget, 0, outer);

		if (rc || *outer || dp->notices)
			return rc;
		sched_yield();
	} while (dp_clock_us() - start < dp->spin_us);

	return 0;
}

/**
 * dp_wait() - serve the guest and the host sockets until the caller has work
 * @dp:		data plane
 * @budget:	frames to read from the TAP per wake-up, as for dp_poll()
 * @max_ms:	return after this many milliseconds at most, -1 for no limit
 *
 * Blocks in epoll_wait() and handles every wake-up here, frames, sockets and
 * timers alike, without going back to the caller: a packet's round trip
 * through slirpd then costs no Python.  Returns once the descriptor given to
 * dp_watch_fd() is readable, a signal interrupted the wait, a notice is
 * raised (dp_notices()), or @max_ms passed.
 *
 * Return: as dp_poll(), summed over the wake-ups
 */
int dp_wait(struct dp *dp, int budget, int max_ms)
{
	uint64_t end, idle_from = dp_clock_us();
	bool outer = false;
	int done = 0, rc = 0;

	if (!dp) {
		errno = EINVAL;
		return DP_POLL_ERROR;
	}
	if (dp->tap.gone)
		return DP_POLL_TAP_GONE;

	end = max_ms < 0 ? 0 : dp_clock_ms() + (uint64_t)max_ms;
	for (;;) {
		int wait_ms = dp_timeout_ms(dp);

		if (end) {
			uint64_t now = dp_clock_ms();
			int left = end > now ? (int)(end - now) : 0;

			if (wait_ms < 0 || wait_ms > left)
				wait_ms = left;
		}

		if (rc > 0 && wait_ms && dp->spin_us)
			rc = dp_spin(dp, budget, &outer);
		else
			rc = 0;
		if (!rc && !outer)
			rc = dp_dispatch(dp, budget, wait_ms, &outer);
		if (rc > 0) {
			uint64_t now = dp_clock_us();

			dp_spin_adapt(dp, now - idle_from);
			idle_from = now;
		}
		if (rc < 0)
			return rc;
		done += rc;

		if (outer || dp->notices || (end && dp->now_ms >= end))
			return done;
	}
}

/**
 * dp_timeout_ms() - how long until the next timer of the data plane is due
 * @dp:		data plane
 *
 * Return: milliseconds until the earliest flow, reassembly, router
 *	   advertisement or listener pause deadline (0 if due), -1 if no timer
 *	   is pending
 */
int dp_timeout_ms(struct dp *dp)
{
	uint64_t now, next;

	if (!dp)
		return -1;

	next = dp->flow.next_deadline_ms;
	if (dp->frag.deadline_ms && (!next || dp->frag.deadline_ms < next))
		next = dp->frag.deadline_ms;
	if (dp->ndp.ra_deadline_ms && (!next || dp->ndp.ra_deadline_ms < next))
		next = dp->ndp.ra_deadline_ms;
	if (dp->fwd.deadline_ms && (!next || dp->fwd.deadline_ms < next))
		next = dp->fwd.deadline_ms;
	if (!next)
		return -1;

	now = dp_clock_ms();
	if (next <= now)
		return 0;
	if (next - now > 3600 * 1000)
		return 3600 * 1000;
	return (int)(next - now);
}

/**
 * dp_counter_count() - number of counters
 *
 * Return: length of the arrays dp_counter_name() and dp_counters() index
 */
int dp_counter_count(void)
{
	return DP_CNT_COUNT;
}

/**
 * dp_counter_name() - name of a counter
 * @index:	counter index, 0 to dp_counter_count() - 1
 *
 * Return: static string, or NULL if @index is out of range
 */
const char *dp_counter_name(int index)
{
	if (index < 0 || index >= DP_CNT_COUNT)
		return NULL;

	return dp_counter_names[index];
}

/**
 * dp_counters() - copy the counters out
 * @dp:		data plane
 * @out:	array of at least @n elements
 * @n:		size of @out
 *
 * Return: number of counters copied, the smaller of @n and dp_counter_count(),
 *	   0 if @dp or @out is NULL or @n is negative
 */
int dp_counters(const struct dp *dp, uint64_t *out, int n)
{
	if (!dp || !out || n <= 0)
		return 0;

	if (n > DP_CNT_COUNT)
		n = DP_CNT_COUNT;

	memcpy(out, dp->counters, (size_t)n * sizeof(*out));
	return n;
}

/**
 * dp_notices() - read and clear the one-shot notices raised since last time
 * @dp:		data plane
 *
 * Each DP_NOTICE_* bit is raised at most once in the life of @dp (see
 * dp_notice()), so a caller that logs every bit it reads logs one line per
 * event kind, however many packets caused it.
 *
 * Return: DP_NOTICE_* bits, 0 if none (or if @dp is NULL)
 */
int dp_notices(struct dp *dp)
{
	uint32_t n;

	if (!dp)
		return 0;

	n = dp->notices;
	dp->notices = 0;
	return (int)n;
}
