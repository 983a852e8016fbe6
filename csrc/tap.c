/* tap.c - frames in and out of the TAP file descriptor
 *
 * Theory of operation
 * -------------------
 * A TAP file descriptor carries one Ethernet frame per read() and per write().
 * There is no batching system call for it, so batching happens here, above
 * the system calls:
 *
 * - receive: tap_read_batch() reads up to DP_RX_RING frames into the receive
 *   ring, one read() each, until the descriptor has nothing left (EAGAIN: the
 *   descriptor is non-blocking) or the batch is full.  dp_poll() then hands
 *   each frame of the batch to eth_input().  Frames are processed in place:
 *   protocol handlers read them and must not keep pointers into the ring past
 *   their return.
 *
 * - transmit: handlers build replies directly in a buffer of the transmit
 *   queue (tap_tx_alloc(), then tap_tx_commit() with the frame length).  The
 *   queue is written out by tap_tx_flush() at the end of each receive batch,
 *   one write() per frame, or earlier if it fills up, so it never refuses a
 *   frame.  tap_tx_reserve() and tap_tx_ahead() let a caller fill the
 *   payloads of several frames with one system call (tcp.c peeks socket data
 *   straight into them) before it writes their headers.  A failed or short
 *   write is a counted drop: guest protocols recover from loss, and the data
 *   plane never stops on an I/O error.
 *
 * virtio-net header
 * -----------------
 * With cfg->vnet_hdr, the TAP was opened to carry virtio-net headers: each
 * frame is preceded by a DP_VNET_HDR_LEN byte struct virtio_net_hdr_v1
 * (tap_init() sets that size with TUNSETVNETHDRSZ).  Received headers are skipped for now: the
 * TAP has no offloads enabled, so they carry no GSO or checksum requests.  The
 * headers of transmitted frames are zero (no offload) and are never touched
 * after allocation.  Later, offloads will read and write them here only.
 *
 * Capture
 * -------
 * With --pcap, each batch is handed to pcap.c once per direction: after
 * tap_read_batch() read it, and in tap_tx_flush() before it is written.
 *
 * Limits
 * ------
 * Each buffer holds DP_FRAME_MAX bytes: a header, an Ethernet header, a VLAN
 * tag and the largest IP datagram.  Memory is allocated once, in tap_init():
 * DP_RX_RING + DP_TX_RING buffers, about 8 MiB with the default limits.
 *
 * A TAP reports that its interface was deleted (namespace gone) with read()
 * returning 0 or failing with EIO, EBADFD or ENXIO: the batch then ends with
 * DP_POLL_TAP_GONE, and the state is sticky.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "dp.h"

/**
 * tap_init() - prepare the TAP descriptor and allocate the frame buffers
 * @dp:		data plane, with @cfg and @tap_fd set
 *
 * Return: 0 on success, -1 with errno set on failure (nothing to undo beyond
 *	   tap_cleanup(), which is safe on a partial setup)
 */
int tap_init(struct dp *dp)
{
	int flags;

	flags = fcntl(dp->tap_fd, F_GETFL);
	if (flags < 0 || fcntl(dp->tap_fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;

	if (dp->cfg.vnet_hdr) {
		int sz = DP_VNET_HDR_LEN;

		if (ioctl(dp->tap_fd, TUNSETVNETHDRSZ, &sz) < 0)
			return -1;
		dp->vnet_len = DP_VNET_HDR_LEN;
	}

	/* calloc() also leaves transmitted virtio-net headers zeroed */
	dp->rx_buf = calloc(DP_RX_RING, DP_FRAME_MAX);
	dp->tx_buf = calloc(DP_TX_RING, DP_FRAME_MAX);
	if (!dp->rx_buf || !dp->tx_buf) {
		errno = ENOMEM;
		return -1;
	}

	return 0;
}

/**
 * tap_cleanup() - release the frame buffers
 * @dp:		data plane, possibly only partly set up
 */
void tap_cleanup(struct dp *dp)
{
	free(dp->rx_buf);
	free(dp->tx_buf);
	dp->rx_buf = NULL;
	dp->tx_buf = NULL;
}

/**
 * tap_read_batch() - read frames from the TAP into the receive ring
 * @dp:		data plane
 * @max:	read at most this many frames, 1 to DP_RX_RING
 * @status:	set to 0 if reading stopped because the TAP had no more frames
 *		or @max was reached, DP_POLL_TAP_GONE if the TAP went away, or
 *		DP_POLL_ERROR (errno set) on an unexpected error
 *
 * Return: number of frames now in the ring, valid whatever @status says
 */
int tap_read_batch(struct dp *dp, int max, int *status)
{
	int n;

	*status = 0;
	if (max > DP_RX_RING)
		max = DP_RX_RING;

	for (n = 0; n < max; n++) {
		uint8_t *buf = dp->rx_buf + (size_t)n * DP_FRAME_MAX;
		ssize_t rc;

		do
			rc = read(dp->tap_fd, buf, DP_FRAME_MAX);
		while (rc < 0 && errno == EINTR);

		if (rc > 0) {
			dp->rx_len[n] = (size_t)rc;
			continue;
		}

		if (rc == 0 || errno == EIO || errno == EBADFD ||
		    errno == ENXIO) {
			dp->tap_gone = true;
			*status = DP_POLL_TAP_GONE;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			DP_COUNT(dp, tap_read_errors);
			*status = DP_POLL_ERROR;
		}
		break;
	}

	if (dp->pcap_fd >= 0 && n)
		pcap_batch(dp, dp->rx_buf, dp->rx_len, (unsigned)n);
	return n;
}

/**
 * tap_rx_frame() - find the Ethernet frame in a receive ring slot
 * @dp:		data plane
 * @i:		slot, below the count tap_read_batch() returned
 * @len:	set to the frame length, virtio-net header excluded
 *
 * Return: start of the Ethernet frame, or NULL if the slot holds less than a
 *	   virtio-net header (and @len is then 0)
 */
uint8_t *tap_rx_frame(struct dp *dp, int i, size_t *len)
{
	uint8_t *buf = dp->rx_buf + (size_t)i * DP_FRAME_MAX;

	if (dp->rx_len[i] < dp->vnet_len) {
		*len = 0;
		return NULL;
	}

	*len = dp->rx_len[i] - dp->vnet_len;
	return buf + dp->vnet_len;
}

/**
 * tap_tx_alloc() - get the next free transmit buffer, flushing if full
 * @dp:		data plane
 *
 * The caller builds a frame of at most DP_FRAME_MAX - DP_VNET_HDR_LEN bytes
 * at the returned address, then calls tap_tx_commit().  The buffer content
 * is left over from an earlier frame: write every byte you commit.  Until
 * tap_tx_commit(), calling this again returns the same buffer.
 *
 * Return: start of the Ethernet frame in the buffer, never NULL
 */
uint8_t *tap_tx_alloc(struct dp *dp)
{
	if (dp->tx_count == DP_TX_RING)
		tap_tx_flush(dp);

	return dp->tx_buf + (size_t)dp->tx_count * DP_FRAME_MAX + dp->vnet_len;
}

/**
 * tap_tx_commit() - queue the frame built in the buffer from tap_tx_alloc()
 * @dp:		data plane
 * @len:	Ethernet frame length, virtio-net header excluded
 */
void tap_tx_commit(struct dp *dp, size_t len)
{
	dp->tx_len[dp->tx_count++] = dp->vnet_len + len;
}

/**
 * tap_tx_reserve() - make sure the next frames can be built without a flush
 * @dp:		data plane
 * @n:		number of frames the caller wants to build before committing
 *
 * Flushes the queue if fewer than @n buffers are free.  Afterwards the next
 * @n calls to tap_tx_alloc() (each followed by tap_tx_commit()) return the
 * buffers tap_tx_ahead() shows now, so a caller can fill several frames'
 * payloads with one system call before writing their headers.
 *
 * Return: number of frames reserved, @n capped to DP_TX_RING
 */
unsigned tap_tx_reserve(struct dp *dp, unsigned n)
{
	if (n > DP_TX_RING)
		n = DP_TX_RING;
	if (dp->tx_count + n > DP_TX_RING)
		tap_tx_flush(dp);

	return n;
}

/**
 * tap_tx_ahead() - a free transmit buffer, before it is allocated
 * @dp:		data plane
 * @i:		0 for the buffer tap_tx_alloc() returns next, 1 for the one
 *		after... below the count tap_tx_reserve() returned
 *
 * Return: start of the Ethernet frame in that buffer
 */
uint8_t *tap_tx_ahead(struct dp *dp, unsigned i)
{
	return dp->tx_buf + (size_t)(dp->tx_count + i) * DP_FRAME_MAX +
	       dp->vnet_len;
}

/**
 * tap_tx_flush() - write every queued frame to the TAP, one write() each
 * @dp:		data plane
 *
 * The queue is empty afterwards: frames that could not be written are counted
 * under drop_tap_write.  errno is preserved for the caller.
 */
void tap_tx_flush(struct dp *dp)
{
	int saved_errno = errno;
	unsigned i;

	if (dp->pcap_fd >= 0 && dp->tx_count)
		pcap_batch(dp, dp->tx_buf, dp->tx_len, dp->tx_count);

	for (i = 0; i < dp->tx_count; i++) {
		const uint8_t *buf = dp->tx_buf + (size_t)i * DP_FRAME_MAX;
		ssize_t rc;

		do
			rc = write(dp->tap_fd, buf, dp->tx_len[i]);
		while (rc < 0 && errno == EINTR);

		if (rc < 0 || (size_t)rc != dp->tx_len[i]) {
			DP_COUNT(dp, drop_tap_write);
			continue;
		}

		DP_COUNT(dp, frames_out);
		DP_COUNT_N(dp, bytes_out, dp->tx_len[i] - dp->vnet_len);
	}

	dp->tx_count = 0;
	errno = saved_errno;
}
