/* ip4.c - validate IPv4 packets from the guest and dispatch them
 *
 * Theory of operation
 * -------------------
 * Every header field comes from the guest and is checked before use, in this
 * order, each failure a counted drop:
 *
 * - malformed: fewer bytes than a minimal header, version not 4, IHL below 5
 *   (20 bytes), header longer than the bytes we have, total length shorter
 *   than the header or longer than the frame.  Bytes past the total length
 *   are Ethernet padding and are ignored from here on.
 * - checksum: the header, options included, must sum to zero.
 * - fragment: a set More Fragments flag or a non-zero offset.  Reassembly is
 *   not implemented yet; the guest's path MTU discovery keeps TCP from
 *   fragmenting, and UDP will be handled by a later change.
 * - not for us: for now we only terminate packets addressed to the gateway or
 *   the DNS forwarder (ip4_is_local()).  Forwarding to the outside comes with
 *   the TCP and UDP flows.
 * - protocol: ICMP goes to icmp.c; other protocols are not handled yet.
 *
 * Packets we originate get a fresh 20-byte header from ip4_hdr_fill(): no
 * options, no fragmentation, TTL DP_IP4_TTL, an identification that counts up.
 */

#include "dp.h"

/* Fixed part of the IPv4 header and offsets of its fields */
#define IP4_HLEN		20
#define IP4_OFF_VER_IHL		0
#define IP4_OFF_TOS		1
#define IP4_OFF_TOT_LEN		2
#define IP4_OFF_ID		4
#define IP4_OFF_FRAG		6
#define IP4_OFF_TTL		8
#define IP4_OFF_PROTO		9
#define IP4_OFF_CSUM		10
#define IP4_OFF_SADDR		12
#define IP4_OFF_DADDR		16

/* Fragment field: More Fragments flag and offset, Don't Fragment aside */
#define IP4_MF			0x2000
#define IP4_OFFMASK		0x1fff

/**
 * ip4_is_local() - tell whether an address is one the data plane answers for
 * @dp:		data plane
 * @addr:	IPv4 address, network byte order
 *
 * Return: true for the gateway and the DNS forwarder addresses
 */
bool ip4_is_local(const struct dp *dp, uint32_t addr)
{
	return addr == dp->cfg.gw4 || addr == dp->cfg.dns4;
}

/**
 * ip4_input() - handle one IPv4 packet from the guest
 * @dp:		data plane
 * @eth_src:	source MAC address of the frame, for replies
 * @pkt:	IPv4 packet, after the Ethernet header
 * @len:	bytes available from @pkt (may include Ethernet padding)
 */
void ip4_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len)
{
	struct ip4_pkt ip;
	size_t hlen, tot_len;

	if (len < IP4_HLEN || (pkt[IP4_OFF_VER_IHL] >> 4) != 4) {
		DP_COUNT(dp, drop_ip4_malformed);
		return;
	}

	hlen = (size_t)(pkt[IP4_OFF_VER_IHL] & 0x0f) * 4;
	tot_len = rd16(pkt + IP4_OFF_TOT_LEN);
	if (hlen < IP4_HLEN || hlen > len || tot_len < hlen || tot_len > len) {
		DP_COUNT(dp, drop_ip4_malformed);
		return;
	}

	if (csum(pkt, hlen, 0)) {
		DP_COUNT(dp, drop_ip4_checksum);
		return;
	}

	if (rd16(pkt + IP4_OFF_FRAG) & (IP4_MF | IP4_OFFMASK)) {
		DP_COUNT(dp, drop_ip4_fragment);
		return;
	}

	ip.eth_src = eth_src;
	ip.saddr = rd32n(pkt + IP4_OFF_SADDR);
	ip.daddr = rd32n(pkt + IP4_OFF_DADDR);
	ip.tos = pkt[IP4_OFF_TOS];
	ip.proto = pkt[IP4_OFF_PROTO];
	ip.l4 = pkt + hlen;
	ip.l4_len = tot_len - hlen;

	if (!ip4_is_local(dp, ip.daddr)) {
		DP_COUNT(dp, drop_ip4_not_for_us);
		return;
	}

	switch (ip.proto) {
	case IP4_PROTO_ICMP:
		icmp4_input(dp, &ip);
		break;
	default:
		DP_COUNT(dp, drop_ip4_proto);
		break;
	}
}

/**
 * ip4_hdr_fill() - write a 20-byte IPv4 header for a packet we originate
 * @dp:		data plane, for the identification counter
 * @hdr:	where the header goes, IP4_HLEN bytes, payload follows
 * @saddr:	source address, network byte order
 * @daddr:	destination address, network byte order
 * @proto:	protocol number
 * @tos:	type of service byte
 * @l4_len:	payload length; the caller keeps IP4_HLEN + @l4_len <= 65535
 */
void ip4_hdr_fill(struct dp *dp, uint8_t *hdr, uint32_t saddr, uint32_t daddr,
		  uint8_t proto, uint8_t tos, size_t l4_len)
{
	uint16_t sum;

	hdr[IP4_OFF_VER_IHL] = 4 << 4 | IP4_HLEN / 4;
	hdr[IP4_OFF_TOS] = tos;
	wr16(hdr + IP4_OFF_TOT_LEN, (uint16_t)(IP4_HLEN + l4_len));
	wr16(hdr + IP4_OFF_ID, dp->ip4_id++);
	wr16(hdr + IP4_OFF_FRAG, 0);
	hdr[IP4_OFF_TTL] = DP_IP4_TTL;
	hdr[IP4_OFF_PROTO] = proto;
	wr16(hdr + IP4_OFF_CSUM, 0);
	wr32n(hdr + IP4_OFF_SADDR, saddr);
	wr32n(hdr + IP4_OFF_DADDR, daddr);

	sum = csum(hdr, IP4_HLEN, 0);
	memcpy(hdr + IP4_OFF_CSUM, &sum, sizeof(sum));
}
