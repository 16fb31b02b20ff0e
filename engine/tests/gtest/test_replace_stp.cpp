// SPDX-License-Identifier: BSD-2-Clause
//
// Cancel/replace priority rules and self-trade prevention.
#include "fixture.hpp"

TEST_F(EngineTest, ReplaceQuantityDownKeepsPriority)
{
	limit(1, 1, XE_BUY, 1500, 50);
	limit(2, 2, XE_BUY, 1500, 50);
	auto &v = replace(1, 1, 3, 1500, 20);
	ASSERT_EQ(v.size(), 1u);
	EXPECT_EQ(v[0].type, XE_EV_REPLACED);
	EXPECT_EQ(v[0].cl_ord_id, 3u);
	EXPECT_EQ(v[0].orig_cl_ord_id, 1u);
	EXPECT_EQ(v[0].qty, 20u);
	EXPECT_EQ(v[0].leaves, 20u);
	EXPECT_EQ(v[0].order_id, 1u);
	EXPECT_EQ(queue(XE_BUY, 1500), (std::vector<uint64_t>{3, 2}));
	EXPECT_EQ(book(XE_BUY)[0].qty, 70u);
}

TEST_F(EngineTest, ReplaceQuantityUpLosesPriority)
{
	limit(1, 1, XE_BUY, 1500, 50);
	limit(2, 2, XE_BUY, 1500, 50);
	replace(1, 1, 3, 1500, 60);
	EXPECT_EQ(queue(XE_BUY, 1500), (std::vector<uint64_t>{2, 3}));
	EXPECT_EQ(book(XE_BUY)[0].qty, 110u);
}

TEST_F(EngineTest, ReplacePriceChangeLosesPriority)
{
	limit(1, 1, XE_BUY, 1500, 50);
	limit(2, 2, XE_BUY, 1495, 50);
	replace(1, 1, 3, 1495, 50);
	EXPECT_EQ(queue(XE_BUY, 1495), (std::vector<uint64_t>{2, 3}));
	EXPECT_TRUE(queue(XE_BUY, 1500).empty());
	EXPECT_EQ(book(XE_BUY).size(), 1u);
}

TEST_F(EngineTest, ReplaceKeepsSameIdWhenAsked)
{
	limit(1, 1, XE_BUY, 1500, 50);
	auto &v = replace(1, 1, 1, 1505, 50);
	EXPECT_EQ(v[0].type, XE_EV_REPLACED);
	EXPECT_EQ(cancel(1, 1)[0].price, 1505);
}

TEST_F(EngineTest, ReplaceOldIdIsGoneNewIdIsLive)
{
	limit(1, 1, XE_BUY, 1500, 50);
	replace(1, 1, 2, 1500, 40);
	EXPECT_EQ(rejected(cancel(1, 1)), XE_REJ_UNKNOWN_ORDER);
	EXPECT_EQ(cancel(1, 2)[0].qty, 40u);
}

TEST_F(EngineTest, ReplaceCountsFilledQuantity)
{
	limit(1, 1, XE_SELL, 1500, 50);
	limit(2, 2, XE_BUY, 1500, 20);
	auto &v = replace(1, 1, 3, 1500, 40); // total 40, 20 filled
	EXPECT_EQ(v[0].qty, 40u);
	EXPECT_EQ(v[0].leaves, 20u);
	EXPECT_EQ(book(XE_SELL)[0].qty, 20u);
}

TEST_F(EngineTest, ReplaceToCrossingPriceTrades)
{
	limit(1, 1, XE_SELL, 1510, 30);
	limit(2, 2, XE_BUY, 1500, 50);
	auto &v = replace(2, 2, 3, 1510, 50);
	ASSERT_EQ(v.size(), 3u);
	EXPECT_EQ(v[0].type, XE_EV_REPLACED);
	EXPECT_EQ(v[1].type, XE_EV_FILL);
	EXPECT_EQ(v[1].cl_ord_id, 3u);
	EXPECT_EQ(v[1].price, 1510);
	EXPECT_EQ(v[1].leaves, 20u);
	auto b = book(XE_BUY);
	ASSERT_EQ(b.size(), 1u);
	EXPECT_EQ(b[0].price, 1510);
	EXPECT_EQ(b[0].qty, 20u);
}

TEST_F(EngineTest, ReplaceFullyFilledOrderLeavesBook)
{
	limit(1, 1, XE_SELL, 1510, 50);
	limit(2, 2, XE_BUY, 1500, 50);
	replace(2, 2, 3, 1510, 50);
	EXPECT_EQ(resting(), 0u);
	EXPECT_EQ(rejected(cancel(2, 3)), XE_REJ_UNKNOWN_ORDER);
}

TEST_F(EngineTest, ReplacePostOnlyIntoCrossIsRejected)
{
	limit(1, 1, XE_SELL, 1510, 50);
	submit(order(2, 2, XE_BUY, 1500, 50, XE_ORD_POST_ONLY));
	EXPECT_EQ(rejected(replace(2, 2, 3, 1510, 50)), XE_REJ_POST_ONLY_CROSS);
	EXPECT_EQ(book(XE_BUY)[0].price, 1500);
}

TEST_F(EngineTest, StpNoneTradesWithItself)
{
	limit(1, 1, XE_SELL, 1500, 10);
	EXPECT_EQ(limit(1, 2, XE_BUY, 1500, 10).size(), 3u);
}

TEST_F(EngineTest, StpCancelNewestCancelsAggressor)
{
	ASSERT_EQ(xe_engine_set_stp(e, 1, XE_STP_CANCEL_NEWEST), 0);
	limit(2, 1, XE_SELL, 1500, 10);
	limit(1, 2, XE_SELL, 1500, 10);
	limit(2, 3, XE_SELL, 1500, 10);
	auto &v = limit(1, 4, XE_BUY, 1500, 30);
	ASSERT_EQ(v.size(), 4u);
	EXPECT_EQ(v[2].cl_ord_id, 1u); // traded with the other session's order ahead
	EXPECT_EQ(v[3].type, XE_EV_CANCELLED);
	EXPECT_EQ(v[3].reason, XE_CXL_SELF_TRADE);
	EXPECT_EQ(v[3].cl_ord_id, 4u);
	EXPECT_EQ(v[3].qty, 20u);
	EXPECT_EQ(queue(XE_SELL, 1500), (std::vector<uint64_t>{2, 3}));
}

TEST_F(EngineTest, StpCancelOldestCancelsRestingAndGoesOn)
{
	ASSERT_EQ(xe_engine_set_stp(e, 1, XE_STP_CANCEL_OLDEST), 0);
	limit(1, 1, XE_SELL, 1500, 10);
	limit(2, 2, XE_SELL, 1500, 10);
	auto &v = limit(1, 3, XE_BUY, 1500, 10);
	ASSERT_EQ(v.size(), 4u);
	EXPECT_EQ(v[1].type, XE_EV_CANCELLED);
	EXPECT_EQ(v[1].cl_ord_id, 1u);
	EXPECT_EQ(v[1].reason, XE_CXL_SELF_TRADE);
	EXPECT_EQ(v[3].cl_ord_id, 2u);
	EXPECT_EQ(resting(), 0u);
}

TEST_F(EngineTest, StpCancelBothCancelsBoth)
{
	ASSERT_EQ(xe_engine_set_stp(e, 1, XE_STP_CANCEL_BOTH), 0);
	limit(1, 1, XE_SELL, 1500, 10);
	limit(2, 2, XE_SELL, 1500, 10);
	auto &v = limit(1, 3, XE_BUY, 1500, 10);
	ASSERT_EQ(v.size(), 3u);
	EXPECT_EQ(v[1].cl_ord_id, 1u);
	EXPECT_EQ(v[2].cl_ord_id, 3u);
	EXPECT_EQ(v[2].reason, XE_CXL_SELF_TRADE);
	EXPECT_EQ(queue(XE_SELL, 1500), (std::vector<uint64_t>{2}));
}

TEST_F(EngineTest, StpFokCountsOnlyTradableQuantity)
{
	ASSERT_EQ(xe_engine_set_stp(e, 1, XE_STP_CANCEL_OLDEST), 0);
	limit(1, 1, XE_SELL, 1500, 10);
	limit(2, 2, XE_SELL, 1500, 10);
	EXPECT_EQ(rejected(limit(1, 3, XE_BUY, 1500, 20, XE_TIF_FOK)), XE_REJ_FOK_UNFILLABLE);
	EXPECT_EQ(limit(1, 4, XE_BUY, 1500, 10, XE_TIF_FOK).size(), 4u);
}

TEST_F(EngineTest, StpModeValidation)
{
	EXPECT_EQ(xe_engine_set_stp(e, 0, XE_STP_NONE), -ERANGE);
	EXPECT_EQ(xe_engine_set_stp(e, 5, XE_STP_NONE), -ERANGE);
	EXPECT_EQ(xe_engine_set_stp(e, 1, 4), -EINVAL);
}
