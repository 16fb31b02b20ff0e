/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Golden vector test of the C side of the market-data feed: every entry of
 * tests/golden/feed_vectors.txt is checked against include/xdpex/feed.h. PACKET entries go through
 * xf_parse_datagram(); the MoldUDP64 header fields are read big-endian at the offsets of struct
 * xf_mold_hdr and every message field little-endian at the offset and size of its feed.h struct
 * member. A field the entry does not name, or a name the struct does not have, is a failure, so
 * the vectors and feed.h cannot drift apart. Malformed entries must fail with the listed XF_PERR_*
 * code and exactly the listed text. REQUEST, SNAP_REQUEST and BLOCKS entries are checked the same
 * way against struct xf_mold_req, struct xf_snap_req and the message block walk (xf_next_msg).
 * Usage: test_feed_golden [feed_vectors.txt]; prints one line per failure, then "N passed, M
 * failed".
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex/feed.h"

#define MAX_BYTES 4096
#define MAX_LINE 16384
#define MAX_MSG_LINES 64

enum { BE = 1, LE = 0 };

struct field {
	unsigned type; /* message type; 0: MoldUDP64 header/request, 1: snapshot request */
	const char *name;
	size_t off, size;
	int is_signed, big_endian;
};

#define FLD(t, st, f, sg, be) \
	{ \
		t, #f, offsetof(struct st, f), sizeof(((struct st *)0)->f), sg, be \
	}
#define U(t, st, f) FLD(t, st, f, 0, LE)
#define S(t, st, f) FLD(t, st, f, 1, LE)
#define PREFIX(t, st, aux) U(t, st, type), U(t, st, aux), U(t, st, symbol_id), U(t, st, ts)

/* Every non-pad field of every struct in feed.h. */
static const struct field fields[] = {
    FLD(0, xf_mold_hdr, session, 0, BE),
    FLD(0, xf_mold_hdr, seq, 0, BE),
    FLD(0, xf_mold_hdr, count, 0, BE),
    FLD(1, xf_snap_req, session, 0, LE),
    U(1, xf_snap_req, version),
    U(1, xf_snap_req, symbol_id),

    PREFIX(XF_SYSTEM_EVENT, xf_system_event, event),
    PREFIX(XF_SYMBOL_STATE, xf_symbol_state, state),
    PREFIX(XF_ADD_ORDER, xf_add_order, side),
    U(XF_ADD_ORDER, xf_add_order, order_id),
    S(XF_ADD_ORDER, xf_add_order, price),
    U(XF_ADD_ORDER, xf_add_order, qty),
    PREFIX(XF_EXECUTED, xf_executed, side),
    U(XF_EXECUTED, xf_executed, order_id),
    U(XF_EXECUTED, xf_executed, match_id),
    S(XF_EXECUTED, xf_executed, price),
    U(XF_EXECUTED, xf_executed, qty),
    U(XF_EXECUTED, xf_executed, leaves),
    PREFIX(XF_REDUCED, xf_reduced, side),
    U(XF_REDUCED, xf_reduced, order_id),
    U(XF_REDUCED, xf_reduced, qty),
    U(XF_REDUCED, xf_reduced, leaves),
    PREFIX(XF_DELETED, xf_deleted, side),
    U(XF_DELETED, xf_deleted, order_id),
    U(XF_DELETED, xf_deleted, qty),
    PREFIX(XF_REPLACED, xf_replaced, side),
    U(XF_REPLACED, xf_replaced, order_id),
    S(XF_REPLACED, xf_replaced, price),
    U(XF_REPLACED, xf_replaced, qty),
    PREFIX(XF_TRADE, xf_trade, side),
    U(XF_TRADE, xf_trade, match_id),
    S(XF_TRADE, xf_trade, price),
    U(XF_TRADE, xf_trade, qty),
    PREFIX(XF_SNAPSHOT_BEGIN, xf_snapshot_begin, status),
    U(XF_SNAPSHOT_BEGIN, xf_snapshot_begin, next_seq),
    U(XF_SNAPSHOT_BEGIN, xf_snapshot_begin, symbols),
    U(XF_SNAPSHOT_BEGIN, xf_snapshot_begin, orders),
    U(XF_SNAPSHOT_END, xf_snapshot_end, type),
    U(XF_SNAPSHOT_END, xf_snapshot_end, symbol_id),
    U(XF_SNAPSHOT_END, xf_snapshot_end, ts),
    U(XF_SNAPSHOT_END, xf_snapshot_end, next_seq),
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

struct entry {
	char name[128], kind[32], error[64], text[512];
	char *hex, *hdr, *msgs[MAX_MSG_LINES];
	int n_msgs, line;
};

static int failed_now;

static void fail(const struct entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const struct entry *e, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s (line %d): ", e->name, e->line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	failed_now++;
}

static long unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s);

	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return (long)(n / 2);
}

static unsigned type_by_name(const char *name)
{
	for (unsigned t = 1; t < 256; t++) {
		const char *n = xf_msg_type_name(t);

		if (n && !strcmp(n, name))
			return t;
	}
	return 0;
}

/* Checks "k=v ..." against the bytes at base for the fields of `type`, both ways round. */
static void check_fields(const struct entry *e, const char *what, unsigned type, const char *line,
			 const unsigned char *base, size_t avail)
{
	char buf[MAX_LINE], *save = NULL, *tok;
	int seen[N_FIELDS] = {0};

	snprintf(buf, sizeof(buf), "%s", line);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '='), *end;
		const struct field *f = NULL;
		size_t k;

		if (!eq) {
			fail(e, "%s: token '%s' is not key=value", what, tok);
			continue;
		}
		*eq = '\0';
		for (k = 0; k < N_FIELDS; k++)
			if (fields[k].type == type && !strcmp(fields[k].name, tok)) {
				f = &fields[k];
				break;
			}
		if (!f) {
			fail(e, "%s: %s is not a field of this struct in feed.h", what, tok);
			continue;
		}
		seen[k] = 1;
		if (f->off + f->size > avail) {
			fail(e, "%s.%s: beyond the %zu bytes there are", what, f->name, avail);
			continue;
		}
		const char *val = eq + 1;
		const unsigned char *p = base + f->off;

		if (!strcmp(f->name, "type")) {
			if (p[0] != type_by_name(val))
				fail(e, "%s.type: wire 0x%02x, expected %s", what, p[0], val);
		} else if (!strcmp(f->name, "session")) {
			char want[XF_SESSION_LEN];
			size_t n = strlen(val);

			memset(want, ' ', sizeof(want));
			memcpy(want, val, n < sizeof(want) ? n : sizeof(want));
			if (n > sizeof(want) || memcmp(p, want, sizeof(want)))
				fail(e, "%s.session: wire '%.10s', expected '%s'", what,
				     (const char *)p, val);
		} else {
			uint64_t wire =
			    f->big_endian ? xf_get_be(p, f->size) : xf_get_le(p, f->size);

			errno = 0;
			if (f->is_signed) {
				long long want = strtoll(val, &end, 0);
				int64_t sw = f->size == 8 ? (int64_t)wire : (int64_t)(int32_t)wire;

				if (*end || errno || sw != want)
					fail(e, "%s.%s: wire %lld, expected %s", what, f->name,
					     (long long)sw, val);
			} else {
				unsigned long long want = strtoull(val, &end, 0);

				if (*end || errno || wire != want)
					fail(e, "%s.%s: wire %llu, expected %s", what, f->name,
					     (unsigned long long)wire, val);
			}
		}
	}
	for (size_t k = 0; k < N_FIELDS; k++)
		if (fields[k].type == type && !seen[k])
			fail(e, "%s: field %s of the feed.h struct is not in the vector", what,
			     fields[k].name);
}

/* count message blocks from p, each checked against its msg line and its feed.h size. */
static void check_blocks(const struct entry *e, const unsigned char *p, size_t len, int count)
{
	const unsigned char *pos = p, *end = p + len;

	if (e->n_msgs != count) {
		fail(e, "%d msg lines for %d messages", e->n_msgs, count);
		return;
	}
	for (int i = 0; i < count; i++) {
		const unsigned char *m;
		size_t mlen;
		char what[32];

		if (end - pos < XF_BLOCK_HDR) {
			fail(e, "block[%d] missing", i);
			return;
		}
		m = xf_next_msg(&pos, &mlen);
		if (pos > end || mlen != xf_msg_size(m[0])) {
			fail(e, "block[%d]: length %zu for type 0x%02x", i, mlen, m[0]);
			return;
		}
		snprintf(what, sizeof(what), "msg[%d]", i);
		check_fields(e, what, m[0], e->msgs[i], m, mlen);
	}
	if (pos != end)
		fail(e, "%zd bytes after the blocks", end - pos);
}

static void check_entry(const struct entry *e)
{
	static unsigned char buf[MAX_BYTES];
	struct xf_parse_err err;
	struct xf_mold_view v;
	char text[512];
	long len;
	int rc;

	if (!e->hex || (len = unhex(e->hex, buf, sizeof(buf))) < 0) {
		fail(e, "missing or bad hex");
		return;
	}
	if (!strcmp(e->kind, "BLOCKS")) {
		check_blocks(e, buf, (size_t)len, e->n_msgs);
		return;
	}
	if (!e->hdr && !e->error[0]) {
		fail(e, "no hdr line");
		return;
	}
	if (!strcmp(e->kind, "REQUEST")) {
		if (len != XF_MOLD_REQ_SIZE)
			fail(e, "request of %ld bytes", len);
		else
			check_fields(e, "hdr", 0, e->hdr, buf, (size_t)len);
		return;
	}
	if (!strcmp(e->kind, "SNAP_REQUEST")) {
		if (len != XF_SNAP_REQ_SIZE)
			fail(e, "snapshot request of %ld bytes", len);
		else
			check_fields(e, "hdr", 1, e->hdr, buf, (size_t)len);
		return;
	}
	if (strcmp(e->kind, "PACKET")) {
		fail(e, "unknown kind '%s'", e->kind);
		return;
	}
	rc = xf_parse_datagram(buf, (size_t)len, &v, &err);
	xf_parse_errstr(&err, text, sizeof(text));
	if (e->error[0]) {
		if (strcmp(xf_parse_error_name(rc), e->error))
			fail(e, "parse returned %s (%s), expected %s", xf_parse_error_name(rc),
			     text, e->error);
		else if (strcmp(text, e->text))
			fail(e, "error text '%s', expected '%s'", text, e->text);
		return;
	}
	if (rc) {
		fail(e, "parse failed: %s: %s", xf_parse_error_name(rc), text);
		return;
	}
	check_fields(e, "hdr", 0, e->hdr, buf, (size_t)len);
	if (v.session != buf || v.blocks != buf + XF_MOLD_HDR_SIZE || len > XF_MAX_PAYLOAD)
		fail(e, "view does not point into the datagram, or it is too long");
	check_blocks(e, v.blocks, v.len, v.count);
}

static char *dup_str(const char *s)
{
	char *d = strdup(s);

	if (!d) {
		perror("strdup");
		exit(2);
	}
	return d;
}

static void reset(struct entry *e)
{
	free(e->hex);
	free(e->hdr);
	for (int i = 0; i < e->n_msgs; i++)
		free(e->msgs[i]);
	memset(e, 0, sizeof(*e));
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "tests/golden/feed_vectors.txt";
	static char line[MAX_LINE];
	struct entry e = {0};
	int passed = 0, failed = 0, lineno = 0, have = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "test_feed_golden: cannot open %s: %s\n", path, strerror(errno));
		return 2;
	}
	for (;;) {
		char *got = fgets(line, sizeof(line), f), *sep;
		size_t n;

		lineno++;
		if (got) {
			n = strlen(line);
			if (n && line[n - 1] != '\n' && !feof(f)) {
				fprintf(stderr, "test_feed_golden: %s:%d: line too long\n", path,
					lineno);
				return 2;
			}
			while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				line[--n] = '\0';
			if (line[0] == '#')
				continue;
		}
		if (!got || !line[0]) {
			if (have) {
				failed_now = 0;
				check_entry(&e);
				failed += failed_now != 0;
				passed += failed_now == 0;
				reset(&e);
				have = 0;
			}
			if (!got)
				break;
			continue;
		}
		sep = strstr(line, ": ");
		if (!sep) {
			fprintf(stderr, "test_feed_golden: %s:%d: expected 'key: value'\n", path,
				lineno);
			return 2;
		}
		*sep = '\0';
		const char *key = line, *val = sep + 2;

		if (!have)
			e.line = lineno;
		have = 1;
		if (!strcmp(key, "name"))
			snprintf(e.name, sizeof(e.name), "%s", val);
		else if (!strcmp(key, "kind"))
			snprintf(e.kind, sizeof(e.kind), "%s", val);
		else if (!strcmp(key, "hex"))
			e.hex = dup_str(val);
		else if (!strcmp(key, "hdr"))
			e.hdr = dup_str(val);
		else if (!strcmp(key, "msg") && e.n_msgs < MAX_MSG_LINES)
			e.msgs[e.n_msgs++] = dup_str(val);
		else if (!strcmp(key, "error"))
			snprintf(e.error, sizeof(e.error), "%s", val);
		else if (!strcmp(key, "text"))
			snprintf(e.text, sizeof(e.text), "%s", val);
		else {
			fprintf(stderr, "test_feed_golden: %s:%d: unknown key '%s'\n", path, lineno,
				key);
			return 2;
		}
	}
	fclose(f);
	if (passed + failed == 0) {
		fprintf(stderr, "test_feed_golden: no vectors in %s\n", path);
		return 2;
	}
	printf("test_feed_golden: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
