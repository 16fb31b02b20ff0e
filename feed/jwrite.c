/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A journal writer for test producers and tools (xdpexd has its own, mapped and preallocated, in
 * dataplane/journal.c): segment files DIR/q<q>/NNNNNNNN.xjl in the format of
 * include/xdpex/journal.h, records gathered per batch and written with one write(2) each, the last
 * one flagged XJ_F_BATCH_END, segments rotated between batches. Readers see exactly what they see
 * of xdpexd's journal, except that a segment ends at its file's end rather than at a zero word.
 * Also the CRC32C (Castagnoli) both writer and reader use.
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

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;

	for (; n >= 8; p += 8, n -= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	while (n--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t xf_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	crc = ~crc;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return ~crc_hw(crc, p, len);
#endif
	if (!crc_table[1])
		crc_init();
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* Finishes the current segment (if any) and starts segment `no` at journal sequence first. */
static int open_segment(struct xf_jw *w, uint32_t no, uint64_t first)
{
	char path[600];
	struct xj_seg_hdr h = {
	    .version = XJ_VERSION, .queue = w->queue, .segment = no, .first_seq = first};

	if (w->fd >= 0) {
		if (fsync(w->fd) || close(w->fd))
			return -errno;
		w->fd = -1;
	}
	snprintf(path, sizeof(path), "%s/%08u.xjl", w->dir, no);
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0)
		return -errno;
	memcpy(h.magic, XJ_MAGIC, 8);
	if (write(w->fd, &h, sizeof(h)) != (ssize_t)sizeof(h))
		return errno ? -errno : -EIO;
	w->seg_no = no;
	w->seg_off = sizeof(h);
	return 0;
}

int xf_jw_open(struct xf_jw *w, const char *dir, uint32_t queue, uint64_t seg_max)
{
	DIR *d;
	struct dirent *e;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->queue = queue;
	w->seg_max = seg_max ? seg_max : (64u << 20);
	w->next_seq = 1;
	w->last = SIZE_MAX;
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(w->dir, sizeof(w->dir), "%s/q%u", dir, queue) >= sizeof(w->dir))
		return -ENAMETOOLONG;
	if (mkdir(w->dir, 0755) && errno != EEXIST)
		return -errno;
	d = opendir(w->dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (strlen(e->d_name) == 12 && !strcmp(e->d_name + 8, ".xjl")) {
			closedir(d);
			return -EEXIST;
		}
	closedir(d);
	return open_segment(w, 1, 1);
}

int xf_jw_append(struct xf_jw *w, uint8_t type, uint32_t session_id, uint64_t msg_seq,
		 uint16_t count, uint64_t ts, const void *payload, size_t len)
{
	size_t total = (XJ_REC_HDR + len + XJ_ALIGN - 1) & ~(size_t)(XJ_ALIGN - 1);
	struct xj_rec *r;

	if (total > UINT32_MAX)
		return -EINVAL;
	if (w->len + total > w->cap) {
		size_t cap = w->cap ? w->cap : (1u << 20);
		uint8_t *n;

		while (cap < w->len + total)
			cap *= 2;
		n = realloc(w->buf, cap);
		if (!n)
			return -ENOMEM;
		w->buf = n;
		w->cap = cap;
	}
	r = (struct xj_rec *)(w->buf + w->len);
	memset(r, 0, total);
	r->len = (uint32_t)total;
	r->seq = w->next_seq++;
	r->type = type;
	r->count = count;
	r->session_id = session_id;
	r->msg_seq = msg_seq;
	r->ts = ts;
	memcpy(r + 1, payload, len);
	w->last = w->len;
	w->len += total;
	return 0;
}

int xf_jw_commit(struct xf_jw *w, int sync)
{
	size_t off = 0;
	int rc;

	if (!w->len)
		return 0;
	((struct xj_rec *)(w->buf + w->last))->flags |= XJ_F_BATCH_END;
	for (size_t p = 0; p < w->len; p += ((struct xj_rec *)(w->buf + p))->len) {
		struct xj_rec *r = (struct xj_rec *)(w->buf + p);

		r->crc = xf_crc32c(0, (uint8_t *)r + 8, r->len - 8);
	}
	if (w->seg_off > sizeof(struct xj_seg_hdr) && w->seg_off + w->len > w->seg_max) {
		rc = open_segment(w, w->seg_no + 1, ((struct xj_rec *)w->buf)->seq);
		if (rc)
			return rc;
	}
	while (off < w->len) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	if (sync && fdatasync(w->fd))
		return -errno;
	w->seg_off += w->len;
	w->len = 0;
	w->last = SIZE_MAX;
	return 0;
}

void xf_jw_close(struct xf_jw *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}
