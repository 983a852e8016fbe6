/* dp.h - the ground of the data plane: struct dp, its counters and notices
 *
 * struct dp is one data plane instance (see dp.c for the theory of
 * operation).  Its state is grouped by the file that owns it: each module's
 * header defines its part (struct tap_ctx in tap.h, struct flow_ctx in
 * flow.h...) and only that file writes it.  The entry points of a module are
 * in its own header; a .c file includes the headers of what it uses, so its
 * include list is its list of dependencies.  Python never sees this file; its
 * view is dp_api.h, included here so both sides share one definition.
 */
#ifndef DP_H
#define DP_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_api_once.h"
#include "dp_counters.h"
#include "dp_limits.h"
#include "ctl.h"
#include "eth.h"
#include "flow.h"
#include "frag.h"
#include "fwd.h"
#include "ip.h"
#include "ndp.h"
#include "nslo.h"
#include "pcap.h"
#include "tap.h"
#include "tcp_conn.h"
#include "udp.h"

#define DP_CNT_ENUM(name)	DP_CNT_##name,
enum dp_counter {
	DP_COUNTERS(DP_CNT_ENUM)
	DP_CNT_COUNT
};
#undef DP_CNT_ENUM

/* Add one to counter @name of @dp: DP_COUNT(dp, drop_runt) */
#define DP_COUNT(dp, name)	((dp)->counters[DP_CNT_##name]++)
/* Add @n to counter @name of @dp */
#define DP_COUNT_N(dp, name, n)	((dp)->counters[DP_CNT_##name] += (n))

/**
 * struct dp - one data plane instance, see dp.c for the theory of operation
 * @cfg:		copy of the configuration given to dp_new()
 * @epoll_fd:		epoll instance with the TAP registered for EPOLLIN
 * @now_ms:		monotonic clock in milliseconds, read once per dp_poll()
 * @spin_us:		dp_wait()'s busy-poll window, 0 to DP_SPIN_MAX_US
 * @notices:		DP_NOTICE_* bits raised and not yet read by dp_notices()
 * @notices_raised:	DP_NOTICE_* bits ever raised: each is raised once
 * @tap:		the TAP and its rings (tap.c)
 * @eth:		what the link layer learnt of the guest (eth.c)
 * @ip:			state of IP output (ip.c)
 * @ndp:		router advertisement schedule (ndp.c)
 * @flow:		the flow table and the socket budget (flow.c)
 * @frag:		reassembly slots (frag.c)
 * @udp:		UDP state beside the flows: receive buffers, held guest
 *			datagrams, what the host kernel offers (udp.c)
 * @tcp:		TCP state beside the flows: deferred work, counts (tcp.c)
 * @fwd:		forwarded host sockets, the host's nameserver (fwd.c)
 * @nslo:		the pools of --host-lo-to-ns-lo (nslo.c)
 * @ctl:		control frame ring (ctl.c)
 * @pcap:		capture file (pcap.c)
 * @counters:		counters, indexed by enum dp_counter
 */
struct dp {
	struct dp_config cfg;
	int epoll_fd;
	uint64_t now_ms;
	unsigned spin_us;
	uint32_t notices;
	uint32_t notices_raised;
	struct tap_ctx tap;
	struct eth_ctx eth;
	struct ip_ctx ip;
	struct ndp_ctx ndp;
	struct flow_ctx flow;
	struct frag_ctx frag;
	struct udp_ctx udp;
	struct tcp_ctx tcp;
	struct fwd_ctx fwd;
	struct nslo_ctx nslo;
	struct ctl_ctx ctl;
	struct pcap_ctx pcap;
	uint64_t counters[DP_CNT_COUNT];
};

/**
 * dp_yield_cpu() - let the readers of a full batch run before the next one
 * @dp:		data plane
 *
 * Called after a full batch (64 frames from the TAP relayed to host sockets,
 * or a round of DP_UDP_RECV_BATCH datagrams for the guest): the frames built
 * for the guest are written out, then sched_yield().  The batch's readers are
 * woken but, on our CPU, would otherwise wait for the end of our time slice
 * while we deliver more than their socket buffers hold.  Only the order
 * changes: a task that yields keeps its share of the CPU (its virtual run
 * time is what it ran), and with nothing else runnable the call returns at
 * once.  See dp.c, "Handing over the CPU".
 */
static inline void dp_yield_cpu(struct dp *dp)
{
	tap_tx_flush(dp);
	sched_yield();
	DP_COUNT(dp, cpu_yields);
}

/**
 * dp_notice() - raise a one-shot notice for Python, once per data plane
 * @dp:		data plane
 * @bit:	DP_NOTICE_* bit
 */
static inline void dp_notice(struct dp *dp, uint32_t bit)
{
	if (!(dp->notices_raised & bit)) {
		dp->notices_raised |= bit;
		dp->notices |= bit;
	}
}

#endif /* DP_H */
