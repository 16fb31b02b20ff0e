/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of the journal reader recovery uses (dataplane/journal.c xj_open, replaying
 * through recovery.c xd_replay_rec into a real shard): the input becomes the segment files of
 * queue 0's journal, then the shard is built on them as xdpexd builds it at start. Recovery
 * either succeeds or refuses with a message; never a crash, a read out of bounds or a hang. After
 * a successful recovery the replication reader (xj_reader) reads the journal back too.
 *
 * Input: byte 0 = flags, then segments as [u32 length][bytes]..., at most 4.
 *   bit 0  prepend a valid segment header (queue 0, numbers 1.., first_seq continuing)
 *   bit 1  fix every record's CRC32C as the writer would (so mutations reach the replay)
 *   bit 2  fix the records' journal sequence numbers to run on without a gap
 * Without the bits the bytes are taken as they are (the header and CRC checks themselves).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_journal: " __VA_ARGS__), abort())
#define MAX_SEGS 4

/* The records of seg[from, len): CRC and seq made right where the bits ask; returns the next
 * journal sequence. */
static uint64_t fix_records(uint8_t *seg, size_t len, size_t from, unsigned flags, uint64_t seq)
{
	size_t off = from;

	while (off + XJ_REC_HDR <= len) {
		struct xj_rec r;

		memcpy(&r, seg + off, sizeof(r));
		if (r.len < XJ_REC_HDR || r.len % 8 || r.len > len - off)
			break;
		if (flags & 4)
			r.seq = seq;
		memcpy(seg + off, &r, sizeof(r));
		if (flags & 2) {
			r.crc = xj_crc32c(0, seg + off + 8, r.len - 8);
			memcpy(seg + off, &r, sizeof(r));
		}
		seq = r.seq + 1;
		off += r.len;
	}
	return seq;
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, b, n) != (ssize_t)n)
		FAIL("%s: cannot write\n", path);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xd_shard sh;
	const struct xd_opts *o;
	char qdir[PATH_MAX], path[PATH_MAX + 32], err[400];
	uint64_t seq = 1, first = 0;
	unsigned flags;
	size_t off = 1;

	if (!size)
		return 0;
	xd_log_quiet = 1;
	o = fz_opts(2);
	fz_clean(o->journal_dir);
	mkdir(o->journal_dir, 0700);
	snprintf(qdir, sizeof(qdir), "%s/q0", o->journal_dir);
	mkdir(qdir, 0700);
	flags = data[0];
	for (uint32_t no = 1; no <= MAX_SEGS && off + 4 <= size; no++) {
		uint32_t n;
		size_t hdr = flags & 1 ? XJ_SEG_HDR : 0;
		uint8_t *seg;

		memcpy(&n, data + off, 4);
		off += 4;
		if (n > size - off)
			n = (uint32_t)(size - off);
		seg = malloc(hdr + n + 1);
		memcpy(seg + hdr, data + off, n);
		off += n;
		if (hdr) {
			struct xj_seg_hdr h = {
			    .version = XJ_VERSION, .queue = 0, .segment = no, .first_seq = seq};

			memcpy(h.magic, XJ_MAGIC, 8);
			memcpy(seg, &h, sizeof(h));
		} else if (n >= XJ_SEG_HDR) {
			struct xj_seg_hdr h;

			memcpy(&h, seg, sizeof(h));
			seq = h.first_seq;
		}
		if (no == 1)
			first = seq;
		seq = fix_records(seg, hdr + n, XJ_SEG_HDR, flags, seq);
		snprintf(path, sizeof(path), "%s/%08u.xjl", qdir, no);
		write_file(path, seg, hdr + n);
		free(seg);
	}
	if (!fz_shard(&sh, 0, 0, 0, err, sizeof(err))) {
		struct xj_reader r;
		uint64_t pos = __atomic_load_n(&sh.journal.committed_pos, __ATOMIC_ACQUIRE);

		(void)xd_shard_hash(&sh);
		if (!xj_reader_open(&r, qdir, first ? first : 1, pos)) {
			static uint8_t buf[1 << 16];
			ssize_t got;
			int turns = 0;

			while ((got = xj_reader_next(&r, pos, buf, sizeof(buf))) > 0 &&
			       turns++ < 64)
				;
			xj_reader_close(&r);
		}
	} else if (!err[0]) {
		FAIL("recovery refused without a message\n");
	}
	xd_shard_free(&sh);
	atomic_store(&xd_stop, 0);
	return 0;
}
