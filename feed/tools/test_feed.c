/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test of libxdpex_feed against the real engine (its C ABI):
 *   - each kind of engine call gives exactly the feed messages docs/marketdata.md promises
 *     (rest, trade through, partial fill then rest, IOC and market remainders, self-trade
 *     prevention, replace down / up / away / through, cancel, mass cancel, expiry, rejects);
 *   - MoldUDP64 packing: every batch packed at several payload sizes, each packet valid for
 *     xf_parse_datagram(), the messages back in order with contiguous sequence numbers;
 *   - --orders N mixed orders (engine_util.c) through the engine, every batch encoded, packed,
 *     parsed and applied to a book builder, which must hold the engine's orders exactly (ids,
 *     prices, open quantities, time priority, halts) every 20,000 orders and at the end, and never
 *     refuse a message; the same batches written as XJ_FEED records by the journal writer, read
 *     back by the tailing reader and applied to a second book, which must equal the first;
 *   - a snapshot of the final book applied to a fresh builder gives the same dump.
 * Prints one line per failure and a summary; exit 0 only if all passed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_util.h"

static int failures;

#define CHECK(c, ...) \
	do { \
		if (!(c)) { \
			printf("FAIL %s:%d: ", __func__, __LINE__); \
			printf(__VA_ARGS__); \
			putchar('\n'); \
			failures++; \
		} \
	} while (0)

/* ---- each engine call's feed messages ---- */

struct fixture {
	xe_engine *e;
	struct xe_event ev[64];
	struct xf_enc f;
	char types[64]; /* the types of the last call's messages, as letters */
};

static void fx_init(struct fixture *x)
{
	struct xe_engine_config ec = {1024, 4, 4};
	struct xe_symbol_config sc = {
	    .symbol_id = 1, .lot_size = 1, .tick_size = 1, .band_low = 1, .band_high = 100000};

	memset(x, 0, sizeof(*x));
	x->e = xe_engine_create(&ec);
	xe_engine_add_symbol(x->e, &sc);
	xe_engine_set_stp(x->e, 3, XE_STP_CANCEL_OLDEST);
	xf_enc_init(&x->f, 1, 0);
}

static void fx_free(struct fixture *x)
{
	xe_engine_destroy(x->e);
	xf_enc_free(&x->f);
}

/* Message i of the open batch. */
static const uint8_t *msg_at(const struct fixture *x, uint32_t i)
{
	const uint8_t *p = x->f.buf;
	size_t len;

	for (uint32_t k = 0; k < i; k++)
		xf_next_msg(&p, &len);
	return xf_next_msg(&p, &len);
}

static void encoded(struct fixture *x, uint32_t n, const struct xe_order_info *prior)
{
	int k;

	xf_enc_commit(&x->f);
	k = xf_enc_events(&x->f, x->ev, n, prior, 77);
	CHECK(k >= 0, "xf_enc_events: %d", k);
	for (int i = 0; i < k && i < 63; i++)
		x->types[i] = (char)msg_at(x, (uint32_t)i)[0];
	x->types[k > 0 ? (k < 63 ? k : 63) : 0] = '\0';
}

static void order(struct fixture *x, uint32_t s, uint64_t cl, uint8_t side, int64_t px,
		  uint32_t qty, uint8_t type, uint8_t tif)
{
	struct xe_order o = {s, 1, cl, px, qty, side, type, tif, 0};

	encoded(x, xe_engine_new_order(x->e, &o, x->ev), NULL);
}

static void replace(struct fixture *x, uint32_t s, uint64_t cl, int64_t px, uint32_t qty)
{
	struct xe_order_info prior;
	int have = xe_engine_get_order(x->e, s, cl, &prior) == 0;

	encoded(x, xe_engine_replace(x->e, s, cl, cl, px, qty, x->ev), have ? &prior : NULL);
}

static void test_engine_calls(void)
{
	struct fixture x;
	const struct xf_add_order *a;
	const struct xf_executed *ex;
	const struct xf_trade *t;
	const struct xf_replaced *rp;
	const struct xf_reduced *rd;
	const struct xf_deleted *d;

	fx_init(&x);
	order(&x, 1, 1, XE_BUY, 100, 10, XE_ORD_LIMIT, XE_TIF_GTC);
	CHECK(!strcmp(x.types, "A"), "rest: %s", x.types);
	a = (const void *)msg_at(&x, 0);
	CHECK(a->side == XF_BUY && a->price == 100 && a->qty == 10 && a->order_id && a->ts == 77 &&
		  a->symbol_id == 1,
	      "rest: add fields");
	uint64_t bid = a->order_id;

	order(&x, 1, 2, XE_BUY, 100, 5, XE_ORD_LIMIT, XE_TIF_DAY);
	uint64_t bid2 = ((const struct xf_add_order *)msg_at(&x, 0))->order_id;

	/* A sell through both bids: two executions, then the remainder rests. */
	order(&x, 2, 1, XE_SELL, 99, 20, XE_ORD_LIMIT, XE_TIF_GTC);
	CHECK(!strcmp(x.types, "EPEPA"), "through then rest: %s", x.types);
	ex = (const void *)msg_at(&x, 0);
	t = (const void *)msg_at(&x, 1);
	CHECK(ex->order_id == bid && ex->qty == 10 && ex->leaves == 0 && ex->price == 100 &&
		  ex->side == XF_BUY,
	      "first execution");
	CHECK(t->side == XF_SELL && t->match_id == ex->match_id && t->qty == 10 && t->price == 100,
	      "trade carries the aggressor side and the match");
	ex = (const void *)msg_at(&x, 2);
	CHECK(ex->order_id == bid2 && ex->qty == 5 && ex->leaves == 0, "second execution");
	a = (const void *)msg_at(&x, 4);
	CHECK(a->side == XF_SELL && a->price == 99 && a->qty == 5, "remainder rests: %u", a->qty);
	uint64_t ask = a->order_id;

	/* Partial fill of the resting ask by an IOC: the IOC's remainder never shows. */
	order(&x, 1, 3, XE_BUY, 99, 3, XE_ORD_LIMIT, XE_TIF_IOC);
	CHECK(!strcmp(x.types, "EP"), "ioc partial: %s", x.types);
	ex = (const void *)msg_at(&x, 0);
	CHECK(ex->order_id == ask && ex->leaves == 2, "resting ask leaves 2");
	order(&x, 1, 4, XE_BUY, 99, 9, XE_ORD_LIMIT, XE_TIF_IOC);
	CHECK(!strcmp(x.types, "EP"), "ioc remainder cancelled: %s", x.types);
	order(&x, 1, 5, XE_BUY, 0, 9, XE_ORD_MARKET, XE_TIF_IOC);
	CHECK(!strcmp(x.types, ""), "market on an empty side: %s", x.types);
	order(&x, 1, 6, XE_BUY, 0, 0, XE_ORD_LIMIT, XE_TIF_GTC);
	CHECK(!strcmp(x.types, ""), "reject: %s", x.types);

	/* Replaces: down in place, away, through. */
	order(&x, 1, 10, XE_BUY, 90, 10, XE_ORD_LIMIT, XE_TIF_GTC);
	uint64_t b10 = ((const struct xf_add_order *)msg_at(&x, 0))->order_id;

	replace(&x, 1, 10, 90, 7);
	CHECK(!strcmp(x.types, "X"), "replace down: %s", x.types);
	rd = (const void *)msg_at(&x, 0);
	CHECK(rd->order_id == b10 && rd->qty == 3 && rd->leaves == 7, "reduced 3 to 7");
	replace(&x, 1, 10, 91, 7);
	CHECK(!strcmp(x.types, "U"), "replace away: %s", x.types);
	rp = (const void *)msg_at(&x, 0);
	CHECK(rp->order_id == b10 && rp->price == 91 && rp->qty == 7, "replaced at 91");
	replace(&x, 1, 10, 91, 12);
	CHECK(!strcmp(x.types, "U"), "replace up loses its place: %s", x.types);
	order(&x, 2, 20, XE_SELL, 95, 4, XE_ORD_LIMIT, XE_TIF_GTC);
	uint64_t s20 = ((const struct xf_add_order *)msg_at(&x, 0))->order_id;

	replace(&x, 1, 10, 96, 12);
	CHECK(!strcmp(x.types, "EPU"), "replace through then rest: %s", x.types);
	ex = (const void *)msg_at(&x, 0);
	rp = (const void *)msg_at(&x, 2);
	CHECK(ex->order_id == s20 && rp->order_id == b10 && rp->qty == 8 && rp->price == 96,
	      "replaced with what is left: %u", rp->qty);
	order(&x, 2, 21, XE_SELL, 97, 20, XE_ORD_LIMIT, XE_TIF_GTC);
	replace(&x, 1, 10, 97, 12);
	CHECK(!strcmp(x.types, "EPD"), "replace through, all traded: %s", x.types);
	d = (const void *)msg_at(&x, 2);
	CHECK(d->order_id == b10 && d->qty == 8, "the moved order is deleted with its 8 open");
	replace(&x, 1, 999, 97, 12);
	CHECK(!strcmp(x.types, ""), "replace of an unknown order: %s", x.types);

	/* Self-trade prevention (session 3 cancels its oldest): the resting order is deleted. */
	order(&x, 3, 1, XE_BUY, 50, 5, XE_ORD_LIMIT, XE_TIF_GTC);
	uint64_t own = ((const struct xf_add_order *)msg_at(&x, 0))->order_id;

	order(&x, 3, 2, XE_SELL, 50, 5, XE_ORD_LIMIT, XE_TIF_GTC);
	CHECK(x.types[0] == 'D' && ((const struct xf_deleted *)msg_at(&x, 0))->order_id == own,
	      "stp: %s", x.types);

	/* Cancel, mass cancel, expiry. */
	encoded(&x, xe_engine_cancel(x.e, 2, 21, x.ev), NULL);
	CHECK(!strcmp(x.types, "D"), "cancel: %s", x.types);
	order(&x, 1, 30, XE_BUY, 10, 1, XE_ORD_LIMIT, XE_TIF_DAY);
	order(&x, 1, 31, XE_BUY, 11, 1, XE_ORD_LIMIT, XE_TIF_GTC);
	order(&x, 1, 32, XE_BUY, 12, 1, XE_ORD_LIMIT, XE_TIF_DAY);
	encoded(&x, xe_engine_expire_day(x.e, x.ev), NULL);
	CHECK(!strcmp(x.types, "DD"), "expiry deletes the DAY orders: %s", x.types);
	encoded(&x, xe_engine_mass_cancel(x.e, 1, 0, 0, XE_CXL_MASS, x.ev), NULL);
	CHECK(strlen(x.types) >= 1 && !strchr(x.types, 'A') && x.types[0] == 'D', "mass cancel: %s",
	      x.types);
	encoded(&x, xe_engine_mass_cancel(x.e, 1, 0, 0, XE_CXL_MASS, x.ev), NULL);
	CHECK(!strcmp(x.types, ""), "mass cancel of nothing: %s", x.types);

	/* Refusals: a replace without its prior, events of two calls. */
	order(&x, 1, 40, XE_BUY, 10, 1, XE_ORD_LIMIT, XE_TIF_GTC);
	{
		uint32_t n = xe_engine_replace(x.e, 1, 40, 40, 11, 1, x.ev);
		uint64_t before = x.f.count;

		CHECK(xf_enc_events(&x.f, x.ev, n, NULL, 1) == -EINVAL && x.f.count == before,
		      "a replace without its prior is refused");
		x.ev[1] = x.ev[0];
		CHECK(xf_enc_events(&x.f, x.ev, 2, NULL, 1) == -EINVAL, "two calls refused");
		CHECK(x.f.refused == 2, "refusals counted");
	}
	CHECK(xf_enc_symbol_state(&x.f, 1, 1, 5) == 1 && xf_enc_system(&x.f, 'O', 5) == 1 &&
		  xf_enc_system(&x.f, 'x', 5) == -EINVAL,
	      "state and system events");
	fx_free(&x);
}

/* ---- packing ---- */

struct sink {
	struct xf_book *book;
	uint64_t next_seq; /* expected */
	uint64_t packets, msgs;
	int bad;
};

/* Packs one batch at max_payload, checks every packet and applies it to s->book. */
static void pack_apply(struct sink *s, const char *session, const struct xf_enc *f,
		       size_t max_payload)
{
	static uint8_t pkt[XF_MAX_PAYLOAD + 64];
	struct xf_pack k;
	size_t len;

	xf_pack_init(&k, session, f->first_seq, f->buf, f->len, max_payload);
	while ((len = xf_pack_next(&k, pkt))) {
		struct xf_mold_view v;
		struct xf_parse_err err;
		const uint8_t *p;
		char text[200];
		int rc = xf_parse_datagram(pkt, len, &v, &err);

		s->packets++;
		if (rc) {
			xf_parse_errstr(&err, text, sizeof(text));
			CHECK(0, "packet does not parse: %s", text);
			s->bad++;
			return;
		}
		CHECK(len <= (max_payload ? max_payload : XF_MAX_PAYLOAD) ||
			  len <= XF_MOLD_HDR_SIZE + XF_BLOCK_HDR + XF_MAX_MSG_SIZE,
		      "packet of %zu bytes", len);
		CHECK(!memcmp(v.session, session, XF_SESSION_LEN) && v.seq == s->next_seq,
		      "packet seq %" PRIu64 ", expected %" PRIu64, v.seq, s->next_seq);
		p = v.blocks;
		for (uint16_t i = 0; i < v.count; i++) {
			size_t ml;
			const uint8_t *m = xf_next_msg(&p, &ml);

			rc = xf_book_apply(s->book, m, ml);
			if (rc && !s->bad++)
				CHECK(0, "book refused message %" PRIu64 " (%c): %s", v.seq + i,
				      m[0], xf_book_error(s->book));
		}
		s->next_seq = v.seq + v.count;
		s->msgs += v.count;
	}
}

static void test_pack_sizes(void)
{
	size_t sizes[] = {1, 80, 200, 576, 1000, 0};
	char session[XF_SESSION_LEN];
	uint8_t pkt[XF_MAX_PAYLOAD];
	struct xf_mold_view v;

	xf_session_name(session, NULL, 0);
	for (size_t m = 0; m < sizeof(sizes) / sizeof(sizes[0]); m++) {
		struct sink s = {xf_book_new(), 1, 0, 0, 0};
		struct xf_enc all;
		struct fixture y;

		/* One batch of 300 calls (adds, and IOCs trading with them) packed at every size
		 * from below the smallest possible packet to the largest. */
		fx_init(&y);
		xf_enc_init(&all, 1, 64); /* small: the buffer must grow */
		for (uint32_t i = 0; i < 300; i++) {
			int ioc = i % 5 == 4;
			struct xe_order o = {1 + (uint32_t)ioc,
					     1,
					     1000 + i,
					     i % 2 ? 100 - i % 7 : 101 + i % 7,
					     1 + i,
					     (uint8_t)(i % 2 ? XE_BUY : XE_SELL),
					     XE_ORD_LIMIT,
					     (uint8_t)(ioc ? XE_TIF_IOC : XE_TIF_GTC),
					     0};

			if (ioc)
				o.price = o.side == XE_BUY ? 200 : 1;
			xf_enc_events(&all, y.ev, xe_engine_new_order(y.e, &o, y.ev), NULL, i);
		}
		pack_apply(&s, session, &all, sizes[m]);
		CHECK(s.msgs == all.count && s.next_seq == all.next_seq && !s.bad,
		      "size %zu: %" PRIu64 " of %" PRIu64 " messages", sizes[m], s.msgs, all.count);
		CHECK(sizes[m] != 1 || s.packets == s.msgs, "smallest size: one message a packet");
		CHECK(sizes[m] || s.packets < s.msgs / 20, "1472 bytes: %" PRIu64 " packets",
		      s.packets);
		xf_book_free(s.book);
		xf_enc_free(&all);
		fx_free(&y);
	}
	CHECK(xf_pack_empty(pkt, session, 42, 0) == 20 && !xf_parse_datagram(pkt, 20, &v, NULL) &&
		  v.heartbeat && v.seq == 42 && !v.count,
	      "heartbeat");
	CHECK(xf_pack_empty(pkt, session, 43, 1) == 20 && !xf_parse_datagram(pkt, 20, &v, NULL) &&
		  v.end && v.seq == 43,
	      "end of session");
	{
		/* Seeking inside a block run (the rewind server's job). */
		struct fixture y;

		fx_init(&y);
		for (uint32_t i = 0; i < 10; i++) {
			struct xe_order o = {1,		 1, 50 + i, 10 + i, 1, XE_BUY, XE_ORD_LIMIT,
					     XE_TIF_GTC, 0};

			xf_enc_events(&y.f, y.ev, xe_engine_new_order(y.e, &o, y.ev), NULL, 1);
		}
		long off = xf_blocks_seek(y.f.buf, y.f.len, 1, 10, 4);

		CHECK(off == 3 * (XF_BLOCK_HDR + 40) &&
			  ((const struct xf_add_order *)(y.f.buf + off + 2))->price == 13,
		      "seek to the 4th message: %ld", off);
		CHECK(xf_blocks_seek(y.f.buf, y.f.len, 1, 10, 11) == -ERANGE &&
			  xf_blocks_seek(y.f.buf, y.f.len, 5, 10, 4) == -ERANGE,
		      "seek range");
		fx_free(&y);
	}
}

/* ---- the mixed stream ---- */

struct jsink {
	struct xf_book *book;
	uint64_t next_seq, records;
	int bad;
};

static int from_journal(void *ctx, const struct xf_jrec *r)
{
	struct jsink *j = ctx;
	const uint8_t *p = r->payload;

	if (r->hdr->type != XJ_FEED)
		return 0;
	j->records++;
	CHECK(r->hdr->msg_seq == j->next_seq, "record seq %" PRIu64 ", expected %" PRIu64,
	      r->hdr->msg_seq, j->next_seq);
	for (uint32_t i = 0; i < r->hdr->count; i++) {
		size_t ml;
		const uint8_t *m = xf_next_msg(&p, &ml);

		if (xf_book_apply(j->book, m, ml) && !j->bad++)
			CHECK(0, "journal book refused: %s", xf_book_error(j->book));
	}
	j->next_seq = r->hdr->msg_seq + r->hdr->count;
	return 0;
}

static char *dump_of(const struct xf_book *b)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	xf_book_dump(b, f);
	fclose(f);
	return text;
}

static uint64_t check_every = 20000;

static void test_mixed(uint64_t orders, uint64_t seed)
{
	struct eu_gen_opts o = {.seed = seed,
				.symbols = 6,
				.sessions = 8,
				.max_orders = 200000,
				.target_resting = 20000,
				.halts = 1};
	struct eu_gen *g = eu_gen_new(&o);
	struct sink s = {xf_book_new(), 1, 0, 0, 0};
	struct jsink js = {xf_book_new(), 1, 0, 0};
	char dir[] = "/tmp/xdpex-feed-test-XXXXXX", qdir[600], session[XF_SESSION_LEN], err[512];
	struct xf_enc f;
	struct xf_jw w;
	struct xf_jr r;
	uint64_t batch = 0;
	struct timespec t0, t1;

	CHECK(g && mkdtemp(dir), "setup");
	if (!g)
		return;
	xf_session_name(session, NULL, 3);
	xf_enc_init(&f, 1, 0);
	CHECK(!xf_jw_open(&w, dir, 3, 4u << 20), "journal writer");
	snprintf(qdir, sizeof(qdir), "%s/q3", dir);
	CHECK(!xf_jr_open(&r, qdir), "journal reader");
	xf_enc_system(&f, XF_SYS_START_OF_SESSION, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 1; i <= orders; i++) {
		int k = eu_gen_step(g, &f, i);

		if (k < 0) {
			CHECK(0, "order %" PRIu64 ": encoder %d", i, k);
			break;
		}
		/* Batches of a varying number of calls, like receive batches. */
		if (++batch >= 1 + (i % 97) || i == orders || i % check_every == 0) {
			struct xf_span sp;
			size_t pos = 0;

			while (xf_enc_next_record(&f, &pos, &sp))
				xf_jw_append(&w, XJ_FEED, 0, sp.seq, (uint16_t)sp.count, i,
					     sp.blocks, sp.len);
			xf_jw_commit(&w, 0);
			pack_apply(&s, session, &f, 0);
			xf_enc_commit(&f);
			batch = 0;
		}
		if (i % check_every == 0 || i == orders) {
			if (eu_compare(g, s.book, err, sizeof(err))) {
				CHECK(0, "after %" PRIu64 " orders: %s", i, err);
				break;
			}
			CHECK(xf_jr_poll(&r, from_journal, &js, 0) >= 0, "poll: %s", r.err);
		}
		if (s.bad || js.bad)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	{
		char *a = dump_of(s.book), *b = dump_of(js.book), *c, *e = NULL;
		size_t elen = 0;
		FILE *ef = open_memstream(&e, &elen);
		struct xf_book *snap = xf_book_new();
		uint8_t *buf = NULL;
		size_t cap = 0;
		long n;
		const struct eu_counts *cn = eu_gen_counts(g);
		struct xf_book_stats st;

		eu_engine_dump(g, ef);
		fclose(ef);
		CHECK(!strcmp(a, e), "feed book dump differs from the engine's");
		CHECK(!strcmp(a, b), "journal book differs from the live one (%" PRIu64 " records)",
		      js.records);
		CHECK(js.next_seq == f.next_seq, "journal reached %" PRIu64 ", feed %" PRIu64,
		      js.next_seq, f.next_seq);
		n = xf_book_snapshot(s.book, 0, 9, f.next_seq, &buf, &cap);
		CHECK(n > 0, "snapshot");
		for (const uint8_t *p = buf; n > 0 && p < buf + n;) {
			size_t ml;
			const uint8_t *m = xf_next_msg(&p, &ml);

			CHECK(!xf_book_apply(snap, m, ml), "snapshot apply: %s",
			      xf_book_error(snap));
		}
		c = dump_of(snap);
		CHECK(!strcmp(a, c), "a book rebuilt from its snapshot differs");
		xf_book_get_stats(s.book, &st);
		printf(
		    "test_feed: %" PRIu64 " orders (%" PRIu64 " new, %" PRIu64 " cancels, %" PRIu64
		    " replaces, %" PRIu64 " mass, %" PRIu64 " halts, %" PRIu64 " expiries, %" PRIu64
		    " rejects), %" PRIu64 " feed messages (%" PRIu64 " executions, %" PRIu64
		    " deletes), %" PRIu64 " packets, %" PRIu64 " resting at the end, %.2f s\n",
		    orders, cn->news, cn->cancels, cn->replaces, cn->mass, cn->halts, cn->expiries,
		    cn->rejects, f.msgs, st.executions, st.deletions, s.packets, st.orders,
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		CHECK(orders < 100000 || (st.executions > orders / 50 && st.replaces &&
					  st.reductions && st.deletions && st.states),
		      "the stream exercised every kind of message");
		free(a);
		free(b);
		free(c);
		free(e);
		free(buf);
		xf_book_free(snap);
	}
	xf_jw_close(&w);
	xf_jr_close(&r);
	xf_enc_free(&f);
	xf_book_free(s.book);
	xf_book_free(js.book);
	eu_gen_free(g);
	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			printf("warning: could not remove %s\n", dir);
	}
}

int main(int argc, char **argv)
{
	uint64_t orders = 200000, seed = 42;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--orders") && i + 1 < argc)
			orders = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--check-every") && i + 1 < argc)
			check_every = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr,
				"usage: test_feed [--orders N] [--seed S] [--check-every N]\n");
			return 2;
		}
	}
	test_engine_calls();
	test_pack_sizes();
	test_mixed(orders, seed);
	printf("test_feed: %s (%d failure%s)\n", failures ? "FAILED" : "passed", failures,
	       failures == 1 ? "" : "s");
	return failures ? 1 : 0;
}
