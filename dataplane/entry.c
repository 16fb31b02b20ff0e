/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The local order-entry socket (--entry-socket, unix SOCK_DGRAM) as a backend: the same binary
 * datagrams as the wire, the same sessions, sequencing and journal. The control plane's REST and
 * gRPC order entry log in their own sessions here. A client binds its own socket to a path; a
 * Login binds the session to that path and every answer goes there. The shard loop serves this
 * port between network bursts, so order entry from here never takes a lock on the engine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "xdpexd.h"

#define ENTRY_BATCH 32
#define ENTRY_BUF 2048

struct entry_port {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct mmsghdr rx[ENTRY_BATCH];
	struct iovec iov[ENTRY_BATCH];
	struct sockaddr_un src[ENTRY_BATCH];
	struct xd_peer peer[ENTRY_BATCH];
	uint8_t buf[ENTRY_BATCH][ENTRY_BUF];
	struct mmsghdr tx[ENTRY_BATCH];
	struct iovec tiov[ENTRY_BATCH];
	struct sockaddr_un dst[ENTRY_BATCH];
};

static void entry_close(void *state)
{
	struct entry_port *e = state;

	if (!e)
		return;
	if (e->fd >= 0) {
		close(e->fd);
		unlink(e->path);
	}
	free(e);
}

static int entry_open(const struct xd_port_cfg *c, void **state, char *err, size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct entry_port *e;
	int probe, rc, bufsz = 4 << 20;

	*state = NULL;
	if (strlen(c->path) >= sizeof(a.sun_path))
		return snprintf(err, errlen, "--entry-socket %s: path too long (max %zu)", c->path,
				sizeof(a.sun_path) - 1),
		       -1;
	strcpy(a.sun_path, c->path);
	/* A live socket at the path belongs to another process: refuse rather than steal it. */
	probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && !connect(probe, (struct sockaddr *)&a, sizeof(a))) {
		close(probe);
		return snprintf(err, errlen, "--entry-socket %s: in use by another process",
				c->path),
		       -1;
	}
	if (probe >= 0)
		close(probe);
	e = calloc(1, sizeof(*e));
	if (!e)
		return snprintf(err, errlen, "out of memory"), -1;
	*state = e;
	unlink(c->path);
	e->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (e->fd < 0)
		return snprintf(err, errlen, "--entry-socket %s: %s", c->path, strerror(errno)), -1;
	rc = xd_bind_unix(e->fd, &a, c->o);
	if (rc)
		return snprintf(err, errlen, "--entry-socket %s: %s", c->path, strerror(-rc)), -1;
	snprintf(e->path, sizeof(e->path), "%s", c->path);
	(void)setsockopt(e->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(e->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	for (int i = 0; i < ENTRY_BATCH; i++) {
		e->iov[i] = (struct iovec){e->buf[i], ENTRY_BUF};
		e->rx[i].msg_hdr = (struct msghdr){.msg_name = &e->src[i],
						   .msg_namelen = sizeof(e->src[i]),
						   .msg_iov = &e->iov[i],
						   .msg_iovlen = 1};
	}
	return 0;
}

static uint32_t entry_rx_burst(void *state, struct xd_rxd *rx, uint32_t max)
{
	struct entry_port *e = state;
	int n = recvmmsg(e->fd, e->rx, max < ENTRY_BATCH ? max : ENTRY_BATCH, MSG_DONTWAIT, NULL);

	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		socklen_t nl = e->rx[i].msg_hdr.msg_namelen;
		struct xd_peer *p = &e->peer[i];

		memset(p, 0, sizeof(*p));
		p->kind = XD_PEER_UNIX;
		rx[i].src = p;
		rx[i].len = e->rx[i].msg_len;
		rx[i].buf = e->buf[i];
		if (nl <= offsetof(struct sockaddr_un, sun_path) || !e->src[i].sun_path[0] ||
		    e->rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
			/* Unbound (or abstract) client: no path to answer to. */
			rx[i].buf = NULL;
		} else {
			memcpy(p->path, e->src[i].sun_path,
			       nl - offsetof(struct sockaddr_un, sun_path));
			p->path[sizeof(p->path) - 1] = 0;
		}
		e->rx[i].msg_hdr.msg_namelen = sizeof(e->src[i]);
	}
	return (uint32_t)n;
}

/* Sends the first k prepared datagrams; returns how many could not be sent. */
static uint32_t flush(struct entry_port *e, int k)
{
	uint32_t failed = 0;
	int off = 0;

	while (off < k) {
		int r = sendmmsg(e->fd, e->tx + off, (unsigned)(k - off), 0);

		if (r <= 0) {
			/* Client gone or its queue full: journaled, retransmittable. */
			failed++;
			off++;
		} else {
			off += r;
		}
	}
	return failed;
}

static uint32_t entry_tx(void *state, const struct xd_txd *tx, uint32_t n)
{
	struct entry_port *e = state;
	uint32_t failed = 0;
	int k = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct xd_txd *t = &tx[i];

		if (!t->send || t->to.kind != XD_PEER_UNIX)
			continue;
		e->dst[k].sun_family = AF_UNIX;
		memcpy(e->dst[k].sun_path, t->to.path, sizeof(e->dst[k].sun_path));
		e->tiov[k] = (struct iovec){(void *)t->buf, t->len};
		e->tx[k].msg_hdr = (struct msghdr){.msg_name = &e->dst[k],
						   .msg_namelen = sizeof(e->dst[k]),
						   .msg_iov = &e->tiov[k],
						   .msg_iovlen = 1};
		if (++k == ENTRY_BATCH) {
			failed += flush(e, k);
			k = 0;
		}
	}
	if (k)
		failed += flush(e, k);
	return failed;
}

static int entry_fd(void *state)
{
	return ((struct entry_port *)state)->fd;
}

const struct xd_backend xd_backend_entry = {
    .name = "entry",
    .peer_kind = XD_PEER_UNIX,
    .open = entry_open,
    .close = entry_close,
    .rx_burst = entry_rx_burst,
    .tx = entry_tx,
    .fd = entry_fd,
};
