// SPDX-License-Identifier: BSD-2-Clause
//
// Every reject reason the engine produces, one test each, and that a rejection changes nothing.
#include "fixture.hpp"

TEST_F(EngineTest, RejectUnknownSymbol)
{
	auto o = order(1, 1, XE_BUY, 1500, 10);
	o.symbol_id = 3; // within max_symbols but never added
	EXPECT_EQ(rejected(submit(o)), XE_REJ_UNKNOWN_SYMBOL);
	o.symbol_id = 99;
	EXPECT_EQ(rejected(submit(o)), XE_REJ_UNKNOWN_SYMBOL);
	o.symbol_id = 0;
	EXPECT_EQ(rejected(submit(o)), XE_REJ_UNKNOWN_SYMBOL);
}

TEST_F(EngineTest, RejectOffTick)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1502, 10)), XE_REJ_OFF_TICK);
}

TEST_F(EngineTest, RejectOffLot)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 15)), XE_REJ_OFF_LOT);
}

TEST_F(EngineTest, RejectOutsideBand)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 995, 10)), XE_REJ_OUTSIDE_BAND);
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 2005, 10)), XE_REJ_OUTSIDE_BAND);
}

TEST_F(EngineTest, RejectZeroQuantity)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 0)), XE_REJ_BAD_QUANTITY);
}

TEST_F(EngineTest, RejectQuantityAboveMax)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 1010)), XE_REJ_BAD_QUANTITY);
}

TEST_F(EngineTest, RejectZeroOrNegativePrice)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 0, 10)), XE_REJ_BAD_PRICE);
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, -5, 10)), XE_REJ_BAD_PRICE);
}

TEST_F(EngineTest, RejectUnknownOrderOnCancel)
{
	EXPECT_EQ(rejected(cancel(1, 42)), XE_REJ_UNKNOWN_ORDER);
	limit(1, 42, XE_BUY, 1500, 10);
	EXPECT_EQ(rejected(cancel(2, 42)), XE_REJ_UNKNOWN_ORDER); // other session's id
}

TEST_F(EngineTest, RejectUnknownOrderOnReplace)
{
	EXPECT_EQ(rejected(replace(1, 42, 43, 1500, 10)), XE_REJ_UNKNOWN_ORDER);
}

TEST_F(EngineTest, RejectDuplicateClientOrderId)
{
	limit(1, 5, XE_BUY, 1500, 10);
	auto &v = limit(1, 5, XE_SELL, 1600, 10);
	EXPECT_EQ(rejected(v), XE_REJ_DUPLICATE_ID);
	EXPECT_EQ(v[0].order_id, 0u);
	EXPECT_EQ(resting(), 1u);
}

TEST_F(EngineTest, RejectPostOnlyThatWouldCross)
{
	limit(1, 1, XE_SELL, 1500, 10);
	EXPECT_EQ(rejected(submit(order(2, 2, XE_BUY, 1500, 10, XE_ORD_POST_ONLY))),
		  XE_REJ_POST_ONLY_CROSS);
	EXPECT_EQ(resting(), 1u);
}

TEST_F(EngineTest, RejectFokNotFillable)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 10, XE_TIF_FOK)), XE_REJ_FOK_UNFILLABLE);
}

TEST_F(EngineTest, RejectCapacityWhenPoolIsFull)
{
	for (uint64_t i = 1; i <= kMaxOrders; i++)
		ASSERT_EQ(limit(1, i, XE_BUY, 1500, 10)[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(rejected(limit(1, 1000, XE_BUY, 1500, 10)), XE_REJ_CAPACITY);
	// An IOC needs no slot and still trades when the pool is full.
	EXPECT_EQ(limit(2, 1, XE_SELL, 1500, 10, XE_TIF_IOC).size(), 3u);
	// A freed slot is usable again.
	EXPECT_EQ(limit(1, 1000, XE_BUY, 1500, 10)[0].type, XE_EV_ACCEPTED);
}

TEST_F(EngineTest, RejectHaltedSymbol)
{
	ASSERT_EQ(xe_engine_set_halted(e, 1, 1), 0);
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 10)), XE_REJ_HALTED);
}

TEST_F(EngineTest, RejectBadSide)
{
	EXPECT_EQ(rejected(limit(1, 1, 0, 1500, 10)), XE_REJ_BAD_SIDE);
	EXPECT_EQ(rejected(limit(1, 1, 3, 1500, 10)), XE_REJ_BAD_SIDE);
}

TEST_F(EngineTest, RejectBadOrderType)
{
	EXPECT_EQ(rejected(submit(order(1, 1, XE_BUY, 1500, 10, 0))), XE_REJ_BAD_ORDER_TYPE);
	EXPECT_EQ(rejected(submit(order(1, 1, XE_BUY, 1500, 10, 9))), XE_REJ_BAD_ORDER_TYPE);
}

TEST_F(EngineTest, RejectBadTif)
{
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 10, 0)), XE_REJ_BAD_TIF);
	EXPECT_EQ(rejected(limit(1, 1, XE_BUY, 1500, 10, 5)), XE_REJ_BAD_TIF);
	EXPECT_EQ(rejected(submit(order(1, 1, XE_BUY, 1500, 10, XE_ORD_POST_ONLY, XE_TIF_IOC))),
		  XE_REJ_BAD_TIF);
}

TEST_F(EngineTest, RejectUnknownSession)
{
	EXPECT_EQ(rejected(limit(0, 1, XE_BUY, 1500, 10)), XE_REJ_NOT_LOGGED_IN);
	EXPECT_EQ(rejected(limit(5, 1, XE_BUY, 1500, 10)), XE_REJ_NOT_LOGGED_IN);
	EXPECT_EQ(rejected(cancel(9, 1)), XE_REJ_NOT_LOGGED_IN);
	EXPECT_EQ(rejected(mass(9, 0, 0)), XE_REJ_NOT_LOGGED_IN);
}

TEST_F(EngineTest, RejectReplaceWithoutChange)
{
	limit(1, 1, XE_BUY, 1500, 10);
	EXPECT_EQ(rejected(replace(1, 1, 2, 1500, 10)), XE_REJ_NO_CHANGE);
}

TEST_F(EngineTest, RejectReplaceQuantityAtOrBelowFilled)
{
	limit(1, 1, XE_BUY, 1500, 50);
	limit(2, 2, XE_SELL, 1500, 30);
	EXPECT_EQ(rejected(replace(1, 1, 3, 1500, 30)), XE_REJ_REPLACE_QTY);
	EXPECT_EQ(rejected(replace(1, 1, 3, 1500, 20)), XE_REJ_REPLACE_QTY);
}

TEST_F(EngineTest, RejectReplaceInvalidPriceAndQuantity)
{
	limit(1, 1, XE_BUY, 1500, 50);
	EXPECT_EQ(rejected(replace(1, 1, 2, 1502, 50)), XE_REJ_OFF_TICK);
	EXPECT_EQ(rejected(replace(1, 1, 2, 2500, 50)), XE_REJ_OUTSIDE_BAND);
	EXPECT_EQ(rejected(replace(1, 1, 2, 1500, 55)), XE_REJ_OFF_LOT);
	EXPECT_EQ(rejected(replace(1, 1, 2, 1500, 0)), XE_REJ_BAD_QUANTITY);
	EXPECT_EQ(rejected(replace(1, 1, 2, -1500, 50)), XE_REJ_BAD_PRICE);
}

TEST_F(EngineTest, RejectReplaceToLiveId)
{
	limit(1, 1, XE_BUY, 1500, 50);
	limit(1, 2, XE_BUY, 1495, 50);
	EXPECT_EQ(rejected(replace(1, 1, 2, 1490, 50)), XE_REJ_DUPLICATE_ID);
}

TEST_F(EngineTest, RejectMassCancelBadArguments)
{
	EXPECT_EQ(rejected(mass(1, 3, 0)), XE_REJ_UNKNOWN_SYMBOL);
	EXPECT_EQ(rejected(mass(1, 0, 7)), XE_REJ_BAD_SIDE);
	EXPECT_EQ(rejected(take(xe_engine_mass_cancel(e, 1, 0, 0, 99, buf.data()))),
		  XE_REJ_UNKNOWN_MESSAGE);
}

TEST_F(EngineTest, RejectionsLeaveStateUnchanged)
{
	limit(1, 1, XE_BUY, 1500, 50);
	uint64_t h = xe_engine_state_hash(e);
	limit(1, 1, XE_BUY, 1500, 50);
	limit(1, 2, XE_BUY, 1502, 50);
	cancel(1, 9);
	replace(1, 1, 1, 1500, 50);
	EXPECT_EQ(xe_engine_state_hash(e), h);
	xe_engine_stats st;
	xe_engine_get_stats(e, &st);
	EXPECT_EQ(st.rejects, 4u);
}
