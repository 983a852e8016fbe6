/* ndp.h - IPv6 neighbour and router discovery for the guest, see ndp.c */
#ifndef NDP_H
#define NDP_H

#include <stdint.h>

struct dp;
struct l4_pkt;

/**
 * struct ndp_ctx - router advertisement schedule, owned by ndp.c
 * @ra_deadline_ms:	when the next unsolicited router advertisement goes,
 *			0 until the guest solicited one
 */
struct ndp_ctx {
	uint64_t ra_deadline_ms;
};

void ndp_input(struct dp *dp, const struct l4_pkt *p, uint8_t hop_limit);
void ndp_timer(struct dp *dp);

#endif /* NDP_H */
