/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A tailing reader of one queue's journal (DIR/q<q>/, include/xdpex/journal.h), for the feed's
 * rewind and snapshot server. It hands out whole batches only (up to a record flagged
 * XJ_F_BATCH_END), so its position is always a batch boundary; a batch that is not all there yet
 * is read again on the next poll. xdpexd publishes a batch by storing its first length word
 * last, so a zero word is "nothing more yet", and a batch never spans two segments: at the end of
 * a segment's data, once segment N+1 exists, the reader moves on. A record that fails its CRC, a
 * sequence gap or a bad segment header before the live tail is damage: -EBADMSG with the file and
 * offset in r->err. The same rules as control/xdpex/journal.py's JournalReader.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xdpex_feed.h"

#define JR_CHUNK (1u << 20)

int xf_jr_open(struct xf_jr *r, const char *qdir)
{
	memset(r, 0, sizeof(*r));
	if ((size_t)snprintf(r->dir, sizeof(r->dir), "%s", qdir) >= sizeof(r->dir))
		return -ENAMETOOLONG;
	r->cap = JR_CHUNK;
	r->buf = malloc(r->cap);
	return r->buf ? 0 : -ENOMEM;
}

void xf_jr_close(struct xf_jr *r)
{
	for (uint32_t i = 0; i < r->nfds; i++)
		if (r->fds[i] > 0)
			close(r->fds[i]);
	free(r->fds);
	free(r->buf);
	r->fds = NULL;
	r->buf = NULL;
	r->nfds = 0;
}

static void seg_path(const struct xf_jr *r, uint32_t no, char *out, size_t n)
{
	snprintf(out, n, "%s/%08u.xjl", r->dir, no);
}

static bool seg_exists(const struct xf_jr *r, uint32_t no)
{
	char path[600];
	struct stat st;

	seg_path(r, no, path, sizeof(path));
	return stat(path, &st) == 0;
}

/* The read fd of segment no (opened once, kept), or -errno. */
static int seg_fd(struct xf_jr *r, uint32_t no)
{
	char path[600];
	int fd;

	if (no >= r->nfds) {
		uint32_t n = r->nfds ? r->nfds : 16;
		int *v;

		while (n <= no)
			n *= 2;
		v = realloc(r->fds, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		memset(v + r->nfds, 0, (n - r->nfds) * sizeof(*v));
		r->fds = v;
		r->nfds = n;
	}
	if (r->fds[no] > 0)
		return r->fds[no];
	seg_path(r, no, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fd == 0) { /* 0 marks "not open" in the table: keep it out */
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 1);

		close(fd);
		if (d < 0)
			return -errno;
		fd = d;
	}
	r->fds[no] = fd;
	return fd;
}

static int damaged(struct xf_jr *r, uint32_t seg, uint64_t off, const char *what)
{
	snprintf(r->err, sizeof(r->err), "journal %s/%08u.xjl offset %llu: %s", r->dir, seg,
		 (unsigned long long)off, what);
	return -EBADMSG;
}

/* The lowest segment number in the directory, 0 if none. */
static uint32_t first_segment(const struct xf_jr *r)
{
	DIR *d = opendir(r->dir);
	struct dirent *e;
	uint32_t lo = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *end;
		unsigned long no;

		if (strlen(e->d_name) != 12 || strcmp(e->d_name + 8, ".xjl"))
			continue;
		no = strtoul(e->d_name, &end, 10);
		if (end == e->d_name + 8 && no && no <= UINT32_MAX && (!lo || no < lo))
			lo = (uint32_t)no;
	}
	closedir(d);
	return lo;
}

/* Opens the position's segment header if the position is at its start. 1 ready, 0 not yet. */
static int enter_segment(struct xf_jr *r, int fd)
{
	struct xj_seg_hdr h;
	ssize_t n;

	if (r->off)
		return 1;
	n = pread(fd, &h, sizeof(h), 0);
	if (n < 0)
		return -errno;
	if (n < (ssize_t)sizeof(h))
		return 0; /* being created */
	if (memcmp(h.magic, XJ_MAGIC, 8) || h.version != XJ_VERSION || h.segment != r->seg)
		return damaged(r, r->seg, 0, "not an xdpex v1 segment header for this segment");
	if (r->last_seq && h.first_seq != r->last_seq + 1)
		return damaged(r, r->seg, 0, "first_seq does not follow the previous segment");
	r->off = XJ_SEG_HDR;
	return 1;
}

long xf_jr_poll(struct xf_jr *r, xf_jr_fn fn, void *ctx, uint64_t max_records)
{
	long handed = 0;

	for (;;) {
		size_t p = 0, batch = 0, n;
		uint64_t seq = r->last_seq, off0;
		bool at_end = false, full;
		ssize_t got;
		int fd, rc;

		if (!r->seg && !(r->seg = first_segment(r)))
			return handed;
		fd = seg_fd(r, r->seg);
		if (fd < 0)
			return fd == -ENOENT ? handed : fd;
		rc = enter_segment(r, fd);
		if (rc <= 0)
			return rc < 0 ? rc : handed;
		off0 = r->off;
		got = pread(fd, r->buf, r->cap, (off_t)r->off);
		if (got < 0)
			return -errno;
		n = (size_t)got;
		full = n == r->cap;
		while (n - p >= 4) {
			const struct xj_rec *h = (const void *)(r->buf + p);
			uint32_t len = h->len;

			if (len == 0) {
				at_end = true;
				break;
			}
			if (len < XJ_REC_HDR || len % XJ_ALIGN) {
				if (seg_exists(r, r->seg + 1))
					return damaged(r, r->seg, r->off + p, "bad record length");
				at_end = true;
				break;
			}
			if (n - p < len)
				break; /* not all read (or not all written) */
			if (xf_crc32c(0, r->buf + p + 8, len - 8) != h->crc) {
				if (seg_exists(r, r->seg + 1))
					return damaged(r, r->seg, r->off + p, "CRC mismatch");
				at_end = true; /* still being written */
				break;
			}
			if (seq && h->seq != seq + 1)
				return damaged(r, r->seg, r->off + p, "journal sequence gap");
			seq = h->seq;
			p += len;
			if (!(h->flags & XJ_F_BATCH_END))
				continue;
			for (size_t q = batch; q < p;) {
				const struct xj_rec *x = (const void *)(r->buf + q);
				struct xf_jrec rec = {x, (const uint8_t *)(x + 1), r->seg,
						      r->off + q};

				rc = fn(ctx, &rec);
				handed++;
				if (rc) {
					/* The position is after the record the callback stopped at
					 * only when that closes its batch; keep it whole. */
					if (q + x->len == p) {
						r->off += p;
						r->last_seq = seq;
					}
					return rc;
				}
				q += x->len;
			}
			r->off += p;
			r->last_seq = seq;
			memmove(r->buf, r->buf + p, n - p);
			n -= p;
			p = batch = 0;
			if (max_records && (uint64_t)handed >= max_records)
				return handed;
		}
		if (full && !at_end) {
			if (r->off == off0) {
				/* One batch larger than the buffer: read it whole. */
				uint8_t *b = realloc(r->buf, r->cap * 2);

				if (!b)
					return -ENOMEM;
				r->buf = b;
				r->cap *= 2;
			}
			continue; /* more data after what fit in the buffer */
		}
		if (p > batch || (n - p >= 4 && !at_end))
			return handed; /* a batch not all there yet */
		if (!seg_exists(r, r->seg + 1))
			return handed;
		{
			/* The next segment exists: this one is finished once nothing follows the
			 * position, read again now. */
			uint32_t word = 0;

			got = pread(fd, &word, 4, (off_t)r->off);
			if (got == 4 && word)
				continue;
		}
		r->seg++;
		r->off = 0;
	}
}

int xf_jr_read(struct xf_jr *r, uint32_t seg, uint64_t off, void *buf, size_t len)
{
	int fd = seg_fd(r, seg);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pread(fd, buf, len, (off_t)off);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}
