/* flow.c - the flow table: every TCP, UDP and ping flow, one lookup, one life
 *
 * Theory of operation
 * -------------------
 * A flow is one conversation the data plane translates between the guest's
 * frames and one host socket: a TCP connection, a UDP "connection" (guest
 * address and port to remote address and port), or a series of ICMP echo
 * requests with one identifier.  All of them live in one table, allocated
 * once in dp_new() (DP_FLOW_MAX slots), so every protocol shares one lookup,
 * one life cycle and one limit:
 *
 * - lookup: struct flow_key (protocol, guest address and port, remote address
 *   and port, 128-bit addresses so IPv4 and IPv6 share the code) is hashed
 *   with a per-instance random seed, so a guest cannot aim for one bucket,
 *   into DP_FLOW_BUCKETS chained buckets: O(1) on average.
 * - opening: every flow opens here.  flow_alloc() takes a slot from the free
 *   list and links it in its bucket (a forwarded UDP flow, which has no
 *   socket, needs no more); flow_adopt() gives the slot a socket that is open
 *   already (a connection accepted on a forward, a UDP socket connected);
 *   flow_open() does the datagram sequence (connect, slot, epoll) for a
 *   guest's UDP or ping socket and a spliced UDP flow's; a guest's TCP
 *   connection takes its slot first, then its socket (flow_sock_attach()),
 *   then flow_connect(), where EINPROGRESS is success and the socket is
 *   watched for the connect to complete; flow_sock_dial() starts the connect
 *   of a spliced connection's second socket.  A full table is a counted drop
 *   (drop_flow_table_full), never an allocation.
 * - states: one enum flow_state for every protocol (FLOW_STATES: a free
 *   slot, FLOW_ST_NEW, FLOW_ST_CLOSED, then TCP's, UDP's, ping's and
 *   splice's), in struct flow's @state, set by flow_set_state(); get_stats
 *   and --debug count open flows by it (dp_flow_states()).
 * - closing, deferred: flow_close(), with a reason counted per reason (enum
 *   flow_close_reason), is the one way a flow ends.  It releases at once what
 *   the rest of the data plane could still meet (the socket, which leaves
 *   epoll with it and goes back to its share; the hash bucket, so a lookup
 *   no longer finds it; the recycling list; the timer) and marks the flow
 *   FLOW_ST_CLOSED on a list of closed flows; what a protocol holds beside
 *   the flow, it releases first.  The slot itself goes back to the free list
 *   only in flow_defer_sweep(), which dp.c runs once per event-loop batch, as
 *   passt's flow_defer_handler() does: a flow is never reused under a caller
 *   that still holds its pointer (a receive batch's entries, a timer walk, an
 *   epoll event fetched for it), and such callers ask flow_closed().  Code
 *   outside flow.c walks the open flows with flow_foreach() and finds a slot
 *   again with flow_index() and flow_at().
 * - events: a flow's socket is registered in the data plane's epoll set with
 *   a reference (EPOLL_REF_FLOW, slot index, generation).  The generation
 *   changes each time a slot is reused, so an event fetched for a flow that
 *   was closed in the same batch (or freed and reused since) is recognised
 *   as stale and ignored by flow_from_epoll().
 * - timers: each flow has at most one deadline (retransmission, idle
 *   timeout...), set with flow_timer_set().  The data plane remembers the
 *   earliest one; when it is due, flow_timers_run() scans the used part of the
 *   table once and hands each due flow to dp.c, which calls its protocol's
 *   timer (tcp_timer(), udp_timer()...) as it hands socket events on: flow.c
 *   calls no protocol file.  dp_wait() sleeps until dp_timeout_ms().
 *
 * Host sockets
 * ------------
 * Every flow but a forwarded UDP one holds a host socket (a spliced TCP
 * connection six: two sockets and two pipes, splice.c), and the process has
 * only so many descriptors.  Python raises RLIMIT_NOFILE to its hard limit
 * and keeps a reserve for itself (its own descriptors, API clients); the rest
 * is cfg.sock_budget, what flows and forwards may hold together:
 *
 * - shares: flow_sock_open() and flow_sock_accept() open every socket of a
 *   flow and count it against one of two shares (enum flow_sock_share).
 *   Forwards (listeners, accepted connections) may use the whole budget; the
 *   flows the guest starts all of it but DP_SOCK_FWD_RESERVE (at most
 *   1/DP_SOCK_FWD_RESERVE_DIV of it), so that forwarded ports keep accepting
 *   when the guest's flows have used up theirs.  Descriptors a flow opens
 *   beside its socket (a spliced connection's) are counted with
 *   flow_fds_take() and given back with flow_fds_give().  flow_close() gives a
 *   flow's
 *   socket back; flow_sock_close() one that never became a flow's.
 * - recycling: UDP and ping flows with a socket of their own are threaded on
 *   a list through the table, most recently used first; flow_touch() moves
 *   one to the head whenever a datagram passes.  When a socket cannot be had
 *   (its share is used up, or socket() or accept4() fails with EMFILE or
 *   ENFILE), the tail, the least recently used flow, is closed first if it
 *   has been idle for DP_SOCK_RECYCLE_IDLE_MS (flows_recycled), at most
 *   DP_SOCK_RECYCLE_MAX times per socket asked for: O(1) work per packet.
 *   A recycled flow's next datagram opens it again, with a new socket.  If
 *   the tail is not idle, no flow is, and the socket is refused
 *   (sock_refused): a guest SYN gets a RST, a datagram or echo request is a
 *   counted drop, a forward's listener pauses (fwd.c).
 * - reporting: dp_sock_stats() gives the budget, the shares in use, paused
 *   listeners and whether sockets are short now ("degraded"); the first
 *   shortage raises DP_NOTICE_SOCK_SHORT, for one log line.
 *
 * Limits
 * ------
 * DP_FLOW_MAX flows in all, DP_FLOW_BUCKETS hash buckets (dp_limits.h);
 * cfg.sock_budget host sockets, DP_SOCK_FWD_RESERVE of them kept for
 * forwards; DP_SOCK_RECYCLE_MAX flows recycled per socket asked for.
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "flow.h"
#include "inany.h"
#include "util.h"

#define FLOW_CLOSE_NAME(name)	#name,
static const char *const flow_close_names[] = {
	FLOW_CLOSE_REASONS(FLOW_CLOSE_NAME)
};
#undef FLOW_CLOSE_NAME

_Static_assert(sizeof(flow_close_names) / sizeof(flow_close_names[0]) ==
	       FLOW_CLOSE_COUNT, "close reason names and enum differ");

#define FLOW_STATE_NAME(name)	[name] = #name,
static const char *const flow_state_names[] = {
	FLOW_STATES(FLOW_STATE_NAME)
};
#undef FLOW_STATE_NAME

_Static_assert(sizeof(flow_state_names) / sizeof(flow_state_names[0]) ==
	       FLOW_STATE_COUNT, "flow state names and enum flow_state differ");

/* Reference layout in epoll_event.data.u64: kind, generation, index */
#define REF_KIND_SHIFT		56
#define REF_GEN_SHIFT		32
#define REF_GEN_MASK		0xffffffULL
#define REF_INDEX_MASK		0xffffffffULL

/**
 * flow_hash() - bucket of a flow key
 * @dp:		data plane, for the hash seed
 * @key:	key, padding zeroed
 *
 * Return: bucket index, below DP_FLOW_BUCKETS
 */
static uint32_t flow_hash(const struct dp *dp, const struct flow_key *key)
{
	const uint8_t *p = (const uint8_t *)key;
	uint64_t h = dp->flow.seed;
	size_t i;

	for (i = 0; i + 8 <= sizeof(*key); i += 8) {
		uint64_t w;

		memcpy(&w, p + i, sizeof(w));
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	for (; i < sizeof(*key); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;

	h ^= h >> 32;
	return (uint32_t)(h & (DP_FLOW_BUCKETS - 1));
}

/**
 * flow_socks_init() - set the socket budget and its shares from the
 * configuration, nothing held
 * @dp:		data plane, @cfg set
 */
static void flow_socks_init(struct dp *dp)
{
	struct flow_socks *s = &dp->flow.socks;
	uint32_t reserve;

	memset(s, 0, sizeof(*s));
	s->budget = dp->cfg.sock_budget;
	reserve = s->budget / DP_SOCK_FWD_RESERVE_DIV;
	if (reserve > DP_SOCK_FWD_RESERVE)
		reserve = DP_SOCK_FWD_RESERVE;
	s->guest_max = s->budget - reserve;
}

/**
 * flow_table_init() - allocate the table, all slots free, no socket held
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno set
 */
int flow_table_init(struct dp *dp)
{
	dp->flow.table = calloc(DP_FLOW_MAX, sizeof(*dp->flow.table));
	dp->flow.buckets = calloc(DP_FLOW_BUCKETS, sizeof(*dp->flow.buckets));
	if (!dp->flow.table || !dp->flow.buckets) {
		errno = ENOMEM;
		return -1;
	}

	/* No slot is written now: calloc() gave zeroed pages the kernel has not
	 * backed yet (the table is MiBs), and flow_alloc() takes slots above
	 * flow_high_water, never used, when no freed one is waiting */
	dp->flow.free_head = 0;
	flow_socks_init(dp);

	if (getrandom(&dp->flow.seed, sizeof(dp->flow.seed), 0) !=
	    sizeof(dp->flow.seed))
		dp->flow.seed = (uint64_t)(uintptr_t)dp ^ 0x5bd1e9955bd1e995ULL;

	return 0;
}

/**
 * flow_table_cleanup() - close every flow's socket and free the table
 * @dp:		data plane, table possibly only partly set up
 */
void flow_table_cleanup(struct dp *dp)
{
	uint32_t i;

	if (dp->flow.table) {
		for (i = 0; i < dp->flow.high_water; i++) {
			if (dp->flow.table[i].sock >= 0)
				close(dp->flow.table[i].sock);
		}
	}
	free(dp->flow.table);
	free(dp->flow.buckets);
	dp->flow.table = NULL;
	dp->flow.buckets = NULL;
}

/**
 * flow_key_fill() - build a lookup key, padding zeroed
 * @key:	key to fill
 * @proto:	IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6
 * @guest:	guest address
 * @guest_port:	guest port, host byte order (ICMP echo: identifier)
 * @remote:	remote address as the guest sees it
 * @remote_port: remote port, host byte order
 */
void flow_key_fill(struct flow_key *key, uint8_t proto,
		   const union inany_addr *guest, uint16_t guest_port,
		   const union inany_addr *remote, uint16_t remote_port)
{
	memset(key, 0, sizeof(*key));
	key->proto = proto;
	key->guest_addr = *guest;
	key->guest_port = guest_port;
	key->remote_addr = *remote;
	key->remote_port = remote_port;
}

/**
 * flow_lookup() - find the flow with a key
 * @dp:		data plane
 * @key:	key, built with flow_key_fill()
 *
 * A bulk transfer sends frame after frame of one flow: the flow found last
 * (@dp->flow.last, forgotten by flow_close()) is compared first, and only
 * another key is hashed.
 *
 * Return: the flow, or NULL
 */
struct flow *flow_lookup(struct dp *dp, const struct flow_key *key)
{
	uint32_t idx = dp->flow.last;

	if (idx && !memcmp(&dp->flow.table[idx - 1].key, key, sizeof(*key)))
		return &dp->flow.table[idx - 1];

	idx = dp->flow.buckets[flow_hash(dp, key)];
	while (idx) {
		struct flow *f = &dp->flow.table[idx - 1];

		if (!memcmp(&f->key, key, sizeof(*key))) {
			dp->flow.last = idx;
			return f;
		}
		idx = f->hash_next;
	}

	return NULL;
}

/**
 * flow_alloc() - take a free slot for a new flow and link it for lookup
 * @dp:		data plane
 * @type:	FLOW_TCP, FLOW_UDP, FLOW_PING or FLOW_SPLICE
 * @key:	key, built with flow_key_fill(), not in the table yet
 *
 * The protocol state (@tcp, @udp or @ping) is zeroed, @sock is -1, @state
 * FLOW_ST_NEW.  A slot closed since the last flow_defer_sweep() is not taken.
 *
 * Return: the flow, or NULL (counted as drop_flow_table_full) if the table
 *	   is full
 */
struct flow *flow_alloc(struct dp *dp, enum flow_type type,
			const struct flow_key *key)
{
	uint32_t bucket, idx = dp->flow.free_head;
	struct flow *f;
	uint32_t gen;

	if (!idx && dp->flow.high_water < DP_FLOW_MAX)
		idx = dp->flow.high_water + 1;	/* never used: zeroed, hash_next 0 */
	if (!idx) {
		DP_COUNT(dp, drop_flow_table_full);
		return NULL;
	}

	f = &dp->flow.table[idx - 1];
	dp->flow.free_head = f->hash_next;
	gen = f->gen + 1;

	memset(f, 0, sizeof(*f));
	f->type = (uint8_t)type;
	f->state = FLOW_ST_NEW;
	f->gen = gen & REF_GEN_MASK;
	f->sock = -1;
	f->key = *key;

	bucket = flow_hash(dp, key);
	f->hash_next = dp->flow.buckets[bucket];
	dp->flow.buckets[bucket] = idx;

	if (idx > dp->flow.high_water)
		dp->flow.high_water = idx;
	dp->flow.count++;
	DP_COUNT(dp, flows_created);

	return f;
}

/**
 * flow_adopt() - make a flow of a host socket that is open already: take a
 * slot and give it the socket
 * @dp:		data plane
 * @type:	FLOW_TCP, FLOW_UDP or FLOW_SPLICE
 * @key:	flow key, not in the table
 * @s:		the socket, counted in @share (flow_sock_open_in(),
 *		flow_sock_accept()); the flow's from now on, flow_close() closes
 *		it
 * @share:	the share @s counts against
 *
 * Not watched yet: the caller sets its options, then flow_epoll_set().
 *
 * Return: the flow, or NULL (a full table, counted by flow_alloc()) with @s
 *	   still the caller's, to refuse as its protocol does
 */
struct flow *flow_adopt(struct dp *dp, enum flow_type type,
			const struct flow_key *key, int s,
			enum flow_sock_share share)
{
	struct flow *f = flow_alloc(dp, type, key);

	if (!f)
		return NULL;
	f->sock = s;
	f->sock_share = (uint8_t)share;
	return f;
}

/**
 * flow_open() - make a flow of a new datagram socket: connect it, take a
 * slot, watch it
 * @dp:		data plane
 * @type:	FLOW_UDP or FLOW_PING
 * @key:	flow key, not in the table
 * @s:		datagram socket from flow_sock_open_in(), options set and
 *		bound; the flow's from now on, or closed if the flow cannot be
 *		had
 * @share:	the share @s counts against: FLOW_SOCK_GUEST for the guest's
 *		own flows, FLOW_SOCK_FWD for a spliced UDP flow's (udp.c)
 * @sa:		where it connects
 * @sa_len:	length of @sa
 * @sock_drop:	counter to count a failed connect() or epoll_ctl() under,
 *		an enum dp_counter (DP_CNT_drop_udp_socket...)
 *
 * The flow's socket is watched for EPOLLIN; the caller sets its state and
 * timer.
 *
 * Return: the flow, or NULL (a full table is counted by flow_alloc())
 */
struct flow *flow_open(struct dp *dp, enum flow_type type,
		       const struct flow_key *key, int s,
		       enum flow_sock_share share,
		       const struct sockaddr_storage *sa, socklen_t sa_len,
		       unsigned sock_drop)
{
	struct flow *f;

	if (connect(s, (const struct sockaddr *)sa, sa_len)) {
		dp->counters[sock_drop]++;
		flow_sock_close(dp, s, share);
		return NULL;
	}

	f = flow_adopt(dp, type, key, s, share);
	if (!f) {
		flow_sock_close(dp, s, share);
		return NULL;
	}

	if (flow_epoll_set(dp, f, EPOLLIN)) {
		dp->counters[sock_drop]++;
		flow_close(dp, f, FLOW_CLOSE_SOCKET);
		return NULL;
	}
	return f;
}

/**
 * flow_sock_attach() - open the host socket of a flow that has none yet, in
 * the guest's share (a guest's TCP connection: slot first, then socket)
 * @dp:		data plane, @now_ms current
 * @f:		flow, @sock -1
 * @domain:	as for socket()
 * @type:	as for socket()
 * @protocol:	as for socket()
 *
 * Return: 0 with @f's @sock set, or -1 with errno set as flow_sock_open()
 *	   sets it
 */
int flow_sock_attach(struct dp *dp, struct flow *f, int domain, int type,
		     int protocol)
{
	int s = flow_sock_open(dp, domain, type, protocol);

	if (s < 0)
		return -1;
	f->sock = s;
	f->sock_share = FLOW_SOCK_GUEST;
	return 0;
}

/**
 * flow_connect() - connect a flow's non-blocking stream socket; while the
 * connect is in progress, watch the socket
 * @dp:		data plane
 * @f:		flow with a socket, options set and bound, not watched
 * @sa:		where it connects
 * @sa_len:	length of @sa
 * @events:	what to watch the socket for while connecting (EPOLLOUT says
 *		the connect completed)
 * @sock_drop:	counter to count a failed epoll_ctl() under, an enum
 *		dp_counter
 *
 * Return: 0 if connected at once (not watched: the caller sets its events),
 *	   1 if in progress (EINPROGRESS, watched for @events), -1 with errno
 *	   set if connect() or epoll_ctl() failed
 */
int flow_connect(struct dp *dp, struct flow *f,
		 const struct sockaddr_storage *sa, socklen_t sa_len,
		 uint32_t events, unsigned sock_drop)
{
	if (!connect(f->sock, (const struct sockaddr *)sa, sa_len))
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	if (flow_epoll_set(dp, f, events)) {
		dp->counters[sock_drop]++;
		return -1;
	}
	return 1;
}

/**
 * flow_sock_dial() - open a non-blocking stream socket and start connecting
 * it: a spliced connection's second socket, beside the flow's @sock
 * @sa:		where it connects
 * @sa_len:	length of @sa
 * @connect_failed:	set if connect() failed rather than socket()
 *
 * Counted in no share: the caller took its descriptors with flow_fds_take().
 *
 * Return: the descriptor, connected or connecting (EINPROGRESS), or -1 with
 *	   errno set (nothing left open)
 */
int flow_sock_dial(const struct sockaddr_storage *sa, socklen_t sa_len,
		   bool *connect_failed)
{
	int s = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);

	*connect_failed = false;
	if (s < 0)
		return -1;
	return flow_sock_start_connect(s, sa, sa_len, connect_failed);
}

/**
 * flow_sock_start_connect() - start connecting a non-blocking stream socket
 * that is open already (flow_sock_dial()'s, or one of nslo.c's pool)
 * @s:		the socket, closed if the connect fails
 * @sa:		where it connects
 * @sa_len:	length of @sa
 * @connect_failed:	set if connect() failed
 *
 * Return: @s, connected or connecting (EINPROGRESS), or -1 with errno set
 *	   (@s closed)
 */
int flow_sock_start_connect(int s, const struct sockaddr_storage *sa,
			    socklen_t sa_len, bool *connect_failed)
{
	int err;

	*connect_failed = false;
	if (connect(s, (const struct sockaddr *)sa, sa_len) &&
	    errno != EINPROGRESS) {
		err = errno;
		*connect_failed = true;
		close(s);
		errno = err;
		return -1;
	}
	return s;
}

/**
 * flow_set_state() - move a flow to a state of its protocol
 * @f:		flow, open
 * @state:	the state, one of its protocol's (TCP_ST_*, UDP_ST_*...)
 */
void flow_set_state(struct flow *f, enum flow_state state)
{
	f->state = (uint8_t)state;
}

/**
 * flow_state_name() - name of a flow state
 * @state:	state
 *
 * Return: static string ("TCP_ST_ESTABLISHED"...), "?" if out of range
 */
const char *flow_state_name(enum flow_state state)
{
	return (unsigned)state < FLOW_STATE_COUNT ? flow_state_names[state] :
						    "?";
}

/**
 * flow_lru_unlink() - take a flow off the recycling list
 * @dp:		data plane
 * @f:		flow, on the list
 */
static void flow_lru_unlink(struct dp *dp, struct flow *f)
{
	struct flow_socks *s = &dp->flow.socks;

	if (f->lru_prev)
		dp->flow.table[f->lru_prev - 1].lru_next = f->lru_next;
	else
		s->lru_head = f->lru_next;
	if (f->lru_next)
		dp->flow.table[f->lru_next - 1].lru_prev = f->lru_prev;
	else
		s->lru_tail = f->lru_prev;
	f->lru_prev = f->lru_next = 0;
	f->lru_on = false;
}

/**
 * flow_close() - close a flow, the one way flows end: release what the data
 * plane could still meet, and mark the slot for flow_defer_sweep()
 * @dp:		data plane
 * @f:		flow, open; what its protocol holds besides the flow (a TCP
 *		out-of-order queue, a spliced connection's second socket and
 *		pipes) already released by that protocol
 * @why:	reason, counted in @dp->flow.closed
 *
 * The socket is closed (it leaves epoll) and given back to its share, the
 * flow leaves its hash bucket, the recycling list and the timers, and no
 * longer counts as open.  The slot keeps its type, generation and protocol
 * state, FLOW_ST_CLOSED, until the sweep frees it.
 */
void flow_close(struct dp *dp, struct flow *f, enum flow_close_reason why)
{
	uint32_t idx = (uint32_t)(f - dp->flow.table) + 1;
	uint32_t *link = &dp->flow.buckets[flow_hash(dp, &f->key)];

	while (*link && *link != idx)
		link = &dp->flow.table[*link - 1].hash_next;
	if (*link)
		*link = f->hash_next;
	if (dp->flow.last == idx)
		dp->flow.last = 0;

	if (f->lru_on)
		flow_lru_unlink(dp, f);
	if (f->sock >= 0)
		flow_sock_close(dp, f->sock, f->sock_share);

	f->sock = -1;
	f->state = FLOW_ST_CLOSED;
	f->epoll_events = 0;
	f->deadline_ms = 0;
	f->hash_next = dp->flow.closed_head;
	dp->flow.closed_head = idx;
	dp->flow.count--;
	dp->flow.closed[why]++;
	DP_COUNT(dp, flows_closed);
}

/**
 * flow_defer_sweep() - free the slots of the flows closed since the last
 * sweep, for flow_alloc() to take again
 * @dp:		data plane, between two event-loop batches: nothing holds a
 *		pointer to a flow
 */
void flow_defer_sweep(struct dp *dp)
{
	uint32_t idx = dp->flow.closed_head;

	while (idx) {
		struct flow *f = &dp->flow.table[idx - 1];
		uint32_t next = f->hash_next;

		f->type = FLOW_FREE;
		f->state = FLOW_ST_FREE;
		f->hash_next = dp->flow.free_head;
		dp->flow.free_head = idx;
		idx = next;
	}
	dp->flow.closed_head = 0;
}

/**
 * flow_index() - slot number of a flow, to find it again with flow_at()
 * @dp:		data plane
 * @f:		flow, in the table
 *
 * Return: index into the table, below DP_FLOW_MAX
 */
uint32_t flow_index(const struct dp *dp, const struct flow *f)
{
	return (uint32_t)(f - dp->flow.table);
}

/**
 * flow_at() - the slot a flow_index() names
 * @dp:		data plane
 * @index:	from flow_index()
 *
 * Return: the slot, whatever it holds now: callers compare its type and
 *	   generation with what they kept
 */
struct flow *flow_at(struct dp *dp, uint32_t index)
{
	return &dp->flow.table[index];
}

/**
 * flow_next() - the next open flow, for flow_foreach()
 * @dp:		data plane, table possibly not set up
 * @f:		the previous one, NULL to start
 *
 * Return: next open flow (in use, not closed) in table order, NULL after the
 *	   last
 */
struct flow *flow_next(struct dp *dp, const struct flow *f)
{
	uint32_t i = f ? flow_index(dp, f) + 1 : 0;

	if (!dp->flow.table)
		return NULL;
	for (; i < dp->flow.high_water; i++) {
		const struct flow *n = &dp->flow.table[i];

		if (n->type != FLOW_FREE && !flow_closed(n))
			return &dp->flow.table[i];
	}
	return NULL;
}

/**
 * flow_epoll_ref() - the epoll reference of one of a flow's sockets
 * @dp:		data plane
 * @f:		flow
 * @kind:	EPOLL_REF_FLOW for @sock, EPOLL_REF_SPLICE for a spliced flow's
 *		host socket
 *
 * Return: epoll_event.data.u64 with @kind, the generation and the slot
 */
static uint64_t flow_epoll_ref(const struct dp *dp, const struct flow *f,
			       unsigned kind)
{
	uint32_t idx = (uint32_t)(f - dp->flow.table);

	return (uint64_t)kind << REF_KIND_SHIFT |
	       (uint64_t)f->gen << REF_GEN_SHIFT | idx;
}

/**
 * flow_epoll_ctl() - epoll_ctl() for one of a flow's sockets
 * @dp:		data plane
 * @f:		flow
 * @sock:	its socket, @sock or a spliced flow's host socket
 * @kind:	EPOLL_REF_FLOW or EPOLL_REF_SPLICE, as flow_epoll_ref()
 * @op:		EPOLL_CTL_ADD, EPOLL_CTL_MOD or EPOLL_CTL_DEL
 * @events:	EPOLLIN, EPOLLOUT...
 *
 * Return: 0, or -1 with errno set
 */
static int flow_epoll_ctl(struct dp *dp, const struct flow *f, int sock,
			  unsigned kind, int op, uint32_t events)
{
	struct epoll_event ev = {
		.events = events,
		.data.u64 = flow_epoll_ref(dp, f, kind),
	};

	return epoll_ctl(dp->epoll_fd, op, sock, &ev);
}

/**
 * flow_epoll_watch() - register one of a flow's sockets for epoll events
 * @dp:		data plane
 * @f:		flow
 * @sock:	the socket
 * @kind:	EPOLL_REF_FLOW or EPOLL_REF_SPLICE, as flow_epoll_ref()
 * @registered:	events @sock is registered for now, 0 if none; updated
 * @events:	EPOLLIN, EPOLLOUT... (0 to stop watching)
 *
 * Return: 0, or -1 with errno set (@registered unchanged)
 */
static int flow_epoll_watch(struct dp *dp, const struct flow *f, int sock,
			    unsigned kind, uint32_t *registered,
			    uint32_t events)
{
	int op;

	if (events == *registered)
		return 0;

	if (!events)
		op = EPOLL_CTL_DEL;
	else if (!*registered)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;

	if (flow_epoll_ctl(dp, f, sock, kind, op, events))
		return -1;

	*registered = events;
	return 0;
}

/**
 * flow_epoll_set() - register a flow's socket for epoll events
 * @dp:		data plane
 * @f:		flow with a socket
 * @events:	EPOLLIN, EPOLLOUT... (0 to stop watching)
 *
 * Return: 0, or -1 with errno set
 */
int flow_epoll_set(struct dp *dp, struct flow *f, uint32_t events)
{
	return flow_epoll_watch(dp, f, f->sock, EPOLL_REF_FLOW,
				&f->epoll_events, events);
}

/**
 * flow_epoll_set_splice() - register a spliced flow's host socket, beside
 * its @sock, for epoll events (EPOLL_REF_SPLICE)
 * @dp:		data plane
 * @f:		spliced flow
 * @sock:	its host socket
 * @registered:	events @sock is registered for now, 0 if none; updated
 *		(struct splice_flow's @host_events, splice.c's own)
 * @events:	EPOLLIN, EPOLLOUT... (0 to stop watching)
 *
 * Return: 0, or -1 with errno set
 */
int flow_epoll_set_splice(struct dp *dp, const struct flow *f, int sock,
			  uint32_t *registered, uint32_t events)
{
	return flow_epoll_watch(dp, f, sock, EPOLL_REF_SPLICE, registered,
				events);
}

/**
 * flow_epoll_rearm() - register a flow's socket again with the same events
 * @dp:		data plane
 * @f:		flow with a socket, registered
 *
 * With EPOLLET, an event already reported comes again only after a new
 * wake-up; registering anew polls the socket now, so a condition that holds
 * is reported, and one that does not is waited for afresh.
 *
 * Return: 0, or -1 with errno set
 */
int flow_epoll_rearm(struct dp *dp, struct flow *f)
{
	return flow_epoll_ctl(dp, f, f->sock, EPOLL_REF_FLOW, EPOLL_CTL_MOD,
			      f->epoll_events);
}

/**
 * flow_from_epoll() - the flow an epoll event is for
 * @dp:		data plane
 * @ref:	epoll_event.data.u64, of kind EPOLL_REF_FLOW
 *
 * Return: the flow, or NULL if it was closed (or freed) since the event was
 *	   fetched
 */
struct flow *flow_from_epoll(struct dp *dp, uint64_t ref)
{
	uint64_t idx = ref & REF_INDEX_MASK;
	uint32_t gen = (uint32_t)(ref >> REF_GEN_SHIFT & REF_GEN_MASK);
	struct flow *f;

	if (idx >= DP_FLOW_MAX)
		return NULL;

	f = &dp->flow.table[idx];
	if (f->type == FLOW_FREE || flow_closed(f) || f->gen != gen)
		return NULL;

	return f;
}

/**
 * flow_timer_set() - set (or clear, with 0) a flow's deadline
 * @dp:		data plane
 * @f:		flow
 * @deadline_ms: monotonic time in milliseconds (dp->now_ms based), 0 for none
 */
void flow_timer_set(struct dp *dp, struct flow *f, uint64_t deadline_ms)
{
	f->deadline_ms = deadline_ms;
	if (deadline_ms &&
	    (!dp->flow.next_deadline_ms || deadline_ms < dp->flow.next_deadline_ms))
		dp->flow.next_deadline_ms = deadline_ms;
}

/**
 * flow_timers_run() - fire every flow whose deadline passed
 * @dp:		data plane, @now_ms current
 * @fire:	called for each due flow, its deadline cleared: dp.c's
 *		dispatch to the flow's protocol
 *
 * Also recomputes the earliest deadline left.  @fire may close the flow or
 * set a new deadline.
 */
void flow_timers_run(struct dp *dp, flow_timer_fn *fire)
{
	uint64_t next = 0;
	uint32_t i;

	dp->flow.next_deadline_ms = 0;
	for (i = 0; i < dp->flow.high_water; i++) {
		struct flow *f = &dp->flow.table[i];

		if (f->type == FLOW_FREE || flow_closed(f) || !f->deadline_ms)
			continue;

		if (f->deadline_ms <= dp->now_ms) {
			f->deadline_ms = 0;
			fire(dp, f);
		}

		if (!flow_closed(f) && f->deadline_ms &&
		    (!next || f->deadline_ms < next))
			next = f->deadline_ms;
	}

	/* timers may have set deadlines through flow_timer_set() meanwhile */
	if (next && (!dp->flow.next_deadline_ms || next < dp->flow.next_deadline_ms))
		dp->flow.next_deadline_ms = next;
}

/**
 * flow_count() - number of open flows
 * @dp:		data plane
 *
 * Return: flows allocated and not closed
 */
unsigned flow_count(const struct dp *dp)
{
	return dp->flow.count;
}

/**
 * flow_sock_short() - note that host sockets ran short: a socket refused, a
 * flow recycled or a listener paused
 * @dp:		data plane, @now_ms current
 */
void flow_sock_short(struct dp *dp)
{
	dp->flow.socks.short_ms = dp->now_ms;
	dp_notice(dp, DP_NOTICE_SOCK_SHORT);
}

/**
 * flow_sock_fits() - tell whether one more socket fits a share of the budget
 * @dp:		data plane
 * @share:	the share it would count against
 * @freed:	sockets of the guest's share assumed given back first (0 or 1)
 *
 * Return: true if it fits (always, without a budget)
 */
static bool flow_sock_fits(const struct dp *dp, enum flow_sock_share share,
			   uint32_t freed)
{
	const struct flow_socks *s = &dp->flow.socks;
	uint32_t guest = s->guest - freed;

	if (!s->budget)
		return true;
	if (guest + s->fwd >= s->budget)
		return false;
	return share == FLOW_SOCK_FWD || guest < s->guest_max;
}

/**
 * flow_last_ms() - when a recyclable flow last carried a datagram
 * @f:		UDP or ping flow
 *
 * Return: monotonic time in milliseconds
 */
static uint64_t flow_last_ms(const struct flow *f)
{
	return f->type == FLOW_UDP ? f->udp.last_ms : f->ping.last_ms;
}

/**
 * flow_recycle() - close the least recently used UDP or ping flow of the
 * guest, if it is idle, for its socket
 * @dp:		data plane, @now_ms current
 *
 * The list is in order of last use, so if its tail was used within the last
 * DP_SOCK_RECYCLE_IDLE_MS, every flow on it was: O(1).
 *
 * Return: true if a flow was closed (its socket given back)
 */
static bool flow_recycle(struct dp *dp)
{
	uint32_t idx = dp->flow.socks.lru_tail;
	struct flow *f;

	if (!idx)
		return false;
	f = &dp->flow.table[idx - 1];
	if (flow_last_ms(f) + DP_SOCK_RECYCLE_IDLE_MS > dp->now_ms)
		return false;

	DP_COUNT(dp, flows_recycled);
	flow_sock_short(dp);
	flow_close(dp, f, FLOW_CLOSE_RECYCLED);
	return true;
}

/**
 * flow_sock_room() - make room in a share for one more socket, recycling an
 * idle flow if that is what it takes
 * @dp:		data plane, @now_ms current
 * @share:	the share the socket would count against
 *
 * Return: true if the socket may be opened
 */
static bool flow_sock_room(struct dp *dp, enum flow_sock_share share)
{
	if (flow_sock_fits(dp, share, 0))
		return true;
	/* recycle only if giving back one socket is enough */
	return dp->flow.socks.guest && flow_sock_fits(dp, share, 1) &&
	       flow_recycle(dp);
}

/**
 * flow_sock_retry() - socket() or accept4() failed with EMFILE or ENFILE:
 * recycle a flow and try again?
 * @dp:		data plane, @now_ms current
 * @tries:	such failures so far for this socket, the last one included
 *
 * Return: true if a flow was recycled, at most DP_SOCK_RECYCLE_MAX - 1
 *	   times per socket (flow_sock_room() may have recycled one more)
 */
static bool flow_sock_retry(struct dp *dp, int tries)
{
	DP_COUNT(dp, sock_no_fd);
	return tries < DP_SOCK_RECYCLE_MAX && flow_recycle(dp);
}

/**
 * flow_sock_refused() - count a socket that could not be had
 * @dp:		data plane
 * @err:	EMFILE (the budget, or the process's limit) or ENFILE (the
 *		system's)
 *
 * Return: -1, with errno @err
 */
static int flow_sock_refused(struct dp *dp, int err)
{
	DP_COUNT(dp, sock_refused);
	flow_sock_short(dp);
	errno = err;
	return -1;
}

/**
 * flow_sock_open() - open a host socket for a flow the guest starts
 * @dp:		data plane, @now_ms current
 * @domain:	as for socket()
 * @type:	as for socket()
 * @protocol:	as for socket()
 *
 * Counted against the guest's share (FLOW_SOCK_GUEST), which is also what
 * flow_close() gives back when the socket becomes the flow's @sock.  When the
 * share is used up, or socket() fails with EMFILE or ENFILE, an idle UDP or
 * ping flow is recycled first (DP_SOCK_RECYCLE_MAX at most).
 *
 * Return: the descriptor, or -1 with errno set: EMFILE (or ENFILE) if none
 *	   could be had (counted as sock_refused), else socket()'s error
 */
int flow_sock_open(struct dp *dp, int domain, int type, int protocol)
{
	return flow_sock_open_in(dp, FLOW_SOCK_GUEST, domain, type, protocol);
}

/**
 * flow_sock_open_in() - flow_sock_open(), counted against a given share
 * @dp:		data plane, @now_ms current
 * @share:	FLOW_SOCK_GUEST, or FLOW_SOCK_FWD for a forward's flow (a
 *		spliced UDP flow's host socket, udp.c)
 * @domain:	as for socket()
 * @type:	as for socket()
 * @protocol:	as for socket()
 *
 * Return: as flow_sock_open()
 */
int flow_sock_open_in(struct dp *dp, enum flow_sock_share share, int domain,
		      int type, int protocol)
{
	int s, err, tries = 0;

	if (!flow_sock_room(dp, share))
		return flow_sock_refused(dp, EMFILE);

	while ((s = socket(domain, type, protocol)) < 0) {
		err = errno;
		if (err != EMFILE && err != ENFILE)
			return -1;
		if (!flow_sock_retry(dp, ++tries))
			return flow_sock_refused(dp, err);
	}

	if (share == FLOW_SOCK_FWD)
		dp->flow.socks.fwd++;
	else
		dp->flow.socks.guest++;
	return s;
}

/**
 * flow_fds_take() - count descriptors a flow is about to open against a
 * share, if they all fit (a spliced connection's host socket and pipes)
 * @dp:		data plane
 * @share:	the share they count against
 * @n:		how many
 *
 * No flow is recycled for them: the caller refuses the connection instead.
 *
 * Return: 0 if counted, -1 (sock_refused counted) if they do not fit
 */
int flow_fds_take(struct dp *dp, enum flow_sock_share share, unsigned n)
{
	struct flow_socks *s = &dp->flow.socks;

	if (s->budget && (s->guest + s->fwd + n > s->budget ||
			  (share == FLOW_SOCK_GUEST &&
			   s->guest + n > s->guest_max))) {
		flow_sock_refused(dp, EMFILE);
		return -1;
	}
	if (share == FLOW_SOCK_FWD)
		s->fwd += n;
	else
		s->guest += n;
	return 0;
}

/**
 * flow_fds_give() - give back descriptors counted with flow_fds_take()
 * @dp:		data plane
 * @share:	the share they counted against
 * @n:		how many
 */
void flow_fds_give(struct dp *dp, enum flow_sock_share share, unsigned n)
{
	while (n--)
		flow_sock_release(dp, share);
}

/**
 * flow_sock_accept() - accept a connection on a forward's listener
 * @dp:		data plane, @now_ms current
 * @lsock:	listening socket, non-blocking
 * @sa:		filled with the client's address
 * @sa_len:	size of @sa, then the address's length
 * @waiting:	epoll said a connection waits (the first accept of a wake-up):
 *		an idle flow may be recycled for it.  Not for later ones, which
 *		may find the queue empty: a flow would be closed for nothing
 *
 * Counted against the forwards' share (FLOW_SOCK_FWD): the socket goes to a
 * flow with @sock_share FLOW_SOCK_FWD, or to flow_sock_close().  With
 * @waiting, recycles an idle flow first when the budget is used up or
 * accept4() fails with EMFILE or ENFILE, as flow_sock_open() does.
 *
 * Return: the descriptor (non-blocking, close-on-exec), or -1 with errno
 *	   set: EMFILE (or ENFILE) if no descriptor could be had (counted as
 *	   sock_refused with @waiting; a connection stays in the backlog),
 *	   EAGAIN without @waiting and without room, else accept4()'s error
 */
int flow_sock_accept(struct dp *dp, int lsock, struct sockaddr *sa,
		     socklen_t *sa_len, bool waiting)
{
	socklen_t len = *sa_len;
	int fd, err, tries = 0;

	if (!flow_sock_fits(dp, FLOW_SOCK_FWD, 0)) {
		if (!waiting) {
			errno = EAGAIN;	/* the next wake-up, if any waits */
			return -1;
		}
		if (!flow_sock_room(dp, FLOW_SOCK_FWD))
			return flow_sock_refused(dp, EMFILE);
	}

	while ((fd = accept4(lsock, sa, sa_len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
		err = errno;
		if (err != EMFILE && err != ENFILE)
			return -1;
		if (!waiting) {
			DP_COUNT(dp, sock_no_fd);
			errno = err;
			return -1;
		}
		if (!flow_sock_retry(dp, ++tries))
			return flow_sock_refused(dp, err);
		*sa_len = len;
	}

	dp->flow.socks.fwd++;
	return fd;
}

/**
 * flow_sock_release() - a socket counted in a share is no longer held
 * @dp:		data plane
 * @share:	the share it counted against
 */
void flow_sock_release(struct dp *dp, enum flow_sock_share share)
{
	uint32_t *n = share == FLOW_SOCK_FWD ? &dp->flow.socks.fwd :
					       &dp->flow.socks.guest;

	if (*n)
		(*n)--;
}

/**
 * flow_sock_adopt() - count a socket the data plane did not open: a forward's
 * listener, which Python owns, in the forwards' share (never refused: it is
 * open already)
 * @dp:		data plane
 */
void flow_sock_adopt(struct dp *dp)
{
	dp->flow.socks.fwd++;
}

/**
 * flow_sock_close() - close a socket from flow_sock_open() or
 * flow_sock_accept() and give it back to its share
 * @dp:		data plane
 * @fd:		descriptor
 * @share:	the share it counted against
 */
void flow_sock_close(struct dp *dp, int fd, enum flow_sock_share share)
{
	close(fd);
	flow_sock_release(dp, share);
}

/**
 * flow_touch() - a UDP or ping flow carried a datagram: make it the most
 * recently used, last to be recycled
 * @dp:		data plane
 * @f:		flow; only UDP and ping flows with a socket of their own are
 *		recycled, others are left alone
 */
void flow_touch(struct dp *dp, struct flow *f)
{
	struct flow_socks *s = &dp->flow.socks;
	uint32_t idx = (uint32_t)(f - dp->flow.table) + 1;

	if (f->sock < 0 || (f->type != FLOW_UDP && f->type != FLOW_PING) ||
	    s->lru_head == idx)
		return;

	if (f->lru_on)
		flow_lru_unlink(dp, f);
	f->lru_next = s->lru_head;
	if (s->lru_head)
		dp->flow.table[s->lru_head - 1].lru_prev = idx;
	else
		s->lru_tail = idx;
	s->lru_head = idx;
	f->lru_on = true;
}

/**
 * dp_sock_stats() - the host sockets of the data plane, for get_stats
 * @dp:		data plane
 * @out:	filled
 *
 * Return: 0, or -1 with errno EINVAL if @dp or @out is NULL
 */
int dp_sock_stats(const struct dp *dp, struct dp_sock_stats *out)
{
	const struct flow_socks *s;
	uint32_t i;

	if (!dp || !out) {
		errno = EINVAL;
		return -1;
	}
	s = &dp->flow.socks;

	memset(out, 0, sizeof(*out));
	out->budget = s->budget;
	out->guest_max = s->guest_max;
	out->guest = s->guest;
	out->fwd = s->fwd;
	for (i = 0; i < DP_FWD_MAX; i++)
		out->paused += dp->fwd.listeners[i].sock >= 0 && dp->fwd.listeners[i].paused_until_ms;
	out->degraded = out->paused ||
			(s->budget && (s->guest >= s->guest_max ||
				       s->guest + s->fwd >= s->budget)) ||
			(s->short_ms && dp->now_ms < s->short_ms +
							 DP_SOCK_DEGRADED_MS);
	return 0;
}

/**
 * dp_flow_close_reason_count() - number of reasons a flow is closed for
 *
 * Return: length of the arrays dp_flow_close_reason_name() and
 *	   dp_flows_closed() index
 */
int dp_flow_close_reason_count(void)
{
	return FLOW_CLOSE_COUNT;
}

/**
 * dp_flow_close_reason_name() - name of a reason a flow is closed for
 * @index:	reason index, 0 to dp_flow_close_reason_count() - 1
 *
 * Return: static string (FLOW_CLOSE_IDLE...), or NULL if @index is out of
 *	   range
 */
const char *dp_flow_close_reason_name(int index)
{
	if (index < 0 || index >= FLOW_CLOSE_COUNT)
		return NULL;

	return flow_close_names[index];
}

/**
 * dp_flows_closed() - copy out the flows closed so far, by reason
 * @dp:		data plane
 * @out:	array of at least @n elements
 * @n:		size of @out
 *
 * Return: number of reasons copied, the smaller of @n and
 *	   dp_flow_close_reason_count(), 0 if @dp or @out is NULL
 */
int dp_flows_closed(const struct dp *dp, uint64_t *out, int n)
{
	if (!dp || !out || n <= 0)
		return 0;

	if (n > FLOW_CLOSE_COUNT)
		n = FLOW_CLOSE_COUNT;

	memcpy(out, dp->flow.closed, (size_t)n * sizeof(*out));
	return n;
}

/**
 * dp_flow_state_count() - number of flow states
 *
 * Return: length of the arrays dp_flow_state_name() and dp_flow_states()
 *	   index
 */
int dp_flow_state_count(void)
{
	return FLOW_STATE_COUNT;
}

/**
 * dp_flow_state_name() - name of a flow state
 * @index:	state index, 0 to dp_flow_state_count() - 1
 *
 * Return: static string (TCP_ST_ESTABLISHED, UDP_ST_ONE_WAY...), or NULL if
 *	   @index is out of range
 */
const char *dp_flow_state_name(int index)
{
	if (index < 0 || index >= FLOW_STATE_COUNT)
		return NULL;

	return flow_state_names[index];
}

/**
 * dp_flow_states() - count the open flows by state (enum flow_state)
 * @dp:		data plane
 * @out:	array of at least @n elements, indexed like dp_flow_state_name()
 * @n:		size of @out
 *
 * Return: number of states filled, the smaller of @n and
 *	   dp_flow_state_count(), 0 if @dp or @out is NULL
 */
int dp_flow_states(struct dp *dp, uint64_t *out, int n)
{
	uint64_t count[FLOW_STATE_COUNT] = { 0 };
	struct flow *f;

	if (!dp || !out || n <= 0)
		return 0;

	flow_foreach(dp, f)
		count[f->state]++;
	if (n > FLOW_STATE_COUNT)
		n = FLOW_STATE_COUNT;

	memcpy(out, count, (size_t)n * sizeof(*out));
	return n;
}
