/* The JSON half of xdpex._fastwire, without Python: REST order bodies (POST /api/v1/orders,
 * one order object; POST /api/v1/orders/batch, {"orders": [...]}) decoded into wire orders.
 *
 * It takes the canonical form only and exactly what xdpex.api.fastentry.wire_order accepts: an
 * object with fields from symbol_id, side, type, tif, qty, price, each at most once; symbol_id,
 * qty and price JSON integers (no fraction, exponent or leading zero) with 1 <= symbol_id, qty
 * <= 2^32-1 and 0 <= price <= 2^63-1, price 0 only for a market order; side, type and tif
 * strings without escapes naming a known value (type defaults to limit, tif to gtc, price to
 * 0). A batch: that one key, 1..max orders. Anything else (other whitespace than JSON's, an
 * escape, a duplicate key, a bool or null, a value out of range, bytes past the end) returns
 * -1 and the caller takes the general path (orjson, then the FastAPI route), which accepts the
 * lax forms or names the field.
 */
#ifndef XDPEX_FASTWIRE_JSON_H
#define XDPEX_FASTWIRE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastwire_pb.h" /* struct xf_order */

struct xf_names {
	int n;
	const char *name[8];
	size_t len[8];
	int code[8];
};

struct xf_json_maps {
	struct xf_names side, type, tif;
	int type_default, tif_default, market;
};

struct xf_json {
	const uint8_t *p, *end;
};

static inline void xf_ws(struct xf_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static inline int xf_lit(struct xf_json *j, uint8_t c)
{
	xf_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return 0;
	}
	return -1;
}

/* A string without escapes, control characters or non-ASCII bytes: its bytes in *s, *n. */
static inline int xf_str(struct xf_json *j, const uint8_t **s, size_t *n)
{
	if (xf_lit(j, '"'))
		return -1;
	const uint8_t *b = j->p;
	while (j->p < j->end && *j->p != '"') {
		if (*j->p == '\\' || *j->p < 0x20 || *j->p >= 0x80)
			return -1;
		j->p++;
	}
	if (j->p >= j->end)
		return -1;
	*s = b;
	*n = (size_t)(j->p - b);
	j->p++;
	return 0;
}

/* A JSON integer (optional '-', no leading zero, no fraction or exponent) into *v. */
static inline int xf_int(struct xf_json *j, int64_t *v)
{
	xf_ws(j);
	int neg = 0;
	if (j->p < j->end && *j->p == '-') {
		neg = 1;
		j->p++;
	}
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return -1;
	if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
		return -1; /* leading zero: not JSON */
	uint64_t x = 0;
	int digits = 0;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		if (++digits > 19)
			return -1;
		x = x * 10 + (uint64_t)(*j->p++ - '0');
	}
	if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
		return -1; /* a float: not an int for wire_order */
	if (x > (uint64_t)INT64_MAX)
		return -1;
	*v = neg ? -(int64_t)x : (int64_t)x;
	return 0;
}

static inline int xf_name(const struct xf_names *t, const uint8_t *s, size_t n)
{
	for (int i = 0; i < t->n; i++)
		if (t->len[i] == n && memcmp(t->name[i], s, n) == 0)
			return t->code[i];
	return -1;
}

/* One order object into *o: 0, or -1 (the general path judges it). */
static inline int xf_json_order(struct xf_json *j, const struct xf_json_maps *m, struct xf_order *o)
{
	enum { SYM = 1, SIDE = 2, TYPE = 4, TIF = 8, QTY = 16, PRICE = 32 };
	unsigned seen = 0;
	int64_t sym = 0, qty = 0, price = 0;
	int side = -1, type = m->type_default, tif = m->tif_default;
	if (xf_lit(j, '{'))
		return -1;
	xf_ws(j);
	if (j->p < j->end && *j->p == '}')
		return -1; /* {}: symbol_id, side and qty are missing */
	for (;;) {
		const uint8_t *k;
		size_t kn;
		if (xf_str(j, &k, &kn) || xf_lit(j, ':'))
			return -1;
		unsigned f;
		if (kn == 9 && !memcmp(k, "symbol_id", 9))
			f = SYM;
		else if (kn == 4 && !memcmp(k, "side", 4))
			f = SIDE;
		else if (kn == 4 && !memcmp(k, "type", 4))
			f = TYPE;
		else if (kn == 3 && !memcmp(k, "tif", 3))
			f = TIF;
		else if (kn == 3 && !memcmp(k, "qty", 3))
			f = QTY;
		else if (kn == 5 && !memcmp(k, "price", 5))
			f = PRICE;
		else
			return -1; /* an unknown field: the route names it */
		if (seen & f)
			return -1; /* twice: the general path (last wins there) */
		seen |= f;
		if (f == SYM || f == QTY || f == PRICE) {
			int64_t v;
			if (xf_int(j, &v))
				return -1;
			if (f == SYM)
				sym = v;
			else if (f == QTY)
				qty = v;
			else
				price = v;
		} else {
			const uint8_t *s;
			size_t sn;
			if (xf_str(j, &s, &sn))
				return -1;
			int code = xf_name(f == SIDE   ? &m->side
					   : f == TYPE ? &m->type
						       : &m->tif,
					   s, sn);
			if (code < 0)
				return -1;
			if (f == SIDE)
				side = code;
			else if (f == TYPE)
				type = code;
			else
				tif = code;
		}
		xf_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (xf_lit(j, '}'))
			return -1;
		break;
	}
	if (!(seen & SYM) || !(seen & QTY) || side < 0)
		return -1;
	if (sym < 1 || sym > UINT32_MAX || qty < 1 || qty > UINT32_MAX || price < 0)
		return -1;
	if (price == 0 && type != m->market)
		return -1; /* the service's own check names it */
	o->side = (uint8_t)side;
	o->ord_type = (uint8_t)type;
	o->tif = (uint8_t)tif;
	o->symbol_id = (uint32_t)sym;
	o->price = price;
	o->qty = (uint32_t)qty;
	return 0;
}

static inline int xf_json_end(struct xf_json *j)
{
	xf_ws(j);
	return j->p == j->end ? 0 : -1;
}

/* A body: batch (1) {"orders": [order, ...]} with 1..cap orders, or (0) one order. The count,
 * or -1 for the general path. */
static inline long xf_json_orders(const uint8_t *p, size_t n, int batch,
				  const struct xf_json_maps *m, struct xf_order *out, size_t cap)
{
	struct xf_json j = {p, p + n};
	if (!batch) {
		if (cap < 1 || xf_json_order(&j, m, &out[0]) || xf_json_end(&j))
			return -1;
		return 1;
	}
	const uint8_t *k;
	size_t kn;
	if (xf_lit(&j, '{') || xf_str(&j, &k, &kn) || kn != 6 || memcmp(k, "orders", 6) ||
	    xf_lit(&j, ':') || xf_lit(&j, '['))
		return -1;
	size_t cnt = 0;
	xf_ws(&j);
	if (j.p < j.end && *j.p == ']')
		return -1; /* no orders: the route says so */
	for (;;) {
		if (cnt == cap || xf_json_order(&j, m, &out[cnt]))
			return -1;
		cnt++;
		xf_ws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			continue;
		}
		if (xf_lit(&j, ']'))
			return -1;
		break;
	}
	if (xf_lit(&j, '}') || xf_json_end(&j))
		return -1;
	return (long)cnt;
}

#endif
