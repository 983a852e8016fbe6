/* pcap.h - the --pcap capture of every frame, see pcap.c */
#ifndef PCAP_H
#define PCAP_H

#include <stddef.h>
#include <stdint.h>

struct dp;
struct pcap_rec_hdr;

/**
 * struct pcap_ctx - the capture file, owned by pcap.c
 * @fd:		capture file (--pcap), -1 when not capturing
 * @state:	DP_PCAP_* or -errno, see dp_pcap_state()
 * @size:	bytes in the capture file
 * @max_size:	bytes the capture file may grow to
 * @rec:	record headers of one batch, DP_PCAP_BATCH
 */
struct pcap_ctx {
	int fd;
	int state;
	uint64_t size;
	uint64_t max_size;
	struct pcap_rec_hdr *rec;
};

void pcap_init(struct dp *dp);
void pcap_cleanup(struct dp *dp);
void pcap_batch(struct dp *dp, const uint8_t *ring, const size_t *lens,
		unsigned count);

#endif /* PCAP_H */
