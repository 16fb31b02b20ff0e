/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpex journal format v1: the one source of truth for the bytes xdpexd writes to DIR/q<q>/
 * NNNNNNNN.xjl and that recovery, replication, the persister, the publisher, the market-data
 * feed's rewind server and the tools read back. docs/dataplane.md "Journal" explains it in words;
 * the Python reader (proto/xdpex_proto/journal.py) is checked against this header by a test
 * (tests/test_journal_contract.py) that fails on any difference, enum values included.
 *
 * All integers little-endian. A segment file opens with struct xj_seg_hdr; records follow, each
 * a struct xj_rec header and a payload, `len` (header + payload + padding) a multiple of 8. The
 * CRC32C (Castagnoli) covers bytes 8..len of the record. A zero `len` word ends the written data.
 */
#ifndef XDPEX_JOURNAL_H
#define XDPEX_JOURNAL_H

#include <stdint.h>

#define XJ_MAGIC "XDPEXJL1"
#define XJ_VERSION 1
#define XJ_SEG_HDR 32 /* bytes of struct xj_seg_hdr */
#define XJ_REC_HDR 40 /* bytes of struct xj_rec */
#define XJ_ALIGN 8 /* record lengths are multiples of this */

/* The header of every segment file. */
struct xj_seg_hdr {
	char magic[8]; /* XJ_MAGIC, not NUL-terminated */
	uint32_t version; /* XJ_VERSION */
	uint32_t queue; /* the queue whose journal this is */
	uint64_t segment; /* its number (the file name) */
	uint64_t first_seq; /* journal sequence of its first record */
} __attribute__((packed));

/* Record types (struct xj_rec.type). */
enum xj_type {
	XJ_IN = 1, /* count x 64-byte client messages as received, consecutive sequences */
	XJ_OUT = 2, /* count x 64-byte gateway messages as sent, one session, consecutive */
	XJ_SESSION = 3, /* struct xj_sess_ev (+ a NUL-terminated unix path for entry logins) */
	XJ_ADMIN = 4, /* one control request line of JSON, NUL-padded */
	XJ_FEED = 5, /* count market-data feed messages of one batch, as MoldUDP64 message blocks
		      * (2-byte big-endian length + message, include/xdpex/feed.h), zero-padded;
		      * msg_seq: feed sequence of the first, session_id: 0 */
};

/* struct xj_rec.flags */
#define XJ_F_BATCH_END 0x01 /* last record of its batch (one commit) */

struct xj_rec {
	uint32_t len; /* record bytes including this header and padding */
	uint32_t crc; /* CRC32C of bytes 8..len */
	uint64_t seq; /* journal sequence: 1, 2, 3, ... per queue, contiguous across segments */
	uint8_t type; /* enum xj_type */
	uint8_t flags; /* XJ_F_* */
	uint16_t count; /* XJ_IN / XJ_OUT: messages in the payload */
	uint32_t session_id; /* the session the record is about (0 for admin) */
	uint64_t msg_seq; /* XJ_IN: sequence of the first message; XJ_OUT: outbound sequence;
			   * XJ_FEED: feed sequence of the first message */
	uint64_t ts; /* gateway wall clock (ns since the epoch) of the batch */
} __attribute__((packed));

/* Session event kinds (struct xj_sess_ev.kind). */
enum xj_sess_kind {
	XJ_SK_LOGIN = 1,
	XJ_SK_LOGOUT = 2, /* by the client */
	XJ_SK_TIMEOUT = 3, /* heartbeat timeout */
	XJ_SK_ADMIN_LOGOUT = 4, /* by the operator */
	XJ_SK_FAILOVER =
	    5, /* a new primary took over: log in again there (no cancel on disconnect) */
};

/* Where a session is bound (struct xj_sess_ev.addr_kind). */
enum xj_addr_kind {
	XJ_ADDR_NONE = 0,
	XJ_ADDR_UDP = 1, /* IPv4/UDP */
	XJ_ADDR_UNIX = 2, /* a unix datagram socket path (the entry socket) */
};

/* The payload of an XJ_SESSION record. */
struct xj_sess_ev {
	uint8_t kind; /* enum xj_sess_kind */
	uint8_t addr_kind; /* enum xj_addr_kind */
	uint8_t cod; /* cancel-on-disconnect applied (logout kinds) */
	uint8_t has_l2; /* mac/lmac known (AF_XDP, DPDK) */
	uint16_t port; /* peer's UDP port, network order */
	uint16_t lport; /* gateway's UDP port, network order */
	uint32_t addr; /* peer's IPv4, network order */
	uint32_t laddr; /* gateway's IPv4, network order */
	uint64_t nonce; /* the Login's nonce */
	uint64_t login_ts; /* the Login's client_ts */
	uint8_t mac[6]; /* peer's MAC */
	uint8_t lmac[6]; /* gateway's MAC */
	uint8_t pad[20];
} __attribute__((packed));

#ifdef __cplusplus
#define XJ_STATIC_ASSERT static_assert
#else
#define XJ_STATIC_ASSERT _Static_assert
#endif
XJ_STATIC_ASSERT(sizeof(struct xj_seg_hdr) == XJ_SEG_HDR, "segment header");
XJ_STATIC_ASSERT(sizeof(struct xj_rec) == XJ_REC_HDR, "journal record header");
XJ_STATIC_ASSERT(sizeof(struct xj_sess_ev) == 64, "session event payload");
#undef XJ_STATIC_ASSERT

#endif /* XDPEX_JOURNAL_H */
