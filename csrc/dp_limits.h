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

/* MTU range accepted in struct dp_config (the TAP driver's own bounds) */
#define DP_MTU_MIN		68
#define DP_MTU_MAX		65521

/* TTL of IPv4 packets the data plane originates */
#define DP_IP4_TTL		64

/* Flow table (flow.c): flows of all protocols together, and hash buckets
 * (a power of two, twice the flows for short chains) */
#define DP_FLOW_MAX		16384
#define DP_FLOW_BUCKETS		32768

/* epoll events fetched per system call in dp_poll() */
#define DP_EPOLL_BATCH		128

/* Port forwarding (fwd.c): forwarded host sockets, and connections accepted
 * from one of them per wake-up */
#define DP_FWD_MAX		256
#define DP_FWD_ACCEPT_BATCH	64

#endif /* DP_LIMITS_H */
