/* nslo.c - pasta's --host-lo-to-ns-lo: the host's loopback to the guest's
 *
 * Theory of operation
 * -------------------
 * pasta splices a -t connection that comes from the host's loopback to the
 * guest namespace's own address, so that a server listening only on the
 * namespace's loopback stays private; with --host-lo-to-ns-lo it goes to the
 * namespace's loopback instead (127.0.0.1 or ::1, at the forward's port),
 * and appears there from loopback (passt's fwd.c, fwd_nat_from_host()).
 *
 * The data plane never joins the guest's namespace, but a socket made in it
 * stays in it, whoever connects it.  So Python, after dp_ns_lo_enable(),
 * has nsbinder.py's helper (which lives in the guest's namespaces) make
 * unconnected non-blocking TCP sockets there and hands them over with
 * dp_ns_lo_add(): a pool per address family.  With nslo_enabled(), fwd.c
 * hands each connection a -t forward accepts from the host's loopback
 * to splice.c, which takes its second socket from nslo_dial() instead of
 * opening one on the host, and splices the two as it does -T's.
 *
 * Python refills the pools: taking a socket that leaves its pool at most half
 * full raises DP_NOTICE_NS_LO_LOW, so dp_wait() returns to Python after
 * that wake-up, which asks dp_ns_lo_wanted() how many sockets each pool
 * takes now (none while it is more than half full).  A connection that
 * finds its pool empty (a burst of more than half a pool within one
 * wake-up) is reset and counted (drop_ns_lo_pool_empty), never held
 * waiting.
 *
 * Limits
 * ------
 * DP_NSLO_POOL_MAX sockets per family, held by the data plane and counted in
 * no share of the socket budget while pooled (Python's reserve covers them);
 * a socket taken is one of the five a spliced connection takes with
 * flow_fds_take().  dp_free() closes what is left.
 */

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp.h"
#include "flow.h"
#include "nslo.h"

/**
 * nslo_pool_of() - the pool of an address family
 * @family:	AF_INET or AF_INET6
 *
 * Return: NSLO_POOL_V4 or NSLO_POOL_V6, -1 for another family
 */
static int nslo_pool_of(int family)
{
	if (family == AF_INET)
		return NSLO_POOL_V4;
	return family == AF_INET6 ? NSLO_POOL_V6 : -1;
}

/**
 * nslo_enabled() - tell whether -t connections from the host's loopback go
 * to the namespace's loopback
 * @dp:		data plane
 *
 * Return: true once dp_ns_lo_enable() was called
 */
bool nslo_enabled(const struct dp *dp)
{
	return dp->nslo.enabled;
}

/**
 * nslo_dial() - take a socket of the guest's namespace from its pool and
 * start connecting it
 * @dp:		data plane
 * @sa:		where it connects: the namespace's loopback
 * @sa_len:	length of @sa
 * @connect_failed:	set if connect() failed rather than the pool
 *
 * Counted in no share: the caller took its descriptors with flow_fds_take().
 *
 * Return: the descriptor, connected or connecting, or -1 with errno set
 *	   (EAGAIN for an empty pool, counted in drop_ns_lo_pool_empty)
 */
int nslo_dial(struct dp *dp, const struct sockaddr_storage *sa,
	      socklen_t sa_len, bool *connect_failed)
{
	int pool = nslo_pool_of(sa->ss_family);
	int s;

	*connect_failed = false;
	if (pool < 0) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (!dp->nslo.count[pool]) {
		DP_COUNT(dp, drop_ns_lo_pool_empty);
		errno = EAGAIN;
		return -1;
	}
	s = dp->nslo.pool[pool][--dp->nslo.count[pool]];
	if (dp->nslo.count[pool] <= DP_NSLO_POOL_MAX / 2)
		dp->notices |= DP_NOTICE_NS_LO_LOW;
	DP_COUNT(dp, ns_lo_dialled);
	return flow_sock_start_connect(s, sa, sa_len, connect_failed);
}

/**
 * nslo_cleanup() - close the pooled sockets
 * @dp:		data plane
 */
void nslo_cleanup(struct dp *dp)
{
	int pool;

	for (pool = 0; pool < 2; pool++) {
		while (dp->nslo.count[pool])
			close(dp->nslo.pool[pool][--dp->nslo.count[pool]]);
	}
}

/**
 * dp_ns_lo_enable() - pasta's --host-lo-to-ns-lo: from now on, -t
 * connections from the host's loopback go to the namespace's loopback
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno EINVAL
 */
int dp_ns_lo_enable(struct dp *dp)
{
	if (!dp) {
		errno = EINVAL;
		return -1;
	}
	dp->nslo.enabled = true;
	return 0;
}

/**
 * dp_ns_lo_add() - give the pool an unconnected TCP socket of the guest's
 * namespace
 * @dp:		data plane
 * @sock:	the socket, AF_INET or AF_INET6, SOCK_STREAM, non-blocking;
 *		the data plane's from now on (closed by it, also on failure)
 *
 * Return: 0, or -1 with errno set (EINVAL for another kind of socket,
 *	   ENOSPC for a full pool)
 */
int dp_ns_lo_add(struct dp *dp, int sock)
{
	int domain = -1, type = -1, pool;
	socklen_t len = sizeof(int);

	if (!dp || sock < 0) {
		errno = EINVAL;
		goto fail;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &len) ||
	    len != sizeof(int) ||
	    getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    len != sizeof(int) || type != SOCK_STREAM) {
		errno = EINVAL;
		goto fail;
	}
	pool = nslo_pool_of(domain);
	if (pool < 0) {
		errno = EINVAL;
		goto fail;
	}
	if (dp->nslo.count[pool] >= DP_NSLO_POOL_MAX) {
		errno = ENOSPC;
		goto fail;
	}
	dp->nslo.pool[pool][dp->nslo.count[pool]++] = sock;
	return 0;

fail:
	if (sock >= 0)
		close(sock);
	return -1;
}

/**
 * dp_ns_lo_wanted() - how many sockets a pool takes now
 * @dp:		data plane
 * @version:	4 or 6
 *
 * Return: the room left in the pool of @version once it is at most half
 *	   full, else 0 (also when --host-lo-to-ns-lo is off); -1 with errno
 *	   EINVAL for a bad argument
 */
int dp_ns_lo_wanted(const struct dp *dp, int version)
{
	int pool = version == 4 ? NSLO_POOL_V4 : NSLO_POOL_V6;
	unsigned count;

	if (!dp || (version != 4 && version != 6)) {
		errno = EINVAL;
		return -1;
	}
	count = dp->nslo.count[pool];
	if (!dp->nslo.enabled || count > DP_NSLO_POOL_MAX / 2)
		return 0;
	return (int)(DP_NSLO_POOL_MAX - count);
}
