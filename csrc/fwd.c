/* fwd.c - the address map: where a guest's destination goes on the host
 *
 * Theory of operation
 * -------------------
 * The guest sees a small virtual network (slirp4netns's, by default
 * 10.0.2.0/24) in which two addresses are special.  Translation happens when
 * a flow opens its host socket, and only there; every frame to the guest keeps
 * the address the guest used, so the guest never sees the host's addresses:
 *
 * - the gateway (network+2) is the host itself: its 127.0.0.1, unless the
 *   configuration disables host loopback, in which case it reaches nothing.
 * - the DNS address (network+3), port 53, is the first nameserver of the
 *   host's /etc/resolv.conf (cfg.dns_upstream4, found by Python).  If that
 *   nameserver is a loopback address and host loopback is disabled, DNS is
 *   refused too: nothing of the host's loopback is reachable through any
 *   address.  Other ports of the DNS address reach nothing.
 * - any other address in the virtual network, loopback, multicast,
 *   broadcast, "this network" (0/8) and class E reach nothing.
 * - everything else is itself: the host connects to it.
 */

#include <netinet/in.h>

#include "dp.h"

/* IPv4 address blocks, host byte order: network, mask */
#define IP4_BLOCK_THIS_NET	0x00000000U, 0xff000000U	/* 0/8 */
#define IP4_BLOCK_LOOPBACK	0x7f000000U, 0xff000000U	/* 127/8 */
#define IP4_BLOCK_MULTICAST	0xe0000000U, 0xf0000000U	/* 224/4 */
#define IP4_BLOCK_RESERVED	0xf0000000U, 0xf0000000U	/* 240/4 */
#define DNS_PORT		53

/**
 * ip4_in() - tell whether an address is in a block
 * @addr:	address, host byte order
 * @net:	block, host byte order
 * @mask:	block mask, host byte order
 *
 * Return: true if inside
 */
static bool ip4_in(uint32_t addr, uint32_t net, uint32_t mask)
{
	return (addr & mask) == net;
}

/**
 * fwd_ip4_is_loopback() - tell whether an IPv4 address is loopback
 * @addr:	address, network byte order
 *
 * Return: true for 127/8
 */
bool fwd_ip4_is_loopback(uint32_t addr)
{
	return ip4_in(ntohl(addr), IP4_BLOCK_LOOPBACK);
}

/**
 * fwd_guest_to_host() - translate a guest's destination to a host socket
 * address
 * @dp:		data plane
 * @remote:	destination as the guest addressed it
 * @port:	destination port, host byte order (0 for ICMP)
 * @proto:	IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMP
 * @sa:		filled with the host address to connect or send to
 * @sa_len:	filled with the length of @sa
 *
 * Return: 0 if the destination is reachable, -1 if the guest may not reach
 *	   it (the caller answers as an unreachable host and counts the drop)
 */
int fwd_guest_to_host(const struct dp *dp, const union inany_addr *remote,
		      uint16_t port, uint8_t proto,
		      struct sockaddr_storage *sa, socklen_t *sa_len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	const struct dp_config *c = &dp->cfg;
	uint32_t daddr, h;

	if (!inany_is_v4(remote))
		return -1;	/* IPv6 comes with --enable-ipv6 */

	daddr = inany_v4(remote);
	h = ntohl(daddr);

	if (daddr == c->gw4) {
		if (c->disable_host_loopback)
			return -1;
		daddr = htonl(INADDR_LOOPBACK);
	} else if (daddr == c->dns4) {
		if (c->disable_dns || port != DNS_PORT || !c->dns_upstream4 ||
		    proto == IPPROTO_ICMP)
			return -1;
		if (c->disable_host_loopback &&
		    fwd_ip4_is_loopback(c->dns_upstream4))
			return -1;
		daddr = c->dns_upstream4;
	} else if ((daddr & c->mask4) == c->net4 ||
		   ip4_in(h, IP4_BLOCK_THIS_NET) ||
		   ip4_in(h, IP4_BLOCK_LOOPBACK) ||
		   ip4_in(h, IP4_BLOCK_MULTICAST) ||
		   ip4_in(h, IP4_BLOCK_RESERVED)) {
		return -1;
	}

	memset(sa, 0, sizeof(*sa));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	sin->sin_addr.s_addr = daddr;
	*sa_len = sizeof(*sin);
	return 0;
}
