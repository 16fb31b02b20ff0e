/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The local order-entry socket (--entry-socket, unix SOCK_DGRAM): the same binary datagrams as the
 * wire, the same sessions, sequencing and journal. The control plane's REST and gRPC order entry
 * log in their own sessions here. A client binds its own socket to a path; a Login binds the
 * session to that path and every answer goes there. Polled by the shard thread between network
 * batches, so order entry from here never takes a lock on the engine.
 */
#include <errno.h>
#include <fcntl.h>
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

struct entry_io {
	struct mmsghdr rx[ENTRY_BATCH];
	struct iovec iov[ENTRY_BATCH];
	struct sockaddr_un src[ENTRY_BATCH];
	uint8_t buf[ENTRY_BATCH][ENTRY_BUF];
	struct mmsghdr tx[ENTRY_BATCH];
	struct iovec tiov[ENTRY_BATCH];
	struct sockaddr_un dst[ENTRY_BATCH];
};

static struct entry_io *eio[XD_MAX_QUEUES];

int xd_entry_open(struct xd_shard *sh, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct entry_io *io;
	int fd, probe, bufsz = 4 << 20;

	if (strlen(path) >= sizeof(a.sun_path))
		return snprintf(err, errlen, "--entry-socket %s: path too long (max %zu)", path,
				sizeof(a.sun_path) - 1),
		       -1;
	strcpy(a.sun_path, path);
	/* A live socket at the path belongs to another process: refuse rather than steal it. */
	probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && !connect(probe, (struct sockaddr *)&a, sizeof(a))) {
		close(probe);
		return snprintf(err, errlen, "--entry-socket %s: in use by another process", path),
		       -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return snprintf(err, errlen, "--entry-socket %s: %s", path, strerror(errno)), -1;
	chmod(path, 0660);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	io = calloc(1, sizeof(*io));
	if (!io)
		return snprintf(err, errlen, "out of memory"), -1;
	for (int i = 0; i < ENTRY_BATCH; i++) {
		io->iov[i] = (struct iovec){ io->buf[i], ENTRY_BUF };
		io->rx[i].msg_hdr = (struct msghdr){ .msg_name = &io->src[i],
						     .msg_namelen = sizeof(io->src[i]),
						     .msg_iov = &io->iov[i],
						     .msg_iovlen = 1 };
	}
	eio[sh->index] = io;
	sh->entry_fd = fd;
	snprintf(sh->entry_path, sizeof(sh->entry_path), "%s", path);
	return 0;
}

int xd_entry_poll(struct xd_shard *sh)
{
	struct entry_io *io = eio[sh->index];
	int n;

	if (sh->entry_fd < 0)
		return 0;
	n = recvmmsg(sh->entry_fd, io->rx, ENTRY_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return 0;
	xd_shard_batch_begin(sh);
	for (int i = 0; i < n; i++) {
		struct xd_peer src = { .kind = XD_PEER_UNIX };
		socklen_t nl = io->rx[i].msg_hdr.msg_namelen;

		if (nl <= offsetof(struct sockaddr_un, sun_path) || !io->src[i].sun_path[0]) {
			/* Unbound (or abstract) client: no path to answer to. */
			sh->st.rx_datagrams++;
			sh->st.malformed++;
		} else {
			memcpy(src.path, io->src[i].sun_path,
			       nl - offsetof(struct sockaddr_un, sun_path));
			src.path[sizeof(src.path) - 1] = 0;
			xd_shard_datagram(sh, io->buf[i], io->rx[i].msg_len, &src);
		}
		io->rx[i].msg_hdr.msg_namelen = sizeof(io->src[i]);
	}
	xd_shard_batch_end(sh);
	return n;
}

void xd_entry_send(struct xd_shard *sh, struct xd_txd *tx, uint32_t n)
{
	struct entry_io *io = eio[sh->index];
	int k = 0;

	for (uint32_t i = 0; i <= n; i++) {
		if (i < n) {
			struct xd_txd *t = &tx[i];

			if (!t->send || t->to.kind != XD_PEER_UNIX)
				continue;
			io->dst[k].sun_family = AF_UNIX;
			memcpy(io->dst[k].sun_path, t->to.path, sizeof(io->dst[k].sun_path));
			io->tiov[k] = (struct iovec){ t->buf, t->len };
			io->tx[k].msg_hdr = (struct msghdr){ .msg_name = &io->dst[k],
							     .msg_namelen = sizeof(io->dst[k]),
							     .msg_iov = &io->tiov[k],
							     .msg_iovlen = 1 };
			k++;
		}
		if (k == ENTRY_BATCH || (i == n && k)) {
			int off = 0;

			while (off < k) {
				int r = sendmmsg(sh->entry_fd, io->tx + off, (unsigned)(k - off), 0);

				if (r <= 0) {
					/* Client gone or its queue full: journaled, retransmittable. */
					sh->st.tx_errors++;
					off++;
				} else {
					off += r;
				}
			}
			k = 0;
		}
	}
}

void xd_entry_close(struct xd_shard *sh)
{
	if (sh->entry_fd < 0)
		return;
	close(sh->entry_fd);
	unlink(sh->entry_path);
	free(eio[sh->index]);
	eio[sh->index] = NULL;
	sh->entry_fd = -1;
}
