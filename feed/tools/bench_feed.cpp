// SPDX-License-Identifier: BSD-2-Clause
//
// bench_feed: what producing the feed costs the shard, on the engine benchmark stream
// (data/orders-s42-1m.csv.gz, engine/tools/stream.hpp). Runs, alternating, on fresh engines:
//   - engine: every timed message through the C ABI, as xe_bench does;
//   - engine + feed: the same, each call's events through xf_enc_events(), the batch (every
//     --batch messages, 352 = 16 orders x 22 datagrams by default, a full receive batch) packed
//     into MoldUDP64 packets and committed, i.e. everything the shard adds except the journal
//     copy and the send.
// Reports the median ns (of the thread's CPU time) per message of each and the difference, feed
// messages and packets per order. No network, no journal: the wire benchmark measures those with
// the producer in xdpexd.
//
// usage: bench_feed STREAM [--runs N] [--batch N] [--mode both|engine|feed] [--json]
#include <time.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "stream.hpp"

extern "C" {
#include "xdpex_feed.h"
}

namespace
{

// The thread's own CPU time: on a shared machine, preemption does not count against either side.
uint64_t now_ns()
{
	timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct Run {
	double ns_per_msg;
	uint64_t feed_msgs, packets;
};

Run run(const xe::Stream &s, bool feed, uint32_t batch)
{
	xe_engine *e = xe::make_engine(s, 1u << 21);
	std::vector<xe_event> ev(xe_engine_max_events(e));
	xf_enc f;
	xf_pack k;
	static uint8_t pkt[XF_MAX_PAYLOAD];
	char session[XF_SESSION_LEN];
	uint64_t packets = 0, sink = 0;

	xf_enc_init(&f, 1, 0);
	xf_session_name(session, nullptr, 0);
	for (size_t i = 0; i < s.prefill; i++) {
		uint32_t n = xe::apply(e, s.msgs[i], ev.data());
		if (feed)
			xf_enc_events(&f, ev.data(), n, nullptr, 1);
	}
	xf_enc_commit(&f);
	uint64_t base = f.msgs, t0 = now_ns();
	for (size_t i = s.prefill; i < s.msgs.size(); i++) {
		uint32_t n = xe::apply(e, s.msgs[i], ev.data());
		sink += n;
		if (!feed)
			continue;
		xf_enc_events(&f, ev.data(), n, nullptr, 1);
		if ((i - s.prefill + 1) % batch == 0 || i + 1 == s.msgs.size()) {
			size_t len;
			xf_pack_init(&k, session, f.first_seq, f.buf, f.len, 0);
			while ((len = xf_pack_next(&k, pkt)))
				packets++, sink += pkt[len - 1];
			xf_enc_commit(&f);
		}
	}
	uint64_t t1 = now_ns();
	Run r{(double)(t1 - t0) / (double)(s.msgs.size() - s.prefill), f.msgs - base, packets};
	if (sink == 42)
		std::printf(" ");
	xf_enc_free(&f);
	xe_engine_destroy(e);
	return r;
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 2) {
		std::fprintf(stderr, "usage: bench_feed STREAM [--runs N] [--batch N] [--json]\n");
		return 2;
	}
	int runs = 5;
	uint32_t batch = 352;
	bool json = false;
	const char *mode = "both";
	for (int i = 2; i < argc; i++) {
		if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = std::atoi(argv[++i]);
		else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = (uint32_t)std::atoi(argv[++i]);
		else if (!std::strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!std::strcmp(argv[i], "--json"))
			json = true;
	}
	xe::Stream s;
	std::string err;
	if (!xe::load_stream(argv[1], &s, &err)) {
		std::fprintf(stderr, "bench_feed: %s\n", err.c_str());
		return 1;
	}
	std::vector<double> plain, fed;
	Run last{};
	for (int r = 0; r < runs; r++) {
		// --mode engine / feed: one side only (for perf stat, counting instructions).
		plain.push_back(std::strcmp(mode, "feed") ? run(s, false, batch).ns_per_msg : 0);
		last = std::strcmp(mode, "engine") ? run(s, true, batch) : Run{0, 0, 0};
		fed.push_back(last.ns_per_msg);
	}
	size_t timed = s.msgs.size() - s.prefill;
	double a = median(plain), b = median(fed);
	if (json)
		std::printf(
		    "{\"messages\": %zu, \"runs\": %d, \"batch\": %u, \"engine_ns_per_msg\": "
		    "%.1f, \"engine_feed_ns_per_msg\": %.1f, \"feed_ns_per_msg\": %.1f, "
		    "\"feed_msgs_per_order\": %.3f, \"packets_per_order\": %.4f}\n",
		    timed, runs, batch, a, b, b - a, (double)last.feed_msgs / (double)timed,
		    (double)last.packets / (double)timed);
	else
		std::printf(
		    "bench_feed: %zu messages, %d runs: engine %.1f ns/msg, engine + feed %.1f "
		    "ns/msg (+%.1f ns, x%.2f); %.3f feed messages and %.4f packets per order\n",
		    timed, runs, a, b, b - a, b / a, (double)last.feed_msgs / (double)timed,
		    (double)last.packets / (double)timed);
	return 0;
}
