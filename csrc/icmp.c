/* icmp.c - ICMP for the addresses the data plane answers for
 *
 * Theory of operation
 * -------------------
 * The guest pings its gateway to check the link: an echo request to the
 * gateway or the DNS forwarder address (ip4.c filters on the destination) is
 * answered here, with the identifier, sequence number and payload copied and
 * the checksum computed afresh over the whole reply.  The reply's source is
 * the address that was pinged, its destination the request's source.
 *
 * Checks, each failure a counted drop: the message holds an ICMP header and
 * its checksum is correct; it is an echo request; its source is an address we
 * can answer (not unspecified, multicast or broadcast); the reply fits the
 * link MTU.  Other ICMP messages from the guest (errors about packets we sent,
 * timestamps) are dropped for now.  Pinging hosts beyond the gateway will come
 * with the flow table, through ping sockets.
 */

#include "dp.h"

/* ICMP header: type, code, checksum, identifier, sequence number */
#define ICMP_HLEN		8
#define ICMP_OFF_TYPE		0
#define ICMP_OFF_CODE		1
#define ICMP_OFF_CSUM		2

#define ICMP_ECHO_REPLY		0
#define ICMP_ECHO_REQUEST	8

/* IPv4 header length of the replies we build, see ip4_hdr_fill() */
#define ICMP_IP4_HLEN		20

/**
 * ip4_src_answerable() - tell whether a source address can take a reply
 * @addr:	IPv4 address, network byte order
 *
 * Return: false for 0.0.0.0, multicast (224/4) and limited broadcast
 */
static bool ip4_src_answerable(uint32_t addr)
{
	const uint8_t *b = (const uint8_t *)&addr;

	return addr != 0 && (b[0] & 0xf0) != 0xe0 && addr != 0xffffffffu;
}

/**
 * icmp4_input() - handle one ICMP message addressed to us
 * @dp:		data plane
 * @ip:		validated IPv4 packet carrying the message
 */
void icmp4_input(struct dp *dp, const struct ip4_pkt *ip)
{
	uint16_t sum;
	uint8_t *r;

	if (ip->l4_len < ICMP_HLEN) {
		DP_COUNT(dp, drop_icmp_malformed);
		return;
	}

	if (csum(ip->l4, ip->l4_len, 0)) {
		DP_COUNT(dp, drop_icmp_checksum);
		return;
	}

	if (ip->l4[ICMP_OFF_TYPE] != ICMP_ECHO_REQUEST) {
		DP_COUNT(dp, drop_icmp_type);
		return;
	}

	if (!ip4_src_answerable(ip->saddr)) {
		DP_COUNT(dp, drop_icmp_src);
		return;
	}

	if (ICMP_IP4_HLEN + ip->l4_len > dp->cfg.mtu) {
		DP_COUNT(dp, drop_icmp_too_big);
		return;
	}

	r = eth_tx_start(dp, ip->eth_src, ETH_TYPE_IP4);
	ip4_hdr_fill(dp, r, ip->daddr, ip->saddr, IPPROTO_ICMP, ip->tos,
		     ip->l4_len);

	r += ICMP_IP4_HLEN;
	memcpy(r, ip->l4, ip->l4_len);
	r[ICMP_OFF_TYPE] = ICMP_ECHO_REPLY;
	r[ICMP_OFF_CODE] = 0;
	wr16(r + ICMP_OFF_CSUM, 0);
	sum = csum(r, ip->l4_len, 0);
	memcpy(r + ICMP_OFF_CSUM, &sum, sizeof(sum));

	eth_tx_commit(dp, ICMP_IP4_HLEN + ip->l4_len);
	DP_COUNT(dp, icmp_echo_replies);
}

/* placeholder: ping sockets are being written */
void ping4_input(struct dp *dp, const struct ip4_pkt *ip)
{
	(void)ip;
	DP_COUNT(dp, drop_ip4_proto);
}

void ping_sock_event(struct dp *dp, struct flow *f, uint32_t events)
{
	(void)events;
	flow_free(dp, f);
}

void ping_timer(struct dp *dp, struct flow *f)
{
	flow_free(dp, f);
}
