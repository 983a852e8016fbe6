/* Limits of the slirpd data plane, in one place.
 *
 * Every buffer the data plane uses is sized from these constants and allocated
 * once in dp_new().  Nothing is allocated per frame: when something does not
 * fit, the frame is dropped and the drop is counted (see dp_counters.h).
 */
#ifndef DP_LIMITS_H
#define DP_LIMITS_H

/* Ethernet header: destination, source, ethertype */
#define DP_ETH_HLEN		14
/* Minimum Ethernet frame without FCS: short frames we build are padded to it */
#define DP_ETH_ZLEN		60
/* virtio-net header (struct virtio_net_hdr_v1) in front of each frame when
 * the TAP is opened with IFF_VNET_HDR; dp_new() sets TUNSETVNETHDRSZ to it */
#define DP_VNET_HDR_LEN		12
/* Largest IP datagram (16-bit total length) */
#define DP_IP_MAX_LEN		65535
/* Room for one 802.1Q tag, should we ever accept or emit tagged frames */
#define DP_VLAN_HLEN		4

/* Bytes per frame buffer: virtio-net header, Ethernet header, VLAN tag and
 * the largest IP datagram, rounded up to a multiple of 64 bytes */
#define DP_FRAME_MAX		((DP_VNET_HDR_LEN + DP_ETH_HLEN + DP_VLAN_HLEN + \
				  DP_IP_MAX_LEN + 63) / 64 * 64)

/* Receive ring: frames read from the TAP in one batch before dispatching */
#define DP_RX_RING		64
/* Transmit queue: frames queued before one write() each; flushed at the end
 * of every receive batch, or earlier when full */
#define DP_TX_RING		64

/* Capture (pcap.c): frames per writev(), one batch of either ring */
#define DP_PCAP_BATCH		(DP_RX_RING > DP_TX_RING ? DP_RX_RING : DP_TX_RING)

/* MTU range accepted in struct dp_config (the TAP driver's own bounds) */
#define DP_MTU_MIN		68
#define DP_MTU_MAX		65521
/* IPv6 needs links of 1280 bytes at least (RFC 8200): -6 refuses less */
#define DP_MTU_MIN_IP6		1280

/* TTL of IPv4 packets the data plane originates */
#define DP_IP4_TTL		64
/* Hop limit of IPv6 packets the data plane originates (NDP uses 255) */
#define DP_IP6_HOP_LIMIT	64
/* IPv6 extension headers (ip6.c) walked per packet at most: a longer chain is
 * a counted drop, whatever it holds */
#define DP_IP6_EXT_MAX		8

/* Router advertisements (ndp.c): router lifetime, and the valid and preferred
 * lifetimes of the prefix and of the RDNSS option, in seconds; unsolicited
 * advertisements repeat every DP_NDP_RA_INTERVAL_MS, well within them */
#define DP_NDP_RA_INTERVAL_MS		600000
#define DP_NDP_ROUTER_LIFETIME_S	1800
#define DP_NDP_PREFIX_VALID_S		86400
#define DP_NDP_PREFIX_PREFERRED_S	14400
#define DP_NDP_RDNSS_LIFETIME_S		1800

/* Flow table (flow.c): flows of all protocols together, and hash buckets
 * (a power of two, twice the flows for short chains) */
#define DP_FLOW_MAX		16384
#define DP_FLOW_BUCKETS		32768

/* epoll events fetched per system call in dp_poll() */
#define DP_EPOLL_BATCH		128

/* dp_wait()'s busy poll: after a wake-up that did work, poll without
 * sleeping for a window that adapts between 0 and DP_SPIN_MAX_US: it doubles
 * (from DP_SPIN_START_US) when it was too short for an idle time under
 * DP_SPIN_MAX_US, and halves after an idle time longer than that */
#define DP_SPIN_MAX_US		100
#define DP_SPIN_START_US	25

/* UDP (udp.c): flows idle this long are closed (DNS flows sooner, as
 * libslirp does: one query, one answer); datagrams read from a socket per
 * recvmmsg() call, into buffers of DP_UDP_BUF bytes each (the largest UDP
 * payload, 65507 bytes for IPv4, or a buffer the host kernel coalesced with
 * UDP_GRO, plus room for a UDP header in front); recvmmsg() calls per socket
 * event before other sockets get their turn */
#define DP_UDP_IDLE_MS		60000
#define DP_UDP_DNS_IDLE_MS	10000
#define DP_UDP_RECV_BATCH	32
#define DP_UDP_BUF		65536
#define DP_UDP_RECV_ROUNDS	4
/* SO_RCVBUF asked for on a flow's socket (the kernel caps it at
 * net.core.rmem_max, 208 KiB by default, and doubles that): while slirpd waits
 * for the CPU a fast host sender is using, the socket is the only buffer */
#define DP_UDP_SOCK_RCVBUF	(4 << 20)
/* Guest datagrams held for their sockets until the end of a receive batch
 * (udp_batch_end(): one sendmmsg() per flow), one per frame of the batch */
#define DP_UDP_TX_BATCH		DP_RX_RING
/* UDP segmentation (udp.c, tap.c).  DP_UDP_GSO_SEGS: datagrams in one GSO
 * frame we write to the guest or one UDP_SEGMENT send we make, at most (the
 * UDP_MAX_SEGMENTS of Linux 4.18 to 6.9, which every kernel takes);
 * DP_UDP_GSO_SEGS_IN: datagrams a GSO frame from the guest may hold (the
 * UDP_MAX_SEGMENTS of Linux 6.10 and later; more is a counted lie);
 * DP_UDP_GSO_BYTES: payload of one GSO frame or send we build, at most (the
 * largest IPv4 UDP payload, so that either family takes it) */
#define DP_UDP_GSO_SEGS		64
#define DP_UDP_GSO_SEGS_IN	128
#define DP_UDP_GSO_BYTES	65507

/* ICMP echo through ping sockets (icmp.c): flows idle this long are closed */
#define DP_PING_IDLE_MS		60000

/* IPv4 reassembly (frag.c): datagrams being reassembled at once, each slot
 * DP_FRAG_SLOT_BYTES (the largest IP payload fits); an incomplete datagram is
 * dropped after DP_FRAG_TIMEOUT_MS, or earlier when a newer one needs its slot */
#define DP_FRAG_SLOTS		16
#define DP_FRAG_SLOT_BYTES	65536
#define DP_FRAG_TIMEOUT_MS	30000

/* TCP (tcp.c).  Segments from the guest are written to their sockets at the
 * end of each receive batch: DP_TCP_BATCH pending segments at most, one per
 * frame of the batch.  Host data is read into up to DP_TCP_RECV_FRAMES
 * transmit buffers per recvmsg().  DP_TCP_WS is the window scale we offer
 * (windows up to 65535 << DP_TCP_WS bytes), DP_TCP_WND_MAX the largest window
 * we advertise; a guest that offers no window scale gets at most 65535 bytes.
 * A guest without an MSS option gets DP_TCP_MSS_DEFAULT-byte segments, and no
 * guest gets less than DP_TCP_MSS_MIN. */
#ifndef DP_TCP_BATCH	/* the fuzz build makes it small: batches fill */
#define DP_TCP_BATCH		DP_RX_RING
#endif
#define DP_TCP_RECV_FRAMES	DP_TX_RING
#define DP_TCP_WS		7
#define DP_TCP_WND_MAX		(4 << 20)
#define DP_TCP_SNDBUF_MARGIN	4	/* keep 1/4 of SO_SNDBUF unadvertised */
/* The guest's TAP transmit ring drops what does not fit (tx_queue_len, 1000
 * packets unless configured otherwise): the windows of all connections
 * together invite no more frames than that, DP_TCP_WND_MIN_SEGS at least,
 * each frame counted at the larger of the MSS and the flow's average data
 * frame (TSO frames carry up to 64 KiB at any MTU), that average moving by
 * 1/DP_TCP_FRAME_AVG of each new frame */
#define DP_TCP_GUEST_QUEUE	500
#define DP_TCP_WND_MIN_SEGS	4
#define DP_TCP_FRAME_AVG	8
/* Guest data held out of order (tcp_ooo.c): runs and bytes per flow, bytes
 * of all flows together; beyond them segments are dropped (counted) */
#define DP_TCP_OOO_SEGS		1024
#define DP_TCP_OOO_FLOW_BYTES	DP_TCP_WND_MAX
#define DP_TCP_OOO_BYTES	(32 << 20)
#define DP_TCP_WS_MAX		14
#define DP_TCP_MSS_DEFAULT	536
#define DP_TCP_MSS_MIN		64
/* Retransmission to the guest: first timeout, doubling up to the maximum,
 * given up (RST both ways) after DP_TCP_RETRIES expiries without progress */
#define DP_TCP_RTO_MS		200
#define DP_TCP_RTO_MAX_MS	10000
#define DP_TCP_RETRIES		10
/* Timeouts: host connect() in progress; half-closed (a FIN seen either way)
 * without activity; established without activity */
#define DP_TCP_CONNECT_TIMEOUT_MS	20000
#define DP_TCP_FIN_TIMEOUT_MS		60000
#define DP_TCP_IDLE_TIMEOUT_MS		7200000
/* Port forwarding (fwd.c): forwarded host sockets (a port range is a socket
 * per port; the slots are allocated in dp_new()), and connections accepted
 * from one of them per wake-up.  A TCP listener that cannot accept for want
 * of descriptors (the budget below, or EMFILE/ENFILE) leaves the epoll set
 * for DP_FWD_ACCEPT_PAUSE_MS, then tries again: level-triggered, it would
 * otherwise wake the loop at once, forever */
#define DP_FWD_MAX		4096
#define DP_FWD_ACCEPT_BATCH	64
#define DP_FWD_ACCEPT_PAUSE_MS	100

/* Spliced connections (splice.c): rounds of splice() per direction and
 * event, and the size asked for each pipe (the kernel may give less) */
#define DP_SPLICE_ROUNDS	8
#define DP_SPLICE_PIPE_SIZE	(256 << 10)

/* pasta's --host-lo-to-ns-lo (nslo.c): unconnected sockets of the guest's
 * namespace kept per family; Python refills a pool once it is at most half
 * full (DP_NOTICE_NS_LO_LOW, dp_ns_lo_wanted()) */
#define DP_NSLO_POOL_MAX	32

/* Host sockets (flow.c).  cfg.sock_budget bounds the sockets flows and
 * forwards hold together (listeners included; 0: no bound but the kernel's).
 * Python computes it from RLIMIT_NOFILE less its own reserve (slirpd/fdlimit.py).
 * Of the budget, DP_SOCK_FWD_RESERVE sockets, but never more than a
 * 1/DP_SOCK_FWD_RESERVE_DIV share, only forwarded connections may take: the
 * guest's own flows hold the rest at most.  A socket that cannot be had
 * first recycles the least recently used UDP or ping flow of the guest idle
 * for DP_SOCK_RECYCLE_IDLE_MS at least, DP_SOCK_RECYCLE_MAX of them per socket
 * at most (one to fit the budget, one more if socket() or accept4() still
 * says EMFILE or ENFILE).  dp_sock_stats() reports the data plane as degraded
 * until DP_SOCK_DEGRADED_MS after the last refusal, recycling or pause */
#define DP_SOCK_FWD_RESERVE	64
#define DP_SOCK_FWD_RESERVE_DIV	8
#define DP_SOCK_RECYCLE_IDLE_MS	1000
#define DP_SOCK_RECYCLE_MAX	2
#define DP_SOCK_DEGRADED_MS	10000

/* The host's nameserver (fwd.c): a flow to the DNS address raises
 * DP_NOTICE_DNS_USED at most this often, for Python to look at resolv.conf */
#define DP_DNS_RECHECK_MS	1000

/* Control frames (ctl.c): DHCP packets queued for Python at once; each at
 * most DP_CTL_FRAME_MAX bytes (dp_api.h) */
#define DP_CTL_FRAMES		32
/* The DHCP server port: UDP packets to it go to the control plane */
#define DP_DHCP_SERVER_PORT	67
/* The DHCPv6 server port: with cfg.dhcpv6, UDP packets to it at a multicast
 * address (All_DHCP_Relay_Agents_and_Servers, ff02::1:2) go there too */
#define DP_DHCPV6_SERVER_PORT	547
/* Forwarded TCP connections (tcp.c): SYN retransmissions to a guest that does
 * not answer (DP_TCP_RTO_MS apart, doubling up to DP_TCP_RTO_MAX_MS: about
 * 23 s in all) before the host client is reset */
#define DP_TCP_FWD_SYN_RETRIES	6

#endif /* DP_LIMITS_H */
