/* splice.h - spliced TCP connection state, see splice.c */
#ifndef SPLICE_H
#define SPLICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct dp;
struct flow;
struct fwd_listener;

/* Sides of a spliced connection: its socket in the guest's namespace (the
 * flow's @sock) and the one to the host's loopback (@host_sock).  Data of
 * direction d goes from side d to the other, through pipe d. */
#define SPLICE_NS		0
#define SPLICE_HOST		1

/**
 * struct splice_flow - per-connection state of a spliced connection
 * @host_sock:	connection to the host's loopback, -1 once closed
 * @pipe:	a pipe per direction, [read end, write end]
 * @in_pipe:	bytes held in each pipe
 * @pipe_cap:	capacity of the pipes (F_GETPIPE_SZ)
 * @host_events:	epoll events @host_sock is registered for, 0 if none
 * @eof:	per direction: the source side sent its FIN
 * @shut:	per direction: the FIN was passed on (shutdown(SHUT_WR))
 * @hup:	per side: epoll said it hung up both ways; it stays out of
 *		epoll, what it still holds is read when the other side moves
 * @last_ms:	time of the last byte moved or connection event
 */
struct splice_flow {
	int host_sock;
	int pipe[2][2];
	uint32_t in_pipe[2];
	uint32_t pipe_cap;
	uint32_t host_events;
	bool eof[2];
	bool shut[2];
	bool hup[2];
	uint64_t last_ms;
};

void splice_accept(struct dp *dp, struct fwd_listener *l);
void splice_from_host(struct dp *dp, struct fwd_listener *l, int fd,
		     const struct sockaddr_storage *sa);
void splice_sock_event(struct dp *dp, struct flow *f, int side,
		       uint32_t events);
void splice_timer(struct dp *dp, struct flow *f);
void splice_cleanup(struct dp *dp);

#endif /* SPLICE_H */
