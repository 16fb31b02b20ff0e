/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Proves the static engine library links into a plain C program (gcc, -lstdc++), as the dataplane
 * uses it: create an engine, add a symbol, cross two orders, check the fill pair and the state.
 */
#include <stdio.h>
#include <stdlib.h>

#include "xdpex/engine.h"

int main(void)
{
	struct xe_engine_config cfg = {.max_orders = 16, .max_symbols = 1, .max_sessions = 2};
	struct xe_symbol_config sym = {
	    .symbol_id = 1, .lot_size = 1, .tick_size = 1, .band_low = 1, .band_high = 1000};
	xe_engine *e = xe_engine_create(&cfg);
	if (!e || xe_engine_add_symbol(e, &sym) != 0) {
		fprintf(stderr, "engine setup failed\n");
		return 1;
	}
	struct xe_event *ev = calloc(xe_engine_max_events(e), sizeof(*ev));
	struct xe_order sell = {.session_id = 1,
				.symbol_id = 1,
				.cl_ord_id = 1,
				.price = 100,
				.qty = 10,
				.side = XE_SELL,
				.ord_type = XE_ORD_LIMIT,
				.tif = XE_TIF_GTC};
	struct xe_order buy = sell;
	buy.session_id = 2;
	buy.side = XE_BUY;
	buy.qty = 4;
	int ok = ev && xe_engine_new_order(e, &sell, ev) == 1 && ev[0].type == XE_EV_ACCEPTED &&
		 xe_engine_new_order(e, &buy, ev) == 3 && ev[1].type == XE_EV_FILL &&
		 ev[1].qty == 4 && ev[2].leaves == 6;
	struct xe_engine_stats st;
	xe_engine_get_stats(e, &st);
	ok = ok && st.resting_orders == 1 && st.fills == 1;
	free(ev);
	xe_engine_destroy(e);
	printf("static library from C: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
