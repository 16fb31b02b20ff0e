/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * DPDK backend (--mode dpdk, EAL arguments after `--`): one ethdev port, one rx/tx queue pair per
 * served queue (--queues 0..n-1, RSS over IP/UDP when n > 1), an mbuf pool sized from the rings.
 * The port sees every frame, so this backend is its own filter (XD_BE_FILTERS): each frame goes
 * through the XDP program's checks compiled for user space (xdp/xdpex_filter.h, the same
 * xdpex_check.h), ARP requests for the gateway address (--addr) are answered, everything else that
 * is not ours is dropped and counted (not_ours_cnt). Answers are built in mbufs with IPv4 and UDP
 * checksums by the NIC where the port offers the TX offloads, else in software.
 *
 * Poll modes: spin (the queue thread owns its core) or sleep (an idle turn naps up to 1 ms: there
 * is no kernel to wake it, so that much latency is added; for idle hosts and tests). The queue
 * threads are registered with EAL (rte_thread_register) so the mempool's per-lcore caches work.
 * Stats: per queue the port's queue counters; mode-wide the port's totals, every xstat and the
 * filter's counters (as xdp_counters: the same names and meanings as the kernel program's).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "frame.h"
#include "xdpex_filter.h"
#include "xdpex_xdp.h"
#include "xdpexd.h"

#define RX_DESC 1024
#define TX_DESC 1024
#define TX_BURST 64
#define POOL_CACHE 256
#define MAX_XSTATS 512

static struct {
	bool eal; /* rte_eal_init succeeded */
	bool started; /* port started */
	uint16_t port;
	int nq;
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[64];
	struct rte_ether_addr mac;
	uint32_t addr_be; /* gateway IPv4 (--addr), ARP */
	uint16_t udp_port_be;
	bool tx_offload; /* IPv4 and UDP checksums by the NIC */
	struct rte_mempool *pool;
	/* The filter configuration: the published snapshot, and what apply() starts from. */
	struct xdpex_filter_cfg *fcfg;
	struct xdpex_lpm_key allow[XD_MAX_ALLOW];
	uint32_t nallow;
	uint64_t rate_pps, rate_burst;
	struct dpdk_q *q[XD_MAX_QUEUES];
} g;

struct dpdk_q {
	uint16_t qid;
	struct xdpex_filter *filter;
	struct rte_mbuf *held[XD_MAX_BATCH]; /* the burst's datagrams, freed on release */
	uint32_t nheld;
	struct xd_peer peer[XD_MAX_BATCH];
	uint64_t arp_replies, tx_nombuf;
};

static int dpdk_check(const struct xd_opts *o, char *err, size_t errlen)
{
	struct in_addr a;

	if (o->poll == XD_POLL_BUSY)
		return snprintf(
			   err, errlen,
			   "--poll busy: busy polling is a kernel socket feature; dpdk mode spins "
			   "(or, --poll sleep, naps up to 1 ms when idle)"),
		       -1;
	if (inet_pton(AF_INET, o->addr, &a) != 1 || !a.s_addr)
		return snprintf(err, errlen,
				"--addr %s: dpdk mode needs the gateway's IPv4 address (it answers "
				"ARP for it)",
				o->addr),
		       -1;
	for (int i = 0; i < o->nqueues; i++)
		if (o->queues[i] != i)
			return snprintf(
				   err, errlen,
				   "--queues: dpdk mode serves queues 0..n-1 of its port in order"),
			       -1;
	return 0;
}

/* ---- the filter's configuration ---- */

static int publish_filter(void)
{
	struct xdpex_filter_cfg *c = xdpex_filter_cfg_new(&g.udp_port_be, 1, 0, g.allow,
							  (int)g.nallow, g.rate_pps, g.rate_burst);

	if (!c)
		return -errno;
	xdpex_filter_publish(&g.fcfg, c);
	return 0;
}

static void take_config(const struct xd_config *f)
{
	if (f->has_allow) {
		for (uint32_t i = 0; i < f->nallow; i++)
			g.allow[i] = (struct xdpex_lpm_key){.prefixlen = f->allow[i].len,
							    .addr = f->allow[i].addr};
		g.nallow = f->nallow;
	}
	if (f->has_rate) {
		g.rate_pps = f->rate_pps;
		g.rate_burst = f->rate_burst;
	}
}

static int dpdk_apply(const struct xd_config *f)
{
	int rc;

	take_config(f);
	rc = publish_filter();
	if (rc)
		xd_log("error: dpdk: cannot publish the filter configuration: %s", strerror(-rc));
	return rc ? -1 : 0;
}

/* ---- process-wide ---- */

static int find_port(const struct xd_opts *o, char *err, size_t errlen)
{
	uint16_t p;

	if (!rte_eth_dev_count_avail())
		return snprintf(err, errlen,
				"dpdk: no ethdev port (give one to EAL after --, e.g. "
				"--vdev=net_af_packet0,iface=eth0, or bind a NIC to vfio-pci)"),
		       -1;
	if (o->iface) {
		if (rte_eth_dev_get_port_by_name(o->iface, &p))
			return snprintf(err, errlen, "--iface %s: no DPDK port of that name",
					o->iface),
			       -1;
		g.port = p;
		return 0;
	}
	RTE_ETH_FOREACH_DEV(p)
	{
		g.port = p;
		return 0;
	}
	return snprintf(err, errlen, "dpdk: no usable ethdev port"), -1;
}

static int dpdk_setup(const struct xd_opts *o, const struct xd_config *cfg, char *err,
		      size_t errlen)
{
	char *argv[64] = {"xdpexd"};
	struct rte_eth_conf conf = {0};
	struct rte_eth_dev_info info;
	uint16_t nrx = RX_DESC, ntx = TX_DESC;
	unsigned int nmbufs;
	cpu_set_t cpus;
	struct in_addr a;
	int rc;

	if (o->backend_argc >= (int)(sizeof(argv) / sizeof(argv[0])) - 1)
		return snprintf(err, errlen, "dpdk: at most 62 EAL arguments"), -1;
	for (int i = 0; i < o->backend_argc; i++)
		argv[i + 1] = o->backend_argv[i];
	/* EAL pins the calling thread to its main lcore; the queue threads are placed by --cpus
	 * (or nowhere), so the process keeps the affinity it had. */
	if (sched_getaffinity(0, sizeof(cpus), &cpus))
		return snprintf(err, errlen, "dpdk: sched_getaffinity: %s", strerror(errno)), -1;
	rc = rte_eal_init(o->backend_argc + 1, argv);
	if (rc < 0)
		return snprintf(err, errlen,
				"dpdk: EAL initialisation failed: %s (arguments after --)",
				rte_strerror(rte_errno)),
		       -1;
	g.eal = true;
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		xd_log("warning: dpdk: cannot restore the cpu affinity after EAL: %s",
		       strerror(errno));
	if (find_port(o, err, errlen))
		return -1;
	g.nq = o->nqueues;
	inet_pton(AF_INET, o->addr, &a);
	g.addr_be = a.s_addr;
	g.udp_port_be = htons(o->port);
	rc = rte_eth_dev_info_get(g.port, &info);
	if (rc)
		return snprintf(err, errlen, "dpdk port %u: device info: %s", g.port,
				strerror(-rc)),
		       -1;
	snprintf(g.driver, sizeof(g.driver), "%s", info.driver_name ? info.driver_name : "?");
	rte_eth_dev_get_name_by_port(g.port, g.name);
	if (g.nq > info.max_rx_queues || g.nq > info.max_tx_queues)
		return snprintf(err, errlen,
				"--queues: dpdk port %u (%s) has %u rx / %u tx queues, %d asked",
				g.port, g.driver, info.max_rx_queues, info.max_tx_queues, g.nq),
		       -1;
	g.tx_offload = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) &&
		       (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
	if (g.tx_offload)
		conf.txmode.offloads = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	if (g.nq > 1) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
		    (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
	}
	rc = rte_eth_dev_configure(g.port, (uint16_t)g.nq, (uint16_t)g.nq, &conf);
	if (!rc)
		rc = rte_eth_dev_adjust_nb_rx_tx_desc(g.port, &nrx, &ntx);
	if (rc)
		return snprintf(err, errlen, "dpdk port %u (%s): configure %d queue pairs: %s",
				g.port, g.driver, g.nq, strerror(-rc)),
		       -1;
	/* Every rx descriptor holds an mbuf, every tx descriptor may, and a batch holds up to
	 * XD_TX_SLOTS answers and XD_MAX_BATCH datagrams; plus the per-thread caches. */
	nmbufs = (unsigned int)g.nq * (nrx + ntx + XD_TX_SLOTS + XD_MAX_BATCH + POOL_CACHE);
	g.pool =
	    rte_pktmbuf_pool_create("xdpex_mbufs", nmbufs, POOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				    (int)rte_eth_dev_socket_id(g.port));
	if (!g.pool)
		return snprintf(
			   err, errlen,
			   "dpdk: mbuf pool of %u mbufs: %s (give EAL more memory, e.g. -m 1024)",
			   nmbufs, rte_strerror(rte_errno)),
		       -1;
	for (int i = 0; i < g.nq; i++) {
		rc = rte_eth_rx_queue_setup(g.port, (uint16_t)i, nrx, rte_eth_dev_socket_id(g.port),
					    NULL, g.pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup(g.port, (uint16_t)i, ntx,
						    rte_eth_dev_socket_id(g.port), NULL);
		if (rc)
			return snprintf(err, errlen, "dpdk port %u: queue %d: %s", g.port, i,
					strerror(-rc)),
			       -1;
	}
	take_config(cfg);
	rc = publish_filter();
	if (rc)
		return snprintf(err, errlen, "dpdk: filter configuration: %s", strerror(-rc)), -1;
	rc = rte_eth_dev_start(g.port);
	if (rc)
		return snprintf(err, errlen, "dpdk port %u (%s): start: %s", g.port, g.driver,
				strerror(-rc)),
		       -1;
	g.started = true;
	rte_eth_macaddr_get(g.port, &g.mac);
	xd_log("dpdk: port %u %s (%s) mac %02x:%02x:%02x:%02x:%02x:%02x, %d queue pair%s of %u/%u "
	       "descriptors, %u mbufs, checksums %s, gateway %s poll=%s",
	       g.port, g.name, g.driver, g.mac.addr_bytes[0], g.mac.addr_bytes[1],
	       g.mac.addr_bytes[2], g.mac.addr_bytes[3], g.mac.addr_bytes[4], g.mac.addr_bytes[5],
	       g.nq, g.nq == 1 ? "" : "s", nrx, ntx, nmbufs,
	       g.tx_offload ? "by the NIC" : "in software", o->addr,
	       o->poll == XD_POLL_SPIN ? "spin" : "sleep");
	return 0;
}

static void dpdk_teardown(void)
{
	if (g.started) {
		rte_eth_dev_stop(g.port);
		rte_eth_dev_close(g.port);
		g.started = false;
	}
	if (g.pool)
		rte_mempool_free(g.pool);
	g.pool = NULL;
	xdpex_filter_cfg_free_all(&g.fcfg);
	if (g.eal)
		rte_eal_cleanup();
	g.eal = false;
}

static void dpdk_info(json_t *out)
{
	__u64 c[XDPEX_CNT_MAX] = {0};
	struct rte_eth_xstat_name *names = NULL;
	struct rte_eth_xstat *xs = NULL;
	struct rte_eth_stats st;
	json_t *x = json_object(), *d, *xj = json_object();
	int n;

	json_object_set_new(out, "attach_mode", json_string("pmd"));
	json_object_set_new(out, "bind_mode", json_string(g.driver));
	for (int i = 0; i < g.nq; i++)
		if (g.q[i])
			xdpex_filter_counters(g.q[i]->filter, c);
	for (int i = 0; i < XDPEX_CNT_MAX; i++)
		json_object_set_new(x, xdpex_cnt_name(i), json_integer((json_int_t)c[i]));
	json_object_set_new(out, "xdp_counters", x);
	if (!g.started)
		return;
	d = json_pack("{s:i,s:s,s:s,s:b}", "port", g.port, "name", g.name, "driver", g.driver,
		      "tx_checksum_offload", g.tx_offload);
	if (!rte_eth_stats_get(g.port, &st))
		json_object_set_new(
		    d, "stats",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "ipackets",
			      (json_int_t)st.ipackets, "opackets", (json_int_t)st.opackets,
			      "ibytes", (json_int_t)st.ibytes, "obytes", (json_int_t)st.obytes,
			      "imissed", (json_int_t)st.imissed, "ierrors", (json_int_t)st.ierrors,
			      "oerrors", (json_int_t)st.oerrors, "rx_nombuf",
			      (json_int_t)st.rx_nombuf));
	n = rte_eth_xstats_get_names(g.port, NULL, 0);
	if (n > 0 && n <= MAX_XSTATS && (names = calloc((size_t)n, sizeof(*names))) &&
	    (xs = calloc((size_t)n, sizeof(*xs))) &&
	    rte_eth_xstats_get_names(g.port, names, (unsigned int)n) == n &&
	    rte_eth_xstats_get(g.port, xs, (unsigned int)n) == n)
		for (int i = 0; i < n; i++)
			if (xs[i].id < (uint64_t)n)
				json_object_set_new(xj, names[xs[i].id].name,
						    json_integer((json_int_t)xs[i].value));
	free(names);
	free(xs);
	json_object_set_new(d, "xstats", xj);
	json_object_set_new(out, "dpdk", d);
}

/* ---- per queue ---- */

static void dpdk_close(void *state)
{
	struct dpdk_q *q = state;

	if (!q)
		return;
	for (uint32_t i = 0; i < q->nheld; i++)
		rte_pktmbuf_free(q->held[i]);
	if (q->qid < XD_MAX_QUEUES && g.q[q->qid] == q)
		g.q[q->qid] = NULL;
	xdpex_filter_free(q->filter);
	free(q);
}

static int dpdk_open(const struct xd_port_cfg *c, void **state, char *err, size_t errlen)
{
	struct dpdk_q *q = calloc(1, sizeof(*q));

	*state = q;
	if (!q || !(q->filter = xdpex_filter_new(&g.fcfg)))
		return snprintf(err, errlen, "dpdk q%d: out of memory for the filter tables",
				c->queue),
		       -1;
	q->qid = (uint16_t)c->queue;
	g.q[q->qid] = q;
	return 0;
}

static void dpdk_thread_init(void *state)
{
	struct dpdk_q *q = state;

	if (rte_thread_register())
		xd_log("warning: dpdk q%u: cannot register the queue thread with EAL (%s): mbufs "
		       "bypass the per-lcore caches",
		       q->qid, rte_strerror(rte_errno));
}

static void send_arp_reply(struct dpdk_q *q, const uint8_t *f, uint32_t len)
{
	uint8_t reply[XD_ARP_FRAME];
	uint32_t n = xd_frame_arp_reply(f, len, g.addr_be, g.mac.addr_bytes, reply);
	struct rte_mbuf *m;
	char *p;

	if (!n || !(m = rte_pktmbuf_alloc(g.pool)))
		return;
	p = rte_pktmbuf_append(m, (uint16_t)n);
	if (p) {
		memcpy(p, reply, n);
		if (rte_eth_tx_burst(g.port, q->qid, &m, 1) == 1) {
			q->arp_replies++;
			return;
		}
	}
	rte_pktmbuf_free(m);
}

static uint32_t dpdk_rx_burst(void *state, struct xd_rxd *rx, uint32_t max)
{
	struct dpdk_q *q = state;
	struct rte_mbuf *m[XD_MAX_BATCH];
	uint16_t n = rte_eth_rx_burst(g.port, q->qid, m, (uint16_t)max);
	uint64_t now = n ? xd_mono_ns() : 0;
	uint32_t k = 0;

	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *f = rte_pktmbuf_mtod(m[i], const uint8_t *);
		uint32_t len = rte_pktmbuf_data_len(m[i]), reason;
		size_t plen = 0;
		int v;

		if (m[i]->nb_segs > 1) {
			/* Larger than an mbuf: never a datagram of ours (they fit 1472 bytes). */
			xdpex_filter_count(q->filter, XDPEX_CNT_RX);
			xdpex_filter_count(q->filter, XDPEX_CNT_TRUNCATED);
			rte_pktmbuf_free(m[i]);
			continue;
		}
		v = xdpex_filter_run(q->filter, f, len, now, &reason);
		if (v == XDPEX_V_PASS && reason == XDPEX_CNT_NOT_OURS)
			send_arp_reply(q, f, len);
		if (v != XDPEX_V_OURS) {
			rte_pktmbuf_free(m[i]);
			continue;
		}
		xdpex_filter_count(q->filter, XDPEX_CNT_REDIRECT);
		rx[k].src = &q->peer[k];
		if (!xd_frame_parse(f, len, g.udp_port_be, &rx[k].buf, &plen, &q->peer[k]))
			rx[k].buf = NULL; /* valid but VLAN-tagged: not served here */
		rx[k].len = (uint32_t)plen;
		q->held[k++] = m[i];
	}
	q->nheld = k;
	return k;
}

static void dpdk_rx_release(void *state, uint32_t n)
{
	struct dpdk_q *q = state;

	(void)n;
	rte_pktmbuf_free_bulk(q->held, q->nheld);
	q->nheld = 0;
}

/* Hands m[0..n) to the port, retrying a full ring for a while; frees and returns what it could
 * not send. */
static uint32_t tx_flush(struct dpdk_q *q, struct rte_mbuf **m, uint16_t n)
{
	uint16_t sent = 0;

	for (int spin = 0; sent < n && spin < 100000; spin++)
		sent += rte_eth_tx_burst(g.port, q->qid, m + sent, n - sent);
	if (sent < n)
		rte_pktmbuf_free_bulk(m + sent, n - sent);
	return n - sent;
}

static uint32_t dpdk_tx(void *state, const struct xd_txd *tx, uint32_t n)
{
	struct dpdk_q *q = state;
	struct rte_mbuf *m[TX_BURST];
	uint32_t failed = 0;
	uint16_t k = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct xd_txd *t = &tx[i];
		struct rte_mbuf *b;
		uint8_t *p;

		if (!t->send || t->to.kind != XD_PEER_UDP)
			continue;
		if (!t->to.has_l2 || !(b = rte_pktmbuf_alloc(g.pool))) {
			q->tx_nombuf += t->to.has_l2;
			failed++;
			continue;
		}
		p = (uint8_t *)rte_pktmbuf_append(b, (uint16_t)(XD_FRAME_HDRS + t->len));
		if (!p) {
			rte_pktmbuf_free(b);
			failed++;
			continue;
		}
		xd_frame_build(p, &t->to, t->buf, t->len, !g.tx_offload);
		if (g.tx_offload) {
			struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(p + RTE_ETHER_HDR_LEN);
			struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

			b->l2_len = RTE_ETHER_HDR_LEN;
			b->l3_len = sizeof(*ip);
			b->ol_flags |=
			    RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
			udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, b->ol_flags);
		}
		m[k++] = b;
		if (k == TX_BURST) {
			failed += tx_flush(q, m, k);
			k = 0;
		}
	}
	if (k)
		failed += tx_flush(q, m, k);
	return failed;
}

static void dpdk_stats(void *state, json_t *out)
{
	struct dpdk_q *q = state;
	struct rte_eth_stats st;
	json_t *d = json_pack("{s:i,s:I,s:I}", "queue", q->qid, "arp_replies",
			      (json_int_t)q->arp_replies, "tx_nombuf", (json_int_t)q->tx_nombuf);

	if (q->qid < RTE_ETHDEV_QUEUE_STAT_CNTRS && !rte_eth_stats_get(g.port, &st)) {
		json_object_set_new(d, "ipackets", json_integer((json_int_t)st.q_ipackets[q->qid]));
		json_object_set_new(d, "opackets", json_integer((json_int_t)st.q_opackets[q->qid]));
		json_object_set_new(d, "errors", json_integer((json_int_t)st.q_errors[q->qid]));
	}
	json_object_set_new(out, "dpdk", d);
}

static void dpdk_bind(void *state, uint32_t sid, const struct xd_peer *p)
{
	struct dpdk_q *q = state;

	if (xdpex_filter_bind(q->filter, sid, p->addr, p->port))
		xd_log("warning: dpdk q%u: session %u: binding table full", q->qid, sid);
}

static void dpdk_self(void *state, struct xd_peer *p)
{
	(void)state;
	memcpy(p->lmac, g.mac.addr_bytes, 6);
	p->laddr = g.addr_be;
	p->has_l2 = 1;
}

static void dpdk_unbind(void *state, uint32_t sid)
{
	xdpex_filter_unbind(((struct dpdk_q *)state)->filter, sid);
}

const struct xd_backend xd_backend_dpdk = {
    .name = "dpdk",
    .flags = XD_BE_FILTERS,
    .peer_kind = XD_PEER_UDP,
    .check = dpdk_check,
    .setup = dpdk_setup,
    .teardown = dpdk_teardown,
    .apply = dpdk_apply,
    .info = dpdk_info,
    .open = dpdk_open,
    .close = dpdk_close,
    .thread_init = dpdk_thread_init,
    .rx_burst = dpdk_rx_burst,
    .rx_release = dpdk_rx_release,
    .tx = dpdk_tx,
    .stats = dpdk_stats,
    .bind = dpdk_bind,
    .unbind = dpdk_unbind,
    .self = dpdk_self,
};
