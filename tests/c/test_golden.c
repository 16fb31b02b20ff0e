/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Golden vector test of the C side of the wire protocol: parses every datagram of
 * tests/golden/vectors.txt with include/xdpex/parse.h, and checks each header and message field
 * against the entry's decoded meaning at the offset and size proto.h's structs give it. A field
 * of the struct that the entry does not name, or a name the struct does not have, is a failure,
 * so the vectors and proto.h cannot drift apart. Malformed entries must fail with the listed
 * XE_PERR_* code and exactly the listed text. Usage: test_golden [vectors.txt], or
 * test_golden --parse (see parse_stdin()).
 * Prints one line per failure and closes with "N passed, M failed".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex/parse.h"
#include "xdpex/proto.h"

#define MAX_DATAGRAM 4096
#define MAX_LINE 16384
#define MAX_MSG_LINES 32

struct field {
	unsigned type; /* message type, 0 for the header */
	const char *name;
	size_t off, size;
	int is_signed;
};

#define FLD(t, st, f, sg) \
	{ \
		t, #f, offsetof(struct st, f), sizeof(((struct st *)0)->f), sg \
	}
#define U(t, st, f) FLD(t, st, f, 0)
#define S(t, st, f) FLD(t, st, f, 1)

/* Every non-pad field of every struct in proto.h. */
static const struct field fields[] = {
    U(0, xe_hdr, magic),
    U(0, xe_hdr, version),
    U(0, xe_hdr, flags),
    U(0, xe_hdr, session_id),
    U(0, xe_hdr, seq),
    U(0, xe_hdr, count),
    U(0, xe_hdr, length),
    U(0, xe_hdr, reserved),

    U(XE_LOGIN, xe_login, type),
    U(XE_LOGIN, xe_login, session_id),
    U(XE_LOGIN, xe_login, next_seq),
    U(XE_LOGIN, xe_login, nonce),
    U(XE_LOGIN, xe_login, hmac),
    U(XE_LOGIN, xe_login, client_ts),

    U(XE_NEW_ORDER, xe_new_order, type),
    U(XE_NEW_ORDER, xe_new_order, side),
    U(XE_NEW_ORDER, xe_new_order, ord_type),
    U(XE_NEW_ORDER, xe_new_order, tif),
    U(XE_NEW_ORDER, xe_new_order, symbol_id),
    U(XE_NEW_ORDER, xe_new_order, cl_ord_id),
    S(XE_NEW_ORDER, xe_new_order, price),
    U(XE_NEW_ORDER, xe_new_order, qty),
    U(XE_NEW_ORDER, xe_new_order, client_ts),

    U(XE_CANCEL, xe_cancel, type),
    U(XE_CANCEL, xe_cancel, symbol_id),
    U(XE_CANCEL, xe_cancel, orig_cl_ord_id),
    U(XE_CANCEL, xe_cancel, client_ts),

    U(XE_REPLACE, xe_replace, type),
    U(XE_REPLACE, xe_replace, symbol_id),
    U(XE_REPLACE, xe_replace, orig_cl_ord_id),
    U(XE_REPLACE, xe_replace, new_cl_ord_id),
    S(XE_REPLACE, xe_replace, price),
    U(XE_REPLACE, xe_replace, qty),
    U(XE_REPLACE, xe_replace, client_ts),

    U(XE_MASS_CANCEL, xe_mass_cancel, type),
    U(XE_MASS_CANCEL, xe_mass_cancel, side),
    U(XE_MASS_CANCEL, xe_mass_cancel, symbol_id),
    U(XE_MASS_CANCEL, xe_mass_cancel, client_ts),

    U(XE_HEARTBEAT, xe_heartbeat, type),
    U(XE_HEARTBEAT, xe_heartbeat, next_seq),
    U(XE_HEARTBEAT, xe_heartbeat, echo_ts),
    U(XE_HEARTBEAT, xe_heartbeat, client_ts),

    U(XE_RETRANSMIT_REQ, xe_retransmit_req, type),
    U(XE_RETRANSMIT_REQ, xe_retransmit_req, from_seq),
    U(XE_RETRANSMIT_REQ, xe_retransmit_req, count),
    U(XE_RETRANSMIT_REQ, xe_retransmit_req, client_ts),

    U(XE_LOGOUT, xe_logout, type),
    U(XE_LOGOUT, xe_logout, reason),
    U(XE_LOGOUT, xe_logout, echo_ts),
    U(XE_LOGOUT, xe_logout, client_ts),

    U(XE_LOGIN_ACCEPTED, xe_login_accepted, type),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, session_id),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, next_in_seq),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, next_out_seq),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, heartbeat_ms),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, epoch),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, echo_ts),
    U(XE_LOGIN_ACCEPTED, xe_login_accepted, recv_ts),

    U(XE_LOGIN_REJECTED, xe_login_rejected, type),
    U(XE_LOGIN_REJECTED, xe_login_rejected, reason),
    U(XE_LOGIN_REJECTED, xe_login_rejected, session_id),
    U(XE_LOGIN_REJECTED, xe_login_rejected, echo_ts),
    U(XE_LOGIN_REJECTED, xe_login_rejected, recv_ts),

    U(XE_ACCEPTED, xe_accepted, type),
    U(XE_ACCEPTED, xe_accepted, side),
    U(XE_ACCEPTED, xe_accepted, ord_type),
    U(XE_ACCEPTED, xe_accepted, tif),
    U(XE_ACCEPTED, xe_accepted, symbol_id),
    U(XE_ACCEPTED, xe_accepted, cl_ord_id),
    U(XE_ACCEPTED, xe_accepted, order_id),
    S(XE_ACCEPTED, xe_accepted, price),
    U(XE_ACCEPTED, xe_accepted, qty),
    U(XE_ACCEPTED, xe_accepted, echo_ts),
    U(XE_ACCEPTED, xe_accepted, recv_ts),

    U(XE_REJECTED, xe_rejected, type),
    U(XE_REJECTED, xe_rejected, ref_type),
    U(XE_REJECTED, xe_rejected, reason),
    U(XE_REJECTED, xe_rejected, symbol_id),
    U(XE_REJECTED, xe_rejected, cl_ord_id),
    U(XE_REJECTED, xe_rejected, ref_seq),
    U(XE_REJECTED, xe_rejected, echo_ts),
    U(XE_REJECTED, xe_rejected, recv_ts),

    U(XE_FILL, xe_fill, type),
    U(XE_FILL, xe_fill, side),
    U(XE_FILL, xe_fill, liquidity),
    U(XE_FILL, xe_fill, symbol_id),
    U(XE_FILL, xe_fill, cl_ord_id),
    U(XE_FILL, xe_fill, exec_id),
    S(XE_FILL, xe_fill, price),
    U(XE_FILL, xe_fill, qty),
    U(XE_FILL, xe_fill, leaves),
    U(XE_FILL, xe_fill, order_id),
    U(XE_FILL, xe_fill, echo_ts),
    U(XE_FILL, xe_fill, recv_ts),

    U(XE_CANCELLED, xe_cancelled, type),
    U(XE_CANCELLED, xe_cancelled, side),
    U(XE_CANCELLED, xe_cancelled, reason),
    U(XE_CANCELLED, xe_cancelled, symbol_id),
    U(XE_CANCELLED, xe_cancelled, cl_ord_id),
    U(XE_CANCELLED, xe_cancelled, order_id),
    S(XE_CANCELLED, xe_cancelled, price),
    U(XE_CANCELLED, xe_cancelled, qty),
    U(XE_CANCELLED, xe_cancelled, echo_ts),
    U(XE_CANCELLED, xe_cancelled, recv_ts),

    U(XE_REPLACED, xe_replaced, type),
    U(XE_REPLACED, xe_replaced, side),
    U(XE_REPLACED, xe_replaced, symbol_id),
    U(XE_REPLACED, xe_replaced, cl_ord_id),
    U(XE_REPLACED, xe_replaced, order_id),
    S(XE_REPLACED, xe_replaced, price),
    U(XE_REPLACED, xe_replaced, qty),
    U(XE_REPLACED, xe_replaced, leaves),
    U(XE_REPLACED, xe_replaced, orig_cl_ord_id),
    U(XE_REPLACED, xe_replaced, echo_ts),
    U(XE_REPLACED, xe_replaced, recv_ts),

    U(XE_SEQUENCE_GAP, xe_sequence_gap, type),
    U(XE_SEQUENCE_GAP, xe_sequence_gap, expected),
    U(XE_SEQUENCE_GAP, xe_sequence_gap, received),
    U(XE_SEQUENCE_GAP, xe_sequence_gap, echo_ts),
    U(XE_SEQUENCE_GAP, xe_sequence_gap, recv_ts),
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

struct entry {
	char name[128], dir[16], error[64], text[512];
	char *hex, *hdr, *msgs[MAX_MSG_LINES];
	int n_msgs, line;
};

static int failed_now; /* failures reported for the current entry */

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

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex into out; returns the byte count or -1. */
static long unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s), i;

	if (n % 2 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static unsigned type_by_name(const char *name)
{
	for (unsigned t = 1; t < 256; t++) {
		const char *n = xe_msg_type_name(t);

		if (n && !strcmp(n, name))
			return t;
	}
	return 0;
}

/*
 * Checks "k=v k=v ..." against the bytes at base, for the fields of `type`: every key must be a
 * field of the struct, and every field of the struct must be named.
 */
static void check_fields(const struct entry *e, const char *what, unsigned type, const char *line,
			 const unsigned char *base)
{
	char buf[MAX_LINE], *save = NULL, *tok;
	int seen[N_FIELDS] = {0};

	snprintf(buf, sizeof(buf), "%s", line);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		const struct field *f = NULL;
		size_t k;

		if (!eq) {
			fail(e, "%s: token '%s' is not key=value", what, tok);
			continue;
		}
		*eq = '\0';
		for (k = 0; k < N_FIELDS; k++) {
			if (fields[k].type == type && !strcmp(fields[k].name, tok)) {
				f = &fields[k];
				break;
			}
		}
		if (!f) {
			fail(e, "%s: %s is not a field of this struct in proto.h", what, tok);
			continue;
		}
		seen[k] = 1;
		const char *val = eq + 1;
		const unsigned char *p = base + f->off;

		if (!strcmp(f->name, "type") || !strcmp(f->name, "ref_type")) {
			unsigned want = type_by_name(val);

			if (!want && !strncmp(val, "0x", 2))
				want = (unsigned)strtoul(val, NULL, 16);
			if (p[0] != want)
				fail(e, "%s.%s: wire 0x%02x, expected %s", what, f->name, p[0],
				     val);
		} else if (f->size > 8) {
			unsigned char want[64];
			long n = unhex(val, want, sizeof(want));

			if (n != (long)f->size || memcmp(p, want, f->size))
				fail(e, "%s.%s: wire bytes differ from %s", what, f->name, val);
		} else {
			__u64 wire = xe_get_le(p, f->size);
			char *end;

			errno = 0;
			if (f->is_signed) {
				long long want = strtoll(val, &end, 0);

				if (*end || errno)
					fail(e, "%s.%s: bad value '%s'", what, f->name, val);
				else if ((long long)wire != want)
					fail(e, "%s.%s: wire %lld, expected %lld", what, f->name,
					     (long long)wire, want);
			} else {
				unsigned long long want = strtoull(val, &end, 0);

				if (*end || errno)
					fail(e, "%s.%s: bad value '%s'", what, f->name, val);
				else if (wire != want)
					fail(e, "%s.%s: wire %llu, expected %llu", what, f->name,
					     (unsigned long long)wire, want);
			}
		}
	}
	for (size_t k = 0; k < N_FIELDS; k++)
		if (fields[k].type == type && !seen[k])
			fail(e, "%s: field %s of the proto.h struct is not in the vector", what,
			     fields[k].name);
}

static void check_entry(const struct entry *e)
{
	static unsigned char buf[MAX_DATAGRAM];
	const struct xe_hdr *hdr = NULL;
	struct xe_parse_err err;
	enum xe_dir dir;
	char text[512];
	long len;
	int rc;

	if (!strcmp(e->dir, "TO_GW"))
		dir = XE_DIR_TO_GW;
	else if (!strcmp(e->dir, "FROM_GW"))
		dir = XE_DIR_FROM_GW;
	else if (!strcmp(e->dir, "AUTO"))
		dir = XE_DIR_AUTO;
	else {
		fail(e, "bad dir '%s'", e->dir);
		return;
	}
	if (!e->hex || (len = unhex(e->hex, buf, sizeof(buf))) < 0) {
		fail(e, "missing or bad hex");
		return;
	}

	rc = xe_parse_datagram(buf, (size_t)len, dir, &hdr, &err);
	xe_parse_errstr(&err, text, sizeof(text));
	if (e->error[0]) {
		if (strcmp(xe_parse_error_name(rc), e->error))
			fail(e, "parse returned %s (%s), expected %s", xe_parse_error_name(rc),
			     text, e->error);
		else if (strcmp(text, e->text))
			fail(e, "error text '%s', expected '%s'", text, e->text);
		if (rc == 0 || hdr)
			fail(e, "malformed datagram parsed");
		return;
	}
	if (rc) {
		fail(e, "parse failed: %s: %s", xe_parse_error_name(rc), text);
		return;
	}
	if (hdr != (const void *)buf) {
		fail(e, "hdr does not point at the datagram");
		return;
	}
	if (!e->hdr) {
		fail(e, "no hdr line");
		return;
	}
	check_fields(e, "hdr", 0, e->hdr, buf);
	/* The same values through the proto.h struct itself, not only through offsets. */
	if (hdr->magic != XE_MAGIC || hdr->version != XE_VERSION ||
	    hdr->length != XE_HDR_SIZE + hdr->count * XE_MSG_SIZE || hdr->length != len)
		fail(e, "struct xe_hdr disagrees with the wire");
	if (e->n_msgs != hdr->count) {
		fail(e, "%d msg lines for count %u", e->n_msgs, hdr->count);
		return;
	}
	for (int i = 0; i < e->n_msgs; i++) {
		const unsigned char *m = (const unsigned char *)xe_msg_at(hdr, (unsigned)i);
		char what[32];

		snprintf(what, sizeof(what), "msg[%d]", i);
		check_fields(e, what, m[0], e->msgs[i], m);
	}
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

/*
 * --parse mode, for the differential test against the Python codec (tests/test_proto_parity.py):
 * reads "DIR HEX" lines on stdin and prints "XE_PERR_* text" (or "XE_PERR_OK count") per line.
 */
static int parse_stdin(void)
{
	static char line[MAX_LINE];
	static unsigned char buf[MAX_DATAGRAM];

	while (fgets(line, sizeof(line), stdin)) {
		char *hex = strchr(line, ' '), text[512];
		const struct xe_hdr *hdr;
		struct xe_parse_err err;
		long len;
		int rc, dir;

		if (!hex) {
			fprintf(stderr, "test_golden --parse: expected 'DIR HEX'\n");
			return 2;
		}
		*hex++ = '\0';
		hex[strcspn(hex, "\r\n")] = '\0';
		dir = atoi(line);
		len = unhex(hex, buf, sizeof(buf));
		if (len < 0 || dir < XE_DIR_TO_GW || dir > XE_DIR_AUTO) {
			fprintf(stderr, "test_golden --parse: bad line\n");
			return 2;
		}
		rc = xe_parse_datagram(buf, (size_t)len, (enum xe_dir)dir, &hdr, &err);
		if (rc)
			xe_parse_errstr(&err, text, sizeof(text));
		else
			snprintf(text, sizeof(text), "%u", (unsigned)hdr->count);
		printf("%s %s\n", xe_parse_error_name(rc), text);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--parse"))
		return parse_stdin();

	const char *path = argc > 1 ? argv[1] : "tests/golden/vectors.txt";
	static char line[MAX_LINE];
	struct entry e = {0};
	int passed = 0, failed = 0, lineno = 0, have = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "test_golden: cannot open %s: %s\n", path, strerror(errno));
		return 2;
	}
	for (;;) {
		char *got = fgets(line, sizeof(line), f);
		size_t n;

		lineno++;
		if (got) {
			n = strlen(line);
			if (n && line[n - 1] != '\n' && !feof(f)) {
				fprintf(stderr, "test_golden: %s:%d: line too long\n", path,
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
				if (failed_now)
					failed++;
				else
					passed++;
				reset(&e);
				have = 0;
			}
			if (!got)
				break;
			continue;
		}
		char *sep = strstr(line, ": ");

		if (!sep) {
			fprintf(stderr, "test_golden: %s:%d: expected 'key: value'\n", path,
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
		else if (!strcmp(key, "dir"))
			snprintf(e.dir, sizeof(e.dir), "%s", val);
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
		else if (strcmp(key, "secret")) { /* the HMAC key is checked by the Python tests */
			fprintf(stderr, "test_golden: %s:%d: unknown key '%s'\n", path, lineno,
				key);
			return 2;
		}
	}
	fclose(f);
	if (passed + failed == 0) {
		fprintf(stderr, "test_golden: no vectors in %s\n", path);
		return 2;
	}
	printf("test_golden: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
