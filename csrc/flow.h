/* flow.h - the one flow table: TCP, UDP and ping flows, see flow.c */
#ifndef FLOW_H
#define FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include "inany.h"
#include "tcp_conn.h"
#include "udp.h"
#include "icmp.h"
#include "splice.h"

struct dp;

/* What a flow translates; FLOW_FREE marks an unused slot */
#define FLOW_TYPES(X)	X(FLOW_FREE) X(FLOW_TCP) X(FLOW_UDP) X(FLOW_PING) \
			X(FLOW_SPLICE)

#define FLOW_TYPE_ENUM(name)	name,
enum flow_type {
	FLOW_TYPES(FLOW_TYPE_ENUM)
	FLOW_TYPE_COUNT
};
#undef FLOW_TYPE_ENUM

/* Where a flow is in its life, one enum for every protocol (struct flow's
 * @state, set with flow_set_state(); counted by state in get_stats): a free
 * slot, a new flow its protocol has not set up yet, a closed one waiting for
 * flow_defer_sweep(), then each protocol's own states (tcp.c's, udp.c's,
 * icmp.c's and splice.c's theories of operation tell their lives) */
#define FLOW_STATES(X)							\
	X(FLOW_ST_FREE)		/* unused slot */			\
	X(FLOW_ST_NEW)		/* slot taken, not set up yet */	\
	X(FLOW_ST_CLOSED)	/* closed, the slot freed by the sweep */ \
	X(TCP_ST_CONNECTING)	/* host connect() in progress */	\
	X(TCP_ST_SYN_ACK_SENT)	/* waiting for the guest's ACK */	\
	X(TCP_ST_ESTABLISHED)	/* data both ways, half-closes in flags */ \
	X(TCP_ST_SYN_SENT)	/* forwarded: waiting for the SYN-ACK */ \
	X(UDP_ST_ONE_WAY)	/* datagrams from its opener only */	\
	X(UDP_ST_BOTH_WAYS)	/* the other side answered */		\
	X(PING_ST_UNANSWERED)	/* echo requests, no reply yet */	\
	X(PING_ST_ANSWERED)	/* a reply came back */			\
	X(SPLICE_ST_CONNECTING)	/* connect() to the host in progress */	\
	X(SPLICE_ST_ESTABLISHED) /* bytes both ways */			\
	X(SPLICE_ST_HALF_CLOSED) /* one direction's FIN passed on */

#define FLOW_STATE_ENUM(name)	name,
enum flow_state {
	FLOW_STATES(FLOW_STATE_ENUM)
	FLOW_STATE_COUNT
};
#undef FLOW_STATE_ENUM

/**
 * struct flow_key - a flow as the guest sees it
 * @guest_addr:		the guest's address (IPv4-mapped for IPv4)
 * @remote_addr:	the address the guest talks to, as the guest wrote it
 *			(e.g. the gateway, not the host's 127.0.0.1)
 * @guest_port:		the guest's port (ICMP echo: the identifier)
 * @remote_port:	the remote port (ICMP echo: 0)
 * @proto:		IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP or IPPROTO_ICMPV6
 * @pad:		zero, so that keys compare and hash as bytes
 */
struct flow_key {
	union inany_addr guest_addr;
	union inany_addr remote_addr;
	uint16_t guest_port;
	uint16_t remote_port;
	uint8_t proto;
	uint8_t pad[3];
};

/* Which part of the socket budget a host socket counts against (flow.c) */
enum flow_sock_share {
	FLOW_SOCK_GUEST,	/* flows the guest starts: TCP, UDP, ping */
	FLOW_SOCK_FWD,		/* forwards: listeners, accepted connections */
};

/**
 * struct flow_socks - the host sockets of flows and forwards (flow.c)
 * @budget:	cfg.sock_budget, 0 for no bound
 * @guest_max:	of @budget, what flows the guest starts may hold
 * @guest:	sockets flows the guest started hold (FLOW_SOCK_GUEST)
 * @fwd:	sockets forwards hold (FLOW_SOCK_FWD)
 * @lru_head:	most recently used recyclable flow (index + 1), 0 if none
 * @lru_tail:	least recently used one, recycled first
 * @short_ms:	last time a socket was refused, a flow recycled or a listener
 *		paused, 0 if never
 */
struct flow_socks {
	uint32_t budget;
	uint32_t guest_max;
	uint32_t guest;
	uint32_t fwd;
	uint32_t lru_head;
	uint32_t lru_tail;
	uint64_t short_ms;
};

/**
 * struct flow - one entry of the flow table
 *
 * Code outside flow.c reads these common fields but never writes them: a flow
 * is opened, watched, timed, given a state and closed through flow.c's
 * functions (tests/test_structure_c.py keeps it so).  The protocol's member
 * of the union is the protocol's own.
 *
 * @type:		enum flow_type
 * @state:		enum flow_state
 * @sock_share:		enum flow_sock_share @sock counts against
 * @lru_on:		on the recycling list: a UDP or ping flow with a socket
 *			of its own
 * @epoll_events:	events @sock is registered for in epoll, 0 if none
 * @gen:		generation, changes on every allocation of this slot,
 *			so that stale epoll events are recognised
 * @hash_next:		next flow in the same hash bucket (index + 1), or the
 *			next slot on the free list or on the list of closed
 *			flows waiting for the sweep; 0 ends a list
 * @sock:		host socket, -1 if none
 * @deadline_ms:	when flow_timers_run() calls the protocol's timer, 0 for
 *			never (set with flow_timer_set())
 * @lru_prev:		with @lru_on: the next more recently used flow
 *			(index + 1), 0 at the head
 * @lru_next:		with @lru_on: the next less recently used flow, 0 at
 *			the tail
 * @key:		lookup key
 * @tcp:		TCP state (tcp.h), when @type is FLOW_TCP
 * @udp:		UDP state (udp.h), when @type is FLOW_UDP
 * @ping:		ping state (icmp.h), when @type is FLOW_PING
 * @splice:		spliced connection state (splice.h), when @type is
 *			FLOW_SPLICE (its host socket is the second one)
 */
struct flow {
	uint8_t type;
	uint8_t state;
	uint8_t sock_share;
	bool lru_on;
	uint32_t epoll_events;
	uint32_t gen;
	uint32_t hash_next;
	int sock;
	uint64_t deadline_ms;
	uint32_t lru_prev;
	uint32_t lru_next;
	struct flow_key key;
	union {
		struct tcp_flow tcp;
		struct udp_flow udp;
		struct ping_flow ping;
		struct splice_flow splice;
	};
};

/* Why a flow is closed, given to flow_close(): counted per reason
 * (dp_flow_stats()) */
#define FLOW_CLOSE_REASONS(X)						\
	X(FLOW_CLOSE_DONE)	/* both sides finished in order */	\
	X(FLOW_CLOSE_RESET)	/* reset by either side, or by us */	\
	X(FLOW_CLOSE_IDLE)	/* idle timeout */			\
	X(FLOW_CLOSE_SOCKET)	/* the host socket failed or was refused */ \
	X(FLOW_CLOSE_RECYCLED)	/* its socket was wanted by a new flow */ \
	X(FLOW_CLOSE_DNS)	/* the host's nameserver changed */	\
	X(FLOW_CLOSE_FWD_GONE)	/* the forward it replied through went */

#define FLOW_CLOSE_ENUM(name)	name,
enum flow_close_reason {
	FLOW_CLOSE_REASONS(FLOW_CLOSE_ENUM)
	FLOW_CLOSE_COUNT
};
#undef FLOW_CLOSE_ENUM

/**
 * struct flow_ctx - the flow table, owned by flow.c
 * @table:		DP_FLOW_MAX slots
 * @buckets:		hash buckets: index + 1 of the first flow, 0 if empty
 * @free_head:		index + 1 of the first freed slot, 0 if none is
 * @closed_head:	index + 1 of the first flow closed since the last
 *			flow_defer_sweep(), 0 if none
 * @high_water:		slots below this have been used at least once; those
 *			from it on are free, never written
 * @count:		flows in use
 * @last:		index + 1 of the flow flow_lookup() found last, 0 if
 *			none or closed since
 * @seed:		random hash seed
 * @next_deadline_ms:	earliest flow deadline, 0 if none
 * @socks:		host sockets held, their budget, the recycling list
 * @closed:		flows closed, by enum flow_close_reason
 */
struct flow_ctx {
	struct flow *table;
	uint32_t *buckets;
	uint32_t free_head;
	uint32_t closed_head;
	uint32_t high_water;
	uint32_t count;
	uint32_t last;
	uint64_t seed;
	uint64_t next_deadline_ms;
	struct flow_socks socks;
	uint64_t closed[FLOW_CLOSE_COUNT];
};

/* epoll_event.data.u64 of everything in the data plane's epoll set */
#define EPOLL_REF_TAP		0
#define EPOLL_REF_FLOW		1
#define EPOLL_REF_LISTEN	2
#define EPOLL_REF_OUTER		3	/* the caller's descriptor, dp_watch_fd() */
#define EPOLL_REF_SPLICE	4	/* a spliced flow's host socket (splice.c) */

int flow_table_init(struct dp *dp);
void flow_table_cleanup(struct dp *dp);
struct flow *flow_lookup(struct dp *dp, const struct flow_key *key);
struct flow *flow_alloc(struct dp *dp, enum flow_type type,
			const struct flow_key *key);
struct flow *flow_adopt(struct dp *dp, enum flow_type type,
			const struct flow_key *key, int s,
			enum flow_sock_share share);
struct flow *flow_open(struct dp *dp, enum flow_type type,
		       const struct flow_key *key, int s,
		       enum flow_sock_share share,
		       const struct sockaddr_storage *sa, socklen_t sa_len,
		       unsigned sock_drop);
int flow_sock_attach(struct dp *dp, struct flow *f, int domain, int type,
		     int protocol);
int flow_connect(struct dp *dp, struct flow *f,
		 const struct sockaddr_storage *sa, socklen_t sa_len,
		 uint32_t events, unsigned sock_drop);
int flow_sock_dial(const struct sockaddr_storage *sa, socklen_t sa_len,
		   bool *connect_failed);
int flow_sock_start_connect(int s, const struct sockaddr_storage *sa,
			    socklen_t sa_len, bool *connect_failed);
void flow_set_state(struct flow *f, enum flow_state state);
const char *flow_state_name(enum flow_state state);
void flow_close(struct dp *dp, struct flow *f, enum flow_close_reason why);
void flow_defer_sweep(struct dp *dp);
uint32_t flow_index(const struct dp *dp, const struct flow *f);
struct flow *flow_at(struct dp *dp, uint32_t index);
struct flow *flow_next(struct dp *dp, const struct flow *f);

/**
 * flow_closed() - tell whether a flow was closed (flow_close()) and waits for
 * the sweep: its slot is not reused before, but nothing may act on it
 * @f:		flow
 *
 * Return: true if @f is closed
 */
static inline bool flow_closed(const struct flow *f)
{
	return f->state == FLOW_ST_CLOSED;
}

/* Every open flow, @f the cursor: flow_close(@f) inside the loop is safe */
#define flow_foreach(dp, f)						\
	for ((f) = flow_next((dp), NULL); (f); (f) = flow_next((dp), (f)))
int flow_epoll_set(struct dp *dp, struct flow *f, uint32_t events);
int flow_epoll_rearm(struct dp *dp, struct flow *f);
int flow_epoll_set_splice(struct dp *dp, const struct flow *f, int sock,
			  uint32_t *registered, uint32_t events);
struct flow *flow_from_epoll(struct dp *dp, uint64_t ref);
void flow_timer_set(struct dp *dp, struct flow *f, uint64_t deadline_ms);
/* What flow_timers_run() calls for each due flow (dp.c's dispatch) */
typedef void flow_timer_fn(struct dp *dp, struct flow *f);

void flow_timers_run(struct dp *dp, flow_timer_fn *fire);
unsigned flow_count(const struct dp *dp);
int flow_sock_open(struct dp *dp, int domain, int type, int protocol);
int flow_sock_open_in(struct dp *dp, enum flow_sock_share share, int domain,
		      int type, int protocol);
int flow_fds_take(struct dp *dp, enum flow_sock_share share, unsigned n);
void flow_fds_give(struct dp *dp, enum flow_sock_share share, unsigned n);
int flow_sock_accept(struct dp *dp, int lsock, struct sockaddr *sa,
		     socklen_t *sa_len, bool waiting);
void flow_sock_close(struct dp *dp, int fd, enum flow_sock_share share);
void flow_sock_adopt(struct dp *dp);
void flow_sock_release(struct dp *dp, enum flow_sock_share share);
void flow_sock_short(struct dp *dp);
void flow_touch(struct dp *dp, struct flow *f);
void flow_key_fill(struct flow_key *key, uint8_t proto,
		   const union inany_addr *guest, uint16_t guest_port,
		   const union inany_addr *remote, uint16_t remote_port);

#endif /* FLOW_H */
