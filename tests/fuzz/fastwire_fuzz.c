/* libFuzzer harness of xdpex._fastwire's decoders (control/xdpex/ext/fastwire_pb.h and
 * fastwire_json.h), built with ASan and UBSan by control/build.mk (build/control/fastwire_fuzz).
 * tests/test_control_fastwire.py runs it for a bounded time; `make control-fuzz` runs longer.
 *
 * The first input byte picks the decoder: SubmitOrdersRequest, OrderStreamRequest, a REST batch
 * or a single REST order; the rest is its input. Besides memory errors and undefined behaviour,
 * it checks what a decoder returns: at most `cap` orders, every field within what the control
 * plane accepts, and the orders encoded again (protobuf or canonical JSON) decode to the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastwire_json.h"
#include "fastwire_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 64

static const struct xf_enum_maps PB_MAPS = {
    .side = {-1, 1, 2, -1, -1, -1, -1, -1},
    .type = {1, 1, 2, 3, -1, -1, -1, -1},
    .tif = {2, 1, 2, 3, 4, -1, -1, -1},
    .market = 2,
};

static const struct xf_json_maps JSON_MAPS = {
    .side = {2, {"buy", "sell"}, {3, 4}, {1, 2}},
    .type = {3, {"limit", "market", "post_only"}, {5, 6, 9}, {1, 2, 3}},
    .tif = {4, {"day", "gtc", "ioc", "fok"}, {3, 3, 3, 3}, {1, 2, 3, 4}},
    .type_default = 1,
    .tif_default = 2,
    .market = 2,
};

static void check(const struct xf_order *o, long n)
{
	if (n > CAP)
		abort();
	for (long i = 0; i < n; i++) {
		if (o[i].side < 1 || o[i].side > 2 || o[i].ord_type < 1 || o[i].ord_type > 3 ||
		    o[i].tif < 1 || o[i].tif > 4 || !o[i].symbol_id || !o[i].qty)
			abort();
		if (o[i].ord_type != 2 && o[i].price <= 0)
			abort();
	}
}

static int proto_of(int code, const int *map)
{
	for (int v = 0; v < 8; v++)
		if (map[v] == code)
			return v;
	abort();
}

static size_t pb_encode(const struct xf_order *o, long n, unsigned field, uint8_t *out)
{
	uint8_t *p = out;
	if (field == 2) {
		*p++ = 1 << 3;
		p = xf_put_varint(p, 77);
	}
	for (long i = 0; i < n; i++) {
		uint8_t m[64], *q = m;
		uint64_t vals[6] = {o[i].symbol_id,
				    (uint64_t)proto_of(o[i].side, PB_MAPS.side),
				    (uint64_t)proto_of(o[i].ord_type, PB_MAPS.type),
				    (uint64_t)proto_of(o[i].tif, PB_MAPS.tif),
				    o[i].qty,
				    (uint64_t)o[i].price};
		for (unsigned f = 0; f < 6; f++) {
			*q++ = (uint8_t)((f + 1) << 3);
			q = xf_put_varint(q, vals[f]);
		}
		*p++ = (uint8_t)(field << 3 | 2);
		p = xf_put_varint(p, (uint64_t)(q - m));
		memcpy(p, m, (size_t)(q - m));
		p += q - m;
	}
	return (size_t)(p - out);
}

static const char *name_of(const struct xf_names *t, int code)
{
	for (int i = 0; i < t->n; i++)
		if (t->code[i] == code)
			return t->name[i];
	abort();
}

static size_t json_encode(const struct xf_order *o, long n, int batch, char *out, size_t cap)
{
	size_t k = 0;
	if (batch)
		k += (size_t)snprintf(out + k, cap - k, "{\"orders\": [");
	for (long i = 0; i < n; i++)
		k += (size_t)snprintf(
		    out + k, cap - k,
		    "%s{\"symbol_id\":%u,\"side\":\"%s\",\"type\":\"%s\",\"tif\":\"%s\","
		    "\"qty\":%u,\"price\":%lld}",
		    i ? ", " : "", o[i].symbol_id, name_of(&JSON_MAPS.side, o[i].side),
		    name_of(&JSON_MAPS.type, o[i].ord_type), name_of(&JSON_MAPS.tif, o[i].tif),
		    o[i].qty, (long long)o[i].price);
	if (batch)
		k += (size_t)snprintf(out + k, cap - k, "]}\n");
	return k;
}

static int same(const struct xf_order *a, const struct xf_order *b, long n)
{
	for (long i = 0; i < n; i++)
		if (a[i].side != b[i].side || a[i].ord_type != b[i].ord_type ||
		    a[i].tif != b[i].tif || a[i].symbol_id != b[i].symbol_id ||
		    a[i].price != b[i].price || a[i].qty != b[i].qty)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xf_order o[CAP], again[CAP];
	static uint8_t buf[CAP * 200 + 64];
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 3;
	data++;
	size--;
	/* the decoders read exactly [data, data + size): a heap copy lets ASan see any overread */
	uint8_t *in = malloc(size ? size : 1);
	memcpy(in, data, size);
	long n;
	if (mode < 2) {
		unsigned field = mode + 1;
		uint64_t ref;
		n = xf_pb_orders(in, size, field, &PB_MAPS, o, CAP, &ref);
		if (n >= 0) {
			check(o, n);
			size_t len = pb_encode(o, n, field, buf);
			if (xf_pb_orders(buf, len, field, &PB_MAPS, again, CAP, &ref) != n ||
			    !same(o, again, n))
				abort();
		}
	} else {
		int batch = mode == 2;
		n = xf_json_orders(in, size, batch, &JSON_MAPS, o, CAP);
		if (n >= 0) {
			check(o, n);
			if (o[0].price == 0 && o[0].ord_type != 2)
				abort();
			size_t len = json_encode(o, n, batch, (char *)buf, sizeof(buf));
			if (xf_json_orders(buf, len, batch, &JSON_MAPS, again, CAP) != n ||
			    !same(o, again, n))
				abort();
		}
	}
	free(in);
	return 0;
}
