/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Answers held back until a standby has the journal records of their batch (--durability
 * replicated): a ring of datagram copies and a ring of batches over it, owned by the shard thread.
 * The queue thread does not wait for the acknowledgement: it keeps the batch here and goes on with
 * the next one; shard.c releases batches in order as the acknowledgements arrive.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "xdpexd.h"

struct xd_held {
	struct xd_txd *slot;
	uint32_t cap, head,
	    tail; /* datagrams: [head, tail), counters mod 2^32, index & (cap - 1) */
	struct xd_held_batch *b;
	uint32_t bcap, bhead, btail;
};

struct xd_held *xd_held_new(uint32_t cap, uint32_t batches)
{
	struct xd_held *h = calloc(1, sizeof(*h));

	if (!h || (cap & (cap - 1)) || (batches & (batches - 1)))
		goto fail;
	h->slot = malloc((size_t)cap * sizeof(*h->slot));
	h->b = malloc((size_t)batches * sizeof(*h->b));
	if (!h->slot || !h->b)
		goto fail;
	h->cap = cap;
	h->bcap = batches;
	return h;
fail:
	xd_held_free(h);
	return NULL;
}

void xd_held_free(struct xd_held *h)
{
	if (!h)
		return;
	free(h->slot);
	free(h->b);
	free(h);
}

bool xd_held_room(const struct xd_held *h, uint32_t n)
{
	return h->tail - h->head + n <= h->cap && h->btail - h->bhead < h->bcap;
}

uint32_t xd_held_datagrams(const struct xd_held *h)
{
	return h->tail - h->head;
}

void xd_held_push(struct xd_held *h, const struct xd_txd *tx, uint32_t n,
		  const struct xd_held_batch *b)
{
	struct xd_held_batch *nb = &h->b[h->btail++ & (h->bcap - 1)];

	*nb = *b;
	nb->n = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (!tx[i].send)
			continue;
		/* The header fields and the datagram's bytes, not the whole slot. */
		memcpy(&h->slot[h->tail++ & (h->cap - 1)], &tx[i],
		       offsetof(struct xd_txd, buf) + tx[i].len);
		nb->n++;
	}
}

const struct xd_held_batch *xd_held_oldest(const struct xd_held *h)
{
	return h->bhead == h->btail ? NULL : &h->b[h->bhead & (h->bcap - 1)];
}

void xd_held_runs(const struct xd_held *h, const struct xd_txd **r1, uint32_t *n1,
		  const struct xd_txd **r2, uint32_t *n2)
{
	uint32_t n = h->b[h->bhead & (h->bcap - 1)].n, at = h->head & (h->cap - 1);

	*r1 = &h->slot[at];
	*n1 = n < h->cap - at ? n : h->cap - at;
	*r2 = h->slot;
	*n2 = n - *n1;
}

void xd_held_pop(struct xd_held *h)
{
	h->head += h->b[h->bhead & (h->bcap - 1)].n;
	h->bhead++;
}
