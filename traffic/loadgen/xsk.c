/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * AF_XDP mode of xdpex-loadgen (--xdp IF): order datagrams leave as raw frames through an AF_XDP
 * socket (copy mode on veth) and the gateway's application answers come back through it,
 * steered by xdp_lg.bpf.c, which the generator attaches in place of whatever program the
 * interface had (the lab's xdp_pass) and puts back when it ends. Session messages (login,
 * heartbeats, SequenceGap, logout) and the rare resends stay on the ordinary UDP sockets, whose
 * source ports the raw frames reuse, so the gateway sees one address per session either way.
 *
 * UMEM: XSK_FRAMES frames of 2 KiB (64 MiB); the first half is posted to the fill ring (sized at
 * twice that, as the design notes ask), the second half is a free list for transmission.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include "loadgen.h"
#include "xdp_lg.skel.h"

/* 16384 receive frames: the gateway's answers for ~100 ms at 150 k datagrams/s, so a generator
 * preempted for a few scheduler slices on a shared machine does not run its fill ring dry
 * (4096 did: "fill_ring_empty" drops, then a retransmission storm). */
#define XSK_FRAMES 32768
#define XSK_FRAME 2048
#define XSK_RX_FRAMES (XSK_FRAMES / 2)
#define XSK_TX_FRAMES (XSK_FRAMES - XSK_RX_FRAMES)
#define HDRS (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

struct xsk_io {
	struct xdp_lg *skel;
	int ifindex, old_prog_fd;
	bool attached;
	void *area;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fq, tx;
	struct xsk_ring_cons cq, rx;
	uint64_t free_tx[XSK_TX_FRAMES];
	uint32_t nfree, outstanding;
	uint8_t src_mac[6], dst_mac[6];
	uint16_t ip_id;
};

static int own_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	int err = ioctl(fd, SIOCGIFHWADDR, &ifr) ? -errno : 0;
	close(fd);
	if (!err)
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return err;
}

/* The gateway's MAC from the neighbour table (the lab installs permanent entries). */
static int neigh_mac(const struct in_addr *ip, const char *ifname, uint8_t mac[6])
{
	char line[256], want[INET_ADDRSTRLEN];
	FILE *f = fopen("/proc/net/arp", "r");
	if (!f)
		return -errno;
	inet_ntop(AF_INET, ip, want, sizeof(want));
	int err = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char a[64], hw[64], dev[64];
		unsigned m[6];
		if (sscanf(line, "%63s %*s %*s %63s %*s %63s", a, hw, dev) != 3)
			continue;
		if (strcmp(a, want) || strcmp(dev, ifname))
			continue;
		if (sscanf(hw, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
			continue;
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)m[i];
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static uint16_t ip_csum(const void *hdr)
{
	const uint16_t *w = hdr;
	uint32_t sum = 0;
	for (int i = 0; i < 10; i++)
		sum += w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void fail(const char *what, int err)
{
	fprintf(stderr, "xdpex-loadgen: --xdp: %s: %s\n", what, strerror(err < 0 ? -err : err));
}

int xsk_io_open(struct config *cfg)
{
	struct xsk_io *x = calloc(1, sizeof(*x));
	int err;
	if (!x)
		return -ENOMEM;
	cfg->xio = x;
	x->old_prog_fd = -1;
	x->ifindex = (int)if_nametoindex(cfg->xdp_if);
	if (!x->ifindex) {
		fprintf(stderr, "xdpex-loadgen: --xdp %s: no such interface\n", cfg->xdp_if);
		return -ENODEV;
	}
	if ((err = own_mac(cfg->xdp_if, x->src_mac))) {
		fail("interface MAC", err);
		return err;
	}
	if ((err = neigh_mac(&cfg->server.sin_addr, cfg->xdp_if, x->dst_mac))) {
		fprintf(stderr,
			"xdpex-loadgen: --xdp %s: no neighbour entry for the server address "
			"(the lab installs one; else ping it once)\n",
			cfg->xdp_if);
		return err;
	}
	/* Keep the interface's current program alive so it can be put back. */
	__u32 old_id = 0;
	if (!bpf_xdp_query_id(x->ifindex, XDP_FLAGS_DRV_MODE, &old_id) && old_id)
		x->old_prog_fd = bpf_prog_get_fd_by_id(old_id);

	x->skel = xdp_lg__open();
	if (!x->skel) {
		fail("open BPF program", errno);
		return -errno;
	}
	x->skel->rodata->gw_port = ntohs(cfg->server.sin_port);
	if ((err = xdp_lg__load(x->skel))) {
		fail("load BPF program", err);
		return err;
	}
	err = bpf_xdp_attach(x->ifindex, bpf_program__fd(x->skel->progs.xdp_lg), XDP_FLAGS_DRV_MODE,
			     NULL);
	if (err) {
		fail("attach XDP program (native mode)", err);
		return err;
	}
	x->attached = true;

	if (posix_memalign(&x->area, (size_t)getpagesize(), (size_t)XSK_FRAMES * XSK_FRAME))
		return -ENOMEM;
	struct xsk_umem_config ucfg = {
	    .fill_size = XSK_RX_FRAMES * 2,
	    .comp_size = XSK_TX_FRAMES,
	    .frame_size = XSK_FRAME,
	    .frame_headroom = 0,
	};
	if ((err = xsk_umem__create(&x->umem, x->area, (uint64_t)XSK_FRAMES * XSK_FRAME, &x->fq,
				    &x->cq, &ucfg))) {
		fail("create UMEM", err);
		return err;
	}
	struct xsk_socket_config scfg = {
	    .rx_size = XSK_RX_FRAMES,
	    .tx_size = XSK_TX_FRAMES,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .xdp_flags = XDP_FLAGS_DRV_MODE,
	    .bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
	};
	if ((err = xsk_socket__create(&x->xsk, cfg->xdp_if, 0, x->umem, &x->rx, &x->tx, &scfg))) {
		fail("create AF_XDP socket on queue 0", err);
		return err;
	}
	__u32 q = 0;
	int fd = xsk_socket__fd(x->xsk);
	if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.lg_xsks_map), &q, &fd, BPF_ANY)) {
		fail("register the socket in lg_xsks_map", errno);
		return -errno;
	}
	__u32 idx;
	if (xsk_ring_prod__reserve(&x->fq, XSK_RX_FRAMES, &idx) != XSK_RX_FRAMES)
		return -EIO;
	for (uint32_t i = 0; i < XSK_RX_FRAMES; i++)
		*xsk_ring_prod__fill_addr(&x->fq, idx + i) = (uint64_t)i * XSK_FRAME;
	xsk_ring_prod__submit(&x->fq, XSK_RX_FRAMES);
	for (uint32_t i = 0; i < XSK_TX_FRAMES; i++)
		x->free_tx[x->nfree++] = (uint64_t)(XSK_RX_FRAMES + i) * XSK_FRAME;
	return 0;
}

void xsk_io_close(struct config *cfg)
{
	struct xsk_io *x = cfg->xio;
	if (!x)
		return;
	if (x->attached) {
		if (x->old_prog_fd >= 0)
			bpf_xdp_attach(x->ifindex, x->old_prog_fd, XDP_FLAGS_DRV_MODE, NULL);
		else
			bpf_xdp_detach(x->ifindex, XDP_FLAGS_DRV_MODE, NULL);
	}
	if (x->xsk)
		xsk_socket__delete(x->xsk);
	if (x->umem)
		xsk_umem__delete(x->umem);
	if (x->skel)
		xdp_lg__destroy(x->skel);
	if (x->old_prog_fd >= 0)
		close(x->old_prog_fd);
	free(x->area);
	free(x);
	cfg->xio = NULL;
}

static void reclaim(struct xsk_io *x)
{
	__u32 idx;
	unsigned n = xsk_ring_cons__peek(&x->cq, XSK_TX_FRAMES, &idx);
	for (unsigned i = 0; i < n; i++)
		x->free_tx[x->nfree++] = *xsk_ring_cons__comp_addr(&x->cq, idx + i);
	if (n)
		xsk_ring_cons__release(&x->cq, n);
	x->outstanding -= n;
}

static void kick(struct xsk_io *x)
{
	sendto(xsk_socket__fd(x->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0);
}

/* Transmits n prepared datagrams (payloads in iov) for session s as raw frames. Returns how
 * many went out; the rest is counted as send errors (the resend recovers them). */
unsigned xsk_io_send(struct config *cfg, struct stats *st, struct session *s,
		     const struct iovec *iov, unsigned n, uint64_t now)
{
	struct xsk_io *x = cfg->xio;
	uint64_t give_up = now + 100000000ull;
	reclaim(x);
	while (x->nfree < n) {
		kick(x);
		reclaim(x);
		if (x->nfree < n && now_ns() > give_up) {
			st->send_errors += n;
			return 0;
		}
	}
	__u32 idx;
	while (xsk_ring_prod__reserve(&x->tx, n, &idx) != n) {
		kick(x);
		if (now_ns() > give_up) {
			st->send_errors += n;
			return 0;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		uint64_t addr = x->free_tx[--x->nfree];
		uint8_t *f = xsk_umem__get_data(x->area, addr);
		struct ethhdr *eth = (struct ethhdr *)f;
		struct iphdr *ip = (struct iphdr *)(eth + 1);
		struct udphdr *udp = (struct udphdr *)(ip + 1);
		size_t len = iov[i].iov_len;
		memcpy(eth->h_dest, x->dst_mac, 6);
		memcpy(eth->h_source, x->src_mac, 6);
		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = htons((uint16_t)(sizeof(*ip) + sizeof(*udp) + len));
		ip->id = htons(x->ip_id++);
		ip->frag_off = htons(0x4000); /* DF */
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->check = 0;
		ip->saddr = s->local.sin_addr.s_addr;
		ip->daddr = cfg->server.sin_addr.s_addr;
		ip->check = ip_csum(ip);
		udp->source = s->local.sin_port;
		udp->dest = cfg->server.sin_port;
		udp->len = htons((uint16_t)(sizeof(*udp) + len));
		udp->check = 0; /* optional over IPv4 */
		memcpy(f + HDRS, iov[i].iov_base, len);
		struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, idx + i);
		d->addr = addr;
		d->len = (uint32_t)(HDRS + len);
		d->options = 0;
	}
	xsk_ring_prod__submit(&x->tx, n);
	x->outstanding += n;
	kick(x);
	s->last_send_ns = now;
	return n;
}

/* The socket's XDP_STATISTICS: frames the kernel could not deliver to the generator. */
int xsk_io_stats(struct config *cfg, uint64_t out[3])
{
	struct xdp_statistics xs;
	socklen_t len = sizeof(xs);
	if (!cfg->xio ||
	    getsockopt(xsk_socket__fd(cfg->xio->xsk), SOL_XDP, XDP_STATISTICS, &xs, &len))
		return -1;
	out[0] = xs.rx_dropped;
	out[1] = xs.rx_ring_full;
	out[2] = xs.rx_fill_ring_empty_descs;
	return 0;
}

/* Receives what the socket holds and hands each datagram to its session. */
unsigned xsk_io_poll(struct config *cfg, struct stats *st)
{
	struct xsk_io *x = cfg->xio;
	__u32 idx, fidx;
	if (x->outstanding) {
		reclaim(x);
		if (x->outstanding && xsk_ring_prod__needs_wakeup(&x->tx))
			kick(x);
	}
	unsigned n = xsk_ring_cons__peek(&x->rx, 64, &idx);
	if (!n) {
		if (xsk_ring_prod__needs_wakeup(&x->fq))
			recvfrom(xsk_socket__fd(x->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
		return 0;
	}
	uint64_t now = now_ns();
	while (xsk_ring_prod__reserve(&x->fq, n, &fidx) != n)
		;
	for (unsigned i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
		const uint8_t *f = xsk_umem__get_data(x->area, d->addr);
		*xsk_ring_prod__fill_addr(&x->fq, fidx + i) = d->addr & ~(uint64_t)(XSK_FRAME - 1);
		if (d->len < HDRS) {
			st->bad_datagrams++;
			continue;
		}
		const struct udphdr *udp =
		    (const struct udphdr *)(f + sizeof(struct ethhdr) + sizeof(struct iphdr));
		struct session *s = NULL;
		for (unsigned k = 0; k < cfg->nsess; k++)
			if (cfg->sess[k].local.sin_port == udp->dest) {
				s = &cfg->sess[k];
				break;
			}
		if (!s) {
			st->bad_datagrams++;
			continue;
		}
		size_t ulen = ntohs(udp->len);
		if (ulen < sizeof(*udp) || ulen - sizeof(*udp) > d->len - HDRS) {
			st->bad_datagrams++;
			continue;
		}
		st->rx_xsk++;
		handle_datagram(cfg, st, s, f + HDRS, ulen - sizeof(*udp), now);
	}
	xsk_ring_prod__submit(&x->fq, n);
	xsk_ring_cons__release(&x->rx, n);
	return n;
}
