/* tcp_ooo.c - guest TCP data that arrived ahead of a hole
 *
 * How this works
 * --------------
 * A guest segment that starts beyond the next byte we expect (a segment
 * before it was lost, or overtook it) cannot go to the host socket yet.
 * Dropping it would make the guest send it again; worse, the duplicate ACK we
 * answer with tells a NewReno sender the segment arrived, so it stops
 * counting it as in flight and stalls until a retransmission timeout.  So it
 * is kept here: the payload is copied out of the receive ring into a run of
 * its own (tcp_ooo_insert()), runs sorted by sequence number and never
 * overlapping (a new segment is trimmed to the gap it fills).
 *
 * Once the hole is filled, tcp.c asks for the run that continues the data it
 * queued (tcp_ooo_next()) and queues it for the socket like ring data; runs
 * stay allocated until the socket took their bytes (tcp_ooo_release() with
 * the new rcv_nxt), so a short write loses nothing: the runs are offered
 * again.  The held ranges become SACK blocks (tcp_ooo_sack()), the most
 * recent first as RFC 2018 asks, so a SACK sender resends only the holes.
 *
 * Limits
 * ------
 * A flow holds at most DP_TCP_OOO_SEGS runs and DP_TCP_OOO_FLOW_BYTES bytes,
 * all flows together DP_TCP_OOO_BYTES; only data inside the window we
 * advertised is held.  The bytes counted are the memory held, not just the
 * payload: each run costs its payload, its header and the allocator's own
 * (tcp_ooo_cost()), and each flow's queue its size, charged to the global
 * budget, so a guest sending one-byte runs or opening queues on many
 * connections meets the same limits.  Empty runs are never stored.  Anything
 * beyond is dropped (tcp.c counts it) and sent again by the guest.  The queue
 * itself is allocated on the first out-of-order segment and freed when it
 * empties or the flow closes.
 */

#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "dp_limits.h"
#include "tcp_ooo.h"
#include "util.h"

/* What malloc() keeps beside each block (glibc: one size word, 16-byte
 * alignment): counted with every run, so tiny runs cost what they take */
#define TCP_OOO_MALLOC_OVERHEAD	16

/**
 * tcp_ooo_cost() - memory a run of held payload takes
 * @len:	payload bytes
 *
 * Return: bytes charged to the budgets for it
 */
static size_t tcp_ooo_cost(size_t len)
{
	return sizeof(struct tcp_ooo_seg) + len + TCP_OOO_MALLOC_OVERHEAD;
}

/**
 * tcp_ooo_free_run() - free one run and uncharge it
 * @dp:		data plane, for the global budget
 * @o:		its queue
 * @s:		the run
 */
static void tcp_ooo_free_run(struct dp *dp, struct tcp_ooo *o,
			     struct tcp_ooo_seg *s)
{
	size_t cost = tcp_ooo_cost(s->len);

	o->bytes -= cost;
	dp->tcp.ooo_bytes -= cost;
	free(s);
}

/**
 * tcp_ooo_end() - sequence number after a run's last byte
 * @s:		run
 *
 * Return: @s->seq + @s->len
 */
static uint32_t tcp_ooo_end(const struct tcp_ooo_seg *s)
{
	return s->seq + s->len;
}

/**
 * tcp_ooo_insert() - hold a segment that arrived ahead of rcv_nxt
 * @dp:		data plane, for the global byte budget
 * @q:		the flow's queue, allocated here if NULL
 * @rcv_nxt:	next sequence number expected; @seq is beyond it
 * @seq:	sequence number of the payload
 * @data:	payload (in the receive ring: copied)
 * @len:	bytes at @data, at least 1
 *
 * The part of the payload that overlaps runs already held is not stored
 * again; a payload spanning a held run keeps only its part before that run.
 *
 * Return: 0 if held (or already held), -1 if dropped for a limit
 */
int tcp_ooo_insert(struct dp *dp, struct tcp_ooo **q, uint32_t rcv_nxt,
		   uint32_t seq, const uint8_t *data, size_t len)
{
	uint32_t end = seq + (uint32_t)len;
	struct tcp_ooo_seg *s;
	struct tcp_ooo *o = *q;
	unsigned i;

	if (!len || len > DP_TCP_OOO_FLOW_BYTES || SEQ_LE(seq, rcv_nxt))
		return -1;

	if (!o) {
		if (dp->tcp.ooo_bytes + sizeof(*o) + tcp_ooo_cost(len) >
		    DP_TCP_OOO_BYTES)
			return -1;
		o = calloc(1, sizeof(*o));
		if (!o)
			return -1;
		dp->tcp.ooo_bytes += sizeof(*o);
		*q = o;
	}

	/* the first run that ends after @seq: runs before it do not touch us */
	for (i = 0; i < o->count && SEQ_LE(tcp_ooo_end(o->seg[i]), seq); i++)
		;
	if (i < o->count && SEQ_LE(o->seg[i]->seq, seq)) {
		/* our head is held already: keep what follows that run */
		uint32_t skip = tcp_ooo_end(o->seg[i]) - seq;

		if (SEQ_LE(end, tcp_ooo_end(o->seg[i])))
			return 0;
		data += skip;
		seq += skip;
		i++;
	}
	if (i < o->count && SEQ_LT(o->seg[i]->seq, end))
		end = o->seg[i]->seq;	/* stop at the next run */
	len = end - seq;
	if (!len)
		return 0;	/* a gap of nothing between two held runs */

	if (o->count == DP_TCP_OOO_SEGS ||
	    o->bytes + tcp_ooo_cost(len) > DP_TCP_OOO_FLOW_BYTES ||
	    dp->tcp.ooo_bytes + tcp_ooo_cost(len) > DP_TCP_OOO_BYTES) {
		if (!o->count)
			tcp_ooo_free(dp, q);
		return -1;
	}

	s = malloc(sizeof(*s) + len);
	if (!s) {
		if (!o->count)
			tcp_ooo_free(dp, q);
		return -1;
	}
	s->seq = seq;
	s->len = (uint32_t)len;
	memcpy(s->data, data, len);

	memmove(&o->seg[i + 1], &o->seg[i], (o->count - i) * sizeof(o->seg[0]));
	o->seg[i] = s;
	o->count++;
	o->newest = i;
	o->bytes += tcp_ooo_cost(len);
	dp->tcp.ooo_bytes += tcp_ooo_cost(len);
	return 0;
}

/**
 * tcp_ooo_next() - the held data that continues a sequence number
 * @q:		the flow's queue, or NULL
 * @seq:	next sequence number wanted
 * @len:	set to the bytes available at the returned pointer
 *
 * Return: pointer to the byte at @seq, valid until tcp_ooo_release() or
 *	   tcp_ooo_insert(), or NULL if no run holds @seq
 */
const uint8_t *tcp_ooo_next(const struct tcp_ooo *q, uint32_t seq,
			    size_t *len)
{
	unsigned i;

	if (!q)
		return NULL;

	for (i = 0; i < q->count; i++) {
		const struct tcp_ooo_seg *s = q->seg[i];

		if (SEQ_GT(s->seq, seq))
			break;
		if (SEQ_GT(tcp_ooo_end(s), seq)) {
			*len = tcp_ooo_end(s) - seq;
			return s->data + (seq - s->seq);
		}
	}
	return NULL;
}

/**
 * tcp_ooo_release() - free the runs the socket has taken
 * @dp:		data plane
 * @q:		the flow's queue, or NULL; freed when it empties
 * @seq:	new rcv_nxt: runs ending at or before it are done
 */
void tcp_ooo_release(struct dp *dp, struct tcp_ooo **q, uint32_t seq)
{
	struct tcp_ooo *o = *q;
	unsigned done = 0;

	if (!o)
		return;

	while (done < o->count && SEQ_LE(tcp_ooo_end(o->seg[done]), seq)) {
		tcp_ooo_free_run(dp, o, o->seg[done]);
		done++;
	}
	if (!done)
		return;

	o->count -= done;
	memmove(&o->seg[0], &o->seg[done], o->count * sizeof(o->seg[0]));
	o->newest = o->newest >= done ? o->newest - done : 0;
	if (!o->count)
		tcp_ooo_free(dp, q);
}

/**
 * tcp_ooo_free() - free a flow's queue and everything it holds
 * @dp:		data plane
 * @q:		the flow's queue, or NULL; set to NULL
 */
void tcp_ooo_free(struct dp *dp, struct tcp_ooo **q)
{
	struct tcp_ooo *o = *q;
	unsigned i;

	if (!o)
		return;

	for (i = 0; i < o->count; i++)
		tcp_ooo_free_run(dp, o, o->seg[i]);
	dp->tcp.ooo_bytes -= sizeof(*o);
	free(o);
	*q = NULL;
}

/**
 * tcp_ooo_sack() - the held ranges as SACK blocks
 * @q:		the flow's queue, or NULL
 * @rcv_nxt:	next sequence number expected: only ranges beyond it count
 * @blocks:	filled with up to @max blocks, the newest run's range first
 * @max:	room in @blocks
 *
 * Adjacent runs make one block.
 *
 * Return: blocks filled
 */
unsigned tcp_ooo_sack(const struct tcp_ooo *q, uint32_t rcv_nxt,
		      struct tcp_sack_block *blocks, unsigned max)
{
	unsigned i, n = 0, newest_block = 0;

	if (!q || !max)
		return 0;

	for (i = 0; i < q->count; i++) {
		const struct tcp_ooo_seg *s = q->seg[i];

		if (SEQ_LE(tcp_ooo_end(s), rcv_nxt))
			continue;
		if (n && blocks[n - 1].end == s->seq) {
			blocks[n - 1].end = tcp_ooo_end(s);
		} else {
			if (n == max)
				break;
			blocks[n].start = s->seq;
			blocks[n].end = tcp_ooo_end(s);
			n++;
		}
		if (i == q->newest)
			newest_block = n - 1;
	}

	if (newest_block) {
		struct tcp_sack_block first = blocks[newest_block];

		memmove(&blocks[1], &blocks[0], newest_block * sizeof(blocks[0]));
		blocks[0] = first;
	}
	return n;
}
