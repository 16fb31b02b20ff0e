/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bpfdiff: the real XDP program against the user-space parser, differentially. Loads xdp_steer
 * exactly as xdpexd does (libxdpex_xdp: the skeleton of build/xdp/xdpex.bpf.o, ports 9000, no
 * interface, nothing pinned), then runs random and mutated frames through BPF_PROG_TEST_RUN and
 * judges each one independently in user space:
 *
 *   - a frame the program hands on as ours (no_sock_cnt moved: with no AF_XDP socket that is
 *     where a valid datagram goes) must carry a UDP payload that include/xdpex/parse.h accepts,
 *     or refuses only for a message (never at the header level): the program must never pass to
 *     the socket what parse.h refuses from the header;
 *   - a well-formed IPv4/UDP frame to port 9000 whose payload parse.h accepts must be ours (the
 *     program must not drop what the gateway would serve);
 *   - the user-space filter of the DPDK backend (xdp/xdpex_filter.c, the same checks over plain
 *     memory, configured alike) must reach the same verdict (pass, drop or ours) on every frame.
 *
 * Frames: the seeds (the golden datagrams of fuzz/corpus/parse, or built-in ones) wrapped in
 * Ethernet/IPv4/UDP, mutated in the payload (bit flips, interesting values, header fields set
 * consistent or not, truncation, extension) and sometimes below it (802.1Q tag, IPv4 options,
 * fragment bits, IP and UDP lengths). Deterministic for a --seed.
 *
 *   bpfdiff [--seconds S] [--count N] [--seed X] [--corpus DIR] [--artifacts DIR]
 *
 * Prints one JSON line: executions, seconds, passed (frames the program took as ours), classes
 * (distinct reason counters seen), differences; exit 1 on any difference (each written as a hex
 * frame to DIR/diff-N.hex with what was wrong, the first 20), 2 when it cannot run.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xdpex/parse.h"
#include "xdpex_maps.h"
#include "xdpex_filter.h"
#include "xdpex_xdp.h"

#define MAX_FRAME 2048
#define MAX_SEEDS 512
#define ETH_LEN 14
#define IP_LEN 20
#define UDP_LEN 8
#define PORT 9000

struct seed {
	uint8_t b[MAX_FRAME];
	size_t n;
};

static struct seed seeds[MAX_SEEDS];
static int nseeds;
static uint64_t rng;
static int ncpus;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load_seeds(const char *dir)
{
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *e;

	while (d && (e = readdir(d)) && nseeds < MAX_SEEDS) {
		char p[4096];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		f = fopen(p, "rb");
		if (!f)
			continue;
		seeds[nseeds].n = fread(seeds[nseeds].b, 1, MAX_FRAME - 64, f);
		fclose(f);
		nseeds++;
	}
	if (d)
		closedir(d);
	if (!nseeds) { /* one valid NewOrder datagram */
		uint8_t *b = seeds[0].b;

		memset(b, 0, 88);
		b[0] = 0x45, b[1] = 0x58, b[2] = 1, b[4] = 7, b[8] = 1, b[16] = 1, b[18] = 88;
		b[24] = XE_NEW_ORDER;
		seeds[0].n = 88;
		nseeds = 1;
	}
}

static const uint8_t interesting[] = {0, 1, 2, 4, 8, 0x16, 0x17, 0x45, 0x58, 0x7f, 0x80, 0xff};

/* The xdpex payload, mutated. */
static size_t payload(uint8_t *p)
{
	const struct seed *s = &seeds[below((uint32_t)nseeds)];
	size_t n = s->n;
	unsigned k = 1 + below(4);

	memcpy(p, s->b, n);
	if (below(8) == 0) { /* pure noise */
		n = below(256);
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)rnd();
		return n;
	}
	while (k--) {
		unsigned what = below(9), at;

		if (what <= 2 && n) { /* a bit flip, more often in the header */
			at = below(4) ? below(n < XE_HDR_SIZE ? (uint32_t)n : XE_HDR_SIZE)
				      : below((uint32_t)n);
			p[at] ^= (uint8_t)(1u << below(8));
		} else if (what == 3 && n) {
			p[below((uint32_t)n)] = interesting[below(sizeof(interesting))];
		} else if (what == 4 && n >= XE_HDR_SIZE) { /* flags */
			p[3] = (uint8_t)(below(2) ? 1u << below(8) : rnd());
		} else if (what == 5 && n >= XE_HDR_SIZE) { /* seq near the wrap, or 0 */
			uint64_t seq = below(2) ? 0 : UINT64_MAX - below(30);

			memcpy(p + 8, &seq, 8);
		} else if (what == 6 && n >= XE_HDR_SIZE) { /* count, and length made consistent */
			uint16_t c = (uint16_t)(below(3) ? 1 + below(XE_MAX_MSGS) : rnd()), l;

			memcpy(p + 16, &c, 2);
			if (below(2)) {
				l = (uint16_t)(XE_HDR_SIZE + c * XE_MSG_SIZE);
				memcpy(p + 18, &l, 2);
				if (l <= MAX_FRAME - 64 && l > n) {
					memset(p + n, 0, l - n);
					for (size_t i = n; i < l; i += XE_MSG_SIZE)
						p[i] = (uint8_t)(below(2) ? XE_NEW_ORDER : rnd());
					n = l;
				} else if (l < n) {
					n = l;
				}
			}
		} else if (what == 7) { /* truncate or extend */
			if (below(2) && n)
				n = below((uint32_t)n);
			else if (n + 64 < MAX_FRAME - 64)
				for (unsigned i = below(65); i--;)
					p[n++] = (uint8_t)rnd();
		} else if (what == 8 && n >= XE_HDR_SIZE) { /* session id 0 or not */
			uint32_t sid = below(2) ? 0 : (uint32_t)rnd();

			memcpy(p + 4, &sid, 4);
		}
	}
	return n;
}

static uint16_t csum(const uint8_t *b, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

struct frame {
	uint8_t b[MAX_FRAME + 128];
	size_t n;
	int well_formed; /* untouched Ethernet/IPv4/UDP to PORT, lengths right */
	size_t pay_off, pay_len; /* the UDP payload as the UDP header's length says */
	int udp_ok; /* IPv4 UDP to PORT, no fragment bits, UDP length within IP and frame */
};

static void build(struct frame *f)
{
	uint8_t pay[MAX_FRAME];
	size_t plen = payload(pay), off = 0, ihl = 5;
	int vlan = below(8) == 0, mutate_l3 = below(6) == 0;
	uint16_t tot, ulen, frag = 0;
	uint8_t *ip, *udp;

	memset(f->b, 0, 64);
	memcpy(f->b, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
	off = 12;
	if (vlan) {
		f->b[off++] = 0x81, f->b[off++] = 0x00, f->b[off++] = 0x00, f->b[off++] = 0x2a;
	}
	f->b[off++] = 0x08, f->b[off++] = 0x00;
	ip = f->b + off;
	if (mutate_l3 && below(3) == 0)
		ihl = 5 + below(3);
	memset(ip, 0, ihl * 4);
	udp = ip + ihl * 4;
	tot = (uint16_t)(ihl * 4 + UDP_LEN + plen);
	ulen = (uint16_t)(UDP_LEN + plen);
	if (mutate_l3) {
		switch (below(5)) {
		case 0:
			frag = (uint16_t)(below(2) ? 0x2000 : below(0x2000));
			break; /* MF / offset */
		case 1: tot = (uint16_t)(tot - below(40)); break;
		case 2: ulen = (uint16_t)(ulen + below(80) - 40); break;
		case 3: ulen = (uint16_t)rnd(); break;
		default: frag = 0x4000; break; /* DF: still ours */
		}
	}
	ip[0] = (uint8_t)(0x40 | ihl);
	ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
	ip[6] = (uint8_t)(frag >> 8), ip[7] = (uint8_t)frag;
	ip[8] = 64, ip[9] = 17;
	memcpy(ip + 12, "\x0a\x01\x00\x01\x0a\x01\x00\x02", 8);
	ip[10] = 0, ip[11] = 0;
	{
		uint16_t c = csum(ip, ihl * 4);

		ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	}
	udp[0] = 0x9c, udp[1] = 0x40; /* 40000 */
	udp[2] = PORT >> 8, udp[3] = PORT & 0xff;
	udp[4] = (uint8_t)(ulen >> 8), udp[5] = (uint8_t)ulen;
	memcpy(udp + UDP_LEN, pay, plen);
	f->n = (size_t)(udp + UDP_LEN - f->b) + plen;
	if (mutate_l3 && below(4) == 0 && f->n > ETH_LEN)
		f->n -= below(16); /* the frame itself cut */
	if (f->n < 60) { /* Ethernet minimum: zero padding, as a NIC delivers it */
		memset(f->b + f->n, 0, 60 - f->n);
		f->n = 60;
	}
	/* The user-space view, from the bytes as they are. */
	{
		size_t ipoff = (size_t)(ip - f->b), uoff = ipoff + ihl * 4;
		size_t end_ip = ipoff + tot;

		f->udp_ok = !(frag & 0x3fff) && ulen >= UDP_LEN && uoff + ulen <= f->n &&
			    uoff + ulen <= end_ip && ihl * 4 + UDP_LEN <= tot;
		f->pay_off = uoff + UDP_LEN;
		f->pay_len = ulen >= UDP_LEN ? ulen - UDP_LEN : 0;
		f->well_formed = !mutate_l3 && f->udp_ok;
	}
}

static int nosock(int stats_fd, uint64_t *out)
{
	uint64_t v[512];
	uint32_t key = XDPEX_CNT_NO_SOCK;

	if (bpf_map_lookup_elem(stats_fd, &key, v))
		return -errno;
	*out = 0;
	for (int i = 0; i < ncpus; i++)
		*out += v[i];
	return 0;
}

static void report(const char *dir, int n, const struct frame *f, const char *what)
{
	char path[4096];
	FILE *o;

	if (n >= 20) /* the first 20 are enough to go on */
		return;
	fprintf(stderr, "bpfdiff: difference %d: %s\n", n, what);
	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/diff-%d.hex", dir, n);
	o = fopen(path, "w");
	if (!o)
		return;
	fprintf(o, "# %s\n", what);
	for (size_t i = 0; i < f->n; i++)
		fprintf(o, "%02x", f->b[i]);
	fprintf(o, "\n");
	fclose(o);
}

int main(int argc, char **argv)
{
	double seconds = 10, t0;
	uint64_t count = 0, execs = 0, passed = 0, diffs = 0, before, after;
	const char *corpus = NULL, *art = NULL;
	struct xdpex_xdp_opts o = {.pin_dir = ""};
	__u64 cnt[XDPEX_CNT_MAX] = {0};
	struct xdpex_filter_cfg *ucfg, *uslot = NULL;
	struct xdpex_filter *uf;
	struct xdpex_xdp *x;
	struct frame f;
	int classes = 0, stats_fd, prog_fd;

	rng = 0x9e3779b97f4a7c15ull;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			rng = strtoull(argv[++i], NULL, 0) * 0x9e3779b97f4a7c15ull | 1;
		else if (!strcmp(argv[i], "--corpus") && i + 1 < argc)
			corpus = argv[++i];
		else if (!strcmp(argv[i], "--artifacts") && i + 1 < argc)
			art = argv[++i];
		else {
			fprintf(stderr, "usage: bpfdiff [--seconds S] [--count N] [--seed X] "
					"[--corpus DIR] [--artifacts DIR]\n");
			return 2;
		}
	}
	load_seeds(corpus);
	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0 || ncpus > 512 || xdpex_xdp_open(&x, &o)) {
		fprintf(stderr, "bpfdiff: cannot load xdp_steer (root? build/xdp built?)\n");
		return 2;
	}
	{
		__u16 port_be = htons(PORT);

		ucfg = xdpex_filter_cfg_new(&port_be, 1, 0, NULL, 0, 0, 0);
		if (!ucfg) {
			fprintf(stderr, "bpfdiff: user-space filter: %s\n", strerror(errno));
			return 2;
		}
		xdpex_filter_publish(&uslot, ucfg);
		uf = xdpex_filter_new(&uslot);
		if (!uf)
			return 2;
	}
	prog_fd = xdpex_xdp_prog_fd(x);
	stats_fd = xdpex_xdp_maps(x)->stats_fd;
	if (nosock(stats_fd, &before)) {
		fprintf(stderr, "bpfdiff: stats_map: %s\n", strerror(errno));
		return 2;
	}
	t0 = now_s();
	while (count ? execs < count : now_s() - t0 < seconds) {
		LIBBPF_OPTS(bpf_test_run_opts, t);
		struct xe_parse_err e;
		int rc, ours;

		build(&f);
		t.data_in = f.b;
		t.data_size_in = (uint32_t)f.n;
		if (bpf_prog_test_run_opts(prog_fd, &t) || nosock(stats_fd, &after)) {
			fprintf(stderr, "bpfdiff: BPF_PROG_TEST_RUN: %s\n", strerror(errno));
			return 2;
		}
		execs++;
		ours = after != before;
		before = after;
		if (ours && t.retval != XDP_PASS) {
			report(art, (int)diffs++, &f,
			       "no_sock_cnt moved but the verdict is not XDP_PASS");
			continue;
		}
		passed += ours;
		{
			__u32 reason;
			int uv = xdpex_filter_run(uf, f.b, (uint32_t)f.n, 1, &reason);
			int kv = ours			? XDPEX_V_OURS
				 : t.retval == XDP_DROP ? XDPEX_V_DROP
							: XDPEX_V_PASS;

			if (uv != kv) {
				char what[160];

				snprintf(what, sizeof(what),
					 "user-space filter verdict %d, xdp_steer %d "
					 "(0 pass, 1 drop, 2 ours)",
					 uv, kv);
				report(art, (int)diffs++, &f, what);
				continue;
			}
		}
		rc = f.udp_ok
			 ? xe_parse_datagram(f.b + f.pay_off, f.pay_len, XE_DIR_TO_GW, NULL, &e)
			 : XE_PERR_SHORT;
		if (ours && (!f.udp_ok || (rc && e.index < 0))) {
			char text[200], what[300];

			if (f.udp_ok)
				xe_parse_errstr(&e, text, sizeof(text));
			else
				snprintf(text, sizeof(text), "not a well-formed UDP datagram to %d",
					 PORT);
			snprintf(what, sizeof(what), "xdp_steer passed what parse.h refuses: %s",
				 text);
			report(art, (int)diffs++, &f, what);
		} else if (!ours && f.well_formed && !rc) {
			report(art, (int)diffs++, &f,
			       "xdp_steer refused a datagram parse.h accepts");
		}
	}
	if (!xdpex_read_counters(xdpex_xdp_maps(x), cnt))
		for (int i = 0; i < XDPEX_CNT_MAX; i++)
			classes += i != XDPEX_CNT_RX && cnt[i] != 0;
	printf("{\"executions\": %llu, \"seconds\": %.1f, \"passed\": %llu, \"classes\": %d, "
	       "\"differences\": %llu}\n",
	       (unsigned long long)execs, now_s() - t0, (unsigned long long)passed, classes,
	       (unsigned long long)diffs);
	xdpex_filter_free(uf);
	xdpex_filter_cfg_free_all(&uslot);
	xdpex_xdp_close(x);
	return diffs ? 1 : 0;
}
