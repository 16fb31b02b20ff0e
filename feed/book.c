/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The feed's book builder: every resting order by order_id (an open-addressing table with
 * backward-shift deletion over a pool of orders), each symbol's two sides as arrays of price
 * levels kept sorted with the best level last (so the churn near the top moves little memory),
 * each level a FIFO of its orders in time priority. Every message is checked against the book
 * before it changes anything: a message that does not fit (an unknown order, quantities that do
 * not add up, an add of an order already there) is refused with the reason, and the book stays as
 * it was, so a subscriber can tell a broken feed from a gap it has not filled yet.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex_feed.h"

#define NIL UINT32_MAX
#define MAX_SYMBOL (1u << 24)

struct ord {
	uint64_t order_id;
	int64_t price;
	uint32_t qty;
	uint32_t symbol;
	uint32_t prev, next; /* in its level, pool indices */
	uint8_t side;
};

struct lvl {
	int64_t price;
	uint64_t qty;
	uint32_t count, head, tail;
};

struct bside {
	struct lvl *v; /* sorted, best last: bids by ascending price, asks by descending */
	uint32_t n, cap;
};

struct bsym {
	uint8_t state; /* 0: never seen */
	bool has_trade;
	uint32_t orders;
	int64_t last_px;
	uint32_t last_qty;
	uint64_t last_match;
	struct bside side[2];
};

struct xf_book {
	struct ord *pool;
	uint32_t pool_n, pool_cap, free_head;
	uint32_t *tab; /* pool index + 1, 0 = empty */
	uint32_t tab_mask, tab_used;
	struct bsym *syms;
	uint32_t syms_cap, max_sym;
	struct xf_book_stats st;
	char err[256];
};

static int refuse(struct xf_book *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct xf_book *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->err, sizeof(b->err), fmt, ap);
	va_end(ap);
	b->st.rejected++;
	return -EPROTO;
}

struct xf_book *xf_book_new(void)
{
	struct xf_book *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->tab_mask = 1023;
	b->tab = calloc(b->tab_mask + 1, sizeof(*b->tab));
	b->free_head = NIL;
	if (!b->tab) {
		free(b);
		return NULL;
	}
	return b;
}

void xf_book_free(struct xf_book *b)
{
	if (!b)
		return;
	for (uint32_t s = 0; s < b->syms_cap; s++) {
		free(b->syms[s].side[0].v);
		free(b->syms[s].side[1].v);
	}
	free(b->syms);
	free(b->pool);
	free(b->tab);
	free(b);
}

const char *xf_book_error(const struct xf_book *b)
{
	return b->err;
}

void xf_book_get_stats(const struct xf_book *b, struct xf_book_stats *out)
{
	*out = b->st;
}

uint32_t xf_book_max_symbol(const struct xf_book *b)
{
	return b->max_sym;
}

/* ---- the order table ---- */

static uint32_t slot_of(const struct xf_book *b, uint64_t id)
{
	return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & b->tab_mask;
}

static uint32_t find(const struct xf_book *b, uint64_t id)
{
	for (uint32_t i = slot_of(b, id);; i = (i + 1) & b->tab_mask) {
		uint32_t v = b->tab[i];

		if (!v)
			return NIL;
		if (b->pool[v - 1].order_id == id)
			return v - 1;
	}
}

static void tab_put(uint32_t *tab, uint32_t mask, uint32_t i_of_slot, uint32_t oi)
{
	uint32_t i = i_of_slot;

	while (tab[i])
		i = (i + 1) & mask;
	tab[i] = oi + 1;
}

static int tab_grow(struct xf_book *b)
{
	uint32_t mask = b->tab_mask * 2 + 1;
	uint32_t *t = calloc((size_t)mask + 1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i <= b->tab_mask; i++) {
		uint32_t v = b->tab[i];

		if (v) {
			uint64_t id = b->pool[v - 1].order_id;

			tab_put(t, mask, (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & mask,
				v - 1);
		}
	}
	free(b->tab);
	b->tab = t;
	b->tab_mask = mask;
	return 0;
}

/* Removes order id from the table (it is there), shifting the entries behind it back. */
static void tab_del(struct xf_book *b, uint64_t id)
{
	uint32_t i = slot_of(b, id), j;

	while (b->pool[b->tab[i] - 1].order_id != id)
		i = (i + 1) & b->tab_mask;
	j = i;
	for (;;) {
		uint32_t home;

		j = (j + 1) & b->tab_mask;
		if (!b->tab[j])
			break;
		home = slot_of(b, b->pool[b->tab[j] - 1].order_id);
		/* Entry j may move to the hole at i when its home is not in (i, j] cyclically. */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			b->tab[i] = b->tab[j];
			i = j;
		}
	}
	b->tab[i] = 0;
	b->tab_used--;
}

static uint32_t pool_get(struct xf_book *b)
{
	uint32_t oi;

	if (b->free_head != NIL) {
		oi = b->free_head;
		b->free_head = b->pool[oi].next;
		return oi;
	}
	if (b->pool_n == b->pool_cap) {
		uint32_t cap = b->pool_cap ? 2 * b->pool_cap : 1024;
		struct ord *n = realloc(b->pool, (size_t)cap * sizeof(*n));

		if (!n)
			return NIL;
		b->pool = n;
		b->pool_cap = cap;
	}
	return b->pool_n++;
}

/* ---- symbols and levels ---- */

static struct bsym *sym_get(struct xf_book *b, uint32_t s, bool create)
{
	if (s == 0 || s >= MAX_SYMBOL)
		return NULL;
	if (s >= b->syms_cap) {
		uint32_t cap = b->syms_cap ? b->syms_cap : 64;
		struct bsym *n;

		if (!create)
			return NULL;
		while (cap <= s)
			cap *= 2;
		n = realloc(b->syms, (size_t)cap * sizeof(*n));
		if (!n)
			return NULL;
		memset(n + b->syms_cap, 0, (size_t)(cap - b->syms_cap) * sizeof(*n));
		b->syms = n;
		b->syms_cap = cap;
	}
	if (!b->syms[s].state) {
		if (!create)
			return NULL;
		b->syms[s].state = XF_STATE_TRADING;
		if (s > b->max_sym)
			b->max_sym = s;
	}
	return &b->syms[s];
}

static const struct bsym *sym_at(const struct xf_book *b, uint32_t s)
{
	if (s == 0 || s >= b->syms_cap || !b->syms[s].state)
		return NULL;
	return &b->syms[s];
}

/* Is price a worse than price c on this side (the arrays are sorted worse first)? */
static bool worse(uint8_t side, int64_t a, int64_t c)
{
	return side == XF_BUY ? a < c : a > c;
}

/* Index of the level at price, or -(insertion point) - 1. */
static long lvl_find(const struct bside *sd, uint8_t side, int64_t price)
{
	long lo = 0, hi = (long)sd->n - 1;

	if (hi >= 0) {
		/* Most traffic is at the top of the book: the best level first. */
		if (sd->v[hi].price == price)
			return hi;
		if (worse(side, sd->v[hi].price, price))
			return -(hi + 1) - 1;
	}
	while (lo <= hi) {
		long mid = (lo + hi) / 2;

		if (sd->v[mid].price == price)
			return mid;
		if (worse(side, sd->v[mid].price, price))
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -lo - 1;
}

/* The level at price, created (empty) if need be; NULL on ENOMEM. */
static struct lvl *lvl_get(struct bside *sd, uint8_t side, int64_t price)
{
	long k = lvl_find(sd, side, price);
	uint32_t pos;

	if (k >= 0)
		return &sd->v[k];
	pos = (uint32_t)(-k - 1);
	if (sd->n == sd->cap) {
		uint32_t cap = sd->cap ? 2 * sd->cap : 16;
		struct lvl *n = realloc(sd->v, (size_t)cap * sizeof(*n));

		if (!n)
			return NULL;
		sd->v = n;
		sd->cap = cap;
	}
	memmove(&sd->v[pos + 1], &sd->v[pos], (size_t)(sd->n - pos) * sizeof(*sd->v));
	sd->n++;
	sd->v[pos] = (struct lvl){.price = price, .head = NIL, .tail = NIL};
	return &sd->v[pos];
}

/* Appends order oi at the back of its level (price, side, qty set). 0 or -ENOMEM. */
static int link_order(struct xf_book *b, struct bsym *y, uint32_t oi)
{
	struct ord *o = &b->pool[oi];
	struct lvl *L = lvl_get(&y->side[o->side - 1], o->side, o->price);

	if (!L)
		return -ENOMEM;
	o->next = NIL;
	o->prev = L->tail;
	if (L->tail != NIL)
		b->pool[L->tail].next = oi;
	else
		L->head = oi;
	L->tail = oi;
	L->qty += o->qty;
	L->count++;
	return 0;
}

static void unlink_order(struct xf_book *b, struct bsym *y, uint32_t oi)
{
	struct ord *o = &b->pool[oi];
	struct bside *sd = &y->side[o->side - 1];
	long k = lvl_find(sd, o->side, o->price);
	struct lvl *L = &sd->v[k];

	if (o->prev != NIL)
		b->pool[o->prev].next = o->next;
	else
		L->head = o->next;
	if (o->next != NIL)
		b->pool[o->next].prev = o->prev;
	else
		L->tail = o->prev;
	L->qty -= o->qty;
	if (--L->count == 0) {
		memmove(&sd->v[k], &sd->v[k + 1], (size_t)(sd->n - (uint32_t)k - 1) * sizeof(*L));
		sd->n--;
	}
}

/* Takes order oi out of the book entirely. */
static void remove_order(struct xf_book *b, struct bsym *y, uint32_t oi)
{
	unlink_order(b, y, oi);
	tab_del(b, b->pool[oi].order_id);
	b->pool[oi].next = b->free_head;
	b->free_head = oi;
	y->orders--;
	b->st.orders--;
}

/* The order a message names, checked against the message's symbol and side. */
static uint32_t named(struct xf_book *b, const char *what, uint64_t id, uint32_t symbol,
		      uint8_t side, int *rc)
{
	uint32_t oi = find(b, id);

	*rc = 0;
	if (oi == NIL) {
		*rc = refuse(b, "%s order %" PRIu64 ": not in the book", what, id);
		return NIL;
	}
	if (b->pool[oi].symbol != symbol || b->pool[oi].side != side)
		*rc = refuse(b,
			     "%s order %" PRIu64 ": symbol %u side %u, the book has symbol %u "
			     "side %u",
			     what, id, symbol, side, b->pool[oi].symbol, b->pool[oi].side);
	return oi;
}

static void clear_symbol(struct xf_book *b, uint32_t s)
{
	struct bsym *y = &b->syms[s];

	for (int sd = 0; sd < 2; sd++) {
		while (y->side[sd].n) {
			struct lvl *L = &y->side[sd].v[y->side[sd].n - 1];

			remove_order(b, y, L->head);
		}
	}
	y->state = XF_STATE_TRADING;
	y->has_trade = false;
}

/* ---- applying messages ---- */

static int apply_add(struct xf_book *b, const struct xf_add_order *m)
{
	struct bsym *y;
	uint32_t oi;
	int rc;

	if (m->side != XF_BUY && m->side != XF_SELL)
		return -EINVAL;
	if (!m->qty)
		return refuse(b, "ADD_ORDER order %" PRIu64 ": quantity 0", m->order_id);
	if (find(b, m->order_id) != NIL)
		return refuse(b, "ADD_ORDER order %" PRIu64 ": already in the book", m->order_id);
	y = sym_get(b, m->symbol_id, true);
	if (!y)
		return m->symbol_id && m->symbol_id < MAX_SYMBOL ? -ENOMEM : -EINVAL;
	if ((b->tab_used + 1) * 2 > b->tab_mask && tab_grow(b))
		return -ENOMEM;
	oi = pool_get(b);
	if (oi == NIL)
		return -ENOMEM;
	b->pool[oi] = (struct ord){.order_id = m->order_id,
				   .price = m->price,
				   .qty = m->qty,
				   .symbol = m->symbol_id,
				   .side = m->side};
	rc = link_order(b, y, oi);
	if (rc) {
		b->pool[oi].next = b->free_head;
		b->free_head = oi;
		return rc;
	}
	tab_put(b->tab, b->tab_mask, slot_of(b, m->order_id), oi);
	b->tab_used++;
	y->orders++;
	b->st.orders++;
	b->st.adds++;
	return 0;
}

static int apply_executed(struct xf_book *b, const struct xf_executed *m)
{
	struct bsym *y = sym_get(b, m->symbol_id, false);
	uint32_t oi;
	struct ord *o;
	int rc;

	if (!y)
		return refuse(b, "EXECUTED order %" PRIu64 ": symbol %u has no book", m->order_id,
			      m->symbol_id);
	oi = named(b, "EXECUTED", m->order_id, m->symbol_id, m->side, &rc);
	if (rc)
		return rc;
	o = &b->pool[oi];
	if (!m->qty || m->qty > o->qty || o->qty - m->qty != m->leaves)
		return refuse(b, "EXECUTED order %" PRIu64 ": %u executed leaving %u, %u open",
			      m->order_id, m->qty, m->leaves, o->qty);
	if (m->price != o->price)
		return refuse(
		    b, "EXECUTED order %" PRIu64 ": at %" PRId64 ", the order rests at %" PRId64,
		    m->order_id, m->price, o->price);
	if (!m->leaves) {
		remove_order(b, y, oi);
	} else {
		struct bside *sd = &y->side[o->side - 1];

		o->qty = m->leaves;
		sd->v[lvl_find(sd, o->side, o->price)].qty -= m->qty;
	}
	b->st.executions++;
	return 0;
}

static int apply_reduced(struct xf_book *b, const struct xf_reduced *m)
{
	struct bsym *y = sym_get(b, m->symbol_id, false);
	struct bside *sd;
	uint32_t oi;
	struct ord *o;
	int rc;

	if (!y)
		return refuse(b, "REDUCED order %" PRIu64 ": symbol %u has no book", m->order_id,
			      m->symbol_id);
	oi = named(b, "REDUCED", m->order_id, m->symbol_id, m->side, &rc);
	if (rc)
		return rc;
	o = &b->pool[oi];
	if (!m->qty || !m->leaves || o->qty != (uint64_t)m->qty + m->leaves)
		return refuse(b, "REDUCED order %" PRIu64 ": by %u to %u, %u open", m->order_id,
			      m->qty, m->leaves, o->qty);
	sd = &y->side[o->side - 1];
	sd->v[lvl_find(sd, o->side, o->price)].qty -= m->qty;
	o->qty = m->leaves;
	b->st.reductions++;
	return 0;
}

static int apply_deleted(struct xf_book *b, const struct xf_deleted *m)
{
	struct bsym *y = sym_get(b, m->symbol_id, false);
	uint32_t oi;
	int rc;

	if (!y)
		return refuse(b, "DELETED order %" PRIu64 ": symbol %u has no book", m->order_id,
			      m->symbol_id);
	oi = named(b, "DELETED", m->order_id, m->symbol_id, m->side, &rc);
	if (rc)
		return rc;
	if (b->pool[oi].qty != m->qty)
		return refuse(b, "DELETED order %" PRIu64 ": %u removed, %u open", m->order_id,
			      m->qty, b->pool[oi].qty);
	remove_order(b, y, oi);
	b->st.deletions++;
	return 0;
}

static int apply_replaced(struct xf_book *b, const struct xf_replaced *m)
{
	struct bsym *y = sym_get(b, m->symbol_id, false);
	uint32_t oi;
	struct ord *o, old;
	int rc;

	if (!y)
		return refuse(b, "REPLACED order %" PRIu64 ": symbol %u has no book", m->order_id,
			      m->symbol_id);
	oi = named(b, "REPLACED", m->order_id, m->symbol_id, m->side, &rc);
	if (rc)
		return rc;
	if (!m->qty)
		return refuse(b, "REPLACED order %" PRIu64 ": quantity 0", m->order_id);
	o = &b->pool[oi];
	old = *o;
	unlink_order(b, y, oi);
	o->price = m->price;
	o->qty = m->qty;
	rc = link_order(b, y, oi);
	if (rc) {
		/* Out of memory for a new level: put it back where it was. */
		*o = old;
		if (link_order(b, y, oi))
			abort();
		return rc;
	}
	b->st.replaces++;
	return 0;
}

int xf_book_apply(struct xf_book *b, const void *msg, size_t len)
{
	const struct xf_msg_hdr *h = msg;
	int rc = 0;

	if (len < 1 || xf_msg_size(h->type) != len)
		return -EINVAL;
	switch (h->type) {
	case XF_ADD_ORDER: rc = apply_add(b, msg); break;
	case XF_EXECUTED: rc = apply_executed(b, msg); break;
	case XF_REDUCED: rc = apply_reduced(b, msg); break;
	case XF_DELETED: rc = apply_deleted(b, msg); break;
	case XF_REPLACED: rc = apply_replaced(b, msg); break;
	case XF_TRADE: {
		const struct xf_trade *t = msg;
		struct bsym *y = sym_get(b, t->symbol_id, true);

		if (!y)
			return t->symbol_id ? -ENOMEM : -EINVAL;
		y->has_trade = true;
		y->last_px = t->price;
		y->last_qty = t->qty;
		y->last_match = t->match_id;
		b->st.trades++;
		break;
	}
	case XF_SYMBOL_STATE: {
		const struct xf_symbol_state *s = msg;
		struct bsym *y;

		if (s->state != XF_STATE_TRADING && s->state != XF_STATE_HALTED)
			return -EINVAL;
		y = sym_get(b, s->symbol_id, true);
		if (!y)
			return s->symbol_id ? -ENOMEM : -EINVAL;
		y->state = s->state;
		b->st.states++;
		break;
	}
	case XF_SYSTEM_EVENT: b->st.events++; break;
	case XF_SNAPSHOT_BEGIN: {
		const struct xf_snapshot_begin *s = msg;

		if (s->symbol_id) {
			if (sym_at(b, s->symbol_id))
				clear_symbol(b, s->symbol_id);
		} else {
			for (uint32_t i = 1; i <= b->max_sym; i++)
				if (sym_at(b, i))
					clear_symbol(b, i);
		}
		break;
	}
	case XF_SNAPSHOT_END: break;
	default: return -EINVAL;
	}
	if (!rc)
		b->st.applied++;
	return rc;
}

/* ---- queries ---- */

uint8_t xf_book_state(const struct xf_book *b, uint32_t symbol_id)
{
	const struct bsym *y = sym_at(b, symbol_id);

	return y ? y->state : 0;
}

uint32_t xf_book_levels(const struct xf_book *b, uint32_t symbol_id, uint8_t side, uint32_t depth,
			struct xf_level *out)
{
	const struct bsym *y = sym_at(b, symbol_id);
	uint32_t n = 0;

	if (!y || (side != XF_BUY && side != XF_SELL))
		return 0;
	for (uint32_t k = y->side[side - 1].n; k > 0 && n < depth; k--) {
		const struct lvl *L = &y->side[side - 1].v[k - 1];

		out[n++] = (struct xf_level){.price = L->price, .qty = L->qty, .orders = L->count};
	}
	return n;
}

uint32_t xf_book_orders(const struct xf_book *b, uint32_t symbol_id, uint8_t side, uint32_t max,
			struct xf_border *out)
{
	const struct bsym *y = sym_at(b, symbol_id);
	uint32_t n = 0;

	if (!y || (side != XF_BUY && side != XF_SELL))
		return 0;
	for (uint32_t k = y->side[side - 1].n; k > 0; k--) {
		for (uint32_t oi = y->side[side - 1].v[k - 1].head; oi != NIL;
		     oi = b->pool[oi].next) {
			const struct ord *o = &b->pool[oi];

			if (n == max)
				return n;
			out[n++] = (struct xf_border){.order_id = o->order_id,
						      .price = o->price,
						      .qty = o->qty,
						      .side = o->side};
		}
	}
	return n;
}

int xf_book_last_trade(const struct xf_book *b, uint32_t symbol_id, int64_t *price, uint32_t *qty,
		       uint64_t *match_id)
{
	const struct bsym *y = sym_at(b, symbol_id);

	if (!y || !y->has_trade)
		return -ENOENT;
	*price = y->last_px;
	*qty = y->last_qty;
	*match_id = y->last_match;
	return 0;
}

/* A symbol worth a snapshot entry or a dump section: orders, or a halt. */
static bool interesting(const struct bsym *y)
{
	return y && (y->orders || y->state == XF_STATE_HALTED);
}

struct obuf {
	uint8_t **p;
	size_t *cap, len;
};

static void *ob_put(struct obuf *o, uint8_t type, size_t size)
{
	uint8_t *m;

	if (o->len + XF_BLOCK_HDR + size > *o->cap) {
		size_t cap = *o->cap ? *o->cap : 4096;
		uint8_t *n;

		while (cap < o->len + XF_BLOCK_HDR + size)
			cap *= 2;
		n = realloc(*o->p, cap);
		if (!n)
			return NULL;
		*o->p = n;
		*o->cap = cap;
	}
	m = *o->p + o->len;
	xf_put_be(m, 2, size);
	memset(m + XF_BLOCK_HDR, 0, size);
	m[XF_BLOCK_HDR] = type;
	o->len += XF_BLOCK_HDR + size;
	return m + XF_BLOCK_HDR;
}

static int snap_symbol(const struct xf_book *b, uint32_t s, uint64_t ts, struct obuf *o,
		       uint32_t *norders)
{
	const struct bsym *y = &b->syms[s];
	struct xf_symbol_state *st = ob_put(o, XF_SYMBOL_STATE, sizeof(*st));

	if (!st)
		return -ENOMEM;
	st->state = y->state;
	st->symbol_id = s;
	st->ts = ts;
	for (int sd = 0; sd < 2; sd++) {
		for (uint32_t k = y->side[sd].n; k > 0; k--) {
			for (uint32_t oi = y->side[sd].v[k - 1].head; oi != NIL;
			     oi = b->pool[oi].next) {
				const struct ord *x = &b->pool[oi];
				struct xf_add_order *a = ob_put(o, XF_ADD_ORDER, sizeof(*a));

				if (!a)
					return -ENOMEM;
				a->side = x->side;
				a->symbol_id = s;
				a->ts = ts;
				a->order_id = x->order_id;
				a->price = x->price;
				a->qty = x->qty;
				(*norders)++;
			}
		}
	}
	return 0;
}

long xf_book_snapshot(const struct xf_book *b, uint32_t symbol_id, uint64_t ts, uint64_t next_seq,
		      uint8_t **out, size_t *cap)
{
	struct obuf o = {out, cap, 0};
	struct xf_snapshot_begin *beg = ob_put(&o, XF_SNAPSHOT_BEGIN, sizeof(*beg));
	struct xf_snapshot_end *end;
	uint32_t nsym = 0, nord = 0;
	size_t beg_off = 0;

	if (!beg)
		return -ENOMEM;
	if (symbol_id && !sym_at(b, symbol_id)) {
		beg->status = XF_SNAP_UNKNOWN_SYMBOL;
	} else {
		for (uint32_t s = symbol_id ? symbol_id : 1;
		     s <= (symbol_id ? symbol_id : b->max_sym); s++) {
			if (!symbol_id && !interesting(sym_at(b, s)))
				continue;
			if (snap_symbol(b, s, ts, &o, &nord))
				return -ENOMEM;
			nsym++;
		}
	}
	end = ob_put(&o, XF_SNAPSHOT_END, sizeof(*end));
	if (!end)
		return -ENOMEM;
	end->symbol_id = symbol_id;
	end->ts = ts;
	end->next_seq = next_seq;
	beg = (void *)(*out + beg_off + XF_BLOCK_HDR); /* the buffer may have moved */
	beg->symbol_id = symbol_id;
	beg->ts = ts;
	beg->next_seq = next_seq;
	beg->symbols = nsym;
	beg->orders = nord;
	return (long)o.len;
}

int xf_book_dump(const struct xf_book *b, FILE *out)
{
	for (uint32_t s = 1; s <= b->max_sym; s++) {
		const struct bsym *y = sym_at(b, s);

		if (!interesting(y))
			continue;
		fprintf(out, "symbol %u %c\n", s, y->state == XF_STATE_HALTED ? 'H' : 'T');
		for (int sd = 0; sd < 2; sd++)
			for (uint32_t k = y->side[sd].n; k > 0; k--)
				for (uint32_t oi = y->side[sd].v[k - 1].head; oi != NIL;
				     oi = b->pool[oi].next)
					fprintf(out, "%u %c %" PRId64 " %" PRIu64 " %u\n", s,
						sd ? 'S' : 'B', b->pool[oi].price,
						b->pool[oi].order_id, b->pool[oi].qty);
	}
	return ferror(out) ? -EIO : 0;
}
