/* arp.h - answers to the guest's ARP requests, see arp.c */
#ifndef ARP_H
#define ARP_H

#include <stddef.h>
#include <stdint.h>

struct dp;

void arp_input(struct dp *dp, const uint8_t *pkt, size_t len);

#endif /* ARP_H */
