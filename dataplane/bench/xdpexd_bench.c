/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpexd-bench: the dataplane pipeline alone, without a network: pre-built order datagrams (the
 * load generator's mix: resting orders, cancels, crossing IOC orders; two sessions) go through
 * the same code as live traffic (validation, sessions and sequencing, journal append and one
 * write per batch, engine, answers packed into datagrams) in batches, and the figures come out as
 * one JSON line: orders/s, ns per order, batch time percentiles, answers, journal bytes. The
 * answers are built but not transmitted (their sessions are bound to unix paths and no entry
 * socket is open), so the figure is what the dataplane costs on top of the NIC and the kernel.
 *
 * usage: xdpexd-bench [--orders N] [--per-dgram K] [--batch D] [--durability none|fsync]
 *                     [--journal-dir DIR] [--out FILE]
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdpexd.h"

#define SECRET "0123456789abcdef0123456789abcdef"

struct gen {
	uint64_t rng;
	uint64_t next_cl[3];
	uint64_t live[3][1024]; /* recent resting orders per session, for cancels */
	uint32_t nlive[3];
};

static uint64_t rnd(struct gen *g)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng;
}

static void make_msg(struct gen *g, uint32_t sid, uint8_t *m)
{
	uint64_t r = rnd(g) % 100;

	memset(m, 0, XE_MSG_SIZE);
	if (r < 30 && g->nlive[sid]) {
		struct xe_cancel *c = (void *)m;
		uint32_t i = (uint32_t)(rnd(g) % g->nlive[sid]);

		c->type = XE_CANCEL;
		c->symbol_id = 1;
		c->orig_cl_ord_id = g->live[sid][i];
		g->live[sid][i] = g->live[sid][--g->nlive[sid]];
	} else {
		struct xe_new_order *o = (void *)m;
		int buy = rnd(g) & 1, cross = r >= 90;

		o->type = XE_NEW_ORDER;
		o->side = buy ? XE_BUY : XE_SELL;
		o->ord_type = XE_ORD_LIMIT;
		o->tif = cross ? XE_TIF_IOC : XE_TIF_GTC;
		o->symbol_id = 1;
		o->cl_ord_id = ++g->next_cl[sid];
		/* Resting orders on their own side of 10000, crossing ones through it. */
		o->price = cross ? (buy ? 10100 : 9900)
				 : (buy ? 9999 - (int64_t)(rnd(g) % 100)
					: 10001 + (int64_t)(rnd(g) % 100));
		o->qty = 1 + (uint32_t)(rnd(g) % 100);
		if (!cross && g->nlive[sid] < 1024)
			g->live[sid][g->nlive[sid]++] = o->cl_ord_id;
	}
	((struct xe_new_order *)m)->client_ts = 1;
}

static void login(struct xd_shard *sh, uint32_t sid, const char *path)
{
	uint8_t buf[XE_HDR_SIZE + XE_MSG_SIZE] = {0}, data[20];
	struct xe_hdr *h = (void *)buf;
	struct xe_login *l = (void *)(buf + XE_HDR_SIZE);
	struct xd_peer p = {.kind = XD_PEER_UNIX};
	unsigned int len = 0;

	snprintf(p.path, sizeof(p.path), "%s", path);
	*h = (struct xe_hdr){.magic = XE_MAGIC,
			     .version = XE_VERSION,
			     .session_id = sid,
			     .count = 1,
			     .length = sizeof(buf)};
	l->type = XE_LOGIN;
	l->session_id = sid;
	l->nonce = xd_mono_ns() + sid;
	l->client_ts = xd_wall_ns();
	memcpy(data, &l->session_id, 4);
	memcpy(data + 4, &l->client_ts, 8);
	memcpy(data + 12, &l->nonce, 8);
	HMAC(EVP_sha256(), SECRET, 32, data, sizeof(data), l->hmac, &len);
	xd_shard_batch_begin(sh);
	xd_shard_datagram(sh, buf, sizeof(buf), &p);
	xd_shard_batch_end(sh);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"orders", required_argument, 0, 'n'},
	    {"per-dgram", required_argument, 0, 'k'},
	    {"batch", required_argument, 0, 'b'},
	    {"durability", required_argument, 0, 'd'},
	    {"journal-dir", required_argument, 0, 'j'},
	    {"out", required_argument, 0, 'o'},
	    {0, 0, 0, 0},
	};
	static struct xd_opts o;
	static struct xd_shard sh;
	struct xd_symbol_cfg sym = {.c = {1, 1, 1, 1, 1000000, 0, 0}, .queue = -1, .halted = -1};
	struct xd_session_cfg ses[2];
	struct xd_config cfg = {.engine = {1u << 20, 16, 16},
				.heartbeat_ms = 3600000,
				.skew_ms = 5000,
				.symbols = &sym,
				.nsymbols = 1,
				.sessions = ses,
				.nsessions = 2};
	long orders = 2000000, per = 16, batch = 64;
	char tmpl[] = "/tmp/xdpexd-bench-XXXXXX", err[512], *dir = NULL;
	const char *out = NULL;
	uint64_t seq[3] = {0, 1, 1}, *lat, t_all = 0, nb = 0;
	uint8_t *dgrams;
	size_t dlen = XE_HDR_SIZE + (size_t)XE_MAX_MSGS * XE_MSG_SIZE;
	long ndg;
	struct gen g = {.rng = 0x9e3779b97f4a7c15ull};
	int c;

	o.durability = XD_DUR_NONE;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n': orders = atol(optarg); break;
		case 'k': per = atol(optarg); break;
		case 'b': batch = atol(optarg); break;
		case 'd':
			o.durability = !strcmp(optarg, "fsync") ? XD_DUR_FSYNC : XD_DUR_NONE;
			break;
		case 'j': dir = optarg; break;
		case 'o': out = optarg; break;
		default:
			fprintf(stderr,
				"usage: xdpexd-bench [--orders N] [--per-dgram K] [--batch D] "
				"[--durability none|fsync] [--journal-dir DIR] [--out FILE]\n");
			return 2;
		}
	}
	if (orders < 1 || per < 1 || per > XE_MAX_MSGS || batch < 1 || batch > XD_MAX_BATCH) {
		fprintf(stderr, "xdpexd-bench: --orders >= 1, --per-dgram 1..22, --batch 1..256\n");
		return 2;
	}
	if (!dir && !(dir = mkdtemp(tmpl))) {
		fprintf(stderr, "xdpexd-bench: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	o.backend = NULL; /* no ports: the pipeline alone */
	o.queues[0] = 0;
	o.nqueues = 1;
	o.journal_dir = dir;
	o.segment_bytes = 256ull << 20;
	o.batch = (int)batch;
	xd_g_opts = &o;
	for (int i = 0; i < 2; i++) {
		ses[i] = (struct xd_session_cfg){.id = (uint32_t)i + 1,
						 .secret_len = 32,
						 .stp = 0,
						 .cod = 0,
						 .enabled = 1,
						 .queue = 0,
						 .rate = 0};
		memcpy(ses[i].secret, SECRET, 32);
	}
	if (xd_shard_init(&sh, 0, 0, &o, &cfg, err, sizeof(err))) {
		fprintf(stderr, "xdpexd-bench: %s\n", err);
		return 1;
	}
	login(&sh, 1, "/nonexistent/bench-1");
	login(&sh, 2, "/nonexistent/bench-2");

	ndg = (orders + per - 1) / per;
	dgrams = malloc((size_t)ndg * dlen);
	lat = malloc(sizeof(*lat) * (size_t)(ndg / batch + 2));
	if (!dgrams || !lat)
		return 1;
	for (long d = 0; d < ndg; d++) {
		uint32_t sid = 1 + (uint32_t)(d & 1);
		struct xe_hdr *h = (void *)(dgrams + (size_t)d * dlen);
		long n = d == ndg - 1 ? orders - d * per : per;

		*h = (struct xe_hdr){.magic = XE_MAGIC,
				     .version = XE_VERSION,
				     .session_id = sid,
				     .seq = seq[sid],
				     .count = (uint16_t)n,
				     .length = (uint16_t)(XE_HDR_SIZE + n * XE_MSG_SIZE)};
		seq[sid] += (uint64_t)n;
		for (long i = 0; i < n; i++)
			make_msg(&g, sid, (uint8_t *)h + XE_HDR_SIZE + i * XE_MSG_SIZE);
	}
	for (long d = 0; d < ndg; d += batch) {
		uint64_t t0 = xd_mono_ns();
		struct xd_peer p = {.kind = XD_PEER_UNIX};

		xd_shard_batch_begin(&sh);
		for (long i = d; i < d + batch && i < ndg; i++) {
			const struct xe_hdr *h = (const void *)(dgrams + (size_t)i * dlen);

			snprintf(p.path, sizeof(p.path), "/nonexistent/bench-%u", h->session_id);
			xd_shard_datagram(&sh, (const uint8_t *)h, h->length, &p);
		}
		xd_shard_batch_end(&sh);
		if (sh.fatal) {
			fprintf(stderr, "xdpexd-bench: journal write failed\n");
			return 1;
		}
		lat[nb] = xd_mono_ns() - t0;
		t_all += lat[nb++];
	}
	qsort(lat, nb, sizeof(*lat), cmp_u64);
	{
		double secs = (double)t_all / 1e9;
		struct xe_engine_stats es;
		char line[1024];

		xe_engine_get_stats(sh.engine, &es);
		snprintf(
		    line, sizeof(line),
		    "{\"orders\":%ld,\"orders_per_datagram\":%ld,\"batch\":%ld,\"durability\":"
		    "\"%s\",\"seconds\":%.4f,\"orders_per_s\":%.0f,\"ns_per_order\":%.1f,"
		    "\"batch_us\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"applied\":%llu,"
		    "\"answers\":%llu,\"fills\":%llu,\"journal_bytes\":%llu,\"journal_writes\":"
		    "%llu,\"fsyncs\":%llu,\"state_hash\":\"0x%016llx\"}",
		    orders, per, batch, o.durability == XD_DUR_FSYNC ? "fsync" : "none", secs,
		    (double)orders / secs, (double)t_all / (double)orders,
		    (double)lat[nb / 2] / 1e3, (double)lat[nb * 99 / 100] / 1e3,
		    (double)lat[nb - 1] / 1e3, (unsigned long long)sh.st.applied,
		    (unsigned long long)(sh.sess[1].next_out + sh.sess[2].next_out - 2),
		    (unsigned long long)es.fills, (unsigned long long)sh.journal.bytes,
		    (unsigned long long)sh.journal.writes, (unsigned long long)sh.journal.fsyncs,
		    (unsigned long long)xd_shard_hash(&sh));
		printf("%s\n", line);
		if (out) {
			FILE *f = fopen(out, "w");

			if (!f) {
				fprintf(stderr, "xdpexd-bench: %s: %s\n", out, strerror(errno));
				return 1;
			}
			fprintf(f, "%s\n", line);
			fclose(f);
		}
	}
	xd_shard_free(&sh);
	if (dir == tmpl) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd))
			(void)0;
	}
	return 0;
}
