// SPDX-License-Identifier: BSD-2-Clause
//
// xe_memory: what symbols and resting orders cost the engine, measured as the process's resident
// memory (VmRSS) at each step, so that any build of the engine can be compared (the old flat
// ladder too, built by make engine-base):
//   created   the engine (max_orders, max_symbols, 1 session), nothing configured;
//   symbols   N symbols with tick 1 and the band 1..B;
//   orders    M orders resting, random symbol and price (bids in the band's lower half, asks
//             in the upper half, so nothing trades; a fixed seed);
//   cancelled every order cancelled again.
// One JSON object on stdout.
//
// usage: xe_memory [--symbols N] [--band B] [--orders M] [--max-orders K]
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "xdpex/engine.h"

namespace
{

uint64_t rss()
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtoull(line + 6, nullptr, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

} // namespace

int main(int argc, char **argv)
{
	uint64_t symbols = 1000, band = 100000, orders = 100000, max_orders = 0;
	for (int i = 1; i < argc; i++) {
		uint64_t *to = nullptr;
		if (!strcmp(argv[i], "--symbols"))
			to = &symbols;
		else if (!strcmp(argv[i], "--band"))
			to = &band;
		else if (!strcmp(argv[i], "--orders"))
			to = &orders;
		else if (!strcmp(argv[i], "--max-orders"))
			to = &max_orders;
		if (!to || i + 1 >= argc) {
			fprintf(stderr, "usage: xe_memory [--symbols N] [--band B] [--orders M] "
					"[--max-orders K]\n");
			return 2;
		}
		*to = strtoull(argv[++i], nullptr, 10);
	}
	if (!max_orders)
		max_orders = orders;
	if (!symbols || symbols > (1u << 20) || band < 4 || !max_orders || orders > max_orders ||
	    max_orders > (1u << 28)) {
		fprintf(stderr,
			"xe_memory: need 1..2^20 symbols, a band >= 4, orders <= max orders "
			"<= 2^28\n");
		return 2;
	}
	uint64_t r0 = rss();
	xe_engine_config cfg{};
	cfg.max_orders = (uint32_t)max_orders;
	cfg.max_symbols = (uint32_t)symbols;
	cfg.max_sessions = 1;
	xe_engine *e = xe_engine_create(&cfg);
	if (!e) {
		fprintf(stderr, "xe_memory: cannot create the engine\n");
		return 1;
	}
	std::unique_ptr<xe_event[]> ev(new xe_event[xe_engine_max_events(e)]);
	uint64_t r1 = rss();
	for (uint32_t s = 1; s <= symbols; s++) {
		xe_symbol_config c{};
		c.symbol_id = s;
		c.lot_size = 1;
		c.tick_size = 1;
		c.band_low = 1;
		c.band_high = (int64_t)band;
		int rc = xe_engine_add_symbol(e, &c);
		if (rc) {
			fprintf(stderr, "xe_memory: symbol %u refused: %d\n", s, rc);
			return 1;
		}
	}
	uint64_t r2 = rss();
	uint64_t seed = 42, half = band / 2;
	for (uint64_t i = 0; i < orders; i++) {
		xe_order o{};
		o.session_id = 1;
		o.symbol_id = (uint32_t)(1 + splitmix(&seed) % symbols);
		o.cl_ord_id = i + 1;
		o.side = splitmix(&seed) & 1 ? XE_BUY : XE_SELL;
		uint64_t off = splitmix(&seed) % (half - 1);
		o.price = (int64_t)(o.side == XE_BUY ? 1 + off : half + 1 + off);
		o.qty = 1;
		o.ord_type = XE_ORD_LIMIT;
		o.tif = XE_TIF_GTC;
		if (xe_engine_new_order(e, &o, ev.get()) != 1 || ev[0].type != XE_EV_ACCEPTED) {
			fprintf(stderr, "xe_memory: order %" PRIu64 " not accepted\n", i + 1);
			return 1;
		}
	}
	xe_engine_stats st;
	xe_engine_get_stats(e, &st);
	uint64_t r3 = rss();
	for (uint64_t i = 0; i < orders; i++)
		xe_engine_cancel(e, 1, i + 1, ev.get());
	uint64_t r4 = rss();
	printf("{\"symbols\":%" PRIu64 ",\"band\":%" PRIu64 ",\"orders\":%" PRIu64
	       ",\"max_orders\":%" PRIu64 ",\"levels\":%" PRIu64 ",",
	       symbols, band, orders, max_orders, st.levels);
	printf("\"rss_start\":%" PRIu64 ",\"rss_created\":%" PRIu64 ",\"rss_symbols\":%" PRIu64
	       ",\"rss_orders\":%" PRIu64 ",\"rss_cancelled\":%" PRIu64,
	       r0, r1, r2, r3, r4);
#ifdef XE_ENGINE_HAS_MEMORY
	xe_engine_memory m;
	xe_engine_get_memory(e, &m);
	printf(",\"ladder_bytes_after_cancel\":%" PRIu64 ",\"ladder_touched_bytes\":%" PRIu64
	       ",\"directory_bytes\":%" PRIu64,
	       m.ladder_bytes, m.ladder_touched_bytes, m.directory_bytes);
#endif
	printf("}\n");
	xe_engine_destroy(e);
	return 0;
}
