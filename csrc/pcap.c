/* pcap.c - capture the frames the TAP carries into a pcap file (--pcap)
 *
 * Theory of operation
 * -------------------
 * Python opens the capture file (before any sandbox hides the file system)
 * and hands its descriptor to dp_pcap_start(), which writes the pcap file
 * header: classic libpcap format, microsecond timestamps, link type Ethernet,
 * in host byte order (readers detect it from the magic number).
 *
 * tap.c calls pcap_batch() once per batch and direction, only when a capture
 * is running (dp->pcap.fd >= 0: the one branch the uncaptured path pays):
 * after tap_read_batch() filled the receive ring, and in tap_tx_flush() before
 * the transmit queue is written to the TAP.  A batch becomes one writev(): a
 * record header from PCAP_HDR_LEN-byte slots in @pcap_rec, then the frame
 * straight from its ring buffer, for each frame, with no copy.  Every record
 * of a batch carries the same timestamp, taken once per batch.  Frames are
 * captured without any virtio-net header.  A frame of the transmit queue that
 * the TAP then refuses (drop_tap_write) is in the capture all the same.
 *
 * Limits
 * ------
 * The file never grows past the size given to dp_pcap_start(): the batch that
 * would cross it is cut to the records that fit, and capturing stops
 * (DP_PCAP_FULL).  A failed or short write stops capturing too (state -errno):
 * the file is truncated back to its last whole record, so readers see a clean
 * end, and the error is counted under pcap_write_errors.  Either way the
 * descriptor is closed, DP_NOTICE_PCAP_STOPPED is raised once for Python to
 * log one line, and the data plane goes on without capture: never an exit.
 * Memory: the record headers of one batch, DP_PCAP_BATCH of them, allocated
 * by dp_pcap_start() and freed with the data plane.
 */

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "dp.h"
#include "dp_api_once.h"
#include "dp_limits.h"
#include "pcap.h"

#define PCAP_MAGIC		0xa1b2c3d4	/* microsecond timestamps */
#define PCAP_VERSION_MAJOR	2
#define PCAP_VERSION_MINOR	4
#define PCAP_LINKTYPE_ETHERNET	1
/* Larger than any frame we carry (DP_FRAME_MAX), as tcpdump's own default */
#define PCAP_SNAPLEN		262144
/* File header and per-record header sizes */
#define PCAP_FILE_HDR_LEN	24
#define PCAP_HDR_LEN		16

_Static_assert(PCAP_SNAPLEN >= DP_FRAME_MAX, "snap length cuts frames");

/**
 * struct pcap_file_hdr - the header at the start of a pcap file
 * @magic:		PCAP_MAGIC, in host byte order
 * @version_major:	PCAP_VERSION_MAJOR
 * @version_minor:	PCAP_VERSION_MINOR
 * @thiszone:		GMT offset, always 0
 * @sigfigs:		timestamp accuracy, always 0
 * @snaplen:		largest record length
 * @linktype:		PCAP_LINKTYPE_ETHERNET
 */
struct pcap_file_hdr {
	uint32_t magic;
	uint16_t version_major;
	uint16_t version_minor;
	int32_t thiszone;
	uint32_t sigfigs;
	uint32_t snaplen;
	uint32_t linktype;
};

/**
 * struct pcap_rec_hdr - the header before each captured frame
 * @ts_sec:	capture time, seconds since the epoch
 * @ts_usec:	microseconds within the second
 * @incl_len:	bytes of the frame in the file
 * @orig_len:	length of the frame on the link
 */
struct pcap_rec_hdr {
	uint32_t ts_sec;
	uint32_t ts_usec;
	uint32_t incl_len;
	uint32_t orig_len;
};

_Static_assert(sizeof(struct pcap_file_hdr) == PCAP_FILE_HDR_LEN,
	       "pcap file header is not packed");
_Static_assert(sizeof(struct pcap_rec_hdr) == PCAP_HDR_LEN,
	       "pcap record header is not packed");

/**
 * pcap_stop() - end the capture, closing the file
 * @dp:		data plane with a capture running
 * @state:	DP_PCAP_FULL, or -errno of the write that failed
 */
static void pcap_stop(struct dp *dp, int state)
{
	close(dp->pcap.fd);
	dp->pcap.fd = -1;
	dp->pcap.state = state;
	dp_notice(dp, DP_NOTICE_PCAP_STOPPED);
}

/**
 * pcap_write_all() - write an iovec array at the end of the capture file
 * @dp:		data plane with a capture running
 * @iov:	buffers, modified (advanced past what a short write took)
 * @iovcnt:	number of buffers, at most IOV_MAX
 * @len:	total bytes in @iov
 *
 * A short write is retried for the rest (a regular file writes everything
 * unless an error is coming, which the retry then reports).
 *
 * Return: 0 when all @len bytes are written, or an errno value
 */
static int pcap_write_all(struct dp *dp, struct iovec *iov, int iovcnt,
			  size_t len)
{
	while (len) {
		ssize_t rc = writev(dp->pcap.fd, iov, iovcnt);

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return errno;
		if (rc == 0)
			return EIO;

		dp->pcap.size += (uint64_t)rc;
		len -= (size_t)rc;
		while (iovcnt && (size_t)rc >= iov->iov_len) {
			rc -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + rc;
			iov->iov_len -= (size_t)rc;
		}
	}

	return 0;
}

/**
 * pcap_batch() - append a batch of frames from a ring to the capture
 * @dp:		data plane with a capture running (dp->pcap.fd >= 0)
 * @ring:	first buffer of the ring, buffers DP_FRAME_MAX bytes apart
 * @lens:	bytes in each buffer, virtio-net header included
 * @count:	buffers to capture, from the first; at most DP_PCAP_BATCH
 *
 * errno is preserved for the caller.
 */
void pcap_batch(struct dp *dp, const uint8_t *ring, const size_t *lens,
		unsigned count)
{
	struct iovec iov[DP_PCAP_BATCH * 2];
	int saved_errno = errno, iovcnt = 0, err;
	struct timespec now;
	uint64_t before = dp->pcap.size;
	bool full = false;
	size_t total = 0;
	unsigned i;

	if (count > DP_PCAP_BATCH)
		count = DP_PCAP_BATCH;

	clock_gettime(CLOCK_REALTIME, &now);

	for (i = 0; i < count; i++) {
		struct pcap_rec_hdr *rec = &dp->pcap.rec[i];
		size_t len;

		if (lens[i] < dp->tap.vnet_len)
			continue;
		len = lens[i] - dp->tap.vnet_len;

		if (dp->pcap.size + total + PCAP_HDR_LEN + len >
		    dp->pcap.max_size) {
			full = true;
			break;
		}

		rec->ts_sec = (uint32_t)now.tv_sec;
		rec->ts_usec = (uint32_t)(now.tv_nsec / 1000);
		rec->incl_len = rec->orig_len = (uint32_t)len;

		iov[iovcnt].iov_base = rec;
		iov[iovcnt++].iov_len = PCAP_HDR_LEN;
		iov[iovcnt].iov_base = (uint8_t *)ring +
				       (size_t)i * DP_FRAME_MAX + dp->tap.vnet_len;
		iov[iovcnt++].iov_len = len;
		total += PCAP_HDR_LEN + len;
	}

	err = total ? pcap_write_all(dp, iov, iovcnt, total) : 0;
	if (err) {
		DP_COUNT(dp, pcap_write_errors);
		/* drop a partial record: readers then see a clean end */
		if (ftruncate(dp->pcap.fd, (off_t)before) == 0)
			dp->pcap.size = before;
		pcap_stop(dp, -err);
	} else {
		DP_COUNT_N(dp, pcap_frames, (uint64_t)iovcnt / 2);
		if (full)
			pcap_stop(dp, DP_PCAP_FULL);
	}

	errno = saved_errno;
}

/**
 * dp_pcap_start() - start capturing every frame the TAP carries
 * @dp:		data plane, not capturing yet
 * @fd:		capture file, open for writing at its (empty) start; owned by
 *		the data plane on success
 * @max_size:	bytes the file may grow to, file header included; at least
 *		large enough for the file header
 *
 * Return: 0 on success, -1 with errno set (EINVAL, EBUSY if a capture ran
 *	   already, ENOMEM, or the error writing the file header)
 */
int dp_pcap_start(struct dp *dp, int fd, uint64_t max_size)
{
	const struct pcap_file_hdr hdr = {
		.magic		= PCAP_MAGIC,
		.version_major	= PCAP_VERSION_MAJOR,
		.version_minor	= PCAP_VERSION_MINOR,
		.snaplen	= PCAP_SNAPLEN,
		.linktype	= PCAP_LINKTYPE_ETHERNET,
	};
	struct iovec iov = { .iov_base = (void *)&hdr, .iov_len = sizeof(hdr) };
	int err;

	if (!dp || fd < 0 || max_size < sizeof(hdr)) {
		errno = EINVAL;
		return -1;
	}
	if (dp->pcap.fd >= 0 || dp->pcap.state != DP_PCAP_OFF) {
		errno = EBUSY;
		return -1;
	}

	dp->pcap.rec = calloc(DP_PCAP_BATCH, sizeof(*dp->pcap.rec));
	if (!dp->pcap.rec) {
		errno = ENOMEM;
		return -1;
	}

	dp->pcap.fd = fd;
	dp->pcap.size = 0;
	dp->pcap.max_size = max_size;
	err = pcap_write_all(dp, &iov, 1, sizeof(hdr));
	if (err) {
		dp->pcap.fd = -1;
		free(dp->pcap.rec);
		dp->pcap.rec = NULL;
		errno = err;
		return -1;
	}

	dp->pcap.state = DP_PCAP_ON;
	return 0;
}

/**
 * dp_pcap_state() - how the capture is doing
 * @dp:		data plane
 *
 * Return: DP_PCAP_OFF if none was started, DP_PCAP_ON while capturing,
 *	   DP_PCAP_FULL once stopped at the size limit, or -errno once stopped
 *	   by a write error
 */
int dp_pcap_state(const struct dp *dp)
{
	return dp ? dp->pcap.state : DP_PCAP_OFF;
}

/**
 * pcap_init() - no capture until dp_pcap_start()
 * @dp:		data plane being created
 */
void pcap_init(struct dp *dp)
{
	dp->pcap.fd = -1;
	dp->pcap.state = DP_PCAP_OFF;
}

/**
 * pcap_cleanup() - close the capture file, if any, and free the headers
 * @dp:		data plane, possibly only partly set up
 */
void pcap_cleanup(struct dp *dp)
{
	if (dp->pcap.fd >= 0)
		close(dp->pcap.fd);
	dp->pcap.fd = -1;
	free(dp->pcap.rec);
	dp->pcap.rec = NULL;
}
