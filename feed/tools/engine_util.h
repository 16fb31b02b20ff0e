/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the feed's engine-driven tools share (test_feed, xdpex-feedsim): a seeded generator of mixed
 * order flow run through the real engine (limit DAY/GTC, IOC, FOK, market, post-only, cancels,
 * replaces down/up/away/through, mass cancels, halts and resumes, the day expiry, over sessions
 * with every self-trade prevention mode), each engine call's events handed to the feed encoder
 * the way the shard hands them; and the engine's books in the canonical dump format of
 * xf_book_dump() and compared with a book builder order for order.
 */
#ifndef XDPEX_FEED_ENGINE_UTIL_H
#define XDPEX_FEED_ENGINE_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "xdpex_feed.h"

struct eu_gen;

struct eu_gen_opts {
	uint64_t seed;
	uint32_t symbols; /* ids 1..symbols */
	uint32_t sessions; /* ids 1..sessions, STP modes cycling none/newest/oldest/both */
	uint32_t max_orders; /* engine pool */
	uint32_t target_resting; /* cancels get likelier above this many resting orders */
	int halts; /* halt/resume and the day expiry among the operations */
};

struct eu_counts {
	uint64_t calls, news, cancels, replaces, mass, halts, expiries, events, rejects;
};

struct eu_gen *eu_gen_new(const struct eu_gen_opts *o);
void eu_gen_free(struct eu_gen *g);
xe_engine *eu_gen_engine(struct eu_gen *g);
/* One operation: an engine call (or a halt/resume) with its feed messages appended to f at ts.
 * Returns the messages appended, or -errno from the encoder. */
int eu_gen_step(struct eu_gen *g, struct xf_enc *f, uint64_t ts);
const struct eu_counts *eu_gen_counts(const struct eu_gen *g);
uint32_t eu_gen_symbols(const struct eu_gen *g);
int eu_gen_halted(const struct eu_gen *g, uint32_t symbol_id);

/* The engine's books as xf_book_dump() prints a book built from the feed. 0 or -EIO/-ENOMEM. */
int eu_engine_dump(struct eu_gen *g, FILE *out);
/* 0 when the book builder holds exactly the engine's orders (ids, prices, open quantities, time
 * priority, halts); otherwise 1 with the first difference in err. */
int eu_compare(struct eu_gen *g, const struct xf_book *b, char *err, size_t errlen);

/* splitmix64: the tools' deterministic randomness. */
static inline uint64_t eu_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

#endif /* XDPEX_FEED_ENGINE_UTIL_H */
