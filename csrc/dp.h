/* Internals of the slirpd data plane: struct dp and the entry points each
 * protocol file offers the others.  Python never sees this file; its view is
 * dp_api.h, included here so both sides share one definition.
 */
#ifndef DP_H
#define DP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dp_api.h"
#include "dp_counters.h"
#include "dp_limits.h"
#include "checksum.h"
#include "inany.h"
#include "flow.h"

struct frag_slot;
struct pcap_rec_hdr;

#include <netinet/in.h>
#include <sys/socket.h>

#define DP_CNT_ENUM(name)	DP_CNT_##name,
enum dp_counter {
	DP_COUNTERS(DP_CNT_ENUM)
	DP_CNT_COUNT
};
#undef DP_CNT_ENUM

/* Add one to counter @name of @dp: DP_COUNT(dp, drop_runt) */
#define DP_COUNT(dp, name)	((dp)->counters[DP_CNT_##name]++)
/* Add @n to counter @name of @dp */
#define DP_COUNT_N(dp, name, n)	((dp)->counters[DP_CNT_##name] += (n))

/* Ethertypes we look at */
#define ETH_TYPE_IP4		0x0800
#define ETH_TYPE_ARP		0x0806
#define ETH_TYPE_IP6		0x86dd

/* Our IPv6 link-local address, fe80::2: the source of router advertisements
 * (RFC 4861 wants a link-local one), answered like the gateway */
#define DP_LL6_ADDR { .a = { 0xfe, 0x80, [15] = 2 } }

/**
 * struct fwd_listener - a forwarded host socket (fwd.c)
 * @id:		forward id given by Python
 * @sock:	bound host socket, -1 if the slot is free (Python owns it)
 * @proto:	IPPROTO_TCP or IPPROTO_UDP
 * @guest:	guest address connections and datagrams go to; with @splice
 *		the host address (its loopback) they go to
 * @guest_port:	guest port, host byte order; with @splice the host's port
 * @splice:	the socket is in the guest's namespace (pasta's -T, -U): its
 *		connections are spliced to the host (splice.c), its datagrams
 *		relayed there (udp.c)
 * @connections:	TCP connections accepted, or UDP flows started, through it
 * @paused_until_ms:	out of the epoll set until then, for want of
 *			descriptors (fwd_pause()); 0 while accepting
 */
struct fwd_listener {
	int id;
	int sock;
	uint8_t proto;
	union inany_addr guest;
	uint16_t guest_port;
	bool splice;
	uint64_t connections;
	uint64_t paused_until_ms;
};

/**
 * struct tap_offload - what a virtio-net header says about one frame (tap.c)
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
 * struct dp - one data plane instance, see dp.c for the theory of operation
 * @cfg:		copy of the configuration given to dp_new()
 * @tap_fd:		TAP file descriptor, non-blocking, owned by us
 * @epoll_fd:		epoll instance with @tap_fd registered for EPOLLIN
 * @vnet_len:		bytes of virtio-net header before each frame (0 or
 *			DP_VNET_HDR_LEN): offloads are used exactly when set
 * @uso:		with @vnet_len, UDP segmentation offload both ways
 *			(TUN_F_USO4 and TUN_F_USO6 taken by the kernel, tap.c)
 * @rx_frame:		Ethernet frame being dispatched, NULL between frames
 * @rx_frame_len:	its length
 * @rx_off:		its offload requests (valid with @rx_frame)
 * @tx_off:		offloads of the frame to be committed next (tap.c)
 * @rx_buf:		receive ring, DP_RX_RING buffers of DP_FRAME_MAX bytes
 * @rx_len:		bytes read into each receive buffer, header included
 * @tx_buf:		transmit queue, DP_TX_RING buffers of DP_FRAME_MAX bytes
 * @tx_len:		bytes queued in each transmit buffer, header included
 * @tx_count:		number of frames queued in @tx_buf
 * @guest_mac:		source MAC address of the last valid guest frame
 * @guest_mac_known:	true once @guest_mac was learnt
 * @ip4_id:		identification field of the next IPv4 packet we build
 * @ip6_frag_id:	identification of the next IPv6 datagram we fragment
 * @ra_deadline_ms:	when ndp.c sends its next unsolicited router
 *			advertisement, 0 until the guest solicited one
 * @tap_gone:		set once the TAP reported EOF or EIO, sticky
 * @now_ms:		monotonic clock in milliseconds, read once per dp_poll()
 * @spin_us:		dp_wait()'s busy-poll window, 0 to DP_SPIN_MAX_US
 * @next_deadline_ms:	earliest flow deadline, 0 if none (flow.c)
 * @flows:		flow table, DP_FLOW_MAX slots (flow.c)
 * @flow_buckets:	hash buckets: index + 1 of the first flow, 0 if empty
 * @flow_free_head:	index + 1 of the first freed slot, 0 if none is
 * @flow_high_water:	slots below this have been used at least once; those
 *			from it on are free, never written
 * @flow_count:		flows in use
 * @flow_seed:		random hash seed
 * @socks:		host sockets held, their budget, the recycling list
 *			(flow.c)
 * @tx_l3:		IP header of the packet ip_tx_start() began, or NULL
 * @frags:		IPv4 reassembly slots, DP_FRAG_SLOTS (frag.c)
 * @frag_deadline_ms:	earliest reassembly timeout, 0 if none (frag.c)
 * @udp_buf:		receive buffers of UDP and ping sockets,
 *			DP_UDP_RECV_BATCH of DP_UDP_BUF bytes (udp.c)
 * @udp_rx_len:		datagram length in each of @udp_buf
 * @udp:		UDP state beside the flows: held guest datagrams, what
 *			the host kernel offers (udp.c)
 * @notices:		DP_NOTICE_* bits raised and not yet read by dp_notices()
 * @notices_raised:	DP_NOTICE_* bits ever raised: each is raised once
 * @tcp:		TCP state beside the flows: deferred work, counts (tcp.c)
 * @fwd:		forwarded host sockets, DP_FWD_MAX slots (fwd.c)
 * @host_lo_open:	a rule leads the guest to the host's loopback
 *			(fwd_host_lo_open(), set by dp_new())
 * @dns_gen:		generation of the host's nameserver, never 0: bumped by
 *			dp_dns_upstream(), kept by UDP flows to the DNS address
 * @dns_notice_ms:	when DP_NOTICE_DNS_USED was last raised, 0 never (fwd.c)
 * @fwd_deadline_ms:	earliest end of a listener's pause, 0 if none (fwd.c)
 * @ctl_buf:		control frame ring, DP_CTL_FRAMES of DP_CTL_FRAME_MAX (ctl.c)
 * @ctl_len:		length of each queued control frame
 * @ctl_head:		oldest queued control frame
 * @ctl_count:		control frames queued
 * @pcap_fd:		capture file (--pcap), -1 when not capturing (pcap.c)
 * @pcap_state:		DP_PCAP_* or -errno, see dp_pcap_state()
 * @pcap_size:		bytes in the capture file
 * @pcap_max_size:	bytes the capture file may grow to
 * @pcap_rec:		record headers of one batch, DP_PCAP_BATCH
 * @counters:		counters, indexed by enum dp_counter
 */
struct dp {
	struct dp_config cfg;
	int tap_fd;
	int epoll_fd;
	size_t vnet_len;
	bool uso;
	const uint8_t *rx_frame;
	size_t rx_frame_len;
	struct tap_offload rx_off;
	struct tap_offload tx_off;
	uint8_t *rx_buf;
	size_t rx_len[DP_RX_RING];
	uint8_t *tx_buf;
	size_t tx_len[DP_TX_RING];
	unsigned tx_count;
	uint8_t guest_mac[DP_MAC_LEN];
	bool guest_mac_known;
	uint16_t ip4_id;
	uint32_t ip6_frag_id;
	uint64_t ra_deadline_ms;
	bool tap_gone;
	uint64_t now_ms;
	unsigned spin_us;
	uint64_t next_deadline_ms;
	struct flow *flows;
	uint32_t *flow_buckets;
	uint32_t flow_free_head;
	uint32_t flow_high_water;
	uint32_t flow_count;
	uint64_t flow_seed;
	struct flow_socks socks;
	uint8_t *tx_l3;
	struct frag_slot *frags;
	uint64_t frag_deadline_ms;
	uint8_t *udp_buf;
	size_t udp_rx_len[DP_UDP_RECV_BATCH];
	struct udp_ctx udp;
	uint32_t notices;
	uint32_t notices_raised;
	struct tcp_ctx tcp;
	struct fwd_listener *fwd;
	bool host_lo_open;
	uint32_t dns_gen;
	uint64_t dns_notice_ms;
	uint64_t fwd_deadline_ms;
	uint8_t *ctl_buf;
	size_t ctl_len[DP_CTL_FRAMES];
	unsigned ctl_head;
	unsigned ctl_count;
	int pcap_fd;
	int pcap_state;
	uint64_t pcap_size;
	uint64_t pcap_max_size;
	struct pcap_rec_hdr *pcap_rec;
	uint64_t counters[DP_CNT_COUNT];
};

/**
 * struct ip4_pkt - a validated IPv4 packet, handed from ip4.c to L4 handlers
 * @eth_src:	source MAC of the frame that carried it
 * @saddr:	source address, network byte order
 * @daddr:	destination address, network byte order
 * @tos:	type of service byte
 * @proto:	protocol number
 * @l4:		start of the payload, after any IP options
 * @l4_len:	payload length, from the IP total length (padding removed)
 */
struct ip4_pkt {
	const uint8_t *eth_src;
	uint32_t saddr;
	uint32_t daddr;
	uint8_t tos;
	uint8_t proto;
	const uint8_t *l4;
	size_t l4_len;
};

/**
 * struct l4_pkt - a validated TCP or UDP packet from the guest, any family
 * @eth_src:	source MAC of the frame that carried it
 * @src:	source address (the guest), IPv4-mapped for IPv4
 * @dst:	destination address as the guest wrote it
 * @tos:	type of service / traffic class
 * @proto:	IPPROTO_TCP or IPPROTO_UDP
 * @l4:		transport header and payload
 * @l4_len:	bytes at @l4, from the IP length field (padding removed)
 */
struct l4_pkt {
	const uint8_t *eth_src;
	union inany_addr src;
	union inany_addr dst;
	uint8_t tos;
	uint8_t proto;
	const uint8_t *l4;
	size_t l4_len;
};

/**
 * rd16() - read a big-endian 16-bit field from an unaligned position
 * @p:		first byte of the field
 *
 * Return: value in host byte order
 */
static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/**
 * wr16() - write a 16-bit value as big-endian to an unaligned position
 * @p:		first byte of the field
 * @v:		value in host byte order
 */
static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/**
 * rd32n() - read 32 bits from an unaligned position, keeping network order
 * @p:		first byte of the field
 *
 * Return: the four bytes as they are in memory (addresses stay network order)
 */
static inline uint32_t rd32n(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/**
 * wr32n() - write 32 bits kept in network order to an unaligned position
 * @p:		first byte of the field
 * @v:		value as it should appear in memory
 */
static inline void wr32n(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/**
 * mac_is_multicast() - tell whether a MAC address is multicast or broadcast
 * @mac:	address, DP_MAC_LEN bytes
 *
 * Return: true for group addresses (I/G bit set)
 */
static inline bool mac_is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;
}

/* tap.c */
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

/* tap_rx_l4_csum(): verify the checksum, trust the partial sum, or drop */
#define TAP_CSUM_VERIFY		0
#define TAP_CSUM_PARTIAL	1
#define TAP_CSUM_BAD		2

/* pcap.c */
void pcap_init(struct dp *dp);
void pcap_cleanup(struct dp *dp);
void pcap_batch(struct dp *dp, const uint8_t *ring, const size_t *lens,
		unsigned count);

/* eth.c */
void eth_input(struct dp *dp, const uint8_t *frame, size_t len);
uint8_t *eth_tx_start(struct dp *dp, const uint8_t *dst, uint16_t ethertype);
void eth_tx_commit(struct dp *dp, size_t l3_len);

/* arp.c */
void arp_input(struct dp *dp, const uint8_t *pkt, size_t len);

/* ip4.c */
void ip4_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len);
void ip4_l4_input(struct dp *dp, const struct ip4_pkt *ip);
bool ip4_is_unicast(const struct dp *dp, uint32_t addr);
bool ip4_is_local(const struct dp *dp, uint32_t addr);
void ip4_hdr_fill(struct dp *dp, uint8_t *hdr, uint32_t saddr, uint32_t daddr,
		  uint8_t proto, uint8_t tos, size_t l4_len);
uint8_t *ip_tx_start(struct dp *dp, const union inany_addr *src,
		     const union inany_addr *dst, size_t *room);
void ip_tx_commit(struct dp *dp, uint8_t proto, size_t l4_len);
uint32_t ip_pseudo_csum(const union inany_addr *src,
			const union inany_addr *dst, uint8_t proto,
			size_t l4_len);
size_t ip_hdr_len(const union inany_addr *addr);
bool ip_is_local(const struct dp *dp, const union inany_addr *addr);
void ip_gateway(const struct dp *dp, const union inany_addr *like,
		union inany_addr *gw);
void ip_tx_l4(struct dp *dp, const union inany_addr *src,
	      const union inany_addr *dst, uint8_t proto, const uint8_t *l4,
	      size_t l4_len);

/* ip6.c */
void ip6_input(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len);
void ip6_payload_input(struct dp *dp, const struct l4_pkt *p,
		       uint8_t hop_limit, bool first);
bool ip6_is_local(const struct dp *dp, const union inany_addr *addr);
void ip6_hdr_fill(uint8_t *hdr, const union inany_addr *src,
		  const union inany_addr *dst, uint8_t next, uint8_t hops,
		  size_t payload_len);

/* ndp.c */
void ndp_input(struct dp *dp, const struct l4_pkt *p, uint8_t hop_limit);
void ndp_timer(struct dp *dp);

/* frag.c */
int frag_init(struct dp *dp);
void frag_cleanup(struct dp *dp);
void frag_input(struct dp *dp, const struct l4_pkt *p, uint32_t id,
		size_t offset, bool more);
void frag_timer(struct dp *dp);
void frag_batch_end(struct dp *dp);

/* udp.c */
int udp_init(struct dp *dp);
void udp_cleanup(struct dp *dp);
int udp_recv_batch(struct dp *dp, int fd);
uint8_t *udp_rx_data(struct dp *dp, int i);

/* icmp.c */
void icmp_tx_unreach(struct dp *dp, const union inany_addr *from,
		     const union inany_addr *guest,
		     const union inany_addr *remote, uint8_t proto,
		     const uint8_t *l4_head, size_t l4_len, uint8_t code,
		     uint32_t info);

/**
 * dp_notice() - raise a one-shot notice for Python, once per data plane
 * @dp:		data plane
 * @bit:	DP_NOTICE_* bit
 */
static inline void dp_notice(struct dp *dp, uint32_t bit)
{
	if (!(dp->notices_raised & bit)) {
		dp->notices_raised |= bit;
		dp->notices |= bit;
	}
}

/* ctl.c */
int ctl_init(struct dp *dp);
void ctl_cleanup(struct dp *dp);
void ctl_queue(struct dp *dp, const uint8_t *eth_src, const uint8_t *pkt,
	       size_t len);

/* fwd.c */
bool fwd_ip4_is_loopback(uint32_t addr);
bool fwd_rules_valid(const struct dp_config *cfg);
bool fwd_is_local(const struct dp *dp, const union inany_addr *addr);
bool fwd_host_lo_open(const struct dp *dp);
int fwd_guest_to_host(struct dp *dp, const union inany_addr *remote,
		      uint16_t port, uint8_t proto,
		      struct sockaddr_storage *sa, socklen_t *sa_len);
bool fwd_is_dns(const struct dp *dp, const union inany_addr *addr,
		uint16_t port);
void fwd_dns_query(struct dp *dp);
bool fwd_sa_is_loopback(const struct sockaddr_storage *sa);
int fwd_bind_outbound(const struct dp *dp, int sock, int family);
int fwd_init(struct dp *dp);
void fwd_cleanup(struct dp *dp);
void fwd_sock_event(struct dp *dp, uint32_t index);
void fwd_pause(struct dp *dp, struct fwd_listener *l);
void fwd_sockaddr(const union inany_addr *addr, uint16_t port,
		  struct sockaddr_storage *sa, socklen_t *sa_len);
void fwd_sa_to_inany(const struct sockaddr_storage *sa,
		     union inany_addr *addr, uint16_t *port);
void fwd_timer(struct dp *dp);
void fwd_guest_view(const struct dp *dp, const struct sockaddr_storage *sa,
		    const union inany_addr *guest, union inany_addr *addr,
		    uint16_t *port);

/* Port forwarding into the guest, provided by tcp.c and udp.c */
void tcp_conn_from_host(struct dp *dp, int fd, const union inany_addr *src,
			uint16_t src_port, const union inany_addr *guest,
			uint16_t guest_port);
void udp_listener_input(struct dp *dp, struct fwd_listener *l);
void udp_fwd_forget(struct dp *dp, int sock);

#endif /* DP_H */
