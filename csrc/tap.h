/* tap.h - frames in and out of the TAP, virtio-net offloads, see tap.c */
#ifndef TAP_H
#define TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_limits.h"

struct dp;

/**
 * struct tap_offload - what a virtio-net header says about one frame
 * @csum_partial:	the transport checksum field holds only the partial sum
 *			of the pseudo-header (VIRTIO_NET_HDR_F_NEEDS_CSUM)
 * @csum_start:		with @csum_partial, offset of the transport header
 *			from the start of the Ethernet frame
 * @csum_offset:	with @csum_partial, offset of the checksum field from
 *			@csum_start
 * @gso_size:		payload bytes per segment of a TCP segment or UDP
 *			datagram larger than the link allows, 0 for a plain
 *			frame
 * @hdr_len:		with @gso_size, Ethernet, IP and TCP or UDP header
 *			bytes (from the guest: its hdr_len, checked only
 *			against the frame)
 * @gso_type:		with @gso_size, VIRTIO_NET_HDR_GSO_TCPV4, _TCPV6 (ECN
 *			bit included) or _UDP_L4
 */
struct tap_offload {
	bool csum_partial;
	uint8_t gso_type;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t gso_size;
	uint16_t hdr_len;
};

/**
 * struct tap_ctx - the TAP and its rings, owned by tap.c
 * @fd:			TAP file descriptor, non-blocking, owned by us
 * @vnet_len:		bytes of virtio-net header before each frame (0 or
 *			DP_VNET_HDR_LEN): offloads are used exactly when set
 * @uso:		with @vnet_len, UDP segmentation offload both ways
 *			(TUN_F_USO4 and TUN_F_USO6 taken by the kernel)
 * @gone:		set once the TAP reported EOF or EIO, sticky
 * @rx_frame:		Ethernet frame being dispatched, NULL between frames
 * @rx_frame_len:	its length
 * @rx_off:		its offload requests (valid with @rx_frame)
 * @tx_off:		offloads of the frame to be committed next
 * @rx_buf:		receive ring, DP_RX_RING buffers of DP_FRAME_MAX bytes
 * @rx_len:		bytes read into each receive buffer, header included
 * @tx_buf:		transmit queue, DP_TX_RING buffers of DP_FRAME_MAX bytes
 * @tx_len:		bytes queued in each transmit buffer, header included
 * @tx_count:		number of frames queued in @tx_buf
 */
struct tap_ctx {
	int fd;
	size_t vnet_len;
	bool uso;
	bool gone;
	const uint8_t *rx_frame;
	size_t rx_frame_len;
	struct tap_offload rx_off;
	struct tap_offload tx_off;
	uint8_t *rx_buf;
	size_t rx_len[DP_RX_RING];
	uint8_t *tx_buf;
	size_t tx_len[DP_TX_RING];
	unsigned tx_count;
};

/* tap_rx_l4_csum(): verify the checksum, trust the partial sum, or drop */
#define TAP_CSUM_VERIFY		0
#define TAP_CSUM_PARTIAL	1
#define TAP_CSUM_BAD		2

int tap_init(struct dp *dp);
void tap_cleanup(struct dp *dp);
int tap_read_batch(struct dp *dp, int max, int *status);
uint8_t *tap_rx_frame(struct dp *dp, int i, size_t *len);
uint8_t *tap_tx_alloc(struct dp *dp);
void tap_tx_commit(struct dp *dp, size_t len);
void tap_tx_flush(struct dp *dp);
unsigned tap_tx_reserve(struct dp *dp, unsigned n);
uint8_t *tap_tx_ahead(struct dp *dp, unsigned i);
int tap_rx_l4_csum(struct dp *dp, const uint8_t *l4, size_t csum_field,
		   bool tcp);
void tap_tx_csum_partial(struct dp *dp, size_t l4_off, size_t csum_field);
void tap_tx_gso_tcp(struct dp *dp, bool v6, size_t hdr_len, uint16_t mss);
void tap_tx_gso_udp(struct dp *dp, size_t hdr_len, uint16_t gso_size);

#endif /* TAP_H */
