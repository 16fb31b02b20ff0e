// SPDX-License-Identifier: BSD-2-Clause
//
// Building blocks of the order books: the pooled order record, a price level (the head and tail
// of an intrusive FIFO of orders plus its totals), and a three-level bitmap over the price ladder
// that finds the next non-empty level above or below a point in a few word operations, so the
// best price is tracked without scanning empty ticks. Everything here is sized once, when the
// engine or a symbol is configured; nothing allocates afterwards.
#ifndef XE_BOOK_HPP
#define XE_BOOK_HPP

#include <cstdint>
#include <memory>

namespace xe {

constexpr uint32_t NIL = 0xffffffffu; // "no order" in every intrusive link

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

struct Level {
	uint32_t head, tail; // oldest and newest order
	uint32_t orders;
	uint32_t pad;
	uint64_t qty; // open quantity of every order at the level
};

// Set of non-empty levels. Level l holds one bit per word of level l - 1, set when that word is
// non-zero, so a search climbs at most two levels and scans at most a few top words (2^18 ticks
// per top word).
class LevelBits {
public:
	bool init(uint32_t nbits)
	{
		uint64_t n = nbits;
		for (int l = 0; l < 3; l++) {
			nwords_[l] = (n + 63) / 64;
			words_[l].reset(new (std::nothrow) uint64_t[nwords_[l]]());
			if (!words_[l])
				return false;
			n = nwords_[l];
		}
		return true;
	}

	bool test(uint64_t i) const { return (words_[0][i >> 6] >> (i & 63)) & 1; }

	void set(uint64_t i)
	{
		for (int l = 0; l < 3; l++) {
			uint64_t &w = words_[l][i >> 6];
			bool was = w != 0;
			w |= 1ull << (i & 63);
			if (was)
				return;
			i >>= 6;
		}
	}

	void clear(uint64_t i)
	{
		for (int l = 0; l < 3; l++) {
			uint64_t &w = words_[l][i >> 6];
			w &= ~(1ull << (i & 63));
			if (w)
				return;
			i >>= 6;
		}
	}

	// Lowest set bit >= i, or -1.
	int64_t up(uint64_t i) const { return up_at(0, i); }
	// Highest set bit <= i, or -1 (i must be a valid bit index).
	int64_t down(uint64_t i) const { return down_at(0, i); }

private:
	int64_t up_at(int l, uint64_t i) const
	{
		uint64_t wi = i >> 6;
		if (wi >= nwords_[l])
			return -1;
		uint64_t w = words_[l][wi] & (~0ull << (i & 63));
		if (w)
			return (int64_t)((wi << 6) | __builtin_ctzll(w));
		if (l == 2) {
			for (wi++; wi < nwords_[2]; wi++)
				if (words_[2][wi])
					return (int64_t)((wi << 6) | __builtin_ctzll(words_[2][wi]));
			return -1;
		}
		int64_t j = up_at(l + 1, wi + 1);
		if (j < 0)
			return -1;
		return (j << 6) | __builtin_ctzll(words_[l][j]);
	}

	int64_t down_at(int l, uint64_t i) const
	{
		uint64_t wi = i >> 6;
		uint64_t w = words_[l][wi] & (~0ull >> (63 - (i & 63)));
		if (w)
			return (int64_t)((wi << 6) | (63 - __builtin_clzll(w)));
		if (wi == 0)
			return -1;
		if (l == 2) {
			while (wi-- > 0)
				if (words_[2][wi])
					return (int64_t)((wi << 6) |
							 (63 - __builtin_clzll(words_[2][wi])));
			return -1;
		}
		int64_t j = down_at(l + 1, wi - 1);
		if (j < 0)
			return -1;
		return (j << 6) | (63 - __builtin_clzll(words_[l][j]));
	}

	std::unique_ptr<uint64_t[]> words_[3];
	uint64_t nwords_[3] = {0, 0, 0};
};

// One side of one symbol's book: the ladder of levels (index = (price - band_low) / tick) and the
// best non-empty index (-1 when the side is empty).
struct BookSide {
	std::unique_ptr<Level[]> levels;
	LevelBits bits;
	int64_t best = -1;

	// The next non-empty level after li, away from the best price: down the bids, up the asks;
	// -1 when there is none.
	int64_t next(int64_t li, bool bids) const
	{
		return bids ? (li == 0 ? -1 : bits.down(li - 1)) : bits.up(li + 1);
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
	BookSide side[2]; // [0] buy, [1] sell
};

inline int64_t level_price(const Book &b, int64_t idx)
{
	return b.band_low + idx * b.tick;
}

// The level of a price inside the band, on a tick.
inline uint32_t level_index(const Book &b, int64_t price)
{
	int64_t d = price - b.band_low;
	return (uint32_t)(b.tick == 1 ? d : d / b.tick);
}

} // namespace xe

#endif // XE_BOOK_HPP
