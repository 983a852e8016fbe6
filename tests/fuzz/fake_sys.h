/* fake_sys.h - the system calls the data plane makes, played by the fuzzer
 *
 * The fuzz build compiles the csrc/ files unchanged, then renames every system call
 * they reference (objcopy --redefine-syms=tests/fuzz/syms.txt: read becomes
 * fake_read...), so the data plane talks to fake_sys.c instead of the kernel.
 * Only csrc's objects are renamed: libFuzzer, the sanitizers and the harness
 * keep the real calls.
 *
 * The fake kernel keeps a table of descriptors (TAP, epoll, sockets) and
 * answers from state the fuzz input drives: frames waiting on the TAP, bytes
 * and datagrams waiting on sockets, connect() results, errors, a virtual
 * clock.  It checks what a real kernel would refuse (closing a descriptor
 * twice, epoll_ctl() on a closed one) and aborts on it, so misuse is a crash
 * the fuzzer reports.
 */
#ifndef FAKE_SYS_H
#define FAKE_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define FAKE_FD_BASE		1000	/* first descriptor number handed out */
#define FAKE_FD_MAX		256	/* descriptors open at once */
#define FAKE_STREAM_MAX		(256 * 1024)	/* bytes waiting on a stream */
#define FAKE_DGRAM_MAX		8	/* datagrams waiting on a socket */
#define FAKE_DGRAM_LEN		2048	/* longest datagram the input makes */
#define FAKE_TAP_FRAMES		128	/* frames waiting on the TAP */
#define FAKE_TAP_FRAME_LEN	65550	/* longest frame the input makes */

enum fake_kind {
	FAKE_FREE = 0,
	FAKE_TAP,
	FAKE_EPOLL,
	FAKE_SOCK,
	FAKE_PIPE,
};

#define FAKE_PIPE_CAP		65536		/* a new pipe's capacity */
#define FAKE_PIPE_CAP_MAX	(1 << 20)	/* F_SETPIPE_SZ's limit */

/* Knobs: how the fake kernel answers, set by the input (enum order is the
 * input's encoding) */
enum fake_knob {
	KNOB_SOCKET_ERR,	/* socket(): 0 works, else errno index */
	KNOB_CONNECT,		/* stream connect(): see fake_connect() */
	KNOB_DGRAM_CONNECT,	/* datagram connect(): 0 works, else errno */
	KNOB_SEND_LIMIT,	/* stream send: at most this many KiB, 0: room
				 * of SO_SNDBUF, 255: EAGAIN; a short write
				 * leaves the socket full (fake_stream_send()) */
	KNOB_DGRAM_SEND_ERR,	/* datagram send: 0 works, else errno index */
	KNOB_SNDBUF,		/* SO_SNDBUF in KiB, 0 means 16 */
	KNOB_TAP_WRITE,		/* 0 works, 1 EAGAIN, 2 short write */
	KNOB_TAP_READ,		/* 0 works, 1 EOF, 2 EIO, 3 EINVAL */
	KNOB_ACCEPT_ERR,	/* accept4(): 0 works, else errno index */
	KNOB_EPOLL_ERR,		/* epoll_ctl(): 0 works, else ENOMEM */
	KNOB_SETSOCKOPT_ERR,	/* setsockopt(): 0 works, else ENOPROTOOPT */
	KNOB_RECV_ERR,		/* stream recv: 0 works, else errno index */
	KNOB_UDP_OFFLOAD,	/* bits: 1 getsockopt(UDP_SEGMENT) unknown (a
				 * kernel before 4.18), 2 setsockopt(UDP_GRO)
				 * refused (before 5.0), 4 a UDP_SEGMENT send
				 * fails with EINVAL, 8 with EIO */
	KNOB_COUNT
};

struct fake_dgram {
	uint16_t len;
	uint8_t origin;		/* input's choice of source address */
	uint16_t gso;		/* coalesced by GRO into @len: each datagram
				 * this long, the last shorter; 0: one */
	uint8_t data[FAKE_DGRAM_LEN];
};

/**
 * struct fake_fd - one descriptor of the fake kernel
 * @kind:	FAKE_FREE if the slot is unused
 * @owner_harness:	the harness opened it (forward listeners): the data
 *			plane must not close it
 * @family:	socket family
 * @type:	SOCK_STREAM or SOCK_DGRAM (flags removed)
 * @proto:	protocol argument of socket()
 * @listening:	a forward's listener (TCP) or bound socket (UDP)
 * @connecting:	stream connect() in progress
 * @connected:	stream connected (or datagram connect()ed)
 * @peer_eof:	the host peer closed its side: recv() returns 0 when empty
 * @shut_wr:	shutdown(SHUT_WR) done
 * @send_full:	a send took less than it was given: until the host peer
 *		reads, sends fail with EAGAIN and EPOLLOUT is not reported
 * @so_error:	pending SO_ERROR
 * @epoll_on:	registered in the epoll set
 * @epoll_events:	events registered
 * @epoll_data:	data registered
 * @edge:	events that happened since last reported (for EPOLLET)
 * @peek_off:	SO_PEEK_OFF, -1 if off
 * @rx:		stream bytes waiting, @rx_len of them
 * @outq:	bytes sent and not yet "acked" by the host peer (SO_MEMINFO)
 * @dgrams:	datagrams waiting, @ndgrams of them
 * @recverr:	IP_RECVERR (or IPV6_RECVERR) is on: ICMP errors are queued
 * @udp_gro:	UDP_GRO is on: coalesced datagrams arrive whole, with their
 *		gso_size in a control message
 * @errq:	ICMP errors waiting on the error queue
 * @accepts:	connections waiting on a listener
 * @pipe_write:	a pipe's write end; @pipe_peer is its read end
 * @pipe_peer:	the other end of a pipe (descriptor number)
 * @pipe_len:	a read end's bytes waiting (only a count: the fake moves no data)
 * @pipe_cap:	a read end's capacity (F_SETPIPE_SZ)
 */
struct fake_fd {
	enum fake_kind kind;
	bool owner_harness;
	int family;
	int type;
	int proto;
	bool listening;
	bool connecting;
	bool connected;
	bool peer_eof;
	bool shut_wr;
	bool send_full;
	int so_error;
	bool epoll_on;
	uint32_t epoll_events;
	uint64_t epoll_data;
	uint32_t edge;
	long peek_off;
	uint8_t *rx;
	size_t rx_len;
	size_t outq;
	struct fake_dgram *dgrams;
	unsigned ndgrams;
	bool recverr;
	bool udp_gro;
	unsigned errq;
	unsigned accepts;
	bool pipe_write;
	int pipe_peer;
	size_t pipe_len;
	size_t pipe_cap;
};

/**
 * struct fake_kernel - all the fake kernel's state, reset for each input
 * @fds:	descriptor table, FAKE_FD_BASE + index
 * @knob:	current answers, enum fake_knob
 * @now_ns:	virtual CLOCK_MONOTONIC
 * @tap_frames:	frames waiting to be read from the TAP
 * @tap_len:	their lengths
 * @tap_head:	oldest waiting frame
 * @tap_count:	frames waiting
 * @tap_vnet:	bytes of virtio-net header on each TAP frame
 * @tap_mtu:	MTU the data plane was given
 * @tap_offloads:	TUNSETOFFLOAD flags taken, 0 before
 * @tap_no_uso:	TUNSETOFFLOAD refuses TUN_F_USO4/6 (a kernel before 6.2)
 * @frames_out:	frames the data plane wrote to the TAP
 * @ctl_unchecked:	frames written now come from dp_ctl_send(): the
 *			harness made them, fake_check_frame() skips them
 * @fd_limit:	descriptors open at once beyond which the data plane's
 *		socket() and accept4() fail with EMFILE, as under
 *		RLIMIT_NOFILE (the harness's own are never refused); 0 for
 *		FAKE_FD_MAX
 * @epoll_rotor:	where epoll_wait() starts scanning, for fairness
 * @random:	state of the deterministic getrandom()
 * @trace:	FUZZ_TRACE is set: print each frame written, in hex, on stderr
 *		(tests/fuzz/mkseeds.py reads them to answer the data plane)
 */
struct fake_kernel {
	struct fake_fd fds[FAKE_FD_MAX];
	uint8_t knob[KNOB_COUNT];
	uint64_t now_ns;
	uint8_t *tap_frames;
	size_t tap_len[FAKE_TAP_FRAMES];
	unsigned tap_head;
	unsigned tap_count;
	size_t tap_vnet;
	uint32_t tap_mtu;
	unsigned tap_offloads;
	bool tap_no_uso;
	uint64_t frames_out;
	bool ctl_unchecked;
	unsigned fd_limit;
	unsigned epoll_rotor;
	uint64_t random;
	bool trace;
};

extern struct fake_kernel fk;

void fake_reset(void);
struct fake_fd *fake_fd_get(int fd);
int fake_fd_open(enum fake_kind kind);
void fake_fd_close_harness(int fd);
int fake_open_count(void);
bool fake_tap_push(const uint8_t *frame, size_t len);
int fake_sock_pick(uint8_t sel, bool stream_only);
void fake_stream_push(int fd, const uint8_t *data, size_t len);
void fake_dgram_push(int fd, const uint8_t *data, size_t len, uint8_t origin,
		     uint16_t gso);
void fake_sock_event(int fd, uint8_t what);
void fake_listener_accept(int fd);

#endif /* FAKE_SYS_H */
