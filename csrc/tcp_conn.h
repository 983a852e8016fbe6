/* tcp_conn.h - a TCP connection's state and TCP's state beside the flows,
 * types only (flow.h and dp.h embed them), see tcp.c
 */
#ifndef TCP_CONN_H
#define TCP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "dp_limits.h"

struct tcp_ooo;

/**
 * struct tcp_flow - per-connection TCP state (the connection's state, TCP_ST_*,
 * is struct flow's @state), see tcp.c
 * @ws_to_guest:	shift applied to the windows we advertise to the guest
 * @ws_from_guest:	shift the guest applies to its window field
 * @dup_acks:		duplicate ACKs from the guest in a row
 * @retries:		retransmission timeouts in a row without progress
 * @flags:		TCP_F_* event and close bits
 * @mss:		largest payload of a segment to the guest
 * @seq_to_guest:	next sequence number we send (snd_nxt)
 * @seq_max:		highest sequence number sent so far (snd_max)
 * @seq_acked:		first sequence number the guest has not acked (snd_una)
 * @seq_consumed:	sequence number of the first byte still in the
 *			socket's receive queue; trails @seq_acked until the
 *			acked bytes are discarded
 * @seq_recover:	@seq_max at the last rewind: duplicate ACKs are ignored
 *			until @seq_acked passes it
 * @seq_fin_to_guest:	sequence number of our FIN, once TCP_F_FIN_SENT
 * @seq_from_guest:	next sequence number expected from the guest
 *			(rcv_nxt), acked once the socket took the bytes
 * @seq_queued:		@seq_from_guest plus guest data queued for the
 *			socket in the current receive batch
 * @seq_fin_from_guest:	sequence number of the guest's FIN, once
 *			TCP_F_GUEST_FIN_QUEUED
 * @seq_ack_sent:	last acknowledgement number we sent
 * @seq_wnd_edge:	right edge of the windows we advertised: the highest
 *			acknowledgement number plus window we sent; guest data
 *			beyond it is not taken (tcp_data_input())
 * @wnd_from_guest:	guest's receive window in bytes (scaled)
 * @wnd_to_guest:	window we advertise, in bytes, before scaling
 * @frame_bytes:	payload bytes per data frame from the guest, a moving
 *			average (1/DP_TCP_FRAME_AVG of each new frame): with
 *			TSO one frame carries many segments
 * @rto_ms:		current retransmission timeout, doubles on expiry
 * @rto_at:		when the retransmission (or window probe) timer
 *			expires, 0 if not armed
 * @last_act_ms:	time of the last segment or socket event, for the idle
 *			timeouts
 * @ooo:		guest data held out of order (tcp_ooo.c), or NULL
 */
struct tcp_flow {
	uint8_t ws_to_guest;
	uint8_t ws_from_guest;
	uint8_t dup_acks;
	uint8_t retries;
	uint16_t flags;
	uint16_t mss;
	uint32_t seq_to_guest;
	uint32_t seq_max;
	uint32_t seq_acked;
	uint32_t seq_consumed;
	uint32_t seq_recover;
	uint32_t seq_fin_to_guest;
	uint32_t seq_from_guest;
	uint32_t seq_queued;
	uint32_t seq_fin_from_guest;
	uint32_t seq_ack_sent;
	uint32_t seq_wnd_edge;
	uint32_t wnd_from_guest;
	uint32_t wnd_to_guest;
	uint32_t frame_bytes;
	uint32_t rto_ms;
	uint64_t rto_at;
	uint64_t last_act_ms;
	struct tcp_ooo *ooo;
};

/**
 * struct tcp_batch_ent - work deferred to the end of a receive batch
 * @idx:	flow table index of the flow
 * @gen:	generation of the flow, to recognise a flow freed meanwhile
 * @data:	guest payload to write to the socket, in the receive ring
 *		(NULL for no data: the flow only needs its deferred work)
 * @len:	bytes at @data
 */
struct tcp_batch_ent {
	uint32_t idx;
	uint32_t gen;
	const uint8_t *data;
	size_t len;
};

/**
 * struct tcp_ctx - TCP state of a data plane, beside its flows
 * @conns:	TCP flows open: they share the guest's transmit queue
 * @ooo_bytes:	memory held out of order by all flows: runs and queues
 *		(tcp_ooo.c)
 * @count:	entries of @ent used in the current receive batch
 * @ent:	work deferred to the end of the batch, one entry per segment
 *		at most (see tcp.c)
 */
struct tcp_ctx {
	unsigned conns;
	size_t ooo_bytes;
	unsigned count;
	struct tcp_batch_ent ent[DP_TCP_BATCH];
};

#endif /* TCP_CONN_H */
