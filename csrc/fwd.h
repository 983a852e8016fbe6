/* fwd.h - the address map and forwarded host sockets, see fwd.c */
#ifndef FWD_H
#define FWD_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include "inany.h"

struct dp;
struct dp_config;

/**
 * struct fwd_listener - a forwarded host socket
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
 * struct fwd_local_memo - the last answer of fwd_is_local()
 * @addr:	the address it was asked about
 * @local:	its answer
 * @valid:	@addr and @local hold an answer (none before the first)
 */
struct fwd_local_memo {
	union inany_addr addr;
	bool local;
	bool valid;
};

/**
 * struct fwd_ctx - forwards and the host's nameserver, owned by fwd.c
 * @listeners:		forwarded host sockets, DP_FWD_MAX slots
 * @host_lo_open:	a rule leads the guest to the host's loopback
 *			(fwd_host_lo_open(), set by dp_new())
 * @dns_gen:		generation of the host's nameserver, never 0: bumped by
 *			dp_dns_upstream(), kept by UDP flows to the DNS address
 * @dns_notice_ms:	when DP_NOTICE_DNS_USED was last raised, 0 never
 * @deadline_ms:	earliest end of a listener's pause, 0 if none
 * @local_memo:		fwd_is_local()'s last answer
 */
struct fwd_ctx {
	struct fwd_listener *listeners;
	bool host_lo_open;
	uint32_t dns_gen;
	uint64_t dns_notice_ms;
	uint64_t deadline_ms;
	struct fwd_local_memo local_memo;
};

bool fwd_ip4_is_loopback(uint32_t addr);
bool fwd_rules_valid(const struct dp_config *cfg);
bool fwd_is_local(struct dp *dp, const union inany_addr *addr);
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
int fwd_remove(struct dp *dp, int id);
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

#endif /* FWD_H */
