/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Kernel-UDP backend (--mode udp): one UDP socket per queue bound to the gateway port (several
 * queues: SO_REUSEPORT, bound in queue order, so the kernel's hash of the source address and
 * port picks the queue of a flow, the same one for as long as it lives), datagrams received in
 * bursts with recvmmsg() and answers sent in bursts with sendmmsg(), so the syscall count is per
 * burst, never per message. The fallback where XDP cannot attach and the baseline every fast-path
 * figure is compared with. Poll modes: spin (non-blocking receive), busy (blocking receive with
 * SO_BUSY_POLL / SO_PREFER_BUSY_POLL and a 1 ms timeout) and sleep (the shard loop polls fd()).
 * Without a filter in front the shard applies the allowlist itself. With --xdp-filter the XDP
 * program xdp_steer (xdpfilter.c) runs on --iface before the kernel stack, as in afxdp mode:
 * header checks, allowlist, session bindings (written at login), per-source rate; what it
 * passes (XDP_PASS, no socket in xsks_map: no_sock_cnt) reaches this socket, the rest is
 * dropped and counted in the program's stats_map ("xdp_counters" in stats, /metrics).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "xdpexd.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define RX_BUF 2048
#define TX_CHUNK 64

struct udp_port {
	int fd;
	int flags; /* recvmmsg flags: MSG_WAITFORONE (busy) or MSG_DONTWAIT */
	struct mmsghdr rx[XD_MAX_BATCH];
	struct iovec riov[XD_MAX_BATCH];
	struct sockaddr_in rsrc[XD_MAX_BATCH];
	struct xd_peer peer[XD_MAX_BATCH];
	uint8_t rbuf[XD_MAX_BATCH][RX_BUF];
	struct mmsghdr tx[TX_CHUNK];
	struct iovec tiov[TX_CHUNK];
	struct sockaddr_in tdst[TX_CHUNK];
};

static int udp_check(const struct xd_opts *o, char *err, size_t errlen)
{
	for (int i = 0; i < o->nqueues; i++)
		if (o->queues[i] != i)
			return snprintf(
				   err, errlen,
				   "--queues: udp mode serves queues 0..n-1 in order (one socket "
				   "each), not %d at position %d",
				   o->queues[i], i),
			       -1;
	if (o->backend_argc)
		return snprintf(err, errlen, "udp mode takes no arguments after --"), -1;
	if (o->iface && !if_nametoindex(o->iface))
		return snprintf(err, errlen, "--iface %s: no such interface", o->iface), -1;
	if (o->xdp_filter && !o->iface)
		return snprintf(err, errlen,
				"--xdp-filter: needs --iface (the interface the filter attaches "
				"to; the socket is bound to it too, so nothing arrives around it)"),
		       -1;
	return 0;
}

static bool udp_filters(const struct xd_opts *o)
{
	return o->xdp_filter;
}

static int udp_setup(const struct xd_opts *o, const struct xd_config *cfg, char *err, size_t errlen)
{
	if (!o->xdp_filter)
		return 0;
	if (xd_xdp_setup(o, cfg, "udp --xdp-filter", err, errlen))
		return -1;
	xd_log("udp: XDP filter on %s (attach=%s): header checks, allowlist, session bindings "
	       "and per-source rate before the socket",
	       o->iface, xd_xdp_attach_mode());
	return 0;
}

static void udp_teardown(void)
{
	xd_xdp_teardown();
}

static int udp_apply(const struct xd_config *f)
{
	return xd_xdp_apply(f); /* (nothing without the filter) */
}

static void udp_info(json_t *out)
{
	if (!xd_xdp_maps())
		return;
	xd_xdp_info(out); /* attach_mode, xdp_counters */
	json_object_set_new(out, "xdp_filter", json_true());
}

static void udp_bind(void *state, uint32_t sid, const struct xd_peer *p)
{
	(void)state;
	xd_xdp_bind(sid, p);
}

static void udp_unbind(void *state, uint32_t sid)
{
	(void)state;
	xd_xdp_unbind(sid);
}

static bool udp_rx_waits(const struct xd_opts *o)
{
	return o->poll == XD_POLL_BUSY;
}

static void udp_close(void *state)
{
	struct udp_port *u = state;

	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

static int udp_open(const struct xd_port_cfg *c, void **state, char *err, size_t errlen)
{
	const struct xd_opts *o = c->o;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(o->port)};
	struct timeval tv = {0, 1000};
	struct udp_port *u = calloc(1, sizeof(*u));
	int one = 1, bufsz = 8 << 20;

	*state = u;
	if (!u)
		return snprintf(err, errlen, "out of memory"), -1;
	u->flags = o->poll == XD_POLL_BUSY ? MSG_WAITFORONE : MSG_DONTWAIT;
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u->fd < 0)
		return snprintf(err, errlen, "udp socket: %s", strerror(errno)), -1;
	if (inet_pton(AF_INET, o->addr, &a.sin_addr) != 1)
		return snprintf(err, errlen, "--addr %s: not an IPv4 address", o->addr), -1;
	/* Larger socket buffers are a wish (capped by net.core.*mem_max), not a requirement. */
	(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	if (o->iface && setsockopt(u->fd, SOL_SOCKET, SO_BINDTODEVICE, o->iface,
				   (socklen_t)strlen(o->iface) + 1))
		return snprintf(err, errlen, "--iface %s: %s", o->iface, strerror(errno)), -1;
	if (o->poll == XD_POLL_BUSY) {
		int usec = o->busy_usec, budget = o->busy_budget;

		if (setsockopt(u->fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) ||
		    setsockopt(u->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
		    setsockopt(u->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
			xd_log("warning: udp: busy-poll socket options refused (%s); busy mode "
			       "without kernel busy polling",
			       strerror(errno));
	}
	/* The feed to a multicast group leaves through the bound address's interface. */
	if (a.sin_addr.s_addr &&
	    setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &a.sin_addr, sizeof(a.sin_addr)))
		return snprintf(err, errlen, "udp socket: IP_MULTICAST_IF %s: %s", o->addr,
				strerror(errno)),
		       -1;
	if (setsockopt(u->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		return snprintf(err, errlen, "udp socket: SO_RCVTIMEO: %s", strerror(errno)), -1;
	if (o->nqueues > 1) {
		/* The first queue makes sure nobody holds the port (a plain bind, released at
		 * once), so a second gateway cannot silently share it through SO_REUSEPORT; then
		 * every queue's socket joins the group, in queue order (the group's index of a
		 * socket is its queue: the kernel steers a flow by hash to an index). */
		if (c->index == 0) {
			int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			int r = probe < 0 ? -1 : bind(probe, (struct sockaddr *)&a, sizeof(a));
			int e = errno;

			if (probe >= 0)
				close(probe);
			if (r)
				return snprintf(err, errlen, "udp port %u on %s: %s", o->port,
						o->addr, strerror(e)),
				       -1;
		}
		if (setsockopt(u->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
			return snprintf(err, errlen, "udp socket: SO_REUSEPORT: %s",
					strerror(errno)),
			       -1;
	}
	if (bind(u->fd, (struct sockaddr *)&a, sizeof(a)))
		return snprintf(err, errlen, "udp port %u on %s: %s", o->port, o->addr,
				strerror(errno)),
		       -1;
	for (int i = 0; i < XD_MAX_BATCH; i++) {
		u->riov[i] = (struct iovec){u->rbuf[i], RX_BUF};
		u->rx[i].msg_hdr = (struct msghdr){.msg_name = &u->rsrc[i],
						   .msg_namelen = sizeof(u->rsrc[i]),
						   .msg_iov = &u->riov[i],
						   .msg_iovlen = 1};
	}
	char qs[32] = "";

	if (o->nqueues > 1)
		snprintf(qs, sizeof(qs), " queue %d of %d", c->queue, o->nqueues);
	xd_log("udp: listening on %s:%u%s%s%s poll=%s batch=%d", o->addr, o->port,
	       o->iface ? " dev " : "", o->iface ? o->iface : "", qs,
	       o->poll == XD_POLL_SPIN	 ? "spin"
	       : o->poll == XD_POLL_BUSY ? "busy"
					 : "sleep",
	       o->batch);
	return 0;
}

static uint32_t udp_rx_burst(void *state, struct xd_rxd *rx, uint32_t max)
{
	struct udp_port *u = state;
	int n = recvmmsg(u->fd, u->rx, max, u->flags, NULL);

	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct xd_peer *p = &u->peer[i];

		p->kind = XD_PEER_UDP;
		p->addr = u->rsrc[i].sin_addr.s_addr;
		p->port = u->rsrc[i].sin_port;
		/* A truncated datagram is longer than any valid one: unusable. */
		rx[i].buf = u->rx[i].msg_hdr.msg_flags & MSG_TRUNC ? NULL : u->rbuf[i];
		rx[i].len = u->rx[i].msg_len;
		rx[i].src = p;
		u->rx[i].msg_hdr.msg_namelen = sizeof(u->rsrc[i]);
	}
	return (uint32_t)n;
}

/* Sends the first n prepared datagrams; returns how many could not be sent. */
static uint32_t flush_chunk(struct udp_port *u, int n)
{
	int off = 0, tries = 0;
	uint32_t failed = 0;

	while (off < n) {
		int r = sendmmsg(u->fd, u->tx + off, (unsigned)(n - off), 0);

		if (r < 0) {
			if ((errno == EAGAIN || errno == ENOBUFS || errno == EINTR) &&
			    ++tries < 100)
				continue;
			/* Unreachable peer or a full queue: the answer is journaled and can be
			 * fetched with RetransmitRequest; count it and go on. */
			failed++;
			off++;
			continue;
		}
		off += r;
	}
	return failed;
}

static uint32_t udp_tx(void *state, const struct xd_txd *tx, uint32_t n)
{
	struct udp_port *u = state;
	uint32_t failed = 0;
	int k = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct xd_txd *t = &tx[i];

		if (!t->send || t->to.kind != XD_PEER_UDP)
			continue;
		u->tdst[k] = (struct sockaddr_in){
		    .sin_family = AF_INET, .sin_port = t->to.port, .sin_addr.s_addr = t->to.addr};
		u->tiov[k] = (struct iovec){(void *)t->buf, t->len};
		u->tx[k].msg_hdr = (struct msghdr){.msg_name = &u->tdst[k],
						   .msg_namelen = sizeof(u->tdst[k]),
						   .msg_iov = &u->tiov[k],
						   .msg_iovlen = 1};
		if (++k == TX_CHUNK) {
			failed += flush_chunk(u, k);
			k = 0;
		}
	}
	if (k)
		failed += flush_chunk(u, k);
	return failed;
}

static int udp_fd(void *state)
{
	return ((struct udp_port *)state)->fd;
}

const struct xd_backend xd_backend_udp = {
    .name = "udp",
    .peer_kind = XD_PEER_UDP,
    .check = udp_check,
    .setup = udp_setup,
    .teardown = udp_teardown,
    .apply = udp_apply,
    .info = udp_info,
    .rx_waits = udp_rx_waits,
    .filters = udp_filters,
    .open = udp_open,
    .close = udp_close,
    .rx_burst = udp_rx_burst,
    .tx = udp_tx,
    .fd = udp_fd,
    .bind = udp_bind,
    .unbind = udp_unbind,
};
