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
 * virtio-net header and offloads
 * ------------------------------
 * With cfg->vnet_hdr, the TAP was opened to carry virtio-net headers: each
 * frame is preceded by a DP_VNET_HDR_LEN byte struct virtio_net_hdr_v1, in
 * the host's byte order (tap_init() sets that size with TUNSETVNETHDRSZ).
 * The header is read and written here only; the rest of the data plane sees
 * struct tap_offload.
 *
 * tap_init() also asks the kernel (TUNSETOFFLOAD) for TUN_F_CSUM, TUN_F_TSO4,
 * TUN_F_TSO6 and, since Linux 6.2, TUN_F_USO4 and TUN_F_USO6 (dp->tap.uso; a
 * kernel that refuses them gets the request again without USO): the guest's
 * interface then claims checksum, TCP and UDP segmentation offload, and its
 * kernel hands us TCP and UDP with only the pseudo-header sum in the
 * checksum field (VIRTIO_NET_HDR_F_NEEDS_CSUM), TCP in segments of up to 64
 * KiB whatever the MTU (guest to host at MTU 1500: 16 Gbit/s against 4.6
 * without), and a UDP_SEGMENT send as one super-datagram (GSO_UDP_L4) that
 * udp.c sends on with UDP_SEGMENT.  Large segments fill a slow host reader's
 * socket in a few frames, so the window often closes: a window update that
 * tcp.c fails to send once the socket drains leaves the guest waiting for
 * its zero-window probe, 200 ms and more (tcp_wnd_update()).
 *
 * Headers are checked as if the guest could send anything, GSO included:
 * every field comes from the guest and is checked in tap_rx_frame() before
 * anything uses it, each failure a counted drop:
 *
 * - drop_vnet_hdr: a frame shorter than the header, an unknown flag, or a
 *   NEEDS_CSUM whose csum_start and csum_offset put the checksum field
 *   outside the Ethernet payload.
 * - drop_vnet_gso: a gso_type other than none, TCPV4 or TCPV6 (with or
 *   without the ECN bit) or UDP_L4 (without it, and only with USO
 *   negotiated), the ECN bit alone, a GSO frame without NEEDS_CSUM, a
 *   gso_size of 0 or not below the frame length, an hdr_len beyond the
 *   frame, a TCPV4 frame that is not IPv4 carrying TCP (TCPV6: IPv6 with TCP
 *   as its first next header; UDP_L4: either, carrying UDP), an IPv4 GSO
 *   frame that is a fragment; from tap_rx_l4_csum(), a GSO frame whose
 *   csum_start and csum_offset are not the checksum of the TCP or UDP header
 *   the IP layer found; and from udp.c (udp_gso_sound()), a UDP
 *   super-datagram whose UDP length is not its IP payload, whose payload is
 *   not more than one gso_size, holds more than DP_UDP_GSO_SEGS_IN
 *   datagrams, or whose gso_size with the headers exceeds the MTU.
 *
 * The segment sizes a TCP GSO header gives are not used: we are the
 * segment's destination, and TCP (tcp.c) takes the large segment as one.  A
 * UDP super-datagram's are: they are the datagrams the guest's application
 * sent.  The partial checksum is accepted, unverified, only where it
 * belongs: tap_rx_l4_csum() says so for the TCP or UDP checksum field that
 * csum_start and csum_offset point at exactly; every other checksum is
 * verified as without offloads.  VIRTIO_NET_HDR_F_DATA_VALID is ignored:
 * the checksum is verified anyway.
 *
 * Towards the guest, tap_tx_csum_partial(), tap_tx_gso_tcp() and
 * tap_tx_gso_udp() describe the frame being built; tap_tx_commit() writes
 * its header (all zero for a plain frame).  tcp.c sends data as segments of
 * up to a whole IP datagram with a GSO header (gso_size the guest's MSS) and
 * leaves the checksum to the guest's kernel, which needs none for local
 * delivery (measured with iperf3 at MTU 1500, host to guest: 9.5-10.5
 * Gbit/s, against 8.3-8.8 with full checksums computed here); udp.c leaves
 * the checksum of every datagram that fits one frame to it too, and with
 * USO sends a run of host datagrams of one size as one GSO_UDP_L4 frame.
 * Without cfg->vnet_hdr (a TAP opened without it, or a BESS peer) there are
 * no headers and no offloads, tcp.c cuts its segments to the MSS and udp.c
 * sends one checksummed frame per datagram.  A descriptor that is not a TAP
 * (TUNSETVNETHDRSZ fails with ENOTTY: a test's socket pair) may still carry
 * headers, without offloads negotiated; its peer is taken to speak all of
 * them, USO included (cfg.offloads_off can say otherwise).
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
 * A GSO frame, either way, is one buffer: up to 64 KiB of IP packet.
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
#include <linux/virtio_net.h>

#include "checksum.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "inany.h"
#include "pcap.h"
#include "tap.h"
#include "util.h"

/* UDP segmentation offload (Linux 6.2), should the system's headers be
 * older than the kernel */
#ifndef TUN_F_USO4
#define TUN_F_USO4		0x20
#define TUN_F_USO6		0x40
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4	5
#endif

/* What a received header may ask for: flags and GSO types */
#define TAP_VNET_FLAGS		(VIRTIO_NET_HDR_F_NEEDS_CSUM | \
				 VIRTIO_NET_HDR_F_DATA_VALID)
#define TAP_OFFLOADS		(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
#define TAP_OFFLOADS_USO	(TAP_OFFLOADS | TUN_F_USO4 | TUN_F_USO6)

/* Where tap_rx_frame() peeks to tell that a GSO frame carries what its type
 * says, unfragmented */
#define TAP_IP4_FRAG_OFF	6
#define TAP_IP4_FRAG_MASK	0x3fff	/* More Fragments and the offset */
#define TAP_IP4_PROTO_OFF	9
#define TAP_IP6_NEXT_OFF	6
#define TAP_IP6_HLEN		40

_Static_assert(sizeof(struct virtio_net_hdr_v1) == DP_VNET_HDR_LEN,
	       "DP_VNET_HDR_LEN is not the size of struct virtio_net_hdr_v1");

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

	flags = fcntl(dp->tap.fd, F_GETFL);
	if (flags < 0 || fcntl(dp->tap.fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;

	if (dp->cfg.vnet_hdr) {
		bool no_uso = dp->cfg.offloads_off & DP_OFFLOAD_NO_USO;
		int sz = DP_VNET_HDR_LEN;

		if (ioctl(dp->tap.fd, TUNSETVNETHDRSZ, &sz) < 0) {
			if (errno != ENOTTY)
				return -1;
			/* Not a TAP (a test's socket pair): its peer must speak
			 * DP_VNET_HDR_LEN byte headers, no offload is
			 * negotiated, and it is taken to speak every header */
			dp->tap.uso = !no_uso;
		} else if (!no_uso &&
			   !ioctl(dp->tap.fd, TUNSETOFFLOAD,
				  (unsigned long)TAP_OFFLOADS_USO)) {
			dp->tap.uso = true;
		} else {
			/* before Linux 6.2, USO is EINVAL; refused again:
			 * the guest checksums everything itself */
			ioctl(dp->tap.fd, TUNSETOFFLOAD,
			      (unsigned long)TAP_OFFLOADS);
		}
		dp->tap.vnet_len = DP_VNET_HDR_LEN;
	}

	dp->tap.rx_buf = calloc(DP_RX_RING, DP_FRAME_MAX);
	dp->tap.tx_buf = calloc(DP_TX_RING, DP_FRAME_MAX);
	if (!dp->tap.rx_buf || !dp->tap.tx_buf) {
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
	free(dp->tap.rx_buf);
	free(dp->tap.tx_buf);
	dp->tap.rx_buf = NULL;
	dp->tap.tx_buf = NULL;
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
		uint8_t *buf = dp->tap.rx_buf + (size_t)n * DP_FRAME_MAX;
		ssize_t rc;

		do
			rc = read(dp->tap.fd, buf, DP_FRAME_MAX);
		while (rc < 0 && errno == EINTR);

		if (rc > 0) {
			dp->tap.rx_len[n] = (size_t)rc;
			continue;
		}

		if (rc == 0 || errno == EIO || errno == EBADFD ||
		    errno == ENXIO) {
			dp->tap.gone = true;
			*status = DP_POLL_TAP_GONE;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			DP_COUNT(dp, tap_read_errors);
			*status = DP_POLL_ERROR;
		}
		break;
	}

	if (dp->pcap.fd >= 0 && n)
		pcap_batch(dp, dp->tap.rx_buf, dp->tap.rx_len, (unsigned)n);
	return n;
}

/**
 * tap_gso_carries() - tell whether a GSO frame holds what its type says
 * @frame:	Ethernet frame
 * @len:	its length
 * @v4:		the type is for IPv4 (TCPV4), @v6 for IPv6 (TCPV6); both for
 *		UDP_L4, which serves either family
 * @v6:		see @v4
 * @proto:	IPPROTO_TCP or IPPROTO_UDP, what the type segments
 *
 * Return: true for an unfragmented IPv4 packet (More Fragments clear, offset
 *	   0) of protocol @proto, or IPv6 with @proto as its first next header
 */
static bool tap_gso_carries(const uint8_t *frame, size_t len, bool v4,
			    bool v6, uint8_t proto)
{
	const uint8_t *l3 = frame + DP_ETH_HLEN;
	uint16_t type;

	if (len < DP_ETH_HLEN + TAP_IP6_HLEN)
		return false;

	type = rd16(frame + 2 * DP_MAC_LEN);
	if (v4 && type == ETH_TYPE_IP4)
		return l3[TAP_IP4_PROTO_OFF] == proto &&
		       !(rd16(l3 + TAP_IP4_FRAG_OFF) & TAP_IP4_FRAG_MASK);

	return v6 && type == ETH_TYPE_IP6 && l3[TAP_IP6_NEXT_OFF] == proto;
}

/**
 * tap_rx_vnet() - check a received virtio-net header, keep what it asks for
 * @dp:		data plane, dp->tap.rx_off filled on success
 * @h:		the header, from the guest
 * @frame:	Ethernet frame behind it
 * @len:	frame length
 *
 * Return: true if the header is sound, false if the frame was counted as a
 *	   drop (see the theory of operation)
 */
static bool tap_rx_vnet(struct dp *dp, const struct virtio_net_hdr_v1 *h,
			const uint8_t *frame, size_t len)
{
	struct tap_offload *o = &dp->tap.rx_off;
	bool sound;

	memset(o, 0, sizeof(*o));

	if (h->flags & ~TAP_VNET_FLAGS) {
		DP_COUNT(dp, drop_vnet_hdr);
		return false;
	}

	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (h->csum_start < DP_ETH_HLEN ||
		    (size_t)h->csum_start + h->csum_offset + 2 > len) {
			DP_COUNT(dp, drop_vnet_hdr);
			return false;
		}
		o->csum_partial = true;
		o->csum_start = h->csum_start;
		o->csum_offset = h->csum_offset;
	}

	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE)
		return true;

	if (!o->csum_partial || !h->gso_size || h->gso_size >= len ||
	    h->hdr_len > len) {
		DP_COUNT(dp, drop_vnet_gso);
		return false;
	}

	switch (h->gso_type) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
	case VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN:
		sound = tap_gso_carries(frame, len, true, false, IPPROTO_TCP);
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
	case VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN:
		sound = tap_gso_carries(frame, len, false, true, IPPROTO_TCP);
		break;
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		/* never negotiated: a guest kernel would not send it */
		sound = dp->tap.uso &&
			tap_gso_carries(frame, len, true, true, IPPROTO_UDP);
		break;
	default:	/* UDP (UFO), the ECN bit alone or with UDP_L4... */
		sound = false;
	}
	if (!sound) {
		DP_COUNT(dp, drop_vnet_gso);
		return false;
	}

	o->gso_type = h->gso_type;
	o->gso_size = h->gso_size;
	o->hdr_len = h->hdr_len;
	DP_COUNT(dp, vnet_gso_in);
	return true;
}

/**
 * tap_rx_frame() - find and check the Ethernet frame in a receive ring slot
 * @dp:		data plane; on success dp->tap.rx_frame and dp->tap.rx_off describe
 *		the frame until the caller clears dp->tap.rx_frame
 * @i:		slot, below the count tap_read_batch() returned
 * @len:	set to the frame length, virtio-net header excluded
 *
 * Return: start of the Ethernet frame, or NULL if its virtio-net header was
 *	   short or unsound (a counted drop, @len then 0)
 */
uint8_t *tap_rx_frame(struct dp *dp, int i, size_t *len)
{
	uint8_t *buf = dp->tap.rx_buf + (size_t)i * DP_FRAME_MAX;
	uint8_t *frame = buf + dp->tap.vnet_len;

	*len = 0;
	if (dp->tap.rx_len[i] < dp->tap.vnet_len) {
		DP_COUNT(dp, drop_vnet_hdr);
		return NULL;
	}

	if (dp->tap.vnet_len &&
	    !tap_rx_vnet(dp, (const struct virtio_net_hdr_v1 *)buf, frame,
			 dp->tap.rx_len[i] - dp->tap.vnet_len))
		return NULL;
	if (!dp->tap.vnet_len)
		memset(&dp->tap.rx_off, 0, sizeof(dp->tap.rx_off));

	*len = dp->tap.rx_len[i] - dp->tap.vnet_len;
	dp->tap.rx_frame = frame;
	dp->tap.rx_frame_len = *len;
	return frame;
}

/**
 * tap_rx_l4_csum() - how to treat the checksum of a transport header
 * @dp:		data plane
 * @l4:		TCP or UDP header from the guest
 * @csum_field:	offset of its checksum field
 * @tcp:	true for TCP, false for UDP
 *
 * A GSO frame's header is the one its type segments (TCP for TCPV4 and
 * TCPV6, UDP for UDP_L4); dp->tap.rx_off.gso_size tells the caller it holds a
 * super-segment or super-datagram.
 *
 * Return: TAP_CSUM_PARTIAL if the frame being dispatched says, with
 *	   VIRTIO_NET_HDR_F_NEEDS_CSUM, that exactly this field holds only the
 *	   pseudo-header sum; TAP_CSUM_BAD if it is a GSO frame but this is not
 *	   the header of the protocol its type names, with its checksum offload
 *	   (counted drop_vnet_gso); TAP_CSUM_VERIFY otherwise (also for
 *	   reassembled datagrams)
 */
int tap_rx_l4_csum(struct dp *dp, const uint8_t *l4, size_t csum_field,
		   bool tcp)
{
	const struct tap_offload *o = &dp->tap.rx_off;
	bool exact;

	if (!dp->tap.rx_frame || l4 < dp->tap.rx_frame ||
	    l4 >= dp->tap.rx_frame + dp->tap.rx_frame_len)
		return TAP_CSUM_VERIFY;

	exact = o->csum_partial && l4 - dp->tap.rx_frame == o->csum_start &&
		o->csum_offset == csum_field;

	if (o->gso_size &&
	    (!exact || tcp == (o->gso_type == VIRTIO_NET_HDR_GSO_UDP_L4))) {
		DP_COUNT(dp, drop_vnet_gso);
		return TAP_CSUM_BAD;
	}

	if (!exact)
		return TAP_CSUM_VERIFY;

	DP_COUNT(dp, vnet_csum_partial_in);
	return TAP_CSUM_PARTIAL;
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
	if (dp->tap.tx_count == DP_TX_RING)
		tap_tx_flush(dp);

	return dp->tap.tx_buf + (size_t)dp->tap.tx_count * DP_FRAME_MAX + dp->tap.vnet_len;
}

/**
 * tap_tx_commit() - queue the frame built in the buffer from tap_tx_alloc()
 * @dp:		data plane
 * @len:	Ethernet frame length, virtio-net header excluded
 */
void tap_tx_commit(struct dp *dp, size_t len)
{
	uint8_t *buf = dp->tap.tx_buf + (size_t)dp->tap.tx_count * DP_FRAME_MAX;

	if (dp->tap.vnet_len) {
		const struct tap_offload *o = &dp->tap.tx_off;
		struct virtio_net_hdr_v1 h = { 0 };

		if (o->csum_partial) {
			h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
			h.csum_start = o->csum_start;
			h.csum_offset = o->csum_offset;
		}
		if (o->gso_size) {
			h.gso_type = o->gso_type;
			h.gso_size = o->gso_size;
			h.hdr_len = o->hdr_len;
			DP_COUNT(dp, vnet_gso_out);
		}
		memcpy(buf, &h, sizeof(h));
	}
	memset(&dp->tap.tx_off, 0, sizeof(dp->tap.tx_off));

	dp->tap.tx_len[dp->tap.tx_count++] = dp->tap.vnet_len + len;
}

/**
 * tap_tx_csum_partial() - leave a transport checksum to the guest's kernel
 * @dp:		data plane with virtio-net headers (dp->tap.vnet_len)
 * @l4_off:	offset of the transport header from the start of the frame
 *		being built
 * @csum_field:	offset of its checksum field, which holds the pseudo-header
 *		sum (not complemented)
 *
 * Applies to the frame tap_tx_commit() queues next.
 */
void tap_tx_csum_partial(struct dp *dp, size_t l4_off, size_t csum_field)
{
	dp->tap.tx_off.csum_partial = true;
	dp->tap.tx_off.csum_start = (uint16_t)l4_off;
	dp->tap.tx_off.csum_offset = (uint16_t)csum_field;
}

/**
 * tap_tx_gso_tcp() - mark the frame being built as a TCP segment to cut
 * @dp:		data plane with virtio-net headers, tap_tx_csum_partial()
 *		called for this frame
 * @v6:		true for a TCP segment over IPv6
 * @hdr_len:	Ethernet, IP and TCP header bytes
 * @mss:	payload bytes per segment
 */
void tap_tx_gso_tcp(struct dp *dp, bool v6, size_t hdr_len, uint16_t mss)
{
	dp->tap.tx_off.gso_size = mss;
	dp->tap.tx_off.hdr_len = (uint16_t)hdr_len;
	dp->tap.tx_off.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
				   VIRTIO_NET_HDR_GSO_TCPV4;
}

/**
 * tap_tx_gso_udp() - mark the frame being built as a UDP datagram to cut
 * @dp:		data plane with UDP segmentation offload (dp->tap.uso),
 *		tap_tx_csum_partial() called for this frame
 * @hdr_len:	Ethernet, IP and UDP header bytes
 * @gso_size:	payload bytes per datagram, all but the last (which may be
 *		shorter); each fits the guest's MTU with its headers
 *
 * The frame's UDP length field covers the whole payload, as Linux's own
 * stack writes it for UDP_SEGMENT: the guest's kernel rewrites it per
 * datagram when it cuts the frame (before local delivery, for a socket
 * without UDP_GRO).
 */
void tap_tx_gso_udp(struct dp *dp, size_t hdr_len, uint16_t gso_size)
{
	dp->tap.tx_off.gso_size = gso_size;
	dp->tap.tx_off.hdr_len = (uint16_t)hdr_len;
	dp->tap.tx_off.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4;
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
	if (dp->tap.tx_count + n > DP_TX_RING)
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
	return dp->tap.tx_buf + (size_t)(dp->tap.tx_count + i) * DP_FRAME_MAX +
	       dp->tap.vnet_len;
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

	if (dp->pcap.fd >= 0 && dp->tap.tx_count)
		pcap_batch(dp, dp->tap.tx_buf, dp->tap.tx_len, dp->tap.tx_count);

	for (i = 0; i < dp->tap.tx_count; i++) {
		const uint8_t *buf = dp->tap.tx_buf + (size_t)i * DP_FRAME_MAX;
		ssize_t rc;

		do
			rc = write(dp->tap.fd, buf, dp->tap.tx_len[i]);
		while (rc < 0 && errno == EINTR);

		if (rc < 0 || (size_t)rc != dp->tap.tx_len[i]) {
			DP_COUNT(dp, drop_tap_write);
			continue;
		}

		DP_COUNT(dp, frames_out);
		DP_COUNT_N(dp, bytes_out, dp->tap.tx_len[i] - dp->tap.vnet_len);
	}

	dp->tap.tx_count = 0;
	errno = saved_errno;
}
