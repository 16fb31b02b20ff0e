/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * AF_XDP mode (--mode afxdp): the xdp_steer program (libxdpex_xdp) attached to the interface,
 * native mode first with a logged fallback to generic; per served queue one AF_XDP socket with
 * its own UMEM, zero-copy where the driver allows it else copy, need_wakeup set, the fill ring
 * sized twice the frames posted to it. Datagrams are read straight out of the UMEM frames and the
 * frames go back to the fill ring right after the batch (the journal and the answers hold copies).
 * Answers are written into tx frames: Ethernet, IPv4 and UDP headers from the addresses the
 * session's datagrams arrived with (MACs, IPs and ports swapped), IPv4 header checksum and UDP
 * checksum computed. Poll modes: spin, busy (SO_PREFER_BUSY_POLL + SO_BUSY_POLL + budget, the
 * loop's recvfrom() drives the NAPI poll) and sleep (poll() with a 1 ms timeout).
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
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <jansson.h>

#include "xdpex_xdp.h"
#include "xdpexd.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define FRAME 4096u
#define HDRS (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

struct afxdp_q {
	void *area;
	uint64_t area_len;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	int fd;
	int wake_fd;
	uint32_t nframes;
	uint64_t *free_tx; /* stack of free tx frame addresses */
	uint32_t nfree_tx;
	uint64_t rx_addr[XD_MAX_BATCH];
	bool zerocopy;
};

static struct {
	struct xdpex_xdp *x;
	const struct xdpex_maps *maps;
	int ifindex;
	const char *attach;
	const char *bind;
	struct afxdp_q *q[XD_MAX_QUEUES];
} g = { .attach = "none", .bind = "none" };

static void lib_log(enum xdpex_log_level level, const char *fmt, va_list ap)
{
	char buf[512];

	if (level == XDPEX_LOG_DEBUG && !xd_g_opts->verbose)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	xd_log("xdp: %s", buf);
}

/* rx queues of the interface (ethtool channels; works in any mount namespace), -1 if unknown. */
static int count_rx_queues(const char *iface)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), n = -1;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	ifr.ifr_data = (void *)&ch;
	if (fd >= 0 && !ioctl(fd, SIOCETHTOOL, &ifr))
		n = (int)(ch.rx_count + ch.combined_count);
	if (fd >= 0)
		close(fd);
	return n > 0 ? n : -1;
}

int xd_afxdp_apply(const struct xd_config *f)
{
	int rc = 0;

	if (!g.maps)
		return 0;
	if (f->has_rate)
		rc |= xdpex_set_rate(g.maps, f->rate_pps, f->rate_burst);
	if (f->has_allow) {
		struct xdpex_lpm_key cur[XD_MAX_ALLOW];
		int n = xdpex_allow_list(g.maps, cur, XD_MAX_ALLOW);

		for (int i = 0; i < n; i++)
			xdpex_allow_del(g.maps, cur[i].addr, cur[i].prefixlen);
		for (uint32_t i = 0; i < f->nallow; i++)
			rc |= xdpex_allow_add(g.maps, f->allow[i].addr, f->allow[i].len);
	}
	return rc ? -1 : 0;
}

int xd_afxdp_global_open(const struct xd_opts *o, const struct xd_config *cfg, char *err,
			 size_t errlen)
{
	struct xdpex_xdp_opts xo = { .pin_dir = o->pin_dir, .ports = &o->port, .nports = 1 };
	enum xdpex_mode mode = o->xdp_mode == 1 ? XDPEX_MODE_NATIVE
			       : o->xdp_mode == 2 ? XDPEX_MODE_SKB
						  : XDPEX_MODE_AUTO;
	int nq = count_rx_queues(o->iface), rc;

	for (int i = 0; i < o->nqueues; i++)
		if (nq > 0 && o->queues[i] >= nq)
			return snprintf(err, errlen, "--queues %d: %s has %d rx queue%s (0..%d)",
					o->queues[i], o->iface, nq, nq == 1 ? "" : "s", nq - 1),
			       -1;
	xdpex_set_log(lib_log);
	g.ifindex = (int)if_nametoindex(o->iface);
	rc = xdpex_xdp_open(&g.x, &xo);
	if (rc)
		return snprintf(err, errlen, "XDP program: cannot load/pin in %s: %s", o->pin_dir,
				strerror(-rc)),
		       -1;
	rc = xdpex_xdp_attach(g.x, g.ifindex, mode);
	if (rc)
		return snprintf(err, errlen, "XDP program: cannot attach to %s: %s%s", o->iface,
				strerror(-rc),
				rc == -EBUSY ? " (another XDP program holds the interface)" : ""),
		       -1;
	g.attach = xdpex_xdp_mode(g.x) == XDPEX_MODE_NATIVE ? "native" : "generic";
	if (mode == XDPEX_MODE_AUTO && xdpex_xdp_mode(g.x) != XDPEX_MODE_NATIVE)
		xd_log("afxdp: %s: native XDP refused, fell back to generic mode", o->iface);
	g.maps = xdpex_xdp_maps(g.x);
	if (xd_afxdp_apply(cfg))
		return snprintf(err, errlen, "XDP maps: cannot set the allowlist or rate limit"),
		       -1;
	return 0;
}

void xd_afxdp_global_close(void)
{
	if (!g.x)
		return;
	xdpex_xdp_close(g.x);
	g.x = NULL;
	g.maps = NULL;
	xd_log("detached XDP from %s, pins removed", xd_g_opts->iface);
}

const char *xd_afxdp_attach_mode(void)
{
	return g.attach;
}

const char *xd_afxdp_bind_mode(void)
{
	return g.bind;
}

void xd_afxdp_counters(json_t *out)
{
	__u64 c[XDPEX_CNT_MAX];

	if (!g.maps || xdpex_read_counters(g.maps, c))
		return;
	for (int i = 0; i < XDPEX_CNT_MAX; i++)
		json_object_set_new(out, xdpex_cnt_name(i), json_integer((json_int_t)c[i]));
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

int xd_io_afxdp_open(struct xd_shard *sh, char *err, size_t errlen)
{
	const struct xd_opts *o = sh->opts;
	struct afxdp_q *q = calloc(1, sizeof(*q));
	uint32_t idx, nrx;
	int rc;

	if (!q)
		return snprintf(err, errlen, "out of memory"), -1;
	g.q[sh->index] = q;
	q->nframes = o->frames;
	q->area_len = (uint64_t)q->nframes * FRAME;
	q->area = mmap(NULL, q->area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	q->free_tx = calloc(q->nframes, sizeof(*q->free_tx));
	q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->area == MAP_FAILED || !q->free_tx || q->wake_fd < 0)
		return snprintf(err, errlen, "afxdp q%d: UMEM of %u frames: %s", sh->queue,
				q->nframes, strerror(errno)),
		       -1;
	rc = -EINVAL;
	if (o->bind_mode != 2) {
		rc = make_socket(q, o, sh->queue, XDP_ZEROCOPY);
		q->zerocopy = !rc;
		if (rc && o->bind_mode == 1)
			return snprintf(err, errlen, "afxdp %s queue %d: zero-copy refused: %s",
					o->iface, sh->queue, strerror(-rc)),
			       -1;
		if (rc)
			xd_log("afxdp: %s queue %d: zero-copy refused (%s), using copy mode",
			       o->iface, sh->queue, strerror(-rc));
	}
	if (rc)
		rc = make_socket(q, o, sh->queue, XDP_COPY);
	if (rc)
		return snprintf(err, errlen, "afxdp %s queue %d: cannot create the AF_XDP socket: %s",
				o->iface, sh->queue, strerror(-rc)),
		       -1;
	g.bind = q->zerocopy ? "zerocopy" : "copy";
	q->fd = xsk_socket__fd(q->xsk);
	if (o->poll == XD_POLL_BUSY) {
		int one = 1, usec = o->busy_usec, budget = o->busy_budget;

		if (setsockopt(q->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
		    setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) ||
		    setsockopt(q->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
			xd_log("warning: afxdp q%d: busy-poll socket options refused: %s",
			       sh->queue, strerror(errno));
	}
	/* Post the receive half of the UMEM; the fill ring has room for twice that. */
	nrx = q->nframes / 2;
	if (xsk_ring_prod__reserve(&q->fill, nrx, &idx) != nrx)
		return snprintf(err, errlen, "afxdp q%d: fill ring refused %u frames", sh->queue,
				nrx),
		       -1;
	for (uint32_t i = 0; i < nrx; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = (uint64_t)i * FRAME;
	xsk_ring_prod__submit(&q->fill, nrx);
	for (uint32_t i = nrx; i < q->nframes; i++)
		q->free_tx[q->nfree_tx++] = (uint64_t)i * FRAME;
	rc = xdpex_set_xsk(g.maps, (uint32_t)sh->queue, q->fd);
	if (rc)
		return snprintf(err, errlen, "afxdp q%d: cannot register the socket in xsks_map: %s",
				sh->queue, strerror(-rc)),
		       -1;
	xd_log("afxdp: %s queue %d: attach=%s bind=%s need_wakeup=1 frames=%u poll=%s", o->iface,
	       sh->queue, g.attach, g.bind, q->nframes,
	       o->poll == XD_POLL_SPIN ? "spin" : o->poll == XD_POLL_BUSY ? "busy" : "sleep");
	return 0;
}

void xd_afxdp_close(struct xd_shard *sh)
{
	struct afxdp_q *q = g.q[sh->index];

	if (!q)
		return;
	if (g.maps)
		xdpex_clear_xsk(g.maps, (uint32_t)sh->queue);
	if (q->xsk)
		xsk_socket__delete(q->xsk);
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area && q->area != MAP_FAILED)
		munmap(q->area, q->area_len);
	if (q->wake_fd >= 0)
		close(q->wake_fd);
	free(q->free_tx);
	free(q);
	g.q[sh->index] = NULL;
}

int xd_afxdp_wake_fd(struct xd_shard *sh)
{
	return g.q[sh->index] ? g.q[sh->index]->wake_fd : -1;
}

void xd_afxdp_bind(struct xd_shard *sh, uint32_t sid, const struct xd_peer *p)
{
	(void)sh;
	if (g.maps && p->kind == XD_PEER_UDP && xdpex_bind_session(g.maps, sid, p->addr, p->port))
		xd_log("warning: session %u: cannot program the XDP binding", sid);
}

void xd_afxdp_unbind(struct xd_shard *sh, uint32_t sid)
{
	(void)sh;
	if (g.maps)
		xdpex_unbind_session(g.maps, sid);
}

void xd_afxdp_stats(struct xd_shard *sh, json_t *out)
{
	struct afxdp_q *q = g.q[sh->index];
	struct xdp_statistics s;
	socklen_t len = sizeof(s);

	if (!q || getsockopt(q->fd, SOL_XDP, XDP_STATISTICS, &s, &len))
		return;
	json_object_set_new(
		out, "xdp",
		json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "rx_dropped", (json_int_t)s.rx_dropped,
			  "rx_invalid_descs", (json_int_t)s.rx_invalid_descs, "tx_invalid_descs",
			  (json_int_t)s.tx_invalid_descs, "rx_ring_full", (json_int_t)s.rx_ring_full,
			  "rx_fill_ring_empty_descs", (json_int_t)s.rx_fill_ring_empty_descs,
			  "tx_ring_empty_descs", (json_int_t)s.tx_ring_empty_descs));
}

/* ---- checksums ---- */

/* One's-complement sum of big-endian 16-bit words, 4 bytes a step into a 64-bit accumulator. */
static uint64_t csum_add(uint64_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		sum += ntohl(w);
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
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

static uint32_t build_frame(uint8_t *f, const struct xd_txd *t)
{
	struct ethhdr *eth = (struct ethhdr *)f;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	uint16_t ulen = (uint16_t)(sizeof(*udp) + t->len);
	uint64_t sum;

	memcpy(eth->h_dest, t->to.mac, ETH_ALEN);
	memcpy(eth->h_source, t->to.lmac, ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = htons((uint16_t)(sizeof(*ip) + ulen));
	ip->id = 0;
	ip->frag_off = htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = t->to.laddr;
	ip->daddr = t->to.addr;
	ip->check = htons(csum_fold(csum_add(0, ip, sizeof(*ip))));
	udp->source = t->to.lport;
	udp->dest = t->to.port;
	udp->len = htons(ulen);
	udp->check = 0;
	memcpy(udp + 1, t->buf, t->len);
	sum = csum_add(0, &ip->saddr, 8);
	sum += IPPROTO_UDP + ulen;
	sum = csum_add(sum, udp, ulen);
	udp->check = htons(csum_fold(sum));
	if (!udp->check)
		udp->check = 0xffff;
	return (uint32_t)(HDRS + t->len);
}

void xd_afxdp_send(struct xd_shard *sh, struct xd_txd *tx, uint32_t n)
{
	struct afxdp_q *q = g.q[sh->index];
	uint32_t i = 0, left = 0;

	for (uint32_t j = 0; j < n; j++) {
		if (!tx[j].send || tx[j].to.kind != XD_PEER_UDP)
			continue;
		if (tx[j].to.has_l2)
			left++;
		else
			sh->st.tx_errors++; /* no frame addresses known (cannot happen from rx) */
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
			sh->st.tx_errors += left;
			kick(q);
			return;
		}
		for (; i < n && k < want; i++) {
			struct xd_txd *t = &tx[i];
			struct xdp_desc *d;
			uint64_t addr;

			if (!t->send || t->to.kind != XD_PEER_UDP || !t->to.has_l2)
				continue;
			addr = q->free_tx[--q->nfree_tx];
			d = xsk_ring_prod__tx_desc(&q->tx, idx + k++);
			d->addr = addr;
			d->options = 0;
			d->len = build_frame(xsk_umem__get_data(q->area, addr), t);
		}
		xsk_ring_prod__submit(&q->tx, k);
		left -= k;
		kick(q);
	}
}

/* ---- receive ---- */

static bool parse_frame(struct xd_shard *sh, uint8_t *f, uint32_t len, const uint8_t **payload,
			size_t *plen, struct xd_peer *src)
{
	struct ethhdr *eth = (struct ethhdr *)f;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp;
	uint32_t ihl;

	if (len < HDRS || eth->h_proto != htons(ETH_P_IP) || ip->version != 4 ||
	    ip->protocol != IPPROTO_UDP)
		return false;
	ihl = ip->ihl * 4u;
	if (ihl < sizeof(*ip) || sizeof(*eth) + ihl + sizeof(*udp) > len)
		return false;
	udp = (struct udphdr *)((uint8_t *)ip + ihl);
	if (udp->dest != htons(sh->opts->port) || ntohs(udp->len) < sizeof(*udp) ||
	    sizeof(*eth) + ihl + ntohs(udp->len) > len)
		return false;
	*payload = (const uint8_t *)(udp + 1);
	*plen = ntohs(udp->len) - sizeof(*udp);
	src->kind = XD_PEER_UDP;
	src->has_l2 = 1;
	src->addr = ip->saddr;
	src->port = udp->source;
	src->laddr = ip->daddr;
	src->lport = udp->dest;
	memcpy(src->mac, eth->h_source, ETH_ALEN);
	memcpy(src->lmac, eth->h_dest, ETH_ALEN);
	return true;
}

void *xd_afxdp_loop(void *arg)
{
	struct xd_shard *sh = arg;
	struct afxdp_q *q = g.q[sh->index];
	const struct xd_opts *o = sh->opts;

	while (!atomic_load_explicit(&xd_stop, memory_order_relaxed)) {
		uint32_t idx, n, fidx;

		if (atomic_load_explicit(&sh->mbox.pending, memory_order_acquire))
			xd_shard_mbox(sh);
		n = xsk_ring_cons__peek(&q->rx, (uint32_t)o->batch, &idx);
		if (n) {
			xd_shard_batch_begin(sh);
			for (uint32_t i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
				uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
				uint8_t *f = xsk_umem__get_data(q->area, addr);
				struct xd_peer src = { 0 };
				const uint8_t *p;
				size_t plen;

				q->rx_addr[i] = xsk_umem__extract_addr(d->addr);
				if (parse_frame(sh, f, d->len, &p, &plen, &src)) {
					xd_shard_datagram(sh, p, plen, &src);
				} else {
					sh->st.rx_datagrams++;
					sh->st.malformed++;
				}
			}
			xsk_ring_cons__release(&q->rx, n);
			/* Frames back to the fill ring: the journal and answers hold copies. */
			while (xsk_ring_prod__reserve(&q->fill, n, &fidx) != n)
				;
			for (uint32_t i = 0; i < n; i++)
				*xsk_ring_prod__fill_addr(&q->fill, fidx + i) = q->rx_addr[i];
			xsk_ring_prod__submit(&q->fill, n);
			if (xd_shard_rx_batch_end(sh))
				break;
		}
		/* The entry socket costs a syscall: only idle turns serve it each time, and only
		 * when sleeping in poll(). */
		xd_shard_side_work(sh, !n && o->poll == XD_POLL_SLEEP);
		if (!n) {
			if (o->poll == XD_POLL_SLEEP)
				xd_shard_sleep(sh, q->fd, q->wake_fd);
			else if (o->poll == XD_POLL_BUSY || xsk_ring_prod__needs_wakeup(&q->fill))
				recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		if (q->nfree_tx < q->nframes / 2) { /* only while transmit frames are out */
			reclaim(q);
			/* Copy mode sends at most 32 frames per wakeup: keep kicking until the
			 * kernel has taken every queued answer, or they wait for the next send. */
			if (q->nfree_tx < q->nframes / 2)
				kick(q);
		}
	}
	xd_shard_batch_end(sh);
	return NULL;
}
