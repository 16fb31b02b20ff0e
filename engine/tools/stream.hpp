// SPDX-License-Identifier: BSD-2-Clause
//
// The benchmark order stream of data/README.md (`phase,seq,type,sym,oid,side,price,qty`,
// plain or gzip-compressed), parsed fully into memory before anything is timed, and the engine
// set-up both native tools share: one session, symbol ids = stream sym + 1, tick 1, lot 1, a band
// around the prices the stream uses, cl_ord_id = the stream's oid.
#ifndef XE_TOOLS_STREAM_HPP
#define XE_TOOLS_STREAM_HPP

#include <cstdint>
#include <string>
#include <vector>

#include "xdpex/engine.h"

namespace xe
{

struct Msg {
	uint64_t oid;
	int64_t price;
	uint32_t qty;
	uint32_t sym; // engine symbol id (stream sym + 1)
	char type; // 'N' new GTC limit, 'C' cancel, 'I' IOC limit
	uint8_t side; // XE_BUY / XE_SELL
	bool timed; // phase T
};

struct Stream {
	std::vector<Msg> msgs;
	size_t prefill = 0; // the first `prefill` messages are phase P
	uint32_t symbols = 0;
	int64_t min_price = 0, max_price = 0;
	uint64_t max_oid = 0;
};

// Reads `path` (.csv or .csv.gz). On error returns false with a message naming the line and field.
bool load_stream(const std::string &path, Stream *out, std::string *err);

// Deep-queue variant: prices coarsened to multiples of `factor` ticks (resting orders rounded
// away from the other side, IOCs towards it), so the same orders sit on `factor` times fewer,
// deeper levels. The number of live orders, and so the memory the engine touches, stays that of
// the plain stream: what changes is only how deep each queue is.
void deepen(Stream *s, uint32_t factor);

// Synthetic streams generated from a fixed seed (the same messages on every host and build):
//   deep-book   one symbol, 150,000 orders resting over 20,000 ticks a side, then new orders
//               and cancels anywhere in that depth and small IOCs at the top (45/45/10 %);
//   wide-sweep  one symbol, 2 orders on every 3rd tick for 2,000 levels a side, then IOCs
//               each sweeping 50..500 levels and the orders that refill them.
// Both have 1,000,000 timed messages. False for an unknown name.
bool make_synthetic(const std::string &name, Stream *out);

// An engine configured for the stream, or nullptr.
xe_engine *make_engine(const Stream &s, uint32_t max_orders);

// Applies one message; returns the number of events written.
inline uint32_t apply(xe_engine *e, const Msg &m, xe_event *ev)
{
	if (m.type == 'C')
		return xe_engine_cancel(e, 1, m.oid, ev);
	xe_order o;
	o.session_id = 1;
	o.symbol_id = m.sym;
	o.cl_ord_id = m.oid;
	o.price = m.price;
	o.qty = m.qty;
	o.side = m.side;
	o.ord_type = XE_ORD_LIMIT;
	o.tif = m.type == 'I' ? XE_TIF_IOC : XE_TIF_GTC;
	o.pad = 0;
	return xe_engine_new_order(e, &o, ev);
}

} // namespace xe

#endif // XE_TOOLS_STREAM_HPP
