/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MoldUDP64 packing: a run of message blocks (the encoder's batch, an XJ_FEED record's payload)
 * cut into downstream packets that each hold as many whole blocks as fit in the payload size,
 * numbered on from the run's first sequence; heartbeat and end-of-session packets; seeking to
 * a message inside a run (the rewind server answers from the middle of a record).
 */
#include <errno.h>
#include <string.h>

#include "xdpex_feed.h"

void xf_pack_init(struct xf_pack *k, const char session[XF_SESSION_LEN], uint64_t seq,
		  const void *blocks, size_t len, size_t max_payload)
{
	size_t floor = XF_MOLD_HDR_SIZE + XF_BLOCK_HDR + XF_MAX_MSG_SIZE;

	memcpy(k->session, session, XF_SESSION_LEN);
	k->p = blocks;
	k->end = k->p + len;
	k->seq = seq;
	k->max = max_payload ? max_payload : XF_MAX_PAYLOAD;
	if (k->max < floor)
		k->max = floor;
}

size_t xf_pack_next(struct xf_pack *k, uint8_t *out)
{
	const uint8_t *start = k->p, *p = k->p;
	size_t room = k->max - XF_MOLD_HDR_SIZE, len;
	uint16_t n = 0;

	while (p < k->end && n < XF_MOLD_MAX_COUNT) {
		size_t b = XF_BLOCK_HDR + (size_t)xf_get_be(p, 2);

		if (b > room)
			break;
		room -= b;
		p += b;
		n++;
	}
	if (!n)
		return 0;
	len = (size_t)(p - start);
	xf_mold_put_hdr(out, k->session, k->seq, n);
	memcpy(out + XF_MOLD_HDR_SIZE, start, len);
	k->p = p;
	k->seq += n;
	return XF_MOLD_HDR_SIZE + len;
}

size_t xf_pack_empty(uint8_t out[XF_MOLD_HDR_SIZE], const char session[XF_SESSION_LEN],
		     uint64_t next_seq, int end)
{
	xf_mold_put_hdr(out, session, next_seq, end ? XF_MOLD_END : XF_MOLD_HEARTBEAT);
	return XF_MOLD_HDR_SIZE;
}

long xf_blocks_seek(const uint8_t *blocks, size_t len, uint64_t first, uint32_t count, uint64_t seq)
{
	size_t off = 0;

	if (seq < first || seq - first >= count)
		return -ERANGE;
	for (uint64_t s = first; s < seq; s++) {
		if (len - off < XF_BLOCK_HDR)
			return -ERANGE;
		off += XF_BLOCK_HDR + (size_t)xf_get_be(blocks + off, 2);
		if (off > len)
			return -ERANGE;
	}
	return (long)off;
}
