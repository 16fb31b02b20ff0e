// SPDX-License-Identifier: BSD-2-Clause
//
// xe_replay: applies a benchmark stream (data/README.md format, .csv or .csv.gz) to a
// fresh engine and writes every fill, in the order the trades happened, as
// `taker_oid,maker_oid,qty,price` after one header line. The summary (messages, fills, rejects,
// resting orders, state hash) goes to stderr. Run by `xdpex engine replay`.
//
// usage: xe_replay STREAM FILLS_OUT [--max-orders N]
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "stream.hpp"

int main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--max-orders"))) {
		fprintf(stderr, "usage: xe_replay STREAM FILLS_OUT [--max-orders N]\n");
		return 2;
	}
	uint32_t max_orders = argc == 5 ? (uint32_t)strtoul(argv[4], nullptr, 10) : 1u << 20;
	xe::Stream s;
	std::string err;
	if (!xe::load_stream(argv[1], &s, &err)) {
		fprintf(stderr, "xe_replay: %s\n", err.c_str());
		return 1;
	}
	xe_engine *e = xe::make_engine(s, max_orders);
	if (!e) {
		fprintf(stderr, "xe_replay: cannot create the engine (max_orders %u)\n",
			max_orders);
		return 1;
	}
	FILE *out = strcmp(argv[2], "-") ? fopen(argv[2], "w") : stdout;
	if (!out) {
		fprintf(stderr, "xe_replay: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	static char obuf[1 << 20];
	setvbuf(out, obuf, _IOFBF, sizeof(obuf));
	std::unique_ptr<xe_event[]> ev(new xe_event[xe_engine_max_events(e)]);
	fputs("taker_oid,maker_oid,qty,price\n", out);
	uint64_t fills = 0, rejects = 0;
	for (const xe::Msg &m : s.msgs) {
		uint32_t n = xe::apply(e, m, ev.get());
		for (uint32_t i = 0; i < n; i++) {
			const xe_event &a = ev[i];
			if (a.type == XE_EV_REJECTED) {
				rejects++;
			} else if (a.type == XE_EV_FILL && a.liquidity == XE_LIQ_REMOVED &&
				   i + 1 < n) {
				const xe_event &r = ev[++i];
				fprintf(out, "%" PRIu64 ",%" PRIu64 ",%u,%" PRId64 "\n",
					a.cl_ord_id, r.cl_ord_id, a.qty, a.price);
				fills++;
			}
		}
	}
	if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) {
		fprintf(stderr, "xe_replay: %s: write failed: %s\n", argv[2], strerror(errno));
		return 1;
	}
	xe_engine_stats st;
	xe_engine_get_stats(e, &st);
	fprintf(stderr,
		"messages %zu fills %" PRIu64 " rejects %" PRIu64 " resting %" PRIu64
		" levels %" PRIu64 " state_hash %016" PRIx64 "\n",
		s.msgs.size(), fills, rejects, st.resting_orders, st.levels,
		xe_engine_state_hash(e));
	xe_engine_destroy(e);
	return 0;
}
