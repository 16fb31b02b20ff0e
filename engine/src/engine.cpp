// SPDX-License-Identifier: BSD-2-Clause
//
// Order entry of the matching engine: new orders (limit DAY/GTC, market, IOC, FOK, post-only),
// cancel, cancel/replace, mass cancel and the DAY expiry, with price-time priority, trades at the
// resting order's price and self-trade prevention. Nothing here allocates, locks or throws: every
// refusal is a Rejected event with an xe_reject_reason, and events go straight into the caller's
// array in the order they happen.
//
// Checks run in this order (the Python reference model in engine/tests mirrors it):
//   new order: session, side, order type, time in force (post-only needs DAY/GTC), symbol,
//     quantity (zero or above max), lot, price (<= 0, off tick, outside band; not for market),
//     halted, duplicate id, capacity (only orders that can rest: a free order, and the ladder
//     nodes its price needs), post-only cross, FOK fillable.
//   cancel: session, unknown order.
//   replace: session, unknown order, halted, quantity, lot, price, duplicate new id, quantity
//     not above what already traded, no change, post-only cross, capacity (ladder nodes, only
//     when the price moves; never on bands of up to 2^24 ticks).
//   mass cancel: session, side, symbol (0 = all), reason (0 = XE_CXL_MASS); a client mass cancel
//     (reason XE_CXL_MASS) that finds nothing is answered with Rejected XE_REJ_UNKNOWN_ORDER.
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "engine_impl.hpp"

using xe::Aggressor;
using xe::Book;
using xe::BookSide;
using xe::Level;
using xe::NIL;
using xe::Order;

using xe::level_index;
using xe::level_price;

namespace
{

// May an order on `side` limited to `limit` trade at `px`?
inline bool within_limit(uint8_t side, int64_t limit, int64_t px)
{
	return side == XE_BUY ? px <= limit : px >= limit;
}

// Does an order on `side` at `price` cross the opposite best? Written per side rather than with
// within_limit(): a constant side index lets the compiler drop one test (fewer instructions per
// new order, measured).
inline bool crosses(const Book &b, uint8_t side, int64_t price)
{
	if (side == XE_BUY) {
		const BookSide &s = b.side[1];
		return s.best >= 0 && level_price(b, s.best) <= price;
	}
	const BookSide &s = b.side[0];
	return s.best >= 0 && level_price(b, s.best) >= price;
}

inline xe_event *ev(xe_event *out, uint32_t n)
{
	xe_event *e = &out[n];
	*e = xe_event{};
	return e;
}

// Hot-path event writes: eight 8-byte stores from registers, no byte stores to merge and no
// stack copy (a 64-byte event assembled field by field on the stack and copied out cost a
// store-forwarding stall per event).
static_assert(offsetof(xe_event, reason) == 4 && offsetof(xe_event, tif) == 6 &&
		  offsetof(xe_event, session_id) == 8 && offsetof(xe_event, cl_ord_id) == 16 &&
		  offsetof(xe_event, price) == 32 && offsetof(xe_event, qty) == 40 &&
		  offsetof(xe_event, exec_id) == 48 && sizeof(xe_event) == 64,
	      "xe_event layout assumed by put_event");

inline uint64_t ev_hdr(uint8_t type, uint8_t side, uint8_t liq, uint8_t ord_type, uint16_t reason,
		       uint8_t tif)
{
	return (uint64_t)type | (uint64_t)side << 8 | (uint64_t)liq << 16 |
	       (uint64_t)ord_type << 24 | (uint64_t)reason << 32 | (uint64_t)tif << 48;
}

inline uint64_t pair32(uint32_t lo, uint32_t hi)
{
	return (uint64_t)lo | (uint64_t)hi << 32;
}

inline void put_event(xe_event *e, uint64_t hdr, uint64_t session_symbol, uint64_t cl,
		      uint64_t order_id, int64_t price, uint64_t qty_leaves, uint64_t exec,
		      uint64_t orig)
{
	char *p = reinterpret_cast<char *>(e);
	uint64_t px = (uint64_t)price;
	memcpy(p + 0, &hdr, 8);
	memcpy(p + 8, &session_symbol, 8);
	memcpy(p + 16, &cl, 8);
	memcpy(p + 24, &order_id, 8);
	memcpy(p + 32, &px, 8);
	memcpy(p + 40, &qty_leaves, 8);
	memcpy(p + 48, &exec, 8);
	memcpy(p + 56, &orig, 8);
}

// The events of one order, resting (Order) or being entered (Aggressor): both carry the same
// fields under the same names.
template <class O>
inline void put_fill(xe_event *e, const O &o, uint8_t liq, int64_t px, uint32_t q, uint64_t exec)
{
	put_event(e, ev_hdr(XE_EV_FILL, o.side, liq, o.ord_type, 0, o.tif),
		  pair32(o.session, o.symbol), o.cl_ord_id, o.order_id, px, pair32(q, o.leaves),
		  exec, 0);
}

// The order loses all its open quantity (o.leaves).
template <class O>
inline void put_cancelled(xe_event *e, const O &o, int64_t price, uint16_t reason)
{
	put_event(e, ev_hdr(XE_EV_CANCELLED, o.side, 0, o.ord_type, reason, o.tif),
		  pair32(o.session, o.symbol), o.cl_ord_id, o.order_id, price, pair32(o.leaves, 0),
		  0, 0);
}

inline bool valid_session(const xe_engine *e, uint32_t s)
{
	return s >= 1 && s <= e->cfg.max_sessions;
}

inline uint16_t check_price(const Book &b, int64_t price)
{
	if (price <= 0)
		return XE_REJ_BAD_PRICE;
	if (b.tick != 1 && price % b.tick) // (a 64-bit division is tens of cycles)
		return XE_REJ_OFF_TICK;
	if (price < b.band_low || price > b.band_high)
		return XE_REJ_OUTSIDE_BAND;
	return XE_REJ_NONE;
}

inline uint16_t check_qty(const Book &b, uint32_t qty)
{
	if (qty == 0 || (b.max_qty && qty > b.max_qty))
		return XE_REJ_BAD_QUANTITY;
	if (qty % b.lot)
		return XE_REJ_OFF_LOT;
	return XE_REJ_NONE;
}

} // namespace

// --- book maintenance ---------------------------------------------------------------------------

XE_HOT void xe_engine::unlink_level(Book &b, Order &o)
{
	BookSide &s = b.side[o.side - 1];
	uint64_t li = level_index(b, o.price);
	uint32_t pi = page_of(s, li);
	Level &L = pages[pi].lv[li & 63];
	if (o.prev != NIL)
		pool[o.prev].next = o.next;
	else
		L.head = o.next;
	if (o.next != NIL)
		pool[o.next].prev = o.prev;
	else
		L.tail = o.prev;
	L.qty -= o.leaves;
	if (L.head == NIL) {
		uint64_t &m = page_mask[pi];
		m &= ~(1ull << (li & 63));
		levels--;
		bool was_best = (int64_t)li == s.best;
		if (!m) {
			page_drop(s, li, pi);
			pi = NIL;
		}
		if (was_best)
			s.best = next_level(b, s, (int64_t)li, o.side == XE_BUY, pi, &s.best_page);
	}
}

// Level li of side s (a bid side when bids), the best, has just lost its last order.
XE_HOT void xe_engine::level_emptied(Book &b, BookSide &s, int64_t li, bool bids)
{
	uint32_t pi = s.best_page;
	uint64_t &m = page_mask[pi];
	m &= ~(1ull << (li & 63));
	levels--;
	if (!m) {
		page_drop(s, (uint64_t)li, pi);
		pi = NIL;
	}
	s.best = next_level(b, s, li, bids, pi, &s.best_page);
}

XE_HOT void xe_engine::unlink_session(Order &o)
{
	xe::Session &s = sessions[o.session];
	if (o.sprev != NIL)
		pool[o.sprev].snext = o.snext;
	else
		s.head = o.snext;
	if (o.snext != NIL)
		pool[o.snext].sprev = o.sprev;
	else
		s.tail = o.sprev;
}

XE_HOT void xe_engine::release(uint32_t oi)
{
	pool[oi].hnext = free_head;
	free_head = oi;
	used--;
}

// Takes a resting order out of its level, its session, the index (bucket bkt) and the pool.
XE_HOT void xe_engine::remove_order(Book &b, uint32_t oi, uint32_t bkt)
{
	Order &o = pool[oi];
	unlink_level(b, o);
	unlink_session(o);
	index_del(bkt, oi);
	release(oi);
}

XE_HOT void xe_engine::remove_order(Book &b, uint32_t oi)
{
	const Order &o = pool[oi];
	remove_order(b, oi, bucket_of(o.session, o.cl_ord_id));
}

// Appends a pooled order (price, leaves, side set) at the tail of its level.
XE_HOT void xe_engine::rest(Book &b, uint32_t oi)
{
	Order &o = pool[oi];
	BookSide &s = b.side[o.side - 1];
	uint64_t li = level_index(b, o.price);
	uint32_t pi = page_make(s, li);
	Level &L = pages[pi].lv[li & 63];
	o.next = NIL;
	if (L.head != NIL) { // an empty level's head is NIL, even in a page just made
		o.prev = L.tail;
		pool[L.tail].next = oi;
		L.tail = oi;
		L.qty += o.leaves;
		return;
	}
	o.prev = NIL;
	L.head = L.tail = oi;
	L.qty = o.leaves;
	page_mask[pi] |= 1ull << (li & 63);
	levels++;
	if (o.side == XE_BUY ? (s.best < (int64_t)li) : (s.best < 0 || s.best > (int64_t)li)) {
		s.best = (int64_t)li;
		s.best_page = pi;
	}
}

// --- matching -----------------------------------------------------------------------------------

bool xe_engine::fok_fillable(const Book &b, const Aggressor &a) const
{
	const BookSide &s = b.side[a.side == XE_BUY ? 1 : 0];
	uint8_t stp = sessions[a.session].stp;
	uint64_t need = a.leaves, got = 0;
	int64_t li = s.best;
	uint32_t pi = s.best_page;
	while (li >= 0) {
		int64_t px = level_price(b, li);
		if (a.has_limit() && !within_limit(a.side, a.price, px))
			return false;
		const Level &L = level_at(pi, li);
		if (stp == XE_STP_NONE) {
			got += L.qty;
		} else {
			for (uint32_t oi = L.head; oi != NIL; oi = pool[oi].next) {
				const Order &m = pool[oi];
				if (m.session == a.session) {
					if (stp != XE_STP_CANCEL_OLDEST)
						return false; // the aggressor stops here
					continue;
				}
				got += m.leaves;
				if (got >= need)
					return true;
			}
		}
		if (got >= need)
			return true;
		li = next_level(b, s, li, a.side == XE_SELL, pi, &pi);
	}
	return false;
}

// Trades `a` against the opposite side while it has quantity and the price allows. Writes fill
// pairs (and STP cancels of resting orders); sets *stp_stop when STP ends the aggressor.
uint32_t xe_engine::match(Book &b, Aggressor &a, xe_event *out, uint32_t n, bool *stp_stop)
{
	BookSide &s = b.side[a.side == XE_BUY ? 1 : 0];
	uint8_t stp = sessions[a.session].stp;
	while (a.leaves && s.best >= 0) {
		int64_t li = s.best;
		int64_t px = level_price(b, li);
		if (a.has_limit() && !within_limit(a.side, a.price, px))
			break;
		Level &L = level_at(s.best_page, li);
		uint32_t oi = L.head;
		// Every order removed below may empty the level and move s.best; the loop re-reads
		// s.best so it never walks a stale level.
		while (a.leaves && oi != NIL && s.best == li) {
			Order &m = pool[oi];
			uint32_t next = m.next;
			// Start the loads the next steps will need (the next order in the queue,
			// and the index bucket of this one when it is about to leave) while the
			// fills are written.
			uint32_t bkt = 0; // m's index bucket, hashed once when m is about to leave
			if (next != NIL)
				__builtin_prefetch(&pool[next]);
			if (m.leaves <= a.leaves) {
				bkt = bucket_of(m.session, m.cl_ord_id);
				__builtin_prefetch(&buckets[bkt]);
			}
			if (stp != XE_STP_NONE && m.session == a.session) {
				if (stp == XE_STP_CANCEL_NEWEST) {
					*stp_stop = true;
					return n;
				}
				put_cancelled(&out[n++], m, m.price, XE_CXL_SELF_TRADE);
				remove_order(b, oi);
				if (stp == XE_STP_CANCEL_BOTH) {
					*stp_stop = true;
					return n;
				}
				oi = next;
				continue;
			}
			uint32_t q = a.leaves < m.leaves ? a.leaves : m.leaves;
			uint64_t exec = next_exec_id++;
			fills++;
			a.leaves -= q;
			a.filled += q;
			m.leaves -= q;
			m.filled += q;
			L.qty -= q;

			put_fill(&out[n++], a, XE_LIQ_REMOVED, px, q, exec);
			put_fill(&out[n++], m, XE_LIQ_ADDED, m.price, q, exec);
			if (m.leaves == 0) {
				// m is the level's head (everything before it is gone): pop it
				// without looking its level up again.
				L.head = next;
				if (next != NIL)
					pool[next].prev = NIL;
				else
					L.tail = NIL;
				unlink_session(m);
				index_del(bkt, oi);
				release(oi);
				if (next == NIL)
					level_emptied(b, s, li, a.side == XE_SELL);
			}
			oi = next;
		}
	}
	return n;
}

// --- entry points -------------------------------------------------------------------------------

uint32_t xe_engine::new_order(const xe_order *o, xe_event *out)
{
	orders_in++;
	uint16_t rej = XE_REJ_NONE;
	Book *b = nullptr;
	uint32_t bkt = 0; // index bucket of (session, cl_ord_id)
	bool market = o->ord_type == XE_ORD_MARKET;
	bool can_rest = !market && (o->tif == XE_TIF_DAY || o->tif == XE_TIF_GTC);
	if (!valid_session(this, o->session_id))
		rej = XE_REJ_NOT_LOGGED_IN;
	else if (o->side != XE_BUY && o->side != XE_SELL)
		rej = XE_REJ_BAD_SIDE;
	else if (o->ord_type < XE_ORD_LIMIT || o->ord_type > XE_ORD_POST_ONLY)
		rej = XE_REJ_BAD_ORDER_TYPE;
	else if (o->tif < XE_TIF_DAY || o->tif > XE_TIF_FOK ||
		 (o->ord_type == XE_ORD_POST_ONLY && !can_rest))
		rej = XE_REJ_BAD_TIF;
	else if (o->symbol_id == 0 || o->symbol_id > cfg.max_symbols ||
		 !books[o->symbol_id].configured)
		rej = XE_REJ_UNKNOWN_SYMBOL;
	else {
		b = &books[o->symbol_id];
		bkt = bucket_of(o->session_id, o->cl_ord_id);
		rej = check_qty(*b, o->qty);
		if (!rej && !market)
			rej = check_price(*b, o->price);
		if (!rej && b->halted)
			rej = XE_REJ_HALTED;
		if (!rej && find_in(bkt, o->session_id, o->cl_ord_id) != NIL)
			rej = XE_REJ_DUPLICATE_ID;
		if (!rej && can_rest &&
		    (free_head == NIL || !nodes_for(*b, b->side[o->side - 1], o->price)))
			rej = XE_REJ_CAPACITY;
		if (!rej && o->ord_type == XE_ORD_POST_ONLY && crosses(*b, o->side, o->price))
			rej = XE_REJ_POST_ONLY_CROSS;
	}

	Aggressor a;
	a.cl_ord_id = o->cl_ord_id;
	a.order_id = 0;
	a.price = o->price;
	a.session = o->session_id;
	a.symbol = o->symbol_id;
	a.leaves = o->qty;
	a.filled = 0;
	a.side = o->side;
	a.ord_type = o->ord_type;
	a.tif = o->tif;
	if (!rej && o->tif == XE_TIF_FOK && !fok_fillable(*b, a))
		rej = XE_REJ_FOK_UNFILLABLE;

	if (rej) {
		rejects++;
		put_event(out, ev_hdr(XE_EV_REJECTED, o->side, 0, o->ord_type, rej, o->tif),
			  pair32(o->session_id, o->symbol_id), o->cl_ord_id, 0, o->price,
			  pair32(o->qty, 0), 0, 0);
		return 1;
	}

	a.order_id = next_order_id++;
	put_event(out, ev_hdr(XE_EV_ACCEPTED, a.side, 0, a.ord_type, 0, a.tif),
		  pair32(a.session, a.symbol), a.cl_ord_id, a.order_id, market ? 0 : a.price,
		  pair32(o->qty, a.leaves), 0, 0);
	uint32_t n = 1;

	bool stp_stop = false;
	if (market || crosses(*b, a.side, a.price))
		n = match(*b, a, out, n, &stp_stop);
	if (!a.leaves)
		return n;
	if (!can_rest || stp_stop) {
		uint16_t why =
		    stp_stop ? XE_CXL_SELF_TRADE : (market ? XE_CXL_NO_LIQUIDITY : XE_CXL_IOC);
		put_cancelled(&out[n++], a, market ? 0 : a.price, why);
		return n;
	}

	uint32_t oi = free_head;
	Order &r = pool[oi];
	free_head = r.hnext;
	used++;
	r.cl_ord_id = a.cl_ord_id;
	r.order_id = a.order_id;
	r.price = a.price;
	r.leaves = a.leaves;
	r.filled = a.filled;
	r.session = a.session;
	r.symbol = a.symbol;
	r.side = a.side;
	r.ord_type = a.ord_type;
	r.tif = a.tif;
	r.pad = 0;
	xe::Session &ss = sessions[a.session];
	r.snext = NIL;
	r.sprev = ss.tail;
	if (ss.tail != NIL)
		pool[ss.tail].snext = oi;
	else
		ss.head = oi;
	ss.tail = oi;
	index_add_in(bkt, oi);
	rest(*b, oi);
	return n;
}

uint32_t xe_engine::cancel(uint32_t session, uint64_t cl, xe_event *out)
{
	orders_in++;
	uint32_t *link = valid_session(this, session) ? find_link(session, cl) : nullptr;
	uint32_t oi = link ? *link : NIL;
	xe_event *e = out;
	if (oi == NIL) {
		*e = xe_event{};
		rejects++;
		e->type = XE_EV_REJECTED;
		e->reason =
		    valid_session(this, session) ? XE_REJ_UNKNOWN_ORDER : XE_REJ_NOT_LOGGED_IN;
		e->session_id = session;
		e->cl_ord_id = cl;
		return 1;
	}
	Order &o = pool[oi];
	put_cancelled(e, o, o.price, XE_CXL_USER);
	Book &b = books[o.symbol];
	unlink_level(b, o);
	unlink_session(o);
	*link = o.hnext; // out of the index
	release(oi);
	return 1;
}

uint32_t xe_engine::replace(uint32_t session, uint64_t orig, uint64_t cl, int64_t price,
			    uint32_t qty, xe_event *out)
{
	orders_in++;
	uint16_t rej = XE_REJ_NONE;
	uint32_t oi = NIL;
	if (!valid_session(this, session)) {
		rej = XE_REJ_NOT_LOGGED_IN;
	} else if ((oi = find(session, orig)) == NIL) {
		rej = XE_REJ_UNKNOWN_ORDER;
	} else {
		const Order &o = pool[oi];
		const Book &b = books[o.symbol];
		if (b.halted)
			rej = XE_REJ_HALTED;
		if (!rej)
			rej = check_qty(b, qty);
		if (!rej)
			rej = check_price(b, price);
		if (!rej && cl != orig && find(session, cl) != NIL)
			rej = XE_REJ_DUPLICATE_ID;
		if (!rej && qty <= o.filled)
			rej = XE_REJ_REPLACE_QTY;
		if (!rej && price == o.price && qty == o.filled + o.leaves)
			rej = XE_REJ_NO_CHANGE;
		if (!rej && o.ord_type == XE_ORD_POST_ONLY && price != o.price &&
		    crosses(b, o.side, price))
			rej = XE_REJ_POST_ONLY_CROSS;
		if (!rej && price != o.price && !nodes_for(b, b.side[o.side - 1], price))
			rej = XE_REJ_CAPACITY;
	}
	if (rej) {
		rejects++;
		xe_event *e = ev(out, 0);
		e->type = XE_EV_REJECTED;
		e->reason = rej;
		e->session_id = session;
		e->cl_ord_id = orig; // the id the message named (docs/protocol.md, Rejected)
		e->orig_cl_ord_id = orig;
		e->price = price;
		e->qty = qty;
		if (oi != NIL) {
			const Order &o = pool[oi];
			e->symbol_id = o.symbol;
			e->side = o.side;
			e->ord_type = o.ord_type;
			e->tif = o.tif;
			e->order_id = o.order_id;
		}
		return 1;
	}

	Order &o = pool[oi];
	Book &b = books[o.symbol];
	uint32_t new_leaves = qty - o.filled;
	if (cl != orig) {
		index_del(oi);
		o.cl_ord_id = cl;
		index_add(oi);
	}
	// Quantity down at the same price stays where it is in the queue; a price change or more
	// quantity loses its place and may trade at a new crossing price.
	bool keeps_place = price == o.price && new_leaves <= o.leaves;
	if (keeps_place) {
		const BookSide &s = b.side[o.side - 1];
		level_at(page_of(s, level_index(b, price)), (int64_t)level_index(b, price)).qty -=
		    o.leaves - new_leaves;
	} else
		unlink_level(b, o);
	o.price = price;
	o.leaves = new_leaves;
	put_event(out, ev_hdr(XE_EV_REPLACED, o.side, 0, o.ord_type, 0, o.tif),
		  pair32(o.session, o.symbol), o.cl_ord_id, o.order_id, price,
		  pair32(qty, o.leaves), 0, orig);
	uint32_t n = 1;
	if (keeps_place)
		return n;
	if (crosses(b, o.side, price)) {
		Aggressor a;
		a.cl_ord_id = o.cl_ord_id;
		a.order_id = o.order_id;
		a.price = price;
		a.session = session;
		a.symbol = o.symbol;
		a.leaves = o.leaves;
		a.filled = o.filled;
		a.side = o.side;
		a.ord_type = o.ord_type;
		a.tif = o.tif;
		bool stp_stop = false;
		n = match(b, a, out, n, &stp_stop);
		o.leaves = a.leaves;
		o.filled = a.filled;
		if (!a.leaves || stp_stop) {
			if (a.leaves)
				put_cancelled(&out[n++], a, a.price, XE_CXL_SELF_TRADE);
			unlink_session(o);
			index_del(oi);
			release(oi);
			return n;
		}
	}
	rest(b, oi);
	return n;
}

uint32_t xe_engine::mass_cancel(uint32_t session, uint32_t symbol, uint8_t side, uint8_t reason,
				xe_event *out)
{
	orders_in++;
	uint16_t rej = XE_REJ_NONE;
	if (!valid_session(this, session))
		rej = XE_REJ_NOT_LOGGED_IN;
	else if (side > XE_SELL)
		rej = XE_REJ_BAD_SIDE;
	else if (symbol && (symbol > cfg.max_symbols || !books[symbol].configured))
		rej = XE_REJ_UNKNOWN_SYMBOL;
	else if (reason > XE_CXL_HALT)
		rej = XE_REJ_UNKNOWN_MESSAGE;
	auto reject = [&](uint16_t why) {
		rejects++;
		xe_event *e = ev(out, 0);
		e->type = XE_EV_REJECTED;
		e->reason = why;
		e->session_id = session;
		e->symbol_id = symbol;
		e->side = side;
		return 1u;
	};
	if (rej)
		return reject(rej);
	if (!reason)
		reason = XE_CXL_MASS;
	uint32_t n = 0;
	uint32_t oi = sessions[session].head;
	while (oi != NIL) {
		Order &o = pool[oi];
		uint32_t next = o.snext;
		if ((!symbol || o.symbol == symbol) && (!side || o.side == side)) {
			put_cancelled(&out[n++], o, o.price, reason);
			remove_order(books[o.symbol], oi);
		}
		oi = next;
	}
	// A client's MassCancel is always answered (docs/protocol.md): nothing live to cancel.
	if (n == 0 && reason == XE_CXL_MASS)
		return reject(XE_REJ_UNKNOWN_ORDER);
	return n;
}

// Walks every book best level first, each level in time priority, so the order of the Cancelled
// events is fixed by the book alone.
uint32_t xe_engine::expire_day(xe_event *out)
{
	uint32_t n = 0;
	for (uint32_t sym = 1; sym <= cfg.max_symbols; sym++) {
		Book &b = books[sym];
		if (!b.configured)
			continue;
		for (int sd = 0; sd < 2; sd++) {
			BookSide &s = b.side[sd];
			int64_t li = s.best;
			while (li >= 0) {
				// Read the next level before this one can empty.
				int64_t nx = next_level(b, s, li, sd == 0);
				uint32_t oi = level_at(page_of(s, (uint64_t)li), li).head;
				while (oi != NIL) {
					Order &o = pool[oi];
					uint32_t next = o.next;
					if (o.tif == XE_TIF_DAY) {
						put_cancelled(&out[n++], o, o.price,
							      XE_CXL_EXPIRED);
						remove_order(b, oi);
					}
					oi = next;
				}
				li = nx;
			}
		}
	}
	return n;
}
