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
	/* Ethernet */							\
	X(drop_runt)		/* shorter than an Ethernet header */	\
	X(drop_eth_src)		/* multicast source, or our own MAC */	\
	X(drop_ethertype)	/* not ARP, IPv4 or IPv6 */		\
	X(drop_ipv6)		/* IPv6, not supported yet */		\
	/* ARP */							\
	X(drop_arp_malformed)	/* short, or not Ethernet/IPv4 */	\
	X(drop_arp_op)		/* not a request */			\
	X(drop_arp_not_for_us)	/* request for an address we don't own */ \
	/* IPv4 */							\
	X(drop_ip4_malformed)	/* version, IHL or lengths wrong */	\
	X(drop_ip4_checksum)						\
	X(drop_ip4_fragment)	/* fragments: not reassembled yet */	\
	X(drop_ip4_martian)	/* source loopback, multicast, ours... */ \
	X(drop_ip4_proto)	/* not ICMP, TCP or UDP */		\
	/* ICMP */							\
	X(drop_icmp_malformed)	/* shorter than an ICMP header */	\
	X(drop_icmp_checksum)						\
	X(drop_icmp_type)	/* not an echo request */		\
	X(drop_icmp_src)	/* source can't be answered */		\
	X(drop_icmp_too_big)	/* reply would exceed the MTU */	\
	/* flows */							\
	X(flows_created)						\
	X(flows_closed)							\
	X(drop_flow_table_full)	/* DP_FLOW_MAX flows in use */		\
	X(drop_unreachable)	/* destination the guest may not reach */ \
	/* port forwarding */						\
	X(fwd_tcp_accepted)						\
	X(fwd_accept_errors)	/* accept() failed: e.g. out of fds */	\
	/* TAP */							\
	X(drop_tap_write)	/* write() to the TAP failed or was short */ \
	X(tap_read_errors)	/* unexpected read() errors */

#endif /* DP_COUNTERS_H */
