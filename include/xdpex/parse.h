/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdpex wire protocol v1: parser and validator for whole datagrams, for user-space C and C++ (the
 * dataplane, the load generator, tests). Header-only, no allocation, no global state; the only
 * library call is snprintf() in xe_parse_errstr().
 *
 * Return rule (stated once): every function returning int returns 0 on success or a negative
 * enum xe_parse_error, and fills the caller's struct xe_parse_err with the field, message index and
 * offending value, which xe_parse_errstr() turns into one line such as
 *   "hdr.count: 23, expected 1..22"      or      "msg[2].type: 0x99, unknown message type".
 * The checks, their order and these texts are the same as in proto/xdpex_proto/codec.py; the
 * golden vectors (tests/golden/vectors.txt) hold both to it. docs/protocol.md lists them.
 */
#ifndef XDPEX_PARSE_H
#define XDPEX_PARSE_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "xdpex/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

enum xe_parse_error {
	XE_PERR_OK = 0,
	XE_PERR_SHORT = -1, /* buffer shorter than the header */
	XE_PERR_MAGIC = -2,
	XE_PERR_VERSION = -3,
	XE_PERR_FLAGS = -4, /* unknown flag bits */
	XE_PERR_COUNT = -5, /* count 0 or above XE_MAX_MSGS */
	XE_PERR_LENGTH = -6, /* length field disagrees with count */
	XE_PERR_TRUNCATED = -7, /* buffer shorter than the length field */
	XE_PERR_TRAILING = -8, /* buffer longer than the length field */
	XE_PERR_SESSION = -9, /* session_id 0 */
	XE_PERR_DIRECTION = -10, /* FROM_GW / RETRANSMIT flag disagrees with the direction */
	XE_PERR_MSG_TYPE = -11, /* unknown message type */
	XE_PERR_MSG_DIRECTION = -12, /* message type not sent in this direction */
	XE_PERR_MSG_KIND = -13, /* application message with seq 0, session message with seq != 0 */
	XE_PERR_FLAG_KIND = -14, /* HEARTBEAT flag with other messages, RETRANSMIT with seq 0 */
	XE_PERR_SEQ_WRAP = -15, /* seq + count - 1 overflows */
};
#define XE_PERR_MIN XE_PERR_SEQ_WRAP

/* Which way a datagram travels. AUTO takes it from XE_F_FROM_GW (captures, tests). */
enum xe_dir { XE_DIR_TO_GW = 0, XE_DIR_FROM_GW = 1, XE_DIR_AUTO = 2 };

/* Sub-cases of an error that share a code, so the text can say exactly what is wrong. */
enum xe_perr_detail {
	XE_PD_NONE = 0,
	XE_PD_FROM_GW_SET, /* DIRECTION: FROM_GW on a client -> gateway datagram */
	XE_PD_FROM_GW_MISSING, /* DIRECTION: FROM_GW missing on a gateway -> client datagram */
	XE_PD_RETRANSMIT_TO_GW, /* DIRECTION: RETRANSMIT on a client -> gateway datagram */
	XE_PD_APP_IN_SESSION, /* MSG_KIND */
	XE_PD_SESSION_IN_APP, /* MSG_KIND */
	XE_PD_HEARTBEAT_MIXED, /* FLAG_KIND */
	XE_PD_RETRANSMIT_SESSION, /* FLAG_KIND */
};

struct xe_parse_err {
	int code; /* enum xe_parse_error */
	int detail; /* enum xe_perr_detail */
	int index; /* message index, -1 for the header or the datagram as a whole */
	int dir; /* resolved direction, enum xe_dir (never AUTO once the header parsed) */
	__u64 value; /* the offending value (field value, or buffer length) */
	__u64 aux; /* second number for the text: expected length, flags, seq */
};

/* Message kinds: a session message travels with seq 0, an application message with seq != 0. */
enum xe_msg_kind { XE_KIND_UNKNOWN = 0, XE_KIND_SESSION = 1, XE_KIND_APP = 2 };

/* Direction bits for xe_msg_dirs(). */
#define XE_MSG_TO_GW 0x1
#define XE_MSG_FROM_GW 0x2

static inline const char *xe_msg_type_name(unsigned type)
{
	switch (type) {
	case XE_LOGIN: return "LOGIN";
	case XE_NEW_ORDER: return "NEW_ORDER";
	case XE_CANCEL: return "CANCEL";
	case XE_REPLACE: return "REPLACE";
	case XE_MASS_CANCEL: return "MASS_CANCEL";
	case XE_HEARTBEAT: return "HEARTBEAT";
	case XE_RETRANSMIT_REQ: return "RETRANSMIT_REQ";
	case XE_LOGOUT: return "LOGOUT";
	case XE_LOGIN_ACCEPTED: return "LOGIN_ACCEPTED";
	case XE_LOGIN_REJECTED: return "LOGIN_REJECTED";
	case XE_ACCEPTED: return "ACCEPTED";
	case XE_REJECTED: return "REJECTED";
	case XE_FILL: return "FILL";
	case XE_CANCELLED: return "CANCELLED";
	case XE_REPLACED: return "REPLACED";
	case XE_SEQUENCE_GAP: return "SEQUENCE_GAP";
	default: return NULL;
	}
}

static inline int xe_msg_kind(unsigned type)
{
	switch (type) {
	case XE_LOGIN:
	case XE_HEARTBEAT:
	case XE_RETRANSMIT_REQ:
	case XE_LOGOUT:
	case XE_LOGIN_ACCEPTED:
	case XE_LOGIN_REJECTED:
	case XE_SEQUENCE_GAP: return XE_KIND_SESSION;
	case XE_NEW_ORDER:
	case XE_CANCEL:
	case XE_REPLACE:
	case XE_MASS_CANCEL:
	case XE_ACCEPTED:
	case XE_REJECTED:
	case XE_FILL:
	case XE_CANCELLED:
	case XE_REPLACED: return XE_KIND_APP;
	default: return XE_KIND_UNKNOWN;
	}
}

/* XE_MSG_TO_GW | XE_MSG_FROM_GW bits; 0 for an unknown type. */
static inline int xe_msg_dirs(unsigned type)
{
	if (xe_msg_kind(type) == XE_KIND_UNKNOWN)
		return 0;
	if (type == XE_HEARTBEAT || type == XE_LOGOUT)
		return XE_MSG_TO_GW | XE_MSG_FROM_GW;
	return type < 0x80 ? XE_MSG_TO_GW : XE_MSG_FROM_GW;
}

static inline const char *xe_parse_error_name(int code)
{
	static const char *const names[] = {
	    "XE_PERR_OK",
	    "XE_PERR_SHORT",
	    "XE_PERR_MAGIC",
	    "XE_PERR_VERSION",
	    "XE_PERR_FLAGS",
	    "XE_PERR_COUNT",
	    "XE_PERR_LENGTH",
	    "XE_PERR_TRUNCATED",
	    "XE_PERR_TRAILING",
	    "XE_PERR_SESSION",
	    "XE_PERR_DIRECTION",
	    "XE_PERR_MSG_TYPE",
	    "XE_PERR_MSG_DIRECTION",
	    "XE_PERR_MSG_KIND",
	    "XE_PERR_FLAG_KIND",
	    "XE_PERR_SEQ_WRAP",
	};
	if (code > 0 || code < XE_PERR_MIN)
		return "XE_PERR_UNKNOWN";
	return names[-code];
}

static inline int xe__fail(struct xe_parse_err *e, int code, int detail, int index, __u64 value,
			   __u64 aux)
{
	if (e) {
		e->code = code;
		e->detail = detail;
		e->index = index;
		e->value = value;
		e->aux = aux;
	}
	return code;
}

/* Reads a little-endian integer of 1, 2, 4 or 8 bytes (the wire order on any host). */
static inline __u64 xe_get_le(const void *p, size_t size)
{
	const unsigned char *b = (const unsigned char *)p;
	__u64 v = 0;

	for (size_t i = size; i > 0; i--)
		v = (v << 8) | b[i - 1];
	return v;
}

/* Message i of a datagram that xe_parse_datagram() accepted. */
static inline const void *xe_msg_at(const struct xe_hdr *h, unsigned i)
{
	return (const unsigned char *)h + XE_HDR_SIZE + (size_t)i * XE_MSG_SIZE;
}

/*
 * Validates the datagram in buf[0..len) travelling in direction dir and sets *hdr to its header
 * (buf itself; messages follow at xe_msg_at()). Fields are read with xe_get_le(), so the buffer
 * needs no alignment. err (may be NULL) says what failed; err->dir is the resolved direction.
 */
static inline int xe_parse_datagram(const void *buf, size_t len, enum xe_dir dir,
				    const struct xe_hdr **hdr, struct xe_parse_err *err)
{
	const unsigned char *b = (const unsigned char *)buf;
	unsigned magic, version, flags, count, length;
	__u64 seq;
	int kind, to_gw;

	if (err) {
		memset(err, 0, sizeof(*err));
		err->index = -1;
		err->dir = dir;
	}
	if (hdr)
		*hdr = NULL;
	if (len < XE_HDR_SIZE)
		return xe__fail(err, XE_PERR_SHORT, 0, -1, len, 0);
	magic = (unsigned)xe_get_le(b + 0, 2);
	version = b[2];
	flags = b[3];
	seq = xe_get_le(b + 8, 8);
	count = (unsigned)xe_get_le(b + 16, 2);
	length = (unsigned)xe_get_le(b + 18, 2);
	if (magic != XE_MAGIC)
		return xe__fail(err, XE_PERR_MAGIC, 0, -1, magic, 0);
	if (version != XE_VERSION)
		return xe__fail(err, XE_PERR_VERSION, 0, -1, version, 0);
	if (flags & ~XE_F_KNOWN)
		return xe__fail(err, XE_PERR_FLAGS, 0, -1, flags, flags & ~XE_F_KNOWN);
	if (count == 0 || count > XE_MAX_MSGS)
		return xe__fail(err, XE_PERR_COUNT, 0, -1, count, 0);
	if (length != XE_HDR_SIZE + count * XE_MSG_SIZE)
		return xe__fail(err, XE_PERR_LENGTH, 0, -1, length, count);
	if (len < length)
		return xe__fail(err, XE_PERR_TRUNCATED, 0, (int)((len - XE_HDR_SIZE) / XE_MSG_SIZE),
				len, length);
	if (len > length)
		return xe__fail(err, XE_PERR_TRAILING, 0, -1, len, length);
	if (xe_get_le(b + 4, 4) == 0)
		return xe__fail(err, XE_PERR_SESSION, 0, -1, 0, 0);

	if (dir == XE_DIR_AUTO)
		dir = (flags & XE_F_FROM_GW) ? XE_DIR_FROM_GW : XE_DIR_TO_GW;
	if (err)
		err->dir = dir;
	to_gw = dir == XE_DIR_TO_GW;
	if (to_gw && (flags & XE_F_FROM_GW))
		return xe__fail(err, XE_PERR_DIRECTION, XE_PD_FROM_GW_SET, -1, flags, 0);
	if (!to_gw && !(flags & XE_F_FROM_GW))
		return xe__fail(err, XE_PERR_DIRECTION, XE_PD_FROM_GW_MISSING, -1, flags, 0);
	if (to_gw && (flags & XE_F_RETRANSMIT))
		return xe__fail(err, XE_PERR_DIRECTION, XE_PD_RETRANSMIT_TO_GW, -1, flags, 0);
	if (seq == 0 && (flags & XE_F_RETRANSMIT))
		return xe__fail(err, XE_PERR_FLAG_KIND, XE_PD_RETRANSMIT_SESSION, -1, flags, 0);
	if (seq != 0 && seq + (count - 1) < seq)
		return xe__fail(err, XE_PERR_SEQ_WRAP, 0, -1, seq, count);

	for (unsigned i = 0; i < count; i++) {
		unsigned type = b[XE_HDR_SIZE + i * XE_MSG_SIZE];

		kind = xe_msg_kind(type);
		if (kind == XE_KIND_UNKNOWN)
			return xe__fail(err, XE_PERR_MSG_TYPE, 0, (int)i, type, 0);
		if (!(xe_msg_dirs(type) & (to_gw ? XE_MSG_TO_GW : XE_MSG_FROM_GW)))
			return xe__fail(err, XE_PERR_MSG_DIRECTION, 0, (int)i, type, 0);
		if (seq == 0 && kind == XE_KIND_APP)
			return xe__fail(err, XE_PERR_MSG_KIND, XE_PD_APP_IN_SESSION, (int)i, type,
					seq);
		if (seq != 0 && kind == XE_KIND_SESSION)
			return xe__fail(err, XE_PERR_MSG_KIND, XE_PD_SESSION_IN_APP, (int)i, type,
					seq);
		if ((flags & XE_F_HEARTBEAT) && type != XE_HEARTBEAT)
			return xe__fail(err, XE_PERR_FLAG_KIND, XE_PD_HEARTBEAT_MIXED, (int)i, type,
					flags);
	}
	if (hdr)
		*hdr = (const struct xe_hdr *)buf;
	return 0;
}

/*
 * One line naming the field and the bad value, e.g. "hdr.magic: 0x1234, expected 0x4558".
 * Returns what snprintf() returns (the length the full text needs).
 */
static inline int xe_parse_errstr(const struct xe_parse_err *e, char *out, size_t n)
{
	unsigned long long v = e->value, aux = e->aux;
	const char *dirs = e->dir == XE_DIR_TO_GW ? "client -> gateway" : "gateway -> client";
	const char *tn = xe_msg_type_name((unsigned)v);
	int i = e->index;

	switch (e->code) {
	case XE_PERR_OK: return snprintf(out, n, "ok");
	case XE_PERR_SHORT:
		return snprintf(out, n, "datagram: %llu bytes, shorter than the %d-byte header", v,
				XE_HDR_SIZE);
	case XE_PERR_MAGIC:
		return snprintf(out, n, "hdr.magic: 0x%04llx, expected 0x%04x", v, XE_MAGIC);
	case XE_PERR_VERSION:
		return snprintf(out, n, "hdr.version: %llu, expected %d", v, XE_VERSION);
	case XE_PERR_FLAGS:
		return snprintf(out, n, "hdr.flags: 0x%02llx has unknown bits 0x%02llx", v, aux);
	case XE_PERR_COUNT:
		return snprintf(out, n, "hdr.count: %llu, expected 1..%d", v, XE_MAX_MSGS);
	case XE_PERR_LENGTH:
		return snprintf(out, n, "hdr.length: %llu, expected %llu for count %llu", v,
				XE_HDR_SIZE + aux * XE_MSG_SIZE, aux);
	case XE_PERR_TRUNCATED:
		return snprintf(out, n, "msg[%d]: truncated, datagram has %llu of %llu bytes", i, v,
				aux);
	case XE_PERR_TRAILING:
		return snprintf(out, n, "datagram: %llu bytes, hdr.length says %llu", v, aux);
	case XE_PERR_SESSION: return snprintf(out, n, "hdr.session_id: 0, expected nonzero");
	case XE_PERR_DIRECTION:
		if (e->detail == XE_PD_FROM_GW_SET)
			return snprintf(out, n, "hdr.flags: 0x%02llx, FROM_GW set on a %s datagram",
					v, dirs);
		if (e->detail == XE_PD_FROM_GW_MISSING)
			return snprintf(out, n,
					"hdr.flags: 0x%02llx, FROM_GW missing on a %s datagram", v,
					dirs);
		return snprintf(out, n, "hdr.flags: 0x%02llx, RETRANSMIT set on a %s datagram", v,
				dirs);
	case XE_PERR_MSG_TYPE:
		return snprintf(out, n, "msg[%d].type: 0x%02llx, unknown message type", i, v);
	case XE_PERR_MSG_DIRECTION:
		return snprintf(out, n, "msg[%d].type: 0x%02llx (%s), not sent %s", i, v, tn, dirs);
	case XE_PERR_MSG_KIND:
		if (e->detail == XE_PD_APP_IN_SESSION)
			return snprintf(out, n,
					"msg[%d].type: 0x%02llx (%s), application message in a "
					"session datagram (seq 0)",
					i, v, tn);
		return snprintf(out, n,
				"msg[%d].type: 0x%02llx (%s), session message in an application "
				"datagram (seq %llu)",
				i, v, tn, aux);
	case XE_PERR_FLAG_KIND:
		if (e->detail == XE_PD_HEARTBEAT_MIXED)
			return snprintf(out, n,
					"hdr.flags: 0x%02llx, HEARTBEAT set but msg[%d] is %s", aux,
					i, tn);
		return snprintf(out, n,
				"hdr.flags: 0x%02llx, RETRANSMIT set on a session "
				"datagram (seq 0)",
				v);
	case XE_PERR_SEQ_WRAP:
		return snprintf(out, n, "hdr.seq: %llu, seq + count - 1 overflows with count %llu",
				v, aux);
	default: return snprintf(out, n, "unknown parse error %d", e->code);
	}
}

#ifdef __cplusplus
}
#endif

#endif /* XDPEX_PARSE_H */
