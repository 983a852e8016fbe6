/* frag.h - reassembly of fragmented datagrams from the guest, see frag.c */
#ifndef FRAG_H
#define FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dp;
struct frag_slot;
struct l4_pkt;

/**
 * struct frag_ctx - reassembly slots, owned by frag.c
 * @slots:		IPv4 and IPv6 reassembly slots, DP_FRAG_SLOTS
 * @deadline_ms:	earliest reassembly timeout, 0 if none
 */
struct frag_ctx {
	struct frag_slot *slots;
	uint64_t deadline_ms;
};

int frag_init(struct dp *dp);
void frag_cleanup(struct dp *dp);
void frag_input(struct dp *dp, const struct l4_pkt *p, uint32_t id,
		size_t offset, bool more);
void frag_timer(struct dp *dp);
void frag_batch_end(struct dp *dp);

#endif /* FRAG_H */
