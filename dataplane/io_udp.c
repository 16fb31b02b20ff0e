/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Kernel-UDP mode (--mode udp): one UDP socket bound to the gateway port, datagrams received in
 * batches with recvmmsg() and answers sent in batches with sendmmsg(), so the syscall count is per
 * batch, never per message. The fallback where XDP cannot attach and the baseline every AF_XDP
 * figure is compared with. Also holds the shard thread's main loop for this mode and the poll
 * modes: spin (non-blocking receive in a loop), busy (blocking receive with SO_BUSY_POLL /
 * SO_PREFER_BUSY_POLL, 1 ms timeout) and sleep (poll() with a 1 ms timeout).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xdpexd.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define RX_BUF 2048
#define TX_CHUNK 64

struct xd_io {
	int fd;
	int wake_fd;
	struct mmsghdr rx[XD_MAX_BATCH];
	struct iovec riov[XD_MAX_BATCH];
	struct sockaddr_in rsrc[XD_MAX_BATCH];
	uint8_t rbuf[XD_MAX_BATCH][RX_BUF];
	struct mmsghdr tx[TX_CHUNK];
	struct iovec tiov[TX_CHUNK];
	struct sockaddr_in tdst[TX_CHUNK];
};

int xd_io_udp_open(struct xd_shard *sh, char *err, size_t errlen)
{
	const struct xd_opts *o = sh->opts;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	struct xd_io *io = calloc(1, sizeof(*io));
	int one = 1, bufsz = 8 << 20;

	if (!io)
		return snprintf(err, errlen, "out of memory"), -1;
	sh->io = io;
	io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	io->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (io->fd < 0 || io->wake_fd < 0)
		return snprintf(err, errlen, "udp socket: %s", strerror(errno)), -1;
	if (inet_pton(AF_INET, o->addr, &a.sin_addr) != 1)
		return snprintf(err, errlen, "--addr %s: not an IPv4 address", o->addr), -1;
	setsockopt(io->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	setsockopt(io->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	if (o->iface && setsockopt(io->fd, SOL_SOCKET, SO_BINDTODEVICE, o->iface,
				   (socklen_t)strlen(o->iface) + 1))
		return snprintf(err, errlen, "--iface %s: %s", o->iface, strerror(errno)), -1;
	if (o->poll == XD_POLL_BUSY) {
		int usec = o->busy_usec, budget = o->busy_budget;

		if (setsockopt(io->fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) ||
		    setsockopt(io->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
		    setsockopt(io->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
			xd_log("warning: udp: busy-poll socket options refused (%s); busy mode "
			       "without kernel busy polling",
			       strerror(errno));
	}
	{
		struct timeval tv = { 0, 1000 };

		setsockopt(io->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (bind(io->fd, (struct sockaddr *)&a, sizeof(a)))
		return snprintf(err, errlen, "udp port %u on %s: %s", o->port, o->addr,
				strerror(errno)),
		       -1;
	for (int i = 0; i < XD_MAX_BATCH; i++) {
		io->riov[i] = (struct iovec){ io->rbuf[i], RX_BUF };
		io->rx[i].msg_hdr = (struct msghdr){ .msg_name = &io->rsrc[i],
						     .msg_namelen = sizeof(io->rsrc[i]),
						     .msg_iov = &io->riov[i],
						     .msg_iovlen = 1 };
	}
	xd_log("udp: listening on %s:%u%s%s poll=%s batch=%d", o->addr, o->port,
	       o->iface ? " dev " : "", o->iface ? o->iface : "",
	       o->poll == XD_POLL_SPIN ? "spin" : o->poll == XD_POLL_BUSY ? "busy" : "sleep",
	       o->batch);
	return 0;
}

static void flush_chunk(struct xd_shard *sh, struct xd_io *io, int n)
{
	int off = 0, tries = 0;

	while (off < n) {
		int r = sendmmsg(io->fd, io->tx + off, (unsigned)(n - off), 0);

		if (r < 0) {
			if ((errno == EAGAIN || errno == ENOBUFS || errno == EINTR) && ++tries < 100)
				continue;
			/* Unreachable peer or a full queue: the answer is journaled and can be
			 * fetched with RetransmitRequest; count it and go on. */
			sh->st.tx_errors++;
			off++;
			continue;
		}
		off += r;
	}
}

void xd_udp_send(struct xd_shard *sh, struct xd_txd *tx, uint32_t n)
{
	struct xd_io *io = sh->io;
	int k = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct xd_txd *t = &tx[i];

		if (!t->send || t->to.kind != XD_PEER_UDP)
			continue;
		io->tdst[k] = (struct sockaddr_in){ .sin_family = AF_INET,
						    .sin_port = t->to.port,
						    .sin_addr.s_addr = t->to.addr };
		io->tiov[k] = (struct iovec){ t->buf, t->len };
		io->tx[k].msg_hdr = (struct msghdr){ .msg_name = &io->tdst[k],
						     .msg_namelen = sizeof(io->tdst[k]),
						     .msg_iov = &io->tiov[k],
						     .msg_iovlen = 1 };
		if (++k == TX_CHUNK) {
			flush_chunk(sh, io, k);
			k = 0;
		}
	}
	if (k)
		flush_chunk(sh, io, k);
}

int xd_udp_wake_fd(struct xd_shard *sh)
{
	return sh->io ? sh->io->wake_fd : -1;
}

void xd_udp_close(struct xd_shard *sh)
{
	if (!sh->io)
		return;
	if (sh->io->fd >= 0)
		close(sh->io->fd);
	if (sh->io->wake_fd >= 0)
		close(sh->io->wake_fd);
	free(sh->io);
	sh->io = NULL;
}

void *xd_udp_loop(void *arg)
{
	struct xd_shard *sh = arg;
	struct xd_io *io = sh->io;
	const struct xd_opts *o = sh->opts;

	while (!atomic_load_explicit(&xd_stop, memory_order_relaxed)) {
		int n, flags = o->poll == XD_POLL_BUSY ? MSG_WAITFORONE : MSG_DONTWAIT;

		if (atomic_load_explicit(&sh->mbox.pending, memory_order_acquire))
			xd_shard_mbox(sh);
		n = recvmmsg(io->fd, io->rx, (unsigned)o->batch, flags, NULL);
		if (n > 0) {
			xd_shard_batch_begin(sh);
			for (int i = 0; i < n; i++) {
				struct xd_peer src = { .kind = XD_PEER_UDP,
						       .addr = io->rsrc[i].sin_addr.s_addr,
						       .port = io->rsrc[i].sin_port };

				if (io->rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
					sh->st.rx_datagrams++;
					sh->st.malformed++;
					continue;
				}
				xd_shard_datagram(sh, io->rbuf[i], io->rx[i].msg_len, &src);
				io->rx[i].msg_hdr.msg_namelen = sizeof(io->rsrc[i]);
			}
			if (xd_shard_rx_batch_end(sh))
				break;
		}
		/* A busy-poll receive has waited already: its idle turns serve the side work too. */
		xd_shard_side_work(sh, n <= 0 && o->poll != XD_POLL_SPIN);
		if (n <= 0 && o->poll == XD_POLL_SLEEP)
			xd_shard_sleep(sh, io->fd, io->wake_fd);
	}
	/* Anything still open is journaled before the thread ends. */
	xd_shard_batch_end(sh);
	return NULL;
}
