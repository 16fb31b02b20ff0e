/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The gateway latency histograms of a shard (xdpexd.h, struct xd_hist): fixed bucket bounds from
 * a quarter of a microsecond to 100 ms, dense where a healthy gateway lives (1 to 50 us), counted
 * without allocation on the hot path and handed to the control socket's `stats` as JSON (the
 * control plane exports them as the Prometheus histogram xdpex_gateway_latency_seconds).
 */
#include <jansson.h>

#include "xdpexd.h"

const uint64_t xd_lat_bounds_ns[XD_LAT_BUCKETS] = {
    250,   500,	  1000,	  2000,	  3000,	  5000,	   7500,    10000,   15000,    20000,
    30000, 50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000, 100000000,
};

const char *const xd_lat_stage_names[XD_LAT_STAGES] = {"total", "engine", "journal", "replication",
						       "transmit"};

void xd_hist_add(struct xd_hist *h, uint64_t ns, uint64_t weight)
{
	unsigned i = 0;

	while (i < XD_LAT_BUCKETS && ns > xd_lat_bounds_ns[i])
		i++;
	h->n[i] += weight;
	h->count += weight;
	h->sum_ns += ns * weight;
}

json_t *xd_hist_json(const struct xd_hist *h)
{
	json_t *out = json_object(), *bounds = json_array();

	for (unsigned i = 0; i < XD_LAT_BUCKETS; i++)
		json_array_append_new(bounds, json_integer((json_int_t)xd_lat_bounds_ns[i]));
	json_object_set_new(out, "bounds_ns", bounds);
	for (unsigned s = 0; s < XD_LAT_STAGES; s++) {
		json_t *b = json_array();

		for (unsigned i = 0; i <= XD_LAT_BUCKETS; i++)
			json_array_append_new(b, json_integer((json_int_t)h[s].n[i]));
		json_object_set_new(out, xd_lat_stage_names[s],
				    json_pack("{s:o,s:I,s:I}", "buckets", b, "count",
					      (json_int_t)h[s].count, "sum_ns",
					      (json_int_t)h[s].sum_ns));
	}
	return out;
}
