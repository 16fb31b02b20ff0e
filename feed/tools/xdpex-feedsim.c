/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpex-feedsim: a feed producer for tests and measurements, doing what the shard in xdpexd does at
 * each batch end, around the real engine: seeded mixed order flow (engine_util.c) in batches of
 * --batch engine calls, each batch's feed messages journaled as XJ_FEED records (a real journal
 * under --journal, read by xdpex-feedd like xdpexd's), then sent as MoldUDP64 packets to every
 * --dst (multicast group or unicast), at --rate orders a second (0: as fast as it goes). It starts
 * the session with START_OF_SESSION, ends it with END_OF_SESSION and MoldUDP64 end-of-session
 * packets for --linger-ms, and writes the engine's books (--dump, xf_book_dump's format) so a
 * subscriber's rebuilt books can be compared with them. Progress goes to stdout as
 * "feedsim: progress N (sent M orders, next_seq S)" every --progress orders, the totals as one
 * JSON line at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_util.h"

#define MAX_PKTS 4096

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t mono)
{
	struct timespec ts = {(time_t)(mono / 1000000000ull), (long)(mono % 1000000000ull)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: xdpex-feedsim --journal DIR [--queue Q] [--dst A.B.C.D:PORT]... [--orders N]\n"
	    "         [--rate ORDERS_PER_S] [--batch CALLS] [--seed S] [--symbols N] [--sessions "
	    "N]\n"
	    "         [--mcast-if ADDR] [--ttl N] [--session-prefix P] [--segment-bytes N]\n"
	    "         [--dump FILE] [--progress N] [--linger-ms MS] [--no-end]\n");
	exit(2);
}

struct sim {
	struct xf_enc f;
	struct xf_jw w;
	struct xf_tx tx;
	char session[XF_SESSION_LEN];
	uint8_t *pkts[MAX_PKTS];
	size_t lens[MAX_PKTS];
	uint64_t packets, records;
};

/* The shard's batch end: journal the batch (XJ_FEED records), then send it, then close it. */
static int batch_end(struct sim *s, uint64_t ts)
{
	struct xf_span sp;
	struct xf_pack k;
	size_t pos = 0, len;
	uint32_t n = 0;
	int rc;

	if (!s->f.count)
		return 0;
	while (xf_enc_next_record(&s->f, &pos, &sp)) {
		rc = xf_jw_append(&s->w, XJ_FEED, 0, sp.seq, (uint16_t)sp.count, ts, sp.blocks,
				  sp.len);
		if (rc)
			return rc;
		s->records++;
	}
	rc = xf_jw_commit(&s->w, 0);
	if (rc)
		return rc;
	xf_pack_init(&k, s->session, s->f.first_seq, s->f.buf, s->f.len, 0);
	do {
		n = 0;
		while (n < MAX_PKTS && (len = xf_pack_next(&k, s->pkts[n])))
			s->lens[n++] = len;
		if (n && s->tx.ndst)
			xf_tx_send(&s->tx, s->pkts, s->lens, n);
		s->packets += n;
	} while (n == MAX_PKTS);
	xf_enc_commit(&s->f);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"journal", 1, 0, 'j'},	  {"queue", 1, 0, 'q'},	  {"dst", 1, 0, 'd'},
	    {"orders", 1, 0, 'n'},	  {"rate", 1, 0, 'r'},	  {"batch", 1, 0, 'b'},
	    {"seed", 1, 0, 's'},	  {"symbols", 1, 0, 'y'}, {"sessions", 1, 0, 'e'},
	    {"mcast-if", 1, 0, 'i'},	  {"ttl", 1, 0, 't'},	  {"session-prefix", 1, 0, 'p'},
	    {"segment-bytes", 1, 0, 'g'}, {"dump", 1, 0, 'D'},	  {"progress", 1, 0, 'P'},
	    {"linger-ms", 1, 0, 'l'},	  {"no-end", 0, 0, 'E'},  {0, 0, 0, 0},
	};
	struct eu_gen_opts go = {.seed = 1,
				 .symbols = 8,
				 .sessions = 8,
				 .max_orders = 1u << 20,
				 .target_resting = 50000,
				 .halts = 1};
	const char *journal = NULL, *mcast_if = NULL, *prefix = NULL, *dump = NULL;
	const char *dsts[XF_TX_MAX_DSTS];
	uint64_t orders = 100000, rate = 0, batch = 64, seg = 64u << 20, progress = 0, linger = 300;
	uint32_t ndst = 0, queue = 0;
	int ttl = 1, end = 1, c, rc;
	struct sim s = {0};
	struct eu_gen *g;
	uint64_t t0, sent = 0, calls = 0, next_progress = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j': journal = optarg; break;
		case 'q': queue = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'd':
			if (ndst == XF_TX_MAX_DSTS)
				usage();
			dsts[ndst++] = optarg;
			break;
		case 'n': orders = strtoull(optarg, NULL, 10); break;
		case 'r': rate = strtoull(optarg, NULL, 10); break;
		case 'b': batch = strtoull(optarg, NULL, 10); break;
		case 's': go.seed = strtoull(optarg, NULL, 10); break;
		case 'y': go.symbols = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'e': go.sessions = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'i': mcast_if = optarg; break;
		case 't': ttl = atoi(optarg); break;
		case 'p': prefix = optarg; break;
		case 'g': seg = strtoull(optarg, NULL, 10); break;
		case 'D': dump = optarg; break;
		case 'P': progress = strtoull(optarg, NULL, 10); break;
		case 'l': linger = strtoull(optarg, NULL, 10); break;
		case 'E': end = 0; break;
		default: usage();
		}
	}
	if (!journal || !batch || !go.symbols || !go.sessions)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (xf_session_name(s.session, prefix, (int)queue)) {
		fprintf(stderr, "feedsim: --session-prefix %s: name longer than %d characters\n",
			prefix, XF_SESSION_LEN);
		return 2;
	}
	g = eu_gen_new(&go);
	if (!g || xf_enc_init(&s.f, 1, 0)) {
		fprintf(stderr, "feedsim: out of memory\n");
		return 1;
	}
	rc = xf_jw_open(&s.w, journal, queue, seg);
	if (rc) {
		fprintf(stderr, "feedsim: journal %s/q%u: %s\n", journal, queue, strerror(-rc));
		return 1;
	}
	rc = xf_tx_open(&s.tx, NULL, 0, mcast_if, ttl, 1);
	for (uint32_t i = 0; !rc && i < ndst; i++)
		if (xf_tx_add_dst(&s.tx, dsts[i])) {
			fprintf(stderr, "feedsim: --dst %s: not A.B.C.D:PORT\n", dsts[i]);
			return 2;
		}
	if (rc) {
		fprintf(stderr, "feedsim: socket: %s\n", strerror(-rc));
		return 1;
	}
	for (int i = 0; i < MAX_PKTS; i++)
		s.pkts[i] = malloc(XF_MAX_PAYLOAD);
	t0 = now_ns(CLOCK_MONOTONIC);
	next_progress = progress;
	xf_enc_system(&s.f, XF_SYS_START_OF_SESSION, now_ns(CLOCK_REALTIME));
	while (sent < orders) {
		uint64_t ts = now_ns(CLOCK_REALTIME);

		for (uint64_t i = 0; i < batch && sent < orders; i++, sent++, calls++) {
			rc = eu_gen_step(g, &s.f, ts);
			if (rc < 0) {
				fprintf(stderr, "feedsim: encoder refused order %" PRIu64 ": %s\n",
					sent, strerror(-rc));
				return 1;
			}
		}
		rc = batch_end(&s, ts);
		if (rc) {
			fprintf(stderr, "feedsim: journal write failed: %s\n", strerror(-rc));
			return 1;
		}
		while (progress && sent >= next_progress) {
			printf("feedsim: progress %" PRIu64 " (sent %" PRIu64
			       " orders, next_seq %" PRIu64 ")\n",
			       next_progress, sent, s.f.next_seq);
			fflush(stdout);
			next_progress += progress;
		}
		if (rate)
			sleep_until(t0 + sent * 1000000000ull / rate);
	}
	if (end) {
		xf_enc_system(&s.f, XF_SYS_END_OF_SESSION, now_ns(CLOCK_REALTIME));
		batch_end(&s, now_ns(CLOCK_REALTIME));
	}
	if (dump) {
		FILE *f = fopen(dump, "w");

		if (!f || eu_engine_dump(g, f) || fclose(f)) {
			fprintf(stderr, "feedsim: --dump %s: %s\n", dump, strerror(errno));
			return 1;
		}
	}
	{
		/* MoldUDP64: end-of-session (or heartbeat) packets for a while, so a subscriber
		 * that lost the last packets learns the final sequence and asks for them. */
		uint8_t p[XF_MOLD_HDR_SIZE];
		uint8_t *pp[1] = {p};
		size_t len = xf_pack_empty(p, s.session, s.f.next_seq, end);
		uint64_t stop = now_ns(CLOCK_MONOTONIC) + linger * 1000000ull;

		do {
			if (s.tx.ndst)
				xf_tx_send(&s.tx, pp, &len, 1);
			sleep_until(now_ns(CLOCK_MONOTONIC) + 20 * 1000000ull);
		} while (now_ns(CLOCK_MONOTONIC) < stop);
	}
	printf("{\"orders\": %" PRIu64 ", \"calls\": %" PRIu64 ", \"messages\": %" PRIu64
	       ", \"packets\": %" PRIu64 ", \"records\": %" PRIu64 ", \"next_seq\": %" PRIu64
	       ", \"send_errors\": %" PRIu64 ", \"seconds\": %.3f}\n",
	       sent, calls, s.f.msgs, s.packets, s.records, s.f.next_seq, s.tx.errors,
	       (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9);
	xf_jw_close(&s.w);
	xf_tx_close(&s.tx);
	xf_enc_free(&s.f);
	eu_gen_free(g);
	for (int i = 0; i < MAX_PKTS; i++)
		free(s.pkts[i]);
	return 0;
}
