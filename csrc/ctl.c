/* ctl.c - frames for the control plane: DHCP goes to Python and back
 *
 * Theory of operation
 * -------------------
 * A few protocols are rare and rich enough to live in Python: DHCP for guests
 * that are not --configure'd (slirpd/dhcp.py), and DHCPv6 in pasta's model
 * (slirpd/dhcpv6.py).  ip4.c hands every unfragmented UDP packet to port 67 to
 * ctl_queue() before any other check (a DHCP client has no address yet: its
 * source is 0.0.0.0, which is otherwise martian); with cfg.dhcpv6, ip6.c hands
 * it every UDP packet to port 547 at a multicast address, right after the
 * IPv6 header (a DHCPv6 client's source is its link-local address).  The
 * packet is copied, behind a rebuilt Ethernet header carrying the client's
 * MAC and the packet's EtherType, into a small ring, and DP_NOTICE_CTL_FRAMES
 * tells Python, after the poll, to fetch the batch with dp_ctl_recv().
 * Python's replies are complete Ethernet frames that dp_ctl_send() writes to
 * the TAP.
 *
 * Limits
 * ------
 * DP_CTL_FRAMES queued frames of at most DP_CTL_FRAME_MAX bytes each,
 * allocated in ctl_init(); a larger frame or a full ring is a counted drop
 * (drop_ctl_too_big, drop_ctl_full).
 */

#include <errno.h>
#include <stdlib.h>

#include "ctl.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "tap.h"
#include "util.h"

/**
 * ctl_init() - allocate the control frame ring
 * @dp:		data plane
 *
 * Return: 0, or -1 with errno set
 */
int ctl_init(struct dp *dp)
{
	dp->ctl.buf = calloc(DP_CTL_FRAMES, DP_CTL_FRAME_MAX);
	if (!dp->ctl.buf) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/**
 * ctl_cleanup() - free the control frame ring
 * @dp:		data plane
 */
void ctl_cleanup(struct dp *dp)
{
	free(dp->ctl.buf);
	dp->ctl.buf = NULL;
}

/**
 * ctl_queue() - queue an IP packet from the guest for Python
 * @dp:		data plane
 * @eth_src:	the guest's MAC address
 * @eth_type:	ETH_TYPE_IP4 or ETH_TYPE_IP6
 * @pkt:	IP packet
 * @len:	its length (header and payload, no padding)
 */
void ctl_queue(struct dp *dp, const uint8_t *eth_src, uint16_t eth_type,
	       const uint8_t *pkt, size_t len)
{
	unsigned slot;
	uint8_t *frame;

	if (DP_ETH_HLEN + len > DP_CTL_FRAME_MAX) {
		DP_COUNT(dp, drop_ctl_too_big);
		return;
	}
	if (dp->ctl.count == DP_CTL_FRAMES) {
		DP_COUNT(dp, drop_ctl_full);
		return;
	}

	slot = (dp->ctl.head + dp->ctl.count) % DP_CTL_FRAMES;
	frame = dp->ctl.buf + (size_t)slot * DP_CTL_FRAME_MAX;
	memcpy(frame, dp->cfg.gw_mac, DP_MAC_LEN);
	memcpy(frame + DP_MAC_LEN, eth_src, DP_MAC_LEN);
	wr16(frame + 2 * DP_MAC_LEN, eth_type);
	memcpy(frame + DP_ETH_HLEN, pkt, len);
	dp->ctl.len[slot] = DP_ETH_HLEN + len;
	dp->ctl.count++;
	dp->notices |= DP_NOTICE_CTL_FRAMES;
	DP_COUNT(dp, ctl_frames);
}

/**
 * dp_ctl_recv() - take the oldest frame queued for the control plane
 * @dp:		data plane
 * @buf:	where to copy it
 * @size:	size of @buf, at least DP_CTL_FRAME_MAX
 *
 * Return: frame length, 0 if none is queued, -1 (EINVAL) if @buf is too small
 */
int dp_ctl_recv(struct dp *dp, uint8_t *buf, int size)
{
	size_t len;

	if (!dp || !buf || size < DP_CTL_FRAME_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (!dp->ctl.count)
		return 0;

	len = dp->ctl.len[dp->ctl.head];
	memcpy(buf, dp->ctl.buf + (size_t)dp->ctl.head * DP_CTL_FRAME_MAX, len);
	dp->ctl.head = (dp->ctl.head + 1) % DP_CTL_FRAMES;
	dp->ctl.count--;
	return (int)len;
}

/**
 * dp_ctl_send() - write a frame built by the control plane to the guest
 * @dp:		data plane
 * @frame:	Ethernet frame
 * @len:	its length: an Ethernet header, at most the MTU after it
 *
 * Return: 0, or -1 with errno EINVAL for a bad length
 */
int dp_ctl_send(struct dp *dp, const uint8_t *frame, int len)
{
	uint8_t *out;

	if (!dp || !frame || len < DP_ETH_HLEN ||
	    (size_t)len > DP_ETH_HLEN + (size_t)dp->cfg.mtu) {
		errno = EINVAL;
		return -1;
	}

	out = tap_tx_alloc(dp);
	memcpy(out, frame, (size_t)len);
	tap_tx_commit(dp, (size_t)len);
	tap_tx_flush(dp);
	return 0;
}
