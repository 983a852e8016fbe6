/* fuzz_frames.c - libFuzzer harness over the data plane's frame path
 *
 * One fuzz input is a small program for a guest and a host world: frames the
 * guest writes to the TAP, what the host sockets return (bytes, datagrams,
 * connect() results, resets, ICMP errors, errno answers), the passing of
 * (virtual) time, forwarded ports opening and closing, and the control
 * plane's DHCP (and DHCPv6) ring.  The harness runs it against one data
 * plane built from csrc/ unchanged, whose system calls go to the fake kernel
 * of fake_sys.c.
 *
 * Input encoding (every read past the end yields zeros, so any input is
 * valid):
 *   byte 0:	configuration bits: 1 vnet_hdr, 2 disable_dns,
 *		4 disable_host_loopback, 8 DNS upstream set, 16 outbound address,
 *		32 IPv6, 64 IPv6 DNS upstream, 128 pasta's network model
 *		(harness_rules(): neigh_all, a --dns-forward and a
 *		--map-guest-addr address, DHCPv6 to the control ring and
 *		the Managed flag in router advertisements; 4 is --no-map-gw
 *		then, 2 --no-ra, and 2 with 1 --no-ndp, 4 with 1 --no-icmp)
 *   byte 1:	bits 0-2 MTU choice (harness_mtus[]), bits 3-5 socket budget
 *		(harness_budgets[]), bits 6-7 descriptor limit of the fake
 *		kernel (harness_fd_limits[]: socket() and accept4() say EMFILE
 *		beyond it, for the whole input)
 *   byte 2:	bit 0: the fake kernel refuses TUN_F_USO4/6 (before Linux 6.2)
 *   then operations, each an opcode byte (enum op, modulo OP_COUNT) and its
 *   arguments as described at each case of run_op().
 *
 * Besides the sanitizers, the harness checks, and aborts on:
 * - a descriptor left open after dp_free(), one closed twice, or a harness
 *   descriptor (a forward's listener) closed by the data plane (fake_sys.c);
 * - a frame written to the TAP above the MTU or with a wrong checksum;
 * - dp_poll() returning other than a count, DP_POLL_TAP_GONE or
 *   DP_POLL_ERROR, or forgetting that the TAP is gone;
 * - a timer that stays due after dp_poll() ran it (a busy loop for Python),
 *   and socket events that never drain without new input (the same: a
 *   listener that keeps failing accept4() for want of descriptors must
 *   pause);
 * - host sockets counted by dp_sock_stats() other than those open in the
 *   fake kernel, or more of them than the budget allows;
 * - after dp_poll(), an open flow in no state of its protocol (FLOW_ST_*,
 *   e.g. one left FLOW_ST_NEW), or open flows by state that do not add up to
 *   flows_created less flows_closed.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "dp_api.h"
#include "fake_sys.h"

#define HARNESS_OPS_MAX		4096	/* operations run per input */
#define HARNESS_QUIET_POLLS	32	/* polls without input to go idle */
#define HARNESS_TIMER_POLLS	4	/* polls for a due timer to be run */
#define HARNESS_LISTENERS	4	/* forward 1: TCP, forward 2: UDP, forward 3:
				 * TCP spliced, forward 4: UDP spliced (a
				 * socket in the guest's namespace, pasta's
				 * -T and -U) */

enum op {
	OP_FRAME,	/* u16 length, frame bytes: queued on the TAP */
	OP_POLL,	/* u8 budget: dp_poll() */
	OP_TIME,	/* u8 unit, u16 amount: advance the clock */
	OP_STREAM,	/* u8 socket, u16 length, bytes: host peer sends */
	OP_DGRAM,	/* u8 socket, u8 origin, u16 length, bytes */
	OP_SOCK_EVENT,	/* u8 socket, u8 what: fake_sock_event() */
	OP_KNOB,	/* u8 knob, u8 value */
	OP_ACCEPT,	/* host client connects to the TCP forward */
	OP_CTL,		/* u8 what, [u16 length, frame]: the DHCP ring */
	OP_FWD,		/* u8 what: forwards removed and added back */
	OP_API,		/* u8 what: timeouts, counters, notices, the host
			 * resolver changing (dp_dns_upstream()) */
	OP_NS_CONNECT,	/* a client in the guest's namespace connects to
			 * the spliced TCP socket (forward 3) */
	OP_VNET_FRAME,	/* u8 what, u16 gso_size, [12 header bytes if what
			 * & 8], u16 length, frame bytes: a frame behind
			 * the virtio-net header what describes (vnet_frame()) */
	OP_COUNT
};

/* Forward targets: the guest's IPv4 address (IPv4-mapped) and an address in
 * the IPv6 prefix, fd00::/64 */
static const uint8_t harness_guest4[16] = { [10] = 0xff, [11] = 0xff,
					    10, 0, 2, 100 };
static const uint8_t harness_net6[16] = { 0xfd };
static const uint8_t harness_guest6[16] = { 0xfd, [15] = 0x64 };

static const uint32_t harness_mtus[] = { 1500, 65520, 576, 68, 9000, 1280,
					 65521, 1499 };
/* cfg.sock_budget choices (the two listeners count against it), and
 * descriptor limits of the fake kernel (the TAP, the epoll set and the two
 * listeners take four) */
static const uint32_t harness_budgets[] = { 0, 1, 3, 5, 8, 9, 17, 1000 };
static const unsigned harness_fd_limits[] = { 0, 5, 8, 12 };
_Static_assert(sizeof(harness_mtus) / sizeof(harness_mtus[0]) == 8 &&
	       sizeof(harness_budgets) / sizeof(harness_budgets[0]) == 8 &&
	       sizeof(harness_fd_limits) / sizeof(harness_fd_limits[0]) == 4,
	       "byte 1 of the input has 3, 3 and 2 bits for these");

/**
 * struct input - the fuzz input being consumed
 * @p:		next byte
 * @left:	bytes left
 */
struct input {
	const uint8_t *p;
	size_t left;
};

/**
 * take8() - next byte of the input
 * @in:		input
 *
 * Return: the byte, 0 past the end
 */
static uint8_t take8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

/**
 * take16() - next big-endian 16-bit value of the input
 * @in:		input
 *
 * Return: the value, zero bytes past the end
 */
static uint16_t take16(struct input *in)
{
	uint16_t hi = take8(in);

	return (uint16_t)(hi << 8 | take8(in));
}

/**
 * take_bytes() - the next @len bytes of the input, or as many as are left
 * @in:		input
 * @len:	wanted, updated to what is returned
 *
 * Return: pointer into the input
 */
static const uint8_t *take_bytes(struct input *in, size_t *len)
{
	const uint8_t *p = in->p;

	if (*len > in->left)
		*len = in->left;
	in->p += *len;
	in->left -= *len;
	return p;
}

/**
 * struct harness - one run's data plane and the harness's own descriptors
 * @dp:		data plane
 * @listener:	forward listeners, -1 when removed: [0] TCP, [1] UDP, [2] TCP
 *		spliced, [3] UDP spliced (not there until OP_FWD adds them)
 * @tap_gone:	dp_poll() said DP_POLL_TAP_GONE
 * @vnet:	frames carry a virtio-net header
 */
struct harness {
	struct dp *dp;
	int listener[HARNESS_LISTENERS];
	bool tap_gone;
	bool vnet;
};

/**
 * die() - a harness check failed
 * @what:	which
 */
static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "harness: %s\n", what);
	abort();
}

/**
 * check_socks() - the data plane's socket count must match the fake kernel's
 * descriptors, and stay within the budget
 * @h:		harness
 *
 * Listeners are the harness's (Python's) sockets, counted by the data plane
 * as forwards; everything else open but the TAP and the epoll set is the
 * data plane's.  Only listeners, which are never refused, may take the count
 * over the budget.
 */
static void check_socks(struct harness *h)
{
	struct dp_sock_stats st;
	unsigned listeners = 0;
	int i, held;

	if (dp_sock_stats(h->dp, &st))
		die("dp_sock_stats() failed");
	for (i = 0; i < HARNESS_LISTENERS; i++)
		listeners += h->listener[i] >= 0;
	held = fake_open_count() - 2;
	if (st.fwd < listeners || (int)(st.guest + st.fwd - listeners) != held)
		die("sockets counted by the data plane differ from those open");
	if (st.guest_max > st.budget || st.paused > listeners ||
	    (st.budget && (st.guest > st.guest_max ||
			   st.guest + st.fwd - listeners > st.budget)))
		die("sockets held beyond the budget");
}

/**
 * counter_index() - index of a counter by name
 * @name:	its name, e.g. "flows_created"
 *
 * Return: its index for dp_counters()
 */
static int counter_index(const char *name)
{
	int i, n = dp_counter_count();

	for (i = 0; i < n; i++) {
		if (!strcmp(dp_counter_name(i), name))
			return i;
	}
	die("no such counter");
}

/**
 * check_flows() - once dp_poll() returned, every open flow is in a state of
 * its protocol, and they add up to the flows created less those closed
 * @h:		harness
 *
 * A protocol that opened a flow gave it a state of its own (none is left
 * FLOW_ST_NEW), and a closed flow, waiting for the sweep or not, is no open
 * flow's count.
 */
static void check_flows(struct harness *h)
{
	static int created = -1, closed = -1;
	uint64_t states[64], counters[256], open = 0;
	int n = dp_flow_state_count(), i;

	if (created < 0) {
		created = counter_index("flows_created");
		closed = counter_index("flows_closed");
	}
	if (n <= 0 || n > 64 || dp_flow_states(h->dp, states, n) != n)
		die("dp_flow_states() out of range");
	for (i = 0; i < n; i++) {
		if (states[i] && !strncmp(dp_flow_state_name(i), "FLOW_ST_", 8))
			die("an open flow in no state of its protocol");
		open += states[i];
	}
	dp_counters(h->dp, counters, closed > created ? closed + 1 :
							created + 1);
	if (open != counters[created] - counters[closed])
		die("open flows by state differ from created less closed");
}

/**
 * poll_once() - dp_poll() and check its answer
 * @h:		harness
 * @budget:	frames budget
 *
 * Return: dp_poll()'s answer
 */
static int poll_once(struct harness *h, int budget)
{
	int rc = dp_poll(h->dp, budget);

	if (rc < DP_POLL_ERROR)
		die("dp_poll() returned an unknown code");
	if (h->tap_gone && rc != DP_POLL_TAP_GONE)
		die("dp_poll() forgot the TAP is gone");
	if (rc == DP_POLL_TAP_GONE)
		h->tap_gone = true;
	check_socks(h);
	check_flows(h);
	return rc;
}

/**
 * check_timers() - a due timer must not stay due once dp_poll() ran
 * @h:		harness
 */
static void check_timers(struct harness *h)
{
	int i;

	for (i = 0; i < HARNESS_TIMER_POLLS; i++) {
		if (dp_timeout_ms(h->dp) != 0 || h->tap_gone)
			return;
		poll_once(h, 64);
	}
	die("a timer stays due: Python would spin");
}

/**
 * fwd_add() - open a listener for forward @i and hand it to the data plane
 * @h:		harness
 * @i:		0 for TCP (id 1), 1 for UDP (id 2), 2 and 3 for a spliced TCP
 *		and UDP socket of the guest's namespace (ids 3 and 4: to the
 *		host's loopback, dp_fwd_add_splice())
 * @port:	guest port (host port for 2 and 3); bit 0: an IPv6 socket, bit
 *		1: to the guest's IPv6 address (to ::1 for 2 and 3)
 */
static void fwd_add(struct harness *h, int i, uint16_t port)
{
	static const uint8_t lo4[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0,
					 1 };
	static const uint8_t lo6[16] = { [15] = 1 };
	bool udp = i & 1, v6 = port & 2;
	struct fake_fd *d;
	int fd, rc;

	if (h->listener[i] >= 0)
		return;
	fd = fake_fd_open(FAKE_SOCK);
	if (fd < 0)
		return;
	d = fake_fd_get(fd);
	d->owner_harness = true;
	d->family = port & 1 ? AF_INET6 : AF_INET;
	d->type = udp ? SOCK_DGRAM : SOCK_STREAM;
	d->listening = true;
	if (i < 2)
		rc = dp_fwd_add(h->dp, i + 1, fd, udp ? IPPROTO_UDP : IPPROTO_TCP,
				v6 ? harness_guest6 : harness_guest4,
				port ? port : 80);
	else
		rc = dp_fwd_add_splice(h->dp, i + 1, fd,
				       udp ? IPPROTO_UDP : IPPROTO_TCP,
				       v6 ? lo6 : lo4, port ? port : 9001);
	if (rc) {
		fake_fd_close_harness(fd);
		return;
	}
	h->listener[i] = fd;
}

/**
 * fwd_remove() - remove forward @i, then close its listener, as Python does
 * @h:		harness
 * @i:		0 to 3
 */
static void fwd_remove(struct harness *h, int i)
{
	if (h->listener[i] < 0)
		return;
	if (dp_fwd_remove(h->dp, i + 1))
		die("dp_fwd_remove() of a live forward failed");
	fake_fd_close_harness(h->listener[i]);
	h->listener[i] = -1;
}

/**
 * op_ctl() - exercise the control ring as daemon.py does
 * @h:		harness
 * @in:		input
 */
static void op_ctl(struct harness *h, struct input *in)
{
	uint8_t buf[DP_CTL_FRAME_MAX];
	uint8_t what = take8(in);
	const uint8_t *frame;
	size_t len;
	int rc;

	if (!(what & 1)) {
		rc = dp_ctl_recv(h->dp, buf, what & 2 ? 64 : (int)sizeof(buf));
		if (what & 2 ? rc != -1 : rc < 0 || rc > (int)sizeof(buf))
			die("dp_ctl_recv() answer out of range");
		return;
	}

	len = take16(in) % (DP_CTL_FRAME_MAX + 64);
	frame = take_bytes(in, &len);
	fk.ctl_unchecked = true;
	dp_ctl_send(h->dp, frame, (int)len);
	fk.ctl_unchecked = false;
}

/**
 * op_api() - the rest of the API Python calls between polls
 * @h:		harness
 * @in:		input
 */
static void op_api(struct harness *h, struct input *in)
{
	uint64_t counters[256];
	struct dp_sock_stats st;
	int n = dp_counter_count(), i;
	uint8_t what = take8(in);

	if (n <= 0 || n > 256)
		die("dp_counter_count() out of range");
	if (dp_counters(h->dp, counters, n) != n)
		die("dp_counters() copied less than dp_counter_count()");
	for (i = -1; i <= n; i++) {
		if (!dp_counter_name(i) != (i < 0 || i == n))
			die("dp_counter_name() range wrong");
	}
	if (dp_timeout_ms(h->dp) < -1)
		die("dp_timeout_ms() negative");
	dp_notices(h->dp);
	dp_fwd_connections(h->dp, what % 4);
	if (dp_sock_stats(NULL, &st) != -1 || dp_sock_stats(h->dp, NULL) != -1)
		die("dp_sock_stats() takes NULL");
	if (what & 0x10) {	/* the host's resolver changed: v4, v6 or none */
		static const uint8_t lo6[16] = { [15] = 1 };

		dp_dns_upstream(h->dp, what & 0x20 ? htonl(0x7f000036) : 0,
				what & 0x40 ? lo6 : NULL);
	}
	check_socks(h);
}

/**
 * vnet_frame() - queue a frame behind a virtio-net header the input shapes
 * @h:		harness, with virtio-net headers (else the frame goes bare)
 * @in:		input
 * @frame:	buffer of FAKE_TAP_FRAME_LEN bytes to build it in
 *
 * @what bit 0: NEEDS_CSUM; bits 1-2: gso_type none, TCPV4, TCPV6 or UDP_L4;
 * bit 3: the 12 header bytes come raw from the input instead; bit 4: the ECN
 * bit.  Otherwise csum_start, csum_offset and hdr_len are what a guest
 * kernel writes for the frame's IP header (its IHL, or 40 for IPv6) and the
 * type's transport header, so that sound GSO frames are easy to reach.
 */
static void vnet_frame(struct harness *h, struct input *in, uint8_t *frame)
{
	static const uint8_t types[4] = { 0, 1, 4, 5 };	/* VIRTIO_NET_HDR_GSO_* */
	uint8_t what = take8(in), hdr[12] = { 0 };
	uint16_t gso_size = take16(in), start, off, hlen;
	const uint8_t *p;
	size_t len, n = 12;

	if (what & 8)
		memcpy(hdr, take_bytes(in, &n), n);
	len = take16(in);
	p = take_bytes(in, &len);
	if (!(what & 8)) {
		bool udp = (what >> 1 & 3) == 3;

		start = 14 + (len > 14 && (p[12] == 0x86) ? 40 :
			      len > 14 ? (p[14] & 0xf) * 4 : 20);
		off = udp ? 6 : 16;
		hlen = (uint16_t)(start + (udp ? 8 : 20));
		hdr[0] = what & 1;
		hdr[1] = (uint8_t)(types[what >> 1 & 3] | (what & 16 ? 0x80 : 0));
		if (hdr[1]) {
			memcpy(hdr + 2, &hlen, 2);	/* host order: little */
			memcpy(hdr + 4, &gso_size, 2);
		}
		memcpy(hdr + 6, &start, 2);
		memcpy(hdr + 8, &off, 2);
	}
	if (!h->vnet) {
		fake_tap_push(p, len);
		return;
	}
	memcpy(frame, hdr, 12);
	memcpy(frame + 12, p, len);
	fake_tap_push(frame, 12 + len);
}

/**
 * run_op() - run one operation of the input
 * @h:		harness
 * @in:		input
 */
static void run_op(struct harness *h, struct input *in)
{
	static uint8_t frame[FAKE_TAP_FRAME_LEN];
	static const uint64_t units_ns[] = { 1000000ULL, 10000000ULL,
					     1000000000ULL, 60000000000ULL };
	const uint8_t *p;
	size_t len, off;
	uint8_t sel, what;
	uint16_t gso;

	switch (take8(in) % OP_COUNT) {
	case OP_FRAME:
		len = take16(in);
		p = take_bytes(in, &len);
		off = h->vnet ? 12 : 0;
		memset(frame, 0, off);
		memcpy(frame + off, p, len);
		fake_tap_push(frame, off + len);
		break;
	case OP_POLL:
		poll_once(h, take8(in) % 128 + 1);
		check_timers(h);
		break;
	case OP_TIME:
		what = take8(in);
		fk.now_ns += units_ns[what % 4] * take16(in);
		break;
	case OP_STREAM:
		sel = take8(in);
		len = take16(in);
		p = take_bytes(in, &len);
		fake_stream_push(fake_sock_pick(sel, true), p, len);
		break;
	case OP_DGRAM:
		sel = take8(in);
		what = take8(in);
		len = take16(in);
		p = take_bytes(in, &len);
		/* origin bit 7: coalesced by GRO, in datagrams of a size
		 * bits 2-6 choose (used on a socket with UDP_GRO only) */
		gso = what & 0x80 ? (uint16_t)(1 + (what >> 2 & 0x1f) * 37) : 0;
		if (sel == 0xff && h->listener[1] >= 0)
			fake_dgram_push(h->listener[1], p, len, what, gso);
		else if (sel == 0xfe && h->listener[3] >= 0)
			fake_dgram_push(h->listener[3], p, len, what, gso);
		else
			fake_dgram_push(fake_sock_pick(sel, false), p, len,
					what, gso);
		break;
	case OP_SOCK_EVENT:
		sel = take8(in);
		fake_sock_event(fake_sock_pick(sel, false), take8(in));
		break;
	case OP_KNOB:
		sel = take8(in);
		fk.knob[sel % KNOB_COUNT] = take8(in);
		break;
	case OP_ACCEPT:
		if (h->listener[0] >= 0)
			fake_listener_accept(h->listener[0]);
		break;
	case OP_CTL:
		op_ctl(h, in);
		break;
	case OP_FWD:
		what = take8(in);
		if (what & 1)
			fwd_remove(h, (what >> 1) & 3);
		else
			fwd_add(h, (what >> 1) & 3, take16(in));
		break;
	case OP_API:
		op_api(h, in);
		break;
	case OP_NS_CONNECT:
		if (h->listener[2] >= 0)
			fake_listener_accept(h->listener[2]);
		break;
	case OP_VNET_FRAME:
		vnet_frame(h, in, frame);
		break;
	}
}

/**
 * quiesce() - with no new input, the data plane must go idle
 * @h:		harness
 */
static void quiesce(struct harness *h)
{
	int i;

	memset(fk.knob, 0, sizeof(fk.knob));
	for (i = 0; i < HARNESS_QUIET_POLLS; i++) {
		if (poll_once(h, 128) <= 0)
			return;
	}
	die("dp_poll() keeps finding work without new input: Python would spin");
}

/**
 * harness_rule() - fill one address rule
 * @cfg:	configuration, @n_rules counts it
 * @addr:	address, 16 bytes
 * @prefix_len:	of the 16-byte form
 * @kind:	DP_RULE_*
 * @flags:	DP_RULE_F_*
 * @to:		DP_RULE_REDIRECT's target, 16 bytes, or NULL
 */
static void harness_rule(struct dp_config *cfg, const uint8_t *addr,
			 uint8_t prefix_len, uint8_t kind, uint8_t flags,
			 const uint8_t *to)
{
	struct dp_rule *r = &cfg->rules[cfg->n_rules++];

	memcpy(r->addr, addr, sizeof(r->addr));
	r->prefix_len = prefix_len;
	r->kind = kind;
	r->flags = flags;
	if (to)
		memcpy(r->to, to, sizeof(r->to));
}

/**
 * harness_rules() - the address rules of either model, as Python sets them
 * (slirpd/netmodel.py, slirpd/pasta/net.py)
 * @cfg:	configuration, addresses set
 * @bits:	byte 0 of the input
 */
static void harness_rules(struct dp_config *cfg, uint8_t bits)
{
	static const uint8_t lo4[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };
	static const uint8_t host4[16] = { [10] = 0xff, [11] = 0xff,
					   198, 51, 100, 1 };
	static const uint8_t lo6[16] = { [15] = 1 };
	uint8_t gw4[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 2, 2 };
	uint8_t dns4[16] = { [10] = 0xff, [11] = 0xff, 10, 0, 2, 3 };
	uint8_t gw6[16], dns6[16];
	bool lo = !(bits & 4);

	memcpy(gw6, cfg->gw6, 16);
	memcpy(dns6, harness_net6, 16);
	dns6[15] = 3;
	if (bits & 128) {	/* pasta: 169.254.1.1 DNS, .2 the host */
		dns4[12] = 169, dns4[13] = 254, dns4[14] = 1, dns4[15] = 1;
		harness_rule(cfg, dns4, 128, DP_RULE_DNS, 0, NULL);
		dns4[15] = 2;
		harness_rule(cfg, dns4, 128, DP_RULE_REDIRECT, 0, host4);
		if (lo)
			harness_rule(cfg, gw4, 128, DP_RULE_REDIRECT, 0, lo4);
		if (cfg->enable_ipv6 && lo)
			harness_rule(cfg, gw6, 128, DP_RULE_REDIRECT, 0, lo6);
		return;
	}
	harness_rule(cfg, gw4, 128, lo ? DP_RULE_REDIRECT : DP_RULE_BLOCK,
		     DP_RULE_F_LOCAL, lo ? lo4 : NULL);
	harness_rule(cfg, dns4, 128, bits & 2 ? DP_RULE_BLOCK : DP_RULE_DNS,
		     DP_RULE_F_LOCAL | DP_RULE_F_DNS_ONLY, NULL);
	harness_rule(cfg, gw4, 120, DP_RULE_BLOCK, 0, NULL);
	if (!cfg->enable_ipv6)
		return;
	harness_rule(cfg, gw6, 128, lo ? DP_RULE_REDIRECT : DP_RULE_BLOCK,
		     DP_RULE_F_LOCAL, lo ? lo6 : NULL);
	harness_rule(cfg, dns6, 128, bits & 2 ? DP_RULE_BLOCK : DP_RULE_DNS,
		     DP_RULE_F_LOCAL | DP_RULE_F_DNS_ONLY, NULL);
	harness_rule(cfg, harness_net6, 64, DP_RULE_BLOCK, 0, NULL);
}

/**
 * harness_config() - the data plane configuration the input chooses
 * @in:		input
 * @cfg:	filled
 */
static void harness_config(struct input *in, struct dp_config *cfg)
{
	static const uint8_t gw_mac[DP_MAC_LEN] = { 0x52, 0x55, 0, 0, 2, 2 };
	uint8_t bits = take8(in), limits;

	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->gw_mac, gw_mac, DP_MAC_LEN);
	cfg->net4 = htonl(0x0a000200);
	cfg->mask4 = htonl(0xffffff00);
	cfg->gw4 = htonl(0x0a000202);
	cfg->guest4 = htonl(0x0a000264);
	limits = take8(in);
	cfg->mtu = harness_mtus[limits & 7];
	cfg->sock_budget = harness_budgets[limits >> 3 & 7];
	fk.fd_limit = harness_fd_limits[limits >> 6];
	cfg->vnet_hdr = bits & 1;
	cfg->dns_upstream4 = bits & 8 ? htonl(0x7f000035) : 0;
	cfg->outbound4 = bits & 16 ? htonl(0xc6336401) : 0;
	cfg->enable_ipv6 = bits & 32 && cfg->mtu >= 1280;
	memcpy(cfg->net6, harness_net6, sizeof(cfg->net6));
	memcpy(cfg->gw6, harness_net6, sizeof(cfg->gw6));
	cfg->gw6[15] = 2;
	if (!(bits & 2) && !(bits & 128)) {
		memcpy(cfg->rdnss6, harness_net6, sizeof(cfg->rdnss6));
		cfg->rdnss6[15] = 3;
	}
	memcpy(cfg->guest6, harness_guest6, sizeof(cfg->guest6));
	if (bits & 64)
		cfg->dns_upstream6[15] = 1;	/* ::1 */
	cfg->neigh_all = !!(bits & 128);
	cfg->no_ra = bits & 128 && bits & 2;
	cfg->no_ndp = cfg->no_ra && bits & 1;
	cfg->no_icmp = bits & 128 && bits & 4 && bits & 1;
	cfg->dhcpv6 = cfg->ra_managed = !!(bits & 128);
	harness_rules(cfg, bits);
	fk.tap_no_uso = take8(in) & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct harness h = { .listener = { -1, -1, -1, -1 } };
	struct dp_config cfg;
	int tap, ops, i;

	fake_reset();
	harness_config(&in, &cfg);
	fk.tap_mtu = cfg.mtu;
	h.vnet = cfg.vnet_hdr;

	tap = fake_fd_open(FAKE_TAP);
	h.dp = dp_new(&cfg, tap);
	if (!h.dp)
		die("dp_new() failed on a valid configuration");
	fwd_add(&h, 0, 8080);
	fwd_add(&h, 1, 5353);

	for (ops = 0; in.left && ops < HARNESS_OPS_MAX; ops++)
		run_op(&h, &in);

	/* the guest goes quiet: everything pending drains, every timer ends */
	quiesce(&h);
	for (i = 0; i < 6 && !h.tap_gone; i++) {
		fk.now_ns += 3600ULL * 1000000000ULL;
		poll_once(&h, 128);
		check_timers(&h);
	}
	while (dp_ctl_recv(h.dp, (uint8_t[DP_CTL_FRAME_MAX]){ 0 },
			   DP_CTL_FRAME_MAX) > 0)
		;

	for (i = 0; i < HARNESS_LISTENERS; i++)
		fwd_remove(&h, i);
	dp_free(h.dp);
	if (fake_open_count())
		die("descriptors left open after dp_free()");
	return 0;
}
