/* ctl.h - frames for the control plane (DHCP, DHCPv6: in Python), see ctl.c */
#ifndef CTL_H
#define CTL_H

#include <stddef.h>
#include <stdint.h>

#include "dp_limits.h"

struct dp;

/**
 * struct ctl_ctx - control frame ring, owned by ctl.c
 * @buf:	DP_CTL_FRAMES frames of DP_CTL_FRAME_MAX bytes
 * @len:	length of each queued control frame
 * @head:	oldest queued control frame
 * @count:	control frames queued
 */
struct ctl_ctx {
	uint8_t *buf;
	size_t len[DP_CTL_FRAMES];
	unsigned head;
	unsigned count;
};

int ctl_init(struct dp *dp);
void ctl_cleanup(struct dp *dp);
void ctl_queue(struct dp *dp, const uint8_t *eth_src, uint16_t eth_type,
	       const uint8_t *pkt, size_t len);

#endif /* CTL_H */
