// SPDX-License-Identifier: BSD-2-Clause
//
// The engine instance behind the opaque `xe_engine` handle of the C ABI: the order pool with its
// free list, the (session, cl_ord_id) -> order index (chained through the pooled orders, so it
// needs no memory of its own beyond the bucket heads), per-session order lists and STP modes, the
// books, the page and node pools of the price ladders (book.hpp) and the id counters. engine.cpp
// holds the order entry paths, config.cpp creation, configuration and the queries.
#ifndef XE_ENGINE_IMPL_HPP
#define XE_ENGINE_IMPL_HPP

#include <cstdint>
#include <memory>

#include "book.hpp"
#include "xdpex/engine.h"

namespace xe
{

struct Session {
	uint32_t head = NIL, tail = NIL; // live orders, oldest first
	uint8_t stp = XE_STP_NONE;
};

// The order being entered (or re-entered by a replace) while it matches.
struct Aggressor {
	uint64_t cl_ord_id;
	uint64_t order_id;
	int64_t price;
	uint32_t session;
	uint32_t symbol;
	uint32_t leaves;
	uint32_t filled;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;

	bool has_limit() const
	{
		return ord_type != XE_ORD_MARKET;
	}
};

inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

} // namespace xe

struct xe_engine {
	xe_engine_config cfg{};
	uint32_t max_events = 0;

	std::unique_ptr<xe::Order[]> pool;
	uint32_t free_head = xe::NIL;
	uint32_t used = 0;

	std::unique_ptr<uint32_t[]> buckets;
	uint32_t bucket_mask = 0;
	uint64_t hash_seed = 0; // random per engine: layout only, never visible in events or hashes
	uint64_t hash_mul = 1; // second random key (odd), the multiplier of bucket_of's mix

	std::unique_ptr<xe::Session[]> sessions; // [session_id], 0 unused
	std::unique_ptr<xe::Book[]> books; // [symbol_id], 0 unused

	// Ladder pools: reserved at creation (address space only: the OS backs a page of the pool
	// when it is first used, so resident memory follows the orders), handed out from a LIFO
	// free list first, then from the never-used tail (bump). Pages in use never exceed the
	// resting orders (a page exists only while an order rests in it), so the page pool is
	// max_orders pages and cannot run out; nodes are checked before an order may rest.
	xe::Page *pages = nullptr;
	uint64_t *page_mask = nullptr; // [page]: its non-empty levels; a free page's next free page
	uint32_t page_cap = 0, page_bump = 0, page_free = xe::NIL, pages_used = 0;
	xe::Node *nodes = nullptr;
	uint32_t node_cap = 0, node_bump = 0, node_free = xe::NIL, nodes_used = 0;
	uint64_t map_bytes = 0; // both pools' reservation
	uint64_t dir_bytes = 0; // directories allocated by xe_engine_add_symbol (beyond the Books)

	xe_engine() = default;
	xe_engine(const xe_engine &) = delete;
	xe_engine &operator=(const xe_engine &) = delete;
	~xe_engine(); // config.cpp: unmaps the pools

	uint64_t next_order_id = 1;
	uint64_t next_exec_id = 1;
	uint64_t levels = 0;
	uint64_t orders_in = 0;
	uint64_t fills = 0;
	uint64_t rejects = 0;

	// --- index -------------------------------------------------------------------------------
	// Client order ids are usually sequential per session: the 16 ids of an aligned block share
	// one cache line of buckets (one miss per 16 new orders instead of one per order), while
	// the blocks themselves land at keyed random places, so chosen ids cannot pile into one
	// chain. The mix is one 64 x 64 -> 128-bit multiplication of the keyed block by a second
	// random key, folded (both halves xored): every input bit reaches the bucket bits, in one
	// multiply's latency where two rounds of mix64 took five dependent steps.
	uint32_t bucket_of(uint32_t session, uint64_t cl) const
	{
		unsigned __int128 m =
		    (unsigned __int128)((cl >> 4) ^ ((uint64_t)session << 40) ^ hash_seed) *
		    hash_mul;
		uint64_t blk = (uint64_t)m ^ (uint64_t)(m >> 64);
		return (uint32_t)(((blk << 4) | (cl & 15)) & bucket_mask);
	}

	// The link (bucket head or an order's hnext) that holds the order, or nullptr: lets a
	// cancel unlink without hashing and walking the chain a second time.
	uint32_t *find_link(uint32_t session, uint64_t cl)
	{
		uint32_t *p = &buckets[bucket_of(session, cl)];
		while (*p != xe::NIL) {
			const xe::Order &o = pool[*p];
			if (o.cl_ord_id == cl && o.session == session)
				return p;
			p = &pool[*p].hnext;
		}
		return nullptr;
	}

	uint32_t find(uint32_t session, uint64_t cl) const
	{
		return find_in(bucket_of(session, cl), session, cl);
	}

	// find() and index_add() in the bucket the caller already hashed (a new order looks its id
	// up, then indexes itself under it).
	uint32_t find_in(uint32_t bkt, uint32_t session, uint64_t cl) const
	{
		uint32_t i = buckets[bkt];
		while (i != xe::NIL) {
			const xe::Order &o = pool[i];
			if (o.cl_ord_id == cl && o.session == session)
				return i;
			i = o.hnext;
		}
		return xe::NIL;
	}

	void index_add(uint32_t oi)
	{
		const xe::Order &o = pool[oi];
		index_add_in(bucket_of(o.session, o.cl_ord_id), oi);
	}

	void index_add_in(uint32_t bkt, uint32_t oi)
	{
		pool[oi].hnext = buckets[bkt];
		buckets[bkt] = oi;
	}

	// Unlinks pooled order oi from its index bucket bkt (= bucket_of its session and id, which
	// a caller that has it already passes instead of hashing again).
	void index_del(uint32_t bkt, uint32_t oi)
	{
		uint32_t *p = &buckets[bkt];
		while (*p != oi)
			p = &pool[*p].hnext;
		*p = pool[oi].hnext;
	}

	void index_del(uint32_t oi)
	{
		index_del(bucket_of(pool[oi].session, pool[oi].cl_ord_id), oi);
	}

	// --- ladder (book.hpp)
	// ---------------------------------------------------------------------
	uint32_t page_alloc()
	{
		uint32_t p = page_free;
		if (p != xe::NIL) {
			page_free = (uint32_t)page_mask[p];
		} else {
			// First use: every level empty. A page back from the free list is so
			// already (it was dropped when its last level emptied).
			p = page_bump++;
			for (xe::Level &l : pages[p].lv)
				l.head = xe::NIL;
		}
		page_mask[p] = 0;
		pages_used++;
		return p;
	}

	void page_release(uint32_t p)
	{
		page_mask[p] = page_free;
		page_free = p;
		pages_used--;
	}

	uint32_t node_alloc()
	{
		uint32_t n = node_free;
		if (n != xe::NIL)
			node_free = nodes[n].child[0];
		else
			n = node_bump++;
		xe::Node &d = nodes[n];
		d.mask = 0;
		for (uint32_t &c : d.child)
			c = xe::NIL;
		nodes_used++;
		return n;
	}

	void node_release(uint32_t n)
	{
		nodes[n].child[0] = node_free;
		node_free = n;
		nodes_used--;
	}

	// Are there nodes enough for an order to rest at `price` on side s? Nearly always answered
	// by the count alone; near the limit, by the nodes its path actually lacks.
	bool nodes_for(const xe::Book &b, const xe::BookSide &s, int64_t price) const
	{
		// No nodes on the way to a page. (Book::depth, not s.depth: read before the side's
		// address is needed; 1 % fewer engine instructions on the deep-book stream.)
		if (__builtin_expect(b.depth == 0, 1))
			return true;
		uint32_t avail = node_cap - nodes_used;
		if (avail >= s.depth)
			return true;
		uint64_t idx = xe::level_index(b, price);
		uint32_t need = s.depth; // nodes at heights depth..1 on the path
		uint32_t c = s.dir[idx >> s.top_shift];
		for (uint32_t h = s.depth; h > 0 && c != xe::NIL; h--) {
			need--;
			c = h > 1 ? nodes[c].child[(idx >> (xe::PAGE_SHIFT * h)) & 63] : xe::NIL;
		}
		return avail >= need;
	}

	// The page holding level idx, or NIL.
	uint32_t page_of(const xe::BookSide &s, uint64_t idx) const
	{
		if (__builtin_expect(s.depth == 0, 1)) // directory -> page
			return s.dir[idx >> xe::PAGE_SHIFT];
		uint32_t c = s.dir[idx >> s.top_shift];
		for (uint32_t h = s.depth; h > 0 && c != xe::NIL; h--)
			c = nodes[c].child[(idx >> (xe::PAGE_SHIFT * h)) & 63];
		return c;
	}

	// The page for level idx, made (with its missing nodes) when there is none.
	uint32_t page_make(xe::BookSide &s, uint64_t idx)
	{
		if (__builtin_expect(s.depth == 0, 1)) { // directory -> page
			uint64_t t = idx >> xe::PAGE_SHIFT;
			uint32_t &pg = s.dir[t];
			if (pg == xe::NIL) {
				pg = page_alloc();
				s.dbits[t >> 6] |= 1ull << (t & 63);
				s.dsum |= 1ull << (t >> 6);
			}
			return pg;
		}
		uint64_t t = idx >> s.top_shift;
		uint32_t *slot = &s.dir[t];
		if (*slot == xe::NIL) {
			*slot = node_alloc(); // (depth 0 returned above)
			s.dbits[t >> 6] |= 1ull << (t & 63);
			s.dsum |= 1ull << (t >> 6);
		}
		for (uint32_t h = s.depth; h > 0; h--) {
			xe::Node &nd = nodes[*slot];
			uint32_t k = (idx >> (xe::PAGE_SHIFT * h)) & 63;
			slot = &nd.child[k];
			if (*slot == xe::NIL) {
				*slot = h > 1 ? node_alloc() : page_alloc();
				nd.mask |= 1ull << k;
			}
		}
		return *slot;
	}

	// Page p (of level idx) is empty: back to the pool, with every node it leaves empty.
	void page_drop(xe::BookSide &s, uint64_t idx, uint32_t p)
	{
		if (__builtin_expect(s.depth == 0, 1)) { // the directory entry was the page
			page_release(p);
			top_drop(s, idx >> xe::PAGE_SHIFT);
			return;
		}
		uint64_t t = idx >> s.top_shift;
		uint32_t path[xe::MAX_DEPTH + 1]; // path[h]: the node at height h
		uint32_t c = s.dir[t];
		for (uint32_t h = s.depth; h > 0; h--) {
			path[h] = c;
			c = nodes[c].child[(idx >> (xe::PAGE_SHIFT * h)) & 63];
		}
		page_release(p);
		bool empty = true; // the child just removed left its parent empty
		for (uint32_t h = 1; h <= s.depth && empty; h++) {
			xe::Node &nd = nodes[path[h]];
			uint32_t k = (idx >> (xe::PAGE_SHIFT * h)) & 63;
			nd.child[k] = xe::NIL;
			nd.mask &= ~(1ull << k);
			empty = nd.mask == 0;
			if (empty)
				node_release(path[h]);
		}
		if (empty)
			top_drop(s, t);
	}

	// Directory entry t of side s has nothing under it any more.
	void top_drop(xe::BookSide &s, uint64_t t)
	{
		s.dir[t] = xe::NIL;
		uint64_t &w = s.dbits[t >> 6];
		w &= ~(1ull << (t & 63));
		if (!w)
			s.dsum &= ~(1ull << (t >> 6));
	}

	// Lowest non-empty level >= i under child c at height h (0: a page) whose first level is
	// base, or -1; *pg its page.
	int64_t up_in(uint32_t c, uint32_t h, uint64_t base, uint64_t i, uint32_t *pg) const
	{
		if (h == 0) {
			uint64_t pm = page_mask[c] & (~0ull << (i - base));
			if (!pm)
				return -1;
			*pg = c;
			return (int64_t)(base + (uint64_t)__builtin_ctzll(pm));
		}
		const xe::Node &nd = nodes[c];
		uint32_t shift = xe::PAGE_SHIFT * h;
		uint32_t c0 = (uint32_t)((i - base) >> shift);
		uint64_t m = nd.mask & (~0ull << c0);
		while (m) {
			uint32_t k = (uint32_t)__builtin_ctzll(m);
			uint64_t cb = base + ((uint64_t)k << shift);
			int64_t r = up_in(nd.child[k], h - 1, cb, k == c0 ? i : cb, pg);
			if (r >= 0)
				return r;
			m &= m - 1;
		}
		return -1;
	}

	// Highest non-empty level <= i under child c at height h, or -1.
	int64_t down_in(uint32_t c, uint32_t h, uint64_t base, uint64_t i, uint32_t *pg) const
	{
		if (h == 0) {
			uint64_t pm = page_mask[c] & (~0ull >> (63 - (i - base)));
			if (!pm)
				return -1;
			*pg = c;
			return (int64_t)(base + 63 - (uint64_t)__builtin_clzll(pm));
		}
		const xe::Node &nd = nodes[c];
		uint32_t shift = xe::PAGE_SHIFT * h;
		uint32_t c0 = (uint32_t)((i - base) >> shift);
		uint64_t m = nd.mask & (~0ull >> (63 - c0));
		while (m) {
			uint32_t k = 63 - (uint32_t)__builtin_clzll(m);
			uint64_t cb = base + ((uint64_t)k << shift);
			int64_t r = down_in(nd.child[k], h - 1, cb,
					    k == c0 ? i : cb + ((1ull << shift) - 1), pg);
			if (r >= 0)
				return r;
			m &= ~(1ull << k);
		}
		return -1;
	}

	// Lowest non-empty level >= i of side s (i < nlevels), or -1.
	int64_t side_up(const xe::BookSide &s, uint64_t i, uint32_t *pg) const
	{
		uint64_t t = i >> s.top_shift;
		if ((s.dbits[t >> 6] >> (t & 63)) & 1) {
			int64_t r = up_in(s.dir[t], s.depth, t << s.top_shift, i, pg);
			if (r >= 0)
				return r;
		}
		// The next top entry in use: its word, then the summary of the words.
		uint64_t w = (t + 1) >> 6, m = 0;
		if (t + 1 < (uint64_t)s.fan)
			m = s.dbits[w] & (~0ull << ((t + 1) & 63));
		if (!m) {
			uint64_t sm = w + 1 < 64 ? s.dsum & (~0ull << (w + 1)) : 0;
			if (!sm)
				return -1;
			w = (uint64_t)__builtin_ctzll(sm);
			m = s.dbits[w];
		}
		t = (w << 6) | (uint64_t)__builtin_ctzll(m);
		return up_in(s.dir[t], s.depth, t << s.top_shift, t << s.top_shift, pg);
	}

	// Highest non-empty level <= i of side s, or -1.
	int64_t side_down(const xe::BookSide &s, uint64_t i, uint32_t *pg) const
	{
		uint64_t t = i >> s.top_shift;
		if ((s.dbits[t >> 6] >> (t & 63)) & 1) {
			int64_t r = down_in(s.dir[t], s.depth, t << s.top_shift, i, pg);
			if (r >= 0)
				return r;
		}
		if (t == 0)
			return -1;
		t--;
		uint64_t w = t >> 6;
		uint64_t m = s.dbits[w] & (~0ull >> (63 - (t & 63)));
		if (!m) {
			uint64_t sm = w ? s.dsum & (~0ull >> (64 - w)) : 0;
			if (!sm)
				return -1;
			w = 63 - (uint64_t)__builtin_clzll(sm);
			m = s.dbits[w];
		}
		t = (w << 6) | (63 - (uint64_t)__builtin_clzll(m));
		uint64_t last = ((t + 1) << s.top_shift) - 1;
		return down_in(s.dir[t], s.depth, t << s.top_shift, last, pg);
	}

	// The next non-empty level after li away from the best price (down the bids, up the
	// asks), or -1; *pg its page. pi is li's page when it still exists (NIL otherwise): the
	// search looks there first.
	int64_t next_level(const xe::Book &b, const xe::BookSide &s, int64_t li, bool bids,
			   uint32_t pi, uint32_t *pg) const
	{
		uint32_t slot = (uint32_t)li & 63;
		if (bids) {
			if (pi != xe::NIL && slot) {
				uint64_t m = page_mask[pi] & (~0ull >> (64 - slot));
				if (m) {
					*pg = pi;
					return (li & ~63ll) + 63 - __builtin_clzll(m);
				}
			}
			return li == 0 ? -1 : side_down(s, (uint64_t)li - 1, pg);
		}
		if (pi != xe::NIL && slot < 63) {
			uint64_t m = page_mask[pi] & (~0ull << (slot + 1));
			if (m) {
				*pg = pi;
				return (li & ~63ll) + __builtin_ctzll(m);
			}
		}
		if ((uint64_t)li + 1 >= b.nlevels)
			return -1;
		return side_up(s, (uint64_t)li + 1, pg);
	}

	int64_t next_level(const xe::Book &b, const xe::BookSide &s, int64_t li, bool bids) const
	{
		uint32_t pg;
		return next_level(b, s, li, bids, page_of(s, (uint64_t)li), &pg);
	}

	xe::Level &level_at(uint32_t page, int64_t li)
	{
		return pages[page].lv[li & 63];
	}
	const xe::Level &level_at(uint32_t page, int64_t li) const
	{
		return pages[page].lv[li & 63];
	}

	// --- engine.cpp --------------------------------------------------------------------------
	uint32_t new_order(const xe_order *o, xe_event *out);
	uint32_t cancel(uint32_t session, uint64_t cl, xe_event *out);
	uint32_t replace(uint32_t session, uint64_t orig, uint64_t cl, int64_t price, uint32_t qty,
			 xe_event *out);
	uint32_t mass_cancel(uint32_t session, uint32_t symbol, uint8_t side, uint8_t reason,
			     xe_event *out);
	uint32_t expire_day(xe_event *out);

	uint32_t match(xe::Book &b, xe::Aggressor &a, xe_event *out, uint32_t n, bool *stp_stop);
	bool fok_fillable(const xe::Book &b, const xe::Aggressor &a) const;
	// Book maintenance, inlined into the matching paths.
#define XE_HOT inline __attribute__((always_inline))
	XE_HOT void rest(xe::Book &b, uint32_t oi);
	XE_HOT void unlink_level(xe::Book &b, xe::Order &o);
	XE_HOT void unlink_session(xe::Order &o);
	XE_HOT void level_emptied(xe::Book &b, xe::BookSide &s, int64_t li, bool bids);
	XE_HOT void release(uint32_t oi);
	XE_HOT void remove_order(xe::Book &b, uint32_t oi);
	XE_HOT void remove_order(xe::Book &b, uint32_t oi, uint32_t bkt);
};

#endif // XE_ENGINE_IMPL_HPP
