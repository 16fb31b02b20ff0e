/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Log-linear latency histogram for xdpex-loadgen: values below 64 have their own bucket, above
 * that each power of two is split into 64 buckets, so any percentile is within 1.6 % of the
 * true value. Fixed size, no allocation; adding a sample is a few instructions.
 */
#include "loadgen.h"

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	unsigned sub = (unsigned)(v >> shift) & ((1u << HIST_SUB_BITS) - 1);
	return ((shift + 1) << HIST_SUB_BITS) + sub;
}

/* Upper middle of a bucket: the value reported for samples that fell into it. */
static uint64_t value_of(unsigned b)
{
	if (b < (1u << HIST_SUB_BITS))
		return b;
	unsigned shift = (b >> HIST_SUB_BITS) - 1;
	uint64_t sub = b & ((1u << HIST_SUB_BITS) - 1);
	uint64_t lo = ((1ull << HIST_SUB_BITS) | sub) << shift;
	return lo + ((1ull << shift) >> 1);
}

void hist_add(struct hist *h, uint64_t v)
{
	unsigned b = bucket_of(v);
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	h->b[b]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

uint64_t hist_pct(const struct hist *h, double p)
{
	if (!h->count)
		return 0;
	uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->b[b];
		if (seen > rank) {
			uint64_t v = value_of(b);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
