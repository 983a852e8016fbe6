/* udp.h - UDP translation state, see udp.c */
#ifndef UDP_H
#define UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>

#include "dp_limits.h"

struct dp;
struct flow;
struct l4_pkt;
struct fwd_listener;

/**
 * struct udp_flow - per-flow UDP state
 * @last_ms:	time of the last datagram in either direction
 * @idle_ms:	the flow is closed this long after @last_ms
 * @fwd_sock:	for a flow started by a forwarded host port: the forward's
 *		(unconnected, Python's) socket that replies leave by; -1 for a
 *		flow with a socket of its own in struct flow's @sock
 * @peer:	with @fwd_sock: the host client's real address, where replies
 *		go (the flow key holds it as the guest sees it)
 * @peer_len:	length of @peer
 * @client_lo:	with @fwd_sock: the client is on the host's loopback and host
 *		loopback is disabled, so only the client's datagrams keep the
 *		flow alive (the guest's alone must not keep a way to the host's
 *		loopback open)
 * @splice:	a flow of pasta's -U: from a client of @fwd_sock, a socket
 *		bound in the guest's namespace, to the host's loopback through
 *		@sock (udp_listener_input()); replies go back by @fwd_sock to @peer
 * @dns_gen:	for a flow to the DNS address, the generation of the host's
 *		nameserver it was opened for (struct dp's @dns_gen); 0 for
 *		other flows
 * @batch:	index + 1 of the flow's entry in struct udp_ctx's @fl, if it
 *		has one in the current receive batch (udp_queue() checks that
 *		the entry is still its own); 0 for none
 * @gro:	UDP_GRO is on for its socket: a read may hold several
 *		datagrams (struct udp_ctx's @rx_gso)
 * @no_gso:	the socket refused a UDP_SEGMENT send: its datagrams go out
 *		one per message from then on
 */
struct udp_flow {
	uint64_t last_ms;
	uint32_t idle_ms;
	int fwd_sock;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} peer;
	uint32_t peer_len;
	bool client_lo;
	bool splice;
	uint32_t dns_gen;
	uint16_t batch;
	bool gro;
	bool no_gso;
};

/**
 * struct udp_tx_dgram - a guest datagram held until the end of the batch
 * @data:	payload, in the receive ring
 * @len:	payload bytes
 * @gso:	for a GSO super-datagram from the guest, payload bytes per
 *		datagram (the virtio-net header's gso_size); 0 for one datagram
 * @next:	index + 1 of the flow's next held datagram, 0 for the last
 */
struct udp_tx_dgram {
	const uint8_t *data;
	uint32_t len;
	uint16_t gso;
	uint16_t next;
};

/**
 * struct udp_tx_flow - a flow with guest datagrams held in this batch
 * @idx:	flow table index
 * @gen:	generation of the flow when its first datagram was held
 * @first:	index + 1 of its first held datagram in struct udp_ctx's @d
 * @last:	index + 1 of its last one, where the next is linked
 */
struct udp_tx_flow {
	uint32_t idx;
	uint32_t gen;
	uint16_t first;
	uint16_t last;
};

struct udp_rx_vec;

/**
 * struct udp_ctx - UDP state of a data plane, beside its flows (udp.c)
 * @ndgrams:	entries of @d used in the current receive batch
 * @nflows:	entries of @fl used in the current receive batch
 * @gso:	the host kernel takes UDP_SEGMENT (probed on the first
 *		socket, and not turned off by cfg.offloads_off)
 * @gso_probed:	@gso is known
 * @gro:	UDP_GRO may be asked for on new sockets (cleared when the
 *		kernel refuses it once, or by cfg.offloads_off)
 * @d:		guest datagrams held for their sockets, in arrival order
 * @fl:		flows that hold them, each with its own list through @d
 * @rx_gso:	for each datagram of the last read, the size of the
 *		datagrams the kernel coalesced into it (UDP_GRO), 0 for one
 * @buf:	receive buffers of UDP and ping sockets, DP_UDP_RECV_BATCH of
 *		DP_UDP_BUF bytes
 * @rx:		the recvmmsg() vector over @buf (udp.c)
 * @rx_len:	datagram length in each of @buf
 */
struct udp_ctx {
	unsigned ndgrams;
	unsigned nflows;
	bool gso;
	bool gso_probed;
	bool gro;
	struct udp_tx_dgram d[DP_UDP_TX_BATCH];
	struct udp_tx_flow fl[DP_UDP_TX_BATCH];
	uint16_t rx_gso[DP_UDP_RECV_BATCH];
	uint8_t *buf;
	struct udp_rx_vec *rx;
	size_t rx_len[DP_UDP_RECV_BATCH];
};

void udp_input(struct dp *dp, const struct l4_pkt *p);
void udp_batch_end(struct dp *dp);
void udp_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void udp_timer(struct dp *dp, struct flow *f);
int udp_init(struct dp *dp);
void udp_cleanup(struct dp *dp);
int udp_recv_batch(struct dp *dp, int fd);
uint8_t *udp_rx_data(struct dp *dp, int i);
void udp_listener_input(struct dp *dp, struct fwd_listener *l);
void udp_fwd_forget(struct dp *dp, int sock);

#endif /* UDP_H */
