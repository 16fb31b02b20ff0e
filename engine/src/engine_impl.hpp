// SPDX-License-Identifier: BSD-2-Clause
//
// The engine instance behind the opaque `xe_engine` handle of the C ABI: the order pool with its
// free list, the (session, cl_ord_id) -> order index (chained through the pooled orders, so it
// needs no memory of its own beyond the bucket heads), per-session order lists and STP modes, the
// books, and the id counters. engine.cpp holds the order entry paths, config.cpp creation,
// configuration and the queries.
#ifndef XE_ENGINE_IMPL_HPP
#define XE_ENGINE_IMPL_HPP

#include <cstdint>
#include <memory>

#include "book.hpp"
#include "xdpex/engine.h"

namespace xe {

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

	bool has_limit() const { return ord_type != XE_ORD_MARKET; }
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

	std::unique_ptr<xe::Session[]> sessions; // [session_id], 0 unused
	std::unique_ptr<xe::Book[]> books; // [symbol_id], 0 unused

	uint64_t next_order_id = 1;
	uint64_t next_exec_id = 1;
	uint64_t levels = 0;
	uint64_t orders_in = 0;
	uint64_t fills = 0;
	uint64_t rejects = 0;

	// --- index -------------------------------------------------------------------------------
	// Client order ids are usually sequential per session: the 16 ids of an aligned block share
	// one cache line of buckets (one miss per 16 new orders instead of one per order), while the
	// blocks themselves land at keyed random places, so chosen ids cannot pile into one chain.
	uint32_t bucket_of(uint32_t session, uint64_t cl) const
	{
		uint64_t blk = xe::mix64((cl >> 4) ^ ((uint64_t)session << 40) ^ hash_seed);
		return (uint32_t)(((blk << 4) | (cl & 15)) & bucket_mask);
	}

	// The link (bucket head or an order's hnext) that holds the order, or nullptr: lets a cancel
	// unlink without hashing and walking the chain a second time.
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
	XE_HOT void release(uint32_t oi);
	XE_HOT void remove_order(xe::Book &b, uint32_t oi);
	XE_HOT void remove_order(xe::Book &b, uint32_t oi, uint32_t bkt);
};

#endif // XE_ENGINE_IMPL_HPP
