/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * AF_XDP backend (--mode afxdp): the xdp_steer program (libxdpex_xdp) attached to the interface,
 * native mode first with a logged fallback to generic; per served queue one AF_XDP socket with
 * its own UMEM, zero-copy where the driver allows it else copy, need_wakeup set, the fill ring
 * sized twice the frames posted to it. Datagrams are read straight out of the UMEM frames and the
 * frames go back to the fill ring right after the batch (the journal and the answers hold copies).
 * Answers are written into tx frames: Ethernet, IPv4 and UDP headers from the addresses the
 * session's datagrams arrived with (MACs, IPs and ports swapped), IPv4 header checksum and UDP
 * checksum computed. Poll modes: spin, busy (SO_PREFER_BUSY_POLL + SO_BUSY_POLL + budget, an idle
 * turn's recvfrom() drives the NAPI poll) and sleep (the shard loop polls fd()). The XDP program
 * is the filter in front (XD_BE_FILTERS): header checks, allowlist, per-source rate, bindings.
 *
 * UMEM layout per queue (--frames N, 4 KiB frames): frames [0, N/2) receive (posted to a fill ring
 * of N entries), frames [N/2, N) transmit; rx ring N/2, tx ring and completion ring N/2.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/ip.h>
#include <linux/sockios.h>
#include <linux/udp.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <jansson.h>

#include "frame.h"
#include "xdpex_xdp.h"
#include "xdpexd.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define FRAME 4096u

struct afxdp_q {
	int queue;
	int poll; /* enum xd_poll */
	void *area;
	uint64_t area_len;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	int fd;
	bool in_map; /* registered in xsks_map */
	uint32_t nframes;
	uint64_t *free_tx; /* stack of free tx frame addresses */
	uint32_t nfree_tx;
	uint64_t rx_addr[XD_MAX_BATCH];
	struct xd_peer peer[XD_MAX_BATCH];
	bool zerocopy;
};

static struct {
	const struct xdpex_maps *maps; /* the program's (xdpfilter.c) */
	const char *bind;
	const char *iface;
	uint16_t port; /* network order */
	uint8_t mac[6]; /* the interface's, for frames of our own (the feed) */
	uint32_t addr; /* its IPv4, network order (0: none) */
} g = {.bind = "none"};

/* rx queues of the interface (ethtool channels; works in any mount namespace), -1 if unknown. */
static int count_rx_queues(const char *iface)
{
	struct ethtool_channels ch = {.cmd = ETHTOOL_GCHANNELS};
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), n = -1;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	ifr.ifr_data = (void *)&ch;
	if (fd >= 0 && !ioctl(fd, SIOCETHTOOL, &ifr))
		n = (int)(ch.rx_count + ch.combined_count);
	if (fd >= 0)
		close(fd);
	return n > 0 ? n : -1;
}

static int afxdp_check(const struct xd_opts *o, char *err, size_t errlen)
{
	if (!o->iface)
		return snprintf(err, errlen, "--iface: required in afxdp mode"), -1;
	if (o->backend_argc)
		return snprintf(err, errlen, "afxdp mode takes no arguments after --"), -1;
	if (!if_nametoindex(o->iface))
		return snprintf(err, errlen, "--iface %s: no such interface", o->iface), -1;
	return 0;
}

static int afxdp_setup(const struct xd_opts *o, const struct xd_config *cfg, char *err,
		       size_t errlen)
{
	int nq = count_rx_queues(o->iface);

	for (int i = 0; i < o->nqueues; i++)
		if (nq > 0 && o->queues[i] >= nq)
			return snprintf(err, errlen, "--queues %d: %s has %d rx queue%s (0..%d)",
					o->queues[i], o->iface, nq, nq == 1 ? "" : "s", nq - 1),
			       -1;
	g.iface = o->iface;
	g.port = htons(o->port);
	{
		struct ifreq ifr = {0};
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->iface);
		if (fd >= 0 && !ioctl(fd, SIOCGIFHWADDR, &ifr))
			memcpy(g.mac, ifr.ifr_hwaddr.sa_data, 6);
		if (fd >= 0 && !ioctl(fd, SIOCGIFADDR, &ifr))
			g.addr = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
		if (fd >= 0)
			close(fd);
	}
	if (xd_xdp_setup(o, cfg, "afxdp", err, errlen))
		return -1;
	g.maps = xd_xdp_maps();
	return 0;
}

static void afxdp_teardown(void)
{
	xd_xdp_teardown();
	g.maps = NULL;
}

static void afxdp_info(json_t *out)
{
	xd_xdp_info(out); /* attach_mode, xdp_counters */
	json_object_set_new(out, "bind_mode", json_string(g.bind));
}

static int make_socket(struct afxdp_q *q, const struct xd_opts *o, int queue, uint16_t zc)
{
	struct xsk_umem_config uc = {
	    .fill_size = q->nframes,
	    .comp_size = q->nframes / 2,
	    .frame_size = FRAME,
	    .frame_headroom = 0,
	};
	struct xsk_socket_config sc = {
	    .rx_size = q->nframes / 2,
	    .tx_size = q->nframes / 2,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .bind_flags = XDP_USE_NEED_WAKEUP | zc,
	};
	int rc;

	rc = xsk_umem__create(&q->umem, q->area, q->area_len, &q->fill, &q->comp, &uc);
	if (rc)
		return rc;
	rc = xsk_socket__create(&q->xsk, o->iface, (uint32_t)queue, q->umem, &q->rx, &q->tx, &sc);
	if (rc) {
		xsk_umem__delete(q->umem);
		q->umem = NULL;
		q->xsk = NULL;
	}
	return rc;
}

static void afxdp_close(void *state)
{
	struct afxdp_q *q = state;

	if (!q)
		return;
	if (g.maps && q->in_map)
		xdpex_clear_xsk(g.maps, (uint32_t)q->queue);
	if (q->xsk)
		xsk_socket__delete(q->xsk);
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area && q->area != MAP_FAILED)
		munmap(q->area, q->area_len);
	free(q->free_tx);
	free(q);
}

static int afxdp_open(const struct xd_port_cfg *c, void **state, char *err, size_t errlen)
{
	const struct xd_opts *o = c->o;
	struct afxdp_q *q = calloc(1, sizeof(*q));
	uint32_t idx, nrx;
	int rc;

	*state = q;
	if (!q)
		return snprintf(err, errlen, "out of memory"), -1;
	q->queue = c->queue;
	q->poll = o->poll;
	q->nframes = o->frames;
	q->area_len = (uint64_t)q->nframes * FRAME;
	q->area =
	    mmap(NULL, q->area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	q->free_tx = calloc(q->nframes, sizeof(*q->free_tx));
	if (q->area == MAP_FAILED || !q->free_tx)
		return snprintf(err, errlen, "afxdp q%d: UMEM of %u frames: %s", c->queue,
				q->nframes, strerror(errno)),
		       -1;
	rc = -EINVAL;
	if (o->bind_mode != 2) {
		rc = make_socket(q, o, c->queue, XDP_ZEROCOPY);
		q->zerocopy = !rc;
		if (rc && o->bind_mode == 1)
			return snprintf(err, errlen, "afxdp %s queue %d: zero-copy refused: %s",
					o->iface, c->queue, strerror(-rc)),
			       -1;
		if (rc)
			xd_log("afxdp: %s queue %d: zero-copy refused (%s), using copy mode",
			       o->iface, c->queue, strerror(-rc));
	}
	if (rc)
		rc = make_socket(q, o, c->queue, XDP_COPY);
	if (rc)
		return snprintf(err, errlen,
				"afxdp %s queue %d: cannot create the AF_XDP socket: %s", o->iface,
				c->queue, strerror(-rc)),
		       -1;
	g.bind = q->zerocopy ? "zerocopy" : "copy";
	q->fd = xsk_socket__fd(q->xsk);
	if (o->poll == XD_POLL_BUSY) {
		int one = 1, usec = o->busy_usec, budget = o->busy_budget;

		if (setsockopt(q->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
		    setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) ||
		    setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
			xd_log("warning: afxdp q%d: busy-poll socket options refused: %s", c->queue,
			       strerror(errno));
	}
	/* Post the receive half of the UMEM; the fill ring has room for twice that. */
	nrx = q->nframes / 2;
	if (xsk_ring_prod__reserve(&q->fill, nrx, &idx) != nrx)
		return snprintf(err, errlen, "afxdp q%d: fill ring refused %u frames", c->queue,
				nrx),
		       -1;
	for (uint32_t i = 0; i < nrx; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = (uint64_t)i * FRAME;
	xsk_ring_prod__submit(&q->fill, nrx);
	for (uint32_t i = nrx; i < q->nframes; i++)
		q->free_tx[q->nfree_tx++] = (uint64_t)i * FRAME;
	rc = xdpex_set_xsk(g.maps, (uint32_t)c->queue, q->fd);
	if (rc)
		return snprintf(err, errlen,
				"afxdp q%d: cannot register the socket in xsks_map: %s", c->queue,
				strerror(-rc)),
		       -1;
	q->in_map = true;
	xd_log("afxdp: %s queue %d: attach=%s bind=%s need_wakeup=1 frames=%u poll=%s", o->iface,
	       c->queue, xd_xdp_attach_mode(), g.bind, q->nframes,
	       o->poll == XD_POLL_SPIN	 ? "spin"
	       : o->poll == XD_POLL_BUSY ? "busy"
					 : "sleep");
	return 0;
}

static void afxdp_bind(void *state, uint32_t sid, const struct xd_peer *p)
{
	(void)state;
	xd_xdp_bind(sid, p);
}

static void afxdp_unbind(void *state, uint32_t sid)
{
	(void)state;
	xd_xdp_unbind(sid);
}

static void afxdp_stats(void *state, json_t *out)
{
	struct afxdp_q *q = state;
	struct xdp_statistics s;
	socklen_t len = sizeof(s);

	if (getsockopt(q->fd, SOL_XDP, XDP_STATISTICS, &s, &len))
		return;
	json_object_set_new(
	    out, "xdp",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "rx_dropped", (json_int_t)s.rx_dropped,
		      "rx_invalid_descs", (json_int_t)s.rx_invalid_descs, "tx_invalid_descs",
		      (json_int_t)s.tx_invalid_descs, "rx_ring_full", (json_int_t)s.rx_ring_full,
		      "rx_fill_ring_empty_descs", (json_int_t)s.rx_fill_ring_empty_descs,
		      "tx_ring_empty_descs", (json_int_t)s.tx_ring_empty_descs));
}

static void afxdp_self(void *state, struct xd_peer *p)
{
	(void)state;
	memcpy(p->lmac, g.mac, 6);
	p->laddr = g.addr;
	p->has_l2 = 1;
}

static int afxdp_fd(void *state)
{
	return ((struct afxdp_q *)state)->fd;
}

/* ---- transmit ---- */

static void reclaim(struct afxdp_q *q)
{
	uint32_t idx, n = xsk_ring_cons__peek(&q->comp, q->nframes / 2, &idx);

	for (uint32_t i = 0; i < n; i++)
		q->free_tx[q->nfree_tx++] = *xsk_ring_cons__comp_addr(&q->comp, idx + i);
	if (n)
		xsk_ring_cons__release(&q->comp, n);
}

static void kick(struct afxdp_q *q)
{
	if (xsk_ring_prod__needs_wakeup(&q->tx))
		sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
}

static uint32_t afxdp_tx(void *state, const struct xd_txd *tx, uint32_t n)
{
	struct afxdp_q *q = state;
	uint32_t i = 0, left = 0, failed = 0;

	for (uint32_t j = 0; j < n; j++) {
		if (!tx[j].send || tx[j].to.kind != XD_PEER_UDP)
			continue;
		if (tx[j].to.has_l2)
			left++;
		else
			failed++; /* no frame addresses known (cannot happen from rx) */
	}
	while (left) {
		uint32_t want, idx, k = 0;

		reclaim(q);
		for (int spin = 0; q->nfree_tx == 0 && spin < 100000; spin++) {
			kick(q);
			reclaim(q);
		}
		want = left < q->nfree_tx ? left : q->nfree_tx;
		if (!want || xsk_ring_prod__reserve(&q->tx, want, &idx) != want) {
			/* Ring stuck: the answers stay journaled and can be retransmitted. */
			kick(q);
			return failed + left;
		}
		for (; i < n && k < want; i++) {
			const struct xd_txd *t = &tx[i];
			struct xdp_desc *d;
			uint64_t addr;

			if (!t->send || t->to.kind != XD_PEER_UDP || !t->to.has_l2)
				continue;
			addr = q->free_tx[--q->nfree_tx];
			d = xsk_ring_prod__tx_desc(&q->tx, idx + k++);
			d->addr = addr;
			d->options = 0;
			d->len = xd_frame_build(xsk_umem__get_data(q->area, addr), &t->to, t->buf,
						t->len, true);
		}
		xsk_ring_prod__submit(&q->tx, k);
		left -= k;
		kick(q);
	}
	return failed;
}

/* ---- receive ---- */

static uint32_t afxdp_rx_burst(void *state, struct xd_rxd *rx, uint32_t max)
{
	struct afxdp_q *q = state;
	uint32_t idx, n = xsk_ring_cons__peek(&q->rx, max, &idx);

	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
		uint8_t *f = xsk_umem__get_data(q->area, xsk_umem__add_offset_to_addr(d->addr));
		size_t plen = 0;

		q->rx_addr[i] = xsk_umem__extract_addr(d->addr);
		rx[i].src = &q->peer[i];
		if (!xd_frame_parse(f, d->len, g.port, &rx[i].buf, &plen, &q->peer[i]))
			rx[i].buf = NULL;
		rx[i].len = (uint32_t)plen;
	}
	if (n)
		xsk_ring_cons__release(&q->rx, n);
	return n;
}

/* The burst's frames back to the fill ring: the journal and the answers hold copies. */
static void afxdp_rx_release(void *state, uint32_t n)
{
	struct afxdp_q *q = state;
	uint32_t fidx;

	while (xsk_ring_prod__reserve(&q->fill, n, &fidx) != n)
		; /* it holds twice the frames posted: room comes as soon as the kernel takes some
		   */
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, fidx + i) = q->rx_addr[i];
	xsk_ring_prod__submit(&q->fill, n);
}

static void afxdp_poll(void *state, bool idle)
{
	struct afxdp_q *q = state;

	if (idle && (q->poll == XD_POLL_BUSY || xsk_ring_prod__needs_wakeup(&q->fill)))
		recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	if (q->nfree_tx < q->nframes / 2) { /* only while transmit frames are out */
		reclaim(q);
		/* Copy mode sends at most 32 frames per wakeup: keep kicking until the kernel
		 * has taken every queued answer, or they wait for the next send. */
		if (q->nfree_tx < q->nframes / 2)
			kick(q);
	}
}

const struct xd_backend xd_backend_afxdp = {
    .name = "afxdp",
    .flags = XD_BE_FILTERS,
    .peer_kind = XD_PEER_UDP,
    .check = afxdp_check,
    .setup = afxdp_setup,
    .teardown = afxdp_teardown,
    .apply = xd_xdp_apply,
    .info = afxdp_info,
    .open = afxdp_open,
    .close = afxdp_close,
    .rx_burst = afxdp_rx_burst,
    .rx_release = afxdp_rx_release,
    .tx = afxdp_tx,
    .poll = afxdp_poll,
    .fd = afxdp_fd,
    .stats = afxdp_stats,
    .bind = afxdp_bind,
    .unbind = afxdp_unbind,
    .self = afxdp_self,
};
