/* tcp.h - TCP translation: the entry points of tcp.c */
#ifndef TCP_H
#define TCP_H

#include <stddef.h>
#include <stdint.h>

#include "inany.h"

struct dp;
struct flow;
struct l4_pkt;

void tcp_input(struct dp *dp, const struct l4_pkt *p);
void tcp_batch_end(struct dp *dp);
void tcp_sock_event(struct dp *dp, struct flow *f, uint32_t events);
void tcp_timer(struct dp *dp, struct flow *f);
void tcp_cleanup(struct dp *dp);
void tcp_conn_from_host(struct dp *dp, int fd, const union inany_addr *src,
			uint16_t src_port, const union inany_addr *guest,
			uint16_t guest_port);

#endif /* TCP_H */
