/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libxdpex_feed: the market-data feed's C library, for its producer (the shard in xdpexd) and its
 * consumers (xdpex-feedd, xdpex-feedsub, tests). The bytes are include/xdpex/feed.h's; this is
 * what turns engine events into them and back into books:
 *
 *   xf_enc_*   engine events (struct xe_event) -> feed messages of the open batch, numbered
 *   xf_pack_*  a batch's messages -> MoldUDP64 downstream packets of at most XF_MAX_PAYLOAD bytes
 *   xf_tx_*    sending packets over a kernel UDP socket to a multicast group and/or unicast peers
 *   xf_book_*  a book builder: applies feed messages, checks each against the book, answers top
 *              of book, depth, orders in priority, snapshots and a canonical text dump
 *   xf_jw_*, xf_jr_*  a journal segment writer (test producers) and a tailing reader (feedd),
 *              format include/xdpex/journal.h
 *
 * Return rule: functions returning int return 0 (or a count) on success and a negative errno on
 * failure; nothing here prints. docs/marketdata.md says how the shard calls the encoder.
 */
#ifndef XDPEX_FEED_LIB_H
#define XDPEX_FEED_LIB_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "xdpex/engine.h"
#include "xdpex/feed.h"
#include "xdpex/journal.h"

#define XF_REC_MAX_MSGS 65535 /* messages of one XJ_FEED record (xj_rec.count is 16 bits) */

/* ---- encoder (encode.c) ---- */

/*
 * One per dataplane queue (one MoldUDP64 session). The open batch is a buffer of message blocks
 * (2-byte big-endian length + message), exactly what an XJ_FEED record's payload and a MoldUDP64
 * packet's body hold, numbered from first_seq. The encoder keeps no per-order state: what it needs
 * to know about an order (does it rest? did a replace keep its place?) is in the events of one
 * engine call and, for a replace, the order as it was before (xe_engine_get_order()).
 */
struct xf_enc {
	uint64_t next_seq; /* sequence the next message gets */
	uint64_t first_seq; /* sequence of the open batch's first message */
	uint64_t count; /* messages in the open batch */
	uint8_t *buf; /* the open batch's message blocks (owned; grows, never shrinks) */
	size_t len, cap;
	uint64_t msgs, bytes; /* totals of the committed batches since init */
	uint64_t refused; /* calls refused with -EINVAL (inconsistent events: a bug upstream) */
};

/* next_seq: 1 for a new feed session, or where the journal's XJ_FEED records end. cap: initial
 * buffer bytes (0: 1 MiB). 0 or -ENOMEM. */
int xf_enc_init(struct xf_enc *f, uint64_t next_seq, size_t cap);
void xf_enc_free(struct xf_enc *f);

/*
 * The feed messages of the events ev[0..n) of ONE engine entry call (new order, cancel, replace,
 * mass cancel, expire), appended to the open batch with timestamp ts (the batch clock). prior: for
 * xe_engine_replace(), the order as xe_engine_get_order() returned it just before the call (NULL
 * or not found: the replace is rejected, ev[0] is REJECTED, and prior is not looked at); ignored
 * for the other calls. Returns the number of messages appended (0 for rejects), -EINVAL when the
 * events are not one call's (nothing appended, `refused` counted), -ENOMEM.
 */
int xf_enc_events(struct xf_enc *f, const struct xe_event *ev, uint32_t n,
		  const struct xe_order_info *prior, uint64_t ts);
/* A symbol was halted (halted != 0) or resumed. 1 or -ENOMEM. */
int xf_enc_symbol_state(struct xf_enc *f, uint32_t symbol_id, int halted, uint64_t ts);
/* A system event (XF_SYS_START_OF_SESSION, XF_SYS_END_OF_SESSION). 1, -EINVAL or -ENOMEM. */
int xf_enc_system(struct xf_enc *f, uint8_t event, uint64_t ts);

/* The open batch as journal records of at most XF_REC_MAX_MSGS messages: start with *pos = 0 and
 * call while it returns 1 (0: no more). */
struct xf_span {
	const uint8_t *blocks;
	size_t len; /* bytes of blocks */
	uint32_t count; /* messages (<= XF_REC_MAX_MSGS) */
	uint64_t seq; /* of the first */
};
int xf_enc_next_record(const struct xf_enc *f, size_t *pos, struct xf_span *out);
/* Ends the open batch (after it was journaled and sent): the next message opens a new one. */
void xf_enc_commit(struct xf_enc *f);
/* Recovery: discards the open batch and continues at next_seq (msg_seq + count of the last
 * XJ_FEED record replayed). */
void xf_enc_resume(struct xf_enc *f, uint64_t next_seq);

/* ---- MoldUDP64 packing (mold.c) ---- */

struct xf_pack {
	char session[XF_SESSION_LEN];
	const uint8_t *p, *end; /* blocks still to pack */
	uint64_t seq; /* of the next message */
	size_t max; /* payload bytes a packet may have (header included) */
};

/* Packs the blocks [blocks, blocks + len) numbered from seq into packets of at most max_payload
 * bytes (0: XF_MAX_PAYLOAD; below the header plus the largest block: raised to that). */
void xf_pack_init(struct xf_pack *k, const char session[XF_SESSION_LEN], uint64_t seq,
		  const void *blocks, size_t len, size_t max_payload);
/* Writes the next packet to out (k->max bytes of room), returns its length, 0 when done. */
size_t xf_pack_next(struct xf_pack *k, uint8_t *out);
/* A heartbeat (end = 0) or end-of-session (end = 1) packet announcing next_seq: 20 bytes. */
size_t xf_pack_empty(uint8_t out[XF_MOLD_HDR_SIZE], const char session[XF_SESSION_LEN],
		     uint64_t next_seq, int end);
/* Skips to message `seq` (>= the blocks' first, `first`) of a block buffer of `count` messages:
 * returns the offset of its block, or -ERANGE. */
long xf_blocks_seek(const uint8_t *blocks, size_t len, uint64_t first, uint32_t count,
		    uint64_t seq);

/* ---- kernel UDP sender (tx.c) ---- */

#define XF_TX_MAX_DSTS 32

struct xf_tx {
	int fd;
	struct sockaddr_in dst[XF_TX_MAX_DSTS]; /* multicast group and/or unicast subscribers */
	uint32_t ndst;
	uint64_t datagrams, bytes, errors;
};

/* A UDP socket bound to bind_addr:bind_port (NULL / 0: any), multicast out through the interface
 * of mcast_if (an IPv4 address, NULL: the routing table's), ttl and loopback as given. 0 or
 * -errno. */
int xf_tx_open(struct xf_tx *t, const char *bind_addr, uint16_t bind_port, const char *mcast_if,
	       int ttl, int loop);
/* "A.B.C.D:PORT" (multicast or unicast). 0, -EINVAL (bad address), -ENOSPC (too many). */
int xf_tx_add_dst(struct xf_tx *t, const char *addr_port);
/* Sends n packets to every destination (sendmmsg). Returns packets sent to all, or -errno. */
int xf_tx_send(struct xf_tx *t, uint8_t *const *pkts, const size_t *lens, uint32_t n);
void xf_tx_close(struct xf_tx *t);
/* Parses "A.B.C.D:PORT" (PORT may be 0: any, for binding) into sa. 0 or -EINVAL. */
int xf_parse_addr(const char *s, struct sockaddr_in *sa);

/* ---- book builder (book.c) ---- */

struct xf_book;

struct xf_level {
	int64_t price;
	uint64_t qty; /* open quantity at the level */
	uint32_t orders;
	uint32_t pad;
};

struct xf_border {
	uint64_t order_id;
	int64_t price;
	uint32_t qty; /* open */
	uint8_t side;
	uint8_t pad[3];
};

struct xf_book_stats {
	uint64_t applied; /* messages applied */
	uint64_t adds, executions, reductions, deletions, replaces, trades, states, events;
	uint64_t orders; /* resting now */
	uint64_t rejected; /* messages refused as inconsistent with the book */
};

struct xf_book *xf_book_new(void);
void xf_book_free(struct xf_book *b);
/*
 * Applies one feed message (len bytes; the size of its type). 0 when applied; -EPROTO when it does
 * not fit the book (an unknown order, a quantity that does not add up, a duplicate add: the book
 * is left as it was and xf_book_error() says why); -EINVAL for a malformed message; -ENOMEM.
 * SNAPSHOT_BEGIN clears the books it covers; unknown types are -EINVAL.
 */
int xf_book_apply(struct xf_book *b, const void *msg, size_t len);
/* The reason for the last refusal, e.g. "EXECUTED order 42: 7 executed, 5 open". */
const char *xf_book_error(const struct xf_book *b);
void xf_book_get_stats(const struct xf_book *b, struct xf_book_stats *out);
/* Highest symbol id seen (symbol ids are 1..that). */
uint32_t xf_book_max_symbol(const struct xf_book *b);
/* XF_STATE_TRADING / XF_STATE_HALTED, 0 for a symbol never seen. */
uint8_t xf_book_state(const struct xf_book *b, uint32_t symbol_id);
/* The best `depth` levels of a side, best first; returns how many. */
uint32_t xf_book_levels(const struct xf_book *b, uint32_t symbol_id, uint8_t side, uint32_t depth,
			struct xf_level *out);
/* Every order of a side, best price first, each level in time priority; returns how many
 * (writes at most max). */
uint32_t xf_book_orders(const struct xf_book *b, uint32_t symbol_id, uint8_t side, uint32_t max,
			struct xf_border *out);
/* The last trade of a symbol (price, qty, match id); 0 or -ENOENT. */
int xf_book_last_trade(const struct xf_book *b, uint32_t symbol_id, int64_t *price, uint32_t *qty,
		       uint64_t *match_id);
/*
 * A snapshot as message blocks: SNAPSHOT_BEGIN, then per symbol (symbol_id, or every symbol with
 * orders or a halt when 0) SYMBOL_STATE and its ADD_ORDERs in priority, then SNAPSHOT_END, with
 * ts/next_seq as given. *out (malloc'd, *cap bytes) grows as needed. Returns the bytes written or
 * -ENOMEM; an unknown symbol gives a refusal (status XF_SNAP_UNKNOWN_SYMBOL).
 */
long xf_book_snapshot(const struct xf_book *b, uint32_t symbol_id, uint64_t ts, uint64_t next_seq,
		      uint8_t **out, size_t *cap);
/*
 * The canonical text form of the books, for comparing two books built different ways (the C and
 * Python subscribers, the engine itself): for every symbol in id order that has orders or is
 * halted, "symbol <id> <T|H>", then one line per order "<id> <B|S> <price> <order_id> <qty>",
 * bids best first then asks best first, each level in time priority. 0 or -EIO.
 */
int xf_book_dump(const struct xf_book *b, FILE *out);

/* ---- journal writer (jwrite.c): test producers; xdpexd has its own ---- */

struct xf_jw {
	char dir[512]; /* DIR/q<queue> */
	uint32_t queue;
	int fd;
	uint32_t seg_no;
	uint64_t seg_off, seg_max;
	uint64_t next_seq; /* journal sequence of the next record */
	uint8_t *buf; /* the open batch's records */
	size_t len, cap, last;
};

/* A fresh journal DIR/q<queue>/ (created; it must not hold segments yet), segments of about
 * seg_max bytes. 0 or -errno (-EEXIST when segments are there). */
int xf_jw_open(struct xf_jw *w, const char *dir, uint32_t queue, uint64_t seg_max);
/* Adds a record to the open batch. 0 or -ENOMEM / -EINVAL. */
int xf_jw_append(struct xf_jw *w, uint8_t type, uint32_t session_id, uint64_t msg_seq,
		 uint16_t count, uint64_t ts, const void *payload, size_t len);
/* Writes the open batch (its last record flagged XJ_F_BATCH_END), rotating first when the segment
 * would pass seg_max; fsync when sync. 0 or -errno. */
int xf_jw_commit(struct xf_jw *w, int sync);
void xf_jw_close(struct xf_jw *w);
uint32_t xf_crc32c(uint32_t crc, const void *data, size_t len);

/* ---- journal reader (jread.c): tails one queue directory ---- */

struct xf_jrec {
	const struct xj_rec *hdr;
	const uint8_t *payload; /* hdr->len - XJ_REC_HDR bytes (padding included) */
	uint32_t seg; /* segment of the record */
	uint64_t off; /* its offset there */
};

/* Called for every record of every complete batch, in order; a non-zero return stops the poll
 * and is returned by it. */
typedef int (*xf_jr_fn)(void *ctx, const struct xf_jrec *r);

struct xf_jr {
	char dir[512];
	uint32_t seg; /* segment of the position (0: none opened yet) */
	uint64_t off; /* position: just after the last record handed out */
	uint64_t last_seq; /* journal sequence of that record */
	int *fds; /* read fd per segment number */
	uint32_t nfds;
	uint8_t *buf;
	size_t cap;
	char err[800]; /* what is wrong when a poll returns -EBADMSG */
};

int xf_jr_open(struct xf_jr *r, const char *qdir);
void xf_jr_close(struct xf_jr *r);
/*
 * Hands every complete batch after the position to fn, up to max_records records (0: no limit,
 * but always whole batches). Returns the records handed out, a non-zero return of fn, or -errno:
 * -EBADMSG for damage other than a tail being written (bad CRC with valid data behind it, a seq
 * gap, a bad segment header), described in r->err.
 */
long xf_jr_poll(struct xf_jr *r, xf_jr_fn fn, void *ctx, uint64_t max_records);
/* Reads len bytes at off of segment seg (a record found earlier). 0 or -errno. */
int xf_jr_read(struct xf_jr *r, uint32_t seg, uint64_t off, void *buf, size_t len);

#endif /* XDPEX_FEED_LIB_H */
