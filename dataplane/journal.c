/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The journal of one queue: append-only segment files DIR/q<q>/NNNNNNNN.xjl holding CRC32C-checked,
 * sequenced records (format in docs/dataplane.md). A batch's records are gathered in one buffer;
 * the current segment is sized to the segment size (sparse) and mapped MAP_SHARED, and committing
 * a batch copies it into the mapping and publishes it by storing its first length word last: no
 * syscall (the space ahead of the tail is reserved and mapped 256 KiB at a time; under
 * --durability fsync one msync(MS_SYNC) of the batch's range). The last record of a batch carries
 * XJ_F_BATCH_END, so recovery can tell a complete batch from a torn one. A zero length word ends
 * the written data of a segment; a finished segment (rotation, clean stop) is cut to its written
 * length.
 *
 * Opening validates every segment, cuts a torn tail of the last one (a record that is incomplete
 * or fails its CRC with nothing valid behind it, a batch without its closing record, bytes of an
 * unpublished batch after the end) and hands every surviving record to the replay callback.
 * Anything else that is wrong stops the start with a message naming the file and offset.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "xdpexd.h"

/* The open batch's first buffer (it grows when a batch needs more); the fuzz build starts small,
 * each harness run making a journal of its own. */
#ifndef XJ_BUF_CAP
#define XJ_BUF_CAP (8u << 20)
#endif
#define XJ_PREFAULT (256u << 10)
/* The preparer maps this much ahead of the tail writable (and so dirty: pages dirtied much
 * earlier would be written back as zeros first, then fault again when written); the rest of its
 * window is only reserved. */
#define XJ_FAULT_AHEAD (4ull << 20)

/* ---- CRC32C (Castagnoli), SSE4.2 when the CPU has it ---- */

static uint32_t crc_table[256];

static void crc_init_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
	if (!crc_table[1])
		crc_init_table();
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;

	while (n >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	crc = (uint32_t)c;
	while (n--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t xj_crc32c(uint32_t crc, const void *data, size_t len)
{
	static int hw = -1;

	crc = ~crc;
#if defined(__x86_64__)
	if (hw < 0)
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (hw)
		return ~crc_hw(crc, data, len);
#else
	(void)hw;
#endif
	return ~crc_sw(crc, data, len);
}

/* ---- segments ---- */

static void seg_path(const struct xd_journal *j, uint32_t no, char *out, size_t n)
{
	snprintf(out, n, "%s/%08u.xjl", j->dir, no);
}

static int set_rfd(struct xd_journal *j, uint32_t no, int fd)
{
	if (no >= j->rfds_cap) {
		uint32_t cap = j->rfds_cap ? j->rfds_cap : 16;
		int *n;

		while (cap <= no)
			cap *= 2;
		n = realloc(j->rfds, cap * sizeof(int));
		if (!n)
			return -ENOMEM;
		for (uint32_t i = j->rfds_cap; i < cap; i++)
			n[i] = -1;
		j->rfds = n;
		j->rfds_cap = cap;
	}
	j->rfds[no] = fd;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Segment numbers present in the directory, sorted. */
static int list_segments(const char *dir, uint32_t **out, uint32_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint32_t *v = NULL, cnt = 0, cap = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *end;
		unsigned long no;

		if (strlen(e->d_name) != 12 || strcmp(e->d_name + 8, ".xjl"))
			continue;
		no = strtoul(e->d_name, &end, 10);
		if (end != e->d_name + 8 || no == 0 || no > UINT32_MAX)
			continue;
		if (cnt == cap) {
			uint32_t *nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = (uint32_t)no;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_u32);
	*out = v;
	*n = cnt;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

static uint64_t page_up(uint64_t n)
{
	return (n + 4095) & ~(uint64_t)4095;
}

/*
 * Makes bytes [0, need) of the current segment part of the file and mapped: the file is sized to
 * the whole segment at once (sparse, ftruncate), the mapping covers it. No disk space yet.
 */
static int seg_size(struct xd_journal *j, uint64_t need)
{
	int rc;

	if (need > j->alloc) {
		uint64_t want = page_up(need > j->seg_max ? need : j->seg_max);

		if (ftruncate(j->fd, (off_t)want)) {
			rc = errno;
			xd_log(
			    "error: journal %s/%08u.xjl: write failed: %s (sizing to %llu bytes)",
			    j->dir, j->seg_no, strerror(rc), (unsigned long long)want);
			return -rc;
		}
		j->alloc = want;
	}
	if (!j->map || j->alloc > j->map_len) {
		void *m = j->map
			      ? mremap(j->map, j->map_len, j->alloc, MREMAP_MAYMOVE)
			      : mmap(NULL, j->alloc, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);

		if (m == MAP_FAILED) {
			rc = errno;
			xd_log("error: journal %s/%08u.xjl: mmap: %s", j->dir, j->seg_no,
			       strerror(rc));
			return -rc;
		}
		j->map = m;
		j->map_len = j->alloc;
	}
	return 0;
}

/*
 * Reserves bytes up to `need` of the current segment: the blocks (fallocate: a full disk is an
 * error here, not a SIGBUS in a copy) and the page cache (MADV_POPULATE_READ: zero-filled, clean
 * pages, so nothing is written back until records are copied in). Where the file system has no
 * fallocate, one pwrite of zeros does both (those pages are dirty, and written back). 0 or -errno.
 */
static int seg_reserve(struct xd_journal *j, uint64_t need)
{
	static const uint8_t zeros[XJ_PREFAULT];
	uint64_t tail = __atomic_load_n(&j->seg_off, __ATOMIC_RELAXED);
	uint64_t from = j->reserved > tail ? j->reserved : tail, to = page_up(need);

	if (to > j->alloc)
		to = j->alloc;
	if (from >= to)
		return 0;
	if (!j->no_fallocate) {
		if (!fallocate(j->fd, 0, (off_t)from, (off_t)(to - from))) {
			uint64_t page = from & ~(uint64_t)4095;

			if (!j->no_populate_read &&
			    madvise(j->map + page, to - page, MADV_POPULATE_READ) &&
			    (errno == EINVAL || errno == ENOSYS))
				j->no_populate_read =
				    true; /* older kernel: the copies fault them in */
			__atomic_store_n(&j->reserved, to, __ATOMIC_RELAXED);
			return 0;
		}
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
		j->no_fallocate = true;
	}
	while (from < to) {
		size_t n = to - from > sizeof(zeros) ? sizeof(zeros) : to - from;
		ssize_t w = pwrite(j->fd, zeros, n, (off_t)from);

		if (w < 0 && errno != EINTR)
			return -errno;
		if (w == 0)
			return -EIO;
		if (w > 0)
			from += (uint64_t)w;
	}
	__atomic_store_n(&j->reserved, to, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Makes bytes up to `need` of the mapped segment ready for the copies, the next XJ_PREFAULT
 * bytes at a time: reserved (seg_reserve, unless xj_reserve or the preparer did it already),
 * then one MADV_POPULATE_WRITE (the pages mapped writable in one call instead of a page fault per
 * 4 KiB, and dirty again if writeback cleaned them since they were reserved). The copies then
 * make no syscall.
 */
static int seg_populate(struct xd_journal *j, uint64_t need)
{
	while (j->faulted < need) {
		uint64_t to =
		    page_up(need > j->faulted + XJ_PREFAULT ? need : j->faulted + XJ_PREFAULT);
		int rc = 0;

		if (to > j->alloc)
			to = j->alloc;
		if (to > j->reserved)
			rc = -seg_reserve(j, to);
		if (!rc && !j->no_populate &&
		    madvise(j->map + j->faulted, to - j->faulted, MADV_POPULATE_WRITE)) {
			rc = errno;
			if (rc == EINVAL || rc == ENOSYS) {
				/* Older kernel: page faults map the (reserved) pages instead. */
				j->no_populate = true;
				rc = 0;
			} else if (rc == EFAULT) {
				/* The fault would have been a SIGBUS: the file system refused a
				 * page, for want of space or because of an I/O error. */
				struct statvfs sv;

				rc = !fstatvfs(j->fd, &sv) &&
					     (uint64_t)sv.f_bavail * sv.f_frsize < to - j->faulted
					 ? ENOSPC
					 : EIO;
			}
		}
		if (rc) {
			xd_log(
			    "error: journal %s/%08u.xjl: write failed: %s (reserving %llu bytes at "
			    "offset %llu)",
			    j->dir, j->seg_no, strerror(rc), (unsigned long long)(to - j->faulted),
			    (unsigned long long)j->faulted);
			return -rc;
		}
		/* Release: the pages are mapped before a lock-free reader sees the new limit. */
		__atomic_store_n(&j->faulted, to, __ATOMIC_RELEASE);
	}
	return 0;
}

/*
 * The preparer: keeps [tail, tail + ahead) of the current segment reserved and mapped, 256 KiB
 * per turn of the lock, so the queue thread's copies land on pages that are already there. New
 * page cache costs far more than the copy into it (tens of ns a KiB on bare metal; on a VM whose
 * host hands out memory on first touch, microseconds a page), and this moves that cost to
 * another core. A failure is left for the writer to meet and report on its own path; the
 * preparer stops trying until the next segment.
 */
static void *prep_main(void *arg)
{
	struct xd_journal *j = arg;
	uint32_t failed_seg = 0;

	pthread_mutex_lock(&j->mu);
	while (!j->prep_stop) {
		uint64_t tail = __atomic_load_n(&j->seg_off, __ATOMIC_RELAXED);
		uint64_t fault_to = tail + j->fault_ahead, reserve_to = tail + j->ahead;
		uint64_t faulted = j->faulted > tail ? j->faulted : tail;
		uint64_t reserved = j->reserved > tail ? j->reserved : tail;
		bool ok = j->map && j->seg_no != failed_seg;
		int rc;

		if (fault_to > j->alloc)
			fault_to = j->alloc;
		if (reserve_to > j->alloc)
			reserve_to = j->alloc;
		/* What the writer needs next first: mapped writable just ahead of it (dirty from
		 * then on), then reserved (clean pages, nothing to write back) further ahead. */
		if (ok && faulted < fault_to) {
			rc = seg_populate(
			    j, faulted + XJ_PREFAULT < fault_to ? faulted + XJ_PREFAULT : fault_to);
		} else if (ok && reserved < reserve_to) {
			rc = seg_reserve(j, reserved + XJ_PREFAULT < reserve_to
						? reserved + XJ_PREFAULT
						: reserve_to);
		} else {
			rc = 1; /* nothing to do */
		}
		if (rc < 0)
			failed_seg = j->seg_no;
		if (rc == 0) {
			/* Let the writer in between chunks (rotation, or it caught up). */
			pthread_mutex_unlock(&j->mu);
			pthread_mutex_lock(&j->mu);
			continue;
		}
		{
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 5 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&j->cv, &j->mu, &ts);
		}
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

int xj_prep_start(struct xd_journal *j, uint64_t ahead, const void *cpus, size_t cpus_size)
{
	pthread_attr_t attr;
	int rc;

	if (!ahead || j->prep_on)
		return 0;
	j->ahead = page_up(ahead);
	j->fault_ahead = j->ahead < XJ_FAULT_AHEAD ? j->ahead : XJ_FAULT_AHEAD;
	j->prep_stop = false;
	pthread_attr_init(&attr);
	if (cpus)
		pthread_attr_setaffinity_np(&attr, cpus_size, cpus);
	rc = pthread_create(&j->prep, &attr, prep_main, j);
	pthread_attr_destroy(&attr);
	if (rc) {
		xd_log("warning: journal %s: no preparer thread (%s): the queue thread reserves "
		       "journal pages itself",
		       j->dir, strerror(rc));
		return -rc;
	}
	pthread_setname_np(j->prep, "xdpexd-jprep");
	j->prep_on = true;
	return 0;
}

int xj_reserve(struct xd_journal *j, uint64_t bytes)
{
	uint64_t want = j->seg_off + page_up(bytes), t0 = xd_mono_ns();
	int rc;

	if (!bytes)
		return 0;
	if (want > j->alloc)
		want = j->alloc;
	pthread_mutex_lock(&j->mu);
	rc = seg_reserve(j, want);
	pthread_mutex_unlock(&j->mu);
	if (rc)
		xd_log("error: journal %s/%08u.xjl: cannot reserve %llu MiB: %s", j->dir, j->seg_no,
		       (unsigned long long)(bytes >> 20), strerror(-rc));
	else
		xd_log("journal %s/%08u.xjl: %llu MiB reserved ahead of the tail in %.2f s", j->dir,
		       j->seg_no, (unsigned long long)((j->reserved - j->seg_off) >> 20),
		       (double)(xd_mono_ns() - t0) / 1e9);
	return rc;
}

static void prep_stop(struct xd_journal *j)
{
	if (!j->prep_on)
		return;
	pthread_mutex_lock(&j->mu);
	j->prep_stop = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	pthread_join(j->prep, NULL);
	j->prep_on = false;
}

/* Unmaps the current segment and cuts it to its written length (finished segments hold exactly
 * their records). */
static void seg_finish(struct xd_journal *j)
{
	if (j->map)
		munmap(j->map, j->map_len);
	if (j->fd >= 0) {
		if (j->alloc > j->seg_off && ftruncate(j->fd, (off_t)j->seg_off))
			xd_log("journal %s/%08u.xjl: cannot cut to its written length %llu: %s "
			       "(readers stop at the zero length word)",
			       j->dir, j->seg_no, (unsigned long long)j->seg_off, strerror(errno));
		if (j->durability == XD_DUR_FSYNC)
			fdatasync(j->fd);
		close(j->fd);
	}
	j->map = NULL;
	j->map_len = j->alloc = j->faulted = j->reserved = 0;
	j->fd = -1;
}

/* Makes the open segment `fd` (`size` bytes on disk, `end` of them written) current. */
static int seg_adopt(struct xd_journal *j, int fd, uint32_t no, uint64_t size, uint64_t end)
{
	j->fd = fd;
	j->seg_no = no;
	j->seg_off = end;
	j->alloc = size;
	j->map = NULL;
	j->map_len = 0;
	j->faulted = j->reserved = end & ~(uint64_t)4095;
	return seg_size(j, end + XJ_REC_HDR);
}

static int create_segment(struct xd_journal *j, uint32_t no, uint64_t first_seq)
{
	char path[PATH_MAX + 16];
	struct xj_seg_hdr h;
	int fd, rfd, rc;

	seg_path(j, no, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		xd_log("error: journal %s: cannot create: %s", path, strerror(e));
		return -e;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, XJ_MAGIC, 8);
	h.version = XJ_VERSION;
	h.queue = (uint32_t)j->queue;
	h.segment = no;
	h.first_seq = first_seq;
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		int e = errno ? errno : EIO;

		xd_log("error: journal %s: cannot write the header: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0 || set_rfd(j, no, rfd)) {
		int e = errno ? errno : ENOMEM;

		close(fd);
		if (rfd >= 0)
			close(rfd);
		return -e;
	}
	seg_finish(j);
	rc = seg_adopt(j, fd, no, sizeof(h), XJ_SEG_HDR);
	if (rc)
		return rc;
	if (j->durability == XD_DUR_FSYNC && (fdatasync(fd) || fsync_dir(j->dir))) {
		int e = errno ? errno : EIO;

		xd_log("error: journal %s: fdatasync: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

/* Offset just past the last non-zero byte of [from, size) of the mapped segment `m` (`from` if
 * there is none); holes (SEEK_HOLE) are skipped, not read. */
static uint64_t data_end(int fd, const uint8_t *m, uint64_t from, uint64_t size)
{
	uint64_t last = from, off = from;

	while (off < size) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA), h;

		if (d < 0) {
			if (errno == ENXIO)
				break;
			d = (off_t)off; /* no SEEK_DATA here: read it all */
			h = (off_t)size;
		} else {
			h = lseek(fd, d, SEEK_HOLE);
			if (h < 0 || (uint64_t)h > size)
				h = (off_t)size;
		}
		for (uint64_t i = (uint64_t)h; i > (uint64_t)d; i--)
			if (m[i - 1]) {
				last = i;
				break;
			}
		off = (uint64_t)h;
	}
	return last;
}

static const char why_no_close[] = "batch without its closing record";

/*
 * Validates the records of one mapped segment from offset XJ_SEG_HDR. Returns the offset just
 * past the last record that closes a batch (`*bad_off` = where validation stopped, `*why` the
 * reason, NULL when the file or its written data, a zero length word, ended cleanly).
 */
static uint64_t scan_segment(const uint8_t *m, uint64_t size, uint64_t *next_seq, uint64_t *recs,
			     uint64_t *bad_off, const char **why)
{
	uint64_t off = XJ_SEG_HDR, good = XJ_SEG_HDR, seq = *next_seq, good_seq = *next_seq;
	uint64_t n = 0, good_n = 0;

	*why = NULL;
	while (off < size) {
		struct xj_rec r;
		uint32_t len0;

		if (size - off >= sizeof(len0)) {
			memcpy(&len0, m + off, sizeof(len0));
			if (!len0)
				break; /* the end of the written data of a segment being written */
		}
		if (size - off < XJ_REC_HDR) {
			*why = "incomplete record header";
			break;
		}
		memcpy(&r, m + off, sizeof(r));
		if (r.len < XJ_REC_HDR || r.len % 8) {
			*why = "bad record length";
			break;
		}
		if (r.len > size - off) {
			*why = "incomplete record";
			break;
		}
		if (xj_crc32c(0, m + off + 8, r.len - 8) != r.crc) {
			*why = "CRC mismatch";
			break;
		}
		if (r.seq != seq) {
			*why = "sequence gap";
			break;
		}
		off += r.len;
		seq++;
		n++;
		if (r.flags & XJ_F_BATCH_END) {
			good = off;
			good_seq = seq;
			good_n = n;
		}
	}
	if (!*why && good != off)
		*why = why_no_close;
	*bad_off = off;
	*next_seq = good_seq;
	*recs += good_n;
	return good;
}

/* Whether a complete record with a good CRC starts at `off` (data behind a damaged record). */
static bool valid_rec_at(const uint8_t *m, uint64_t size, uint64_t off)
{
	struct xj_rec r;

	if (off > size || size - off < XJ_REC_HDR)
		return false;
	memcpy(&r, m + off, sizeof(r));
	return r.len >= XJ_REC_HDR && !(r.len % 8) && r.len <= size - off &&
	       xj_crc32c(0, m + off + 8, r.len - 8) == r.crc;
}

static int replay_segment(const uint8_t *m, uint64_t end, uint32_t no, xj_replay_fn fn, void *ctx)
{
	uint64_t off = XJ_SEG_HDR;

	while (off < end) {
		struct xj_rec r;
		int rc;

		memcpy(&r, m + off, sizeof(r));
		rc = fn(ctx, &r, m + off + XJ_REC_HDR, no, off);
		if (rc)
			return rc;
		off += r.len;
	}
	return 0;
}

int xj_open(struct xd_journal *j, const char *base, int queue, int durability, uint64_t seg_max,
	    xj_replay_fn fn, void *ctx)
{
	uint32_t *segs = NULL, nsegs = 0;
	uint64_t recs = 0;
	int rc;

	memset(j, 0, sizeof(*j));
	pthread_mutex_init(&j->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&j->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	j->fd = -1;
	j->queue = queue;
	j->durability = durability;
	j->seg_max = seg_max;
	j->last_rec = SIZE_MAX;
	j->next_seq = 1;
	if (mkdir(base, 0700) && errno != EEXIST) {
		rc = -errno;
		xd_log("error: journal directory %s: %s", base, strerror(errno));
		return rc;
	}
	snprintf(j->dir, sizeof(j->dir), "%s/q%d", base, queue);
	if (mkdir(j->dir, 0700) && errno != EEXIST) {
		rc = -errno;
		xd_log("error: journal directory %s: %s", j->dir, strerror(errno));
		return rc;
	}
	j->buf = malloc(XJ_BUF_CAP);
	if (!j->buf)
		return -ENOMEM;
	j->cap = XJ_BUF_CAP;
	rc = list_segments(j->dir, &segs, &nsegs);
	if (rc) {
		xd_log("error: journal %s: cannot list: %s", j->dir, strerror(-rc));
		return rc;
	}
	for (uint32_t i = 0; i < nsegs; i++) {
		bool last = i + 1 == nsegs;
		char path[PATH_MAX + 16];
		struct xj_seg_hdr h;
		struct stat stbuf;
		uint8_t *m = NULL;
		uint64_t end, bad_off, size, tail;
		const char *why;
		int fd;

		seg_path(j, segs[i], path, sizeof(path));
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &stbuf)) {
			rc = -errno;
			xd_log("error: journal %s: unreadable: %s", path, strerror(errno));
			goto fail;
		}
		if (stbuf.st_size < XJ_SEG_HDR && last) {
			xd_log("journal %s: torn tail cut: segment header incomplete (%lld bytes), "
			       "segment removed",
			       path, (long long)stbuf.st_size);
			close(fd);
			unlink(path);
			nsegs--;
			break;
		}
		if (i > 0 && segs[i] != segs[i - 1] + 1) {
			/* Replaying on would skip every record the missing files held. */
			xd_log("error: journal %s/%08u.xjl is missing (%08u.xjl before it and "
			       "%08u.xjl after it are there: the records from seq %llu up to "
			       "%08u.xjl's first are gone): refusing to start",
			       j->dir, segs[i - 1] + 1, segs[i - 1], segs[i],
			       (unsigned long long)j->next_seq, segs[i]);
			close(fd);
			rc = -ENOENT;
			goto fail;
		}
		if (stbuf.st_size < XJ_SEG_HDR || pread(fd, &h, sizeof(h), 0) != sizeof(h) ||
		    memcmp(h.magic, XJ_MAGIC, 8) || h.version != XJ_VERSION ||
		    h.queue != (uint32_t)queue || h.segment != segs[i] || h.first_seq == 0) {
			xd_log("error: journal %s: bad segment header (not an xdpexd journal "
			       "segment %u of queue %d): refusing to start",
			       path, segs[i], queue);
			close(fd);
			rc = -EINVAL;
			goto fail;
		}
		if (i > 0 && h.first_seq != j->next_seq) {
			xd_log(
			    "error: journal %s: segment header says first_seq %llu, but %08u.xjl "
			    "ends at seq %llu (%s): refusing to start",
			    path, (unsigned long long)h.first_seq, segs[i - 1],
			    (unsigned long long)(j->next_seq - 1),
			    h.first_seq > j->next_seq ? "records missing between them"
						      : "records overlap");
			close(fd);
			rc = -EINVAL;
			goto fail;
		}
		if (i == 0)
			j->next_seq = h.first_seq;
		j->first_seg = i == 0 ? segs[0] : j->first_seg;
		m = mmap(NULL, (size_t)stbuf.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			rc = -errno;
			xd_log("error: journal %s: mmap: %s", path, strerror(errno));
			close(fd);
			goto fail;
		}
		size = (uint64_t)stbuf.st_size;
		end = scan_segment(m, size, &j->next_seq, &recs, &bad_off, &why);
		tail = end;
		if (why && why != why_no_close) {
			/* A damaged record: torn only if nothing valid follows it. */
			struct xj_rec r = {0};

			memcpy(&r, m + bad_off,
			       size - bad_off < sizeof(r) ? size - bad_off : sizeof(r));
			if (!last ||
			    (size - bad_off >= sizeof(r) && r.len >= XJ_REC_HDR &&
			     r.len <= size - bad_off && valid_rec_at(m, size, bad_off + r.len))) {
				xd_log("error: journal %s: record at offset %llu: %s (not at the "
				       "tail): "
				       "refusing to start",
				       path, (unsigned long long)bad_off, why);
				munmap(m, size);
				close(fd);
				rc = -EINVAL;
				goto fail;
			}
		}
		if (end < size)
			tail = data_end(fd, m, end, size);
		if (!why && tail > end)
			why = "unpublished batch";
		if (why && !last) {
			xd_log("error: journal %s: record at offset %llu: %s (not at the tail): "
			       "refusing to start",
			       path, (unsigned long long)(why[0] == 'u' ? end : bad_off), why);
			munmap(m, size);
			close(fd);
			rc = -EINVAL;
			goto fail;
		}
		rc = replay_segment(m, end, segs[i], fn, ctx);
		munmap(m, size);
		if (rc) {
			close(fd);
			goto fail;
		}
		if (why) {
			xd_log("journal %s: torn tail cut: %llu bytes at offset %llu (%s at offset "
			       "%llu)",
			       path, (unsigned long long)(tail - end), (unsigned long long)end, why,
			       (unsigned long long)(why[0] == 'u' ? end : bad_off));
			/* Cut, so that everything after the written data reads as zeros again. */
			if (ftruncate(fd, (off_t)end) || fsync(fd)) {
				rc = -errno;
				xd_log("error: journal %s: cannot cut the torn tail: %s", path,
				       strerror(errno));
				close(fd);
				goto fail;
			}
			size = end;
		}
		if (last) {
			int wfd = open(path, O_RDWR | O_CLOEXEC);

			if (wfd < 0) {
				rc = -errno;
				xd_log("error: journal %s: cannot open for append: %s", path,
				       strerror(errno));
				close(fd);
				goto fail;
			}
			rc = seg_adopt(j, wfd, segs[i], size, end);
			if (rc) {
				close(fd);
				goto fail;
			}
		}
		if (set_rfd(j, segs[i], fd)) {
			close(fd);
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (j->fd < 0) {
		rc = create_segment(j, nsegs ? segs[nsegs - 1] + 1 : 1, j->next_seq);
		if (rc)
			goto fail;
		if (!nsegs)
			j->first_seg = 1;
	}
	xd_log("journal %s: %u segments, %llu records, last seq %llu", j->dir, nsegs ? nsegs : 1,
	       (unsigned long long)recs, (unsigned long long)(j->next_seq - 1));
	free(segs);
	j->committed_seq = j->next_seq - 1;
	__atomic_store_n(&j->committed_pos, xj_pos(j->seg_no, j->seg_off), __ATOMIC_RELEASE);
	return 0;
fail:
	free(segs);
	return rc ? rc : -EINVAL;
}

void xj_close(struct xd_journal *j)
{
	prep_stop(j);
	seg_finish(j);
	for (uint32_t i = 0; i < j->rfds_cap; i++)
		if (j->rfds[i] >= 0)
			close(j->rfds[i]);
	free(j->rfds);
	free(j->buf);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	memset(j, 0, sizeof(*j));
	j->fd = -1;
}

size_t xj_room(const struct xd_journal *j)
{
	return j->cap - j->len;
}

void *xj_append(struct xd_journal *j, uint8_t type, uint32_t session_id, uint64_t msg_seq,
		uint16_t count, uint64_t ts, uint32_t payload)
{
	uint32_t len = (XJ_REC_HDR + payload + 7) & ~7u;
	struct xj_rec *r;

	if (j->cap - j->len < len) {
		/* A batch larger than the buffer (one order sweeping thousands of resting ones):
		 * grow it, rarely and never back. */
		size_t cap = j->cap;
		uint8_t *n;

		while (cap - j->len < len)
			cap *= 2;
		n = realloc(j->buf, cap);
		if (!n)
			return NULL;
		j->buf = n;
		j->cap = cap;
	}
	r = (struct xj_rec *)(j->buf + j->len);
	r->len = len;
	r->crc = 0;
	r->seq = j->next_seq++;
	r->type = type;
	r->flags = 0;
	r->count = count;
	r->session_id = session_id;
	r->msg_seq = msg_seq;
	r->ts = ts;
	if (len > XJ_REC_HDR + payload)
		memset(j->buf + j->len + XJ_REC_HDR + payload, 0, len - XJ_REC_HDR - payload);
	j->last_rec = j->len;
	j->len += len;
	return (uint8_t *)r + XJ_REC_HDR;
}

int xj_commit(struct xd_journal *j, xj_index_fn idx, void *ctx)
{
	size_t off = 0;
	uint8_t *dst;
	int rc;

	if (!j->len)
		return 0;
	((struct xj_rec *)(j->buf + j->last_rec))->flags |= XJ_F_BATCH_END;
	while (off < j->len) {
		struct xj_rec *r = (struct xj_rec *)(j->buf + off);

		r->crc = xj_crc32c(0, (uint8_t *)r + 8, r->len - 8);
		off += r->len;
	}
	if (j->seg_off > XJ_SEG_HDR && j->seg_off + j->len > j->seg_max) {
		pthread_mutex_lock(&j->mu);
		rc = create_segment(j, j->seg_no + 1, ((struct xj_rec *)j->buf)->seq);
		pthread_mutex_unlock(&j->mu);
		if (rc)
			return rc;
	}
	/* Room for the batch: sized a segment and populated ahead (by the preparer, or here 256 KiB
	 * at a time when there is none or it fell behind), so almost never a syscall. */
	if (j->seg_off + j->len > __atomic_load_n(&j->faulted, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&j->mu);
		rc = seg_size(j, j->seg_off + j->len);
		if (!rc)
			rc = seg_populate(j, j->seg_off + j->len);
		pthread_mutex_unlock(&j->mu);
		if (rc)
			return rc;
	}
	/* Everything but the first length word, then that word: a reader (or recovery after a
	 * crash in the middle of the copy) sees either zero there, the end of the data, or the
	 * whole batch. */
	dst = j->map + j->seg_off;
	memcpy(dst + sizeof(uint32_t), j->buf + sizeof(uint32_t), j->len - sizeof(uint32_t));
	__atomic_store_n((uint32_t *)dst, ((struct xj_rec *)j->buf)->len, __ATOMIC_RELEASE);
	j->writes++;
	if (j->durability == XD_DUR_FSYNC) {
		/* Group commit: the batch's pages, once, before any of its answers leave. */
		uint64_t from = j->seg_off & ~(uint64_t)4095;

		if (msync(j->map + from, j->seg_off + j->len - from, MS_SYNC)) {
			rc = -errno;
			xd_log("error: journal %s/%08u.xjl: msync failed: %s", j->dir, j->seg_no,
			       strerror(errno));
			return rc;
		}
		j->fsyncs++;
	}
	if (idx) {
		for (off = 0; off < j->len;) {
			struct xj_rec *r = (struct xj_rec *)(j->buf + off);

			if (r->type == XJ_OUT)
				idx(ctx, r, j->seg_no, j->seg_off + off);
			off += r->len;
		}
	}
	__atomic_store_n(&j->seg_off, j->seg_off + j->len, __ATOMIC_RELAXED);
	__atomic_store_n(&j->committed_seq, j->next_seq - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&j->committed_pos, xj_pos(j->seg_no, j->seg_off), __ATOMIC_RELEASE);
	j->bytes += j->len;
	j->len = 0;
	j->last_rec = SIZE_MAX;
	if (j->prep_on &&
	    __atomic_load_n(&j->faulted, __ATOMIC_RELAXED) - j->seg_off < j->fault_ahead / 2)
		pthread_cond_signal(&j->cv); /* no syscall unless the preparer is waiting */
	return 0;
}

int xj_read(struct xd_journal *j, uint32_t seg, uint64_t off, void *buf, size_t len)
{
	ssize_t r;

	if (seg >= j->rfds_cap || j->rfds[seg] < 0)
		return -ENOENT;
	r = pread(j->rfds[seg], buf, len, (off_t)off);
	if (r < 0)
		return -errno;
	return r == (ssize_t)len ? 0 : -EIO;
}

/* ---- standbys: records as the primary wrote them ---- */

int xj_append_raw(struct xd_journal *j, const struct xj_rec *r)
{
	if (r->seq != j->next_seq || r->len < XJ_REC_HDR || r->len % XJ_ALIGN)
		return -EPROTO;
	if (j->cap - j->len < r->len) {
		size_t cap = j->cap;
		uint8_t *n;

		while (cap - j->len < r->len)
			cap *= 2;
		n = realloc(j->buf, cap);
		if (!n)
			return -ENOMEM;
		j->buf = n;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, r, r->len);
	j->last_rec = j->len;
	j->len += r->len;
	j->next_seq++;
	return 0;
}

int xj_commit_replay(struct xd_journal *j, xj_replay_fn fn, void *ctx)
{
	return xj_commit_ack_replay(j, NULL, NULL, fn, ctx);
}

int xj_commit_ack_replay(struct xd_journal *j, void (*committed)(void *), void *cctx,
			 xj_replay_fn fn, void *ctx)
{
	uint64_t base = j->seg_off;
	uint32_t seg;
	size_t len = j->len;
	int rc;

	if (!len)
		return 0;
	/* A rotation inside the commit moves the batch to the next segment's start. */
	if (j->seg_off > XJ_SEG_HDR && j->seg_off + j->len > j->seg_max)
		base = XJ_SEG_HDR;
	rc = xj_commit(j, NULL, NULL);
	if (rc)
		return rc;
	if (committed)
		committed(cctx);
	seg = j->seg_no;
	for (uint64_t off = 0; off < len;) {
		const struct xj_rec *r = (const struct xj_rec *)(j->map + base + off);

		rc = fn(ctx, r, (const uint8_t *)r + XJ_REC_HDR, seg, base + off);
		if (rc)
			return rc;
		off += r->len;
	}
	return 0;
}

/* ---- cutting a journal back (a rejoining old primary's unreplicated tail) ---- */

int xj_truncate_after(const char *qdir, uint64_t seq)
{
	struct xj_reader r;
	uint32_t *segs = NULL, n = 0;
	char path[PATH_MAX + 16];
	int rc;

	rc = xj_reader_open(&r, qdir, seq + 1, UINT64_MAX);
	if (rc) {
		xd_log("error: journal %s: cannot find record %llu to cut after: %s", qdir,
		       (unsigned long long)seq + 1, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/%08u.xjl", qdir, r.seg);
	if (ftruncate(r.fd, (off_t)r.off) || fsync(r.fd)) {
		rc = -errno;
		xd_log("error: journal %s: cannot cut at offset %llu: %s", path,
		       (unsigned long long)r.off, strerror(errno));
		xj_reader_close(&r);
		return rc;
	}
	rc = list_segments(qdir, &segs, &n);
	for (uint32_t i = 0; !rc && i < n; i++) {
		if (segs[i] <= r.seg)
			continue;
		snprintf(path, sizeof(path), "%s/%08u.xjl", qdir, segs[i]);
		if (unlink(path))
			rc = -errno;
	}
	if (!rc)
		rc = fsync_dir(qdir);
	if (rc)
		xd_log("error: journal %s: cannot remove the segments after %08u.xjl: %s", qdir,
		       r.seg, strerror(-rc));
	free(segs);
	xj_reader_close(&r);
	return rc;
}

/* ---- readers in other threads ---- */

#define XJ_READ_CHUNK (8u << 20)

static int reader_seg(struct xj_reader *r, uint32_t no)
{
	char path[PATH_MAX + 16];
	struct xj_seg_hdr h;
	int fd;

	snprintf(path, sizeof(path), "%s/%08u.xjl", r->dir, no);
	fd = open(path, O_RDWR | O_CLOEXEC); /* RDWR: xj_truncate_after cuts through it */
	if (fd < 0)
		return -errno;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h.magic, XJ_MAGIC, 8)) {
		close(fd);
		return -EINVAL;
	}
	if (r->fd >= 0)
		close(r->fd);
	r->fd = fd;
	r->seg = no;
	r->off = XJ_SEG_HDR;
	r->next_seq = h.first_seq;
	return 0;
}

int xj_reader_open(struct xj_reader *r, const char *qdir, uint64_t from_seq, uint64_t committed_pos)
{
	uint32_t *segs = NULL, n = 0, pick = 0;
	uint8_t *buf;
	int rc;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	snprintf(r->dir, sizeof(r->dir), "%s", qdir);
	rc = list_segments(qdir, &segs, &n);
	if (rc)
		return rc;
	/* The last segment that starts at or before from_seq. */
	for (uint32_t i = 0; i < n; i++) {
		char path[PATH_MAX + 16];
		struct xj_seg_hdr h;
		int fd;

		snprintf(path, sizeof(path), "%s/%08u.xjl", qdir, segs[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) && h.first_seq <= from_seq)
			pick = segs[i];
		close(fd);
	}
	free(segs);
	if (!pick || (rc = reader_seg(r, pick)))
		return pick ? rc : -ENOENT;
	buf = malloc(XJ_READ_CHUNK);
	if (!buf) {
		xj_reader_close(r);
		return -ENOMEM;
	}
	/* Walk the segment's records up to from_seq, a chunk at a time. */
	while (!rc && r->next_seq < from_seq) {
		uint64_t at = r->off, seq = r->next_seq, off = 0;
		ssize_t got = xj_reader_next(r, committed_pos, buf, XJ_READ_CHUNK);

		if (got <= 0) {
			rc = got ? (int)got : -ENOENT; /* the journal ends before from_seq */
			break;
		}
		while (off < (uint64_t)got && seq < from_seq) {
			off += ((const struct xj_rec *)(buf + off))->len;
			seq++;
		}
		if (seq == from_seq) { /* stop at the record, not after the chunk */
			r->off = at + off;
			r->next_seq = seq;
		}
	}
	free(buf);
	if (rc)
		xj_reader_close(r);
	return rc;
}

ssize_t xj_reader_next(struct xj_reader *r, uint64_t committed_pos, uint8_t *buf, size_t max)
{
	uint32_t cseg = (uint32_t)(committed_pos >> 40);
	uint64_t coff = committed_pos & ((1ull << 40) - 1);

	for (;;) {
		uint64_t end, got, off = 0;
		ssize_t n;

		if (r->seg == cseg || committed_pos == UINT64_MAX) {
			end = committed_pos == UINT64_MAX ? UINT64_MAX : coff;
		} else if (r->seg < cseg) {
			struct stat st;

			/* A finished segment: cut to its records before the next one was published.
			 */
			if (fstat(r->fd, &st))
				return -errno;
			end = (uint64_t)st.st_size;
		} else {
			return 0;
		}
		if (r->off < end) {
			size_t want = end - r->off < max ? (size_t)(end - r->off) : max;

			n = pread(r->fd, buf, want, (off_t)r->off);
			if (n < 0)
				return -errno;
			got = (uint64_t)n;
			/* Whole records only; a zero length word ends the written data. */
			while (off + XJ_REC_HDR <= got) {
				const struct xj_rec *rec = (const struct xj_rec *)(buf + off);

				if (!rec->len || rec->len < XJ_REC_HDR || off + rec->len > got)
					break;
				off += rec->len;
				r->next_seq = rec->seq + 1;
			}
			if (off) {
				r->off += off;
				return (ssize_t)off;
			}
			if (r->seg == cseg || committed_pos == UINT64_MAX)
				return 0;
			if (got >= sizeof(uint32_t) && ((const struct xj_rec *)buf)->len > max) {
				r->need = ((const struct xj_rec *)buf)->len;
				return -EMSGSIZE; /* a record larger than the buffer: r->need */
			}
		}
		if (r->seg >= cseg && committed_pos != UINT64_MAX)
			return 0;
		{
			int rc = reader_seg(r, r->seg + 1);

			if (rc)
				return rc == -ENOENT && committed_pos == UINT64_MAX ? 0 : rc;
		}
	}
}

void xj_reader_close(struct xj_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}
