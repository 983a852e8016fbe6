/* util.h - wire helpers: ethertypes, fields at unaligned positions, MACs
 *
 * Frames are parsed and built in place: every multi-byte field goes through
 * these helpers, so no code casts a frame pointer to a wider type.
 */
#ifndef UTIL_H
#define UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Ethertypes we look at */
#define ETH_TYPE_IP4		0x0800
#define ETH_TYPE_ARP		0x0806
#define ETH_TYPE_IP6		0x86dd

/**
 * rd16() - read a big-endian 16-bit field from an unaligned position
 * @p:		first byte of the field
 *
 * Return: value in host byte order
 */
static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/**
 * wr16() - write a 16-bit value as big-endian to an unaligned position
 * @p:		first byte of the field
 * @v:		value in host byte order
 */
static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/**
 * rd32n() - read 32 bits from an unaligned position, keeping network order
 * @p:		first byte of the field
 *
 * Return: the four bytes as they are in memory (addresses stay network order)
 */
static inline uint32_t rd32n(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/**
 * wr32n() - write 32 bits kept in network order to an unaligned position
 * @p:		first byte of the field
 * @v:		value as it should appear in memory
 */
static inline void wr32n(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/**
 * mac_is_multicast() - tell whether a MAC address is multicast or broadcast
 * @mac:	address, DP_MAC_LEN bytes
 *
 * Return: true for group addresses (I/G bit set)
 */
static inline bool mac_is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;
}

#endif /* UTIL_H */
