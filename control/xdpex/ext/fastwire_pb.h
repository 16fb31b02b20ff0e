/* The protobuf half of xdpex._fastwire, without Python: SubmitOrdersRequest and
 * OrderStreamRequest (control/xdpex/proto/orderentry.proto) decoded into wire orders, and the
 * varint writer of the answers. Kept apart so the libFuzzer harness (tests/fuzz) runs the very
 * parser the control plane runs.
 *
 * xf_pb_orders() accepts what protobuf itself would decode to the same orders and nothing it
 * could read differently: on anything else (a group, a wire type other than the field's, a varint
 * longer than ten bytes, a length past the end, an enum value or field value the control plane
 * refuses) it returns a negative code and the caller falls back to the protobuf runtime, which
 * names the field in its error. Scalars that appear twice: the last wins (protobuf's rule);
 * uint32 fields keep the low 32 bits of their varint, enums (int32) the low 32 bits, int64 the
 * whole 64, as protobuf does.
 */
#ifndef XDPEX_FASTWIRE_PB_H
#define XDPEX_FASTWIRE_PB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* An order as the session sends it (xdpex.entrybatch.WireOrder), wire codes. */
struct xf_order {
	uint8_t side, ord_type, tif;
	uint32_t symbol_id;
	int64_t price;
	uint32_t qty;
};

/* Proto enum value -> wire code, -1 where the control plane refuses it (xdpex.grpc_api). */
struct xf_enum_maps {
	int side[8], type[8], tif[8];
	int market; /* wire code of MARKET: the only type that may have price 0 */
};

enum {
	XF_PB_MALFORMED = -1, /* not protobuf we decode the same way: let the runtime judge */
	XF_PB_REFUSED = -2, /* decoded, but an order the control plane refuses (named by Python) */
	XF_PB_TOO_MANY = -3, /* more orders than the caller's room */
};

static inline int xf_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t x = 0;
	for (int s = 0; s < 70; s += 7) {
		if (p >= end)
			return -1;
		uint8_t b = *p++;
		x |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) {
			if (s == 63 && b > 1)
				return -1; /* more than 64 bits */
			*pp = p;
			*v = x;
			return 0;
		}
	}
	return -1;
}

/* Skip a field of an unknown number; -1 for groups and anything cut short. */
static inline int xf_skip(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
	uint64_t v;
	switch (wt) {
	case 0: return xf_varint(pp, end, &v);
	case 1:
		if (end - *pp < 8)
			return -1;
		*pp += 8;
		return 0;
	case 2:
		if (xf_varint(pp, end, &v) || v > (uint64_t)(end - *pp))
			return -1;
		*pp += v;
		return 0;
	case 5:
		if (end - *pp < 4)
			return -1;
		*pp += 4;
		return 0;
	default: return -1;
	}
}

static inline int xf_map(const int *map, uint64_t v)
{
	uint32_t e = (uint32_t)v; /* int32 enum: the low 32 bits */
	return e < 8 ? map[e] : -1;
}

/* One NewOrder message (its bytes p..end) into *o; 0, or an XF_PB_ code. */
static inline int xf_pb_new_order(const uint8_t *p, const uint8_t *end,
				  const struct xf_enum_maps *m, struct xf_order *o)
{
	uint64_t sym = 0, side = 0, type = 0, tif = 0, qty = 0, price = 0;
	while (p < end) {
		uint64_t key, v;
		if (xf_varint(&p, end, &key) || key > UINT32_MAX || (key >> 3) == 0)
			return XF_PB_MALFORMED;
		unsigned wt = key & 7;
		uint64_t f = key >> 3;
		if (f >= 1 && f <= 6) {
			if (wt != 0 || xf_varint(&p, end, &v))
				return XF_PB_MALFORMED;
			switch (f) {
			case 1: sym = v; break;
			case 2: side = v; break;
			case 3: type = v; break;
			case 4: tif = v; break;
			case 5: qty = v; break;
			default: price = v; break;
			}
		} else if (xf_skip(&p, end, wt)) {
			return XF_PB_MALFORMED;
		}
	}
	int s = xf_map(m->side, side), t = xf_map(m->type, type), f = xf_map(m->tif, tif);
	uint32_t sy = (uint32_t)sym, q = (uint32_t)qty;
	int64_t px = (int64_t)price;
	if (s < 0 || t < 0 || f < 0 || !q || !sy || (t != m->market && px <= 0))
		return XF_PB_REFUSED;
	o->side = (uint8_t)s;
	o->ord_type = (uint8_t)t;
	o->tif = (uint8_t)f;
	o->symbol_id = sy;
	o->price = px;
	o->qty = q;
	return 0;
}

/* The orders (field `orders_field`, repeated NewOrder) of a request, up to `cap` into out;
 * `ref` (field 1 when orders_field is 2: OrderStreamRequest) into *ref. The count, or an
 * XF_PB_ code. */
static inline long xf_pb_orders(const uint8_t *p, size_t n, unsigned orders_field,
				const struct xf_enum_maps *m, struct xf_order *out, size_t cap,
				uint64_t *ref)
{
	const uint8_t *end = p + n;
	size_t k = 0;
	*ref = 0;
	while (p < end) {
		uint64_t key, v;
		if (xf_varint(&p, end, &key) || key > UINT32_MAX || (key >> 3) == 0)
			return XF_PB_MALFORMED;
		unsigned wt = key & 7;
		uint64_t f = key >> 3;
		if (f == orders_field) {
			if (wt != 2 || xf_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return XF_PB_MALFORMED;
			if (k == cap)
				return XF_PB_TOO_MANY;
			int rc = xf_pb_new_order(p, p + v, m, &out[k]);
			if (rc)
				return rc;
			k++;
			p += v;
		} else if (orders_field == 2 && f == 1) {
			if (wt != 0 || xf_varint(&p, end, ref))
				return XF_PB_MALFORMED;
		} else if (xf_skip(&p, end, wt)) {
			return XF_PB_MALFORMED;
		}
	}
	return (long)k;
}

/* -- writing ------------------------------------------------------------------------------ */

static inline size_t xf_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline uint8_t *xf_put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

#endif
