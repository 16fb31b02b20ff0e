// SPDX-License-Identifier: BSD-2-Clause
//
// Building blocks of the order books: the pooled order record, a price level (the head and tail
// of an intrusive FIFO of orders plus its open quantity), and the paged price ladder of one side.
//
// The ladder is a radix tree over the level index (price - band_low) / tick: pages of 64 levels
// at the bottom, 64-way nodes above them when the band needs them, and at the top a directory of
// at most 4,096 entries sized for the band when the symbol is added (its bitmap and a summary
// word over the bitmap make a two-level bitmap). A page or a node exists only while an order
// rests under it: it comes from the engine's pre-sized pools when the first order rests there
// and goes back when the last one leaves. So a symbol costs its small fixed Book plus a directory
// of at most 16 KiB a side whatever its band, and the ladder's memory follows the resting orders.
// Pages and nodes carry a 64-bit mask of their non-empty children, the bitmap the best-price
// search walks: the next non-empty level is a few word operations per tree level. Bands of up to
// 262,144 ticks need no node at all (directory -> page, as direct as a flat ladder); any band an
// int64 price can express needs at most 8 node levels. Nothing here allocates on the matching
// path.
#ifndef XE_BOOK_HPP
#define XE_BOOK_HPP

#include <cstdint>
#include <memory>

namespace xe
{

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

// A level is empty when its head is NIL (its page's mask bit clear); qty and tail are then stale.
struct Level {
	uint32_t head, tail; // oldest and newest order
	uint64_t qty; // open quantity of every order at the level
};

constexpr uint32_t PAGE_SHIFT = 6;
constexpr uint32_t FANOUT = 64;
constexpr uint32_t TOP_BITS = 12; // directory entries: at most 4,096
constexpr uint32_t INLINE_DIR = 50; // directory entries kept in the Book itself (3,200 ticks)
constexpr uint32_t MAX_DEPTH = 8; // node levels for 2^66 levels: any int64 band

// 1 KiB: a level's address is a shift of its page and slot. The page's mask of non-empty levels
// lives apart, in the engine's dense page_mask array (8 bytes a page, so the masks of the pages
// in use share a few cache lines, as a flat ladder's bitmap words do).
struct Page {
	Level lv[FANOUT];
};
static_assert(sizeof(Page) == 1024, "a page is 1 KiB");
constexpr uint32_t PAGE_COST = sizeof(Page) + sizeof(uint64_t); // with its mask

struct Node {
	uint64_t mask; // children that exist (non-empty)
	uint32_t child[FANOUT]; // pages (height 1) or nodes; NIL = none
};

// One side of one symbol's book: the directory (fan entries, pages when depth is 0, else nodes at
// height depth), its bitmap and summary, and the best non-empty level with its page (-1 / NIL
// when the side is empty).
struct BookSide {
	uint32_t *dir = nullptr;
	uint64_t *dbits = nullptr; // entry in use; fan / 64 words, at most 64
	uint64_t dsum = 0; // word of dbits non-zero
	uint32_t fan = 0;
	uint32_t depth = 0; // node levels between the directory and the pages
	uint32_t top_shift = PAGE_SHIFT; // level index >> top_shift = directory entry
	uint32_t best_page = NIL;
	int64_t best = -1;
	// Directories of up to INLINE_DIR entries (bands of up to 3,200 ticks with no nodes) and
	// their bitmap live here (dir and dbits then point at them): no allocation for a narrow
	// band, and the entries share the side's cache lines. 50 entries make the side 256 bytes,
	// so a side's address is a shift of the order's side, not a multiplication.
	uint64_t ibits = 0;
	uint32_t idir[INLINE_DIR];
};
static_assert(sizeof(BookSide) == 256, "BookSide: a power of two");

struct Book {
	bool configured = false;
	bool halted = false;
	uint32_t lot = 1;
	uint32_t max_qty = 0;
	int64_t tick = 1;
	int64_t band_low = 0;
	int64_t band_high = 0;
	uint64_t nlevels = 0; // (band_high - band_low) / tick + 1
	uint32_t depth = 0; // both sides' node levels (BookSide::depth), beside the fields every
			    // order reads
	BookSide side[2]; // [0] buy, [1] sell
	std::unique_ptr<uint64_t[]> dir_mem; // both sides' directories and bitmaps, when not inline
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

// Node levels needed between a directory of at most 2^TOP_BITS entries and the pages, for n
// levels.
inline uint32_t ladder_depth(uint64_t n)
{
	uint32_t d = 0;
	while (d < MAX_DEPTH && (n - 1) >> (PAGE_SHIFT * (d + 1) + TOP_BITS))
		d++;
	return d;
}

} // namespace xe

#endif // XE_BOOK_HPP
