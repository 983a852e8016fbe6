/* Public API of the slirpd data plane: the only declarations Python sees.
 *
 * build_ffi.py reads this file verbatim into cffi's cdef(), so it holds bare
 * declarations only: no #include, no #ifdef, no macros other than plain integer
 * constants.  dp.h includes it for the C side.
 */

/* Return codes of dp_poll() besides a frame count >= 0 */
#define DP_POLL_TAP_GONE -1	/* TAP returned EOF or EIO: the namespace is gone */
#define DP_POLL_ERROR    -2	/* unexpected error, errno-style detail in the log */

#define DP_MAC_LEN 6

/* One-shot notices: bits of dp_notices(), each raised at most once per data
 * plane, for Python to log one line instead of one per packet */
#define DP_NOTICE_PING_FORBIDDEN 1	/* ping_group_range refuses ping sockets */
/* Not one-shot: raised whenever frames wait for dp_ctl_recv() (DHCP, DHCPv6) */
#define DP_NOTICE_CTL_FRAMES 2
/* One-shot: the capture (--pcap) stopped, see dp_pcap_state() */
#define DP_NOTICE_PCAP_STOPPED 4
/* Not one-shot: a flow to the DNS address opened, raised at most once per
 * second (DP_DNS_RECHECK_MS): Python looks whether the host's resolver
 * changed and if so tells dp_dns_upstream() */
#define DP_NOTICE_DNS_USED 16
/* One-shot: host sockets ran short (a socket refused, a flow recycled or a
 * listener paused), see dp_sock_stats() */
#define DP_NOTICE_SOCK_SHORT 8
/* Not one-shot: a pool of --host-lo-to-ns-lo is at most half full
 * (dp_ns_lo_wanted()): dp_wait() returns, Python refills it */
#define DP_NOTICE_NS_LO_LOW 32
/* Size of the buffer dp_ctl_recv() needs */
#define DP_CTL_FRAME_MAX 1536

/* dp_pcap_state() besides -errno (stopped by a write error) */
#define DP_PCAP_OFF  0	/* no capture was started */
#define DP_PCAP_ON   1	/* capturing */
#define DP_PCAP_FULL 2	/* stopped: the file reached its size limit */

/* The address rules of struct dp_config (fwd.c): what a rule's address is */
#define DP_RULES_MAX 16		/* the size of dp_config.rules[] */
#define DP_RULE_BLOCK 0		/* reaches nothing */
#define DP_RULE_DNS 1		/* port 53, UDP and TCP: the host's nameserver */
#define DP_RULE_REDIRECT 2	/* the host address @to, every port */
/* dp_rule.flags */
#define DP_RULE_F_LOCAL 1	/* ours on the link: ARP and NDP answered,
				 * echo requests answered by us, never a
				 * source the guest may use */
#define DP_RULE_F_DNS_ONLY 2	/* DP_RULE_DNS: other ports reach nothing
				 * (else they reach the address itself) */

/**
 * struct dp_rule - one special address (or prefix) of the guest's network
 * @addr:	address, 16 bytes: IPv6, or IPv4-mapped for IPv4
 * @prefix_len:	bits of @addr that count, of the 16-byte form (96 + N for an
 *		IPv4 /N); DP_RULE_DNS and DP_RULE_REDIRECT rules are single
 *		addresses (128)
 * @kind:	DP_RULE_BLOCK, DP_RULE_DNS or DP_RULE_REDIRECT
 * @flags:	DP_RULE_F_* bits
 * @to:		DP_RULE_REDIRECT: the host address, 16 bytes as @addr (a
 *		loopback one is the host's loopback)
 */
struct dp_rule {
	uint8_t addr[16];
	uint8_t prefix_len;
	uint8_t kind;
	uint8_t flags;
	uint8_t to[16];
};
/* dp_config.offloads_off: offloads not to use even where the kernel has
 * them (tests of the fallbacks; SLIRPD_OFFLOADS_OFF in dataplane.py) */
#define DP_OFFLOAD_NO_USO     1	/* TAP: no TUN_F_USO4/6, as before Linux 6.2 */
#define DP_OFFLOAD_NO_UDP_GSO 2	/* host sockets: no UDP_SEGMENT sends */
#define DP_OFFLOAD_NO_UDP_GRO 4	/* host sockets: no UDP_GRO */

/**
 * struct dp_config - what the data plane needs to know, filled by Python
 * @gw_mac:	our MAC address, source of every frame we send to the guest
 * @net4:	IPv4 network, network byte order
 * @mask4:	IPv4 netmask, network byte order
 * @gw4:	our IPv4 address on the link, network byte order: the guest's
 *		gateway, source of the ICMP errors we send and of host clients
 *		the guest could not answer (fwd.c)
 * @guest4:	the guest's IPv4 address, network byte order (0 if unknown):
 *		never answered for in ARP with @neigh_all; a host client with
 *		it is shown as a rule's or the gateway's address (fwd.c)
 * @mtu:	MTU of the TAP link (68..65521)
 * @vnet_hdr:	non-zero if the TAP fd carries a virtio-net header: checksum
 *		and TCP segmentation offloads are then used both ways (tap.c)
 * @dns_upstream4:	nameserver the DNS rules forward to (the host's first
 *			IPv4 nameserver), network byte order, 0 for none
 * @udp_idle_ms:	idle timeout of UDP flows in milliseconds, 0 for the
 *			default (DP_UDP_IDLE_MS, DP_UDP_DNS_IDLE_MS for DNS);
 *			tests shorten it
 * @outbound4:	source address host IPv4 sockets bind to before connecting
 *		(--outbound-addr), network byte order, 0 for the kernel's choice
 * @enable_ipv6:	non-zero to serve IPv6 (-6): NDP, router advertisements,
 *			translation; without it IPv6 frames are counted drops
 * @net6:	IPv6 prefix router advertisements announce, a /64 (only its
 *		first 8 bytes count)
 * @gw6:	our IPv6 address on the link (the guest's gateway), not zero
 *		with @enable_ipv6
 * @guest6:	the guest's IPv6 address, all zero if unknown (as @guest4)
 * @rdnss6:	the DNS address router advertisements announce, all zero
 *		for none
 * @dns_upstream6:	first IPv6 nameserver of the host, all zero for none;
 *			the DNS rules use it when there is no @dns_upstream4
 * @outbound6:	source address host IPv6 sockets bind to before connecting
 *		(--outbound-addr6), all zero for the kernel's choice
 * @ra_interval_ms:	interval of unsolicited router advertisements once the
 *			guest solicited one, 0 for the default
 *			(DP_NDP_RA_INTERVAL_MS); tests shorten it
 * @sock_budget:	host sockets flows and forwards may hold together
 *			(listeners included), 0 for no bound but the kernel's;
 *			Python leaves the rest of RLIMIT_NOFILE to itself
 *			(flow.c, Host sockets)
 * @neigh_all:	non-zero to answer ARP requests and neighbour solicitations
 *		for every address but the guest's (pasta's model: the whole
 *		world is behind our MAC address); zero to answer only for the
 *		addresses of rules marked DP_RULE_F_LOCAL (slirp4netns's)
 * @no_ra:	non-zero to leave router solicitations unanswered
 * @no_ndp:	non-zero to leave every router and neighbour solicitation
 *		unanswered (pasta's --no-ndp)
 * @no_icmp:	non-zero to drop the guest's ICMP and ICMPv6 but neighbour
 *		discovery (pasta's --no-icmp)
 * @dhcpv6:	non-zero to hand UDP to port 547 at a multicast address
 *		(DHCPv6, pasta's model) to the control plane (ctl.c); zero
 *		to treat it as any other UDP (slirp4netns's)
 * @ra_managed:	non-zero to set the Managed flag (M: addresses by DHCPv6)
 *		in router advertisements, as pasta does
 * @n_rules:	rules used in @rules, at most DP_RULES_MAX
 * @rules:	the special addresses of the guest's network (fwd.c): the
 *		first rule whose prefix holds a destination decides where it
 *		leads
 * @offloads_off:	DP_OFFLOAD_* bits: offloads not to ask for, 0 for every
 *			one the kernel has
 */
struct dp_config {
	uint8_t gw_mac[6];
	uint32_t net4;
	uint32_t mask4;
	uint32_t gw4;
	uint32_t guest4;
	uint32_t mtu;
	int vnet_hdr;
	uint32_t dns_upstream4;
	uint32_t udp_idle_ms;
	uint32_t outbound4;
	int enable_ipv6;
	uint8_t net6[16];
	uint8_t gw6[16];
	uint8_t guest6[16];
	uint8_t rdnss6[16];
	uint8_t dns_upstream6[16];
	uint8_t outbound6[16];
	uint32_t ra_interval_ms;
	uint32_t sock_budget;
	int neigh_all;
	int no_ra;
	int no_ndp;
	int no_icmp;
	int dhcpv6;
	int ra_managed;
	uint32_t n_rules;
	struct dp_rule rules[16];
	uint32_t offloads_off;
};

/**
 * struct dp_sock_stats - the host sockets of a data plane, see dp_sock_stats()
 * @budget:	cfg.sock_budget, 0 if there is none
 * @guest_max:	of the budget, sockets the flows the guest starts may hold;
 *		the rest is kept for forwarded connections (0 with no budget)
 * @guest:	sockets held now by flows the guest started
 * @fwd:	sockets held now by forwards: listeners, accepted connections
 * @paused:	forward listeners not accepting now for want of descriptors
 * @degraded:	non-zero while sockets are short: the guest's share or the
 *		budget is used up, a listener is paused, or a socket was
 *		refused or a flow recycled in the last DP_SOCK_DEGRADED_MS
 */
struct dp_sock_stats {
	uint32_t budget;
	uint32_t guest_max;
	uint32_t guest;
	uint32_t fwd;
	uint32_t paused;
	int degraded;
};

struct dp;

struct dp *dp_new(const struct dp_config *cfg, int tap_fd);
void dp_free(struct dp *dp);
int dp_epoll_fd(const struct dp *dp);
int dp_poll(struct dp *dp, int budget);
int dp_watch_fd(struct dp *dp, int fd);
int dp_wait(struct dp *dp, int budget, int max_ms);
int dp_timeout_ms(struct dp *dp);
int dp_fwd_add(struct dp *dp, int id, int sock, int proto,
	       const uint8_t *guest_addr, uint16_t guest_port);
int dp_fwd_add_splice(struct dp *dp, int id, int sock, int proto,
		      const uint8_t *host_addr, uint16_t host_port);
int dp_fwd_remove(struct dp *dp, int id);
int dp_ns_lo_enable(struct dp *dp);
int dp_ns_lo_add(struct dp *dp, int sock);
int dp_ns_lo_wanted(const struct dp *dp, int version);
int64_t dp_fwd_connections(struct dp *dp, int id);
int dp_counter_count(void);
const char *dp_counter_name(int index);
int dp_counters(const struct dp *dp, uint64_t *out, int n);
int dp_notices(struct dp *dp);
int dp_ctl_recv(struct dp *dp, uint8_t *buf, int size);
int dp_ctl_send(struct dp *dp, const uint8_t *frame, int len);
int dp_pcap_start(struct dp *dp, int fd, uint64_t max_size);
int dp_dns_upstream(struct dp *dp, uint32_t addr4, const uint8_t *addr6);
int dp_pcap_state(const struct dp *dp);
int dp_sock_stats(const struct dp *dp, struct dp_sock_stats *out);
int dp_flow_state_count(void);
const char *dp_flow_state_name(int index);
int dp_flow_states(struct dp *dp, uint64_t *out, int n);
int dp_flow_close_reason_count(void);
const char *dp_flow_close_reason_name(int index);
int dp_flows_closed(const struct dp *dp, uint64_t *out, int n);
