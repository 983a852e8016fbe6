/* tcp_buf.h - TCP segments to the guest, built and sent, see tcp_buf.c */
#ifndef TCP_BUF_H
#define TCP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

#include "inany.h"

struct dp;
struct flow;
struct l4_pkt;
struct tcp_flow;
struct tcp_seg;

void tcp_csum_commit(struct dp *dp, const union inany_addr *src,
		     const union inany_addr *dst, uint8_t *th,
		     size_t l4_len);
void tcp_offload_commit(struct dp *dp, const struct flow *f,
			uint8_t *th, size_t len);
size_t tcp_frame_payload(const struct dp *dp, const struct flow *f);
void tcp_hdr_fill(uint8_t *th, uint16_t sport, uint16_t dport,
		  uint32_t seq, uint32_t ack, uint8_t flags,
		  uint16_t wnd, size_t hlen);
uint16_t tcp_wnd_field(const struct tcp_flow *t);
void tcp_wnd_sent(struct tcp_flow *t, uint32_t wnd);
size_t tcp_sack_opts(const struct tcp_flow *t, uint8_t *o, size_t room);
void tcp_send_ctl(struct dp *dp, struct flow *f, uint8_t flags,
		  uint32_t seq);
void tcp_rst_reply(struct dp *dp, const struct l4_pkt *p,
		   const struct tcp_seg *seg);
int tcp_epoll_out(struct dp *dp, struct flow *f, bool on);
int tcp_wnd_update(struct dp *dp, struct flow *f);
int tcp_consume(struct flow *f);
void tcp_tx_data(struct dp *dp, struct flow *f, const struct iovec *iov,
		 size_t bytes);
void tcp_send_fin(struct dp *dp, struct flow *f);
int tcp_data_from_sock(struct dp *dp, struct flow *f);

#endif /* TCP_BUF_H */
