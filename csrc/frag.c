/* frag.c - reassembly of IPv4 and IPv6 fragments from the guest
 *
 * Theory of operation
 * -------------------
 * A guest sending a UDP datagram larger than its MTU (a 60 KiB datagram at
 * MTU 1500, a large ping) hands it to us as IPv4 fragments.  Host sockets take
 * whole datagrams, so the fragments are put back together here, then the
 * datagram goes through ip4_l4_input() like any unfragmented packet: UDP,
 * ICMP and TCP alike.  IPv6 fragments (ip6.c, with -6) share the slots: a
 * complete IPv6 datagram goes back to ip6_payload_input() for the headers
 * after its fragment header.
 *
 * A datagram being reassembled occupies a slot, found by (source,
 * destination, identification, protocol) as RFC 791 says (the 32-bit
 * identification of IPv6, and the next header after the fragment header).
 * Addresses are 128-bit (inany.h), so one key serves both families.  Each slot has a
 * buffer as large as the largest IP payload, so every fragment is copied to
 * its final place at once, and a bitmap with one bit per 8-byte block (the
 * unit of fragment offsets) records what has arrived.  The bitmap gives
 * overlap handling for free:
 *
 * - a fragment whose blocks are all new is copied in;
 * - a fragment whose blocks were all received already, with the same bytes,
 *   is a duplicate (a retransmission, a looped frame): it alone is dropped,
 *   counted under drop_frag_duplicate;
 * - anything else overlapping (partly new, or different bytes), or a last
 *   fragment that disagrees with the length known so far, makes the datagram
 *   ambiguous: it is dropped whole, counted under drop_frag_overlap.  RFC 5722
 *   mandates this for IPv6, and it defeats the overlap tricks that fool
 *   firewalls.
 *
 * The datagram is complete when its last fragment (More Fragments clear) has
 * fixed its length and the bytes received, which never overlap, add up to it.
 * UDP and ICMP handlers are done with it when they return, so its slot is
 * free at once; tcp.c may keep pointers to guest data until the end of the
 * receive batch (tcp_batch_end()), so a TCP datagram's slot is held until
 * frag_batch_end(), which dp.c calls right after.
 *
 * Limits
 * ------
 * DP_FRAG_SLOTS slots of DP_FRAG_SLOT_BYTES, allocated once in frag_init():
 * about 1 MiB.  Fragments never allocate memory, whatever the guest sends.
 * A slot is freed when its datagram completes, is found inconsistent, is
 * still incomplete DP_FRAG_TIMEOUT_MS after its first fragment
 * (drop_frag_timeout; dp_poll() calls frag_timer() when the earliest slot
 * expires, since reassembly has no flow and no flow timer), or when a new
 * datagram needs a slot and none is free: the oldest incomplete datagram is
 * then evicted (drop_frag_evicted).  Stray fragments that never complete, a
 * thousand or a million, thus cost a bounded amount of memory and only delay
 * each other; a datagram whose fragments arrive together still gets through.
 * Fragments with an impossible length (not a multiple of 8 bytes before the
 * last, empty, or ending beyond 65535 bytes with the IPv4 header, or 65535
 * bytes of IPv6 payload) are dropped on their own under drop_ip4_fragment or
 * drop_ip6_fragment.
 */

#include <errno.h>
#include <stdlib.h>

#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "frag.h"
#include "inany.h"
#include "ip.h"
#include "ip4.h"
#include "ip6.h"
#include "util.h"

/* IPv4 header without options: the reassembled payload must fit after it;
 * a reassembled IPv6 payload may be 65535 bytes (RFC 8200, 4.5) */
#define FRAG_IP4_HLEN		20
/* Offsets and lengths of fragments are counted in blocks of 8 bytes */
#define FRAG_BLOCK		8
#define FRAG_MAP_BYTES		(DP_FRAG_SLOT_BYTES / FRAG_BLOCK / 8)

_Static_assert(DP_FRAG_SLOT_BYTES >= DP_IP_MAX_LEN,
	       "a reassembly slot must hold the largest IP payload");

/**
 * struct frag_slot - one datagram being reassembled
 * @used:	slot in use for reassembly (found by lookup)
 * @held:	complete TCP datagram: kept intact until frag_batch_end()
 * @proto:	protocol, part of the key
 * @tos:	type of service of the first fragment received
 * @id:		identification, part of the key
 * @saddr:	source address, part of the key
 * @daddr:	destination address, part of the key
 * @eth_src:	source MAC address of the first fragment received
 * @deadline_ms: when the datagram is given up (and age, for eviction)
 * @total:	payload length, known from the last fragment, 0 until then
 * @received:	payload bytes received, never counting a byte twice
 * @max_end:	end of the furthest fragment received
 * @map:	one bit per FRAG_BLOCK bytes of @buf received
 * @buf:	payload, DP_FRAG_SLOT_BYTES
 */
struct frag_slot {
	bool used;
	bool held;
	uint8_t proto;
	uint8_t tos;
	uint32_t id;
	union inany_addr saddr;
	union inany_addr daddr;
	uint8_t eth_src[DP_MAC_LEN];
	uint64_t deadline_ms;
	size_t total;
	size_t received;
	size_t max_end;
	uint8_t map[FRAG_MAP_BYTES];
	uint8_t *buf;
};

/**
 * frag_init() - allocate the reassembly slots, all free
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno set
 */
int frag_init(struct dp *dp)
{
	uint8_t *bufs;
	int i;

	dp->frag.slots = calloc(DP_FRAG_SLOTS, sizeof(*dp->frag.slots));
	bufs = malloc((size_t)DP_FRAG_SLOTS * DP_FRAG_SLOT_BYTES);
	if (!dp->frag.slots || !bufs) {
		free(bufs);
		errno = ENOMEM;
		return -1;
	}

	for (i = 0; i < DP_FRAG_SLOTS; i++)
		dp->frag.slots[i].buf = bufs + (size_t)i * DP_FRAG_SLOT_BYTES;

	return 0;
}

/**
 * frag_cleanup() - free the reassembly slots
 * @dp:		data plane, possibly only partly set up
 */
void frag_cleanup(struct dp *dp)
{
	if (dp->frag.slots)
		free(dp->frag.slots[0].buf);
	free(dp->frag.slots);
	dp->frag.slots = NULL;
}

/**
 * frag_find() - the slot of a datagram, or a slot for a new one
 * @dp:		data plane
 * @ip:		fragment
 * @id:		its identification
 *
 * Takes a free slot, or evicts the oldest datagram, for a new datagram.
 *
 * Return: the slot, or NULL if every slot is held (counted as
 *	   drop_frag_evicted: the fragment could not be kept)
 */
static struct frag_slot *frag_find(struct dp *dp, const struct l4_pkt *ip,
				   uint32_t id)
{
	struct frag_slot *s, *free_slot = NULL, *oldest = NULL;
	int i;

	for (i = 0; i < DP_FRAG_SLOTS; i++) {
		s = &dp->frag.slots[i];
		if (s->held)
			continue;
		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (s->id == id && inany_equal(&s->saddr, &ip->src) &&
		    inany_equal(&s->daddr, &ip->dst) && s->proto == ip->proto)
			return s;
		if (!oldest || s->deadline_ms < oldest->deadline_ms)
			oldest = s;
	}

	s = free_slot;
	if (!s) {
		s = oldest;
		DP_COUNT(dp, drop_frag_evicted);
		if (!s)
			return NULL;
	}

	s->used = true;
	s->proto = ip->proto;
	s->tos = ip->tos;
	s->id = id;
	s->saddr = ip->src;
	s->daddr = ip->dst;
	memcpy(s->eth_src, ip->eth_src, DP_MAC_LEN);
	s->deadline_ms = dp->now_ms + DP_FRAG_TIMEOUT_MS;
	s->total = s->received = s->max_end = 0;
	memset(s->map, 0, sizeof(s->map));

	if (!dp->frag.deadline_ms || s->deadline_ms < dp->frag.deadline_ms)
		dp->frag.deadline_ms = s->deadline_ms;

	return s;
}

/**
 * frag_blocks_set() - count the blocks of a range already received
 * @s:		slot
 * @first:	first block
 * @end:	block after the last
 *
 * Return: number of blocks in [@first, @end) with their bit set
 */
static size_t frag_blocks_set(const struct frag_slot *s, size_t first,
			      size_t end)
{
	size_t b, n = 0;

	for (b = first; b < end; b++)
		n += s->map[b / 8] >> (b % 8) & 1;

	return n;
}

/**
 * frag_done() - dispatch a complete datagram by family
 * @dp:		data plane
 * @s:		its slot, already marked free (or held for TCP)
 */
static void frag_done(struct dp *dp, const struct frag_slot *s)
{
	struct l4_pkt p = {
		.eth_src = s->eth_src, .src = s->saddr, .dst = s->daddr,
		.tos = s->tos, .proto = s->proto, .l4 = s->buf,
		.l4_len = s->total,
	};
	struct ip4_pkt whole = {
		.eth_src = s->eth_src, .tos = s->tos, .proto = s->proto,
		.l4 = s->buf, .l4_len = s->total,
	};

	if (!inany_is_v4(&s->saddr)) {
		DP_COUNT(dp, ip6_reassembled);
		ip6_payload_input(dp, &p, 0, false);
		return;
	}

	whole.saddr = inany_v4(&s->saddr);
	whole.daddr = inany_v4(&s->daddr);
	DP_COUNT(dp, ip4_reassembled);
	ip4_l4_input(dp, &whole);
}

/**
 * frag_input() - take one fragment, dispatch the datagram once whole
 * @dp:		data plane
 * @ip:		validated fragment, martian sources already dropped; @proto is
 *		the protocol (IPv6: next header of the fragment header), @l4
 *		and @l4_len the fragment's payload
 * @id:		identification field
 * @offset:	fragment offset in bytes
 * @more:	More Fragments flag
 */
void frag_input(struct dp *dp, const struct l4_pkt *ip, uint32_t id,
		size_t offset, bool more)
{
	size_t len = ip->l4_len, end = offset + len, first, last, set, b;
	bool v4 = inany_is_v4(&ip->src);
	struct frag_slot *s;

	if ((more && (!len || len % FRAG_BLOCK)) ||
	    end > DP_IP_MAX_LEN - (v4 ? FRAG_IP4_HLEN : 0)) {
		if (v4)
			DP_COUNT(dp, drop_ip4_fragment);
		else
			DP_COUNT(dp, drop_ip6_fragment);
		return;
	}

	s = frag_find(dp, ip, id);
	if (!s)
		return;

	/* the last fragment fixes the length: everything must agree with it */
	if ((!more && ((s->total && s->total != end) || s->max_end > end)) ||
	    (more && s->total && end > s->total)) {
		DP_COUNT(dp, drop_frag_overlap);
		s->used = false;
		return;
	}

	first = offset / FRAG_BLOCK;
	last = (end + FRAG_BLOCK - 1) / FRAG_BLOCK;
	set = frag_blocks_set(s, first, last);
	if (set) {
		if (set == last - first && !memcmp(s->buf + offset, ip->l4, len)) {
			DP_COUNT(dp, drop_frag_duplicate);
		} else {
			DP_COUNT(dp, drop_frag_overlap);
			s->used = false;
		}
		return;
	}

	memcpy(s->buf + offset, ip->l4, len);
	for (b = first; b < last; b++)
		s->map[b / 8] |= (uint8_t)(1 << (b % 8));
	s->received += len;
	if (end > s->max_end)
		s->max_end = end;
	if (!more)
		s->total = end;
	if (v4)
		DP_COUNT(dp, ip4_fragments);
	else
		DP_COUNT(dp, ip6_fragments);

	if (!s->total || s->received != s->total)
		return;

	/* handlers never come back here: the buffer stays put until we return */
	s->used = false;
	s->held = s->proto == IPPROTO_TCP;
	frag_done(dp, s);
}

/**
 * frag_batch_end() - release the slots of TCP datagrams, the receive batch
 * that completed them is over
 * @dp:		data plane
 */
void frag_batch_end(struct dp *dp)
{
	int i;

	for (i = 0; i < DP_FRAG_SLOTS; i++)
		dp->frag.slots[i].held = false;
}

/**
 * frag_timer() - drop datagrams still incomplete after DP_FRAG_TIMEOUT_MS
 * @dp:		data plane, @now_ms current
 *
 * Also recomputes the earliest reassembly deadline.
 */
void frag_timer(struct dp *dp)
{
	uint64_t next = 0;
	int i;

	for (i = 0; i < DP_FRAG_SLOTS; i++) {
		struct frag_slot *s = &dp->frag.slots[i];

		if (!s->used)
			continue;

		if (s->deadline_ms <= dp->now_ms) {
			s->used = false;
			DP_COUNT(dp, drop_frag_timeout);
			continue;
		}

		if (!next || s->deadline_ms < next)
			next = s->deadline_ms;
	}

	dp->frag.deadline_ms = next;
}
