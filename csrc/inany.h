/* inany.h - one address type for IPv4 and IPv6
 *
 * Flows, the address map and the protocol files keep addresses as 128 bits:
 * an IPv6 address, or an IPv4 address in its IPv4-mapped form ::ffff:a.b.c.d.
 * One flow key and one hash then serve both families, and IPv6 needs no second
 * copy of the TCP or UDP code.
 */
#ifndef INANY_H
#define INANY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/**
 * union inany_addr - an IPv6 address or an IPv4-mapped IPv4 address
 * @a:		the 16 bytes, network order
 * @v4mapped:	the IPv4-mapped view: 10 zero bytes, two 0xff, the IPv4 address
 */
union inany_addr {
	uint8_t a[16];
	struct {
		uint8_t zero[10];
		uint8_t ones[2];
		uint32_t v4;	/* network byte order */
	} v4mapped;
};

/**
 * inany_from_v4() - make the IPv4-mapped form of an IPv4 address
 * @dst:	result
 * @v4:		IPv4 address, network byte order
 */
static inline void inany_from_v4(union inany_addr *dst, uint32_t v4)
{
	memset(dst->v4mapped.zero, 0, sizeof(dst->v4mapped.zero));
	dst->v4mapped.ones[0] = dst->v4mapped.ones[1] = 0xff;
	dst->v4mapped.v4 = v4;
}

/**
 * inany_is_v4() - tell whether an address is an IPv4-mapped IPv4 address
 * @addr:	address
 *
 * Return: true for ::ffff:a.b.c.d
 */
static inline bool inany_is_v4(const union inany_addr *addr)
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(addr->a, prefix, sizeof(prefix));
}

/**
 * inany_v4() - the IPv4 address inside an IPv4-mapped address
 * @addr:	address, inany_is_v4() true
 *
 * Return: IPv4 address, network byte order
 */
static inline uint32_t inany_v4(const union inany_addr *addr)
{
	return addr->v4mapped.v4;
}

/**
 * inany_equal() - compare two addresses
 * @a:		first address
 * @b:		second address
 *
 * Return: true if equal
 */
static inline bool inany_equal(const union inany_addr *a,
			       const union inany_addr *b)
{
	return !memcmp(a->a, b->a, sizeof(a->a));
}

/**
 * inany_is_unspecified() - tell whether an address is :: (or 0.0.0.0)
 * @addr:	address
 *
 * Return: true for the IPv6 unspecified address or the mapped 0.0.0.0
 */
static inline bool inany_is_unspecified(const union inany_addr *addr)
{
	static const uint8_t zero[16];

	return !memcmp(addr->a, zero, sizeof(zero)) ||
	       (inany_is_v4(addr) && !inany_v4(addr));
}

/**
 * inany_is_loopback6() - tell whether an address is the IPv6 loopback ::1
 * @addr:	address
 *
 * Return: true for ::1
 */
static inline bool inany_is_loopback6(const union inany_addr *addr)
{
	static const uint8_t one[16] = { [15] = 1 };

	return !memcmp(addr->a, one, sizeof(one));
}

/**
 * inany_is_multicast6() - tell whether an address is IPv6 multicast
 * @addr:	address
 *
 * Return: true for ff00::/8
 */
static inline bool inany_is_multicast6(const union inany_addr *addr)
{
	return addr->a[0] == 0xff;
}

/**
 * inany_is_linklocal6() - tell whether an address is IPv6 link-local unicast
 * @addr:	address
 *
 * Return: true for fe80::/10
 */
static inline bool inany_is_linklocal6(const union inany_addr *addr)
{
	return addr->a[0] == 0xfe && (addr->a[1] & 0xc0) == 0x80;
}

#endif /* INANY_H */
