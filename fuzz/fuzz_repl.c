/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of the replication receive path (dataplane/repl.c), both ends, over real
 * TCP connections on loopback into real shards:
 *
 *   standby side: a fresh standby shard (empty journal, --repl-from this harness) connects to
 *     the harness, which plays the primary: it takes the standby's hello and sends the input as
 *     the primary's stream (welcome, records, hashes, beats: xd_repl_follow parses it, appends
 *     the records to the standby's journal, commits, acknowledges and replays them through
 *     recovery). The harness reads the acknowledgements back: none may name a record the
 *     standby has not committed.
 *   primary side: a fresh primary shard (--durability replicated, --repl-listen) on a journal
 *     of a few committed records, with its sender thread; the harness connects as a standby and
 *     sends the input (hello, acks: the sender thread's peer_read, and xd_repl_poll in this
 *     thread, the shard's, once the sender has handed it the caught-up standby) and reads what
 *     the primary streams until it closes. Afterwards the primary's acknowledged position
 *     (xd_repl_acked, what releases held answers) may not be beyond its own committed journal.
 *
 * Either side must end the connection or go on without a crash, a sanitizer report or a hang.
 *
 * Input: byte 0 = flags, then the byte stream sent to xdpexd as it is, except where the bits say:
 *   bit 0  0: standby side, 1: primary side
 *   bit 1  standby: every record in an XR_RECORDS frame gets the CRC32C the writer gives it;
 *          primary: the first frame, if a hello, gets the right magic and queue
 *   bit 2  standby: those records' journal seqs run 1, 2, ... (what the standby expects);
 *          primary: the hello's next_seq is taken modulo (committed + 2), so within the journal
 *   bit 3  primary: the hello's last_crc is that of the primary's record next_seq - 1, so a
 *          hello from inside the journal matches (the CRCs change with every process: the
 *          records carry the time they were written)
 * The frame layout (struct xr_frame: u32 type, u32 payload length) and its types are repl.c's.
 * FUZZ_REPL_LOG=1 shows xdpexd's log lines; FUZZ_REPL_GDB=1 adds every thread's backtrace to
 * a hang's report.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_repl: " __VA_ARGS__), abort())
#define MAX_IN (1u << 16)
#define DEADLINE_NS 15000000000ull

/* repl.c's wire (enum xr_type, XR_MAGIC, struct xr_frame, struct xr_hello's first fields, the
 * size of struct xr_ack). */
enum { XR_HELLO = 1, XR_WELCOME = 2, XR_RECORDS = 3, XR_HASH = 4, XR_ACK = 5, XR_BEAT = 6 };
#define XR_MAGIC 0x31504552u
#define FRAME_HDR 8u
#define HELLO_LEN 64u
#define ACK_LEN 16u

static struct xd_opts o_primary, o_standby;
static char primary_dir[PATH_MAX], standby_dir[PATH_MAX];
static char listen_at[32], primary_at[32];
static int lfd = -1; /* the harness as a primary: where standbys connect */
static uint16_t primary_port; /* where the primary shard listens */
static uint64_t primary_committed; /* records in the primary's journal */
static uint32_t primary_crc[8]; /* CRC of record i + 1 */
static uint8_t buf[MAX_IN];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Closes with a reset (no TIME_WAIT: the harness opens hundreds of connections a second). */
static void hard_close(int fd)
{
	struct linger lg = {1, 0};

	if (fd < 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static uint16_t free_port(int *keep)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &al))
		FAIL("loopback port: %s\n", strerror(errno));
	if (keep) {
		if (listen(fd, 16))
			FAIL("listen: %s\n", strerror(errno));
		*keep = fd;
	} else {
		close(fd);
	}
	return ntohs(a.sin_port);
}

/* The primary's journal: a few committed admin records, made once through the control path. */
static void make_primary_journal(void)
{
	static struct xd_shard sh;
	const char *reqs[] = {
	    "{\"cmd\": \"halt\", \"symbol\": 1}",
	    "{\"cmd\": \"resume\", \"symbol\": 1}",
	    "{\"cmd\": \"apply\", \"config\": {\"rate\": {\"pps\": 1000, \"burst\": 10}}}",
	};
	struct xd_opts o = o_primary;
	char err[400];

	o.repl_listen = NULL;
	o.replicated = false;
	xd_g_opts = &o;
	fz_clean(primary_dir);
	if (xd_shard_init(&sh, 0, 0, &o, fz_config(), err, sizeof(err)))
		FAIL("primary journal: %s\n", err);
	xd_ctl_attach(&sh, 1);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		json_t *r = xd_ctl_handle(reqs[i]);

		if (!json_is_true(json_object_get(r, "ok")))
			FAIL("primary journal: %s refused\n", reqs[i]);
		json_decref(r);
		xd_shard_batch_end(&sh);
	}
	primary_committed = sh.journal.committed_seq;
	if (primary_committed < 3 || primary_committed > 8)
		FAIL("primary journal: %llu records\n", (unsigned long long)primary_committed);
	for (uint64_t seq = 1; seq <= primary_committed; seq++) {
		struct xj_reader rd;
		struct xj_rec rec;

		if (xj_reader_open(&rd, sh.journal.dir, seq, sh.journal.committed_pos) ||
		    pread(rd.fd, &rec, sizeof(rec), (off_t)rd.off) != (ssize_t)sizeof(rec) ||
		    rec.seq != seq)
			FAIL("primary journal: cannot read record %llu back\n",
			     (unsigned long long)seq);
		primary_crc[seq - 1] = rec.crc;
		xj_reader_close(&rd);
	}
	xd_shard_free(&sh);
}

static void setup(void)
{
	struct xd_opts *o = fz_opts(1);

	snprintf(primary_dir, sizeof(primary_dir), "%s/primary", fz_dir());
	snprintf(standby_dir, sizeof(standby_dir), "%s/standby", fz_dir());
	o_primary = o_standby = *o;
	o_primary.journal_dir = primary_dir;
	o_standby.journal_dir = standby_dir;
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", free_port(&lfd));
	primary_port = free_port(NULL);
	snprintf(primary_at, sizeof(primary_at), "127.0.0.1:%u", primary_port);
	o_standby.role = XD_ROLE_STANDBY;
	o_standby.repl_from = listen_at;
	o_primary.repl_listen = primary_at;
	o_primary.replicated = true;
	o_primary.repl_missing = XD_MISSING_HOLD;
	make_primary_journal();
}

/* The input's records made as the bits ask (standby side). */
static void fix_records(uint8_t *b, size_t n, unsigned flags)
{
	uint64_t seq = 1;
	size_t at = 0;

	while (at + FRAME_HDR <= n) {
		uint32_t type, len;

		memcpy(&type, b + at, 4);
		memcpy(&len, b + at + 4, 4);
		if (len > n - at - FRAME_HDR)
			return;
		if (type == XR_RECORDS) {
			uint8_t *p = b + at + FRAME_HDR;
			uint32_t off = 0;

			while (off + XJ_REC_HDR <= len) {
				struct xj_rec r;

				memcpy(&r, p + off, sizeof(r));
				if (r.len < XJ_REC_HDR || r.len > len - off)
					break;
				if (flags & 4)
					r.seq = seq;
				memcpy(p + off, &r, sizeof(r));
				if (flags & 2) {
					r.crc = xj_crc32c(0, p + off + 8, r.len - 8);
					memcpy(p + off, &r, sizeof(r));
				}
				seq = r.seq + 1;
				off += r.len;
			}
		}
		at += FRAME_HDR + len;
	}
}

static void fix_hello(uint8_t *b, size_t n, unsigned flags)
{
	uint32_t type, len, magic = XR_MAGIC, queue = 0;
	uint64_t next;

	if (n < FRAME_HDR + HELLO_LEN)
		return;
	memcpy(&type, b, 4);
	memcpy(&len, b + 4, 4);
	if (type != XR_HELLO || len != HELLO_LEN)
		return;
	if (flags & 2) {
		memcpy(b + FRAME_HDR, &magic, 4);
		memcpy(b + FRAME_HDR + 4, &queue, 4);
	}
	memcpy(&next, b + FRAME_HDR + 8, 8);
	if (flags & 4) {
		next %= primary_committed + 2;
		memcpy(b + FRAME_HDR + 8, &next, 8);
	}
	if ((flags & 8) && next >= 2 && next - 2 < primary_committed)
		memcpy(b + FRAME_HDR + 24, &primary_crc[next - 2], 4);
}

static void send_all(int fd, const uint8_t *b, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t k = send(fd, b + off, n - off, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return; /* the other end closed: what it did not read, it refused */
		off += (size_t)k;
	}
}

/* What every thread of this process is doing (for a hang's report). */
static void dump_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300], buf[256] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", e->d_name);
		f = fopen(path, "r");
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = 0;
			fclose(f);
		}
		fprintf(stderr, "fuzz_repl: thread %s: syscall %s", e->d_name, buf);
	}
	if (d)
		closedir(d);
	if (getenv("FUZZ_REPL_GDB")) { /* where each thread is, for a hang's report */
		char cmd[200];

		snprintf(cmd, sizeof(cmd),
			 "gdb -p %d -batch -ex 'thread apply all bt 12' >&2 2>/dev/null </dev/null",
			 (int)getpid());
		if (system(cmd) < 0)
			fprintf(stderr, "fuzz_repl: gdb did not run\n");
	}
}

/* Waits for fd to be readable; 0 when the deadline passed. (libFuzzer's SIGALRM, its -timeout
 * watch, interrupts poll: that is not the deadline.) */
static int wait_in(int fd, uint64_t deadline)
{
	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		uint64_t now = now_ns();
		int n;

		if (now >= deadline)
			return 0;
		n = poll(&pf, 1, (int)((deadline - now) / 1000000 + 1));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			FAIL("poll: %s\n", strerror(errno));
	}
}

/* A blocking connect to the primary on loopback that a signal does not break. */
static int connect_primary(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(primary_port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;
	socklen_t el = sizeof(err);

	if (fd < 0)
		FAIL("socket: %s\n", strerror(errno));
	if (!connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return fd;
	if (errno != EINTR)
		FAIL("connect to the primary: %s\n", strerror(errno));
	for (;;) { /* interrupted: the connection goes on; wait for it */
		struct pollfd pf = {fd, POLLOUT, 0};

		if (poll(&pf, 1, 1000) > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
		FAIL("connect to the primary: %s\n", strerror(err ? err : errno));
	return fd;
}

/* The standby's acknowledgements in [b, n): none beyond what it committed. */
static size_t check_acks(const uint8_t *b, size_t n, uint64_t committed)
{
	size_t at = 0;

	while (at + FRAME_HDR <= n) {
		uint32_t type, len;

		memcpy(&type, b + at, 4);
		memcpy(&len, b + at + 4, 4);
		if (n - at - FRAME_HDR < len)
			break;
		if (type == XR_ACK && len == ACK_LEN) {
			uint64_t seq;

			memcpy(&seq, b + at + FRAME_HDR, 8);
			if (seq > committed)
				FAIL("the standby acknowledged record %llu, committed through "
				     "%llu\n",
				     (unsigned long long)seq, (unsigned long long)committed);
		} else if (type != XR_HELLO) {
			FAIL("the standby sent frame type %u (%u bytes)\n", type, len);
		}
		at += FRAME_HDR + len;
	}
	return at;
}

static void standby_side(const uint8_t *in, size_t n)
{
	static struct xd_shard sh;
	static uint8_t acks[1 << 16];
	size_t alen = 0;
	char err[400];
	uint64_t deadline = now_ns() + DEADLINE_NS;
	int c = -1;

	xd_g_opts = &o_standby;
	fz_clean(standby_dir);
	if (xd_shard_init(&sh, 0, 0, &o_standby, fz_config(), err, sizeof(err)))
		FAIL("standby shard: %s\n", err);
	/* Until it has connected and said hello. */
	while (c < 0) {
		struct pollfd pf = {lfd, POLLIN, 0};

		if (now_ns() > deadline)
			FAIL("the standby did not connect\n");
		xd_repl_follow(&sh);
		if (poll(&pf, 1, 1) > 0)
			c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	}
	while (alen < FRAME_HDR + HELLO_LEN) {
		ssize_t k;

		xd_repl_follow(&sh);
		if (!wait_in(c, deadline))
			FAIL("no hello from the standby\n");
		k = recv(c, acks + alen, sizeof(acks) - alen, MSG_DONTWAIT);
		if (k <= 0)
			FAIL("the standby closed before its hello\n");
		alen += (size_t)k;
	}
	send_all(c, in, n);
	shutdown(c, SHUT_WR);
	/* Until it has taken everything and stopped following (it closes), or stopped itself. */
	while (xd_repl_fd(&sh) >= 0 && !sh.fatal) {
		struct pollfd pf[2] = {{xd_repl_fd(&sh), POLLIN, 0}, {c, POLLIN, 0}};
		ssize_t k;

		if (now_ns() > deadline)
			FAIL("the standby is still following %.1f s after the stream ended\n",
			     DEADLINE_NS / 1e9);
		poll(pf, 2, 10);
		xd_repl_follow(&sh);
		k = recv(c, acks + alen, sizeof(acks) - alen, MSG_DONTWAIT);
		if (k > 0)
			alen += (size_t)k;
		if (alen == sizeof(acks)) {
			size_t used = check_acks(acks, alen, sh.journal.committed_seq);

			memmove(acks, acks + used, alen - used);
			alen -= used;
		}
	}
	for (ssize_t k; (k = recv(c, acks + alen, sizeof(acks) - alen, MSG_DONTWAIT)) > 0;)
		alen += (size_t)k;
	check_acks(acks, alen, sh.journal.committed_seq);
	hard_close(c);
	xd_shard_free(&sh);
	atomic_store(&xd_stop, 0);
}

static void primary_side(const uint8_t *in, size_t n)
{
	static struct xd_shard sh;
	static uint8_t out[1 << 16];
	uint64_t deadline = now_ns() + DEADLINE_NS, acked;
	char err[400];
	size_t got = 0;
	int c, wake;

	xd_g_opts = &o_primary;
	atomic_store(&xd_stop, 0);
	if (xd_shard_init(&sh, 0, 0, &o_primary, fz_config(), err, sizeof(err)))
		FAIL("primary shard: %s\n", err);
	if (sh.journal.committed_seq != primary_committed)
		FAIL("primary journal: %llu records, made %llu\n",
		     (unsigned long long)sh.journal.committed_seq,
		     (unsigned long long)primary_committed);
	c = connect_primary();
	send_all(c, in, n);
	shutdown(c, SHUT_WR);
	/* What it streams back, until it closes the connection; meanwhile this thread is the
	 * shard's, which serves a caught-up standby itself (its acks, --durability replicated). */
	for (;;) {
		ssize_t k;

		while (now_ns() < deadline && !wait_in(c, now_ns() + 2000000))
			xd_repl_poll(&sh);
		if (!wait_in(c, deadline) && (dump_threads(), 1))
			FAIL("the primary did not close the connection %.1f s after the stream "
			     "ended (xd_stop %d, got %zu bytes)\n",
			     DEADLINE_NS / 1e9, atomic_load(&xd_stop), got);
		k = recv(c, out, sizeof(out), MSG_DONTWAIT);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	acked = xd_repl_acked(&sh);
	if (acked > sh.journal.committed_seq)
		FAIL("a standby's ack released record %llu, the journal holds %llu\n",
		     (unsigned long long)acked, (unsigned long long)sh.journal.committed_seq);
	/* Stop the sender thread: xd_stop, and a connection to wake it from its poll. */
	atomic_store(&xd_stop, 1);
	wake = connect_primary();
	xd_shard_free(&sh);
	hard_close(wake);
	hard_close(c);
	atomic_store(&xd_stop, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned flags;
	size_t n;

	if (!size)
		return 0;
	xd_log_quiet = !getenv("FUZZ_REPL_LOG");
	if (lfd < 0)
		setup();
	flags = data[0];
	n = size - 1 < MAX_IN ? size - 1 : MAX_IN;
	memcpy(buf, data + 1, n);
	if (flags & 1) {
		fix_hello(buf, n, flags);
		primary_side(buf, n);
	} else {
		fix_records(buf, n, flags);
		standby_side(buf, n);
	}
	return 0;
}
