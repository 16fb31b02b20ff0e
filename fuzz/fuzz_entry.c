/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of the local order-entry socket (dataplane/entry.c) and everything behind
 * it: a real shard of the test gateway with its entry port open on a unix datagram socket, and
 * clients that send the input's datagrams to it through the kernel; the shard serves them as its
 * loop does (rx_burst, the pipeline, the batch committed to its journal, answers sent back to the
 * clients' socket paths), and the answers are read back. Logins can be signed with the test
 * secret, so the fuzzer reaches logged-in sessions, orders and retransmission, not just refusals.
 *
 * Input: datagrams as [flags u8][length u16 LE][bytes], at most 64.
 *   bit 0  sign the Login messages (HMAC of the test secret), bit 1 with client_ts = now
 *   bit 2  send from the second client socket (another path: a second peer)
 *   bit 3  send from an unbound socket (no path to answer to)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_entry: " __VA_ARGS__), abort())
#define MAX_DGRAMS 64
#define MAX_LEN 4096

static struct sockaddr_un gw;
static int cl[3] = {-1, -1, -1}; /* two bound clients and an unbound one */

static int unix_sock(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), sz = 1 << 20;

	if (fd < 0)
		FAIL("socket: %s\n", strerror(errno));
	if (path) {
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
		unlink(path);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
			FAIL("bind %s: %s\n", path, strerror(errno));
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	return fd;
}

static void drain(void)
{
	static uint8_t buf[MAX_LEN];

	for (int i = 0; i < 2; i++)
		while (recv(cl[i], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
}

/* Serves the entry port until it has nothing more (as the shard loop's side work does). */
static void serve(struct xd_shard *sh)
{
	uint32_t n;

	while ((n = sh->entry.be->rx_burst(sh->entry.st, sh->rx, XD_MAX_BATCH)))
		xd_shard_rx_batch(sh, &sh->entry, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xd_shard sh;
	static struct xd_port port;
	static uint8_t buf[MAX_LEN];
	char err[400];
	size_t off = 0;
	int sent = 0;

	xd_log_quiet = 1;
	if (!port.be) {
		char path[3][128];
		struct xd_port_cfg pc = {.path = path[0]};

		fz_opts(2);
		snprintf(path[0], sizeof(path[0]), "%s/entry.sock", fz_dir());
		snprintf(path[1], sizeof(path[1]), "%s/c1.sock", fz_dir());
		snprintf(path[2], sizeof(path[2]), "%s/c2.sock", fz_dir());
		port.be = &xd_backend_entry;
		if (port.be->open(&pc, &port.st, err, sizeof(err)))
			FAIL("entry port: %s\n", err);
		gw.sun_family = AF_UNIX;
		snprintf(gw.sun_path, sizeof(gw.sun_path), "%s", path[0]);
		cl[0] = unix_sock(path[1]);
		cl[1] = unix_sock(path[2]);
		cl[2] = unix_sock(NULL);
	}
	/* A fresh shard each run (the journal under fz_dir() wiped), the port moved in. */
	if (fz_shard(&sh, 0, 0, 1, err, sizeof(err)))
		FAIL("shard: %s\n", err);
	sh.entry = port;
	while (off + 3 <= size && sent < MAX_DGRAMS) {
		unsigned flags = data[off];
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		int who = flags & 8 ? 2 : flags & 4 ? 1 : 0;

		off += 3;
		if (len > size - off)
			len = size - off;
		if (len > MAX_LEN)
			len = MAX_LEN;
		memcpy(buf, data + off, len);
		off += len;
		if (flags & 1)
			fz_sign_logins(buf, len, flags & 2);
		if (sendto(cl[who], buf, len, 0, (struct sockaddr *)&gw, sizeof(gw)) < 0) {
			if (errno != EAGAIN)
				FAIL("sendto: %s\n", strerror(errno));
			serve(&sh); /* the gateway's queue is full: let it catch up */
			drain();
			continue;
		}
		sent++;
		if (sent % 16 == 0)
			serve(&sh);
	}
	serve(&sh);
	xd_shard_timers(&sh);
	xd_shard_batch_end(&sh);
	drain();
	if (sh.fatal)
		FAIL("the shard stopped: %s\n", strerror(-sh.fatal));
	sh.entry = (struct xd_port){0};
	xd_shard_free(&sh);
	return 0;
}
