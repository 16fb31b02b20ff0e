/* xdpex._fastwire: the per-order work of the control plane's order entry in C.
 *
 * The session logic (login, sequencing, retransmission, the in-flight window) stays in Python
 * (xdpex.orderentry); what it did once per order moves here, called once per datagram or per
 * request under the GIL:
 *
 *   pack_new(orders, lo, hi, base, now)   NewOrder messages of orders[lo:hi], cl_ord_id base + j
 *   apply(msgs, start, chunks, done)      Accepted / Rejected / Fill answers into their entries'
 *                                         columns (xdpex.entrybatch.Entry), in order, up to the
 *                                         first message Python handles itself (cancels)
 *   json_acks(entry, single)              the REST answer: orjson.dumps(ack_dicts(entry)) (or of
 *                                         its one element), byte for byte
 *   pb_acks(entry, field)                 the acks of a SubmitOrdersResponse (field 1) or an
 *                                         OrderStreamResponse (field 2), serialized
 *   pb_orders(request, field)             (ref, [wire order...]) of a SubmitOrdersRequest (field
 *                                         1) or OrderStreamRequest (field 2); None when protobuf
 *                                         or the control plane must judge it (fastwire_pb.h)
 *   json_orders(body, batch, max)         [wire order...] of a canonical REST order body; None
 *                                         for the general path (fastwire_json.h)
 *
 * configure() takes the names and codes from Python once, so nothing here repeats the codec's
 * tables. Layout: the message offsets below are checked against include/xdpex/proto.h when the
 * Makefile builds this (XF_CHECK_LAYOUT).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "fastwire_json.h"
#include "fastwire_pb.h"

#define MSG 64
#define CHUNK_BITS 10
#define CHUNK_MASK ((1u << CHUNK_BITS) - 1)
#define T_NEW 0x02
#define T_ACC 0x83
#define T_REJ 0x84
#define T_FILL 0x85

#ifdef XF_CHECK_LAYOUT
#include <xdpex/proto.h>
_Static_assert(XE_MSG_SIZE == MSG, "message size");
_Static_assert(XE_NEW_ORDER == T_NEW && XE_ACCEPTED == T_ACC && XE_REJECTED == T_REJ &&
		   XE_FILL == T_FILL,
	       "message types");
_Static_assert(__builtin_offsetof(struct xe_new_order, cl_ord_id) == 8, "new.cl_ord_id");
_Static_assert(__builtin_offsetof(struct xe_new_order, price) == 16, "new.price");
_Static_assert(__builtin_offsetof(struct xe_new_order, qty) == 24, "new.qty");
_Static_assert(__builtin_offsetof(struct xe_new_order, client_ts) == 56, "new.client_ts");
_Static_assert(__builtin_offsetof(struct xe_accepted, cl_ord_id) == 8, "acc.cl_ord_id");
_Static_assert(__builtin_offsetof(struct xe_accepted, order_id) == 16, "acc.order_id");
_Static_assert(__builtin_offsetof(struct xe_accepted, qty) == 32, "acc.qty");
_Static_assert(__builtin_offsetof(struct xe_rejected, ref_type) == 1, "rej.ref_type");
_Static_assert(__builtin_offsetof(struct xe_rejected, reason) == 2, "rej.reason");
_Static_assert(__builtin_offsetof(struct xe_rejected, cl_ord_id) == 8, "rej.cl_ord_id");
_Static_assert(__builtin_offsetof(struct xe_fill, liquidity) == 2, "fill.liquidity");
_Static_assert(__builtin_offsetof(struct xe_fill, cl_ord_id) == 8, "fill.cl_ord_id");
_Static_assert(__builtin_offsetof(struct xe_fill, exec_id) == 16, "fill.exec_id");
_Static_assert(__builtin_offsetof(struct xe_fill, price) == 24, "fill.price");
_Static_assert(__builtin_offsetof(struct xe_fill, qty) == 32, "fill.qty");
_Static_assert(__builtin_offsetof(struct xe_fill, leaves) == 36, "fill.leaves");
#endif

PyMODINIT_FUNC PyInit__fastwire(void);

/* -- configuration (configure) ------------------------------------------------------------ */

static struct {
	int ready;
	PyObject *pending, *s_new, *s_rejected, *s_filled, *s_partial, *s_cancelled;
	PyObject *side_names, *type_names, *tif_names; /* lists of 256 str */
	PyObject *reject_names, *reject_fields, *cancel_names; /* 256 str / str-or-None / str */
	struct xf_enum_maps maps;
	struct xf_json_maps jmaps;
	PyObject *jnames; /* the bytes jmaps' names point into */
	unsigned not_logged_in, cancel_type;
} cfg;

static PyObject *a_chunks, *a_start, *a_n, *a_status, *a_order_id, *a_reason, *a_leaves, *a_filled,
    *a_fills, *a_remaining, *a_orders, *a_session_id;

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static int int_list(PyObject *seq, int *out, size_t n, const char *what)
{
	if (!PyList_Check(seq) || (size_t)PyList_GET_SIZE(seq) != n) {
		PyErr_Format(PyExc_ValueError, "%s: a list of %zu ints", what, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		long v = PyLong_AsLong(PyList_GET_ITEM(seq, i));
		if (v == -1 && PyErr_Occurred())
			return -1;
		out[i] = (int)v;
	}
	return 0;
}

static int name_table(PyObject *seq, const char *what, int none_ok)
{
	if (!PyList_Check(seq) || PyList_GET_SIZE(seq) != 256) {
		PyErr_Format(PyExc_ValueError, "%s: a list of 256 names", what);
		return -1;
	}
	for (Py_ssize_t i = 0; i < 256; i++) {
		PyObject *v = PyList_GET_ITEM(seq, i);
		if (!PyUnicode_Check(v) && !(none_ok && v == Py_None)) {
			PyErr_Format(PyExc_ValueError, "%s[%zd]: not a str", what, i);
			return -1;
		}
	}
	return 0;
}

static PyObject *configure(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *pend, *snew, *srej, *sfill, *spart, *scxl, *sn, *tn, *fn, *rn, *rf, *cn, *sm, *tm,
	    *fm;
	int market;
	unsigned nli, cxl;
	if (!PyArg_ParseTuple(args, "UUUUUUOOOOOOOOOiII", &pend, &snew, &srej, &sfill, &spart,
			      &scxl, &sn, &tn, &fn, &rn, &rf, &cn, &sm, &tm, &fm, &market, &nli,
			      &cxl))
		return NULL;
	if (name_table(sn, "side names", 0) || name_table(tn, "type names", 0) ||
	    name_table(fn, "tif names", 0) || name_table(rn, "reject names", 0) ||
	    name_table(rf, "reject fields", 1) || name_table(cn, "cancel names", 0) ||
	    int_list(sm, cfg.maps.side, 8, "side map") ||
	    int_list(tm, cfg.maps.type, 8, "type map") || int_list(fm, cfg.maps.tif, 8, "tif map"))
		return NULL;
	PyObject **slots[] = {&cfg.pending,	 &cfg.s_new,	     &cfg.s_rejected,
			      &cfg.s_filled,	 &cfg.s_partial,     &cfg.s_cancelled,
			      &cfg.side_names,	 &cfg.type_names,    &cfg.tif_names,
			      &cfg.reject_names, &cfg.reject_fields, &cfg.cancel_names};
	PyObject *vals[] = {pend, snew, srej, sfill, spart, scxl, sn, tn, fn, rn, rf, cn};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		Py_INCREF(vals[i]);
		Py_XSETREF(*slots[i], vals[i]);
	}
	cfg.maps.market = market;
	cfg.not_logged_in = nli;
	cfg.cancel_type = cxl;
	cfg.ready = 1;
	Py_RETURN_NONE;
}

static int ready(void)
{
	if (!cfg.ready)
		PyErr_SetString(PyExc_RuntimeError, "xdpex._fastwire: configure() first");
	return cfg.ready;
}

/* -- pack_new ------------------------------------------------------------------------------ */

static int get_u64(PyObject *o, uint64_t *v, int64_t lo, uint64_t hi)
{
	int ovf;
	long long s = PyLong_AsLongLongAndOverflow(o, &ovf);
	if (s == -1 && PyErr_Occurred())
		return -1;
	if (ovf > 0) {
		unsigned long long u = PyLong_AsUnsignedLongLong(o);
		if (u == (unsigned long long)-1 && PyErr_Occurred())
			return -1;
		if (u > hi)
			goto range;
		*v = u;
		return 0;
	}
	if (ovf < 0 || s < lo || (s >= 0 && (uint64_t)s > hi))
		goto range;
	*v = (uint64_t)s;
	return 0;
range:
	PyErr_SetString(PyExc_OverflowError, "value out of range for its wire field");
	return -1;
}

static PyObject *pack_new(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *orders;
	Py_ssize_t lo, hi;
	unsigned long long base, now;
	if (!PyArg_ParseTuple(args, "OnnKK", &orders, &lo, &hi, &base, &now))
		return NULL;
	PyObject *seq = PySequence_Fast(orders, "orders: a sequence");
	if (seq == NULL)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if (lo < 0 || hi > n || lo > hi) {
		Py_DECREF(seq);
		PyErr_SetString(PyExc_IndexError, "pack_new: lo..hi outside the orders");
		return NULL;
	}
	PyObject *out = PyBytes_FromStringAndSize(NULL, (hi - lo) * MSG);
	if (out == NULL) {
		Py_DECREF(seq);
		return NULL;
	}
	uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
	memset(p, 0, (size_t)(hi - lo) * MSG);
	for (Py_ssize_t j = lo; j < hi; j++, p += MSG) {
		PyObject *t = PySequence_Fast_GET_ITEM(seq, j);
		if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 6) {
			PyErr_Format(PyExc_TypeError, "order %zd: not a 6-tuple", j);
			goto fail;
		}
		uint64_t side, typ, tif, sym, px, qty, cl = base + (uint64_t)j;
		if (get_u64(PyTuple_GET_ITEM(t, 0), &side, 0, 255) ||
		    get_u64(PyTuple_GET_ITEM(t, 1), &typ, 0, 255) ||
		    get_u64(PyTuple_GET_ITEM(t, 2), &tif, 0, 255) ||
		    get_u64(PyTuple_GET_ITEM(t, 3), &sym, 0, UINT32_MAX) ||
		    get_u64(PyTuple_GET_ITEM(t, 4), &px, INT64_MIN, INT64_MAX) ||
		    get_u64(PyTuple_GET_ITEM(t, 5), &qty, 0, UINT32_MAX))
			goto fail;
		uint32_t s32 = (uint32_t)sym, q32 = (uint32_t)qty;
		uint64_t ts = now;
		p[0] = T_NEW;
		p[1] = (uint8_t)side;
		p[2] = (uint8_t)typ;
		p[3] = (uint8_t)tif;
		memcpy(p + 4, &s32, 4);
		memcpy(p + 8, &cl, 8);
		memcpy(p + 16, &px, 8);
		memcpy(p + 24, &q32, 4);
		memcpy(p + 56, &ts, 8);
	}
	Py_DECREF(seq);
	return out;
fail:
	Py_DECREF(seq);
	Py_DECREF(out);
	return NULL;
}

/* -- apply --------------------------------------------------------------------------------- */

/* The columns of one Entry, borrowed while `e` is held. */
struct ent {
	PyObject *e, *status, *order_id, *reason, *leaves, *filled;
	long long start, n, remaining;
	int dirty; /* remaining changed: written back by ent_flush */
};

static void ent_clear(struct ent *x)
{
	Py_CLEAR(x->status);
	Py_CLEAR(x->order_id);
	Py_CLEAR(x->reason);
	Py_CLEAR(x->leaves);
	Py_CLEAR(x->filled);
	Py_CLEAR(x->e);
}

static int ent_flush(struct ent *x)
{
	if (x->e == NULL || !x->dirty)
		return 0;
	x->dirty = 0;
	PyObject *r = PyLong_FromLongLong(x->remaining);
	if (r == NULL)
		return -1;
	int rc = PyObject_SetAttr(x->e, a_remaining, r);
	Py_DECREF(r);
	return rc;
}

static long long attr_ll(PyObject *o, PyObject *name)
{
	PyObject *v = PyObject_GetAttr(o, name);
	if (v == NULL)
		return -1;
	long long r = PyLong_AsLongLong(v);
	Py_DECREF(v);
	return r;
}

static PyObject *attr_list(PyObject *o, PyObject *name)
{
	PyObject *v = PyObject_GetAttr(o, name);
	if (v != NULL && !PyList_Check(v)) {
		PyErr_SetString(PyExc_TypeError, "entry column is not a list");
		Py_CLEAR(v);
	}
	return v;
}

static int ent_load(struct ent *x, PyObject *e)
{
	x->e = e;
	Py_INCREF(e);
	x->dirty = 0;
	PyObject *ch = PyObject_GetAttr(e, a_chunks);
	if (ch == NULL)
		return -1;
	x->start = attr_ll(ch, a_start);
	Py_DECREF(ch);
	if (PyErr_Occurred())
		return -1;
	x->n = attr_ll(e, a_n);
	x->remaining = attr_ll(e, a_remaining);
	if (PyErr_Occurred())
		return -1;
	x->status = attr_list(e, a_status);
	x->order_id = attr_list(e, a_order_id);
	x->reason = attr_list(e, a_reason);
	x->leaves = attr_list(e, a_leaves);
	x->filled = attr_list(e, a_filled);
	if (!x->status || !x->order_id || !x->reason || !x->leaves || !x->filled)
		return -1;
	if (PyList_GET_SIZE(x->status) < x->n || PyList_GET_SIZE(x->order_id) < x->n ||
	    PyList_GET_SIZE(x->reason) < x->n || PyList_GET_SIZE(x->leaves) < x->n ||
	    PyList_GET_SIZE(x->filled) < x->n) {
		PyErr_SetString(PyExc_ValueError, "entry columns shorter than the entry");
		return -1;
	}
	return 0;
}

static void set_item(PyObject *list, Py_ssize_t i, PyObject *v) /* steals v */
{
	PyObject *old = PyList_GET_ITEM(list, i);
	PyList_SET_ITEM(list, i, v);
	Py_DECREF(old);
}

static int add_fill(PyObject *e, long long i, const uint8_t *m)
{
	PyObject *fills = PyObject_GetAttr(e, a_fills);
	if (fills == NULL)
		return -1;
	if (fills == Py_None) {
		Py_DECREF(fills);
		fills = PyDict_New();
		if (fills == NULL || PyObject_SetAttr(e, a_fills, fills)) {
			Py_XDECREF(fills);
			return -1;
		}
	} else if (!PyDict_Check(fills)) {
		Py_DECREF(fills);
		PyErr_SetString(PyExc_TypeError, "entry fills: not a dict");
		return -1;
	}
	PyObject *k = PyLong_FromLongLong(i);
	PyObject *t =
	    Py_BuildValue("(KLkk)", (unsigned long long)rd64(m + 16), (long long)rd64(m + 24),
			  (unsigned long)rd32(m + 32), (unsigned long)m[2]);
	int rc = -1;
	if (k && t) {
		PyObject *fl = PyDict_GetItemWithError(fills, k); /* borrowed */
		if (fl == NULL && !PyErr_Occurred()) {
			fl = PyList_New(0);
			if (fl && PyDict_SetItem(fills, k, fl) == 0) {
				rc = PyList_Append(fl, t);
			}
			Py_XDECREF(fl);
		} else if (fl != NULL) {
			rc = PyList_Append(fl, t);
		}
	}
	Py_XDECREF(k);
	Py_XDECREF(t);
	Py_DECREF(fills);
	return rc;
}

static PyObject *apply(PyObject *self, PyObject *args)
{
	(void)self;
	Py_buffer buf;
	Py_ssize_t start;
	PyObject *chunks, *done;
	if (!PyArg_ParseTuple(args, "y*nO!O!", &buf, &start, &PyDict_Type, &chunks, &PyList_Type,
			      &done))
		return NULL;
	if (!ready()) {
		PyBuffer_Release(&buf);
		return NULL;
	}
	const uint8_t *base = buf.buf;
	Py_ssize_t count = buf.len / MSG, k = start < 0 ? 0 : start;
	long long dec = 0;
	int nli = 0;
	struct ent x = {0};
	long long cur_chunk = -1;
	int have = 0; /* x holds the entry of cur_chunk (or cur_chunk has none: x.e NULL) */
	for (; k < count; k++) {
		const uint8_t *m = base + k * MSG;
		uint8_t t = m[0];
		int is_ack = t == T_ACC || (t == T_REJ && m[1] != cfg.cancel_type);
		if (!is_ack && t != T_FILL)
			break; /* Python's: cancels and their refusals, anything else */
		uint64_t cl = rd64(m + 8);
		long long chunk = (long long)(cl >> CHUNK_BITS);
		if (!have || chunk != cur_chunk) {
			if (ent_flush(&x))
				goto fail;
			ent_clear(&x);
			cur_chunk = chunk;
			have = 1;
			PyObject *key = PyLong_FromUnsignedLongLong(cl >> CHUNK_BITS);
			if (key == NULL)
				goto fail;
			PyObject *e = PyDict_GetItemWithError(chunks, key); /* borrowed */
			Py_DECREF(key);
			if (e == NULL && PyErr_Occurred())
				goto fail;
			if (e != NULL && ent_load(&x, e))
				goto fail;
		}
		if (x.e == NULL)
			continue; /* not ours (any more) */
		long long i = ((chunk - x.start) << CHUNK_BITS) | (long long)(cl & CHUNK_MASK);
		if (i < 0 || i >= x.n)
			continue;
		PyObject *st = PyList_GET_ITEM(x.status, i);
		if (is_ack) {
			if (st != cfg.pending)
				continue; /* a duplicate, or given up on */
			if (t == T_ACC) {
				PyObject *oid = PyLong_FromUnsignedLongLong(rd64(m + 16));
				PyObject *lv = PyLong_FromUnsignedLong(rd32(m + 32));
				if (!oid || !lv) {
					Py_XDECREF(oid);
					Py_XDECREF(lv);
					goto fail;
				}
				set_item(x.order_id, i, oid);
				set_item(x.leaves, i, lv);
				Py_INCREF(cfg.s_new);
				set_item(x.status, i, cfg.s_new);
			} else {
				unsigned reason = (unsigned)m[2] | (unsigned)m[3] << 8;
				PyObject *r = PyLong_FromUnsignedLong(reason);
				if (r == NULL)
					goto fail;
				set_item(x.reason, i, r);
				Py_INCREF(cfg.s_rejected);
				set_item(x.status, i, cfg.s_rejected);
				if (reason == cfg.not_logged_in)
					nli = 1;
			}
			dec++;
			x.dirty = 1;
			if (--x.remaining == 0) {
				if (ent_flush(&x) || PyList_Append(done, x.e))
					goto fail;
			}
		} else { /* a fill of an order already acknowledged */
			if (st == cfg.pending)
				continue;
			uint32_t qty = rd32(m + 32), leaves = rd32(m + 36);
			PyObject *q = PyLong_FromUnsignedLong(qty);
			if (q == NULL)
				goto fail;
			PyObject *f = PyNumber_Add(PyList_GET_ITEM(x.filled, i), q);
			Py_DECREF(q);
			if (f == NULL)
				goto fail;
			set_item(x.filled, i, f);
			PyObject *lv = PyLong_FromUnsignedLong(leaves);
			if (lv == NULL)
				goto fail;
			set_item(x.leaves, i, lv);
			PyObject *ns = leaves == 0 ? cfg.s_filled : cfg.s_partial;
			Py_INCREF(ns);
			set_item(x.status, i, ns);
			if (add_fill(x.e, i, m))
				goto fail;
		}
	}
	if (ent_flush(&x))
		goto fail;
	ent_clear(&x);
	PyBuffer_Release(&buf);
	return Py_BuildValue("(nLi)", k, dec, nli);
fail:
	ent_clear(&x);
	PyBuffer_Release(&buf);
	return NULL;
}

/* -- growing output buffer ----------------------------------------------------------------- */

struct out {
	uint8_t *p;
	size_t len, cap;
};

static int out_room(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + n)
		cap *= 2;
	uint8_t *p = PyMem_Realloc(o->p, cap);
	if (p == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

static int out_put(struct out *o, const void *s, size_t n)
{
	if (out_room(o, n))
		return -1;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	return 0;
}

#define PUTS(o, s) out_put((o), (s), sizeof(s) - 1)

static int out_u64(struct out *o, uint64_t v)
{
	char b[24];
	int k = 24;
	do {
		b[--k] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return out_put(o, b + k, (size_t)(24 - k));
}

static int out_i64(struct out *o, int64_t v)
{
	if (v < 0) {
		if (PUTS(o, "-"))
			return -1;
		return out_u64(o, (uint64_t)0 - (uint64_t)v);
	}
	return out_u64(o, (uint64_t)v);
}

/* A str as a JSON string, escaped as orjson does (", \, and control characters). */
static int out_jstr(struct out *o, PyObject *s)
{
	Py_ssize_t n;
	const char *u = PyUnicode_AsUTF8AndSize(s, &n);
	if (u == NULL)
		return -1;
	if (out_room(o, (size_t)n * 6 + 2))
		return -1;
	uint8_t *p = o->p + o->len;
	*p++ = '"';
	for (Py_ssize_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)u[i];
		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = c;
		} else if (c < 0x20) {
			static const char hex[] = "0123456789abcdef";
			*p++ = '\\';
			switch (c) {
			case '\b': *p++ = 'b'; break;
			case '\f': *p++ = 'f'; break;
			case '\n': *p++ = 'n'; break;
			case '\r': *p++ = 'r'; break;
			case '\t': *p++ = 't'; break;
			default:
				*p++ = 'u';
				*p++ = '0';
				*p++ = '0';
				*p++ = (uint8_t)hex[c >> 4];
				*p++ = (uint8_t)hex[c & 15];
			}
		} else {
			*p++ = c;
		}
	}
	*p++ = '"';
	o->len = (size_t)(p - o->p);
	return 0;
}

/* names[code] as a JSON string; codes past the table as their decimal string (str(code)). */
static int out_name(struct out *o, PyObject *names, unsigned long long code)
{
	if (code < 256)
		return out_jstr(o, PyList_GET_ITEM(names, code));
	return PUTS(o, "\"") || out_u64(o, code) || PUTS(o, "\"");
}

/* An int column value as its 64 bits: int64 or uint64 (order ids, exec ids), whichever it is. */
static int ll_at(PyObject *list, Py_ssize_t i, long long *v)
{
	int ovf;
	PyObject *o = PyList_GET_ITEM(list, i);
	*v = PyLong_AsLongLongAndOverflow(o, &ovf);
	if (*v == -1 && PyErr_Occurred())
		return -1;
	if (ovf) {
		unsigned long long u = PyLong_AsUnsignedLongLong(o);
		if (u == (unsigned long long)-1 && PyErr_Occurred())
			return -1;
		*v = (long long)u;
		return 1; /* past INT64_MAX: write it unsigned */
	}
	return 0;
}

/* A column value read by ll_at (rc its return) as a JSON number. */
static int out_num(struct out *o, long long v, int rc)
{
	return rc == 1 ? out_u64(o, (uint64_t)v) : out_i64(o, v);
}

/* The parts of an Entry the answers are built from. */
struct view {
	PyObject *seq, *status, *order_id, *reason, *leaves, *filled, *fills;
	long long start, n;
	unsigned long long sid;
};

static void view_clear(struct view *v)
{
	Py_CLEAR(v->seq);
	Py_CLEAR(v->status);
	Py_CLEAR(v->order_id);
	Py_CLEAR(v->reason);
	Py_CLEAR(v->leaves);
	Py_CLEAR(v->filled);
	Py_CLEAR(v->fills);
}

static int view_load(struct view *v, PyObject *e)
{
	memset(v, 0, sizeof(*v));
	PyObject *orders = PyObject_GetAttr(e, a_orders);
	if (orders == NULL)
		return -1;
	v->seq = PySequence_Fast(orders, "entry orders: a sequence");
	Py_DECREF(orders);
	if (v->seq == NULL)
		return -1;
	PyObject *ch = PyObject_GetAttr(e, a_chunks);
	if (ch == NULL)
		return -1;
	v->start = attr_ll(ch, a_start);
	Py_DECREF(ch);
	v->n = attr_ll(e, a_n);
	long long sid = attr_ll(e, a_session_id);
	if (PyErr_Occurred())
		return -1;
	v->sid = (unsigned long long)sid;
	v->status = attr_list(e, a_status);
	v->order_id = attr_list(e, a_order_id);
	v->reason = attr_list(e, a_reason);
	v->leaves = attr_list(e, a_leaves);
	v->filled = attr_list(e, a_filled);
	if (!v->status || !v->order_id || !v->reason || !v->leaves || !v->filled)
		return -1;
	v->fills = PyObject_GetAttr(e, a_fills);
	if (v->fills == NULL)
		return -1;
	if (v->fills != Py_None && !PyDict_Check(v->fills)) {
		PyErr_SetString(PyExc_TypeError, "entry fills: not a dict");
		return -1;
	}
	Py_ssize_t n = (Py_ssize_t)v->n;
	if (PySequence_Fast_GET_SIZE(v->seq) < n || PyList_GET_SIZE(v->status) < n ||
	    PyList_GET_SIZE(v->order_id) < n || PyList_GET_SIZE(v->reason) < n ||
	    PyList_GET_SIZE(v->leaves) < n || PyList_GET_SIZE(v->filled) < n) {
		PyErr_SetString(PyExc_ValueError, "entry columns shorter than the entry");
		return -1;
	}
	return 0;
}

/* Order i's (side, type, tif, symbol_id, price, qty). */
static int order_at(struct view *v, Py_ssize_t i, long long f[6])
{
	PyObject *t = PySequence_Fast_GET_ITEM(v->seq, i);
	if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 6) {
		PyErr_Format(PyExc_TypeError, "order %zd: not a 6-tuple", i);
		return -1;
	}
	for (int k = 0; k < 6; k++) {
		f[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, k));
		if (f[k] == -1 && PyErr_Occurred())
			return -1;
	}
	return 0;
}

/* The fills of order i (a list of (exec_id, price, qty, liquidity)), borrowed, or NULL. */
/* The fills of order i in *out (NULL: none); -1 with an exception set when they are not a list. */
static int fills_at(struct view *v, Py_ssize_t i, PyObject **out)
{
	*out = NULL;
	if (v->fills == Py_None || PyDict_GET_SIZE(v->fills) == 0)
		return 0;
	PyObject *k = PyLong_FromSsize_t(i);
	if (k == NULL)
		return -1;
	PyObject *fl = PyDict_GetItemWithError(v->fills, k);
	Py_DECREF(k);
	if (fl == NULL)
		return PyErr_Occurred() ? -1 : 0;
	if (!PyList_Check(fl)) {
		PyErr_SetString(PyExc_TypeError, "fills: not a list");
		return -1;
	}
	*out = fl;
	return 0;
}

static int fill_fields(PyObject *t, unsigned long long *x, long long *px, unsigned long long *q,
		       unsigned long long *liq)
{
	if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
		PyErr_SetString(PyExc_TypeError, "fill: not a 4-tuple");
		return -1;
	}
	*x = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(t, 0));
	*px = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 1));
	*q = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(t, 2));
	*liq = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(t, 3));
	return PyErr_Occurred() ? -1 : 0;
}

static unsigned long long cl_of(struct view *v, long long i)
{
	return (unsigned long long)(v->start + (i >> CHUNK_BITS)) << CHUNK_BITS |
	       (unsigned long long)(i & CHUNK_MASK);
}

static int json_ack(struct out *o, struct view *v, Py_ssize_t i)
{
	long long f[6], oid, rsn, filled, leaves;
	int r1, r3, r4;
	if (order_at(v, i, f) || (r1 = ll_at(v->order_id, i, &oid)) < 0 ||
	    ll_at(v->reason, i, &rsn) < 0 || (r3 = ll_at(v->filled, i, &filled)) < 0 ||
	    (r4 = ll_at(v->leaves, i, &leaves)) < 0)
		return -1;
	PyObject *st = PyList_GET_ITEM(v->status, i);
	if (!PyUnicode_Check(st)) {
		PyErr_SetString(PyExc_TypeError, "status: not a str");
		return -1;
	}
	if (PUTS(o, "{\"order_id\":"))
		return -1;
	if (oid ? out_num(o, oid, r1) : PUTS(o, "null"))
		return -1;
	if (PUTS(o, ",\"session_id\":") || out_u64(o, v->sid) || PUTS(o, ",\"cl_ord_id\":") ||
	    out_u64(o, cl_of(v, i)) || PUTS(o, ",\"symbol_id\":") || out_i64(o, f[3]) ||
	    PUTS(o, ",\"side\":") || out_name(o, cfg.side_names, (unsigned long long)f[0]) ||
	    PUTS(o, ",\"type\":") || out_name(o, cfg.type_names, (unsigned long long)f[1]) ||
	    PUTS(o, ",\"tif\":") || out_name(o, cfg.tif_names, (unsigned long long)f[2]) ||
	    PUTS(o, ",\"price\":") || out_i64(o, f[4]) || PUTS(o, ",\"qty\":") ||
	    out_i64(o, f[5]) || PUTS(o, ",\"filled\":") || out_num(o, filled, r3) ||
	    PUTS(o, ",\"leaves\":") || out_num(o, leaves, r4) || PUTS(o, ",\"status\":") ||
	    out_jstr(o, st) || PUTS(o, ",\"reason\":"))
		return -1;
	int rej = PyUnicode_Compare(st, cfg.s_rejected) == 0;
	int cxl = !rej && PyUnicode_Compare(st, cfg.s_cancelled) == 0;
	if (PyErr_Occurred())
		return -1;
	if (rej || cxl) {
		if (out_name(o, rej ? cfg.reject_names : cfg.cancel_names, (unsigned long long)rsn))
			return -1;
	} else if (PUTS(o, "null")) {
		return -1;
	}
	if (PUTS(o, ",\"field\":"))
		return -1;
	PyObject *fld =
	    rej && rsn >= 0 && rsn < 256 ? PyList_GET_ITEM(cfg.reject_fields, rsn) : Py_None;
	if (fld == Py_None ? PUTS(o, "null") : out_jstr(o, fld))
		return -1;
	if (PUTS(o, ",\"fills\":["))
		return -1;
	PyObject *fl;
	if (fills_at(v, i, &fl))
		return -1;
	if (fl != NULL) {
		for (Py_ssize_t k = 0; k < PyList_GET_SIZE(fl); k++) {
			unsigned long long x, q, liq;
			long long px;
			if (fill_fields(PyList_GET_ITEM(fl, k), &x, &px, &q, &liq) ||
			    (k && PUTS(o, ",")) || PUTS(o, "{\"exec_id\":") || out_u64(o, x) ||
			    PUTS(o, ",\"price\":") || out_i64(o, px) || PUTS(o, ",\"qty\":") ||
			    out_u64(o, q) || PUTS(o, ",\"liquidity\":") || out_u64(o, liq) ||
			    PUTS(o, "}"))
				return -1;
		}
	}
	return PUTS(o, "]}");
}

static PyObject *json_acks(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *e;
	int single;
	if (!PyArg_ParseTuple(args, "Op", &e, &single) || !ready())
		return NULL;
	struct view v;
	struct out o = {0};
	PyObject *res = NULL;
	if (view_load(&v, e))
		goto done;
	if (single) {
		if (v.n < 1) {
			PyErr_SetString(PyExc_ValueError, "json_acks: an empty entry");
			goto done;
		}
		if (json_ack(&o, &v, 0))
			goto done;
	} else {
		if (PUTS(&o, "["))
			goto done;
		for (Py_ssize_t i = 0; i < v.n; i++)
			if ((i && PUTS(&o, ",")) || json_ack(&o, &v, i))
				goto done;
		if (PUTS(&o, "]"))
			goto done;
	}
	res = PyBytes_FromStringAndSize((const char *)o.p, (Py_ssize_t)o.len);
done:
	view_clear(&v);
	PyMem_Free(o.p);
	return res;
}

/* -- pb_acks ------------------------------------------------------------------------------- */

static int pb_key(struct out *o, unsigned f, unsigned wt)
{
	if (out_room(o, 10))
		return -1;
	o->len = (size_t)(xf_put_varint(o->p + o->len, (uint64_t)(f << 3 | wt)) - o->p);
	return 0;
}

static int pb_uint(struct out *o, unsigned f, uint64_t v) /* proto3: zero is not written */
{
	if (!v)
		return 0;
	if (pb_key(o, f, 0) || out_room(o, 10))
		return -1;
	o->len = (size_t)(xf_put_varint(o->p + o->len, v) - o->p);
	return 0;
}

static int pb_str(struct out *o, unsigned f, PyObject *s)
{
	Py_ssize_t n;
	const char *u = PyUnicode_AsUTF8AndSize(s, &n);
	if (u == NULL)
		return -1;
	if (!n)
		return 0;
	if (pb_key(o, f, 2) || out_room(o, 10))
		return -1;
	o->len = (size_t)(xf_put_varint(o->p + o->len, (uint64_t)n) - o->p);
	return out_put(o, u, (size_t)n);
}

static int pb_name(struct out *o, unsigned f, PyObject *names, unsigned long long code)
{
	if (code < 256)
		return pb_str(o, f, PyList_GET_ITEM(names, code));
	char b[24];
	int n = snprintf(b, sizeof(b), "%llu", code);
	if (pb_key(o, f, 2) || out_room(o, 10))
		return -1;
	o->len = (size_t)(xf_put_varint(o->p + o->len, (uint64_t)n) - o->p);
	return out_put(o, b, (size_t)n);
}

/* One OrderAck into o (its bytes, without key and length). */
static int pb_ack(struct out *o, struct view *v, Py_ssize_t i)
{
	long long f[6], oid, rsn, filled, leaves;
	if (order_at(v, i, f) || ll_at(v->order_id, i, &oid) < 0 || ll_at(v->reason, i, &rsn) < 0 ||
	    ll_at(v->filled, i, &filled) < 0 || ll_at(v->leaves, i, &leaves) < 0)
		return -1;
	PyObject *st = PyList_GET_ITEM(v->status, i);
	if (!PyUnicode_Check(st)) {
		PyErr_SetString(PyExc_TypeError, "status: not a str");
		return -1;
	}
	int rej = PyUnicode_Compare(st, cfg.s_rejected) == 0;
	int cxl = !rej && PyUnicode_Compare(st, cfg.s_cancelled) == 0;
	if (PyErr_Occurred())
		return -1;
	if (pb_uint(o, 1, (uint64_t)oid) || pb_uint(o, 2, v->sid) || pb_uint(o, 3, cl_of(v, i)) ||
	    pb_uint(o, 4, (uint32_t)f[3]) || pb_str(o, 5, st))
		return -1;
	if ((rej || cxl) &&
	    pb_name(o, 6, rej ? cfg.reject_names : cfg.cancel_names, (unsigned long long)rsn))
		return -1;
	if (rej && rsn >= 0 && rsn < 256) {
		PyObject *fld = PyList_GET_ITEM(cfg.reject_fields, rsn);
		if (fld != Py_None && pb_str(o, 7, fld))
			return -1;
	}
	if (pb_uint(o, 8, (uint64_t)filled) || pb_uint(o, 9, (uint64_t)leaves))
		return -1;
	PyObject *fl;
	if (fills_at(v, i, &fl))
		return -1;
	if (fl != NULL) {
		for (Py_ssize_t k = 0; k < PyList_GET_SIZE(fl); k++) {
			unsigned long long x, q, liq;
			long long px;
			if (fill_fields(PyList_GET_ITEM(fl, k), &x, &px, &q, &liq))
				return -1;
			size_t len = (x ? 1 + xf_varint_len(x) : 0) +
				     (px ? 1 + xf_varint_len((uint64_t)px) : 0) +
				     (q ? 1 + xf_varint_len((uint32_t)q) : 0) +
				     (liq ? 1 + xf_varint_len((uint32_t)liq) : 0);
			if (pb_key(o, 10, 2) || out_room(o, 10))
				return -1;
			o->len = (size_t)(xf_put_varint(o->p + o->len, len) - o->p);
			if (pb_uint(o, 1, x) || pb_uint(o, 2, (uint64_t)px) ||
			    pb_uint(o, 3, (uint32_t)q) || pb_uint(o, 4, (uint32_t)liq))
				return -1;
		}
	}
	return 0;
}

static PyObject *pb_acks(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *e;
	unsigned field;
	if (!PyArg_ParseTuple(args, "OI", &e, &field) || !ready())
		return NULL;
	if (field < 1 || field > 15) {
		PyErr_SetString(PyExc_ValueError, "pb_acks: field 1..15");
		return NULL;
	}
	struct view v;
	struct out o = {0}, one = {0};
	PyObject *res = NULL;
	if (view_load(&v, e))
		goto done;
	for (Py_ssize_t i = 0; i < v.n; i++) {
		one.len = 0;
		if (pb_ack(&one, &v, i) || pb_key(&o, field, 2) || out_room(&o, 10))
			goto done;
		o.len = (size_t)(xf_put_varint(o.p + o.len, one.len) - o.p);
		if (out_put(&o, one.p, one.len))
			goto done;
	}
	res = PyBytes_FromStringAndSize((const char *)o.p, (Py_ssize_t)o.len);
done:
	view_clear(&v);
	PyMem_Free(o.p);
	PyMem_Free(one.p);
	return res;
}

#define MAX_ORDERS 65536

/* -- json_orders --------------------------------------------------------------------------- */

static int json_names(PyObject *d, struct xf_names *t, PyObject *keep, const char *what)
{
	if (!PyDict_Check(d) || PyDict_GET_SIZE(d) > 8) {
		PyErr_Format(PyExc_ValueError, "%s: a dict of at most 8 names", what);
		return -1;
	}
	Py_ssize_t pos = 0;
	PyObject *k, *v;
	t->n = 0;
	while (PyDict_Next(d, &pos, &k, &v)) {
		PyObject *b = PyUnicode_AsASCIIString(k);
		if (b == NULL || PyList_Append(keep, b)) {
			Py_XDECREF(b);
			return -1;
		}
		Py_DECREF(b); /* kept alive by `keep` */
		long code = PyLong_AsLong(v);
		if (code == -1 && PyErr_Occurred())
			return -1;
		t->name[t->n] = PyBytes_AS_STRING(b);
		t->len[t->n] = (size_t)PyBytes_GET_SIZE(b);
		t->code[t->n] = (int)code;
		t->n++;
	}
	return 0;
}

static PyObject *configure_json(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *sides, *types, *tifs;
	int tdef, fdef;
	if (!PyArg_ParseTuple(args, "O!O!O!ii", &PyDict_Type, &sides, &PyDict_Type, &types,
			      &PyDict_Type, &tifs, &tdef, &fdef))
		return NULL;
	PyObject *keep = PyList_New(0);
	if (keep == NULL)
		return NULL;
	struct xf_json_maps m = {0};
	if (json_names(sides, &m.side, keep, "sides") ||
	    json_names(types, &m.type, keep, "types") || json_names(tifs, &m.tif, keep, "tifs")) {
		Py_DECREF(keep);
		return NULL;
	}
	m.type_default = tdef;
	m.tif_default = fdef;
	m.market = cfg.maps.market;
	cfg.jmaps = m;
	Py_XSETREF(cfg.jnames, keep);
	Py_RETURN_NONE;
}

static PyObject *orders_list(const struct xf_order *o, long n)
{
	PyObject *list = PyList_New(n);
	if (list == NULL)
		return NULL;
	for (long i = 0; i < n; i++) {
		PyObject *t = Py_BuildValue("(iiikLk)", o[i].side, o[i].ord_type, o[i].tif,
					    (unsigned long)o[i].symbol_id, (long long)o[i].price,
					    (unsigned long)o[i].qty);
		if (t == NULL) {
			Py_DECREF(list);
			return NULL;
		}
		PyList_SET_ITEM(list, i, t);
	}
	return list;
}

static PyObject *json_orders(PyObject *self, PyObject *args)
{
	(void)self;
	Py_buffer buf;
	int batch;
	Py_ssize_t max;
	if (!PyArg_ParseTuple(args, "y*pn", &buf, &batch, &max))
		return NULL;
	if (!ready() || cfg.jnames == NULL || max < 1 || max > MAX_ORDERS) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_ValueError,
					"json_orders: configure_json() and 1 <= max");
		PyBuffer_Release(&buf);
		return NULL;
	}
	size_t cap = batch ? (size_t)max : 1;
	struct xf_order *o = PyMem_Malloc(cap * sizeof(*o));
	if (o == NULL) {
		PyBuffer_Release(&buf);
		return PyErr_NoMemory();
	}
	long n = xf_json_orders(buf.buf, (size_t)buf.len, batch, &cfg.jmaps, o, cap);
	PyBuffer_Release(&buf);
	PyObject *res = n < 0 ? Py_NewRef(Py_None) : orders_list(o, n);
	PyMem_Free(o);
	return res;
}

/* -- pb_orders ----------------------------------------------------------------------------- */

static PyObject *pb_orders(PyObject *self, PyObject *args)
{
	(void)self;
	Py_buffer buf;
	unsigned field;
	if (!PyArg_ParseTuple(args, "y*I", &buf, &field))
		return NULL;
	if (!ready() || (field != 1 && field != 2)) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_ValueError, "pb_orders: field 1 or 2");
		PyBuffer_Release(&buf);
		return NULL;
	}
	/* at most one order per 2 bytes of request (an empty NewOrder is refused anyway) */
	size_t cap = (size_t)buf.len / 2 + 1;
	if (cap > MAX_ORDERS)
		cap = MAX_ORDERS;
	struct xf_order *o = PyMem_Malloc(cap * sizeof(*o));
	if (o == NULL) {
		PyBuffer_Release(&buf);
		return PyErr_NoMemory();
	}
	uint64_t ref;
	long n = xf_pb_orders(buf.buf, (size_t)buf.len, field, &cfg.maps, o, cap, &ref);
	PyBuffer_Release(&buf);
	PyObject *res = NULL, *list = NULL;
	if (n < 0) {
		PyMem_Free(o);
		Py_RETURN_NONE;
	}
	list = orders_list(o, n);
	if (list == NULL)
		goto done;
	res = Py_BuildValue("(KO)", (unsigned long long)ref, list);
done:
	Py_XDECREF(list);
	PyMem_Free(o);
	return res;
}

/* -- module -------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "names and codes from the codec (once)"},
    {"pack_new", pack_new, METH_VARARGS, "NewOrder messages of orders[lo:hi]"},
    {"apply", apply, METH_VARARGS, "answers into their entries' columns"},
    {"json_acks", json_acks, METH_VARARGS, "the REST answer of an entry"},
    {"pb_acks", pb_acks, METH_VARARGS, "the serialized acks of an entry"},
    {"pb_orders", pb_orders, METH_VARARGS, "wire orders of a serialized request"},
    {"configure_json", configure_json, METH_VARARGS, "REST order names (once)"},
    {"json_orders", json_orders, METH_VARARGS, "wire orders of a canonical REST body"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_fastwire",
    "xdpex order entry, per-order work in C",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__fastwire(void)
{
	struct {
		PyObject **slot;
		const char *name;
	} names[] = {
	    {&a_chunks, "chunks"},	 {&a_start, "start"},	    {&a_n, "n"},
	    {&a_status, "status"},	 {&a_order_id, "order_id"}, {&a_reason, "reason"},
	    {&a_leaves, "leaves"},	 {&a_filled, "filled"},	    {&a_fills, "fills"},
	    {&a_remaining, "remaining"}, {&a_orders, "orders"},	    {&a_session_id, "session_id"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (*names[i].slot == NULL) {
			*names[i].slot = PyUnicode_InternFromString(names[i].name);
			if (*names[i].slot == NULL)
				return NULL;
		}
	}
	return PyModule_Create(&module);
}
