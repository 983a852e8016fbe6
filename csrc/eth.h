/* eth.h - Ethernet framing to and from the guest, see eth.c */
#ifndef ETH_H
#define ETH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_api_once.h"

struct dp;

/**
 * struct eth_ctx - what the link layer learnt of the guest, owned by eth.c
 * @guest_mac:		source MAC address of the last valid guest frame
 * @guest_mac_known:	true once @guest_mac was learnt
 */
struct eth_ctx {
	uint8_t guest_mac[DP_MAC_LEN];
	bool guest_mac_known;
};

void eth_input(struct dp *dp, const uint8_t *frame, size_t len);
uint8_t *eth_tx_start(struct dp *dp, const uint8_t *dst, uint16_t ethertype);
void eth_tx_commit(struct dp *dp, size_t l3_len);

#endif /* ETH_H */
