/* tcp_ooo.h - out-of-order queue of guest TCP data, see tcp_ooo.c */
#ifndef TCP_OOO_H
#define TCP_OOO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_limits.h"

struct dp;

/* Sequence number comparisons, modulo 2^32 */
#define SEQ_LT(a, b)		((int32_t)((a) - (b)) < 0)
#define SEQ_LE(a, b)		((int32_t)((a) - (b)) <= 0)
#define SEQ_GT(a, b)		((int32_t)((a) - (b)) > 0)
#define SEQ_GE(a, b)		((int32_t)((a) - (b)) >= 0)

/**
 * struct tcp_ooo_seg - a run of guest payload held out of order
 * @seq:	sequence number of its first byte
 * @len:	bytes at @data
 * @data:	the payload, copied out of the receive ring
 */
struct tcp_ooo_seg {
	uint32_t seq;
	uint32_t len;
	uint8_t data[];
};

/**
 * struct tcp_ooo - a flow's out-of-order queue, allocated on first use
 * @count:	entries of @seg in use
 * @bytes:	memory its runs take (payload and overhead, tcp_ooo.c)
 * @newest:	index in @seg of the entry stored last (the first SACK block)
 * @seg:	runs sorted by sequence number, never overlapping
 */
struct tcp_ooo {
	unsigned count;
	size_t bytes;
	unsigned newest;
	struct tcp_ooo_seg *seg[DP_TCP_OOO_SEGS];
};

/**
 * struct tcp_sack_block - a range of sequence space held out of order
 * @start:	first sequence number
 * @end:	sequence number after the last byte
 */
struct tcp_sack_block {
	uint32_t start;
	uint32_t end;
};

int tcp_ooo_insert(struct dp *dp, struct tcp_ooo **q, uint32_t rcv_nxt,
		   uint32_t seq, const uint8_t *data, size_t len);
const uint8_t *tcp_ooo_next(const struct tcp_ooo *q, uint32_t seq,
			    size_t *len);
void tcp_ooo_release(struct dp *dp, struct tcp_ooo **q, uint32_t seq);
void tcp_ooo_free(struct dp *dp, struct tcp_ooo **q);
unsigned tcp_ooo_sack(const struct tcp_ooo *q, uint32_t rcv_nxt,
		      struct tcp_sack_block *blocks, unsigned max);

#endif /* TCP_OOO_H */
