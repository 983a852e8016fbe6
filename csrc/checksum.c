/* checksum.c - the Internet checksum (RFC 1071)
 *
 * Theory of operation
 * -------------------
 * The Internet checksum is the ones' complement of the ones' complement sum
 * of a buffer taken as 16-bit words.  Ones' complement addition commutes with
 * byte swapping (RFC 1071, section 2(B)), so we add words in host byte order
 * and store the result back in host order: the bytes in memory come out right
 * on both little- and big-endian machines, and no field needs converting.
 *
 * Speed comes from adding 32-bit words, loaded with memcpy() so any alignment
 * is fine, into a 64-bit accumulator, four at a time: the carries pile up in
 * the upper half and are folded back once at the end.  The accumulator cannot
 * overflow for any buffer below 2^32 words, far beyond DP_FRAME_MAX.
 *
 * A checksum can be built from pieces (a pseudo-header, then a TCP header,
 * then data): csum_partial() carries a 32-bit partial sum from one piece to
 * the next and csum_fold() finishes it.  Every piece but the last must have an
 * even length, or the 16-bit words of the next piece would be misaligned.
 *
 * Checking a received header is summing it with its checksum field included:
 * a correct one gives csum() == 0.
 */

#include <string.h>

#include "checksum.h"
#include "util.h"

/**
 * fold64() - fold a 64-bit accumulator to 32 bits without losing carries
 * @acc:	accumulator
 *
 * Return: 32-bit value congruent to @acc in ones' complement arithmetic
 */
static uint32_t fold64(uint64_t acc)
{
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

/**
 * csum_partial() - add a buffer to a running ones' complement sum
 * @buf:	data, any alignment
 * @len:	length in bytes; odd only for the last piece of a checksum
 * @sum:	running sum from an earlier call, or 0 (or a pseudo-header sum)
 *
 * Return: new running sum, not yet folded to 16 bits nor complemented
 */
uint32_t csum_partial(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = buf;
	uint64_t acc = sum;
	uint32_t w[4];
	uint16_t h;

	while (len >= sizeof(w)) {
		memcpy(w, p, sizeof(w));
		acc += (uint64_t)w[0] + w[1] + w[2] + w[3];
		p += sizeof(w);
		len -= sizeof(w);
	}
	while (len >= sizeof(w[0])) {
		memcpy(w, p, sizeof(w[0]));
		acc += w[0];
		p += sizeof(w[0]);
		len -= sizeof(w[0]);
	}
	if (len >= sizeof(h)) {
		memcpy(&h, p, sizeof(h));
		acc += h;
		p += sizeof(h);
		len -= sizeof(h);
	}
	if (len) {
		/* The odd byte is the first byte of a word padded with zero */
		h = 0;
		memcpy(&h, p, 1);
		acc += h;
	}

	return fold64(acc);
}

/**
 * csum_fold() - finish a running sum into a checksum field value
 * @sum:	running sum from csum_partial()
 *
 * Return: complemented 16-bit checksum, to be stored with memcpy() as is
 */
uint16_t csum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/**
 * csum() - Internet checksum of a buffer
 * @buf:	data, any alignment
 * @len:	length in bytes
 * @sum:	initial running sum, 0 or e.g. csum_pseudo4()
 *
 * Return: checksum to store with memcpy(); 0 when checking a buffer that
 *	   includes a correct checksum
 */
uint16_t csum(const void *buf, size_t len, uint32_t sum)
{
	return csum_fold(csum_partial(buf, len, sum));
}

/**
 * csum_pseudo4() - running sum of an IPv4 pseudo-header for TCP and UDP
 * @saddr:	source address, network byte order
 * @daddr:	destination address, network byte order
 * @proto:	protocol number
 * @len:	length of the transport header and payload, host byte order
 *
 * Return: running sum to pass to csum() or csum_partial()
 */
uint32_t csum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto,
		      uint16_t len)
{
	uint8_t tail[4] = { 0, proto, (uint8_t)(len >> 8), (uint8_t)len };
	uint32_t t;

	memcpy(&t, tail, sizeof(t));
	return fold64((uint64_t)saddr + daddr + t);
}

/**
 * csum_pseudo6() - running sum of an IPv6 pseudo-header (RFC 8200, 8.1) for
 * TCP, UDP and ICMPv6
 * @saddr:	source address, 16 bytes
 * @daddr:	destination address, 16 bytes
 * @proto:	upper-layer protocol number
 * @len:	upper-layer packet length, host byte order
 *
 * Return: running sum to pass to csum() or csum_partial()
 */
uint32_t csum_pseudo6(const uint8_t *saddr, const uint8_t *daddr,
		      uint8_t proto, uint32_t len)
{
	uint8_t tail[8] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16),
			    (uint8_t)(len >> 8), (uint8_t)len, 0, 0, 0, proto };
	uint32_t sum;

	sum = csum_partial(saddr, 16, 0);
	sum = csum_partial(daddr, 16, sum);
	return csum_partial(tail, sizeof(tail), sum);
}
