// SPDX-License-Identifier: BSD-2-Clause
//
// The C ABI of the engine (xdpex/engine.h): creation with every pool sized up front, symbol,
// halt and STP configuration, the thin order entry wrappers around engine.cpp, and the queries
// (book levels, one order, the orders of a level, counters and the state hash). No C++ exception
// crosses this boundary: allocation uses nothrow new and failures become NULL or -ENOMEM.
#include <sys/mman.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <new>

#include "engine_impl.hpp"

using xe::Book;
using xe::BookSide;
using xe::NIL;
using xe::Order;

namespace
{

constexpr uint32_t MAX_ORDERS = 1u << 28;
constexpr uint32_t MAX_SYMBOLS = 1u << 20;
constexpr uint32_t MAX_SESSIONS = 1u << 24;

// Address space for a pool; the OS backs it page by page as it is first written.
void *reserve(uint64_t bytes)
{
	void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? nullptr : p;
}

// Asks for transparent huge pages under the order pool and the index: both are written whole at
// creation (so this changes no resident size) and then read at random by every order, where
// 4 KiB pages cost a TLB miss on most lookups (150,000 resting orders span 2,300 such pages). The
// ladder pools are left on small pages: they are first touched on the matching path, where a
// huge page's fault (and the compaction it may trigger) would be a latency spike.
void huge(void *p, uint64_t bytes)
{
	uintptr_t a = ((uintptr_t)p + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
	uintptr_t end = ((uintptr_t)p + bytes) & ~(uintptr_t)((2u << 20) - 1);
	if (end > a)
		madvise((void *)a, end - a, MADV_HUGEPAGE);
}

struct Hasher {
	uint64_t h = 0x6a09e667f3bcc908ull;
	void add(uint64_t v)
	{
		h = xe::mix64(h ^ v) + 0x9e3779b97f4a7c15ull;
	}
};

void fill_info(const Order &o, xe_order_info *out)
{
	*out = xe_order_info{};
	out->session_id = o.session;
	out->symbol_id = o.symbol;
	out->cl_ord_id = o.cl_ord_id;
	out->order_id = o.order_id;
	out->price = o.price;
	out->qty = o.filled + o.leaves;
	out->leaves = o.leaves;
	out->filled = o.filled;
	out->side = o.side;
	out->ord_type = o.ord_type;
	out->tif = o.tif;
}

} // namespace

xe_engine::~xe_engine()
{
	if (map_bytes)
		munmap(pages, map_bytes);
}

extern "C" {

xe_engine *xe_engine_create(const struct xe_engine_config *cfg)
{
	if (!cfg || cfg->max_orders == 0 || cfg->max_orders > MAX_ORDERS || cfg->max_symbols == 0 ||
	    cfg->max_symbols > MAX_SYMBOLS || cfg->max_sessions == 0 ||
	    cfg->max_sessions > MAX_SESSIONS)
		return nullptr;
	xe_engine *e = new (std::nothrow) xe_engine;
	if (!e)
		return nullptr;
	e->cfg = *cfg;
	e->max_events = 2 * cfg->max_orders + 8;
	uint32_t nb = 16;
	while (nb < 2 * (uint64_t)cfg->max_orders)
		nb <<= 1;
	e->bucket_mask = nb - 1;
	uint64_t keys[2];
	if (getrandom(keys, sizeof(keys), GRND_NONBLOCK) != sizeof(keys)) {
		keys[0] = 0x5bd1e9955bd1e995ull ^ (uint64_t)(uintptr_t)e;
		keys[1] = xe::mix64(keys[0]);
	}
	e->hash_seed = keys[0];
	e->hash_mul = keys[1] | 1;
	e->pool.reset(new (std::nothrow) Order[cfg->max_orders]);
	e->buckets.reset(new (std::nothrow) uint32_t[nb]);
	huge(e->pool.get(), (uint64_t)cfg->max_orders * sizeof(Order));
	huge(e->buckets.get(), (uint64_t)nb * sizeof(uint32_t));
	e->sessions.reset(new (std::nothrow) xe::Session[cfg->max_sessions + 1]);
	e->books.reset(new (std::nothrow) Book[cfg->max_symbols + 1]);
	// A page exists only while an order rests in it: max_orders pages always suffice. Twice
	// as many nodes as orders: enough for any spread of orders on bands of up to 2^24 ticks
	// (at most one node between root and page per page below 2^18 ticks, two below 2^24).
	e->page_cap = cfg->max_orders;
	e->node_cap = 2 * cfg->max_orders;
	uint64_t page_bytes = (uint64_t)e->page_cap * sizeof(xe::Page);
	uint64_t mask_bytes = (uint64_t)e->page_cap * sizeof(uint64_t);
	uint64_t node_bytes = (uint64_t)e->node_cap * sizeof(xe::Node);
	e->map_bytes = page_bytes + mask_bytes + node_bytes;
	void *map = reserve(e->map_bytes);
	if (map) {
		char *m = static_cast<char *>(map);
		e->pages = reinterpret_cast<xe::Page *>(m);
		e->page_mask = reinterpret_cast<uint64_t *>(m + page_bytes);
		e->nodes = reinterpret_cast<xe::Node *>(m + page_bytes + mask_bytes);
	} else {
		e->map_bytes = 0;
	}
	if (!e->pool || !e->buckets || !e->sessions || !e->books || !e->pages) {
		delete e;
		return nullptr;
	}
	for (uint32_t i = 0; i < nb; i++)
		e->buckets[i] = NIL;
	// Free list in index order, so the same calls always use the same slots.
	for (uint32_t i = 0; i < cfg->max_orders; i++) {
		e->pool[i] = Order{};
		e->pool[i].hnext = i + 1 < cfg->max_orders ? i + 1 : NIL;
	}
	e->free_head = 0;
	return e;
}

void xe_engine_destroy(xe_engine *e)
{
	delete e;
}

uint32_t xe_engine_max_events(const xe_engine *e)
{
	return e->max_events;
}

int xe_engine_add_symbol(xe_engine *e, const struct xe_symbol_config *c)
{
	if (!c || c->symbol_id == 0 || c->symbol_id > e->cfg.max_symbols)
		return -ERANGE;
	Book &b = e->books[c->symbol_id];
	if (b.configured)
		return -EEXIST;
	if (c->lot_size == 0 || c->tick_size <= 0 || c->band_low <= 0 ||
	    c->band_high < c->band_low || c->band_low % c->tick_size || c->band_high % c->tick_size)
		return -EINVAL;
	// Any band: the directory has at most 4,096 entries a side, the pages below it come from
	// the pools as orders rest.
	uint64_t n = (uint64_t)((c->band_high - c->band_low) / c->tick_size) + 1;
	uint32_t depth = xe::ladder_depth(n);
	uint32_t shift = xe::PAGE_SHIFT * (depth + 1);
	uint32_t fan = (uint32_t)(((n - 1) >> shift) + 1);
	uint32_t words = (fan + 63) / 64;
	uint32_t dir_words = (fan + 1) / 2; // two uint32 entries a word
	uint64_t *mem = nullptr;
	if (fan > xe::INLINE_DIR) {
		b.dir_mem.reset(new (std::nothrow) uint64_t[2 * (dir_words + words)]);
		if (!b.dir_mem)
			return -ENOMEM;
		mem = b.dir_mem.get();
		e->dir_bytes += 2 * (dir_words + words) * sizeof(uint64_t);
	}
	for (int sd = 0; sd < 2; sd++) {
		BookSide &s = b.side[sd];
		if (mem) {
			s.dir = reinterpret_cast<uint32_t *>(mem);
			s.dbits = mem + dir_words;
			mem += dir_words + words;
		} else {
			s.dir = s.idir;
			s.dbits = &s.ibits;
		}
		for (uint32_t i = 0; i < fan; i++)
			s.dir[i] = NIL;
		for (uint32_t i = 0; i < words; i++)
			s.dbits[i] = 0;
		s.dsum = 0;
		s.fan = fan;
		s.depth = depth;
		s.top_shift = shift;
		s.best = -1;
		s.best_page = NIL;
	}
	b.nlevels = n;
	b.depth = depth;
	b.lot = c->lot_size;
	b.max_qty = c->max_qty;
	b.tick = c->tick_size;
	b.band_low = c->band_low;
	b.band_high = c->band_high;
	b.halted = false;
	b.configured = true;
	return 0;
}

int xe_engine_set_halted(xe_engine *e, uint32_t symbol_id, int halted)
{
	if (symbol_id == 0 || symbol_id > e->cfg.max_symbols || !e->books[symbol_id].configured)
		return -ENOENT;
	e->books[symbol_id].halted = halted != 0;
	return 0;
}

int xe_engine_set_stp(xe_engine *e, uint32_t session_id, uint8_t mode)
{
	if (session_id == 0 || session_id > e->cfg.max_sessions)
		return -ERANGE;
	if (mode > XE_STP_CANCEL_BOTH)
		return -EINVAL;
	e->sessions[session_id].stp = mode;
	return 0;
}

uint32_t xe_engine_new_order(xe_engine *e, const struct xe_order *o, struct xe_event *out)
{
	if (!e || !o || !out)
		return 0;
	return e->new_order(o, out);
}

uint32_t xe_engine_cancel(xe_engine *e, uint32_t session_id, uint64_t cl_ord_id,
			  struct xe_event *out)
{
	if (!e || !out)
		return 0;
	return e->cancel(session_id, cl_ord_id, out);
}

uint32_t xe_engine_replace(xe_engine *e, uint32_t session_id, uint64_t orig_cl_ord_id,
			   uint64_t new_cl_ord_id, int64_t price, uint32_t qty,
			   struct xe_event *out)
{
	if (!e || !out)
		return 0;
	return e->replace(session_id, orig_cl_ord_id, new_cl_ord_id, price, qty, out);
}

uint32_t xe_engine_mass_cancel(xe_engine *e, uint32_t session_id, uint32_t symbol_id, uint8_t side,
			       uint8_t reason, struct xe_event *out)
{
	if (!e || !out)
		return 0;
	return e->mass_cancel(session_id, symbol_id, side, reason, out);
}

uint32_t xe_engine_expire_day(xe_engine *e, struct xe_event *out)
{
	if (!e || !out)
		return 0;
	return e->expire_day(out);
}

uint32_t xe_engine_book(const xe_engine *e, uint32_t symbol_id, uint8_t side, uint32_t depth,
			struct xe_level *out)
{
	if (!e || !out || symbol_id == 0 || symbol_id > e->cfg.max_symbols ||
	    (side != XE_BUY && side != XE_SELL))
		return 0;
	const Book &b = e->books[symbol_id];
	if (!b.configured)
		return 0;
	const BookSide &s = b.side[side - 1];
	uint32_t n = 0;
	int64_t li = s.best;
	uint32_t pi = s.best_page;
	while (li >= 0 && n < depth) {
		const xe::Level &L = e->level_at(pi, li);
		out[n] = xe_level{};
		out[n].price = xe::level_price(b, li);
		out[n].qty = L.qty;
		for (uint32_t oi = L.head; oi != NIL; oi = e->pool[oi].next)
			out[n].orders++;
		n++;
		li = e->next_level(b, s, li, side == XE_BUY, pi, &pi);
	}
	return n;
}

int xe_engine_get_order(const xe_engine *e, uint32_t session_id, uint64_t cl_ord_id,
			struct xe_order_info *out)
{
	if (!e || !out)
		return -EINVAL;
	if (session_id == 0 || session_id > e->cfg.max_sessions)
		return -ERANGE;
	uint32_t oi = e->find(session_id, cl_ord_id);
	if (oi == NIL)
		return -ENOENT;
	fill_info(e->pool[oi], out);
	return 0;
}

uint32_t xe_engine_level_orders(const xe_engine *e, uint32_t symbol_id, uint8_t side, int64_t price,
				uint32_t max, struct xe_order_info *out)
{
	if (!e || !out || symbol_id == 0 || symbol_id > e->cfg.max_symbols ||
	    (side != XE_BUY && side != XE_SELL))
		return 0;
	const Book &b = e->books[symbol_id];
	if (!b.configured || price < b.band_low || price > b.band_high || price % b.tick)
		return 0;
	const BookSide &s = b.side[side - 1];
	uint64_t li = xe::level_index(b, price);
	uint32_t pi = e->page_of(s, li);
	if (pi == NIL || !((e->page_mask[pi] >> (li & 63)) & 1))
		return 0;
	const xe::Level &L = e->level_at(pi, (int64_t)li);
	uint32_t n = 0;
	for (uint32_t oi = L.head; oi != NIL && n < max; oi = e->pool[oi].next)
		fill_info(e->pool[oi], &out[n++]);
	return n;
}

void xe_engine_get_stats(const xe_engine *e, struct xe_engine_stats *out)
{
	*out = xe_engine_stats{};
	out->resting_orders = e->used;
	out->levels = e->levels;
	out->orders_in = e->orders_in;
	out->fills = e->fills;
	out->rejects = e->rejects;
	out->next_order_id = e->next_order_id;
	out->next_exec_id = e->next_exec_id;
}

void xe_engine_get_memory(const xe_engine *e, struct xe_engine_memory *out)
{
	*out = xe_engine_memory{};
	uint64_t nb = (uint64_t)e->bucket_mask + 1;
	out->order_bytes = sizeof(Order);
	out->page_bytes = xe::PAGE_COST;
	out->node_bytes = sizeof(xe::Node);
	out->symbol_bytes = sizeof(Book);
	out->session_bytes = sizeof(xe::Session);
	out->fixed_bytes = sizeof(xe_engine) + (uint64_t)e->cfg.max_orders * sizeof(Order) +
			   nb * sizeof(uint32_t) +
			   ((uint64_t)e->cfg.max_sessions + 1) * sizeof(xe::Session) +
			   ((uint64_t)e->cfg.max_symbols + 1) * sizeof(Book);
	out->directory_bytes = e->dir_bytes;
	out->reserved_bytes = e->map_bytes;
	out->ladder_bytes =
	    (uint64_t)e->pages_used * xe::PAGE_COST + (uint64_t)e->nodes_used * sizeof(xe::Node);
	out->ladder_touched_bytes =
	    (uint64_t)e->page_bump * xe::PAGE_COST + (uint64_t)e->node_bump * sizeof(xe::Node);
	out->pages_used = e->pages_used;
	out->pages_max = e->page_cap;
	out->nodes_used = e->nodes_used;
	out->nodes_max = e->node_cap;
}

uint64_t xe_engine_state_hash(const xe_engine *e)
{
	Hasher h;
	h.add(e->next_order_id);
	h.add(e->next_exec_id);
	for (uint32_t s = 1; s <= e->cfg.max_sessions; s++)
		if (e->sessions[s].stp != XE_STP_NONE)
			h.add(((uint64_t)s << 8) | e->sessions[s].stp);
	for (uint32_t sym = 1; sym <= e->cfg.max_symbols; sym++) {
		const Book &b = e->books[sym];
		if (!b.configured)
			continue;
		h.add(sym);
		h.add(b.halted);
		for (int sd = 0; sd < 2; sd++) {
			const BookSide &s = b.side[sd];
			h.add(0xb00c0000u + sd);
			uint32_t pi = s.best_page;
			for (int64_t li = s.best; li >= 0;
			     li = e->next_level(b, s, li, sd == 0, pi, &pi)) {
				h.add((uint64_t)xe::level_price(b, li));
				for (uint32_t oi = e->level_at(pi, li).head; oi != NIL;
				     oi = e->pool[oi].next) {
					const Order &o = e->pool[oi];
					h.add(o.order_id);
					h.add(o.cl_ord_id);
					h.add(((uint64_t)o.session << 32) | o.leaves);
					h.add(((uint64_t)o.filled << 32) |
					      ((uint32_t)o.side << 16) |
					      ((uint32_t)o.ord_type << 8) | o.tif);
				}
			}
		}
	}
	return h.h;
}

} // extern "C"
