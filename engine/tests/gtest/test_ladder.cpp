// SPDX-License-Identifier: BSD-2-Clause
//
// The paged price ladder (src/book.hpp): bands of any width, memory that follows the resting
// orders, the best-price search across sparse pages and tree levels, and the node limit.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "xdpex/engine.h"

namespace
{

struct Eng {
	explicit Eng(uint32_t max_orders = 4096, uint32_t symbols = 4)
	{
		xe_engine_config cfg{};
		cfg.max_orders = max_orders;
		cfg.max_symbols = symbols;
		cfg.max_sessions = 4;
		e = xe_engine_create(&cfg);
		buf.resize(e ? xe_engine_max_events(e) : 0);
	}
	~Eng()
	{
		xe_engine_destroy(e);
	}

	int add(uint32_t id, int64_t tick, int64_t low, int64_t high)
	{
		xe_symbol_config c{};
		c.symbol_id = id;
		c.lot_size = 1;
		c.tick_size = tick;
		c.band_low = low;
		c.band_high = high;
		return xe_engine_add_symbol(e, &c);
	}

	std::vector<xe_event> order(uint32_t sym, uint64_t cl, uint8_t side, int64_t px,
				    uint32_t qty, uint8_t tif = XE_TIF_GTC, uint32_t session = 1)
	{
		xe_order o{};
		o.session_id = session;
		o.symbol_id = sym;
		o.cl_ord_id = cl;
		o.price = px;
		o.qty = qty;
		o.side = side;
		o.ord_type = XE_ORD_LIMIT;
		o.tif = tif;
		uint32_t n = xe_engine_new_order(e, &o, buf.data());
		return {buf.begin(), buf.begin() + n};
	}

	std::vector<xe_event> cancel(uint64_t cl, uint32_t session = 1)
	{
		uint32_t n = xe_engine_cancel(e, session, cl, buf.data());
		return {buf.begin(), buf.begin() + n};
	}

	std::vector<xe_level> book(uint32_t sym, uint8_t side, uint32_t depth = 4096)
	{
		std::vector<xe_level> l(depth);
		l.resize(xe_engine_book(e, sym, side, depth, l.data()));
		return l;
	}

	xe_engine_memory mem()
	{
		xe_engine_memory m;
		xe_engine_get_memory(e, &m);
		return m;
	}

	xe_engine *e = nullptr;
	std::vector<xe_event> buf;
};

} // namespace

TEST(Ladder, AnyBandWidthAccepted)
{
	Eng x;
	ASSERT_NE(x.e, nullptr);
	EXPECT_EQ(x.add(1, 1, 1, INT64_MAX), 0);
	EXPECT_EQ(x.add(2, 1, 1, 100000000), 0); // the band issue 13 saw answered UNKNOWN_SYMBOL
	EXPECT_EQ(x.add(3, 1000, 1000, INT64_MAX / 1000 * 1000), 0);
	// Nothing rests yet: no page or node is in use whatever the bands.
	EXPECT_EQ(x.mem().pages_used, 0u);
	EXPECT_EQ(x.mem().nodes_used, 0u);
	EXPECT_EQ(x.mem().ladder_touched_bytes, 0u);
}

TEST(Ladder, ExtremePricesRestTradeAndCancel)
{
	Eng x;
	ASSERT_EQ(x.add(1, 1, 1, INT64_MAX), 0);
	EXPECT_EQ(x.order(1, 1, XE_BUY, 1, 10).size(), 1u);
	EXPECT_EQ(x.order(1, 2, XE_BUY, INT64_MAX - 1, 10).size(), 1u);
	EXPECT_EQ(x.order(1, 3, XE_SELL, INT64_MAX, 5).size(), 1u);
	auto bids = x.book(1, XE_BUY);
	ASSERT_EQ(bids.size(), 2u);
	EXPECT_EQ(bids[0].price, INT64_MAX - 1);
	EXPECT_EQ(bids[1].price, 1);
	// A sell at 1 sweeps both bids across the whole band, best first.
	auto v = x.order(1, 4, XE_SELL, 1, 25, XE_TIF_IOC);
	ASSERT_EQ(v.size(), 6u);
	EXPECT_EQ(v[1].type, XE_EV_FILL);
	EXPECT_EQ(v[1].price, INT64_MAX - 1);
	EXPECT_EQ(v[3].price, 1);
	EXPECT_EQ(v[5].type, XE_EV_CANCELLED);
	EXPECT_TRUE(x.book(1, XE_BUY).empty());
	ASSERT_EQ(x.cancel(3).size(), 1u);
	EXPECT_EQ(x.cancel(3)[0].type, XE_EV_REJECTED);
	// Every page and node went back to the pools.
	EXPECT_EQ(x.mem().pages_used, 0u);
	EXPECT_EQ(x.mem().nodes_used, 0u);
	EXPECT_GT(x.mem().ladder_touched_bytes, 0u);
}

TEST(Ladder, MemoryFollowsTheOrders)
{
	Eng x(8192);
	ASSERT_EQ(x.add(1, 1, 1, 100000), 0);
	// 1,024 orders on the 1,024 ticks of levels 49152..50175: 16 pages (64 levels each), right
	// under the directory (a band of up to 262,144 ticks needs no node).
	for (uint64_t i = 0; i < 1024; i++)
		x.order(1, i + 1, XE_BUY, 50176 - (int64_t)i, 1);
	xe_engine_memory m = x.mem();
	EXPECT_EQ(m.pages_used, 16u);
	EXPECT_EQ(m.nodes_used, 0u);
	EXPECT_EQ(m.ladder_bytes, 16ull * m.page_bytes);
	EXPECT_EQ(m.pages_max, 8192u);
	for (uint64_t i = 0; i < 1024; i++)
		ASSERT_EQ(x.cancel(i + 1)[0].type, XE_EV_CANCELLED);
	EXPECT_EQ(x.mem().pages_used, 0u);
	EXPECT_EQ(x.mem().nodes_used, 0u);
	// The same again reuses the same pool memory: nothing new is touched.
	uint64_t touched = x.mem().ladder_touched_bytes;
	for (uint64_t i = 0; i < 1024; i++)
		x.order(1, i + 1, XE_BUY, 50176 - (int64_t)i, 1);
	EXPECT_EQ(x.mem().ladder_touched_bytes, touched);
}

// With 8 orders the engine has 16 nodes; on a band that needs 8 nodes below the directory for
// each far away price, the third such order is refused CAPACITY before anything changes.
TEST(Ladder, NodeLimitRefusedCapacity)
{
	Eng x(8);
	ASSERT_EQ(x.add(1, 1, 1, INT64_MAX), 0);
	EXPECT_EQ(x.order(1, 1, XE_BUY, 1, 1)[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(x.mem().nodes_used, 8u);
	EXPECT_EQ(x.order(1, 5, XE_BUY, INT64_MAX / 4, 1)[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(x.mem().nodes_used, 16u);
	auto v = x.order(1, 2, XE_BUY, INT64_MAX / 2, 1);
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].type, XE_EV_REJECTED);
	EXPECT_EQ(v[0].reason, XE_REJ_CAPACITY);
	// Near the first one the path exists: accepted.
	EXPECT_EQ(x.order(1, 3, XE_BUY, 2, 1)[0].type, XE_EV_ACCEPTED);
	// An IOC never rests: no nodes needed.
	EXPECT_EQ(x.order(1, 4, XE_SELL, INT64_MAX / 2, 1, XE_TIF_IOC)[0].type, XE_EV_ACCEPTED);
	ASSERT_EQ(x.cancel(1)[0].type, XE_EV_CANCELLED);
	ASSERT_EQ(x.cancel(3)[0].type, XE_EV_CANCELLED);
	EXPECT_EQ(x.mem().nodes_used, 8u);
	EXPECT_EQ(x.order(1, 2, XE_BUY, INT64_MAX / 2, 1)[0].type, XE_EV_ACCEPTED);
}

// Random flow on sparse prices over wide bands (clusters far apart, so the search crosses
// empty pages and nodes at every height): after every message the engine's book equals the
// levels rebuilt from its own events, and the book is not crossed.
TEST(Ladder, BookMatchesItsEventsOnSparseWideBands)
{
	struct Live {
		uint8_t side;
		int64_t price;
		uint32_t leaves;
	};
	const int64_t ticks[3] = {1, 7, 1};
	const int64_t highs[3] = {INT64_MAX, 7000000000000ll, 1000000};
	for (int k = 0; k < 3; k++) {
		Eng x(4096, 1);
		ASSERT_EQ(x.add(1, ticks[k], ticks[k], highs[k] / ticks[k] * ticks[k]), 0);
		std::mt19937_64 rng(42 + k);
		std::map<uint64_t, Live> live;
		uint64_t nlevels = (uint64_t)(highs[k] / ticks[k]);
		// Cluster centres spread over the band; prices within a few pages of one.
		std::vector<uint64_t> centres;
		for (int c = 0; c < 6; c++)
			centres.push_back(1000 + rng() % (nlevels - 2000));
		std::sort(centres.begin(), centres.end());
		uint64_t cl = 1;
		for (int step = 0; step < 6000; step++) {
			std::vector<xe_event> v;
			if (!live.empty() && rng() % 3 == 0) {
				auto it = live.begin();
				std::advance(it, (long)(rng() % live.size()));
				v = x.cancel(it->first);
			} else {
				// Bids in the lower clusters, asks in the upper ones, and now and
				// then an aggressive order reaching over.
				uint8_t side = rng() % 2 ? XE_BUY : XE_SELL;
				size_t c = side == XE_BUY ? rng() % 4 : 2 + rng() % 4;
				if (rng() % 10 == 0)
					c = side == XE_BUY ? 5 : 0;
				uint64_t li = centres[c] - 300 + rng() % 600;
				int64_t px = (int64_t)(li + 1) * ticks[k];
				uint8_t tif = rng() % 5 == 0 ? XE_TIF_IOC : XE_TIF_GTC;
				v = x.order(1, cl++, side, px, 1 + (uint32_t)(rng() % 50), tif);
			}
			for (const xe_event &e : v) {
				if (e.type == XE_EV_ACCEPTED)
					live[e.cl_ord_id] = {e.side, e.price, e.leaves};
				else if (e.type == XE_EV_FILL) {
					live[e.cl_ord_id].leaves = e.leaves;
					if (!e.leaves)
						live.erase(e.cl_ord_id);
				} else if (e.type == XE_EV_CANCELLED)
					live.erase(e.cl_ord_id);
			}
			std::map<int64_t, std::pair<uint64_t, uint32_t>> lv[2];
			for (auto &o : live) {
				auto &l = lv[o.second.side - 1][o.second.price];
				l.first += o.second.leaves;
				l.second++;
			}
			for (uint8_t side = XE_BUY; side <= XE_SELL; side++) {
				auto got = x.book(1, side);
				ASSERT_EQ(got.size(), lv[side - 1].size()) << "step " << step;
				size_t i = 0;
				auto check = [&](int64_t px,
						 const std::pair<uint64_t, uint32_t> &l) {
					ASSERT_EQ(got[i].price, px) << "step " << step;
					ASSERT_EQ(got[i].qty, l.first);
					ASSERT_EQ(got[i].orders, l.second);
					i++;
				};
				if (side == XE_BUY) {
					for (auto it = lv[0].rbegin(); it != lv[0].rend(); ++it)
						check(it->first, it->second);
				} else {
					for (auto &l : lv[1])
						check(l.first, l.second);
				}
			}
			if (!lv[0].empty() && !lv[1].empty()) {
				ASSERT_LT(lv[0].rbegin()->first, lv[1].begin()->first);
			}
		}
		xe_engine_stats st;
		xe_engine_get_stats(x.e, &st);
		EXPECT_EQ(st.resting_orders, live.size());
		EXPECT_GT(st.fills, 100u);
	}
}
