/* arp.c - answer the guest's ARP requests for our addresses
 *
 * Theory of operation
 * -------------------
 * The guest resolves the addresses on its link with ARP before sending them
 * anything.  Ours all live behind our single MAC address (cfg->gw_mac), so a
 * request for one gets a reply from that address.  Which addresses are ours
 * depends on the model (fwd.c): slirp4netns's are the rules marked
 * DP_RULE_F_LOCAL (its gateway and DNS address); with cfg->neigh_all,
 * pasta's, every address but the guest's own (cfg->guest4), since the
 * guest's link holds copies of the host's addresses and the rest of the
 * world is behind us.  Requests for any other address are the guest probing
 * for its own address (duplicate address detection), announcing itself
 * (sender and target the same), or looking for hosts that do not exist on
 * this link: no reply, counted.
 *
 * Only Ethernet/IPv4 ARP is understood (28 bytes after the Ethernet header).
 * Replies and other operations are counted drops: we learn nothing from them,
 * as the only neighbour we ever talk to is the guest, and its MAC address is
 * learnt from the Ethernet source of its frames (eth.c).
 */

#include "arp.h"
#include "dp.h"
#include "dp_api_once.h"
#include "eth.h"
#include "ip4.h"
#include "util.h"

/* ARP for Ethernet and IPv4 (RFC 826) */
#define ARP_LEN			28
#define ARP_HTYPE_ETHER		1
#define ARP_OP_REQUEST		1
#define ARP_OP_REPLY		2

/* Offsets of fields in the ARP packet */
#define ARP_OFF_HTYPE		0
#define ARP_OFF_PTYPE		2
#define ARP_OFF_HLEN		4
#define ARP_OFF_PLEN		5
#define ARP_OFF_OP		6
#define ARP_OFF_SHA		8
#define ARP_OFF_SPA		14
#define ARP_OFF_THA		18
#define ARP_OFF_TPA		24

/**
 * arp_is_ours() - tell whether we answer ARP requests for an address
 * @dp:		data plane
 * @tpa:	target address of the request, network byte order
 *
 * Return: true for one of our addresses, see the theory above
 */
static bool arp_is_ours(struct dp *dp, uint32_t tpa)
{
	if (dp->cfg.neigh_all)
		return tpa && tpa != dp->cfg.guest4;
	return ip4_is_local(dp, tpa);
}

/**
 * arp_input() - handle one ARP packet from the guest
 * @dp:		data plane
 * @pkt:	ARP packet, after the Ethernet header
 * @len:	bytes available from @pkt (may include Ethernet padding)
 */
void arp_input(struct dp *dp, const uint8_t *pkt, size_t len)
{
	const uint8_t *sha = pkt + ARP_OFF_SHA;
	uint32_t spa, tpa;
	uint8_t *r;

	if (len < ARP_LEN ||
	    rd16(pkt + ARP_OFF_HTYPE) != ARP_HTYPE_ETHER ||
	    rd16(pkt + ARP_OFF_PTYPE) != ETH_TYPE_IP4 ||
	    pkt[ARP_OFF_HLEN] != DP_MAC_LEN || pkt[ARP_OFF_PLEN] != 4 ||
	    mac_is_multicast(sha)) {
		DP_COUNT(dp, drop_arp_malformed);
		return;
	}

	if (rd16(pkt + ARP_OFF_OP) != ARP_OP_REQUEST) {
		DP_COUNT(dp, drop_arp_op);
		return;
	}

	spa = rd32n(pkt + ARP_OFF_SPA);
	tpa = rd32n(pkt + ARP_OFF_TPA);
	if (!arp_is_ours(dp, tpa) || spa == tpa) {
		DP_COUNT(dp, drop_arp_not_for_us);
		return;
	}

	r = eth_tx_start(dp, sha, ETH_TYPE_ARP);
	wr16(r + ARP_OFF_HTYPE, ARP_HTYPE_ETHER);
	wr16(r + ARP_OFF_PTYPE, ETH_TYPE_IP4);
	r[ARP_OFF_HLEN] = DP_MAC_LEN;
	r[ARP_OFF_PLEN] = 4;
	wr16(r + ARP_OFF_OP, ARP_OP_REPLY);
	memcpy(r + ARP_OFF_SHA, dp->cfg.gw_mac, DP_MAC_LEN);
	wr32n(r + ARP_OFF_SPA, tpa);
	memcpy(r + ARP_OFF_THA, sha, DP_MAC_LEN);
	wr32n(r + ARP_OFF_TPA, spa);
	eth_tx_commit(dp, ARP_LEN);

	DP_COUNT(dp, arp_replies);
}
