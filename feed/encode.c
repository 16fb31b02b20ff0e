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

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "encode.c builds the little-endian feed messages from native 64-bit words"
#endif

/* The 8 bytes every message starts with: type, the per-type byte, 2 pad bytes, symbol id. */
static inline uint64_t w0(uint8_t type, uint8_t aux, uint32_t symbol)
{
	return (uint64_t)type | (uint64_t)aux << 8 | (uint64_t)symbol << 32;
}

static inline void wr(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* Appends one message of n (2..6) 8-byte words (room reserved) behind its block length: stores
 * straight from registers, no memset (every pad byte is a zero bit of some word) and no array on
 * the stack (copying one out costs a store-forwarding stall per message, measured). */
static inline __attribute__((always_inline)) void put(struct xf_enc *f, unsigned n, uint64_t a,
						      uint64_t b, uint64_t c, uint64_t d,
						      uint64_t e, uint64_t g)
{
	uint8_t *p = f->buf + f->len;

	p[0] = 0;
	p[1] = (uint8_t)(8 * n);
	p += XF_BLOCK_HDR;
	wr(p, a);
	wr(p + 8, b);
	if (n > 2)
		wr(p + 16, c);
	if (n > 3)
		wr(p + 24, d);
	if (n > 4)
		wr(p + 32, e);
	if (n > 5)
		wr(p + 40, g);
	f->len += XF_BLOCK_HDR + 8 * (size_t)n;
	f->count++;
	f->next_seq++;
}

static void put_add(struct xf_enc *f, const struct xe_event *e, uint32_t qty, uint64_t ts)
{
	put(f, 5, w0(XF_ADD_ORDER, e->side, e->symbol_id), ts, e->order_id, (uint64_t)e->price, qty,
	    0);
}

static void put_deleted(struct xf_enc *f, const struct xe_event *e, uint32_t qty, uint64_t ts)
{
	put(f, 4, w0(XF_DELETED, e->side, e->symbol_id), ts, e->order_id, qty, 0, 0);
}

/* A resting order's fill: its EXECUTED, then the match on the tape with the aggressor's side. */
static void put_match(struct xf_enc *f, const struct xe_event *e, uint64_t ts)
{
	put(f, 6, w0(XF_EXECUTED, e->side, e->symbol_id), ts, e->order_id, e->exec_id,
	    (uint64_t)e->price, (uint64_t)e->qty | (uint64_t)e->leaves << 32);
	put(f, 5, w0(XF_TRADE, e->side == XE_BUY ? XE_SELL : XE_BUY, e->symbol_id), ts, e->exec_id,
	    (uint64_t)e->price, e->qty, 0);
}

_Static_assert(sizeof(struct xf_add_order) == 40 && sizeof(struct xf_deleted) == 32 &&
		   sizeof(struct xf_executed) == 48 && sizeof(struct xf_trade) == 40 &&
		   sizeof(struct xf_reduced) == 32 && sizeof(struct xf_replaced) == 40 &&
		   sizeof(struct xf_symbol_state) == 16 && sizeof(struct xf_system_event) == 16,
	       "the word counts below");

/* Largest output of one event: a match (EXECUTED + TRADE), or the closing ADD/REPLACED. */
#define XF_EV_MAX_BYTES (2 * XF_BLOCK_HDR + sizeof(struct xf_executed) + sizeof(struct xf_trade))

/* Undoes what a refused call appended. */
static int refuse(struct xf_enc *f, size_t len, uint64_t count)
{
	f->next_seq -= f->count - count;
	f->count = count;
	f->len = len;
	f->refused++;
	return -EINVAL;
}

int xf_enc_events(struct xf_enc *f, const struct xe_event *ev, uint32_t n,
		  const struct xe_order_info *prior, uint64_t ts)
{
	const struct xe_event *a = &ev[0]; /* the order entering or moving, if any */
	uint64_t before = f->count;
	size_t len0 = f->len;
	bool gone = false, entering = a->type == XE_EV_ACCEPTED || a->type == XE_EV_REPLACED;
	uint32_t leaves = a->leaves;

	if (!n)
		return 0;
	if (a->type == XE_EV_REJECTED)
		return n == 1 ? 0 : refuse(f, len0, before);
	if (!entering && a->type != XE_EV_CANCELLED)
		return refuse(f, len0, before);
	if (a->type == XE_EV_REPLACED &&
	    (!prior || prior->order_id != a->order_id || prior->symbol_id != a->symbol_id))
		return refuse(f, len0, before);
	if (reserve(f, (size_t)n * XF_EV_MAX_BYTES + XF_EV_MAX_BYTES))
		return -ENOMEM;
	if (a->type == XE_EV_REPLACED && a->price == prior->price && a->leaves <= prior->leaves) {
		/* Same price, less open: the order stays where it is (nothing to match). */
		if (n != 1)
			return refuse(f, len0, before);
		put(f, 4, w0(XF_REDUCED, a->side, a->symbol_id), ts, a->order_id,
		    (uint64_t)(prior->leaves - a->leaves) | (uint64_t)a->leaves << 32, 0, 0);
		return 1;
	}
	/* One pass, checking as it goes; a refusal takes back what was appended. */
	for (uint32_t i = entering ? 1 : 0; i < n; i++) {
		const struct xe_event *e = &ev[i];
		bool mine = entering && e->order_id == a->order_id;

		if (e->type == XE_EV_FILL && entering) {
			if (mine && e->liquidity == XE_LIQ_REMOVED)
				leaves = e->leaves; /* the aggressor's side of the match */
			else if (!mine && e->liquidity == XE_LIQ_ADDED)
				put_match(f, e, ts);
			else
				return refuse(f, len0, before);
		} else if (e->type == XE_EV_CANCELLED) {
			if (mine)
				gone = true; /* its remainder will not rest */
			else
				put_deleted(f, e, e->qty, ts);
		} else {
			return refuse(f, len0, before); /* another call's events, or garbage */
		}
	}
	if (a->type == XE_EV_ACCEPTED && leaves && !gone) {
		put_add(f, a, leaves, ts);
	} else if (a->type == XE_EV_REPLACED) {
		if (leaves && !gone) {
			put(f, 5, w0(XF_REPLACED, a->side, a->symbol_id), ts, a->order_id,
			    (uint64_t)a->price, leaves, 0);
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
	put(f, 2, w0(XF_SYMBOL_STATE, halted ? XF_STATE_HALTED : XF_STATE_TRADING, symbol_id), ts,
	    0, 0, 0, 0);
	return 1;
}

int xf_enc_system(struct xf_enc *f, uint8_t event, uint64_t ts)
{
	if (event != XF_SYS_START_OF_SESSION && event != XF_SYS_END_OF_SESSION)
		return -EINVAL;
	if (reserve(f, XF_BLOCK_HDR + sizeof(struct xf_system_event)))
		return -ENOMEM;
	put(f, 2, w0(XF_SYSTEM_EVENT, event, 0), ts, 0, 0, 0, 0);
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
	f->msgs += f->count;
	f->bytes += f->len;
	f->len = 0;
	f->count = 0;
	f->first_seq = f->next_seq;
}

void xf_enc_resume(struct xf_enc *f, uint64_t next_seq)
{
	f->next_seq = next_seq;
	f->len = 0;
	f->count = 0;
	f->first_seq = next_seq;
}
