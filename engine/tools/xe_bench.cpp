// SPDX-License-Identifier: BSD-2-Clause
//
// xe_bench: the engine benchmark behind `xdpex engine bench`. Parses the whole stream first, then
// for each run builds a fresh engine, applies the prefill untimed and times the timed messages
// through the C ABI, exactly as the dataplane calls it:
//   - throughput: 5 runs with no per-message timer, one clock read around the loop; the median
//     msgs/s is reported with every run's figure, and also per second of the thread's own CPU
//     time (what the figure would be without preemption on a shared machine);
//   - latency: 3 more runs reading the TSC (rdtscp-ordered, calibrated against CLOCK_MONOTONIC)
//     around every message; percentiles overall and per message type are the median over the
//     runs. The figures include the timer's own cost, reported as timer_overhead_ns.
// --deep F puts prices on F-tick steps: the same orders on deeper queues (stream.hpp deepen).
// --synthetic NAME runs a generated stream instead of a file (deep-book, wide-sweep: stream.hpp).
// Output: text, or one JSON object with --json.
//
// usage: xe_bench STREAM|--synthetic NAME [--json] [--deep F] [--max-orders N] [--runs N]
#include <sys/resource.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "stream.hpp"

namespace
{

uint64_t now_ns(clockid_t clk = CLOCK_MONOTONIC)
{
	timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

inline uint64_t tsc()
{
	unsigned aux;
	uint64_t t = __rdtscp(&aux);
	_mm_lfence();
	return t;
}

double tsc_per_ns()
{
	uint64_t n0 = now_ns(), t0 = tsc();
	while (now_ns() - n0 < 100000000ull)
		;
	uint64_t n1 = now_ns(), t1 = tsc();
	return (double)(t1 - t0) / (double)(n1 - n0);
}

struct Pct {
	double p50 = 0, p99 = 0, p999 = 0, max = 0;
	size_t count = 0;
};

Pct percentiles(std::vector<uint32_t> &v, double ns_per_tick)
{
	Pct p;
	p.count = v.size();
	if (v.empty())
		return p;
	auto at = [&](double q) {
		size_t k = std::min(v.size() - 1, (size_t)(q * (double)v.size()));
		std::nth_element(v.begin(), v.begin() + (long)k, v.end());
		return v[k] * ns_per_tick;
	};
	p.p50 = at(0.50);
	p.p99 = at(0.99);
	p.p999 = at(0.999);
	p.max = *std::max_element(v.begin(), v.end()) * ns_per_tick;
	return p;
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

struct RunEnd {
	xe_engine_stats st;
	uint64_t hash;
};

// Fresh engine, untimed prefill; returns the engine ready for the timed part.
xe_engine *prepare(const xe::Stream &s, uint32_t max_orders, xe_event *ev)
{
	xe_engine *e = xe::make_engine(s, max_orders);
	if (!e)
		return nullptr;
	for (size_t i = 0; i < s.prefill; i++)
		xe::apply(e, s.msgs[i], ev);
	return e;
}

} // namespace

int main(int argc, char **argv)
{
	const char *path = nullptr, *synthetic = nullptr;
	bool json = false;
	uint32_t deep = 1, max_orders = 1u << 18, runs = 5, lat_runs = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--deep") && i + 1 < argc)
			deep = (uint32_t)strtoul(argv[++i], nullptr, 10);
		else if (!strcmp(argv[i], "--max-orders") && i + 1 < argc)
			max_orders = (uint32_t)strtoul(argv[++i], nullptr, 10);
		else if (!strcmp(argv[i], "--synthetic") && i + 1 < argc)
			synthetic = argv[++i];
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = (uint32_t)strtoul(argv[++i], nullptr, 10);
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr,
				"usage: xe_bench STREAM|--synthetic deep-book|wide-sweep [--json] "
				"[--deep F] [--max-orders N] [--runs N]\n");
			return 2;
		}
	}
	if (!path == !synthetic || runs == 0 || deep == 0 || deep > 1000) {
		fprintf(stderr,
			"xe_bench: need a stream or --synthetic NAME (not both), --runs >= 1 "
			"and --deep 1..1000\n");
		return 2;
	}
	xe::Stream s;
	std::string err, label = synthetic ? std::string("synthetic:") + synthetic : path;
	path = label.c_str();
	if (synthetic && !xe::make_synthetic(synthetic, &s)) {
		fprintf(stderr, "xe_bench: unknown synthetic stream %s (deep-book, wide-sweep)\n",
			synthetic);
		return 2;
	}
	if (!synthetic && !xe::load_stream(path, &s, &err)) {
		fprintf(stderr, "xe_bench: %s\n", err.c_str());
		return 1;
	}
	xe::deepen(&s, deep);
	const xe::Msg *timed = s.msgs.data() + s.prefill;
	size_t n = s.msgs.size() - s.prefill;

	xe_engine *probe = xe::make_engine(s, max_orders);
	if (!probe) {
		fprintf(stderr, "xe_bench: cannot create the engine (max_orders %u)\n", max_orders);
		return 1;
	}
	std::unique_ptr<xe_event[]> ev(new xe_event[xe_engine_max_events(probe)]);
	xe_engine_destroy(probe);

	// Depth at the start of the timed part (after the prefill).
	xe_engine *e0 = prepare(s, max_orders, ev.get());
	xe_engine_stats st0;
	xe_engine_get_stats(e0, &st0);
	xe_engine_destroy(e0);

	std::vector<double> rates, cpu_rates;
	std::vector<RunEnd> ends;
	for (uint32_t r = 0; r < runs; r++) {
		xe_engine *e = prepare(s, max_orders, ev.get());
		uint64_t c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		uint64_t t0 = now_ns();
		for (size_t i = 0; i < n; i++)
			xe::apply(e, timed[i], ev.get());
		uint64_t t1 = now_ns();
		uint64_t c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		rates.push_back((double)n * 1e9 / (double)(t1 - t0));
		cpu_rates.push_back((double)n * 1e9 / (double)(c1 - c0));
		RunEnd end;
		xe_engine_get_stats(e, &end.st);
		end.hash = xe_engine_state_hash(e);
		ends.push_back(end);
		xe_engine_destroy(e);
	}

	double ns_per_tick = 1.0 / tsc_per_ns();
	std::vector<uint32_t> all(n);
	std::vector<uint32_t> by_type[3];
	const char *type_names[3] = {"new", "cancel", "ioc"};
	std::vector<Pct> lat_all;
	std::vector<Pct> lat_type[3];
	for (uint32_t r = 0; r < lat_runs; r++) {
		xe_engine *e = prepare(s, max_orders, ev.get());
		for (size_t i = 0; i < n; i++) {
			uint64_t a = tsc();
			xe::apply(e, timed[i], ev.get());
			uint64_t b = tsc();
			all[i] = (uint32_t)std::min<uint64_t>(b - a, UINT32_MAX);
		}
		RunEnd end;
		xe_engine_get_stats(e, &end.st);
		end.hash = xe_engine_state_hash(e);
		ends.push_back(end);
		xe_engine_destroy(e);
		for (auto &v : by_type)
			v.clear();
		for (size_t i = 0; i < n; i++)
			by_type[timed[i].type == 'N'   ? 0
				: timed[i].type == 'C' ? 1
						       : 2]
			    .push_back(all[i]);
		std::vector<uint32_t> copy = all;
		lat_all.push_back(percentiles(copy, ns_per_tick));
		for (int t = 0; t < 3; t++)
			lat_type[t].push_back(percentiles(by_type[t], ns_per_tick));
	}
	// Timer cost: back-to-back reads.
	std::vector<uint32_t> ovh(100000);
	for (auto &o : ovh) {
		uint64_t a = tsc();
		uint64_t b = tsc();
		o = (uint32_t)(b - a);
	}
	Pct overhead = percentiles(ovh, ns_per_tick);

	bool deterministic = true;
	for (const RunEnd &x : ends)
		deterministic =
		    deterministic && x.hash == ends[0].hash && x.st.fills == ends[0].st.fills;
	auto med = [](const std::vector<Pct> &v, double Pct::*f) {
		std::vector<double> x;
		for (const Pct &p : v)
			x.push_back(p.*f);
		return median(x);
	};
	rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	uint64_t rss = (uint64_t)ru.ru_maxrss * 1024;
	const xe_engine_stats &st = ends[0].st;
	double depth0 = st0.levels ? (double)st0.resting_orders / (double)st0.levels : 0;
	double depth1 = st.levels ? (double)st.resting_orders / (double)st.levels : 0;

	if (json) {
		std::string jpath;
		for (const char *c = path; *c; c++) {
			if (*c == '"' || *c == '\\')
				jpath += '\\';
			jpath += (unsigned char)*c < 0x20 ? '?' : *c;
		}
		printf("{\"stream\":\"%s\",\"deep_factor\":%u,\"messages\":%zu,\"prefill\":%zu,",
		       jpath.c_str(), deep, n, s.prefill);
		printf("\"runs\":%u,\"runs_msgs_per_s\":[", runs);
		for (size_t i = 0; i < rates.size(); i++)
			printf("%s%.0f", i ? "," : "", rates[i]);
		printf("],\"msgs_per_s\":%.0f,\"cpu_msgs_per_s\":%.0f,", median(rates),
		       median(cpu_rates));
		printf("\"latency_runs\":%u,\"p50_ns\":%.1f,\"p99_ns\":%.1f,\"p999_ns\":%.1f,"
		       "\"max_ns\":%.1f,",
		       lat_runs, med(lat_all, &Pct::p50), med(lat_all, &Pct::p99),
		       med(lat_all, &Pct::p999), med(lat_all, &Pct::max));
		printf("\"per_type\":{");
		for (int t = 0; t < 3; t++)
			printf("%s\"%s\":{\"count\":%zu,\"p50_ns\":%.1f,\"p99_ns\":%.1f,"
			       "\"p999_ns\":%.1f}",
			       t ? "," : "", type_names[t], lat_type[t][0].count,
			       med(lat_type[t], &Pct::p50), med(lat_type[t], &Pct::p99),
			       med(lat_type[t], &Pct::p999));
		printf("},\"timer_overhead_ns\":%.1f,\"tsc_ghz\":%.4f,", overhead.p50,
		       1.0 / ns_per_tick);
		printf("\"resting_orders_start\":%" PRIu64 ",\"levels_start\":%" PRIu64
		       ",\"orders_per_level_start\":%.1f,",
		       st0.resting_orders, st0.levels, depth0);
		printf("\"resting_orders\":%" PRIu64 ",\"levels\":%" PRIu64
		       ",\"orders_per_level\":%.1f,\"fills\":%" PRIu64 ",",
		       st.resting_orders, st.levels, depth1, st.fills);
		printf("\"state_hash\":\"%016" PRIx64
		       "\",\"deterministic\":%s,\"rss_bytes\":%" PRIu64 "}\n",
		       ends[0].hash, deterministic ? "true" : "false", rss);
	} else {
		printf("stream      %s (deep factor %u): %zu timed messages after %zu prefill\n",
		       path, deep, n, s.prefill);
		printf("throughput  %.2f M msgs/s (median of %u runs:", median(rates) / 1e6, runs);
		for (double r : rates)
			printf(" %.2f", r / 1e6);
		printf("); %.2f M msgs/s of thread CPU time\n", median(cpu_rates) / 1e6);
		printf("latency     p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns  max %.0f ns "
		       "(median of %u runs, timer overhead %.0f ns included)\n",
		       med(lat_all, &Pct::p50), med(lat_all, &Pct::p99), med(lat_all, &Pct::p999),
		       med(lat_all, &Pct::max), lat_runs, overhead.p50);
		for (int t = 0; t < 3; t++)
			printf("  %-8s  n %-8zu p50 %.0f ns  p99 %.0f ns  p99.9 %.0f ns\n",
			       type_names[t], lat_type[t][0].count, med(lat_type[t], &Pct::p50),
			       med(lat_type[t], &Pct::p99), med(lat_type[t], &Pct::p999));
		printf("book        start %" PRIu64 " orders on %" PRIu64 " levels (%.1f a level), "
		       "end %" PRIu64 " orders on %" PRIu64 " levels (%.1f a level)\n",
		       st0.resting_orders, st0.levels, depth0, st.resting_orders, st.levels,
		       depth1);
		printf("fills       %" PRIu64 "  state hash %016" PRIx64 " (%s across runs)\n",
		       st.fills, ends[0].hash, deterministic ? "identical" : "DIFFERENT");
		printf("peak RSS    %.1f MiB\n", (double)rss / 1048576.0);
	}
	return deterministic ? 0 : 1;
}
