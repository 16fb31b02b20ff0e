/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The mixed order generator over the real engine, the engine dump and the engine-vs-book
 * comparison of engine_util.h. Prices random-walk around a mid per symbol inside a band of
 * 9000..11000 ticks, orders mostly rest near the mid and sometimes cross it; cancels and replaces
 * pick live orders of the session (checked with xe_engine_get_order) from a ring of recent ids.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine_util.h"

#define BAND_LO 9000
#define BAND_HI 11000
#define RING 4096

struct eu_sess {
	uint64_t next_cl;
	uint64_t ring[RING];
	uint32_t nring, pos;
};

struct eu_gen {
	struct eu_gen_opts o;
	xe_engine *e;
	struct xe_event *ev;
	uint64_t rng;
	int64_t *mid; /* per symbol */
	uint8_t *halted;
	struct eu_sess *sess;
	struct xe_level *lv; /* band-sized scratch */
	struct xe_order_info *info;
	struct xf_border *bo;
	struct eu_counts c;
};

struct eu_gen *eu_gen_new(const struct eu_gen_opts *o)
{
	struct eu_gen *g = calloc(1, sizeof(*g));
	struct xe_engine_config ec;

	if (!g)
		return NULL;
	g->o = *o;
	ec = (struct xe_engine_config){o->max_orders, o->symbols, o->sessions};
	g->e = xe_engine_create(&ec);
	g->rng = o->seed;
	g->mid = calloc(o->symbols + 1, sizeof(*g->mid));
	g->halted = calloc(o->symbols + 1, 1);
	g->sess = calloc(o->sessions + 1, sizeof(*g->sess));
	g->lv = calloc(BAND_HI - BAND_LO + 1, sizeof(*g->lv));
	g->info = calloc(o->max_orders, sizeof(*g->info));
	g->bo = calloc(o->max_orders, sizeof(*g->bo));
	if (!g->e || !g->mid || !g->halted || !g->sess || !g->lv || !g->info || !g->bo)
		goto fail;
	g->ev = calloc(xe_engine_max_events(g->e), sizeof(*g->ev));
	if (!g->ev)
		goto fail;
	for (uint32_t s = 1; s <= o->symbols; s++) {
		struct xe_symbol_config sc = {.symbol_id = s,
					      .lot_size = 1,
					      .tick_size = 1,
					      .band_low = BAND_LO,
					      .band_high = BAND_HI};

		if (xe_engine_add_symbol(g->e, &sc))
			goto fail;
		g->mid[s] = 10000;
	}
	for (uint32_t s = 1; s <= o->sessions; s++)
		xe_engine_set_stp(g->e, s, (uint8_t)((s - 1) % 4));
	return g;
fail:
	eu_gen_free(g);
	return NULL;
}

void eu_gen_free(struct eu_gen *g)
{
	if (!g)
		return;
	if (g->e)
		xe_engine_destroy(g->e);
	free(g->ev);
	free(g->mid);
	free(g->halted);
	free(g->sess);
	free(g->lv);
	free(g->info);
	free(g->bo);
	free(g);
}

xe_engine *eu_gen_engine(struct eu_gen *g)
{
	return g->e;
}

const struct eu_counts *eu_gen_counts(const struct eu_gen *g)
{
	return &g->c;
}

uint32_t eu_gen_symbols(const struct eu_gen *g)
{
	return g->o.symbols;
}

int eu_gen_halted(const struct eu_gen *g, uint32_t symbol_id)
{
	return symbol_id <= g->o.symbols && g->halted[symbol_id];
}

static uint32_t pick(struct eu_gen *g, uint32_t n)
{
	return (uint32_t)(eu_rand(&g->rng) % n);
}

/* A live order of session s (from its ring), or 0. */
static uint64_t live_order(struct eu_gen *g, uint32_t s, struct xe_order_info *out)
{
	struct eu_sess *x = &g->sess[s];

	for (int tries = 0; tries < 6 && x->nring; tries++) {
		uint64_t cl = x->ring[pick(g, x->nring)];

		if (!xe_engine_get_order(g->e, s, cl, out))
			return cl;
	}
	return 0;
}

static int64_t clamp_px(int64_t p)
{
	return p < BAND_LO ? BAND_LO : p > BAND_HI ? BAND_HI : p;
}

static uint32_t run(struct eu_gen *g, uint32_t n)
{
	g->c.calls++;
	g->c.events += n;
	for (uint32_t i = 0; i < n; i++)
		g->c.rejects += g->ev[i].type == XE_EV_REJECTED;
	return n;
}

static int new_order(struct eu_gen *g, struct xf_enc *f, uint32_t s, uint32_t sym, uint64_t ts)
{
	struct eu_sess *x = &g->sess[s];
	uint32_t r = pick(g, 100);
	struct xe_order o = {.session_id = s,
			     .symbol_id = sym,
			     .cl_ord_id = ++x->next_cl,
			     .side = (uint8_t)(1 + pick(g, 2)),
			     .ord_type = XE_ORD_LIMIT,
			     .tif = pick(g, 2) ? XE_TIF_GTC : XE_TIF_DAY};
	int64_t away = (int64_t)pick(g, 25) - 4; /* mostly passive, sometimes through the mid */
	uint32_t n;

	o.qty = 1 + pick(g, 10) * (1 + pick(g, 20));
	o.price = clamp_px(o.side == XE_BUY ? g->mid[sym] - away : g->mid[sym] + away);
	if (r < 8) {
		o.tif = XE_TIF_IOC;
	} else if (r < 11) {
		o.ord_type = XE_ORD_MARKET;
		o.tif = XE_TIF_IOC;
		o.price = 0;
	} else if (r < 14) {
		o.tif = XE_TIF_FOK;
	} else if (r < 18) {
		o.ord_type = XE_ORD_POST_ONLY;
	} else if (r < 19) {
		o.price = BAND_HI + 1; /* outside the band: rejected */
	}
	n = run(g, xe_engine_new_order(g->e, &o, g->ev));
	if (g->ev[0].type == XE_EV_ACCEPTED) {
		x->ring[x->pos] = o.cl_ord_id;
		x->pos = (x->pos + 1) % RING;
		if (x->nring < RING)
			x->nring++;
	}
	g->c.news++;
	return xf_enc_events(f, g->ev, n, NULL, ts);
}

static int replace(struct eu_gen *g, struct xf_enc *f, uint32_t s, uint64_t ts)
{
	struct xe_order_info prior;
	uint64_t cl = live_order(g, s, &prior);
	uint32_t r = pick(g, 5), qty, n;
	int64_t px;
	int found;

	if (!cl) {
		cl = g->sess[s].next_cl + 1000; /* unknown: rejected */
		memset(&prior, 0, sizeof(prior));
	}
	px = prior.price ? prior.price : 10000;
	qty = prior.qty ? prior.qty : 10;
	if (r == 0 && qty > prior.filled + 1) {
		qty -= 1 + pick(g, qty - prior.filled - 1); /* down, same price: keeps its place */
	} else if (r == 1) {
		qty += 1 + pick(g, 50); /* up: loses it */
	} else if (r == 2) {
		px = clamp_px(px + (int64_t)pick(g, 11) - 5); /* moves */
	} else if (r == 3 && prior.symbol_id) {
		/* Through the other side: trades, then rests or is gone. */
		px = clamp_px(prior.side == XE_BUY ? g->mid[prior.symbol_id] + 8
						   : g->mid[prior.symbol_id] - 8);
	}
	/* else: unchanged (NO_CHANGE reject) */
	found = xe_engine_get_order(g->e, s, cl, &prior) == 0;
	n = run(g, xe_engine_replace(
		       g->e, s, cl, pick(g, 3) ? cl : g->sess[s].next_cl + 1 + (uint64_t)pick(g, 2),
		       px, qty, g->ev));
	if (g->ev[0].type == XE_EV_REPLACED && g->ev[0].cl_ord_id != cl) {
		struct eu_sess *x = &g->sess[s];

		if (g->ev[0].cl_ord_id > x->next_cl)
			x->next_cl = g->ev[0].cl_ord_id;
		x->ring[x->pos] = g->ev[0].cl_ord_id;
		x->pos = (x->pos + 1) % RING;
		if (x->nring < RING)
			x->nring++;
	}
	g->c.replaces++;
	return xf_enc_events(f, g->ev, n, found ? &prior : NULL, ts);
}

int eu_gen_step(struct eu_gen *g, struct xf_enc *f, uint64_t ts)
{
	uint32_t s = 1 + pick(g, g->o.sessions), sym = 1 + pick(g, g->o.symbols);
	uint32_t r = pick(g, 10000), n;
	bool rare = pick(g, 20) == 0;
	struct xe_engine_stats st;
	struct xe_order_info info;
	uint64_t cl;

	if (pick(g, 4) == 0) /* the mid wanders */
		g->mid[sym] = clamp_px(g->mid[sym] + (int64_t)pick(g, 3) - 1);
	xe_engine_get_stats(g->e, &st);
	if (st.resting_orders > g->o.target_resting && r < 4000)
		r = 6500; /* a cancel instead */
	if (g->o.halts && ((r < 4 && rare) || (g->halted[sym] && r < 100))) {
		/* Halts are rare and short: a halted symbol resumes after ~100 of its steps. */
		int halt = !g->halted[sym];

		xe_engine_set_halted(g->e, sym, halt);
		g->halted[sym] = (uint8_t)halt;
		g->c.halts++;
		return xf_enc_symbol_state(f, sym, halt, ts);
	}
	if (g->o.halts && r == 4 && rare) {
		g->c.expiries++;
		n = run(g, xe_engine_expire_day(g->e, g->ev));
		return xf_enc_events(f, g->ev, n, NULL, ts);
	}
	if (r < 25) {
		uint8_t side = (uint8_t)pick(g, 3);

		g->c.mass++;
		n = run(g, xe_engine_mass_cancel(g->e, s, pick(g, 2) ? sym : 0, side, XE_CXL_MASS,
						 g->ev));
		return xf_enc_events(f, g->ev, n, NULL, ts);
	}
	if (r < 7000)
		return new_order(g, f, s, sym, ts);
	if (r < 8500) {
		cl = live_order(g, s, &info);
		g->c.cancels++;
		n = run(g, xe_engine_cancel(g->e, s, cl ? cl : g->sess[s].next_cl + 7, g->ev));
		return xf_enc_events(f, g->ev, n, NULL, ts);
	}
	return replace(g, f, s, ts);
}

/* ---- the engine's books ---- */

/* Every order of one side, best first, time priority inside a level, into g->bo. */
static uint32_t engine_orders(struct eu_gen *g, uint32_t sym, uint8_t side)
{
	uint32_t nl = xe_engine_book(g->e, sym, side, BAND_HI - BAND_LO + 1, g->lv), n = 0;

	for (uint32_t i = 0; i < nl; i++) {
		uint32_t k = xe_engine_level_orders(g->e, sym, side, g->lv[i].price,
						    g->o.max_orders - n, g->info);

		for (uint32_t j = 0; j < k; j++)
			g->bo[n++] = (struct xf_border){.order_id = g->info[j].order_id,
							.price = g->info[j].price,
							.qty = g->info[j].leaves,
							.side = side};
	}
	return n;
}

int eu_engine_dump(struct eu_gen *g, FILE *out)
{
	for (uint32_t s = 1; s <= g->o.symbols; s++) {
		uint32_t nb = xe_engine_book(g->e, s, XE_BUY, 1, g->lv);
		uint32_t na = xe_engine_book(g->e, s, XE_SELL, 1, g->lv);

		if (!nb && !na && !g->halted[s])
			continue;
		fprintf(out, "symbol %u %c\n", s, g->halted[s] ? 'H' : 'T');
		for (uint8_t side = XE_BUY; side <= XE_SELL; side++) {
			uint32_t n = engine_orders(g, s, side);

			for (uint32_t i = 0; i < n; i++)
				fprintf(out, "%u %c %" PRId64 " %" PRIu64 " %u\n", s,
					side == XE_BUY ? 'B' : 'S', g->bo[i].price,
					g->bo[i].order_id, g->bo[i].qty);
		}
	}
	return ferror(out) ? -EIO : 0;
}

int eu_compare(struct eu_gen *g, const struct xf_book *b, char *err, size_t errlen)
{
	struct xf_border *mine = malloc((size_t)g->o.max_orders * sizeof(*mine));
	int rc = 0;

	if (!mine) {
		snprintf(err, errlen, "out of memory");
		return 1;
	}
	if (xf_book_max_symbol(b) > g->o.symbols) {
		snprintf(err, errlen, "book has symbol %u, the engine %u symbols",
			 xf_book_max_symbol(b), g->o.symbols);
		rc = 1;
	}
	for (uint32_t s = 1; s <= g->o.symbols && !rc; s++) {
		uint8_t st = xf_book_state(b, s);

		if ((st == XF_STATE_HALTED) != (g->halted[s] != 0)) {
			snprintf(err, errlen, "symbol %u: book %s, engine %s", s,
				 st == XF_STATE_HALTED ? "halted" : "trading",
				 g->halted[s] ? "halted" : "trading");
			rc = 1;
		}
		for (uint8_t side = XE_BUY; side <= XE_SELL && !rc; side++) {
			uint32_t ne = engine_orders(g, s, side);
			uint32_t nb = xf_book_orders(b, s, side, g->o.max_orders, mine);

			for (uint32_t i = 0; i < ne && i < nb && !rc; i++) {
				if (mine[i].order_id != g->bo[i].order_id ||
				    mine[i].price != g->bo[i].price ||
				    mine[i].qty != g->bo[i].qty) {
					snprintf(
					    err, errlen,
					    "symbol %u side %u position %u: book order %" PRIu64
					    " %" PRId64 " x %u, engine order %" PRIu64 " %" PRId64
					    " x %u",
					    s, side, i, mine[i].order_id, mine[i].price,
					    mine[i].qty, g->bo[i].order_id, g->bo[i].price,
					    g->bo[i].qty);
					rc = 1;
				}
			}
			if (!rc && ne != nb) {
				snprintf(err, errlen,
					 "symbol %u side %u: book %u orders, engine %u", s, side,
					 nb, ne);
				rc = 1;
			}
		}
	}
	free(mine);
	return rc;
}
