/* Counters of the slirpd data plane, as one X-macro list.
 *
 * DP_COUNTERS(X) expands X(name) once per counter.  dp.h turns the list into
 * enum dp_counter (DP_CNT_frames_in, ...); dp.c turns it into the name table
 * that dp_counter_name() returns, with a static_assert that both have the same
 * length.  Names are stable: Python shows them as they are, so rename with care.
 *
 * Every frame the data plane does not handle is a drop counted under exactly
 * one drop_* reason; a frame that is answered counts under one *_replies name.
 */
#ifndef DP_COUNTERS_H
#define DP_COUNTERS_H

#define DP_COUNTERS(X)							\
	/* traffic on the TAP, bytes exclude any virtio-net header */	\
	X(frames_in)							\
	X(frames_out)							\
	X(bytes_in)							\
	X(bytes_out)							\
	/* answers */							\
	X(arp_replies)							\
	X(icmp_echo_replies)						\
	X(ndp_na_sent)		/* neighbour advertisements for our addresses */ \
	X(ndp_ra_sent)		/* router advertisements */		\
	/* Ethernet */							\
	X(drop_runt)		/* shorter than an Ethernet header */	\
	X(drop_eth_src)		/* multicast source, or our own MAC */	\
	X(drop_ethertype)	/* not ARP, IPv4 or IPv6 */		\
	X(drop_ipv6)		/* IPv6 frame without -6 */		\
	/* ARP */							\
	X(drop_arp_malformed)	/* short, or not Ethernet/IPv4 */	\
	X(drop_arp_op)		/* not a request */			\
	X(drop_arp_not_for_us)	/* request for an address we don't own */ \
	/* IPv4 */							\
	X(drop_ip4_malformed)	/* version, IHL or lengths wrong */	\
	X(drop_ip4_checksum)						\
	X(drop_ip4_fragment)	/* fragment with a bad length/offset */ \
	X(drop_ip4_martian)	/* source loopback, multicast, ours... */ \
	X(drop_ip4_proto)	/* not ICMP, TCP or UDP */		\
	/* IPv6 (ip6.c) */						\
	X(drop_ip6_malformed)	/* version, payload length, truncated */ \
	X(drop_ip6_martian)	/* source multicast, loopback, ours... */ \
	X(drop_ip6_ext_header)	/* short, misplaced or routing ext header */ \
	X(drop_ip6_ext_limit)	/* over DP_IP6_EXT_MAX ext headers */	\
	X(drop_ip6_proto)	/* not ICMPv6, TCP or UDP */		\
	X(drop_ip6_fragment)	/* fragment with a bad length/offset */ \
	/* NDP (ndp.c) */						\
	X(drop_ndp_malformed)	/* hop limit not 255, short, bad option */ \
	X(drop_ndp_not_for_us)	/* solicitation for another address (DAD) */ \
	X(drop_ndp_type)	/* advertisements, redirects from the guest */ \
	X(drop_ndp_no_ra)	/* router solicitation with no_ra set */ \
	X(drop_ndp_off)		/* solicitation with no_ndp set */ \
	/* ICMP */							\
	X(drop_icmp_malformed)	/* shorter than an ICMP header */	\
	X(drop_icmp_checksum)						\
	X(drop_icmp_type)	/* not an echo request */		\
	X(drop_icmp_off)	/* ICMP from the guest with no_icmp set */ \
	X(drop_icmp_too_big)	/* reply would exceed the MTU */	\
	/* flows */							\
	X(flows_created)						\
	X(flows_closed)							\
	X(drop_flow_table_full)	/* DP_FLOW_MAX flows in use */		\
	X(drop_unreachable)	/* destination the guest may not reach */ \
	/* host sockets (flow.c), gauges in dp_sock_stats() */		\
	X(flows_recycled)	/* idle UDP/ping flows closed for a socket */ \
	X(sock_refused)		/* none to be had, even after recycling */ \
	X(sock_no_fd)		/* socket()/accept4() said EMFILE/ENFILE */ \
	/* reassembly (frag.c), both families; evicted, timeout, overlap count datagrams */ \
	X(ip4_fragments)	/* fragments taken into a slot */	\
	X(ip4_reassembled)	/* datagrams completed */		\
	X(ip6_fragments)	/* IPv6 fragments taken into a slot */	\
	X(ip6_reassembled)	/* IPv6 datagrams completed */		\
	X(drop_frag_duplicate)	/* fragment already received, same bytes */ \
	X(drop_frag_overlap)	/* inconsistent overlap: datagram dropped */ \
	X(drop_frag_evicted)	/* incomplete, slot taken by a newer one */ \
	X(drop_frag_timeout)	/* incomplete after DP_FRAG_TIMEOUT_MS */ \
	/* UDP (udp.c) */						\
	X(udp_icmp_relayed)	/* host ICMP errors passed to the guest */ \
	X(drop_udp_malformed)	/* short, bad length, port 0 */		\
	X(drop_udp_checksum)						\
	X(drop_udp_socket)	/* no host socket could be opened */	\
	X(drop_udp_send)	/* datagrams the host socket refused */	\
	X(drop_udp_truncated)	/* host datagram over DP_UDP_BUF */	\
	X(udp_gso_in)		/* super-datagrams from the guest (GSO) */ \
	X(udp_gso_sent)		/* UDP_SEGMENT sends to host sockets */	\
	X(udp_gso_fallback)	/* UDP_SEGMENT refused: cut here */	\
	X(udp_gro_in)		/* coalesced reads from host sockets */	\
	X(udp_gso_out)		/* GSO frames to the guest */		\
	X(udp_gso_out_datagrams) /* datagrams in them */		\
	/* ICMP echo through ping sockets (icmp.c) */			\
	X(ping_requests)	/* echo requests sent on ping sockets */ \
	X(ping_replies)		/* echo replies passed to the guest */	\
	X(drop_ping_forbidden)	/* ping_group_range refuses us */	\
	X(drop_ping_socket)	/* other ping socket() failure */	\
	X(drop_ping_send)	/* send() to the ping socket failed */	\
	X(drop_ip_too_big)	/* over 65535 bytes with the IP header */ \
	X(icmp_unreach_sent)	/* ICMP unreachable we sent the guest */ \
	/* port forwarding */						\
	X(fwd_tcp_accepted)						\
	X(fwd_accept_errors)	/* accept() failed: e.g. out of fds */	\
	X(fwd_accept_paused)	/* listener paused: no descriptor for it */ \
	X(fwd_udp_flows)	/* flows started by forwarded datagrams */ \
	X(fwd_udp_datagrams)	/* forwarded datagrams sent to the guest */ \
	/* the guest's loopback to the host's (splice.c, udp.c) */	\
	X(splice_accepted)	/* connections accepted in the namespace */ \
	X(splice_conn_opened)	/* connect() to the host's loopback done */ \
	X(splice_conn_failed)	/* connect() to the host's loopback failed */ \
	X(splice_conn_closed)	/* both FINs passed on, flow released */ \
	X(splice_resets)	/* reset both ways: an error, a timeout */ \
	X(splice_timeouts)	/* connect() or idle timeout */		\
	X(splice_bytes)		/* bytes moved, both directions */	\
	X(drop_splice_fds)	/* no descriptors for the connection: reset */ \
	X(ns_lo_dialled)	/* -t from the host's loopback to the ns's (nslo.c) */ \
	X(drop_ns_lo_pool_empty) /* ... none in the pool: reset */	\
	X(splice_udp_datagrams)	/* datagrams from the namespace to the host */ \
	X(splice_udp_replies)	/* the host's answers back into the namespace */ \
	/* control frames for Python (ctl.c) */				\
	X(ctl_frames)		/* queued: DHCP, DHCPv6 requests */	\
	X(drop_ctl_too_big)						\
	X(drop_ctl_full)	/* Python is behind: ring full */	\
	/* scheduling (dp_yield_cpu()) */				\
	X(cpu_yields)		/* CPU handed over after a full batch */	\
	/* TAP */							\
	X(drop_tap_write)	/* write() to the TAP failed or was short */ \
	X(tap_read_errors)	/* unexpected read() errors */		\
	/* capture (pcap.c) */						\
	X(pcap_frames)		/* frames written to the --pcap file */	\
	X(pcap_write_errors)	/* write failed: capture stopped */	\
	/* virtio-net header and offloads (tap.c) */			\
	X(vnet_gso_in)		/* TCP and UDP GSO frames from the guest */ \
	X(vnet_csum_partial_in)	/* checksums left to us, not verified */ \
	X(vnet_gso_out)		/* TCP and UDP GSO frames to the guest */ \
	X(drop_vnet_hdr)	/* short, unknown flag, csum out of frame */ \
	X(drop_vnet_gso)	/* unknown type, bad size, not what it says */ \
	/* TCP (tcp.c) */						\
	X(tcp_conn_opened)	/* host connect() done, SYN-ACK sent */	\
	X(tcp_conn_failed)	/* connect() refused, unreachable, timeout */ \
	X(tcp_conn_closed)	/* both FINs exchanged, flow released */ \
	X(tcp_rst_from_guest)	/* guest reset: host peer gets a RST */	\
	X(tcp_rst_from_host)	/* socket error or reset: RST to guest */ \
	X(tcp_rst_sent)		/* RST segments we sent the guest */	\
	X(tcp_retransmits)	/* rewinds: fast retransmit or timeout */ \
	X(tcp_rto_expired)	/* retransmission timeouts */		\
	X(tcp_window_probes)	/* zero-window probes to the guest */	\
	X(tcp_idle_timeouts)	/* flows reaped by an idle timeout */	\
	X(tcp_sock_full)	/* guest data the socket refused, not acked */ \
	X(drop_tcp_malformed)	/* short, bad data offset or options */	\
	X(drop_tcp_checksum)						\
	X(drop_tcp_no_flow)	/* not a SYN, no flow: RST to the guest */ \
	X(drop_tcp_out_of_window) /* ahead of what we expect, not held: dup ACK */ \
	X(tcp_ooo_held)		/* ahead of what we expect, held (tcp_ooo.c) */ \
	X(drop_tcp_beyond_window) /* in sequence, past our window: cut */ \
	X(drop_tcp_socket)	/* socket() or epoll failed: RST */	\
	X(drop_tcp_bad_ack)	/* ACK of a SYN-ACK we did not send */	\
	/* TCP port forwarding (tcp.c, tcp_conn_from_host()) */	\
	X(tcp_fwd_conn_opened)	/* guest's SYN-ACK: forwarded conn open */ \
	X(tcp_fwd_conn_failed)	/* guest reset our SYN or never answered */ \
	X(tcp_fwd_refused)	/* no guest MAC, duplicate, table full */

#endif /* DP_COUNTERS_H */
