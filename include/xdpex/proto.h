/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdpex wire protocol v1: the single source of truth for the byte layout of every datagram and
 * message, shared by the XDP program (BPF C), the dataplane (C) and the engine (C++). The Python
 * codec and the scapy layers are checked against the same bytes through tests/golden/vectors.txt.
 * docs/protocol.md explains the rules (sequencing, login, retransmission) in prose.
 *
 * Everything is little-endian. A datagram is one header followed by `count` messages of exactly
 * XE_MSG_SIZE bytes each, so its length is fully determined by `count` and can be checked by the
 * XDP program without looking at message bodies. A datagram fits in one 1500-byte Ethernet frame
 * (IPv4 + UDP payload <= 1472 bytes) and is never fragmented.
 *
 * Sequencing: a datagram with seq != 0 carries application messages (orders on the way in,
 * execution reports on the way out), numbered seq, seq + 1, ...; a datagram with seq == 0 carries
 * session messages only (Login, Heartbeat, RetransmitRequest, Logout, LoginAccepted,
 * LoginRejected, SequenceGap), which are not sequenced, not journaled and never retransmitted.
 */
#ifndef XDPEX_PROTO_H
#define XDPEX_PROTO_H

#include <linux/types.h>

#ifdef __cplusplus
#define XE_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define XE_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#define XE_MAGIC 0x4558 /* bytes "XE" on the wire */
#define XE_VERSION 1
#define XE_DEFAULT_PORT 9000
#define XE_MAX_PAYLOAD 1472 /* 1500 MTU - 20 IPv4 - 8 UDP */
#define XE_HDR_SIZE 24
#define XE_MSG_SIZE 64
#define XE_MAX_MSGS ((XE_MAX_PAYLOAD - XE_HDR_SIZE) / XE_MSG_SIZE) /* 22 */
#define XE_HMAC_SIZE 32 /* HMAC-SHA256 */

/* Datagram header flags. */
enum xe_flags {
	XE_F_RETRANSMIT = 0x01, /* messages are a replay from the journal (gateway -> client) */
	XE_F_HEARTBEAT = 0x02, /* the datagram is a pure keep-alive (only Heartbeat messages) */
	XE_F_FROM_GW = 0x04, /* sent by the gateway; set on every gateway -> client datagram */
};
#define XE_F_KNOWN (XE_F_RETRANSMIT | XE_F_HEARTBEAT | XE_F_FROM_GW)

struct xe_hdr {
	__u16 magic; /* XE_MAGIC */
	__u8 version; /* XE_VERSION */
	__u8 flags; /* enum xe_flags */
	__u32 session_id; /* sender's (client) or addressee's (gateway) session, never 0 */
	__u64 seq; /* sequence of the first message, 0 for a session-message datagram */
	__u16 count; /* messages that follow, 1..XE_MAX_MSGS */
	__u16 length; /* total bytes: XE_HDR_SIZE + count * XE_MSG_SIZE */
	__u32 reserved; /* sent as 0, ignored on receipt */
} __attribute__((packed));

/* Message types. Client -> gateway below 0x80, gateway -> client from 0x80; Heartbeat and Logout
 * travel both ways. */
enum xe_msg_type {
	XE_LOGIN = 0x01,
	XE_NEW_ORDER = 0x02,
	XE_CANCEL = 0x03,
	XE_REPLACE = 0x04,
	XE_MASS_CANCEL = 0x05,
	XE_HEARTBEAT = 0x06,
	XE_RETRANSMIT_REQ = 0x07,
	XE_LOGOUT = 0x08,

	XE_LOGIN_ACCEPTED = 0x81,
	XE_LOGIN_REJECTED = 0x82,
	XE_ACCEPTED = 0x83,
	XE_REJECTED = 0x84,
	XE_FILL = 0x85,
	XE_CANCELLED = 0x86,
	XE_REPLACED = 0x87,
	XE_SEQUENCE_GAP = 0x88,
};

enum xe_side { XE_BUY = 1, XE_SELL = 2 };

enum xe_ord_type {
	XE_ORD_LIMIT = 1,
	XE_ORD_MARKET = 2, /* executes against the book, remainder cancelled (NO_LIQUIDITY) */
	XE_ORD_POST_ONLY = 3, /* limit that is rejected rather than cross on entry */
};

enum xe_tif {
	XE_TIF_DAY = 1, /* rests until the end-of-day expiry */
	XE_TIF_GTC = 2, /* rests until cancelled */
	XE_TIF_IOC = 3, /* fills what it can now, the rest is cancelled */
	XE_TIF_FOK = 4, /* fills completely now or is rejected */
};

enum xe_liquidity { XE_LIQ_ADDED = 1 /* maker */, XE_LIQ_REMOVED = 2 /* taker */ };

/* Why an order message was refused (Rejected.reason). */
enum xe_reject_reason {
	XE_REJ_NONE = 0,
	XE_REJ_UNKNOWN_SYMBOL = 1,
	XE_REJ_OFF_TICK = 2,
	XE_REJ_OFF_LOT = 3,
	XE_REJ_OUTSIDE_BAND = 4,
	XE_REJ_BAD_QUANTITY = 5, /* zero, or above the symbol's maximum */
	XE_REJ_BAD_PRICE = 6, /* zero or negative where a price is required */
	XE_REJ_UNKNOWN_ORDER = 7,
	XE_REJ_DUPLICATE_ID = 8, /* client order id already live in this session */
	XE_REJ_POST_ONLY_CROSS = 9,
	XE_REJ_FOK_UNFILLABLE = 10,
	XE_REJ_CAPACITY = 11, /* order pool full */
	XE_REJ_HALTED = 12,
	XE_REJ_BAD_SIDE = 13,
	XE_REJ_BAD_ORDER_TYPE = 14,
	XE_REJ_BAD_TIF = 15,
	XE_REJ_NOT_LOGGED_IN = 16,
	XE_REJ_UNKNOWN_MESSAGE = 17, /* type not valid in this direction or datagram kind */
	XE_REJ_RATE_LIMITED = 18,
	XE_REJ_NO_CHANGE = 19, /* replace that changes neither price nor quantity */
	XE_REJ_REPLACE_QTY = 20, /* replace quantity at or below what has already been filled */
};

/* Why a login was refused (LoginRejected.reason). */
enum xe_login_reason {
	XE_LOGIN_UNKNOWN_SESSION = 1,
	XE_LOGIN_BAD_PROOF = 2, /* HMAC does not verify */
	XE_LOGIN_STALE = 3, /* timestamp outside the allowed skew */
	XE_LOGIN_REPLAYED = 4, /* nonce already used */
	XE_LOGIN_BOUND_ELSEWHERE = 5, /* session is logged in from another address */
	XE_LOGIN_DISABLED = 6,
	XE_LOGIN_BAD_SEQUENCE = 7, /* requested next sequence beyond what the gateway has sent */
};

/* Why a resting order left the book without being filled (Cancelled.reason). */
enum xe_cancel_reason {
	XE_CXL_USER = 1,
	XE_CXL_IOC = 2, /* unfilled remainder of an IOC */
	XE_CXL_MASS = 3,
	XE_CXL_SELF_TRADE = 4,
	XE_CXL_DISCONNECT = 5, /* cancel-on-disconnect */
	XE_CXL_NO_LIQUIDITY = 6, /* unfilled remainder of a market order */
	XE_CXL_EXPIRED = 7, /* DAY order at the end-of-day expiry */
	XE_CXL_HALT = 8,
};

enum xe_logout_reason {
	XE_LOGOUT_USER = 1,
	XE_LOGOUT_TIMEOUT = 2,
	XE_LOGOUT_ADMIN = 3,
	XE_LOGOUT_SWITCHOVER = 4, /* planned handover: log in again at the next gateway address */
};

/*
 * Client -> gateway messages. Every one is XE_MSG_SIZE bytes; `client_ts` (nanoseconds since the
 * Unix epoch, sender's clock) sits at offset 56 in all of them and is echoed in the answers.
 */

/* Login proof: HMAC-SHA256(secret, session_id:u32le || client_ts:u64le || nonce:u64le). */
struct xe_login {
	__u8 type;
	__u8 pad[3];
	__u32 session_id;
	__u64 next_seq; /* next gateway -> client sequence the client wants; the gateway replays
			   from there (0 or the gateway's next = no replay) */
	__u64 nonce;
	__u8 hmac[XE_HMAC_SIZE];
	__u64 client_ts;
} __attribute__((packed));

struct xe_new_order {
	__u8 type;
	__u8 side; /* enum xe_side */
	__u8 ord_type; /* enum xe_ord_type */
	__u8 tif; /* enum xe_tif */
	__u32 symbol_id;
	__u64 cl_ord_id; /* unique among the session's live orders */
	__s64 price; /* ticks; ignored for market orders */
	__u32 qty;
	__u8 pad[28];
	__u64 client_ts;
} __attribute__((packed));

struct xe_cancel {
	__u8 type;
	__u8 pad[3];
	__u32 symbol_id;
	__u64 orig_cl_ord_id;
	__u8 pad2[40];
	__u64 client_ts;
} __attribute__((packed));

/* Quantity down at the same price keeps time priority; a price change or quantity up loses it. */
struct xe_replace {
	__u8 type;
	__u8 pad[3];
	__u32 symbol_id;
	__u64 orig_cl_ord_id;
	__u64 new_cl_ord_id;
	__s64 price;
	__u32 qty; /* new total quantity (filled + leaves) */
	__u8 pad2[20];
	__u64 client_ts;
} __attribute__((packed));

struct xe_mass_cancel {
	__u8 type;
	__u8 side; /* 0 = both sides */
	__u8 pad[2];
	__u32 symbol_id; /* 0 = every symbol */
	__u8 pad2[48];
	__u64 client_ts;
} __attribute__((packed));

/* Both directions: `next_seq` is the sender's next outbound application sequence, so the peer
 * notices a lost tail even when nothing else is flowing. */
struct xe_heartbeat {
	__u8 type;
	__u8 pad[7];
	__u64 next_seq;
	__u8 pad2[32];
	__u64 echo_ts; /* gateway -> client: 0 */
	__u64 client_ts; /* client -> gateway: sender's clock; gateway -> client: gateway clock */
} __attribute__((packed));

struct xe_retransmit_req {
	__u8 type;
	__u8 pad[7];
	__u64 from_seq; /* first gateway -> client sequence wanted */
	__u32 count; /* how many; the gateway may serve fewer and the client asks again */
	__u8 pad2[36];
	__u64 client_ts;
} __attribute__((packed));

/* Both directions. */
struct xe_logout {
	__u8 type;
	__u8 reason; /* enum xe_logout_reason (gateway -> client) */
	__u8 pad[46];
	__u64 echo_ts;
	__u64 client_ts;
} __attribute__((packed));

/*
 * Gateway -> client messages. `echo_ts` (offset 48) is the client_ts of the message that caused
 * this one (0 for a fill or cancel of a resting order caused by someone else) and `recv_ts`
 * (offset 56) the gateway's clock when it received that message.
 */
struct xe_login_accepted {
	__u8 type;
	__u8 pad[3];
	__u32 session_id;
	__u64 next_in_seq; /* next client -> gateway sequence the gateway will apply */
	__u64 next_out_seq; /* next gateway -> client sequence */
	__u32 heartbeat_ms; /* interval at which both sides send heartbeats */
	__u8 pad2[4];
	__u64 epoch; /* the gateway's leadership epoch (0 without high availability) */
	__u8 pad3[8];
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_login_rejected {
	__u8 type;
	__u8 reason; /* enum xe_login_reason */
	__u8 pad[2];
	__u32 session_id;
	__u8 pad2[40];
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_accepted {
	__u8 type;
	__u8 side;
	__u8 ord_type;
	__u8 tif;
	__u32 symbol_id;
	__u64 cl_ord_id;
	__u64 order_id; /* gateway-assigned, unique */
	__s64 price;
	__u32 qty;
	__u8 pad[12];
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_rejected {
	__u8 type;
	__u8 ref_type; /* type of the refused message */
	__u16 reason; /* enum xe_reject_reason */
	__u32 symbol_id;
	__u64 cl_ord_id; /* for Cancel and Replace: the id the message named */
	__u64 ref_seq; /* inbound sequence of the refused message */
	__u8 pad[24];
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_fill {
	__u8 type;
	__u8 side;
	__u8 liquidity; /* enum xe_liquidity */
	__u8 pad;
	__u32 symbol_id;
	__u64 cl_ord_id;
	__u64 exec_id; /* unique per trade, the same on both sides' fills */
	__s64 price; /* the resting order's price */
	__u32 qty;
	__u32 leaves; /* quantity of this order still open after the fill */
	__u64 order_id;
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_cancelled {
	__u8 type;
	__u8 side;
	__u8 reason; /* enum xe_cancel_reason */
	__u8 pad;
	__u32 symbol_id;
	__u64 cl_ord_id;
	__u64 order_id;
	__s64 price;
	__u32 qty; /* quantity removed from the book */
	__u8 pad2[12];
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_replaced {
	__u8 type;
	__u8 side;
	__u8 pad[2];
	__u32 symbol_id;
	__u64 cl_ord_id; /* the new id */
	__u64 order_id;
	__s64 price;
	__u32 qty; /* new total quantity */
	__u32 leaves;
	__u64 orig_cl_ord_id;
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

struct xe_sequence_gap {
	__u8 type;
	__u8 pad[7];
	__u64 expected; /* the gateway applies this sequence next */
	__u64 received; /* first sequence of the datagram that skipped ahead */
	__u8 pad2[24];
	__u64 echo_ts;
	__u64 recv_ts;
} __attribute__((packed));

/* Layout checks: the golden vectors and the Python codec depend on every number here. */
#define XE_CHECK_MSG(s) XE_STATIC_ASSERT(sizeof(struct s) == XE_MSG_SIZE, #s " is not 64 bytes")
XE_STATIC_ASSERT(sizeof(struct xe_hdr) == XE_HDR_SIZE, "xe_hdr is not 24 bytes");
XE_STATIC_ASSERT(XE_MAX_MSGS == 22, "XE_MAX_MSGS changed");
XE_CHECK_MSG(xe_login);
XE_CHECK_MSG(xe_new_order);
XE_CHECK_MSG(xe_cancel);
XE_CHECK_MSG(xe_replace);
XE_CHECK_MSG(xe_mass_cancel);
XE_CHECK_MSG(xe_heartbeat);
XE_CHECK_MSG(xe_retransmit_req);
XE_CHECK_MSG(xe_logout);
XE_CHECK_MSG(xe_login_accepted);
XE_CHECK_MSG(xe_login_rejected);
XE_CHECK_MSG(xe_accepted);
XE_CHECK_MSG(xe_rejected);
XE_CHECK_MSG(xe_fill);
XE_CHECK_MSG(xe_cancelled);
XE_CHECK_MSG(xe_replaced);
XE_CHECK_MSG(xe_sequence_gap);

#define XE_CHECK_OFF(s, f, o) \
	XE_STATIC_ASSERT(__builtin_offsetof(struct s, f) == (o), #s "." #f " moved")
XE_CHECK_OFF(xe_hdr, session_id, 4);
XE_CHECK_OFF(xe_hdr, seq, 8);
XE_CHECK_OFF(xe_hdr, count, 16);
XE_CHECK_OFF(xe_hdr, length, 18);
XE_CHECK_OFF(xe_login, next_seq, 8);
XE_CHECK_OFF(xe_login, nonce, 16);
XE_CHECK_OFF(xe_login, hmac, 24);
XE_CHECK_OFF(xe_login, client_ts, 56);
XE_CHECK_OFF(xe_new_order, symbol_id, 4);
XE_CHECK_OFF(xe_new_order, cl_ord_id, 8);
XE_CHECK_OFF(xe_new_order, price, 16);
XE_CHECK_OFF(xe_new_order, qty, 24);
XE_CHECK_OFF(xe_new_order, client_ts, 56);
XE_CHECK_OFF(xe_cancel, orig_cl_ord_id, 8);
XE_CHECK_OFF(xe_replace, new_cl_ord_id, 16);
XE_CHECK_OFF(xe_replace, price, 24);
XE_CHECK_OFF(xe_replace, qty, 32);
XE_CHECK_OFF(xe_mass_cancel, symbol_id, 4);
XE_CHECK_OFF(xe_heartbeat, next_seq, 8);
XE_CHECK_OFF(xe_retransmit_req, from_seq, 8);
XE_CHECK_OFF(xe_retransmit_req, count, 16);
XE_CHECK_OFF(xe_login_accepted, next_in_seq, 8);
XE_CHECK_OFF(xe_login_accepted, next_out_seq, 16);
XE_CHECK_OFF(xe_login_accepted, heartbeat_ms, 24);
XE_CHECK_OFF(xe_login_accepted, epoch, 32);
XE_CHECK_OFF(xe_accepted, order_id, 16);
XE_CHECK_OFF(xe_accepted, price, 24);
XE_CHECK_OFF(xe_accepted, qty, 32);
XE_CHECK_OFF(xe_rejected, reason, 2);
XE_CHECK_OFF(xe_rejected, ref_seq, 16);
XE_CHECK_OFF(xe_fill, exec_id, 16);
XE_CHECK_OFF(xe_fill, price, 24);
XE_CHECK_OFF(xe_fill, qty, 32);
XE_CHECK_OFF(xe_fill, leaves, 36);
XE_CHECK_OFF(xe_fill, order_id, 40);
XE_CHECK_OFF(xe_cancelled, qty, 32);
XE_CHECK_OFF(xe_replaced, leaves, 36);
XE_CHECK_OFF(xe_replaced, orig_cl_ord_id, 40);
XE_CHECK_OFF(xe_sequence_gap, expected, 8);
XE_CHECK_OFF(xe_sequence_gap, received, 16);
XE_CHECK_OFF(xe_accepted, echo_ts, 48);
XE_CHECK_OFF(xe_accepted, recv_ts, 56);

#endif /* XDPEX_PROTO_H */
