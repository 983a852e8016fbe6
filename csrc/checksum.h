/* Internet checksum (RFC 1071) helpers, see checksum.c */
#ifndef CHECKSUM_H
#define CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint32_t csum_partial(const void *buf, size_t len, uint32_t sum);
uint16_t csum_fold(uint32_t sum);
uint16_t csum(const void *buf, size_t len, uint32_t sum);
uint32_t csum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto,
		      uint16_t len);
uint32_t csum_pseudo6(const uint8_t *saddr, const uint8_t *daddr,
		      uint8_t proto, uint32_t len);

#endif /* CHECKSUM_H */
