/* tcp_internal.h - what tcp.c and tcp_buf.c share: the TCP header's layout,
 * flow flags, the validated segment; see tcp.c
 */
#ifndef TCP_INTERNAL_H
#define TCP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sys/epoll.h>

/* TCP header: offsets of its fields, flag bits, options we read or write */
#define TCP_HLEN		20
#define TCP_OFF_SPORT		0
#define TCP_OFF_DPORT		2
#define TCP_OFF_SEQ		4
#define TCP_OFF_ACK		8
#define TCP_OFF_DOFF		12
#define TCP_OFF_FLAGS		13
#define TCP_OFF_WND		14
#define TCP_OFF_CSUM		16
#define TCP_OFF_URG		18

#define TCP_FIN			0x01
#define TCP_SYN			0x02
#define TCP_RST			0x04
#define TCP_PSH			0x08
#define TCP_ACK			0x10

#define TCP_OPT_EOL		0
#define TCP_OPT_NOP		1
#define TCP_OPT_MSS		2
#define TCP_OPT_WS		3
#define TCP_OPT_SACK_OK		4
#define TCP_OPT_SACK		5
#define TCP_OPT_MSS_LEN		4
#define TCP_OPT_WS_LEN		3
#define TCP_OPT_SACK_OK_LEN	2
#define TCP_SACK_BLOCKS_MAX	4	/* 2 + 2 + 4 * 8 bytes fit the 40 */
#define TCP_OPT_MAX		40	/* 60-byte header less the fixed part */

/* ICMP destination unreachable codes for a failed connect(), and how much of
 * the guest's SYN the error quotes (ports and sequence number) */
#define TCP_ICMP_NET_UNREACH	0
#define TCP_ICMP_HOST_UNREACH	1
#define TCP_SYN_QUOTE_LEN	8

/* Three duplicate ACKs in a row start a fast retransmit (RFC 5681) */
#define TCP_DUP_ACK_THRESHOLD	3

/* struct tcp_flow.flags */
#define TCP_F_WS		0x0001	/* window scaling negotiated */
#define TCP_F_BATCHED		0x0002	/* has an entry in dp->tcp.ent */
#define TCP_F_ACK_DUE		0x0004	/* guest data or FIN to acknowledge */
#define TCP_F_SEND_DUE		0x0008	/* ack or window moved: send data */
#define TCP_F_WND_LIMITED	0x0010	/* socket nearly full: EPOLLOUT on */
#define TCP_F_GUEST_FIN_QUEUED	0x0020	/* guest FIN seen, after queued data */
#define TCP_F_GUEST_FIN		0x0040	/* guest FIN done: socket SHUT_WR */
#define TCP_F_HOST_EOF		0x0080	/* socket EOF, FIN at seq_fin_to_guest */
#define TCP_F_FIN_SENT		0x0100	/* our FIN is out (cleared on rewind) */
#define TCP_F_FIN_ACKED		0x0200	/* the guest acked our FIN */
#define TCP_F_SACK		0x0400	/* SACK permitted: our ACKs carry blocks */

/* epoll events of an open connection; EPOLLOUT is added while needed */
#define TCP_EPOLL_EVENTS	(EPOLLIN | EPOLLRDHUP | EPOLLET)

/**
 * struct tcp_seg - the fields of a validated segment from the guest
 * @sport:	source port (the guest's)
 * @dport:	destination port
 * @seq:	sequence number
 * @ack:	acknowledgement number, valid with TCP_ACK
 * @flags:	TCP_SYN, TCP_ACK...
 * @wnd:	window field, not scaled
 * @opts:	options
 * @opt_len:	bytes of options
 * @data:	payload
 * @len:	bytes of payload
 */
struct tcp_seg {
	uint16_t sport;
	uint16_t dport;
	uint32_t seq;
	uint32_t ack;
	uint8_t flags;
	uint16_t wnd;
	const uint8_t *opts;
	size_t opt_len;
	const uint8_t *data;
	size_t len;
};

#endif /* TCP_INTERNAL_H */
