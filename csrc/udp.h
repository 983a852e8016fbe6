/* udp.h - UDP translation state, see udp.c */
#ifndef UDP_H
#define UDP_H

#include <stdbool.h>
#include <stdint.h>

#include <netinet/in.h>

struct dp;
struct flow;
struct l4_pkt;

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
};

void udp_input(struct dp *dp, const struct l4_pkt *p);
void udp_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void udp_timer(struct dp *dp, struct flow *f);

#endif /* UDP_H */
