// SPDX-License-Identifier: BSD-2-Clause
//
// Shared fixture of the engine unit tests: an engine with two symbols (1: tick 5, lot 10, band
// 1000..2000, max qty 1000; 2: tick 1, lot 1, band 1..100), four sessions, and helpers that
// submit, cancel and replace and keep the events of the last call.
#ifndef XE_TEST_FIXTURE_HPP
#define XE_TEST_FIXTURE_HPP

#include <gtest/gtest.h>

#include <vector>

#include "xdpex/engine.h"

class EngineTest : public ::testing::Test
{
      protected:
	static constexpr uint32_t kMaxOrders = 64;

	void SetUp() override
	{
		xe_engine_config cfg{};
		cfg.max_orders = kMaxOrders;
		cfg.max_symbols = 4;
		cfg.max_sessions = 4;
		e = xe_engine_create(&cfg);
		ASSERT_NE(e, nullptr);
		xe_symbol_config s1{};
		s1.symbol_id = 1;
		s1.lot_size = 10;
		s1.tick_size = 5;
		s1.band_low = 1000;
		s1.band_high = 2000;
		s1.max_qty = 1000;
		ASSERT_EQ(xe_engine_add_symbol(e, &s1), 0);
		xe_symbol_config s2{};
		s2.symbol_id = 2;
		s2.lot_size = 1;
		s2.tick_size = 1;
		s2.band_low = 1;
		s2.band_high = 100;
		ASSERT_EQ(xe_engine_add_symbol(e, &s2), 0);
		buf.resize(xe_engine_max_events(e));
	}

	void TearDown() override
	{
		xe_engine_destroy(e);
	}

	static xe_order order(uint32_t session, uint64_t cl, uint8_t side, int64_t price,
			      uint32_t qty, uint8_t type = XE_ORD_LIMIT, uint8_t tif = XE_TIF_GTC,
			      uint32_t symbol = 1)
	{
		xe_order o{};
		o.session_id = session;
		o.symbol_id = symbol;
		o.cl_ord_id = cl;
		o.price = price;
		o.qty = qty;
		o.side = side;
		o.ord_type = type;
		o.tif = tif;
		return o;
	}

	const std::vector<xe_event> &take(uint32_t n)
	{
		ev.assign(buf.begin(), buf.begin() + n);
		return ev;
	}

	const std::vector<xe_event> &submit(const xe_order &o)
	{
		return take(xe_engine_new_order(e, &o, buf.data()));
	}

	const std::vector<xe_event> &limit(uint32_t session, uint64_t cl, uint8_t side,
					   int64_t price, uint32_t qty, uint8_t tif = XE_TIF_GTC)
	{
		return submit(order(session, cl, side, price, qty, XE_ORD_LIMIT, tif));
	}

	const std::vector<xe_event> &cancel(uint32_t session, uint64_t cl)
	{
		return take(xe_engine_cancel(e, session, cl, buf.data()));
	}

	const std::vector<xe_event> &replace(uint32_t session, uint64_t orig, uint64_t cl,
					     int64_t price, uint32_t qty)
	{
		return take(xe_engine_replace(e, session, orig, cl, price, qty, buf.data()));
	}

	const std::vector<xe_event> &mass(uint32_t session, uint32_t symbol, uint8_t side)
	{
		return take(xe_engine_mass_cancel(e, session, symbol, side, 0, buf.data()));
	}

	// Rejection reason of a single-event answer, or -1.
	int rejected(const std::vector<xe_event> &v) const
	{
		return v.size() == 1 && v[0].type == XE_EV_REJECTED ? v[0].reason : -1;
	}

	std::vector<xe_level> book(uint8_t side, uint32_t symbol = 1)
	{
		std::vector<xe_level> l(64);
		l.resize(xe_engine_book(e, symbol, side, 64, l.data()));
		return l;
	}

	std::vector<uint64_t> queue(uint8_t side, int64_t price, uint32_t symbol = 1)
	{
		std::vector<xe_order_info> o(kMaxOrders);
		o.resize(xe_engine_level_orders(e, symbol, side, price, kMaxOrders, o.data()));
		std::vector<uint64_t> ids;
		for (auto &x : o)
			ids.push_back(x.cl_ord_id);
		return ids;
	}

	uint64_t resting()
	{
		xe_engine_stats st;
		xe_engine_get_stats(e, &st);
		return st.resting_orders;
	}

	xe_engine *e = nullptr;
	std::vector<xe_event> buf, ev;
};

#endif // XE_TEST_FIXTURE_HPP
