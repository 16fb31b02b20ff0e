// SPDX-License-Identifier: BSD-2-Clause
//
// Mass cancel, halts, DAY expiry, capacity reuse, configuration errors and determinism.
#include <cerrno>
#include <random>

#include "fixture.hpp"

TEST_F(EngineTest, MassCancelWholeSession)
{
	limit(1, 1, XE_BUY, 1500, 10);
	limit(1, 2, XE_SELL, 1600, 10);
	submit(order(1, 3, XE_BUY, 50, 5, XE_ORD_LIMIT, XE_TIF_GTC, 2));
	limit(2, 4, XE_BUY, 1500, 10);
	auto &v = mass(1, 0, 0);
	ASSERT_EQ(v.size(), 3u);
	for (auto &x : v) {
		EXPECT_EQ(x.type, XE_EV_CANCELLED);
		EXPECT_EQ(x.reason, XE_CXL_MASS);
		EXPECT_EQ(x.session_id, 1u);
	}
	EXPECT_EQ(v[0].cl_ord_id, 1u); // oldest first
	EXPECT_EQ(resting(), 1u);
}

TEST_F(EngineTest, MassCancelBySymbolAndSide)
{
	limit(1, 1, XE_BUY, 1500, 10);
	limit(1, 2, XE_SELL, 1600, 10);
	submit(order(1, 3, XE_BUY, 50, 5, XE_ORD_LIMIT, XE_TIF_GTC, 2));
	auto &v = mass(1, 1, XE_BUY);
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].cl_ord_id, 1u);
	EXPECT_EQ(resting(), 2u);
}

TEST_F(EngineTest, MassCancelCarriesGivenReason)
{
	limit(1, 1, XE_BUY, 1500, 10);
	auto &v = take(xe_engine_mass_cancel(e, 1, 0, 0, XE_CXL_DISCONNECT, buf.data()));
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].reason, XE_CXL_DISCONNECT);
}

TEST_F(EngineTest, MassCancelWithNothingLiveIsRejected)
{
	limit(2, 1, XE_BUY, 1500, 10);
	EXPECT_EQ(rejected(mass(1, 0, 0)), XE_REJ_UNKNOWN_ORDER);
}

TEST_F(EngineTest, DisconnectCancelWithNothingLiveWritesNothing)
{
	EXPECT_EQ(xe_engine_mass_cancel(e, 1, 0, 0, XE_CXL_DISCONNECT, buf.data()), 0u);
}

TEST_F(EngineTest, HaltBlocksNewAndReplaceButAllowsCancel)
{
	limit(1, 1, XE_BUY, 1500, 10);
	ASSERT_EQ(xe_engine_set_halted(e, 1, 1), 0);
	EXPECT_EQ(rejected(replace(1, 1, 2, 1505, 10)), XE_REJ_HALTED);
	EXPECT_EQ(rejected(limit(2, 2, XE_SELL, 1500, 10)), XE_REJ_HALTED);
	EXPECT_EQ(cancel(1, 1)[0].type, XE_EV_CANCELLED);
}

TEST_F(EngineTest, HaltIsPerSymbolAndLifts)
{
	ASSERT_EQ(xe_engine_set_halted(e, 1, 1), 0);
	EXPECT_EQ(submit(order(1, 1, XE_BUY, 50, 5, XE_ORD_LIMIT, XE_TIF_GTC, 2))[0].type,
		  XE_EV_ACCEPTED);
	ASSERT_EQ(xe_engine_set_halted(e, 1, 0), 0);
	EXPECT_EQ(limit(1, 2, XE_BUY, 1500, 10)[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(xe_engine_set_halted(e, 3, 1), -ENOENT);
}

TEST_F(EngineTest, DayExpiryCancelsOnlyDayOrders)
{
	limit(1, 1, XE_BUY, 1500, 10, XE_TIF_DAY);
	limit(1, 2, XE_BUY, 1500, 10, XE_TIF_GTC);
	limit(2, 3, XE_SELL, 1600, 10, XE_TIF_DAY);
	auto &v = take(xe_engine_expire_day(e, buf.data()));
	ASSERT_EQ(v.size(), 2u);
	EXPECT_EQ(v[0].cl_ord_id, 1u);
	EXPECT_EQ(v[0].reason, XE_CXL_EXPIRED);
	EXPECT_EQ(v[1].cl_ord_id, 3u);
	EXPECT_EQ(queue(XE_BUY, 1500), (std::vector<uint64_t>{2}));
	EXPECT_TRUE(book(XE_SELL).empty());
}

TEST_F(EngineTest, CapacityFreedByFillsIsReused)
{
	for (uint64_t i = 1; i <= kMaxOrders; i++)
		limit(1, i, XE_BUY, 1500, 10);
	limit(2, 1, XE_SELL, 1500, 30, XE_TIF_IOC);
	for (uint64_t i = 1; i <= 3; i++)
		EXPECT_EQ(limit(3, i, XE_BUY, 1495, 10)[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(rejected(limit(3, 9, XE_BUY, 1495, 10)), XE_REJ_CAPACITY);
}

TEST_F(EngineTest, MaxEventsCoversSweepOfWholeBook)
{
	for (uint64_t i = 1; i <= kMaxOrders; i++)
		limit(1, i, XE_SELL, 1000 + 5 * (int64_t)i, 10);
	auto &v = submit(order(2, 1, XE_BUY, 0, 1000, XE_ORD_MARKET, XE_TIF_IOC));
	EXPECT_EQ(v.size(), 2 + 2 * kMaxOrders);
	EXPECT_LE(v.size(), xe_engine_max_events(e));
}

TEST(EngineConfig, BadConfigurationsRefused)
{
	xe_engine_config cfg{};
	EXPECT_EQ(xe_engine_create(&cfg), nullptr);
	EXPECT_EQ(xe_engine_create(nullptr), nullptr);
	cfg.max_orders = 8;
	cfg.max_symbols = 1;
	cfg.max_sessions = 1;
	xe_engine *e = xe_engine_create(&cfg);
	ASSERT_NE(e, nullptr);
	xe_symbol_config s{};
	s.symbol_id = 2;
	s.lot_size = 1;
	s.tick_size = 1;
	s.band_low = 1;
	s.band_high = 10;
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -ERANGE);
	s.symbol_id = 1;
	s.tick_size = 3; // band not on ticks
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -EINVAL);
	s.tick_size = 1;
	s.lot_size = 0;
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -EINVAL);
	s.lot_size = 1;
	s.band_high = 0;
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -EINVAL);
	s.tick_size = 0;
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -EINVAL);
	s.tick_size = 1;
	s.band_low = 0;
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -EINVAL);
	s.band_low = 1;
	s.band_high = 10;
	EXPECT_EQ(xe_engine_add_symbol(e, &s), 0);
	EXPECT_EQ(xe_engine_add_symbol(e, &s), -EEXIST);
	xe_engine_destroy(e);
}

// A random flow applied twice to fresh engines gives identical events and state hashes.
TEST(EngineDeterminism, SameInputsSameEventsAndHash)
{
	auto run = [](std::vector<xe_event> *all) {
		xe_engine_config cfg{};
		cfg.max_orders = 256;
		cfg.max_symbols = 2;
		cfg.max_sessions = 3;
		xe_engine *e = xe_engine_create(&cfg);
		for (uint32_t sym = 1; sym <= 2; sym++) {
			xe_symbol_config s{};
			s.symbol_id = sym;
			s.lot_size = 1;
			s.tick_size = 1;
			s.band_low = 90;
			s.band_high = 110;
			xe_engine_add_symbol(e, &s);
		}
		xe_engine_set_stp(e, 2, XE_STP_CANCEL_OLDEST);
		std::vector<xe_event> ev(xe_engine_max_events(e));
		std::mt19937_64 rng(7);
		for (int i = 0; i < 5000; i++) {
			uint32_t session = 1 + rng() % 3, n;
			uint64_t cl = rng() % 64;
			uint32_t r = rng() % 10;
			if (r < 6) {
				xe_order o{};
				o.session_id = session;
				o.symbol_id = 1 + rng() % 2;
				o.cl_ord_id = cl;
				o.price = 95 + rng() % 11;
				o.qty = 1 + rng() % 20;
				o.side = 1 + rng() % 2;
				o.ord_type = 1 + rng() % 3;
				o.tif = 1 + rng() % 4;
				n = xe_engine_new_order(e, &o, ev.data());
			} else if (r < 8) {
				n = xe_engine_cancel(e, session, cl, ev.data());
			} else {
				n = xe_engine_replace(e, session, cl, rng() % 64, 95 + rng() % 11,
						      1 + rng() % 20, ev.data());
			}
			all->insert(all->end(), ev.begin(), ev.begin() + n);
		}
		uint64_t h = xe_engine_state_hash(e);
		xe_engine_destroy(e);
		return h;
	};
	std::vector<xe_event> a, b;
	uint64_t ha = run(&a), hb = run(&b);
	EXPECT_EQ(ha, hb);
	ASSERT_EQ(a.size(), b.size());
	EXPECT_GT(a.size(), 5000u);
	for (size_t i = 0; i < a.size(); i++)
		ASSERT_EQ(memcmp(&a[i], &b[i], sizeof(xe_event)), 0) << "event " << i;
}

TEST_F(EngineTest, StateHashSeesPriorityOrder)
{
	limit(1, 1, XE_BUY, 1500, 10);
	limit(2, 2, XE_BUY, 1500, 10);
	uint64_t h1 = xe_engine_state_hash(e);
	replace(1, 1, 1, 1500, 20); // loses priority, then
	replace(1, 1, 1, 1500, 10); // same quantity as before, but now behind order 2
	EXPECT_NE(xe_engine_state_hash(e), h1);
}

// Garbage in every field, over the full range of each type: every call answers (first event
// Accepted, Rejected or, for cancels and replaces, their outcome), never crashes, and the book
// stays sane (not crossed, resting count within the pool).
TEST(EngineRobustness, RandomGarbageIsAnsweredNeverCrashes)
{
	xe_engine_config cfg{};
	cfg.max_orders = 128;
	cfg.max_symbols = 3;
	cfg.max_sessions = 3;
	xe_engine *e = xe_engine_create(&cfg);
	ASSERT_NE(e, nullptr);
	for (uint32_t sym = 1; sym <= 2; sym++) {
		xe_symbol_config s{};
		s.symbol_id = sym;
		s.lot_size = sym;
		s.tick_size = sym;
		s.band_low = 100 * sym;
		s.band_high = 200 * sym;
		ASSERT_EQ(xe_engine_add_symbol(e, &s), 0);
	}
	std::vector<xe_event> ev(xe_engine_max_events(e));
	std::mt19937_64 rng(42);
	auto small = [&](uint64_t lim) { return rng() % lim; };
	for (int i = 0; i < 200000; i++) {
		uint32_t n = 0;
		int kind = (int)small(6);
		uint32_t session = (uint32_t)(small(4) ? small(5) : rng());
		if (kind <= 2) {
			xe_order o{};
			o.session_id = session;
			o.symbol_id = (uint32_t)(small(4) ? small(4) : rng());
			o.cl_ord_id = small(4) ? small(64) : rng();
			o.price = small(4) ? (int64_t)(90 + small(330)) : (int64_t)rng();
			o.qty = (uint32_t)(small(4) ? small(20) : rng());
			o.side = (uint8_t)(small(4) ? 1 + small(2) : rng());
			o.ord_type = (uint8_t)(small(4) ? 1 + small(3) : rng());
			o.tif = (uint8_t)(small(4) ? 1 + small(4) : rng());
			n = xe_engine_new_order(e, &o, ev.data());
			ASSERT_GE(n, 1u);
			ASSERT_TRUE(ev[0].type == XE_EV_ACCEPTED || ev[0].type == XE_EV_REJECTED);
			if (ev[0].type == XE_EV_REJECTED) {
				ASSERT_EQ(n, 1u);
			}
		} else if (kind == 3) {
			n = xe_engine_cancel(e, session, small(64), ev.data());
			ASSERT_EQ(n, 1u);
		} else if (kind == 4) {
			n = xe_engine_replace(e, session, small(64), small(64),
					      small(4) ? (int64_t)(90 + small(330))
						       : (int64_t)rng(),
					      (uint32_t)(small(4) ? small(20) : rng()), ev.data());
			ASSERT_GE(n, 1u);
		} else {
			n = xe_engine_mass_cancel(e, session, (uint32_t)small(4), (uint8_t)small(4),
						  (uint8_t)small(10), ev.data());
		}
		ASSERT_LE(n, xe_engine_max_events(e));
		for (uint32_t k = 0; k < n; k++)
			ASSERT_TRUE(ev[k].type >= XE_EV_ACCEPTED && ev[k].type <= XE_EV_REPLACED);
		if (i % 1000 == 0) {
			for (uint32_t sym = 1; sym <= 2; sym++) {
				xe_level bid, ask;
				if (xe_engine_book(e, sym, XE_BUY, 1, &bid) &&
				    xe_engine_book(e, sym, XE_SELL, 1, &ask)) {
					ASSERT_LT(bid.price, ask.price);
				}
			}
			xe_engine_stats st;
			xe_engine_get_stats(e, &st);
			ASSERT_LE(st.resting_orders, cfg.max_orders);
		}
	}
	xe_engine_destroy(e);
}
