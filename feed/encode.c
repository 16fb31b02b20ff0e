/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Engine events -> feed messages. The events of one engine call say everything the public book
 * needs, given one rule of the engine (engine.h: fills come in pairs, the aggressor's first):
 *
 *   new order (ACCEPTED first): the entering order is not on the book while it matches. Each
 *     resting fill (liquidity ADDED) is an EXECUTED of that order and a TRADE with the aggressor's
 *     side; the aggressor's own fills only count its leaves; a CANCELLED of a resting order
 *     (self-trade prevention) is a DELETED; the aggressor's CANCELLED (IOC, market, STP
 *     remainder) says it will not rest. Whatever it still has open at the end is an ADD_ORDER,
 *     after its trades, so the book never shows it crossed.
 *   replace (REPLACED first): quantity down at the same price keeps the order's place: REDUCED.
 *     Otherwise it lost its place; it may trade at the new price first (EXECUTED/TRADE as above,
 *     the order staying at its old, non-crossing price meanwhile), then it is REPLACED at the new
 *     price with what is left open, or DELETED when nothing is.
 *   cancel, mass cancel, expiry, cancel on disconnect: every CANCELLED is a resting order's
 *     DELETED.
 *   rejects: nothing.
 *
 * Whether the replace kept its place needs the order's price and open quantity before the call,
 * which the events do not carry: the caller passes them (xe_engine_get_order()), so the encoder
 * keeps no per-order state and recovery only needs the next sequence number.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex_feed.h"

#define XF_DEFAULT_CAP (1u << 20)

int xf_enc_init(struct xf_enc *f, uint64_t next_seq, size_t cap)
{
	memset(f, 0, sizeof(*f));
	f->cap = cap ? cap : XF_DEFAULT_CAP;
	f->buf = malloc(f->cap);
	if (!f->buf)
		return -ENOMEM;
	f->next_seq = f->first_seq = next_seq ? next_seq : 1;
	return 0;
}

void xf_enc_free(struct xf_enc *f)
{
	free(f->buf);
	f->buf = NULL;
	f->cap = f->len = 0;
}

/* Room for `bytes` more in the open batch. */
static int reserve(struct xf_enc *f, size_t bytes)
{
	size_t cap = f->cap;
	uint8_t *n;

	if (f->len + bytes <= f->cap)
		return 0;
	while (cap < f->len + bytes)
		cap *= 2;
	n = realloc(f->buf, cap);
	if (!n)
		return -ENOMEM;
	f->buf = n;
	f->cap = cap;
	return 0;
}

/* The next message of `size` bytes in the open batch, its prefix filled in (room reserved). */
static void *put(struct xf_enc *f, uint8_t type, size_t size, uint8_t aux, uint32_t symbol,
		 uint64_t ts)
{
	uint8_t *b = f->buf + f->len;
	struct xf_msg_hdr *h = (void *)(b + XF_BLOCK_HDR);

	b[0] = (uint8_t)(size >> 8);
	b[1] = (uint8_t)size;
	memset(h, 0, size);
	h->type = type;
	h->aux = aux;
	h->symbol_id = symbol;
	h->ts = ts;
	f->len += XF_BLOCK_HDR + size;
	f->count++;
	f->next_seq++;
	f->msgs++;
	f->bytes += XF_BLOCK_HDR + size;
	return h;
}

static void put_add(struct xf_enc *f, const struct xe_event *e, uint32_t qty, uint64_t ts)
{
	struct xf_add_order *m = put(f, XF_ADD_ORDER, sizeof(*m), e->side, e->symbol_id, ts);

	m->order_id = e->order_id;
	m->price = e->price;
	m->qty = qty;
}

static void put_deleted(struct xf_enc *f, const struct xe_event *e, uint32_t qty, uint64_t ts)
{
	struct xf_deleted *m = put(f, XF_DELETED, sizeof(*m), e->side, e->symbol_id, ts);

	m->order_id = e->order_id;
	m->qty = qty;
}

/* A resting order's fill: its EXECUTED, then the match on the tape. */
static void put_match(struct xf_enc *f, const struct xe_event *e, uint64_t ts)
{
	struct xf_executed *x = put(f, XF_EXECUTED, sizeof(*x), e->side, e->symbol_id, ts);
	struct xf_trade *t;

	x->order_id = e->order_id;
	x->match_id = e->exec_id;
	x->price = e->price;
	x->qty = e->qty;
	x->leaves = e->leaves;
	t = put(f, XF_TRADE, sizeof(*t), e->side == XE_BUY ? XE_SELL : XE_BUY, e->symbol_id, ts);
	t->match_id = e->exec_id;
	t->price = e->price;
	t->qty = e->qty;
}

/* Largest output of one event: a match (EXECUTED + TRADE), or the closing ADD/REPLACED. */
#define XF_EV_MAX_BYTES (2 * XF_BLOCK_HDR + sizeof(struct xf_executed) + sizeof(struct xf_trade))

/* Checks that ev[1..n) can follow ev[0] in one call, before anything is written. */
static int check_call(const struct xe_event *ev, uint32_t n)
{
	uint8_t first = ev[0].type;

	for (uint32_t i = 1; i < n; i++) {
		const struct xe_event *e = &ev[i];

		if (e->type == XE_EV_ACCEPTED || e->type == XE_EV_REPLACED || e->type == XE_EV_REJECTED)
			return -EINVAL; /* a second call's events */
		if (e->type == XE_EV_FILL &&
		    (first != XE_EV_ACCEPTED && first != XE_EV_REPLACED))
			return -EINVAL; /* fills only come from an order entering or moving */
		if (e->type == XE_EV_FILL && e->liquidity == XE_LIQ_REMOVED &&
		    e->order_id != ev[0].order_id)
			return -EINVAL;
		if (e->type < XE_EV_ACCEPTED || e->type > XE_EV_REPLACED)
			return -EINVAL;
	}
	if (first == XE_EV_FILL || first < XE_EV_ACCEPTED || first > XE_EV_REPLACED)
		return -EINVAL;
	if (first == XE_EV_REJECTED && n != 1)
		return -EINVAL;
	return 0;
}

int xf_enc_events(struct xf_enc *f, const struct xe_event *ev, uint32_t n,
		  const struct xe_order_info *prior, uint64_t ts)
{
	uint64_t before = f->count;
	const struct xe_event *a = &ev[0]; /* the order entering or moving, if any */
	uint32_t leaves;
	bool gone = false, entering;

	if (!n)
		return 0;
	if (check_call(ev, n)) {
		f->refused++;
		return -EINVAL;
	}
	if (a->type == XE_EV_REJECTED)
		return 0;
	if (a->type == XE_EV_REPLACED &&
	    (!prior || prior->order_id != a->order_id || prior->symbol_id != a->symbol_id)) {
		f->refused++;
		return -EINVAL;
	}
	if (reserve(f, (size_t)n * XF_EV_MAX_BYTES + XF_EV_MAX_BYTES))
		return -ENOMEM;
	entering = a->type == XE_EV_ACCEPTED || a->type == XE_EV_REPLACED;
	leaves = entering ? a->leaves : 0;
	if (a->type == XE_EV_REPLACED && a->price == prior->price && a->leaves <= prior->leaves) {
		/* Same price, less open: the order stays where it is (n is 1: nothing to match). */
		struct xf_reduced *m = put(f, XF_REDUCED, sizeof(*m), a->side, a->symbol_id, ts);

		m->order_id = a->order_id;
		m->qty = prior->leaves - a->leaves;
		m->leaves = a->leaves;
		return (int)(f->count - before);
	}
	for (uint32_t i = entering ? 1 : 0; i < n; i++) {
		const struct xe_event *e = &ev[i];
		bool mine = entering && e->order_id == a->order_id;

		if (e->type == XE_EV_FILL) {
			if (mine)
				leaves = e->leaves; /* the aggressor's side of the match */
			else
				put_match(f, e, ts);
		} else if (e->type == XE_EV_CANCELLED) {
			if (mine)
				gone = true; /* its remainder will not rest */
			else
				put_deleted(f, e, e->qty, ts);
		}
	}
	if (a->type == XE_EV_ACCEPTED && leaves && !gone) {
		put_add(f, a, leaves, ts);
	} else if (a->type == XE_EV_REPLACED) {
		if (leaves && !gone) {
			struct xf_replaced *m = put(f, XF_REPLACED, sizeof(*m), a->side,
						    a->symbol_id, ts);

			m->order_id = a->order_id;
			m->price = a->price;
			m->qty = leaves;
		} else {
			put_deleted(f, a, prior->leaves, ts);
		}
	}
	return (int)(f->count - before);
}

int xf_enc_symbol_state(struct xf_enc *f, uint32_t symbol_id, int halted, uint64_t ts)
{
	if (reserve(f, XF_BLOCK_HDR + sizeof(struct xf_symbol_state)))
		return -ENOMEM;
	put(f, XF_SYMBOL_STATE, sizeof(struct xf_symbol_state),
	    halted ? XF_STATE_HALTED : XF_STATE_TRADING, symbol_id, ts);
	return 1;
}

int xf_enc_system(struct xf_enc *f, uint8_t event, uint64_t ts)
{
	if (event != XF_SYS_START_OF_SESSION && event != XF_SYS_END_OF_SESSION)
		return -EINVAL;
	if (reserve(f, XF_BLOCK_HDR + sizeof(struct xf_system_event)))
		return -ENOMEM;
	put(f, XF_SYSTEM_EVENT, sizeof(struct xf_system_event), event, 0, ts);
	return 1;
}

int xf_enc_next_record(const struct xf_enc *f, size_t *pos, struct xf_span *out)
{
	size_t p = *pos;
	uint32_t n = 0;

	if (p >= f->len)
		return 0;
	out->blocks = f->buf + p;
	/* Which message starts at p: count the blocks before it (only for batches of more than one
	 * record, i.e. rarely). */
	if (p == 0) {
		out->seq = f->first_seq;
	} else {
		uint64_t k = 0;

		for (size_t q = 0; q < p; q += XF_BLOCK_HDR + xf_get_be(f->buf + q, 2))
			k++;
		out->seq = f->first_seq + k;
	}
	if (p == 0 && f->count <= XF_REC_MAX_MSGS) {
		n = (uint32_t)f->count;
		p = f->len;
	} else {
		while (p < f->len && n < XF_REC_MAX_MSGS) {
			p += XF_BLOCK_HDR + xf_get_be(f->buf + p, 2);
			n++;
		}
	}
	out->len = p - *pos;
	out->count = n;
	*pos = p;
	return 1;
}

void xf_enc_commit(struct xf_enc *f)
{
	f->len = 0;
	f->count = 0;
	f->first_seq = f->next_seq;
}

void xf_enc_resume(struct xf_enc *f, uint64_t next_seq)
{
	f->next_seq = next_seq;
	xf_enc_commit(f);
}
