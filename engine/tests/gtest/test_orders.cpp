// SPDX-License-Identifier: BSD-2-Clause
//
// Order types and matching: limit GTC/DAY resting, price-time priority, trades at the resting
// price, market, IOC, FOK, post-only, cancel, and the event layout of each.
#include "fixture.hpp"

TEST_F(EngineTest, LimitRestsWhenNothingCrosses)
{
	auto &v = limit(1, 11, XE_BUY, 1500, 100);
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(v[0].order_id, 1u);
	EXPECT_EQ(v[0].qty, 100u);
	EXPECT_EQ(v[0].leaves, 100u);
	EXPECT_EQ(v[0].tif, XE_TIF_GTC);
	auto b = book(XE_BUY);
	ASSERT_EQ(b.size(), 1u);
	EXPECT_EQ(b[0].price, 1500);
	EXPECT_EQ(b[0].qty, 100u);
	EXPECT_EQ(b[0].orders, 1u);
}

TEST_F(EngineTest, DayLimitRestsLikeGtc)
{
	auto &v = limit(1, 11, XE_SELL, 1500, 100, XE_TIF_DAY);
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].tif, XE_TIF_DAY);
	EXPECT_EQ(resting(), 1u);
}

TEST_F(EngineTest, CrossingLimitTradesAtRestingPrice)
{
	limit(1, 1, XE_SELL, 1500, 100);
	auto &v = limit(2, 2, XE_BUY, 1600, 40);
	ASSERT_EQ(v.size(), 3u);
	EXPECT_EQ(v[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(v[1].type, XE_EV_FILL);
	EXPECT_EQ(v[1].liquidity, XE_LIQ_REMOVED);
	EXPECT_EQ(v[1].session_id, 2u);
	EXPECT_EQ(v[1].price, 1500);
	EXPECT_EQ(v[1].qty, 40u);
	EXPECT_EQ(v[1].leaves, 0u);
	EXPECT_EQ(v[2].type, XE_EV_FILL);
	EXPECT_EQ(v[2].liquidity, XE_LIQ_ADDED);
	EXPECT_EQ(v[2].cl_ord_id, 1u);
	EXPECT_EQ(v[2].price, 1500);
	EXPECT_EQ(v[2].leaves, 60u);
	EXPECT_EQ(v[1].exec_id, v[2].exec_id);
	EXPECT_EQ(book(XE_SELL)[0].qty, 60u);
	EXPECT_TRUE(book(XE_BUY).empty());
}

TEST_F(EngineTest, RemainderOfCrossingLimitRests)
{
	limit(1, 1, XE_SELL, 1500, 30);
	auto &v = limit(2, 2, XE_BUY, 1505, 100);
	ASSERT_EQ(v.size(), 3u);
	auto b = book(XE_BUY);
	ASSERT_EQ(b.size(), 1u);
	EXPECT_EQ(b[0].price, 1505);
	EXPECT_EQ(b[0].qty, 70u);
	EXPECT_TRUE(book(XE_SELL).empty());
}

TEST_F(EngineTest, PricePriorityBeatsTimePriority)
{
	limit(1, 1, XE_SELL, 1510, 10);
	limit(1, 2, XE_SELL, 1505, 10);
	auto &v = limit(2, 3, XE_BUY, 1510, 10);
	ASSERT_EQ(v.size(), 3u);
	EXPECT_EQ(v[2].cl_ord_id, 2u);
	EXPECT_EQ(v[2].price, 1505);
}

TEST_F(EngineTest, TimePriorityWithinLevel)
{
	limit(1, 1, XE_BUY, 1500, 10);
	limit(2, 2, XE_BUY, 1500, 10);
	limit(3, 3, XE_BUY, 1500, 10);
	EXPECT_EQ(queue(XE_BUY, 1500), (std::vector<uint64_t>{1, 2, 3}));
	auto &v = limit(4, 4, XE_SELL, 1500, 20);
	ASSERT_EQ(v.size(), 5u);
	EXPECT_EQ(v[2].cl_ord_id, 1u);
	EXPECT_EQ(v[4].cl_ord_id, 2u);
	EXPECT_EQ(queue(XE_BUY, 1500), (std::vector<uint64_t>{3}));
}

TEST_F(EngineTest, SweepWalksLevelsBestFirst)
{
	limit(1, 1, XE_SELL, 1500, 10);
	limit(1, 2, XE_SELL, 1505, 10);
	limit(1, 3, XE_SELL, 1510, 10);
	auto &v = limit(2, 4, XE_BUY, 1505, 30);
	ASSERT_EQ(v.size(), 5u);
	EXPECT_EQ(v[1].price, 1500);
	EXPECT_EQ(v[3].price, 1505);
	auto b = book(XE_BUY);
	ASSERT_EQ(b.size(), 1u);
	EXPECT_EQ(b[0].qty, 10u);
	EXPECT_EQ(book(XE_SELL)[0].price, 1510);
}

TEST_F(EngineTest, BestPriceFoundAcrossFarEmptyTicks)
{
	// Levels far apart across the ladder: the bitmap must find each next best.
	limit(1, 1, XE_SELL, 1000, 10);
	limit(1, 2, XE_SELL, 2000, 10);
	limit(1, 3, XE_SELL, 1995, 10);
	auto &v = limit(2, 4, XE_BUY, 2000, 30);
	ASSERT_EQ(v.size(), 7u);
	EXPECT_EQ(v[1].price, 1000);
	EXPECT_EQ(v[3].price, 1995);
	EXPECT_EQ(v[5].price, 2000);
	EXPECT_TRUE(book(XE_SELL).empty());
}

TEST_F(EngineTest, MarketOrderTakesLiquidityAndCancelsRemainder)
{
	limit(1, 1, XE_SELL, 1500, 10);
	limit(1, 2, XE_SELL, 1800, 10);
	auto &v = submit(EngineTest::order(2, 3, XE_BUY, 0, 50, XE_ORD_MARKET, XE_TIF_IOC));
	ASSERT_EQ(v.size(), 6u);
	EXPECT_EQ(v[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(v[0].price, 0);
	EXPECT_EQ(v[3].price, 1800);
	EXPECT_EQ(v[5].type, XE_EV_CANCELLED);
	EXPECT_EQ(v[5].reason, XE_CXL_NO_LIQUIDITY);
	EXPECT_EQ(v[5].qty, 30u);
	EXPECT_EQ(resting(), 0u);
}

TEST_F(EngineTest, MarketOrderOnEmptyBookIsCancelled)
{
	auto &v = submit(EngineTest::order(2, 3, XE_SELL, 0, 50, XE_ORD_MARKET, XE_TIF_DAY));
	ASSERT_EQ(v.size(), 2u);
	EXPECT_EQ(v[1].type, XE_EV_CANCELLED);
	EXPECT_EQ(v[1].reason, XE_CXL_NO_LIQUIDITY);
	EXPECT_EQ(resting(), 0u);
}

TEST_F(EngineTest, IocFillsWhatItCanAndCancelsTheRest)
{
	limit(1, 1, XE_BUY, 1500, 30);
	limit(1, 2, XE_BUY, 1490, 30);
	auto &v = limit(2, 3, XE_SELL, 1495, 50, XE_TIF_IOC);
	ASSERT_EQ(v.size(), 4u);
	EXPECT_EQ(v[1].qty, 30u);
	EXPECT_EQ(v[3].type, XE_EV_CANCELLED);
	EXPECT_EQ(v[3].reason, XE_CXL_IOC);
	EXPECT_EQ(v[3].qty, 20u);
	EXPECT_EQ(book(XE_BUY)[0].price, 1490);
	EXPECT_TRUE(book(XE_SELL).empty());
}

TEST_F(EngineTest, IocThatDoesNotCrossIsCancelled)
{
	limit(1, 1, XE_BUY, 1500, 30);
	auto &v = limit(2, 3, XE_SELL, 1505, 50, XE_TIF_IOC);
	ASSERT_EQ(v.size(), 2u);
	EXPECT_EQ(v[1].reason, XE_CXL_IOC);
	EXPECT_EQ(v[1].qty, 50u);
}

TEST_F(EngineTest, FokFillsCompletelyAcrossLevels)
{
	limit(1, 1, XE_SELL, 1500, 30);
	limit(1, 2, XE_SELL, 1505, 30);
	auto &v = limit(2, 3, XE_BUY, 1505, 60, XE_TIF_FOK);
	ASSERT_EQ(v.size(), 5u);
	EXPECT_EQ(v[3].leaves, 0u);
	EXPECT_EQ(resting(), 0u);
}

TEST_F(EngineTest, FokThatCannotFillLeavesBookUntouched)
{
	limit(1, 1, XE_SELL, 1500, 30);
	limit(1, 2, XE_SELL, 1510, 30);
	EXPECT_EQ(rejected(limit(2, 3, XE_BUY, 1505, 60, XE_TIF_FOK)), XE_REJ_FOK_UNFILLABLE);
	EXPECT_EQ(resting(), 2u);
	EXPECT_EQ(book(XE_SELL)[0].qty, 30u);
}

TEST_F(EngineTest, PostOnlyRestsWhenItDoesNotCross)
{
	limit(1, 1, XE_SELL, 1505, 30);
	auto &v = submit(EngineTest::order(2, 2, XE_BUY, 1500, 10, XE_ORD_POST_ONLY));
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(v[0].ord_type, XE_ORD_POST_ONLY);
	EXPECT_EQ(book(XE_BUY)[0].price, 1500);
}

TEST_F(EngineTest, CancelRemovesOrderAndReportsLeaves)
{
	limit(1, 1, XE_BUY, 1500, 30);
	limit(2, 2, XE_SELL, 1500, 10);
	auto &v = cancel(1, 1);
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].type, XE_EV_CANCELLED);
	EXPECT_EQ(v[0].reason, XE_CXL_USER);
	EXPECT_EQ(v[0].qty, 20u);
	EXPECT_EQ(v[0].order_id, 1u);
	EXPECT_TRUE(book(XE_BUY).empty());
	EXPECT_EQ(resting(), 0u);
}

TEST_F(EngineTest, CancelFromMiddleOfQueueKeepsOthersInOrder)
{
	for (uint64_t i = 1; i <= 5; i++)
		limit(1, i, XE_SELL, 1500, 10);
	cancel(1, 3);
	cancel(1, 1);
	cancel(1, 5);
	EXPECT_EQ(queue(XE_SELL, 1500), (std::vector<uint64_t>{2, 4}));
	EXPECT_EQ(book(XE_SELL)[0].qty, 20u);
}

TEST_F(EngineTest, ClientOrderIdReusableAfterOrderLeft)
{
	limit(1, 7, XE_BUY, 1500, 10);
	cancel(1, 7);
	auto &v = limit(1, 7, XE_BUY, 1500, 10);
	EXPECT_EQ(v[0].type, XE_EV_ACCEPTED);
}

TEST_F(EngineTest, SameClientOrderIdInTwoSessionsIsTwoOrders)
{
	limit(1, 7, XE_BUY, 1500, 10);
	auto &v = limit(2, 7, XE_BUY, 1500, 10);
	EXPECT_EQ(v[0].type, XE_EV_ACCEPTED);
	EXPECT_EQ(cancel(2, 7)[0].session_id, 2u);
	EXPECT_EQ(resting(), 1u);
}
