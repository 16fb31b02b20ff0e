/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * C ABI of the xdpex matching engine: what the dataplane (C) and the Python binding call. The
 * engine is single-threaded per instance, allocates everything at xe_engine_create() and never on
 * the matching path, and is deterministic: the same calls in the same order give the same events
 * and the same xe_engine_state_hash().
 *
 * Each entry call writes its events into a caller-provided array that must hold at least
 * xe_engine_max_events() entries, and returns how many it wrote. Fills come in pairs (the
 * aggressor's then the resting order's), ordered as the trades happened. Enumerations (side, order
 * type, time in force, reject and cancel reasons) are the wire protocol's, from xdpex/proto.h.
 */
#ifndef XDPEX_ENGINE_H
#define XDPEX_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "xdpex/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xe_engine xe_engine;

struct xe_engine_config {
	uint32_t max_orders; /* resting orders across all symbols (pool size) */
	uint32_t max_symbols; /* symbol ids are 1..max_symbols */
	uint32_t max_sessions; /* session ids are 1..max_sessions */
};

/* Self-trade prevention, per session: what happens when an order would trade with a resting
 * order of the same session. */
enum xe_stp_mode {
	XE_STP_NONE = 0, /* trade */
	XE_STP_CANCEL_NEWEST = 1, /* cancel the aggressor's remainder */
	XE_STP_CANCEL_OLDEST = 2, /* cancel the resting order, go on matching */
	XE_STP_CANCEL_BOTH = 3,
};

struct xe_symbol_config {
	uint32_t symbol_id;
	uint32_t lot_size; /* quantities must be multiples of this */
	int64_t tick_size; /* prices must be multiples of this */
	int64_t band_low; /* lowest valid price, inclusive */
	int64_t band_high; /* highest valid price, inclusive */
	uint32_t max_qty; /* 0 = no limit beyond UINT32_MAX */
	uint32_t reserved;
};

enum xe_event_type {
	XE_EV_ACCEPTED = 1, /* order entered (before any fills of its own) */
	XE_EV_REJECTED = 2, /* reason: enum xe_reject_reason */
	XE_EV_FILL = 3,
	XE_EV_CANCELLED = 4, /* reason: enum xe_cancel_reason */
	XE_EV_REPLACED = 5,
};

struct xe_event {
	uint8_t type; /* enum xe_event_type */
	uint8_t side;
	uint8_t liquidity; /* fills: enum xe_liquidity */
	uint8_t ord_type; /* accepted: the order's type */
	uint16_t reason; /* rejected: enum xe_reject_reason; cancelled: enum xe_cancel_reason */
	uint8_t tif; /* accepted */
	uint8_t pad;
	uint32_t session_id; /* whose order this event reports */
	uint32_t symbol_id;
	uint64_t cl_ord_id;
	uint64_t order_id; /* 0 for a rejected new order */
	int64_t price;
	uint32_t qty; /* accepted/replaced: order qty; fill: traded qty; cancelled: removed qty */
	uint32_t leaves;
	uint64_t exec_id; /* fills */
	uint64_t orig_cl_ord_id; /* replaced */
};

struct xe_order {
	uint32_t session_id;
	uint32_t symbol_id;
	uint64_t cl_ord_id;
	int64_t price;
	uint32_t qty;
	uint8_t side; /* enum xe_side */
	uint8_t ord_type; /* enum xe_ord_type */
	uint8_t tif; /* enum xe_tif */
	uint8_t pad;
};

struct xe_level {
	int64_t price;
	uint64_t qty; /* total open quantity at the level */
	uint32_t orders;
	uint32_t pad;
};

struct xe_engine_stats {
	uint64_t resting_orders;
	uint64_t levels; /* non-empty price levels, both sides, all symbols */
	uint64_t orders_in; /* new orders, cancels, replaces and mass cancels applied */
	uint64_t fills; /* trades (each counted once, not per side) */
	uint64_t rejects;
	uint64_t next_order_id;
	uint64_t next_exec_id;
};

/* NULL on a bad configuration or when memory cannot be had. */
xe_engine *xe_engine_create(const struct xe_engine_config *cfg);
void xe_engine_destroy(xe_engine *e);
/* Size the event array of every entry call must have. */
uint32_t xe_engine_max_events(const xe_engine *e);

/* Configuration, outside the matching path. 0 or -EINVAL / -EEXIST / -ENOENT / -ERANGE.
 * xe_engine_add_symbol allocates nothing: a band of any width (low >= 1, high <= INT64_MAX) is
 * accepted, the ladder's pages are taken from the engine's pools as orders rest. */
int xe_engine_add_symbol(xe_engine *e, const struct xe_symbol_config *cfg);
int xe_engine_set_halted(xe_engine *e, uint32_t symbol_id, int halted);
int xe_engine_set_stp(xe_engine *e, uint32_t session_id, uint8_t mode);

/* Order entry: each returns the number of events written to `out`. */
uint32_t xe_engine_new_order(xe_engine *e, const struct xe_order *o, struct xe_event *out);
uint32_t xe_engine_cancel(xe_engine *e, uint32_t session_id, uint64_t cl_ord_id,
			  struct xe_event *out);
/* A Rejected answer to a cancel or replace carries the id the message named (orig_cl_ord_id)
 * in cl_ord_id and orig_cl_ord_id. */
uint32_t xe_engine_replace(xe_engine *e, uint32_t session_id, uint64_t orig_cl_ord_id,
			   uint64_t new_cl_ord_id, int64_t price, uint32_t qty,
			   struct xe_event *out);
/* symbol_id 0 = all symbols, side 0 = both; reason is reported in each Cancelled event
 * (XE_CXL_MASS, XE_CXL_DISCONNECT, ...; 0 means XE_CXL_MASS). A client mass cancel (reason
 * XE_CXL_MASS) that finds nothing writes one Rejected XE_REJ_UNKNOWN_ORDER; other reasons then
 * write nothing. */
uint32_t xe_engine_mass_cancel(xe_engine *e, uint32_t session_id, uint32_t symbol_id, uint8_t side,
			       uint8_t reason, struct xe_event *out);
/* Cancels every resting DAY order (XE_CXL_EXPIRED). */
uint32_t xe_engine_expire_day(xe_engine *e, struct xe_event *out);

/* Queries. */
uint32_t xe_engine_book(const xe_engine *e, uint32_t symbol_id, uint8_t side, uint32_t depth,
			struct xe_level *out); /* best first; returns levels written */
void xe_engine_get_stats(const xe_engine *e, struct xe_engine_stats *out);
/* Hash of every book, every resting order (in priority order) and the id counters. */
uint64_t xe_engine_state_hash(const xe_engine *e);

/*
 * Additions (not in the first cut of this header; existing declarations unchanged).
 *
 * One resting order as the queries below report it.
 */
struct xe_order_info {
	uint32_t session_id;
	uint32_t symbol_id;
	uint64_t cl_ord_id;
	uint64_t order_id;
	int64_t price;
	uint32_t qty; /* total: filled + leaves */
	uint32_t leaves;
	uint32_t filled;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;
	uint8_t pad;
};

/* The live order (session_id, cl_ord_id): 0, -EINVAL, -ERANGE (bad session) or -ENOENT. */
int xe_engine_get_order(const xe_engine *e, uint32_t session_id, uint64_t cl_ord_id,
			struct xe_order_info *out);
/* The orders resting at one price level, in time priority; returns how many were written (at
 * most max, 0 for an empty level or bad arguments). */
uint32_t xe_engine_level_orders(const xe_engine *e, uint32_t symbol_id, uint8_t side, int64_t price,
				uint32_t max, struct xe_order_info *out);

/*
 * Memory, for sizing: what creation allocated (resident from the start) and the price ladders'
 * page and node pools (reserved at creation, resident only as far as orders have used them; a
 * page holds 64 consecutive levels of one side, a node 64 pages or nodes).
 */
struct xe_engine_memory {
	uint64_t fixed_bytes; /* order pool, order index, sessions, books */
	uint64_t
	    directory_bytes; /* ladder directories of bands over 3,200 ticks (16 B per 64
			      * ticks a symbol, at most 2 x 16.5 KiB), allocated by add_symbol */
	uint64_t reserved_bytes; /* the ladder pools' address space */
	uint64_t ladder_bytes; /* pages and nodes in use now */
	uint64_t ladder_touched_bytes; /* pool memory ever used: the ladders' resident high mark */
	uint32_t order_bytes; /* one pooled order */
	uint32_t page_bytes;
	uint32_t node_bytes;
	uint32_t symbol_bytes; /* one book (every symbol id up to max_symbols has one) */
	uint32_t session_bytes; /* the engine's part of one session id */
	uint32_t pages_used, pages_max;
	uint32_t nodes_used, nodes_max;
	uint32_t pad;
};

#define XE_ENGINE_HAS_MEMORY 1 /* xe_engine_get_memory exists (tools built for older engines) */
void xe_engine_get_memory(const xe_engine *e, struct xe_engine_memory *out);

#ifdef __cplusplus
}
#endif

#endif /* XDPEX_ENGINE_H */
