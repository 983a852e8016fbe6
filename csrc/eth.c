/* eth.c - Ethernet: dispatch received frames, frame our replies
 *
 * Theory of operation
 * -------------------
 * The TAP link is point to point: every frame the guest sends is meant for
 * us, so, like slirp4netns, we do not filter on the destination MAC address
 * (a guest with a stale neighbour entry still gets through).  We check what
 * we must to answer safely: the frame holds a whole Ethernet header, and its
 * source is a unicast address other than ours (a multicast source is invalid,
 * and our own would mean a loop).  That source is then learnt as the guest's
 * MAC address, the destination of frames we originate later.
 *
 * Frames are dispatched by ethertype: ARP to arp.c, IPv4 to ip4.c, IPv6 to
 * ip6.c if -6 enabled it (a counted drop otherwise, drop_ipv6).  Everything
 * else (including 802.1Q tagged frames) is a counted drop.
 *
 * Replies are built in place in the transmit queue: eth_tx_start() writes the
 * Ethernet header and returns where the L3 packet goes; eth_tx_commit() queues
 * the frame, padded to DP_ETH_ZLEN as a wire would need.
 */

#include "arp.h"
#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "eth.h"
#include "inany.h"
#include "ip4.h"
#include "ip6.h"
#include "tap.h"
#include "util.h"

/**
 * eth_input() - handle one Ethernet frame from the guest
 * @dp:		data plane
 * @frame:	frame, starting at the destination MAC address
 * @len:	frame length, virtio-net header excluded
 */
void eth_input(struct dp *dp, const uint8_t *frame, size_t len)
{
	const uint8_t *src;
	uint16_t type;

	if (!frame || len < DP_ETH_HLEN) {
		DP_COUNT(dp, drop_runt);
		return;
	}

	src = frame + DP_MAC_LEN;

	if (mac_is_multicast(src) || !memcmp(src, dp->cfg.gw_mac, DP_MAC_LEN)) {
		DP_COUNT(dp, drop_eth_src);
		return;
	}

	if (!dp->eth.guest_mac_known || memcmp(dp->eth.guest_mac, src, DP_MAC_LEN)) {
		memcpy(dp->eth.guest_mac, src, DP_MAC_LEN);
		dp->eth.guest_mac_known = true;
	}

	type = rd16(frame + 2 * DP_MAC_LEN);
	frame += DP_ETH_HLEN;
	len -= DP_ETH_HLEN;

	switch (type) {
	case ETH_TYPE_ARP:
		arp_input(dp, frame, len);
		break;
	case ETH_TYPE_IP4:
		ip4_input(dp, src, frame, len);
		break;
	case ETH_TYPE_IP6:
		if (dp->cfg.enable_ipv6)
			ip6_input(dp, src, frame, len);
		else
			DP_COUNT(dp, drop_ipv6);
		break;
	default:
		DP_COUNT(dp, drop_ethertype);
		break;
	}
}

/**
 * eth_tx_start() - start a frame from us in the transmit queue
 * @dp:		data plane
 * @dst:	destination MAC address, DP_MAC_LEN bytes
 * @ethertype:	ethertype, host byte order
 *
 * Return: where the L3 packet goes, room for DP_FRAME_MAX - DP_VNET_HDR_LEN -
 *	   DP_ETH_HLEN bytes; finish with eth_tx_commit()
 */
uint8_t *eth_tx_start(struct dp *dp, const uint8_t *dst, uint16_t ethertype)
{
	uint8_t *frame = tap_tx_alloc(dp);

	memcpy(frame, dst, DP_MAC_LEN);
	memcpy(frame + DP_MAC_LEN, dp->cfg.gw_mac, DP_MAC_LEN);
	wr16(frame + 2 * DP_MAC_LEN, ethertype);

	return frame + DP_ETH_HLEN;
}

/**
 * eth_tx_commit() - queue the frame started with eth_tx_start()
 * @dp:		data plane
 * @l3_len:	bytes written after the Ethernet header
 */
void eth_tx_commit(struct dp *dp, size_t l3_len)
{
	size_t len = DP_ETH_HLEN + l3_len;

	if (len < DP_ETH_ZLEN) {
		/* Same buffer as eth_tx_start() got: nothing committed since */
		uint8_t *frame = tap_tx_alloc(dp);

		memset(frame + len, 0, DP_ETH_ZLEN - len);
		len = DP_ETH_ZLEN;
	}

	tap_tx_commit(dp, len);
}
