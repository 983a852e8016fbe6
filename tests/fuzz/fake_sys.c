/* fake_sys.c - a small fake kernel for the fuzz harness: TAP, epoll, sockets
 *
 * See fake_sys.h for how the data plane is pointed here.  Each fake_*()
 * function stands in for the system call of the same name, with the same
 * signature, and answers from struct fake_kernel, which the harness fills
 * from the fuzz input between calls to dp_poll().
 *
 * The model is small but keeps the rules the data plane relies on:
 * - a stream socket's bytes stay until recv(MSG_TRUNC) drops them;
 *   recvmsg(MSG_PEEK) reads from SO_PEEK_OFF and moves it, as Linux does;
 * - epoll reports level-triggered readiness, or edges for EPOLLET
 *   registrations; EPOLLERR and EPOLLHUP are always reported;
 * - EPOLL_CTL_ADD of a registered descriptor fails with EEXIST, MOD and DEL
 *   of an unregistered one with ENOENT, closing removes the registration;
 * - EINTR is returned at most once in a row, as a real signal would;
 * - a pipe (pipe2()) is a count of bytes in its read end and a capacity
 *   (F_SETPIPE_SZ, F_GETPIPE_SZ); splice() moves a stream socket's bytes
 *   into a pipe, or a pipe's into a stream socket (as send() takes them),
 *   non-blocking only, and aborts on any other pairing.
 * It also checks every frame written to the TAP (fake_check_frame()): length
 * within the MTU, IPv4 header and transport checksums right.  A broken rule
 * aborts, which the fuzzer reports as a crash.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/virtio_net.h>
#include <linux/if_tun.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fake_sys.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4		0x20
#define TUN_F_USO6		0x40
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4	5
#endif
#ifndef SOL_UDP
#define SOL_UDP			17
#endif
#define FAKE_UDP_SEGMENT	103
#define FAKE_UDP_GRO		104
/* What the data plane promises of UDP segmentation (DP_UDP_GSO_SEGS and
 * DP_UDP_GSO_BYTES of csrc/dp_limits.h), checked here on what it sends */
#define FAKE_GSO_SEGS		64
#define FAKE_GSO_BYTES		65507
#define FAKE_TUN_OFFLOADS	(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | \
				 TUN_F_TSO_ECN | TUN_F_UFO | TUN_F_USO4 | \
				 TUN_F_USO6)

struct fake_kernel fk;

/* errno values a knob can pick, by index; 0 means "works" */
static const int fake_errnos[] = {
	0, EAGAIN, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH,
	EMFILE, ENFILE, ENOBUFS, ENOMEM, EACCES, EPERM, EAFNOSUPPORT, EINTR,
	EPIPE, ETIMEDOUT, EADDRNOTAVAIL, EINVAL, ECONNABORTED, EMSGSIZE,
};
#define FAKE_NERRNOS	(sizeof(fake_errnos) / sizeof(fake_errnos[0]))

/**
 * fake_die() - report a broken rule and abort, for the fuzzer to catch
 * @fmt:	printf() format
 */
static void __attribute__((noreturn, format(printf, 1, 2)))
fake_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fake kernel: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

/**
 * fake_knob_errno() - errno a knob asks for, clearing it if that is EINTR
 * @k:		knob
 *
 * Return: 0 if the call should work, else the errno to fail with
 */
static int fake_knob_errno(enum fake_knob k)
{
	int e = fake_errnos[fk.knob[k] % FAKE_NERRNOS];

	if (e == EINTR)
		fk.knob[k] = 0;
	return e;
}

/**
 * fake_fail() - fail a call with an errno
 * @e:		errno
 *
 * Return: -1
 */
static int fake_fail(int e)
{
	errno = e;
	return -1;
}

/**
 * fake_reset() - start a new input: every descriptor closed, knobs zero
 */
void fake_reset(void)
{
	unsigned i;

	for (i = 0; i < FAKE_FD_MAX; i++) {
		free(fk.fds[i].rx);
		free(fk.fds[i].dgrams);
	}
	if (!fk.tap_frames) {
		fk.tap_frames = malloc((size_t)FAKE_TAP_FRAMES *
				       FAKE_TAP_FRAME_LEN);
		if (!fk.tap_frames)
			fake_die("out of memory");
	}
	memset(fk.fds, 0, sizeof(fk.fds));
	memset(fk.knob, 0, sizeof(fk.knob));
	fk.now_ns = 1000000000ULL;
	fk.tap_head = fk.tap_count = 0;
	fk.tap_vnet = 0;	/* until the data plane asks for a header */
	fk.tap_offloads = 0;
	fk.tap_no_uso = false;
	fk.frames_out = 0;
	fk.fd_limit = 0;
	fk.epoll_rotor = 0;
	fk.random = 0x9e3779b97f4a7c15ULL;
	fk.trace = getenv("FUZZ_TRACE") != NULL;
}

/**
 * fake_fd_get() - the fake descriptor behind a number
 * @fd:		descriptor number
 *
 * Return: descriptor, NULL if @fd is not open
 */
struct fake_fd *fake_fd_get(int fd)
{
	struct fake_fd *d;

	if (fd < FAKE_FD_BASE || fd >= FAKE_FD_BASE + FAKE_FD_MAX)
		return NULL;
	d = &fk.fds[fd - FAKE_FD_BASE];
	return d->kind == FAKE_FREE ? NULL : d;
}

/**
 * fake_fd_open() - allocate a descriptor
 * @kind:	what it is
 *
 * Return: descriptor number, -1 with EMFILE if the table is full
 */
int fake_fd_open(enum fake_kind kind)
{
	unsigned i;

	for (i = 0; i < FAKE_FD_MAX; i++) {
		struct fake_fd *d = &fk.fds[i];

		if (d->kind != FAKE_FREE)
			continue;
		free(d->rx);
		free(d->dgrams);
		memset(d, 0, sizeof(*d));
		d->kind = kind;
		d->peek_off = -1;
		return FAKE_FD_BASE + (int)i;
	}
	return fake_fail(EMFILE);
}

/**
 * fake_fd_release() - free a descriptor's slot and buffers
 * @d:		descriptor
 */
static void fake_fd_release(struct fake_fd *d)
{
	free(d->rx);
	free(d->dgrams);
	memset(d, 0, sizeof(*d));
}

/**
 * fake_fd_close_harness() - the harness closes a descriptor it owns
 * @fd:		descriptor number
 */
void fake_fd_close_harness(int fd)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d)
		fake_die("harness closes fd %d, which is not open", fd);
	fake_fd_release(d);
}

/**
 * fake_open_count() - descriptors open that the harness does not own
 *
 * Return: count
 */
int fake_open_count(void)
{
	int n = 0;
	unsigned i;

	for (i = 0; i < FAKE_FD_MAX; i++)
		n += fk.fds[i].kind != FAKE_FREE && !fk.fds[i].owner_harness;
	return n;
}

/**
 * fake_tap_push() - a frame from the guest waits on the TAP
 * @frame:	frame, virtio-net header included if the TAP has them
 * @len:	its length, at most FAKE_TAP_FRAME_LEN
 *
 * Return: false if FAKE_TAP_FRAMES frames are already waiting
 */
bool fake_tap_push(const uint8_t *frame, size_t len)
{
	unsigned slot;

	if (fk.tap_count == FAKE_TAP_FRAMES || len > FAKE_TAP_FRAME_LEN)
		return false;
	slot = (fk.tap_head + fk.tap_count++) % FAKE_TAP_FRAMES;
	memcpy(fk.tap_frames + (size_t)slot * FAKE_TAP_FRAME_LEN, frame, len);
	fk.tap_len[slot] = len;
	return true;
}

/**
 * fake_sock_pick() - choose an open socket of the data plane
 * @sel:	input's choice
 * @stream_only:	only connected or connecting stream sockets
 *
 * Return: descriptor number, -1 if there is none
 */
int fake_sock_pick(uint8_t sel, bool stream_only)
{
	int cand[FAKE_FD_MAX], n = 0;
	unsigned i;

	for (i = 0; i < FAKE_FD_MAX; i++) {
		const struct fake_fd *d = &fk.fds[i];

		if (d->kind != FAKE_SOCK || d->owner_harness)
			continue;
		if (stream_only && d->type != SOCK_STREAM)
			continue;
		cand[n++] = FAKE_FD_BASE + (int)i;
	}
	return n ? cand[sel % n] : -1;
}

/**
 * fake_stream_push() - the host peer sends bytes on a stream socket
 * @fd:		descriptor number
 * @data:	bytes
 * @len:	how many
 */
void fake_stream_push(int fd, const uint8_t *data, size_t len)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d || d->type != SOCK_STREAM || d->peer_eof)
		return;
	if (!d->rx) {
		d->rx = malloc(FAKE_STREAM_MAX);
		if (!d->rx)
			fake_die("out of memory");
	}
	if (len > FAKE_STREAM_MAX - d->rx_len)
		len = FAKE_STREAM_MAX - d->rx_len;
	memcpy(d->rx + d->rx_len, data, len);
	d->rx_len += len;
	d->edge |= EPOLLIN;
}

/**
 * fake_dgram_push() - a datagram arrives on a datagram socket (or listener)
 * @fd:		descriptor number
 * @data:	payload
 * @len:	its length, cut to FAKE_DGRAM_LEN
 * @origin:	input's choice of source address (unconnected sockets)
 * @gso:	the input's claim that GRO coalesced it from datagrams of this
 *		size: honoured on a socket with UDP_GRO on, else 0 (one)
 */
void fake_dgram_push(int fd, const uint8_t *data, size_t len, uint8_t origin,
		     uint16_t gso)
{
	struct fake_fd *d = fake_fd_get(fd);
	struct fake_dgram *g;

	if (!d || d->type != SOCK_DGRAM || d->ndgrams == FAKE_DGRAM_MAX)
		return;
	if (!d->dgrams) {
		d->dgrams = calloc(FAKE_DGRAM_MAX, sizeof(*d->dgrams));
		if (!d->dgrams)
			fake_die("out of memory");
	}
	g = &d->dgrams[d->ndgrams++];
	if (len > FAKE_DGRAM_LEN)
		len = FAKE_DGRAM_LEN;
	memcpy(g->data, data, len);
	g->len = (uint16_t)len;
	g->origin = origin;
	g->gso = d->udp_gro && gso && gso < len ? gso : 0;
	d->edge |= EPOLLIN;
}

/**
 * fake_sock_event() - something happens to a socket on the host side
 * @fd:		descriptor number
 * @what:	input's choice, see the switch
 */
void fake_sock_event(int fd, uint8_t what)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d || d->kind != FAKE_SOCK)
		return;

	switch (what % 7) {
	case 0:		/* the host peer closes its side */
		d->peer_eof = true;
		d->edge |= EPOLLIN | EPOLLRDHUP;
		break;
	case 1:		/* reset */
		d->so_error = ECONNRESET;
		d->peer_eof = true;
		d->connecting = false;
		d->edge |= EPOLLERR | EPOLLHUP | EPOLLIN;
		break;
	case 2:		/* connect() completes */
		if (d->connecting) {
			d->connecting = false;
			d->connected = true;
			d->edge |= EPOLLOUT;
		}
		break;
	case 3:		/* connect() fails */
		if (d->connecting) {
			d->connecting = false;
			d->so_error = what & 0x80 ? EHOSTUNREACH : ECONNREFUSED;
			d->edge |= EPOLLERR | EPOLLHUP | EPOLLOUT;
		}
		break;
	case 4:		/* the host peer reads everything we sent */
		d->outq = 0;
		d->send_full = false;
		d->edge |= EPOLLOUT;
		break;
	case 5:		/* an ICMP error for a datagram socket: queued with
			 * IP_RECVERR, else only SO_ERROR, as the kernel does */
		if (d->type == SOCK_DGRAM && d->recverr && d->errq < 8) {
			d->errq++;
			d->edge |= EPOLLERR;
		} else if (d->type == SOCK_DGRAM) {
			d->so_error = EHOSTUNREACH;
			d->edge |= EPOLLERR;
		}
		break;
	case 6:		/* an asynchronous error, e.g. a refused datagram */
		d->so_error = ECONNREFUSED;
		d->edge |= EPOLLERR;
		break;
	}
}

/**
 * fake_listener_accept() - a host client connects to a forward's listener
 * @fd:		listener descriptor number
 */
void fake_listener_accept(int fd)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d || !d->listening || d->type != SOCK_STREAM || d->accepts >= 64)
		return;
	d->accepts++;
	d->edge |= EPOLLIN;
}

/* --- the system calls ---------------------------------------------------- */

/**
 * fake_sock_get() - a descriptor that must be a socket
 * @fd:		descriptor number
 *
 * Return: socket, NULL with errno EBADF or ENOTSOCK
 */
static struct fake_fd *fake_sock_get(int fd)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d) {
		errno = EBADF;
		return NULL;
	}
	if (d->kind != FAKE_SOCK) {
		errno = ENOTSOCK;
		return NULL;
	}
	return d;
}

/**
 * fake_fds_full() - tell whether the descriptor limit (fk.fd_limit) is reached
 *
 * Return: true if every descriptor the limit allows is open
 */
static bool fake_fds_full(void)
{
	unsigned i, n = 0;

	if (!fk.fd_limit)
		return false;
	for (i = 0; i < FAKE_FD_MAX; i++)
		n += fk.fds[i].kind != FAKE_FREE;
	return n >= fk.fd_limit;
}

int fake_socket(int domain, int type, int protocol)
{
	int e = fake_knob_errno(KNOB_SOCKET_ERR), fd;
	struct fake_fd *d;

	if (e)
		return fake_fail(e);
	if (domain != AF_INET && domain != AF_INET6)
		return fake_fail(EAFNOSUPPORT);
	if (fake_fds_full())
		return fake_fail(EMFILE);
	fd = fake_fd_open(FAKE_SOCK);
	if (fd < 0)
		return -1;
	d = fake_fd_get(fd);
	d->family = domain;
	d->type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	d->proto = protocol;
	return fd;
}

int fake_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct fake_fd *d = fake_sock_get(fd);
	int e;

	if (!d)
		return -1;
	if (!sa || len < sizeof(sa_family_t) || sa->sa_family != d->family)
		fake_die("connect(%d) with a bad address", fd);

	if (d->type != SOCK_STREAM) {
		e = fake_knob_errno(KNOB_DGRAM_CONNECT);
		if (e)
			return fake_fail(e);
		d->connected = true;
		return 0;
	}

	if (d->connecting || d->connected)
		return fake_fail(d->connecting ? EALREADY : EISCONN);
	switch (fk.knob[KNOB_CONNECT] % 8) {
	case 0:
		d->connecting = true;
		return fake_fail(EINPROGRESS);
	case 1:
		d->connected = true;
		return 0;
	case 2:
		return fake_fail(ECONNREFUSED);
	case 3:
		return fake_fail(ENETUNREACH);
	case 4:
		return fake_fail(EHOSTUNREACH);
	case 5:
		return fake_fail(EACCES);
	case 6:
		fk.knob[KNOB_CONNECT] = 0;
		return fake_fail(EINTR);
	default:
		return fake_fail(EADDRNOTAVAIL);
	}
}

int fake_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	(void)sa;
	(void)len;
	return fake_sock_get(fd) ? 0 : -1;
}

int fake_shutdown(int fd, int how)
{
	struct fake_fd *d = fake_sock_get(fd);

	if (!d)
		return -1;
	if (how == SHUT_WR || how == SHUT_RDWR)
		d->shut_wr = true;
	return 0;
}

int fake_setsockopt(int fd, int level, int name, const void *val,
		    socklen_t len)
{
	struct fake_fd *d = fake_sock_get(fd);
	int e = fake_knob_errno(KNOB_SETSOCKOPT_ERR);

	if (!d)
		return -1;
	if (!val || !len)
		fake_die("setsockopt(%d) without a value", fd);
	if (e)
		return fake_fail(e == EINTR ? ENOPROTOOPT : e);
	if (level == SOL_SOCKET && name == SO_PEEK_OFF) {
		int v;

		if (len < sizeof(int))
			return fake_fail(EINVAL);
		memcpy(&v, val, sizeof(v));
		d->peek_off = v;
	}
	if ((level == SOL_IP && name == IP_RECVERR) ||
	    (level == SOL_IPV6 && name == IPV6_RECVERR)) {
		int v;

		if (len < sizeof(int))
			return fake_fail(EINVAL);
		memcpy(&v, val, sizeof(v));
		d->recverr = v != 0;
	}
	if (level == SOL_UDP && name == FAKE_UDP_GRO) {
		int v;

		if (d->type != SOCK_DGRAM || len < sizeof(int))
			fake_die("setsockopt(%d, UDP_GRO) on a stream or short",
				 fd);
		if (fk.knob[KNOB_UDP_OFFLOAD] & 2)
			return fake_fail(ENOPROTOOPT);
		memcpy(&v, val, sizeof(v));
		d->udp_gro = v != 0;
	}
	return 0;
}

/**
 * fake_sndbuf() - SO_SNDBUF of every stream socket
 *
 * Without a knob, what a new Linux TCP socket starts with (tcp_wmem[1]):
 * the kernel's autotuning, which grows it, is not modelled, so writes come
 * up short as soon as a few segments wait, as on a slow host peer.
 *
 * Return: bytes
 */
static size_t fake_sndbuf(void)
{
	return fk.knob[KNOB_SNDBUF] ? (size_t)fk.knob[KNOB_SNDBUF] * 1024 :
				      16384;
}

int fake_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct fake_fd *d = fake_sock_get(fd);
	int v = 0;

	if (!d)
		return -1;
	if (!val || !len || *len < sizeof(int))
		fake_die("getsockopt(%d) with a short buffer", fd);
	if (level == SOL_UDP && name == FAKE_UDP_SEGMENT &&
	    d->type == SOCK_DGRAM && !(fk.knob[KNOB_UDP_OFFLOAD] & 1)) {
		memcpy(val, &v, sizeof(v));
		*len = sizeof(int);
		return 0;
	}
	if (level != SOL_SOCKET)
		return fake_fail(ENOPROTOOPT);
	if (name == SO_ERROR) {
		v = d->so_error;
		d->so_error = 0;
	} else if (name == SO_SNDBUF) {
		v = (int)fake_sndbuf();
	} else if (name == SO_MEMINFO) {
		uint32_t mem[SK_MEMINFO_VARS] = { 0 };

		/* payload only, as if headers cost nothing */
		mem[SK_MEMINFO_SNDBUF] = (uint32_t)fake_sndbuf();
		mem[SK_MEMINFO_WMEM_QUEUED] = (uint32_t)d->outq;
		if (*len > sizeof(mem))
			*len = sizeof(mem);
		memcpy(val, mem, *len);
		return 0;
	} else {
		return fake_fail(ENOPROTOOPT);
	}
	memcpy(val, &v, sizeof(v));
	*len = sizeof(int);
	return 0;
}

int fake_ioctl(int fd, unsigned long req, ...)
{
	struct fake_fd *d = fake_fd_get(fd);
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (!d)
		return fake_fail(EBADF);
	if (req == TUNSETVNETHDRSZ && d->kind == FAKE_TAP) {
		int sz;

		memcpy(&sz, arg, sizeof(sz));
		fk.tap_vnet = (size_t)sz;
		return 0;
	}
	if (req == TUNSETOFFLOAD && d->kind == FAKE_TAP) {
		unsigned long flags = (unsigned long)arg;

		if (flags & ~(unsigned long)FAKE_TUN_OFFLOADS)
			return fake_fail(EINVAL);
		/* Linux 6.2: both or neither, and checksum offload with them */
		if (!!(flags & TUN_F_USO4) != !!(flags & TUN_F_USO6))
			return fake_fail(EINVAL);
		if (flags & (TUN_F_USO4 | TUN_F_USO6) &&
		    (fk.tap_no_uso || !(flags & TUN_F_CSUM)))
			return fake_fail(EINVAL);
		fk.tap_offloads = (unsigned)flags;
		return 0;
	}
	return fake_fail(ENOTTY);
}

/**
 * fake_pipe_read_end() - the read end of a pipe, whichever end is given
 * @d:		a pipe descriptor
 *
 * Return: the read end, which holds the pipe's state
 */
static struct fake_fd *fake_pipe_read_end(struct fake_fd *d)
{
	struct fake_fd *r = d->pipe_write ? fake_fd_get(d->pipe_peer) : d;

	if (!r)
		fake_die("a pipe's other end is closed before it");
	return r;
}

int fake_fcntl(int fd, int cmd, ...)
{
	struct fake_fd *d = fake_fd_get(fd);
	va_list ap;
	long arg;

	if (!d)
		return fake_fail(EBADF);
	if (cmd == F_GETFL)
		return O_RDWR;
	if (cmd == F_SETFL)
		return 0;
	if (d->kind == FAKE_PIPE && cmd == F_GETPIPE_SZ)
		return (int)fake_pipe_read_end(d)->pipe_cap;
	if (d->kind == FAKE_PIPE && cmd == F_SETPIPE_SZ) {
		struct fake_fd *r = fake_pipe_read_end(d);

		va_start(ap, cmd);
		arg = va_arg(ap, long);
		va_end(ap);
		if (arg > FAKE_PIPE_CAP_MAX)
			return fake_fail(EPERM);
		if (arg < (long)r->pipe_len)
			return fake_fail(EBUSY);
		r->pipe_cap = arg < 4096 ? 4096 : (size_t)arg;
		return (int)r->pipe_cap;
	}
	return fake_fail(EINVAL);
}

int fake_pipe2(int fds[2], int flags)
{
	struct fake_fd *r, *w;
	int rfd, wfd;

	if (!(flags & O_NONBLOCK))
		fake_die("pipe2() without O_NONBLOCK: a splice would block");
	if (fake_fds_full())
		return fake_fail(EMFILE);
	rfd = fake_fd_open(FAKE_PIPE);
	if (rfd < 0)
		return -1;
	wfd = fake_fd_open(FAKE_PIPE);
	if (wfd < 0) {
		fake_fd_release(fake_fd_get(rfd));
		return -1;
	}
	r = fake_fd_get(rfd);
	w = fake_fd_get(wfd);
	r->pipe_peer = wfd;
	r->pipe_cap = FAKE_PIPE_CAP;
	w->pipe_write = true;
	w->pipe_peer = rfd;
	fds[0] = rfd;
	fds[1] = wfd;
	return 0;
}

/**
 * fake_stream_send() - the data plane writes to a stream socket
 * @d:		socket
 * @total:	bytes offered
 *
 * Return: bytes taken, or -1 with errno set
 */
static ssize_t fake_stream_send(struct fake_fd *d, size_t total)
{
	size_t room, limit;

	if (d->so_error) {
		int e = d->so_error;

		d->so_error = 0;
		return fake_fail(e);
	}
	if (d->shut_wr || (d->peer_eof && d->edge & EPOLLHUP))
		return fake_fail(EPIPE);
	if (!d->connected)
		return fake_fail(d->connecting ? EAGAIN : ENOTCONN);
	if (fk.knob[KNOB_SEND_LIMIT] == 255 || d->send_full)
		return fake_fail(EAGAIN);

	room = fake_sndbuf() > d->outq ? fake_sndbuf() - d->outq : 0;
	limit = fk.knob[KNOB_SEND_LIMIT] ? fk.knob[KNOB_SEND_LIMIT] * 1024U :
					   room;
	if (limit > room)
		limit = room;
	if (!limit && total)
		return fake_fail(EAGAIN);
	/* Linux writes less than asked only when the buffer is full: the next
	 * send finds no room (the data plane must not assume it will) */
	if (total > limit) {
		total = limit;
		d->send_full = true;
	}
	d->outq += total;
	return (ssize_t)total;
}

/**
 * fake_dgram_send() - the data plane sends a datagram
 * @d:		socket
 * @len:	its length
 * @to:		destination given to sendto(), or NULL
 *
 * Return: @len, or -1 with errno set
 */
static ssize_t fake_dgram_send(struct fake_fd *d, size_t len,
			       const struct sockaddr *to)
{
	int e = fake_knob_errno(KNOB_DGRAM_SEND_ERR);

	if (!to && !d->connected)
		return fake_fail(EDESTADDRREQ);
	if (to && to->sa_family != d->family &&
	    !(d->family == AF_INET6 && to->sa_family == AF_INET6))
		return fake_fail(EAFNOSUPPORT);
	if (e)
		return fake_fail(e);
	if (len > 65507)
		return fake_fail(EMSGSIZE);
	return (ssize_t)len;
}

ssize_t fake_send(int fd, const void *buf, size_t len, int flags)
{
	struct fake_fd *d = fake_sock_get(fd);

	(void)flags;
	if (!d)
		return -1;
	if (!buf && len)
		fake_die("send(%d) from NULL", fd);
	if (d->type == SOCK_STREAM)
		return fake_stream_send(d, len);
	return fake_dgram_send(d, len, NULL);
}

ssize_t fake_sendto(int fd, const void *buf, size_t len, int flags,
		    const struct sockaddr *to, socklen_t tolen)
{
	struct fake_fd *d = fake_sock_get(fd);

	(void)flags;
	if (!d)
		return -1;
	if ((!buf && len) || (to && tolen < sizeof(struct sockaddr_in)))
		fake_die("sendto(%d) with bad arguments", fd);
	if (d->type == SOCK_STREAM)
		return fake_stream_send(d, len);
	return fake_dgram_send(d, len, to);
}

ssize_t fake_sendmsg(int fd, const struct msghdr *mh, int flags)
{
	struct fake_fd *d = fake_sock_get(fd);
	size_t total = 0, i;

	(void)flags;
	if (!d)
		return -1;
	for (i = 0; i < mh->msg_iovlen; i++) {
		if (!mh->msg_iov[i].iov_base && mh->msg_iov[i].iov_len)
			fake_die("sendmsg(%d) from NULL", fd);
		total += mh->msg_iov[i].iov_len;
	}
	if (d->type == SOCK_STREAM)
		return fake_stream_send(d, total);
	return fake_dgram_send(d, total, mh->msg_name);
}

/**
 * fake_udp_segment() - the UDP_SEGMENT size a message asks for, checked
 * @fd:		socket, for messages
 * @mh:		the message
 * @total:	its payload bytes
 *
 * The data plane promises one control message at most, UDP_SEGMENT only,
 * for a datagram socket, with more than one and at most FAKE_GSO_SEGS
 * segments and FAKE_GSO_BYTES bytes: anything else is a broken rule.
 *
 * Return: the segment size, 0 for none
 */
static unsigned fake_udp_segment(int fd, const struct msghdr *mh,
				 size_t total)
{
	const struct cmsghdr *c;
	uint16_t seg;

	if (!mh->msg_controllen)
		return 0;
	c = CMSG_FIRSTHDR(mh);
	if (!c || c->cmsg_level != SOL_UDP || c->cmsg_type != FAKE_UDP_SEGMENT ||
	    c->cmsg_len != CMSG_LEN(sizeof(seg)) ||
	    CMSG_NXTHDR((struct msghdr *)mh, (struct cmsghdr *)c))
		fake_die("sendmmsg(%d): a control message other than one "
			 "UDP_SEGMENT", fd);
	memcpy(&seg, CMSG_DATA(c), sizeof(seg));
	if (!seg || total <= seg || (total + seg - 1) / seg > FAKE_GSO_SEGS ||
	    total > FAKE_GSO_BYTES)
		fake_die("sendmmsg(%d): UDP_SEGMENT of %u on %zu bytes", fd,
			 (unsigned)seg, total);
	return seg;
}

int fake_sendmmsg(int fd, struct mmsghdr *mm, unsigned int vlen, int flags)
{
	struct fake_fd *d = fake_sock_get(fd);
	unsigned n;

	(void)flags;
	if (!d)
		return -1;
	if (d->type != SOCK_DGRAM || !vlen)
		fake_die("sendmmsg(%d) on a stream or of nothing", fd);
	for (n = 0; n < vlen; n++) {
		const struct msghdr *mh = &mm[n].msg_hdr;
		size_t total = 0, i;
		unsigned seg;
		ssize_t rc;
		int e = 0;

		for (i = 0; i < mh->msg_iovlen; i++) {
			if (!mh->msg_iov[i].iov_base && mh->msg_iov[i].iov_len)
				fake_die("sendmmsg(%d) from NULL", fd);
			total += mh->msg_iov[i].iov_len;
		}
		seg = fake_udp_segment(fd, mh, total);
		if (seg && fk.knob[KNOB_UDP_OFFLOAD] & 4)
			e = EINVAL;
		else if (seg && fk.knob[KNOB_UDP_OFFLOAD] & 8)
			e = EIO;
		rc = e ? fake_fail(e) :
			 fake_dgram_send(d, seg ? seg : total, mh->msg_name);
		if (rc < 0)
			return n ? (int)n : -1;	/* errno set for n == 0 */
		mm[n].msg_len = (unsigned)total;
	}
	return (int)n;
}

/**
 * fake_stream_err() - error a stream read sees before data, if any
 * @d:		socket
 *
 * Return: errno to fail with, 0 if none
 */
static int fake_stream_err(struct fake_fd *d)
{
	int e = fake_knob_errno(KNOB_RECV_ERR);

	if (d->so_error) {
		e = d->so_error;
		d->so_error = 0;
		return e;
	}
	if (!d->connected && !d->peer_eof)
		return ENOTCONN;
	return e == EAGAIN ? 0 : e;
}

ssize_t fake_recv(int fd, void *buf, size_t len, int flags)
{
	struct fake_fd *d = fake_sock_get(fd);
	size_t n;
	int e;

	if (!d)
		return -1;
	if (d->type != SOCK_STREAM || !(flags & MSG_TRUNC) || buf)
		fake_die("recv(%d) used other than to drop stream bytes", fd);
	e = fake_stream_err(d);
	if (e)
		return fake_fail(e);
	if (!d->rx_len)
		return d->peer_eof ? 0 : fake_fail(EAGAIN);

	n = len < d->rx_len ? len : d->rx_len;
	memmove(d->rx, d->rx + n, d->rx_len - n);
	d->rx_len -= n;
	if (d->peek_off >= 0)
		d->peek_off = d->peek_off > (long)n ? d->peek_off - (long)n : 0;
	return (ssize_t)n;
}

/**
 * fake_errqueue() - recvmsg(MSG_ERRQUEUE): an ICMP destination unreachable
 * @d:		datagram socket
 * @mh:		message header of the call
 *
 * Return: bytes of the offending datagram copied, -1 with EAGAIN if none
 */
static ssize_t fake_errqueue(struct fake_fd *d, struct msghdr *mh)
{
	struct sock_extended_err ee = {
		.ee_errno = EHOSTUNREACH,
		.ee_origin = SO_EE_ORIGIN_ICMP,
		.ee_type = 3,
		.ee_code = (uint8_t)(d->errq * 5 % 16),
	};
	static const uint8_t payload[8] = "fuzzerr";
	struct cmsghdr *c;
	size_t n;

	if (!d->errq)
		return fake_fail(EAGAIN);
	d->errq--;

	if (d->family == AF_INET6)
		ee.ee_origin = SO_EE_ORIGIN_ICMP6;
	c = CMSG_FIRSTHDR(mh);
	if (c && mh->msg_controllen >= CMSG_SPACE(sizeof(ee))) {
		c->cmsg_level = d->family == AF_INET ? SOL_IP : SOL_IPV6;
		c->cmsg_type = d->family == AF_INET ? IP_RECVERR : IPV6_RECVERR;
		c->cmsg_len = CMSG_LEN(sizeof(ee));
		memcpy(CMSG_DATA(c), &ee, sizeof(ee));
		mh->msg_controllen = CMSG_SPACE(sizeof(ee));
	} else {
		mh->msg_controllen = 0;
		mh->msg_flags |= MSG_CTRUNC;
	}
	n = mh->msg_iovlen && mh->msg_iov[0].iov_len < sizeof(payload) ?
	    mh->msg_iov[0].iov_len : sizeof(payload);
	if (mh->msg_iovlen)
		memcpy(mh->msg_iov[0].iov_base, payload, n);
	return (ssize_t)n;
}

ssize_t fake_recvmsg(int fd, struct msghdr *mh, int flags)
{
	struct fake_fd *d = fake_sock_get(fd);
	size_t off, avail, done = 0, i;
	int e;

	if (!d)
		return -1;
	if (flags & MSG_ERRQUEUE)
		return fake_errqueue(d, mh);
	if (d->type != SOCK_STREAM || !(flags & MSG_PEEK))
		fake_die("recvmsg(%d) other than a stream peek", fd);

	e = fake_stream_err(d);
	if (e)
		return fake_fail(e);
	off = d->peek_off >= 0 ? (size_t)d->peek_off : 0;
	avail = off < d->rx_len ? d->rx_len - off : 0;
	if (!avail)
		return d->peer_eof ? 0 : fake_fail(EAGAIN);

	for (i = 0; i < mh->msg_iovlen && done < avail; i++) {
		size_t n = mh->msg_iov[i].iov_len;

		if (n > avail - done)
			n = avail - done;
		memcpy(mh->msg_iov[i].iov_base, d->rx + off + done, n);
		done += n;
	}
	if (d->peek_off >= 0)
		d->peek_off += (long)done;
	return (ssize_t)done;
}

/**
 * fake_origin() - the source address of a datagram or an accepted client
 * @origin:	input's choice
 * @family:	family of the socket it arrives on
 * @sa:		filled
 *
 * Return: length of the address
 */
static socklen_t fake_origin(uint8_t origin, int family,
			     struct sockaddr_storage *sa)
{
	static const uint8_t v6[4][16] = {
		{ [15] = 1 },				/* ::1 */
		{ 0x20, 0x01, 0x0d, 0xb8, [15] = 5 },	/* 2001:db8::5 */
		{ [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 },
		{ [10] = 0xff, [11] = 0xff, 198, 51, 100, 7 },
	};
	uint16_t port = (uint16_t)(1024 + origin * 257);

	memset(sa, 0, sizeof(*sa));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;
		static const char *const v4[4] = {
			"127.0.0.1", "198.51.100.7", "10.0.2.2", "0.0.0.0",
		};

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		inet_pton(AF_INET, v4[origin % 4], &sin->sin_addr);
		return sizeof(*sin);
	}

	((struct sockaddr_in6 *)sa)->sin6_family = AF_INET6;
	((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	memcpy(&((struct sockaddr_in6 *)sa)->sin6_addr, v6[origin % 4], 16);
	return sizeof(struct sockaddr_in6);
}

int fake_recvmmsg(int fd, struct mmsghdr *mm, unsigned int vlen, int flags,
		  struct timespec *timeout)
{
	struct fake_fd *d = fake_sock_get(fd);
	unsigned n;

	(void)flags;
	if (!d)
		return -1;
	if (timeout || d->type != SOCK_DGRAM)
		fake_die("recvmmsg(%d) on a stream or with a timeout", fd);
	if (d->so_error) {
		int e = d->so_error;

		d->so_error = 0;
		return fake_fail(e);
	}
	if (!d->ndgrams)
		return fake_fail(EAGAIN);

	for (n = 0; n < vlen && n < d->ndgrams; n++) {
		struct msghdr *mh = &mm[n].msg_hdr;
		const struct fake_dgram *g = &d->dgrams[n];
		size_t cap = mh->msg_iovlen ? mh->msg_iov[0].iov_len : 0;
		size_t len = g->len < cap ? g->len : cap;

		if (mh->msg_iovlen != 1)
			fake_die("recvmmsg(%d) with %zu iovecs", fd,
				 (size_t)mh->msg_iovlen);
		memcpy(mh->msg_iov[0].iov_base, g->data, len);
		mh->msg_flags = g->len > cap ? MSG_TRUNC : 0;
		if (g->gso && mh->msg_controllen >= CMSG_SPACE(sizeof(int))) {
			struct cmsghdr *c = CMSG_FIRSTHDR(mh);
			int v = g->gso;

			c->cmsg_level = SOL_UDP;
			c->cmsg_type = FAKE_UDP_GRO;
			c->cmsg_len = CMSG_LEN(sizeof(v));
			memcpy(CMSG_DATA(c), &v, sizeof(v));
			mh->msg_controllen = CMSG_SPACE(sizeof(v));
		} else {
			if (g->gso)
				mh->msg_flags |= MSG_CTRUNC;
			mh->msg_controllen = 0;
		}
		if (mh->msg_name) {
			struct sockaddr_storage sa;
			socklen_t sl = fake_origin(g->origin, d->family, &sa);

			if (mh->msg_namelen < sl)
				fake_die("recvmmsg(%d) name too short", fd);
			memcpy(mh->msg_name, &sa, sl);
			mh->msg_namelen = sl;
		}
		mm[n].msg_len = (unsigned)len;
	}
	memmove(d->dgrams, d->dgrams + n, (d->ndgrams - n) * sizeof(*d->dgrams));
	d->ndgrams -= n;
	return (int)n;
}

ssize_t fake_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
		    size_t len, unsigned int flags)
{
	struct fake_fd *in = fake_fd_get(fd_in), *out = fake_fd_get(fd_out);
	struct fake_fd *pipe;
	ssize_t sent;
	size_t n;
	int e;

	if (!in || !out)
		return fake_fail(EBADF);
	if (off_in || off_out || !(flags & SPLICE_F_NONBLOCK))
		fake_die("splice(%d, %d) with offsets or blocking", fd_in,
			 fd_out);

	if (in->kind == FAKE_SOCK && out->kind == FAKE_PIPE &&
	    out->pipe_write) {	/* a stream socket into a pipe */
		if (in->type != SOCK_STREAM)
			fake_die("splice(%d) from a datagram socket", fd_in);
		pipe = fake_pipe_read_end(out);
		e = fake_stream_err(in);
		if (e)
			return fake_fail(e);
		if (pipe->pipe_len >= pipe->pipe_cap)
			return fake_fail(EAGAIN);
		if (!in->rx_len)
			return in->peer_eof ? 0 : fake_fail(EAGAIN);
		n = len < in->rx_len ? len : in->rx_len;
		if (n > pipe->pipe_cap - pipe->pipe_len)
			n = pipe->pipe_cap - pipe->pipe_len;
		memmove(in->rx, in->rx + n, in->rx_len - n);
		in->rx_len -= n;
		pipe->pipe_len += n;
		return (ssize_t)n;
	}
	if (in->kind == FAKE_PIPE && !in->pipe_write &&
	    out->kind == FAKE_SOCK) {	/* a pipe into a stream socket */
		if (out->type != SOCK_STREAM)
			fake_die("splice(%d) into a datagram socket", fd_out);
		if (!in->pipe_len)
			return fake_fail(EAGAIN);
		sent = fake_stream_send(out, len < in->pipe_len ? len :
							    in->pipe_len);
		if (sent > 0)
			in->pipe_len -= (size_t)sent;
		return sent;
	}
	fake_die("splice(%d, %d): not socket to pipe nor pipe to socket",
		 fd_in, fd_out);
}

int fake_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct fake_fd *l = fake_sock_get(fd), *c;
	struct sockaddr_storage ss;
	socklen_t sl;
	int e = fake_knob_errno(KNOB_ACCEPT_ERR), cfd;

	(void)flags;
	if (!l)
		return -1;
	if (!l->listening || l->type != SOCK_STREAM)
		return fake_fail(EINVAL);
	if (!l->accepts)
		return fake_fail(EAGAIN);
	if (e) {
		/* out of descriptors or memory: Linux fails before taking
		 * the connection off the queue, so it is still there */
		if (e != EAGAIN && e != EINTR && e != EMFILE && e != ENFILE &&
		    e != ENOBUFS && e != ENOMEM)
			l->accepts--;
		return fake_fail(e);
	}
	cfd = fake_socket(l->family, SOCK_STREAM, 0);
	if (cfd < 0)
		return -1;
	l->accepts--;
	c = fake_fd_get(cfd);
	c->connected = true;
	sl = fake_origin((uint8_t)l->accepts, l->family, &ss);
	if (sa && len) {
		memcpy(sa, &ss, *len < sl ? *len : sl);
		*len = sl;
	}
	return cfd;
}

int fake_close(int fd)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d)
		fake_die("close(%d): not open (closed twice?)", fd);
	if (d->owner_harness)
		fake_die("close(%d): the data plane closes a harness socket",
			 fd);
	fake_fd_release(d);
	return 0;
}

ssize_t fake_read(int fd, void *buf, size_t len)
{
	struct fake_fd *d = fake_fd_get(fd);
	size_t n;
	unsigned slot;

	if (!d || d->kind != FAKE_TAP)
		fake_die("read(%d): not the TAP", fd);
	switch (fk.knob[KNOB_TAP_READ] % 4) {
	case 1:
		return 0;
	case 2:
		return fake_fail(EIO);
	case 3:
		fk.knob[KNOB_TAP_READ] = 0;
		return fake_fail(EINVAL);
	}
	if (!fk.tap_count)
		return fake_fail(EAGAIN);

	slot = fk.tap_head;
	fk.tap_head = (fk.tap_head + 1) % FAKE_TAP_FRAMES;
	fk.tap_count--;
	n = fk.tap_len[slot] < len ? fk.tap_len[slot] : len;	/* TAP truncates */
	memcpy(buf, fk.tap_frames + (size_t)slot * FAKE_TAP_FRAME_LEN, n);
	return (ssize_t)n;
}

/**
 * fake_csum_ok() - check an Internet checksum
 * @data:	bytes covered
 * @len:	their length
 * @sum:	pseudo-header sum to start from
 *
 * Return: true if the one's complement sum is all ones
 */
static bool fake_csum_ok(const uint8_t *data, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(data[i] << 8 | data[i + 1]);
	if (len & 1)
		sum += (uint32_t)data[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/**
 * fake_gso_udp_check() - check a GSO_UDP_L4 frame as the guest's kernel
 * would cut it
 * @vh:		its virtio-net header
 * @f:		the frame behind it
 * @len:	frame length
 *
 * USO must have been negotiated (TUNSETOFFLOAD with TUN_F_USO4/6); the
 * checksum left partial exactly in the UDP header of an unfragmented IPv4
 * packet (or an IPv6 one whose first next header is UDP); hdr_len the
 * headers; the UDP length the whole payload of the IP datagram (a short
 * frame is padded to 60 bytes, which the guest's IP layer trims off before
 * UDP sees it), which holds more than one and
 * at most FAKE_GSO_SEGS datagrams of gso_size, each fitting the MTU with its
 * headers (Linux 6.11 and later refuse more segments than UDP_MAX_SEGMENTS).
 */
static void fake_gso_udp_check(const uint8_t *vh, const uint8_t *f, size_t len)
{
	size_t start = (size_t)(vh[6] | vh[7] << 8);
	size_t off = (size_t)(vh[8] | vh[9] << 8);
	size_t gso_size = (size_t)(vh[4] | vh[5] << 8);
	size_t hdr_len = (size_t)(vh[2] | vh[3] << 8);
	size_t l3_len, ip_len, payload;
	bool v4;

	if (!(fk.tap_offloads & TUN_F_USO4))
		fake_die("GSO_UDP_L4 frame without USO negotiated");
	if (len < 14 + 40 || !(vh[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		fake_die("GSO_UDP_L4 frame of %zu bytes or without NEEDS_CSUM",
			 len);
	v4 = f[12] == 0x08 && f[13] == 0x00;
	if (v4) {
		l3_len = (size_t)(f[14] & 0xf) * 4;
		if (f[14 + 9] != IPPROTO_UDP || (f[14 + 6] & 0x3f) || f[14 + 7])
			fake_die("GSO_UDP_L4 on protocol %u or a fragment",
				 f[14 + 9]);
	} else if (f[12] == 0x86 && f[13] == 0xdd) {
		l3_len = 40;
		if (f[14 + 6] != IPPROTO_UDP)
			fake_die("GSO_UDP_L4 on IPv6 next header %u", f[14 + 6]);
	} else {
		fake_die("GSO_UDP_L4 on ethertype %02x%02x", f[12], f[13]);
	}
	ip_len = v4 ? (size_t)(f[16] << 8 | f[17]) :
		      40 + (size_t)(f[18] << 8 | f[19]);
	if (14 + ip_len > len || (14 + ip_len < len && len != 60))
		fake_die("GSO_UDP_L4 IP datagram of %zu bytes in a %zu-byte frame",
			 ip_len, len);
	len = 14 + ip_len;	/* the padding of a short frame trimmed */
	if (start != 14 + l3_len || off != 6 || hdr_len != start + 8 ||
	    start + 8 > len)
		fake_die("GSO_UDP_L4 csum_start %zu offset %zu hdr_len %zu",
			 start, off, hdr_len);
	if ((size_t)(f[start + 4] << 8 | f[start + 5]) != len - start)
		fake_die("GSO_UDP_L4 UDP length %u of %zu bytes",
			 f[start + 4] << 8 | f[start + 5], len - start);
	payload = len - start - 8;
	if (!gso_size || payload <= gso_size ||
	    (payload + gso_size - 1) / gso_size > FAKE_GSO_SEGS ||
	    payload > FAKE_GSO_BYTES || l3_len + 8 + gso_size > fk.tap_mtu)
		fake_die("GSO_UDP_L4 gso_size %zu on %zu bytes, MTU %u",
			 gso_size, payload, fk.tap_mtu);
}

/**
 * fake_vnet_apply() - do what the kernel does with a virtio-net header on
 * write: check it, and complete a partial checksum
 * @vh:		the header (struct virtio_net_hdr_v1, little-endian fields)
 * @f:		the frame behind it, a copy the checksum is completed in
 * @len:	frame length
 *
 * Return: true for a GSO frame (one segment per gso_size bytes of payload,
 *	   so it may exceed the MTU)
 */
static bool fake_vnet_apply(const uint8_t *vh, uint8_t *f, size_t len)
{
	size_t start = (size_t)(vh[6] | vh[7] << 8);
	size_t off = (size_t)(vh[8] | vh[9] << 8);
	size_t gso_size = (size_t)(vh[4] | vh[5] << 8);
	uint8_t flags = vh[0], gso_type = vh[1];
	uint32_t sum = 0;
	size_t i;

	if (flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		fake_die("virtio-net header flags %02x to the guest (type %u, "
			 "%zu-byte frame)", flags, gso_type, len);
	if (gso_type == VIRTIO_NET_HDR_GSO_UDP_L4)
		fake_gso_udp_check(vh, f, len);
	else if (gso_type != VIRTIO_NET_HDR_GSO_NONE &&
		 ((gso_type != VIRTIO_NET_HDR_GSO_TCPV4 &&
		   gso_type != VIRTIO_NET_HDR_GSO_TCPV6) || !gso_size ||
		  gso_size > fk.tap_mtu || len > 14 + 65535 ||
		  !(flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)))
		fake_die("virtio-net GSO type %u size %zu on %zu bytes",
			 gso_type, gso_size, len);
	if (!(flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return false;

	if (start + off + 2 > len)
		fake_die("partial checksum at %zu+%zu of %zu bytes", start, off,
			 len);
	for (i = start; i + 1 < len; i += 2)
		sum += (uint32_t)(f[i] << 8 | f[i + 1]);
	if ((len - start) & 1)
		sum += (uint32_t)f[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	f[start + off] = (uint8_t)(sum >> 8);
	f[start + off + 1] = (uint8_t)sum;
	return gso_type != VIRTIO_NET_HDR_GSO_NONE;
}

/**
 * fake_check_frame() - abort on a frame no correct stack would send
 * @f:		Ethernet frame, virtio-net header excluded, any partial
 *		checksum completed
 * @len:	its length
 * @gso:	a GSO frame: up to 64 KiB of IP packet, whatever the MTU
 */
static void fake_check_frame(const uint8_t *f, size_t len, bool gso)
{
	const uint8_t *ip = f + 14;
	size_t ihl, tot, l4_len;
	uint32_t ph = 0;
	const uint8_t *l4;

	if (len < 14 || (!gso && len > 14 + (size_t)fk.tap_mtu))
		fake_die("frame of %zu bytes, MTU %u, ethertype %02x%02x, "
			 "IP protocol %u", len, fk.tap_mtu, f[12], f[13],
			 len > 23 ? f[23] : 0);
	if ((f[12] << 8 | f[13]) != 0x0800)
		return;

	if (len < 14 + 20)
		fake_die("IPv4 frame of %zu bytes", len);
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = (size_t)(ip[2] << 8 | ip[3]);
	if (ip[0] >> 4 != 4 || ihl < 20 || tot < ihl || 14 + tot > len ||
	    (14 + tot < len && len > 60))
		fake_die("IPv4 lengths: ihl %zu total %zu frame %zu", ihl, tot,
			 len);
	if (!fake_csum_ok(ip, ihl, 0))
		fake_die("IPv4 header checksum wrong");
	if ((ip[6] & 0x3f) || ip[7])
		return;		/* a fragment: the transport sum spans several */

	l4 = ip + ihl;
	l4_len = tot - ihl;
	ph += (uint32_t)(ip[12] << 8 | ip[13]) + (uint32_t)(ip[14] << 8 | ip[15]);
	ph += (uint32_t)(ip[16] << 8 | ip[17]) + (uint32_t)(ip[18] << 8 | ip[19]);
	ph += ip[9] + (uint32_t)l4_len;
	switch (ip[9]) {
	case IPPROTO_ICMP:
		if (!fake_csum_ok(l4, l4_len, 0))
			fake_die("ICMP checksum wrong");
		break;
	case IPPROTO_TCP:
		if (l4_len < 20 || !fake_csum_ok(l4, l4_len, ph))
			fake_die("TCP segment of %zu bytes, or checksum wrong",
				 l4_len);
		break;
	case IPPROTO_UDP:
		if (l4_len < 8 || (size_t)(l4[4] << 8 | l4[5]) != l4_len)
			fake_die("UDP length wrong");
		if ((l4[6] || l4[7]) && !fake_csum_ok(l4, l4_len, ph))
			fake_die("UDP checksum wrong");
		break;
	}
}

ssize_t fake_write(int fd, const void *buf, size_t len)
{
	struct fake_fd *d = fake_fd_get(fd);

	if (!d || d->kind != FAKE_TAP)
		fake_die("write(%d): not the TAP", fd);
	if (len < fk.tap_vnet)
		fake_die("write of %zu bytes, less than a virtio-net header",
			 len);
	if (!fk.ctl_unchecked) {
		static uint8_t frame[14 + 65535];
		size_t flen = len - fk.tap_vnet;
		bool gso = false;

		if (flen > sizeof(frame))
			fake_die("write of a %zu-byte frame", flen);
		memcpy(frame, (const uint8_t *)buf + fk.tap_vnet, flen);
		if (fk.tap_vnet)
			gso = fake_vnet_apply(buf, frame, flen);
		fake_check_frame(frame, flen, gso);
	}
	fk.frames_out++;
	if (fk.trace) {
		size_t i;

		fprintf(stderr, "OUT ");
		for (i = fk.tap_vnet; i < len; i++)
			fprintf(stderr, "%02x", ((const uint8_t *)buf)[i]);
		fprintf(stderr, "\n");
	}
	switch (fk.knob[KNOB_TAP_WRITE] % 4) {
	case 1:
		return fake_fail(EAGAIN);
	case 2:
		return (ssize_t)(len / 2);
	case 3:
		fk.knob[KNOB_TAP_WRITE] = 0;
		return fake_fail(EINTR);
	}
	return (ssize_t)len;
}

int fake_epoll_create1(int flags)
{
	(void)flags;
	return fake_fd_open(FAKE_EPOLL);
}

int fake_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct fake_fd *e = fake_fd_get(epfd), *d = fake_fd_get(fd);

	if (!e || e->kind != FAKE_EPOLL)
		fake_die("epoll_ctl() on %d, not an epoll descriptor", epfd);
	if (!d)
		fake_die("epoll_ctl(%d) on fd %d, which is not open", op, fd);
	if (op != EPOLL_CTL_DEL && fake_knob_errno(KNOB_EPOLL_ERR))
		return fake_fail(ENOMEM);

	switch (op) {
	case EPOLL_CTL_ADD:
		if (d->epoll_on)
			return fake_fail(EEXIST);
		break;
	case EPOLL_CTL_MOD:
	case EPOLL_CTL_DEL:
		if (!d->epoll_on)
			return fake_fail(ENOENT);
		break;
	default:
		return fake_fail(EINVAL);
	}
	if (op == EPOLL_CTL_DEL) {
		d->epoll_on = false;
		return 0;
	}
	d->epoll_on = true;
	d->epoll_events = ev->events;
	d->epoll_data = ev->data.u64;
	d->edge = ~0U;	/* ADD and MOD report what is ready now */
	return 0;
}

/**
 * fake_ready() - readiness of a descriptor, as epoll computes it
 * @d:		descriptor
 *
 * Return: EPOLL* bits
 */
static uint32_t fake_ready(const struct fake_fd *d)
{
	uint32_t r = 0;

	if (d->kind == FAKE_TAP)
		return fk.tap_count || fk.knob[KNOB_TAP_READ] % 4 ? EPOLLIN : 0;
	if (d->kind != FAKE_SOCK)
		return 0;

	if (d->so_error)
		r |= EPOLLERR;
	if (d->listening)
		return r | (d->accepts || d->ndgrams ? EPOLLIN : 0);
	if (d->type == SOCK_DGRAM)
		return r | EPOLLOUT | (d->ndgrams ? EPOLLIN : 0) |
		       (d->errq ? EPOLLERR : 0);

	if (d->rx_len || d->peer_eof)
		r |= EPOLLIN;
	if (d->peer_eof)
		r |= EPOLLRDHUP;
	if (d->peer_eof && (d->shut_wr || d->so_error == ECONNRESET))
		r |= EPOLLHUP;
	if (!d->connecting && (d->connected || d->so_error) &&
	    !d->send_full && d->outq * 3 <= fake_sndbuf() * 2)
		r |= EPOLLOUT;
	return r;
}

int fake_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
	struct fake_fd *e = fake_fd_get(epfd);
	unsigned i;
	int n = 0;

	(void)timeout;
	if (!e || e->kind != FAKE_EPOLL)
		fake_die("epoll_wait() on %d, not an epoll descriptor", epfd);

	for (i = 0; i < FAKE_FD_MAX && n < max; i++) {
		struct fake_fd *d = &fk.fds[(fk.epoll_rotor + i) % FAKE_FD_MAX];
		uint32_t r;

		if (d->kind == FAKE_FREE || !d->epoll_on)
			continue;
		r = fake_ready(d) &
		    (d->epoll_events | EPOLLERR | EPOLLHUP);
		if (d->epoll_events & EPOLLET) {
			r &= d->edge;
			d->edge &= ~r;
		}
		if (!r)
			continue;
		ev[n].events = r;
		ev[n].data.u64 = d->epoll_data;
		n++;
		if (fk.trace)
			fprintf(stderr, "EVENT fd %d kind %d type %d events %x\n",
				(int)(d - fk.fds), d->kind, d->type, r);
	}
	fk.epoll_rotor++;
	return n;
}

int fake_clock_gettime(clockid_t clk, struct timespec *ts)
{
	(void)clk;
	ts->tv_sec = (time_t)(fk.now_ns / 1000000000ULL);
	ts->tv_nsec = (long)(fk.now_ns % 1000000000ULL);
	return 0;
}

ssize_t fake_getrandom(void *buf, size_t len, unsigned flags)
{
	uint8_t *p = buf;
	size_t i;

	(void)flags;
	for (i = 0; i < len; i++) {
		fk.random ^= fk.random << 13;
		fk.random ^= fk.random >> 7;
		fk.random ^= fk.random << 17;
		p[i] = (uint8_t)fk.random;
	}
	return (ssize_t)len;
}
