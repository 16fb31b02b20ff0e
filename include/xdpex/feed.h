/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpex market-data feed v1: the one source of truth for the bytes of the public feed (ITCH-style
 * book messages carried in MoldUDP64 datagrams), its rewind requests and its snapshots, shared by
 * the producer in xdpexd, the rewind and snapshot server (xdpex-feedd), the C subscriber and the
 * tests. The Python codec (proto/xdpex_proto/feed.py), the scapy layers and the Wireshark dissector
 * are checked against the same bytes through tests/golden/feed_vectors.txt. docs/marketdata.md
 * explains the rules (sequencing, rewind, snapshot, subscribing) in prose.
 *
 * Two byte orders, on purpose. The MoldUDP64 framing (struct xf_mold_hdr, struct xf_mold_req and
 * the 2-byte length in front of every message) is big-endian, exactly as the Nasdaq MoldUDP64 1.00
 * specification has it, so any MoldUDP64 tool (Wireshark's moldudp64 dissector, a generic
 * re-request client) handles our datagrams as they are. The messages themselves are the
 * application's business under MoldUDP64; they are little-endian like every other xdpex contract,
 * so C readers on x86 and ARM read them in place through these structs with no swapping. Read the
 * framing with xf_get_be() / the xf_mold_* accessors, never through the struct fields directly.
 *
 * Every message starts with the same 16 bytes (type, a per-type byte, 2 pad bytes, symbol id, the
 * gateway timestamp) and has one fixed size per type (xf_msg_size()); a message block's length
 * must equal it. Prices are signed ticks, quantities unsigned, as in the order protocol. Orders are
 * named by the gateway's order_id (the one the owner's Accepted reported); nothing on the feed
 * names a session.
 */
#ifndef XDPEX_FEED_H
#define XDPEX_FEED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
#define XF_STATIC_ASSERT(c, m) static_assert(c, m)
extern "C" {
#else
#define XF_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#define XF_VERSION 1
#define XF_DEFAULT_PORT 9400 /* live feed (multicast group or unicast subscribers) */
#define XF_REWIND_PORT 9401 /* MoldUDP64 re-request server (UDP) */
#define XF_SNAPSHOT_PORT 9402 /* snapshot server (TCP) */
#define XF_DEFAULT_GROUP "239.77.0.1"
#define XF_MAX_PAYLOAD 1472 /* 1500 MTU - 20 IPv4 - 8 UDP: a datagram is never fragmented */
#define XF_SESSION_LEN 10 /* MoldUDP64 session name: ASCII, left-justified, space-padded */
#define XF_SESSION_PREFIX "XDPEXQ" /* default session of queue q: "XDPEXQ<q>" */
#define XF_MOLD_HDR_SIZE 20
#define XF_MOLD_REQ_SIZE 20
#define XF_BLOCK_HDR 2 /* big-endian message length in front of every message */
#define XF_MSG_HDR_SIZE 16 /* the prefix every message shares */
#define XF_MAX_MSG_SIZE 48
#define XF_MOLD_HEARTBEAT 0x0000 /* count of a heartbeat: no messages, seq = next sequence */
#define XF_MOLD_END 0xFFFF /* count of an end-of-session packet: no messages, seq = next */
#define XF_MOLD_MAX_COUNT 0xFFFE
#define XF_SNAP_REQ_SIZE 16

/*
 * MoldUDP64 downstream packet header (big-endian fields). `seq` is the sequence number of the
 * first message of the packet (messages are numbered 1, 2, 3, ... per session); `count` messages
 * follow, each as a block: 2-byte big-endian length, then the message.
 */
struct xf_mold_hdr {
	char session[XF_SESSION_LEN];
	uint64_t seq; /* big-endian */
	uint16_t count; /* big-endian: messages, or XF_MOLD_HEARTBEAT / XF_MOLD_END */
} __attribute__((packed));

/* MoldUDP64 request packet, subscriber -> rewind server (big-endian fields): messages
 * seq .. seq + count - 1 of `session`, answered by ordinary downstream packets sent to the source
 * address of the request. */
struct xf_mold_req {
	char session[XF_SESSION_LEN];
	uint64_t seq; /* big-endian */
	uint16_t count; /* big-endian */
} __attribute__((packed));

/* Message types: ASCII letters, as in ITCH. */
enum xf_msg_type {
	XF_SYSTEM_EVENT = 'S',
	XF_SYMBOL_STATE = 'H',
	XF_ADD_ORDER = 'A',
	XF_EXECUTED = 'E',
	XF_REDUCED = 'X',
	XF_DELETED = 'D',
	XF_REPLACED = 'U',
	XF_TRADE = 'P',
	/* Only in snapshots (TCP), never in the sequenced feed. */
	XF_SNAPSHOT_BEGIN = 'G',
	XF_SNAPSHOT_END = 'Z',
};

enum xf_side { XF_BUY = 1, XF_SELL = 2 }; /* the order protocol's enum xe_side values */

/* struct xf_system_event.event */
enum xf_sys_event {
	XF_SYS_START_OF_SESSION = 'O', /* the first message of a feed session (sequence 1) */
	XF_SYS_END_OF_SESSION = 'C', /* the last message of a feed session */
};

/* struct xf_symbol_state.state */
enum xf_symbol_state_code {
	XF_STATE_TRADING = 'T',
	XF_STATE_HALTED = 'H', /* no new orders or replaces; cancels still work */
};

/* struct xf_snapshot_begin.status */
enum xf_snap_status {
	XF_SNAP_OK = 0,
	XF_SNAP_UNKNOWN_SESSION = 1,
	XF_SNAP_UNKNOWN_SYMBOL = 2,
	XF_SNAP_BAD_REQUEST = 3,
};

/* The 16 bytes every message starts with. ts: the gateway's wall clock (ns since the Unix epoch)
 * when it received the datagram whose processing caused the message (the batch clock, the same
 * value as recv_ts in the order protocol's answers). */
struct xf_msg_hdr {
	uint8_t type; /* enum xf_msg_type */
	uint8_t aux; /* per type: side, state, event or status; 0 where unused */
	uint8_t pad[2];
	uint32_t symbol_id; /* 0 in system events and in a snapshot of every symbol */
	uint64_t ts;
} __attribute__((packed));

struct xf_system_event {
	uint8_t type; /* XF_SYSTEM_EVENT */
	uint8_t event; /* enum xf_sys_event */
	uint8_t pad[2];
	uint32_t symbol_id; /* 0 */
	uint64_t ts;
} __attribute__((packed));

/* A symbol's trading state changed (or, in a snapshot, is). */
struct xf_symbol_state {
	uint8_t type; /* XF_SYMBOL_STATE */
	uint8_t state; /* enum xf_symbol_state_code */
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
} __attribute__((packed));

/* An order now rests in the book, behind every order at its price: a new order's remainder after
 * its own executions, or (in a snapshot) a resting order in priority order. */
struct xf_add_order {
	uint8_t type; /* XF_ADD_ORDER */
	uint8_t side; /* enum xf_side */
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t order_id;
	int64_t price;
	uint32_t qty; /* shown (open) quantity */
	uint32_t pad2;
} __attribute__((packed));

/* A resting order traded `qty` at `price` (its own price) in match `match_id`; `leaves` is what
 * stays open, and at 0 the order has left the book. */
struct xf_executed {
	uint8_t type; /* XF_EXECUTED */
	uint8_t side; /* the resting order's side */
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t order_id;
	uint64_t match_id; /* the execution id both parties' fills carry */
	int64_t price;
	uint32_t qty;
	uint32_t leaves;
} __attribute__((packed));

/* A resting order's open quantity went down by `qty` to `leaves` (> 0) and it kept its place in
 * the queue (a cancel/replace lowering the quantity at the same price). */
struct xf_reduced {
	uint8_t type; /* XF_REDUCED */
	uint8_t side;
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t order_id;
	uint32_t qty; /* removed */
	uint32_t leaves; /* still open */
} __attribute__((packed));

/* A resting order left the book without trading (cancel, mass cancel, expiry, cancel on
 * disconnect, self-trade prevention, a replace that traded away or was cancelled). */
struct xf_deleted {
	uint8_t type; /* XF_DELETED */
	uint8_t side;
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t order_id;
	uint32_t qty; /* the open quantity removed */
	uint32_t pad2;
} __attribute__((packed));

/* A resting order moved to `price` with open quantity `qty` and lost its time priority: it now
 * rests behind every order at `price`. The order keeps its order_id. */
struct xf_replaced {
	uint8_t type; /* XF_REPLACED */
	uint8_t side;
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t order_id;
	int64_t price;
	uint32_t qty; /* open quantity after the replace */
	uint32_t pad2;
} __attribute__((packed));

/* One match, for the trade tape: `qty` at `price`, `side` the aggressor's. It follows the
 * Executed of the resting order with the same match_id and changes no book. */
struct xf_trade {
	uint8_t type; /* XF_TRADE */
	uint8_t side; /* the aggressor's side (XF_BUY: a buyer took an offer) */
	uint8_t pad[2];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t match_id;
	int64_t price;
	uint32_t qty;
	uint32_t pad2;
} __attribute__((packed));

/* First message of a snapshot: it reflects every feed message of `session` before `next_seq`;
 * `symbols` SYMBOL_STATE messages and `orders` ADD_ORDER messages follow, then SNAPSHOT_END. */
struct xf_snapshot_begin {
	uint8_t type; /* XF_SNAPSHOT_BEGIN */
	uint8_t status; /* enum xf_snap_status; not OK: SNAPSHOT_END follows at once */
	uint8_t pad[2];
	uint32_t symbol_id; /* as requested: 0 = every symbol */
	uint64_t ts; /* of the last message the snapshot reflects (0 if none) */
	uint64_t next_seq;
	uint32_t symbols;
	uint32_t orders;
} __attribute__((packed));

struct xf_snapshot_end {
	uint8_t type; /* XF_SNAPSHOT_END */
	uint8_t pad[3];
	uint32_t symbol_id;
	uint64_t ts;
	uint64_t next_seq; /* the same as in SNAPSHOT_BEGIN */
} __attribute__((packed));

/* Snapshot request, subscriber -> snapshot server over TCP (little-endian). The answer is a stream
 * of message blocks (2-byte big-endian length + message, as in MoldUDP64): SNAPSHOT_BEGIN, per
 * symbol one SYMBOL_STATE and its ADD_ORDERs (bids best price first, then asks best price first,
 * each price level in time priority), SNAPSHOT_END; then the server closes the connection. */
struct xf_snap_req {
	char session[XF_SESSION_LEN];
	uint16_t version; /* XF_VERSION */
	uint32_t symbol_id; /* 0 = every symbol of the session */
} __attribute__((packed));

/* ---- layout checks: the golden vectors and the Python codec depend on every number here ---- */

XF_STATIC_ASSERT(sizeof(struct xf_mold_hdr) == XF_MOLD_HDR_SIZE, "xf_mold_hdr size");
XF_STATIC_ASSERT(sizeof(struct xf_mold_req) == XF_MOLD_REQ_SIZE, "xf_mold_req size");
XF_STATIC_ASSERT(sizeof(struct xf_snap_req) == XF_SNAP_REQ_SIZE, "xf_snap_req size");
XF_STATIC_ASSERT(sizeof(struct xf_msg_hdr) == XF_MSG_HDR_SIZE, "xf_msg_hdr size");
XF_STATIC_ASSERT(sizeof(struct xf_system_event) == 16, "xf_system_event size");
XF_STATIC_ASSERT(sizeof(struct xf_symbol_state) == 16, "xf_symbol_state size");
XF_STATIC_ASSERT(sizeof(struct xf_add_order) == 40, "xf_add_order size");
XF_STATIC_ASSERT(sizeof(struct xf_executed) == 48, "xf_executed size");
XF_STATIC_ASSERT(sizeof(struct xf_reduced) == 32, "xf_reduced size");
XF_STATIC_ASSERT(sizeof(struct xf_deleted) == 32, "xf_deleted size");
XF_STATIC_ASSERT(sizeof(struct xf_replaced) == 40, "xf_replaced size");
XF_STATIC_ASSERT(sizeof(struct xf_trade) == 40, "xf_trade size");
XF_STATIC_ASSERT(sizeof(struct xf_snapshot_begin) == 32, "xf_snapshot_begin size");
XF_STATIC_ASSERT(sizeof(struct xf_snapshot_end) == 24, "xf_snapshot_end size");

#define XF_CHECK_OFF(s, f, o) \
	XF_STATIC_ASSERT(__builtin_offsetof(struct s, f) == (o), #s "." #f " moved")
XF_CHECK_OFF(xf_mold_hdr, seq, 10);
XF_CHECK_OFF(xf_mold_hdr, count, 18);
XF_CHECK_OFF(xf_mold_req, seq, 10);
XF_CHECK_OFF(xf_mold_req, count, 18);
XF_CHECK_OFF(xf_snap_req, version, 10);
XF_CHECK_OFF(xf_snap_req, symbol_id, 12);
/* The shared prefix, in every message. */
#define XF_CHECK_PREFIX(s, auxf) \
	XF_CHECK_OFF(s, type, 0); \
	XF_CHECK_OFF(s, auxf, 1); \
	XF_CHECK_OFF(s, symbol_id, 4); \
	XF_CHECK_OFF(s, ts, 8)
XF_CHECK_PREFIX(xf_msg_hdr, aux);
XF_CHECK_PREFIX(xf_system_event, event);
XF_CHECK_PREFIX(xf_symbol_state, state);
XF_CHECK_PREFIX(xf_add_order, side);
XF_CHECK_PREFIX(xf_executed, side);
XF_CHECK_PREFIX(xf_reduced, side);
XF_CHECK_PREFIX(xf_deleted, side);
XF_CHECK_PREFIX(xf_replaced, side);
XF_CHECK_PREFIX(xf_trade, side);
XF_CHECK_PREFIX(xf_snapshot_begin, status);
XF_CHECK_OFF(xf_snapshot_end, symbol_id, 4);
XF_CHECK_OFF(xf_snapshot_end, ts, 8);
XF_CHECK_OFF(xf_add_order, order_id, 16);
XF_CHECK_OFF(xf_add_order, price, 24);
XF_CHECK_OFF(xf_add_order, qty, 32);
XF_CHECK_OFF(xf_executed, order_id, 16);
XF_CHECK_OFF(xf_executed, match_id, 24);
XF_CHECK_OFF(xf_executed, price, 32);
XF_CHECK_OFF(xf_executed, qty, 40);
XF_CHECK_OFF(xf_executed, leaves, 44);
XF_CHECK_OFF(xf_reduced, order_id, 16);
XF_CHECK_OFF(xf_reduced, qty, 24);
XF_CHECK_OFF(xf_reduced, leaves, 28);
XF_CHECK_OFF(xf_deleted, order_id, 16);
XF_CHECK_OFF(xf_deleted, qty, 24);
XF_CHECK_OFF(xf_replaced, order_id, 16);
XF_CHECK_OFF(xf_replaced, price, 24);
XF_CHECK_OFF(xf_replaced, qty, 32);
XF_CHECK_OFF(xf_trade, match_id, 16);
XF_CHECK_OFF(xf_trade, price, 24);
XF_CHECK_OFF(xf_trade, qty, 32);
XF_CHECK_OFF(xf_snapshot_begin, next_seq, 16);
XF_CHECK_OFF(xf_snapshot_begin, symbols, 24);
XF_CHECK_OFF(xf_snapshot_begin, orders, 28);
XF_CHECK_OFF(xf_snapshot_end, next_seq, 16);

/* ---- helpers ---- */

/* The size of a message of `type`, 0 for a type this version does not define. */
static inline size_t xf_msg_size(unsigned type)
{
	switch (type) {
	case XF_SYSTEM_EVENT: return sizeof(struct xf_system_event);
	case XF_SYMBOL_STATE: return sizeof(struct xf_symbol_state);
	case XF_ADD_ORDER: return sizeof(struct xf_add_order);
	case XF_EXECUTED: return sizeof(struct xf_executed);
	case XF_REDUCED: return sizeof(struct xf_reduced);
	case XF_DELETED: return sizeof(struct xf_deleted);
	case XF_REPLACED: return sizeof(struct xf_replaced);
	case XF_TRADE: return sizeof(struct xf_trade);
	case XF_SNAPSHOT_BEGIN: return sizeof(struct xf_snapshot_begin);
	case XF_SNAPSHOT_END: return sizeof(struct xf_snapshot_end);
	default: return 0;
	}
}

static inline const char *xf_msg_type_name(unsigned type)
{
	switch (type) {
	case XF_SYSTEM_EVENT: return "SYSTEM_EVENT";
	case XF_SYMBOL_STATE: return "SYMBOL_STATE";
	case XF_ADD_ORDER: return "ADD_ORDER";
	case XF_EXECUTED: return "EXECUTED";
	case XF_REDUCED: return "REDUCED";
	case XF_DELETED: return "DELETED";
	case XF_REPLACED: return "REPLACED";
	case XF_TRADE: return "TRADE";
	case XF_SNAPSHOT_BEGIN: return "SNAPSHOT_BEGIN";
	case XF_SNAPSHOT_END: return "SNAPSHOT_END";
	default: return NULL;
	}
}

/* Whether `type` travels in the sequenced feed (not only in snapshots). */
static inline int xf_msg_sequenced(unsigned type)
{
	return xf_msg_size(type) && type != XF_SNAPSHOT_BEGIN && type != XF_SNAPSHOT_END;
}

/* Big-endian integers of 2 or 8 bytes (the MoldUDP64 framing), on any host and alignment. */
static inline uint64_t xf_get_be(const void *p, size_t size)
{
	const unsigned char *b = (const unsigned char *)p;
	uint64_t v = 0;

	for (size_t i = 0; i < size; i++)
		v = (v << 8) | b[i];
	return v;
}

static inline void xf_put_be(void *p, size_t size, uint64_t v)
{
	unsigned char *b = (unsigned char *)p;

	for (size_t i = size; i > 0; i--) {
		b[i - 1] = (unsigned char)v;
		v >>= 8;
	}
}

/* Little-endian integers of 1, 2, 4 or 8 bytes (the messages), on any host and alignment. */
static inline uint64_t xf_get_le(const void *p, size_t size)
{
	const unsigned char *b = (const unsigned char *)p;
	uint64_t v = 0;

	for (size_t i = size; i > 0; i--)
		v = (v << 8) | b[i - 1];
	return v;
}

/* The MoldUDP64 session name of `queue` under `prefix` (NULL: XF_SESSION_PREFIX), space-padded.
 * -1 if it does not fit in 10 characters. */
static inline int xf_session_name(char out[XF_SESSION_LEN], const char *prefix, int queue)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%s%d", prefix ? prefix : XF_SESSION_PREFIX, queue);

	if (n < 0 || n > XF_SESSION_LEN)
		return -1;
	memset(out, ' ', XF_SESSION_LEN);
	memcpy(out, buf, (size_t)n);
	return 0;
}

/* Writes a MoldUDP64 header (downstream packet or request: the same layout). */
static inline void xf_mold_put_hdr(void *out, const char session[XF_SESSION_LEN], uint64_t seq,
				   uint16_t count)
{
	unsigned char *b = (unsigned char *)out;

	memcpy(b, session, XF_SESSION_LEN);
	xf_put_be(b + 10, 8, seq);
	xf_put_be(b + 18, 2, count);
}

/* ---- datagram validation ---- */

/*
 * Return rule: xf_parse_datagram() returns 0 or a negative enum xf_parse_error and fills the
 * caller's struct xf_parse_err, which xf_parse_errstr() turns into one line naming the field, e.g.
 * "block[2].length: 40, ADD_ORDER is 40 bytes" ... The Python codec has the same checks in the
 * same order with the same texts; the golden vectors hold both to it.
 */
enum xf_parse_error {
	XF_PERR_OK = 0,
	XF_PERR_SHORT = -1, /* shorter than the 20-byte MoldUDP64 header */
	XF_PERR_SESSION = -2, /* a session byte that is not printable ASCII */
	XF_PERR_SEQ = -3, /* sequence 0, or seq + count - 1 overflows */
	XF_PERR_EMPTY_TRAILING = -4, /* heartbeat / end of session with bytes after the header */
	XF_PERR_BLOCK_SHORT = -5, /* a block's length field cut off by the end of the datagram */
	XF_PERR_BLOCK_TRUNCATED = -6, /* a message longer than what is left of the datagram */
	XF_PERR_TRAILING = -7, /* bytes after `count` blocks */
	XF_PERR_MSG_TYPE = -8, /* a type this version does not define, or a snapshot-only type */
	XF_PERR_MSG_LENGTH = -9, /* block length disagrees with the type's size */
};
#define XF_PERR_MIN XF_PERR_MSG_LENGTH

struct xf_parse_err {
	int code; /* enum xf_parse_error */
	int index; /* message index, -1 for the header or the datagram as a whole */
	uint64_t value; /* the offending value */
	uint64_t aux; /* a second number for the text */
};

/* A downstream packet xf_parse_datagram() accepted. */
struct xf_mold_view {
	const unsigned char *session; /* XF_SESSION_LEN bytes */
	uint64_t seq;
	uint16_t count; /* messages (0 for a heartbeat and an end of session) */
	int heartbeat, end; /* count was XF_MOLD_HEARTBEAT / XF_MOLD_END */
	const unsigned char *blocks; /* the first block */
	size_t len; /* bytes of blocks */
};

static inline const char *xf_parse_error_name(int code)
{
	static const char *const names[] = {
	    "XF_PERR_OK",
	    "XF_PERR_SHORT",
	    "XF_PERR_SESSION",
	    "XF_PERR_SEQ",
	    "XF_PERR_EMPTY_TRAILING",
	    "XF_PERR_BLOCK_SHORT",
	    "XF_PERR_BLOCK_TRUNCATED",
	    "XF_PERR_TRAILING",
	    "XF_PERR_MSG_TYPE",
	    "XF_PERR_MSG_LENGTH",
	};
	if (code > 0 || code < XF_PERR_MIN)
		return "XF_PERR_UNKNOWN";
	return names[-code];
}

static inline int xf__fail(struct xf_parse_err *e, int code, int index, uint64_t value,
			   uint64_t aux)
{
	if (e) {
		e->code = code;
		e->index = index;
		e->value = value;
		e->aux = aux;
	}
	return code;
}

/* Whether a session name byte is valid: printable ASCII (letters, digits, space, punctuation). */
static inline int xf_session_byte_ok(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/*
 * Validates the MoldUDP64 downstream packet buf[0..len): header, every block, and every message's
 * type and size (snapshot-only types are refused: they never travel in the feed). Sets *v.
 */
static inline int xf_parse_datagram(const void *buf, size_t len, struct xf_mold_view *v,
				    struct xf_parse_err *err)
{
	const unsigned char *b = (const unsigned char *)buf;
	uint64_t seq;
	unsigned count;
	size_t off = XF_MOLD_HDR_SIZE;

	if (err) {
		memset(err, 0, sizeof(*err));
		err->index = -1;
	}
	if (v)
		memset(v, 0, sizeof(*v));
	if (len < XF_MOLD_HDR_SIZE)
		return xf__fail(err, XF_PERR_SHORT, -1, len, 0);
	for (int i = 0; i < XF_SESSION_LEN; i++)
		if (!xf_session_byte_ok(b[i]))
			return xf__fail(err, XF_PERR_SESSION, -1, b[i], (uint64_t)i);
	seq = xf_get_be(b + 10, 8);
	count = (unsigned)xf_get_be(b + 18, 2);
	if (seq == 0)
		return xf__fail(err, XF_PERR_SEQ, -1, seq, count);
	if (count == XF_MOLD_HEARTBEAT || count == XF_MOLD_END) {
		if (len != XF_MOLD_HDR_SIZE)
			return xf__fail(err, XF_PERR_EMPTY_TRAILING, -1, len, count);
	} else {
		if (seq + (count - 1) < seq)
			return xf__fail(err, XF_PERR_SEQ, -1, seq, count);
		for (unsigned i = 0; i < count; i++) {
			size_t mlen;
			unsigned type;

			if (len - off < XF_BLOCK_HDR)
				return xf__fail(err, XF_PERR_BLOCK_SHORT, (int)i, len - off, 0);
			mlen = (size_t)xf_get_be(b + off, 2);
			if (len - off - XF_BLOCK_HDR < mlen)
				return xf__fail(err, XF_PERR_BLOCK_TRUNCATED, (int)i, mlen,
						len - off - XF_BLOCK_HDR);
			if (mlen == 0)
				return xf__fail(err, XF_PERR_MSG_LENGTH, (int)i, 0, 0);
			type = b[off + XF_BLOCK_HDR];
			if (!xf_msg_sequenced(type))
				return xf__fail(err, XF_PERR_MSG_TYPE, (int)i, type, 0);
			if (mlen != xf_msg_size(type))
				return xf__fail(err, XF_PERR_MSG_LENGTH, (int)i, mlen, type);
			off += XF_BLOCK_HDR + mlen;
		}
		if (off != len)
			return xf__fail(err, XF_PERR_TRAILING, -1, len, off);
	}
	if (v) {
		v->session = b;
		v->seq = seq;
		v->heartbeat = count == XF_MOLD_HEARTBEAT;
		v->end = count == XF_MOLD_END;
		v->count = (uint16_t)(v->heartbeat || v->end ? 0 : count);
		v->blocks = b + XF_MOLD_HDR_SIZE;
		v->len = len - XF_MOLD_HDR_SIZE;
	}
	return 0;
}

/* The message of the block at *pos of a validated datagram (or journal payload), its length in
 * *mlen; advances *pos past the block. */
static inline const unsigned char *xf_next_msg(const unsigned char **pos, size_t *mlen)
{
	const unsigned char *m = *pos + XF_BLOCK_HDR;

	*mlen = (size_t)xf_get_be(*pos, 2);
	*pos = m + *mlen;
	return m;
}

/* One line naming the field and the bad value. Returns what snprintf() returns. */
static inline int xf_parse_errstr(const struct xf_parse_err *e, char *out, size_t n)
{
	unsigned long long v = e->value, aux = e->aux;
	const char *tn = xf_msg_type_name((unsigned)v);
	int i = e->index;

	switch (e->code) {
	case XF_PERR_OK: return snprintf(out, n, "ok");
	case XF_PERR_SHORT:
		return snprintf(out, n,
				"datagram: %llu bytes, shorter than the %d-byte MoldUDP64 "
				"header",
				v, XF_MOLD_HDR_SIZE);
	case XF_PERR_SESSION:
		return snprintf(out, n, "mold.session[%llu]: byte 0x%02llx is not printable ASCII",
				aux, v);
	case XF_PERR_SEQ:
		if (v == 0)
			return snprintf(out, n, "mold.seq: 0, sequence numbers start at 1");
		return snprintf(out, n, "mold.seq: %llu, seq + count - 1 overflows with count %llu",
				v, aux);
	case XF_PERR_EMPTY_TRAILING:
		return snprintf(out, n,
				"datagram: %llu bytes, %s packets are the 20-byte header "
				"alone",
				v, aux == XF_MOLD_END ? "end-of-session" : "heartbeat");
	case XF_PERR_BLOCK_SHORT:
		return snprintf(out, n, "block[%d]: length field cut off, %llu byte%s left", i, v,
				v == 1 ? "" : "s");
	case XF_PERR_BLOCK_TRUNCATED:
		return snprintf(out, n, "block[%d].length: %llu, only %llu bytes left", i, v, aux);
	case XF_PERR_TRAILING:
		return snprintf(out, n, "datagram: %llu bytes, the blocks end at %llu", v, aux);
	case XF_PERR_MSG_TYPE:
		if (tn)
			return snprintf(out, n,
					"msg[%d].type: 0x%02llx (%s), only sent in snapshots", i, v,
					tn);
		return snprintf(out, n, "msg[%d].type: 0x%02llx, unknown message type", i, v);
	case XF_PERR_MSG_LENGTH:
		if (v == 0)
			return snprintf(out, n,
					"block[%d].length: 0, a message has at least a type", i);
		return snprintf(out, n, "block[%d].length: %llu, %s is %zu bytes", i, v,
				xf_msg_type_name((unsigned)aux), xf_msg_size((unsigned)aux));
	default: return snprintf(out, n, "unknown error %d", e->code);
	}
}

#ifdef __cplusplus
}
#endif

#undef XF_CHECK_PREFIX

#endif /* XDPEX_FEED_H */
