// SPDX-License-Identifier: BSD-2-Clause
//
// Building blocks of the order books: the pooled order record, a price level (the head and tail
// of an intrusive FIFO of orders plus its open quantity), and the paged price ladder of one side.
//
// The ladder is a radix tree over the level index (price - band_low) / tick: pages of 64 levels
// at the bottom, 64-way directory nodes above them, the root embedded in the side. A page or a
// node exists only while an order rests under it: it comes from the engine's pre-sized pools when
// the first order rests there and goes back when the last one leaves. So a symbol costs its
// (fixed, small) Book whatever its band, and the ladder's memory follows the resting orders. Each
// page and node carries a 64-bit mask of its non-empty children, which is the bitmap the best
// price search walks: the next non-empty level is found in a few word operations per tree level,
// and the tree is at most 10 levels deep for any band an int64 price can express (2 for bands of
// up to 262,144 ticks). Nothing here allocates after the engine is created.
#ifndef XE_BOOK_HPP
#define XE_BOOK_HPP

#include <cstdint>

namespace xe {

constexpr uint32_t NIL = 0xffffffffu; // "no order" in every intrusive link; "no page / node"

// One live order. 64 bytes, one cache line: the matching loop touches exactly one line per
// resting order it trades against.
struct alignas(64) Order {
	uint64_t cl_ord_id;
	uint64_t order_id;
	int64_t price;
	uint32_t prev, next; // FIFO within the price level
	uint32_t sprev, snext; // the session's orders, oldest first (mass cancel)
	uint32_t hnext; // chain in the (session, cl_ord_id) index; also the pool's free list
	uint32_t leaves; // open quantity
	uint32_t filled; // quantity traded so far
	uint32_t session;
	uint32_t symbol;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;
	uint8_t pad;
};
static_assert(sizeof(Order) == 64, "Order must stay one cache line");

// A level is valid only while its bit is set in its page's mask (a fresh page is not cleared).
struct Level {
	uint32_t head, tail; // oldest and newest order
	uint64_t qty; // open quantity of every order at the level
};

constexpr uint32_t PAGE_SHIFT = 6;
constexpr uint32_t FANOUT = 64;
constexpr uint32_t MAX_DEPTH = 10; // node levels for 2^66 levels: any int64 band

struct alignas(64) Page {
	uint64_t mask; // non-empty levels
	uint32_t next_free; // the pool's free list
	uint32_t pad;
	Level lv[FANOUT];
};

struct Node {
	uint64_t mask; // children that exist (non-empty)
	uint32_t child[FANOUT]; // pages (height 1) or nodes; NIL = none
};

// One side of one symbol's book: the root of its ladder, the tree's height (node levels, the
// root's included) and the best non-empty level with its page (-1 / NIL when the side is empty).
struct BookSide {
	Node root;
	uint32_t depth = 1;
	uint32_t best_page = NIL;
	int64_t best = -1;

	BookSide()
	{
		root.mask = 0;
		for (uint32_t &c : root.child)
			c = NIL;
	}
};

struct Book {
	bool configured = false;
	bool halted = false;
	uint32_t lot = 1;
	uint32_t max_qty = 0;
	int64_t tick = 1;
	int64_t band_low = 0;
	int64_t band_high = 0;
	uint64_t nlevels = 0; // (band_high - band_low) / tick + 1
	BookSide side[2]; // [0] buy, [1] sell
};

inline int64_t level_price(const Book &b, int64_t idx)
{
	return b.band_low + idx * b.tick;
}

// The level of a price inside the band, on a tick.
inline uint64_t level_index(const Book &b, int64_t price)
{
	int64_t d = price - b.band_low;
	return (uint64_t)(b.tick == 1 ? d : d / b.tick);
}

// Node levels needed above the pages for n levels: the root at height depth indexes bits
// [6 depth, 6 depth + 6) of the level index.
inline uint32_t ladder_depth(uint64_t n)
{
	uint32_t d = 1;
	while (d < MAX_DEPTH && (n - 1) >> (PAGE_SHIFT * (d + 1)))
		d++;
	return d;
}

} // namespace xe

#endif // XE_BOOK_HPP
