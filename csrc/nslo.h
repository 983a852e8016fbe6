/* nslo.h - the pool of sockets of the guest's namespace, see nslo.c */
#ifndef NSLO_H
#define NSLO_H

#include <stdbool.h>
#include <sys/socket.h>

#include "dp_limits.h"

struct dp;

/* Pools of struct nslo_ctx: one per address family */
#define NSLO_POOL_V4		0
#define NSLO_POOL_V6		1

/**
 * struct nslo_ctx - pasta's --host-lo-to-ns-lo, owned by nslo.c
 * @enabled:	dp_ns_lo_enable() was called: -t connections from the host's
 *		loopback go to the namespace's loopback
 * @pool:	per family, unconnected TCP sockets made in the guest's
 *		namespace, @count of them
 * @count:	per family, sockets in @pool
 */
struct nslo_ctx {
	bool enabled;
	int pool[2][DP_NSLO_POOL_MAX];
	unsigned count[2];
};

bool nslo_enabled(const struct dp *dp);
int nslo_dial(struct dp *dp, const struct sockaddr_storage *sa,
	      socklen_t sa_len, bool *connect_failed);
void nslo_cleanup(struct dp *dp);

#endif /* NSLO_H */
