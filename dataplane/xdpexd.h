/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpexd internals shared by its source files: command-line options, the parsed configuration,
 * sessions, the journal and the per-queue shard (engine + sessions + journal + tx slots + its two
 * ports). The I/O backends are behind the operations table of backend.h. docs/dataplane.md is
 * the user-facing contract; this header is how the pieces fit inside the process.
 *
 * One shard per served queue, run to completion by one thread (xd_shard_run); nothing on the
 * packet path is shared between shards. The control thread talks to a shard only through its
 * mailbox, which the shard polls with one relaxed atomic load per loop iteration.
 */
#ifndef XDPEXD_H
#define XDPEXD_H

#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/un.h>

#include "xdpex/engine.h"
#include "xdpex/journal.h"
#include "xdpex/proto.h"

#include "backend.h"
#include "xdpex_maps.h"

/* Every int-returning function of xdpexd reports an error its caller must look at. */
#define XD_MUST_CHECK __attribute__((warn_unused_result))

/* Sizes shared with the XDP program's maps come from xdp/xdpex_maps.h. */
#define XD_MAX_QUEUES XDPEX_MAX_QUEUES
#define XD_MAX_BATCH 256
#define XD_NONCES 64 /* logins remembered per session for replay detection */
#define XD_TX_SLOTS 512 /* datagrams a shard builds before it must commit and transmit */
#define XD_RETRANS_MAX 1024 /* messages served per RetransmitRequest / Login replay */
#define XD_MAX_ALLOW XDPEX_MAX_ALLOW

enum xd_poll { XD_POLL_SPIN = 0, XD_POLL_BUSY, XD_POLL_SLEEP };
enum xd_durability { XD_DUR_NONE = 0, XD_DUR_FSYNC };
enum xd_role { XD_ROLE_PRIMARY = 0, XD_ROLE_STANDBY };
/* --repl-missing: with --replicated and no standby connected, hold the answers or go on with
 * the local journal's guarantee. */
enum xd_repl_missing { XD_MISSING_HOLD = 0, XD_MISSING_LOCAL };
#define XD_MAX_STANDBYS 4
#define XD_FEED_DSTS 8 /* --feed destinations */
#define XD_MAX_EPOCHS 64

struct xd_opts {
	const struct xd_backend *backend; /* --mode */
	char **backend_argv; /* arguments after `--`, for the backend (DPDK: EAL) */
	int backend_argc;
	const char *iface;
	int queues[XD_MAX_QUEUES];
	int nqueues;
	const char *addr;
	uint16_t port;
	const char *config;
	const char *journal_dir;
	enum xd_durability durability;
	bool replicated; /* --durability replicated[-fsync]: answers wait for a standby's ack */
	enum xd_repl_missing repl_missing;
	enum xd_role role; /* at start (--role; --ha starts every node as a standby) */
	bool ha; /* --ha: a primary answers only while its lease (ctl "lease") runs */
	const char *repl_listen; /* ADDR:PORT, queue i on PORT + i */
	const char *repl_from; /* ADDR:PORT of the primary a standby follows */
	const char *name; /* this node, in logs and the replication hello */
	const char *feed[XD_FEED_DSTS]; /* --feed A.B.C.D:PORT[@MAC] */
	int nfeed;
	const char *ctl_path;
	const char *entry_path;
	unsigned sock_mode; /* --socket-mode: 0600 or 0660, for both sockets */
	bool sock_group; /* --socket-group given: sock_gid is their group (else the process's) */
	unsigned sock_gid;
	const char *pin_dir;
	enum xd_poll poll;
	int busy_usec;
	int busy_budget;
	int xdp_mode; /* 0 auto, 1 native, 2 generic */
	bool xdp_filter; /* --xdp-filter: udp mode with xdp_steer in front of the socket */
	int bind_mode; /* 0 auto, 1 zerocopy, 2 copy */
	uint32_t frames;
	int batch;
	uint64_t segment_bytes;
	uint64_t journal_ahead; /* bytes the journal preparer keeps ready; 0 = no preparer */
	uint64_t journal_reserve; /* bytes reserved ahead of the tail at start */
	int cpus[XD_MAX_QUEUES];
	int ncpus;
	int verbose;
};

/* ---- configuration (config.c) ---- */

struct xd_symbol_cfg {
	struct xe_symbol_config c;
	char name[32];
	int queue; /* -1 = default ((id - 1) mod nqueues) */
	int halted; /* -1 = not given (fragments), else 0/1 */
};

struct xd_session_cfg {
	uint32_t id;
	uint8_t secret[64];
	uint32_t secret_len; /* 0 = not given (fragments) */
	int stp; /* enum xe_stp_mode, -1 = not given */
	int cod; /* cancel on disconnect, -1 = not given */
	int enabled; /* -1 = not given */
	int queue; /* -1 = not given (default 0) */
	int64_t rate; /* messages/s, -1 = not given, 0 = unlimited */
	int64_t burst;
};

struct xd_prefix {
	uint32_t addr; /* network order */
	uint32_t len;
};

/* "login_limit": the work refused logins may cost (each an HMAC and an answer), per source
 * address and in total per queue; a rate of 0 is unlimited. */
struct xd_login_limit {
	uint64_t src_rate, src_burst, total_rate, total_burst;
};
#define XD_LOGIN_LIMIT_DEFAULT \
	{ \
		10, 20, 1000, 1000 \
	}

struct xd_config {
	struct xe_engine_config engine;
	uint32_t heartbeat_ms;
	uint32_t skew_ms;
	struct xd_login_limit login_limit;
	int has_rate;
	uint64_t rate_pps, rate_burst;
	int has_allow;
	struct xd_prefix *allow;
	uint32_t nallow;
	struct xd_symbol_cfg *symbols;
	uint32_t nsymbols;
	struct xd_session_cfg *sessions;
	uint32_t nsessions;
};

/* Engine sizes when the configuration file does not give them: a venue's worth out of the box
 * (docs/dataplane.md, Sizing, has the memory they cost). */
#define XD_DEF_MAX_ORDERS (1u << 20)
#define XD_DEF_MAX_SYMBOLS 16384u
#define XD_DEF_MAX_SESSIONS 4096u

/* Whole file (full = 1: engine sizes, defaults) or a control-socket fragment (full = 0, limits
 * checked against `base`). On error returns -1 with `err` naming the field and
 * xd_config_err_code() giving the refusal's code (docs/dataplane.md, Refusals). */
struct json_t;
XD_MUST_CHECK int xd_config_load(const char *path, struct xd_config *cfg, char *err, size_t errlen);
XD_MUST_CHECK int xd_config_from_json(struct json_t *j, struct xd_config *cfg,
				      const struct xd_config *base, char *err, size_t errlen);
void xd_config_free(struct xd_config *cfg);
const char *xd_config_err_code(void);
/* One symbol or session entry of a request (i its index), for bulk configuration: 0, or -1 with
 * err and xd_config_err_code(). */
XD_MUST_CHECK int xd_config_symbol(struct json_t *o, int i, const struct xe_engine_config *ec,
				   struct xd_symbol_cfg *s, char *err, size_t errlen);
XD_MUST_CHECK int xd_config_session(struct json_t *o, int i, const struct xe_engine_config *ec,
				    struct xd_session_cfg *s, char *err, size_t errlen);
/* The served queue that owns a symbol / a session: its "queue" if given, else the symbol's
 * ((id - 1) mod nqueues)-th served queue, the session's first served queue. */
int xd_symbol_owner(const struct xd_symbol_cfg *y, const struct xd_opts *o);
int xd_session_owner(const struct xd_session_cfg *c, const struct xd_opts *o);

/* ---- peers: where a session is bound and where answers go ---- */

/* The same values as enum xj_addr_kind: a peer's kind is journaled as it is. */
enum xd_peer_kind {
	XD_PEER_NONE = XJ_ADDR_NONE,
	XD_PEER_UDP = XJ_ADDR_UDP,
	XD_PEER_UNIX = XJ_ADDR_UNIX
};

struct xd_peer {
	uint8_t kind;
	uint8_t has_l2; /* AF_XDP: MACs and local address known */
	uint16_t port; /* network order */
	uint32_t addr; /* network order */
	uint8_t mac[6]; /* peer */
	uint8_t lmac[6]; /* ours */
	uint32_t laddr; /* ours, network order */
	uint16_t lport; /* ours, network order */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

bool xd_peer_eq(const struct xd_peer *a, const struct xd_peer *b);
int xd_peer_str(const struct xd_peer *p, char *buf, size_t n);

/* ---- journal (journal.c) ---- */

/* Record formats: include/xdpex/journal.h. */

struct xd_journal {
	char dir[PATH_MAX];
	int queue;
	int durability;
	uint64_t seg_max;
	int fd; /* current segment, read-write */
	uint32_t seg_no; /* current segment number */
	uint64_t seg_off; /* bytes written in the current segment (its tail) */
	uint8_t *map; /* current segment, mapped MAP_SHARED, map_len bytes */
	uint64_t map_len;
	uint64_t alloc; /* size of the current segment's file (sparse past the data) */
	uint64_t reserved; /* zeroed and in the page cache up to here */
	uint64_t faulted; /* reserved and mapped writable up to here (atomic: the preparer
			   * thread advances it) */
	bool no_populate; /* kernel without MADV_POPULATE_WRITE: page faults instead */
	bool no_populate_read; /* kernel without MADV_POPULATE_READ */
	bool no_fallocate; /* file system without fallocate: pwrite of zeros instead */
	/* The preparer (xj_prep_start): a thread that keeps `ahead` bytes past the tail reserved
	 * and mapped, so the queue thread's copies never wait for new page cache. `mu` guards
	 * fd, map, alloc and the populating itself (the writer takes it only to rotate, or when
	 * it has caught up with the preparer). */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t prep;
	bool prep_on, prep_stop;
	uint64_t ahead, fault_ahead;
	int *rfds; /* read fd per segment number (index = number) */
	uint32_t rfds_cap;
	uint32_t first_seg;
	uint64_t next_seq; /* seq of the next record */
	/* Committed through here, for readers in other threads (replication): xj_pos(segment,
	 * offset just past the last committed batch) and its last record's seq; stored with
	 * release after every commit. */
	uint64_t committed_pos, committed_seq;
	uint8_t *buf; /* records of the open batch */
	size_t len, cap;
	size_t last_rec; /* offset of the last record in buf, SIZE_MAX if none */
	uint64_t bytes, writes, fsyncs;
};

/* Replay callback: called for every record of the journal in order at open. */
typedef int (*xj_replay_fn)(void *ctx, const struct xj_rec *r, const uint8_t *payload, uint32_t seg,
			    uint64_t off);

XD_MUST_CHECK int xj_open(struct xd_journal *j, const char *base, int queue, int durability,
			  uint64_t seg_max, xj_replay_fn fn, void *ctx);
void xj_close(struct xd_journal *j);
/* Reserves a record of `payload` bytes in the open batch; returns the payload pointer. */
void *xj_append(struct xd_journal *j, uint8_t type, uint32_t session_id, uint64_t msg_seq,
		uint16_t count, uint64_t ts, uint32_t payload);
size_t xj_room(const struct xd_journal *j);
/* Writes the open batch (copied into the mapped segment, no syscall; plus one msync under
 * fsync); calls `idx` for every outbound record with its position. 0 or -errno. */
typedef void (*xj_index_fn)(void *ctx, const struct xj_rec *r, uint32_t seg, uint64_t off);
XD_MUST_CHECK int xj_commit(struct xd_journal *j, xj_index_fn idx, void *ctx);
XD_MUST_CHECK int xj_read(struct xd_journal *j, uint32_t seg, uint64_t off, void *buf, size_t len);
/* Reserves and maps [tail, tail + bytes) of the current segment now (capped at its size):
 * before trading starts, so the first `bytes` of records cost no new page cache. 0 or -errno
 * (logged). */
XD_MUST_CHECK int xj_reserve(struct xd_journal *j, uint64_t bytes);
/* Starts the preparer thread, `ahead` bytes ahead of the tail, allowed on `cpus` (NULL: any).
 * 0 or -errno (the journal then works as before: the queue thread reserves as it goes). */
XD_MUST_CHECK int xj_prep_start(struct xd_journal *j, uint64_t ahead, const void *cpus,
				size_t cpus_size);
uint32_t xj_crc32c(uint32_t crc, const void *data, size_t len);
/* A standby's append of a record received from its primary, byte for byte (its seq must be the
 * journal's next; 0, -EPROTO out of order, -ENOMEM). Commit at the record closing its batch. */
XD_MUST_CHECK int xj_append_raw(struct xd_journal *j, const struct xj_rec *r);
/* xj_commit, then `fn` for every record of the batch with where it landed (a standby applies what
 * it has made durable, through the replay path). */
XD_MUST_CHECK int xj_commit_replay(struct xd_journal *j, xj_replay_fn fn, void *ctx);
/* The same, calling committed(cctx) between the commit and the replay (a standby acknowledges
 * there: the batch is in its journal, applying it need not delay the primary's answers). */
XD_MUST_CHECK int xj_commit_ack_replay(struct xd_journal *j, void (*committed)(void *), void *cctx,
				       xj_replay_fn fn, void *ctx);
/* Cuts the journal of queue directory `qdir` (closed) after record `seq`: that record's segment
 * is cut behind it, later segments removed. 0 or -errno (logged). */
XD_MUST_CHECK int xj_truncate_after(const char *qdir, uint64_t seq);

static inline uint64_t xj_pos(uint32_t seg, uint64_t off)
{
	return (uint64_t)seg << 40 | off;
}

/* Reads committed records of a queue's journal from any thread (the replication sender): its own
 * file descriptors, pread only, never past the writer's committed position. */
struct xj_reader {
	char dir[PATH_MAX];
	int fd;
	uint32_t seg;
	uint64_t off; /* next byte to read in seg */
	uint64_t next_seq; /* seq of the record at off */
	uint32_t need; /* after -EMSGSIZE: the buffer size the next record needs */
};

/* Positions r at record `from_seq` (the next one when from_seq is the journal's next). 0,
 * -ENOENT when the journal no longer holds it, other -errno. */
XD_MUST_CHECK int xj_reader_open(struct xj_reader *r, const char *qdir, uint64_t from_seq,
				 uint64_t committed_pos);
/* Up to `max` bytes of whole records from r's position up to `committed_pos` into buf; returns
 * the bytes (0: nothing new) or -errno. */
XD_MUST_CHECK ssize_t xj_reader_next(struct xj_reader *r, uint64_t committed_pos, uint8_t *buf,
				     size_t max);
void xj_reader_close(struct xj_reader *r);

/* ---- sessions ---- */

struct xd_outidx {
	uint64_t seq; /* first outbound sequence of the record */
	uint32_t count;
	uint32_t seg;
	uint64_t off; /* record offset in the segment */
};

struct xd_sess {
	uint32_t id;
	bool configured; /* owned by this shard */
	bool foreign; /* configured, owned by another queue */
	struct xd_session_cfg cfg;
	bool logged_in;
	struct xd_peer peer;
	uint64_t next_in, next_out;
	uint64_t nonce[XD_NONCES], nonce_ts[XD_NONCES];
	uint32_t nonce_n, nonce_pos;
	uint64_t nonce_floor; /* newest client_ts pushed out of the ring: logins at or before it
				 are refused as replays, so the bounded ring stays safe */
	uint64_t last_rx, last_tx; /* CLOCK_MONOTONIC ns */
	uint64_t tat; /* rate limiter (GCRA), gateway wall-clock ns */
	uint64_t nli_last; /* last NOT_LOGGED_IN answer (monotonic ns), at most one per 100 ms */
	int open_app; /* tx slot holding this batch's application messages, -1 */
	bool touched; /* listed in shard->touched for this batch */
	struct xd_outidx *idx;
	uint32_t idx_n, idx_cap;
};

/* ---- shard (shard.c) ---- */

struct xd_txd {
	struct xd_peer to;
	bool send; /* false: journaled only (session not logged in) */
	bool retrans; /* served from the journal: sent, not journaled again */
	bool raw; /* not a gateway datagram: a feed packet (XJ_FEED journals it) */
	uint32_t session_id;
	uint16_t len;
	uint8_t buf[XE_MAX_PAYLOAD];
};

/* Gateway latency per datagram, from the start of the receive burst that brought it to the end of
 * its batch's transmit, and the stages of that: engine (sequencing, matching, the answers built),
 * journal (the commit), transmit (answers handed to the port). Fixed buckets, no allocation. */
enum xd_lat_stage {
	XD_LAT_TOTAL = 0,
	XD_LAT_ENGINE,
	XD_LAT_JOURNAL,
	XD_LAT_REPLICATION, /* answers held for a standby's ack (--durability replicated) */
	XD_LAT_TRANSMIT,
	XD_LAT_STAGES
};
#define XD_LAT_BUCKETS 20 /* bounds in latency.c; one more bucket above the last bound */

struct xd_hist {
	uint64_t n[XD_LAT_BUCKETS + 1];
	uint64_t count, sum_ns;
};

extern const uint64_t xd_lat_bounds_ns[XD_LAT_BUCKETS];
extern const char *const xd_lat_stage_names[XD_LAT_STAGES];
/* Adds `weight` observations of `ns` (one per datagram of the batch). */
void xd_hist_add(struct xd_hist *h, uint64_t ns, uint64_t weight);
/* The histograms as {"bounds_ns": [...], "<stage>": {"buckets": [...], "count", "sum_ns"}}. */
struct json_t *xd_hist_json(const struct xd_hist *h);

struct xd_stats {
	uint64_t rx_datagrams, rx_msgs, tx_datagrams, tx_msgs, applied, duplicates, gaps, malformed,
	    unknown_session, not_allowed, spoofed, not_logged_in, rate_limited, logins,
	    login_rejects, retransmitted, tx_errors, heartbeats_out, timeouts;
	/* Why logins were refused (login_rejects counts the answers): the unauthenticated cases
	 * all answer XE_LOGIN_BAD_PROOF on the wire; throttled ones are not answered at all. */
	uint64_t login_unknown, login_disabled, login_bad_proof, login_throttled;
	/* rx batches handled and the wall time spent on them (parse, engine, journal, transmit),
	 * from xd_shard_batch_begin to the end of xd_shard_batch_end: how loaded the queue
	 * thread is, whatever it spends spinning idle. */
	uint64_t batches, busy_ns;
	uint64_t standby_dropped; /* datagrams a standby received and did not answer */
	struct xd_hist lat[XD_LAT_STAGES];
};

struct xd_shard;

/* A request the control thread hands to a shard; the shard answers into `resp`. */
struct xd_mbox {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int pending;
	struct json_t *req;
	struct json_t *resp;
	const struct xd_config *frag; /* parsed "apply" fragment */
	char *line; /* the request as journaled */
	int dry; /* 1: validate only; XD_MBOX_BULK_CHECK: list every entry frag cannot apply */
	const uint32_t *sym_index, *ses_index; /* bulk check: each entry's index in the request */
	int rc;
	int done;
};
#define XD_MBOX_BULK_CHECK 2

struct xd_shard {
	int index; /* position in the shard array */
	int queue; /* NIC queue served */
	const struct xd_opts *opts;
	struct xd_config *cfg; /* process-wide configuration (read-only on the packet path) */
	xe_engine *engine;
	struct xe_event *ev;
	uint32_t max_ev;
	struct xd_sess *sess; /* indexed by session id, 1..max_sessions */
	uint32_t nsess_slots;
	uint32_t *sess_list; /* configured session ids owned by this shard */
	uint32_t nsess_list;
	struct xd_symbol_cfg *syms; /* owned symbols by id; c.symbol_id 0 = not owned */
	uint32_t nsyms; /* owned symbols */
	/* Source filter as configured (file, then journaled "apply"s): the shard applies the
	 * allowlist itself when its network backend has no filter in front (XD_BE_FILTERS), and
	 * programs that filter with allowlist and rate after recovery. */
	struct xd_prefix allow[XD_MAX_ALLOW];
	uint32_t nallow;
	uint32_t allow_hit; /* last source found allowed (0 = none); reset when the list changes */
	bool own_allowlist; /* the network backend has no filter in front (no XD_BE_FILTERS) */
	uint64_t rate_pps, rate_burst;
	struct xd_journal journal;
	bool replaying;
	uint64_t now_ns; /* wall clock of the batch (recv_ts) */
	uint64_t mono_ns; /* monotonic clock at the start of the batch */
	uint32_t batch_rx; /* datagrams of the batch not yet counted in a latency histogram */
	unsigned side_turn; /* loop turns, for the entry port and the timers */
	uint64_t side_last; /* when the entry port and timers were last served */
	uint64_t last_sweep;
	struct xd_txd *tx;
	uint32_t ntx, tx_cap;
	uint8_t scratch[XE_MSG_SIZE];
	uint8_t rbuf[XJ_REC_HDR + XE_MAX_PAYLOAD]; /* retransmission reads */
	uint32_t *touched; /* sessions with open_app set */
	uint32_t ntouched;
	struct xd_stats st;
	struct xd_mbox mbox;
	struct xd_port net; /* the --mode backend on this queue */
	struct xd_port entry; /* the local order-entry socket (be NULL: none) */
	struct xd_rxd rx[XD_MAX_BATCH];
	int wake_fd; /* eventfd: wakes a sleeping loop for a mailbox request */
	pthread_t thread;
	int fatal; /* -errno that stopped this shard, 0 while it runs */
	/* High availability (repl.c): the role now, the epoch and where each began, replication. */
	enum xd_role role;
	uint64_t epoch;
	struct xd_epoch {
		uint64_t epoch, first_seq;
	} epochs[XD_MAX_EPOCHS];
	uint32_t nepochs;
	struct xd_repl *repl; /* NULL: no replication configured */
	uint64_t admin_seq; /* journal seq of the admin request being applied */
	/* A planned switchover began (ctl "switchover"): nothing more is taken in, held answers
	 * still leave as standbys acknowledge them. */
	bool draining;
	/* Answers of committed batches waiting for a standby's ack (--durability replicated). */
	struct xd_held *held;
	/* Refused logins' budget (session.c): GCRA per source in a direct-mapped table, and one for
	 * the queue; the detail log of refusals, at most one line a second. */
	struct xd_login_slot {
		uint64_t key, tat;
	} * login_slots;
	uint64_t login_total_tat;
	uint64_t login_log_last, login_log_quiet;
	/* The market-data feed (feed.c): NULL without --feed; feed_next is restored by replay. */
	struct xd_feed *feed;
	uint64_t feed_next;
};

extern atomic_int xd_stop;
extern int xd_verbose;
/* Set by the fuzz harnesses (fuzz/): xd_log writes nothing. */
extern int xd_log_quiet;
extern const struct xd_opts *xd_g_opts;

/* ---- shard lifecycle and loop (shard.c) ---- */

/* Engine, sessions and symbols of queue `queue` from the configuration; then xd_recover. */
XD_MUST_CHECK int xd_shard_init(struct xd_shard *sh, int index, int queue, const struct xd_opts *o,
				struct xd_config *cfg, char *err, size_t errlen);
/* Opens the shard's network port and (path non-NULL) its entry port, and binds the sessions
 * recovery found logged in. */
XD_MUST_CHECK int xd_shard_open_ports(struct xd_shard *sh, const char *entry_path, char *err,
				      size_t errlen);
void xd_shard_close_ports(struct xd_shard *sh);
void xd_shard_free(struct xd_shard *sh);
uint64_t xd_shard_hash(struct xd_shard *sh);
/* One receive burst of port p (sh->rx[0, n)): every datagram through the pipeline, then the
 * batch committed and answered. */
void xd_shard_rx_batch(struct xd_shard *sh, struct xd_port *p, uint32_t n);
/* The shard thread's loop until xd_stop: mailbox, receive batch, entry port, timers, idle. */
void xd_shard_run(struct xd_shard *sh);
/* Wakes a shard sleeping in poll() (--poll sleep) so a mailbox request runs at once. */
void xd_shard_wake(struct xd_shard *sh);
/* The one way a shard stops on an error: logs "error: q<q>: <what>: <strerror>", keeps the
 * first rc in sh->fatal and stops the process (xd_stop). */
void xd_shard_fatal(struct xd_shard *sh, int rc, const char *what);
void xd_shard_batch_begin(struct xd_shard *sh);
/* Journals the open batch, then transmits its answers; on a journal failure nothing of the
 * batch leaves and the shard is stopped (xd_shard_fatal): check sh->fatal where it matters. */
void xd_shard_batch_end(struct xd_shard *sh);
/* Sends the held answers whose batches a standby has acknowledged (in order). */
void xd_shard_release(struct xd_shard *sh);
/* Session binding of the network port (the XDP or user-space filter's binding table). */
void xd_shard_bind(struct xd_shard *sh, uint32_t session_id, const struct xd_peer *p);
void xd_shard_unbind(struct xd_shard *sh, uint32_t session_id);
/* The network port's per-queue stats into q; the backend's mode-wide fields into out. */
void xd_shard_port_stats(struct xd_shard *sh, struct json_t *q);

/* ---- recovery (recovery.c) ---- */

/* Opens the shard's journal and replays every record through the live code paths. */
XD_MUST_CHECK int xd_recover(struct xd_shard *sh, char *err, size_t errlen);
/* One journal record through the live code paths (recovery, and a standby applying what it
 * received); 0 or -errno (logged). */
XD_MUST_CHECK int xd_replay_rec(void *ctx, const struct xj_rec *r, const uint8_t *p, uint32_t seg,
				uint64_t off);

/* ---- the order path (pipeline.c) ---- */

/* Datagram from the network or the entry port; `src` says where it came from. */
void xd_shard_datagram(struct xd_shard *sh, const uint8_t *buf, size_t len,
		       const struct xd_peer *src);
struct xd_sess *xd_sess_get(struct xd_shard *sh, uint32_t id);
/* Engine events in sh->ev -> wire messages; sender/cause give echo_ts and ref fields. */
void xd_emit_events(struct xd_shard *sh, uint32_t n, const struct xd_sess *sender,
		    const uint8_t *cause, uint64_t in_seq);
void xd_apply_msg(struct xd_shard *sh, struct xd_sess *s, uint64_t in_seq, const uint8_t *m);
void xd_not_logged_in(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to,
		      uint64_t seq, const uint8_t *msgs, uint16_t count);
/* The batch's transmit slots or journal buffer run high: time to commit in the middle of it. */
bool xd_buffers_high(struct xd_shard *sh);
/* The journal buffer could not grow: applying without journaling would break recovery. */
void xd_journal_oom(struct xd_shard *sh);

/* Transmit slots (shard.c). */
struct xd_txd *xd_tx_new(struct xd_shard *sh, const struct xd_peer *to, bool send, uint32_t sid,
			 uint8_t flags, uint64_t seq);
uint8_t *xd_tx_msg(struct xd_txd *t);
uint8_t *xd_out_session(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to,
			uint32_t sid, uint8_t flags);
uint8_t *xd_out_app(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to, bool send);
void xd_index_out(void *ctx, const struct xj_rec *r, uint32_t seg, uint64_t off);

/* Shard internals shared by pipeline.c, session.c and recovery.c. */
static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t msg_client_ts(const uint8_t *m)
{
	return rd64(m + 56);
}

/* ---- sessions (session.c) ---- */

void xd_session_msgs(struct xd_shard *sh, const struct xe_hdr *h, struct xd_sess *s,
		     const struct xd_peer *src);
void xd_nonce_push(struct xd_sess *s, uint64_t nonce, uint64_t ts);
#define XD_LOGIN_SLOTS 4096 /* sources the refused-login budget tracks per queue */
/* Logout / timeout / operator: journal, Logout message, unbind, cancel-on-disconnect (cod -1 =
 * the session's setting). */
void xd_end_session(struct xd_shard *sh, struct xd_sess *s, uint8_t kind, uint8_t reason,
		    uint64_t echo_ts, int cod);
/* Heartbeats out and timeouts, every 10 ms at most. */
void xd_shard_timers(struct xd_shard *sh);

/* ---- control requests in the shard thread (admin.c) ---- */

/* Runs a posted mailbox request (called by the shard loop). */
void xd_shard_mbox(struct xd_shard *sh);
/* State-changing requests (apply, halt, resume, logout, expire_day) are journaled (`line`)
 * unless `dry` (validate only) or replaying (line NULL). Returns 0 or -1 with resp["error"]. */
XD_MUST_CHECK int xd_shard_admin(struct xd_shard *sh, struct json_t *req,
				 const struct xd_config *frag, const char *line,
				 struct json_t *resp, int dry);
/* Queries: hash, stats, sessions, book, journal; fills resp. */
XD_MUST_CHECK int xd_shard_query(struct xd_shard *sh, struct json_t *req, struct json_t *resp);
/* stats: the queue's "limits" and "memory" objects (docs/dataplane.md, Sizing). */
struct json_t *xd_shard_limits(const struct xd_shard *sh, const struct xe_engine_stats *es);
struct json_t *xd_shard_memory(const struct xd_shard *sh);
/* Bulk configuration: appends to `refused` every entry of frag this shard cannot apply, as
 * {"kind": "symbol"|"session", "index", "id", "code", "error"} (index: sym_index[i] /
 * ses_index[i], the entry's place in the request). Changes nothing. */
void xd_shard_bulk_check(struct xd_shard *sh, const struct xd_config *f, const uint32_t *sym_index,
			 const uint32_t *ses_index, struct json_t *refused);

/* ---- the XDP program in front of a backend (xdpfilter.c) ---- */

struct xdpex_maps;

/* Loads, pins and attaches xdp_steer to o->iface (--pin-dir, --xdp-mode) and gives it the
 * allowlist and rate of cfg; `who` names the backend in logs. 0 or -1 with err. */
XD_MUST_CHECK int xd_xdp_setup(const struct xd_opts *o, const struct xd_config *cfg,
			       const char *who, char *err, size_t errlen);
void xd_xdp_teardown(void); /* detach, unpin (nothing when not set up) */
int xd_xdp_apply(const struct xd_config *frag); /* allowlist / rate of a fragment to the maps */
/* "attach_mode" (native, generic, none) and "xdp_counters" (stats_map, CPUs summed). */
void xd_xdp_info(struct json_t *out);
void xd_xdp_bind(uint32_t session_id, const struct xd_peer *p); /* session_map */
void xd_xdp_unbind(uint32_t session_id);
const struct xdpex_maps *xd_xdp_maps(void); /* NULL when not set up */
const char *xd_xdp_attach_mode(void);

/* ---- replication and roles (repl.c) ---- */

struct xd_repl;
/* Sets up replication for a shard (listening socket, standby state, its thread) when the options
 * ask for it. 0 or -1 with err. */
XD_MUST_CHECK int xd_repl_open(struct xd_shard *sh, char *err, size_t errlen);
void xd_repl_close(struct xd_shard *sh);
/* Primary: a batch was committed (wakes the sender if it waits). */
void xd_repl_committed(struct xd_shard *sh);
/* Primary: the highest journal seq a standby has made durable; UINT64_MAX with no replication
 * wait (durability not replicated, or none connected and --repl-missing local). */
uint64_t xd_repl_acked(struct xd_shard *sh);
/* Primary, --durability replicated: reads the acks of the standbys the shard thread serves
 * itself (and sends them what is committed and not yet sent); call while answers are held. */
void xd_repl_poll(struct xd_shard *sh);
/* Their sockets, for the shard's sleep; returns how many it put in pf (at most max). */
struct pollfd;
int xd_repl_poll_fds(struct xd_shard *sh, struct pollfd *pf, int max);
/* The shard began to release answers at `now` (stage timing, `ha` "stages_us"). */
void xd_repl_released(struct xd_shard *sh, uint64_t now);
/* Primary, every timer turn: publishes (committed seq, state hash) now and then for the
 * standbys to compare. */
void xd_repl_publish_hash(struct xd_shard *sh);
/* Standby: one turn of following the primary (connect, receive, journal, apply, ack); returns
 * whether anything happened. */
bool xd_repl_follow(struct xd_shard *sh);
/* Standby: the fd to poll in --poll sleep (-1 none). */
int xd_repl_fd(struct xd_shard *sh);
/* The live half of "promote" (journaled by xd_shard_admin after its epoch record): stops
 * following, becomes the primary and logs every session out (XJ_SK_FAILOVER: they log in again
 * here). Returns the sessions logged out. */
uint32_t xd_repl_take_over(struct xd_shard *sh);
/* Standby: follow another primary (ADDR:PORT). */
void xd_repl_follow_addr(struct xd_shard *sh, const char *addr);
/* The `ha` query of one shard. */
void xd_repl_status(struct xd_shard *sh, struct json_t *q);
/* The epoch table as journaled: an epoch began at record `first_seq`. */
void xd_epoch_begin(struct xd_shard *sh, uint64_t epoch, uint64_t first_seq);

/* Fencing (--ha): answers leave only before this monotonic deadline; set by ctl "lease". */
extern _Atomic uint64_t xd_lease_until;
static inline bool xd_fenced(const struct xd_opts *o, uint64_t mono_ns)
{
	return o->ha && mono_ns >= atomic_load_explicit(&xd_lease_until, memory_order_relaxed);
}

/* ---- held answers (held.c) ---- */

/* One committed batch's answers, kept until a standby has acknowledged record `seq`. */
struct xd_held_batch {
	uint64_t seq;
	uint64_t mono_start; /* its receive burst (the latency histograms) */
	uint64_t commit_start, committed; /* its journal write began and ended */
	uint32_t n; /* datagrams held */
	uint32_t nrx; /* datagrams received in it */
};

struct xd_held;
/* Room for `cap` datagrams (a power of two) in `batches` batches. NULL without memory. */
struct xd_held *xd_held_new(uint32_t cap, uint32_t batches);
void xd_held_free(struct xd_held *h);
/* Room for a batch of n more datagrams. */
bool xd_held_room(const struct xd_held *h, uint32_t n);
uint32_t xd_held_datagrams(const struct xd_held *h);
/* Keeps the datagrams of tx[0, n) that are to be sent (t->send), as a batch. */
void xd_held_push(struct xd_held *h, const struct xd_txd *tx, uint32_t n,
		  const struct xd_held_batch *b);
/* The oldest batch, NULL if none. */
const struct xd_held_batch *xd_held_oldest(const struct xd_held *h);
/* The oldest batch's datagrams as at most two contiguous runs (*n1 + *n2 == its n). */
void xd_held_runs(const struct xd_held *h, const struct xd_txd **r1, uint32_t *n1,
		  const struct xd_txd **r2, uint32_t *n2);
void xd_held_pop(struct xd_held *h);

/* ---- the market-data feed (feed.c) ---- */

struct xd_feed;
/* After the ports: the encoder from the recovered sequence, the destinations. 0 or -1 + err. */
XD_MUST_CHECK int xd_feed_open(struct xd_shard *sh, char *err, size_t errlen);
void xd_feed_close(struct xd_shard *sh);
/* After every engine call, with its events in sh->ev (prior: a replace's order before it). */
void xd_feed_events(struct xd_shard *sh, uint32_t n, const struct xe_order_info *prior);
void xd_feed_symbol_state(struct xd_shard *sh, uint32_t symbol_id, int halted);
/* The batch's feed buffer is large: commit early. */
bool xd_feed_high(const struct xd_shard *sh);
/* Replay met an XJ_FEED record. */
void xd_feed_replayed(struct xd_shard *sh, const struct xj_rec *r);
/* Batch end, before the commit: the XJ_FEED records. 0 or -ENOMEM. */
XD_MUST_CHECK int xd_feed_journal(struct xd_shard *sh);
/* Batch end, after the commit: the packets as raw transmit slots. */
void xd_feed_publish(struct xd_shard *sh);
/* Timers: a heartbeat after a second of silence. */
void xd_feed_timers(struct xd_shard *sh, uint64_t mono);
void xd_feed_stats(const struct xd_shard *sh, struct json_t *q);
/* The sequence the queue's next feed message gets (0 without a feed). */
uint64_t xd_feed_next_seq(const struct xd_shard *sh);

/* ---- control socket (ctl.c) ---- */

XD_MUST_CHECK int xd_ctl_start(const char *path, struct xd_shard *shards, int nshards, char *err,
			       size_t errlen);
void xd_ctl_stop(void);
/* One request line -> its answer (what a client of the socket gets back, without the newline).
 * The shards are those of xd_ctl_start, or of xd_ctl_attach: a fuzz harness's shards, whose
 * mailbox requests then run in the calling thread (no shard thread runs). */
struct json_t *xd_ctl_handle(const char *line);
void xd_ctl_attach(struct xd_shard *shards, int nshards);

/* ---- process-wide helpers (util.c) ---- */

void xd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t xd_wall_ns(void);
/* Binds unix socket fd to path (created with no permission beyond the owner's, so it is never
 * open to others, not even for a moment) and gives it --socket-mode and --socket-group. 0 or
 * -errno. */
XD_MUST_CHECK int xd_bind_unix(int fd, const struct sockaddr_un *a, const struct xd_opts *o);
uint64_t xd_mono_ns(void);

#endif /* XDPEXD_H */
