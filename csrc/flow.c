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
 * - life cycle: flow_alloc() takes a slot from the free list and links it in
 *   its bucket; flow_free() closes the socket (which also removes it from
 *   epoll), unlinks the slot and puts it back.  A full table is a counted
 *   drop (drop_flow_table_full), never an allocation.
 * - events: a flow's socket is registered in the data plane's epoll set with
 *   a reference (EPOLL_REF_FLOW, slot index, generation).  The generation
 *   changes each time a slot is reused, so an event fetched for a flow that
 *   was freed (and perhaps reused) in the same batch is recognised as stale
 *   and ignored by flow_from_epoll().
 * - timers: each flow has at most one deadline (retransmission, idle
 *   timeout...), set with flow_timer_set().  The data plane remembers the
 *   earliest one; when it is due, flow_timers_run() scans the used part of the
 *   table once and calls each due flow's protocol timer (tcp_timer(),
 *   udp_timer(), ping_timer()).  dp_wait() sleeps until dp_timeout_ms().
 *
 * Limits
 * ------
 * DP_FLOW_MAX flows in all, DP_FLOW_BUCKETS hash buckets (dp_limits.h).
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "dp.h"

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
	uint64_t h = dp->flow_seed;
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
 * flow_table_init() - allocate the table, all slots free
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno set
 */
int flow_table_init(struct dp *dp)
{
	uint32_t i;

	dp->flows = calloc(DP_FLOW_MAX, sizeof(*dp->flows));
	dp->flow_buckets = calloc(DP_FLOW_BUCKETS, sizeof(*dp->flow_buckets));
	if (!dp->flows || !dp->flow_buckets) {
		errno = ENOMEM;
		return -1;
	}

	for (i = 0; i < DP_FLOW_MAX; i++) {
		dp->flows[i].sock = -1;
		dp->flows[i].hash_next = i + 2 <= DP_FLOW_MAX ? i + 2 : 0;
	}
	dp->flow_free_head = 1;

	if (getrandom(&dp->flow_seed, sizeof(dp->flow_seed), 0) !=
	    sizeof(dp->flow_seed))
		dp->flow_seed = (uint64_t)(uintptr_t)dp ^ 0x5bd1e9955bd1e995ULL;

	return 0;
}

/**
 * flow_table_cleanup() - close every flow's socket and free the table
 * @dp:		data plane, table possibly only partly set up
 */
void flow_table_cleanup(struct dp *dp)
{
	uint32_t i;

	if (dp->flows) {
		for (i = 0; i < dp->flow_high_water; i++) {
			if (dp->flows[i].sock >= 0)
				close(dp->flows[i].sock);
		}
	}
	free(dp->flows);
	free(dp->flow_buckets);
	dp->flows = NULL;
	dp->flow_buckets = NULL;
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
 * Return: the flow, or NULL
 */
struct flow *flow_lookup(struct dp *dp, const struct flow_key *key)
{
	uint32_t idx = dp->flow_buckets[flow_hash(dp, key)];

	while (idx) {
		struct flow *f = &dp->flows[idx - 1];

		if (!memcmp(&f->key, key, sizeof(*key)))
			return f;
		idx = f->hash_next;
	}

	return NULL;
}

/**
 * flow_alloc() - take a free slot for a new flow and link it for lookup
 * @dp:		data plane
 * @type:	FLOW_TCP, FLOW_UDP or FLOW_PING
 * @key:	key, built with flow_key_fill(), not in the table yet
 *
 * The protocol state (@tcp, @udp or @ping) is zeroed, @sock is -1.
 *
 * Return: the flow, or NULL (counted as drop_flow_table_full) if the table
 *	   is full
 */
struct flow *flow_alloc(struct dp *dp, enum flow_type type,
			const struct flow_key *key)
{
	uint32_t bucket, idx = dp->flow_free_head;
	struct flow *f;
	uint32_t gen;

	if (!idx) {
		DP_COUNT(dp, drop_flow_table_full);
		return NULL;
	}

	f = &dp->flows[idx - 1];
	dp->flow_free_head = f->hash_next;
	gen = f->gen + 1;

	memset(f, 0, sizeof(*f));
	f->type = (uint8_t)type;
	f->gen = gen & REF_GEN_MASK;
	f->sock = -1;
	f->key = *key;

	bucket = flow_hash(dp, key);
	f->hash_next = dp->flow_buckets[bucket];
	dp->flow_buckets[bucket] = idx;

	if (idx > dp->flow_high_water)
		dp->flow_high_water = idx;
	dp->flow_count++;
	DP_COUNT(dp, flows_created);

	return f;
}

/**
 * flow_free() - close a flow's socket and return its slot
 * @dp:		data plane
 * @f:		flow, in the table
 */
void flow_free(struct dp *dp, struct flow *f)
{
	uint32_t idx = (uint32_t)(f - dp->flows) + 1;
	uint32_t *link = &dp->flow_buckets[flow_hash(dp, &f->key)];

	while (*link && *link != idx)
		link = &dp->flows[*link - 1].hash_next;
	if (*link)
		*link = f->hash_next;

	if (f->sock >= 0)
		close(f->sock);

	f->sock = -1;
	f->type = FLOW_FREE;
	f->epoll_events = 0;
	f->deadline_ms = 0;
	f->hash_next = dp->flow_free_head;
	dp->flow_free_head = idx;
	dp->flow_count--;
	DP_COUNT(dp, flows_closed);
}

/**
 * flow_epoll_ctl() - epoll_ctl() for a flow's socket
 * @dp:		data plane
 * @f:		flow with a socket
 * @op:		EPOLL_CTL_ADD, EPOLL_CTL_MOD or EPOLL_CTL_DEL
 * @events:	EPOLLIN, EPOLLOUT...
 *
 * Return: 0, or -1 with errno set
 */
static int flow_epoll_ctl(struct dp *dp, struct flow *f, int op,
			  uint32_t events)
{
	uint32_t idx = (uint32_t)(f - dp->flows);
	struct epoll_event ev = {
		.events = events,
		.data.u64 = (uint64_t)EPOLL_REF_FLOW << REF_KIND_SHIFT |
			    (uint64_t)f->gen << REF_GEN_SHIFT | idx,
	};

	return epoll_ctl(dp->epoll_fd, op, f->sock, &ev);
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
	int op;

	if (events == f->epoll_events)
		return 0;

	if (!events)
		op = EPOLL_CTL_DEL;
	else if (!f->epoll_events)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;

	if (flow_epoll_ctl(dp, f, op, events))
		return -1;

	f->epoll_events = events;
	return 0;
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
	return flow_epoll_ctl(dp, f, EPOLL_CTL_MOD, f->epoll_events);
}

/**
 * flow_from_epoll() - the flow an epoll event is for
 * @dp:		data plane
 * @ref:	epoll_event.data.u64, of kind EPOLL_REF_FLOW
 *
 * Return: the flow, or NULL if it was freed since the event was fetched
 */
struct flow *flow_from_epoll(struct dp *dp, uint64_t ref)
{
	uint64_t idx = ref & REF_INDEX_MASK;
	uint32_t gen = (uint32_t)(ref >> REF_GEN_SHIFT & REF_GEN_MASK);
	struct flow *f;

	if (idx >= DP_FLOW_MAX)
		return NULL;

	f = &dp->flows[idx];
	if (f->type == FLOW_FREE || f->gen != gen)
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
	    (!dp->next_deadline_ms || deadline_ms < dp->next_deadline_ms))
		dp->next_deadline_ms = deadline_ms;
}

/**
 * flow_timers_run() - call the timer of every flow whose deadline passed
 * @dp:		data plane, @now_ms current
 *
 * Also recomputes the earliest deadline left.  A timer may free its flow or
 * set a new deadline.
 */
void flow_timers_run(struct dp *dp)
{
	uint64_t next = 0;
	uint32_t i;

	dp->next_deadline_ms = 0;
	for (i = 0; i < dp->flow_high_water; i++) {
		struct flow *f = &dp->flows[i];

		if (f->type == FLOW_FREE || !f->deadline_ms)
			continue;

		if (f->deadline_ms <= dp->now_ms) {
			f->deadline_ms = 0;
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
			}
		}

		if (f->type != FLOW_FREE && f->deadline_ms &&
		    (!next || f->deadline_ms < next))
			next = f->deadline_ms;
	}

	/* timers may have set deadlines through flow_timer_set() meanwhile */
	if (next && (!dp->next_deadline_ms || next < dp->next_deadline_ms))
		dp->next_deadline_ms = next;
}

/**
 * flow_count() - number of flows in use
 * @dp:		data plane
 *
 * Return: flows allocated and not freed
 */
unsigned flow_count(const struct dp *dp)
{
	return dp->flow_count;
}
