/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdpex-loadgen: native load generator for the xdpex wire protocol (include/xdpex/proto.h).
 * It logs in one or more sessions, sends NewOrder and Cancel messages (N a datagram) over
 * kernel UDP with sendmmsg/recvmmsg, either open loop at a target rate or closed loop with a
 * window of unanswered messages, matches every answer to its order by client order id, measures
 * the round trip from the echoed client timestamps, recovers lost datagrams the way the protocol
 * says (resend on SequenceGap, RetransmitRequest on an outbound gap) and prints JSON results.
 * Nothing is allocated after start-up; one thread, optionally pinned, does all the work.
 *
 * Files: main.c (options, JSON report), session.c (sockets, login, logout, heartbeat),
 * run.c (the send/receive loop and order tracking), hist.c (latency histogram), xsk.c (AF_XDP
 * mode, --xdp IF: raw frames out and answers in through an AF_XDP socket, xdp_lg.bpf.c).
 */
#ifndef XDPEX_LOADGEN_H
#define XDPEX_LOADGEN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/uio.h>
#include <xdpex/proto.h>

#define LG_MAX_SESSIONS 64
#define LG_MAX_SERVERS 8 /* a primary and its standbys (docs/ha.md) */
#define LG_MAX_SYMBOLS 64
#define LG_BURST 32 /* datagrams per sendmmsg / recvmmsg */
#define LG_SLOTS (1u << 17) /* order slots per session, indexed by cl_ord_id */
#define LG_RING (1u << 16) /* sent messages kept per session for resend */
#define LG_OUT_RING (1u << 16) /* outbound sequences tracked per session for gaps */
#define LG_SECRET_MAX 64
#define LG_REJ_MAX 32
#define LG_CXL_MAX 16
#define LG_LOGIN_LOG 8192 /* login attempts kept for the report */
#define LG_LOGIN_RETRY_NS 250000000ull /* a Login unanswered this long: a fresh one */
#define LG_LOGIN_LEAD_NS 2000000ull /* --log-logins: the line, then the Login this much later */
#define LG_REBIND_MAX 256 /* BOUND_ELSEWHERE: new source ports tried per session */

/* Latency histogram: log-linear, 64 sub-buckets per power of two (under 1.6 % error). */
#define HIST_SUB_BITS 6
#define HIST_BUCKETS ((64 - HIST_SUB_BITS) << HIST_SUB_BITS)
struct hist {
	uint64_t count, sum, max;
	uint64_t b[HIST_BUCKETS];
};
void hist_add(struct hist *h, uint64_t v);
uint64_t hist_pct(const struct hist *h, double p); /* value at percentile p (0..100) */

enum slot_state {
	SL_NEW = 0x01, /* NewOrder sent, not answered yet */
	SL_LIVE = 0x02, /* order believed to be in the book (or an IOC being worked) */
	SL_CXL = 0x04, /* Cancel sent, not answered yet */
	SL_IOC = 0x08, /* the order is an IOC: never a cancel target */
};

struct slot {
	uint64_t cl; /* cl_ord_id occupying the slot */
	uint32_t sym;
	uint32_t live_idx; /* position in session.live[] while cancelable */
	uint8_t state; /* enum slot_state bits; 0 = free */
	uint8_t side;
};

struct session {
	uint32_t id;
	uint8_t secret[LG_SECRET_MAX];
	unsigned secret_len;
	int fd;
	struct sockaddr_in local; /* the socket's own address (AF_XDP frames reuse it) */
	bool logged_in, logout_sent;
	/* Logins inside the run (--login-stagger, --relogin-ms): a Login is outstanding since
	 * login_sent_ns (login_ts its client_ts); the next one is due at login_due_ns. */
	bool login_pending, ever_logged_in;
	uint64_t login_due_ns;
	uint64_t login_send_ns; /* --log-logins: the announced Login leaves then (0: sent) */
	unsigned login_rec; /* its record in stats.login_log (LG_LOGIN_LOG: none) */
	unsigned rebinds; /* new source ports taken after BOUND_ELSEWHERE */
	uint32_t symbols[LG_MAX_SYMBOLS]; /* this session's symbols (credentials file); */
	unsigned nsym; /* 0 = the --symbols list */
	/* Failover (more than one --server): moving to the next gateway, logging in there. */
	bool moving;
	unsigned srv; /* index into config.servers */
	uint64_t last_recv_ns, login_ts, login_sent_ns, move_start_ns;
	uint32_t heartbeat_ms;
	uint64_t next_seq; /* next inbound sequence to send */
	uint64_t out_expected; /* next outbound sequence to apply */
	uint64_t out_high; /* one past the highest outbound sequence known to exist */
	uint64_t last_rtx_req_ns, last_send_ns, last_resend_ns, last_resend_from;
	uint64_t next_cl;
	struct slot *slots; /* LG_SLOTS */
	uint64_t *live; /* cl_ord_ids of resting orders that may be cancelled */
	uint32_t nlive;
	uint8_t *ring; /* LG_RING sent messages, XE_MSG_SIZE each, by seq */
	uint8_t *out_have; /* LG_OUT_RING bits: outbound seq received ahead of a hole */
	uint8_t *out_buf; /* LG_OUT_RING messages received ahead of a hole, by seq */
};

struct config {
	struct sockaddr_in server, bind; /* server: servers[0] */
	struct sockaddr_in servers[LG_MAX_SERVERS];
	unsigned nservers;
	bool have_bind;
	struct session sess[LG_MAX_SESSIONS];
	unsigned nsess;
	uint64_t count; /* orders (messages) to send */
	double duration_s; /* time limit for sending */
	double drain_s; /* time allowed for the last answers */
	double rate; /* open loop, messages per second; 0 = closed loop */
	uint32_t window; /* closed loop: unanswered messages allowed */
	unsigned batch; /* messages per datagram */
	unsigned mix_new, mix_cancel, mix_cross; /* percentages */
	uint32_t symbols[LG_MAX_SYMBOLS];
	unsigned nsym;
	int64_t price_min, price_max;
	uint32_t qty_max;
	int cpu; /* -1 = no pinning */
	int busy_poll_us;
	uint64_t seed;
	double login_stagger_ms; /* > 0 or relogin: sessions log in inside the run, staggered */
	double relogin_ms; /* > 0: each session logs in again every this long */
	bool async_login;
	bool log_logins; /* a line on stderr before each Login is sent: "login ID" */
	char xdp_if[IF_NAMESIZE]; /* AF_XDP mode on this interface; empty = kernel UDP */
	struct xsk_io *xio;
};

struct stats {
	uint64_t sent, datagrams, answered, resent, seq_gaps, rtx_requests, out_gaps;
	uint64_t accepted, rejected, fills, filled_qty, cancelled, unmatched, duplicates;
	uint64_t new_sent, cancel_sent, cross_sent, send_errors, slot_stalls, logged_out;
	uint64_t bad_datagrams, unrecoverable, out_lost;
	uint64_t failovers, failover_ns_max, failover_ns_sum; /* moves, and their time to log in */
	uint64_t rx_xsk, rx_socket; /* datagrams received through each path */
	uint64_t busy_ns; /* time in loop turns that sent or received something */
	/* /proc/thread-self/schedstat around run_load: time on the CPU and time runnable but
	 * waiting for it (other work on the core); wait_ns = UINT64_MAX when unavailable */
	uint64_t cpu_ns, wait_ns;
	uint64_t xsk_stats[3]; /* AF_XDP mode: rx_dropped, rx_ring_full, fill ring empty */
	uint64_t logins_sent, logins_accepted, logins_rejected, login_retries, login_rebinds;
	struct login_rec {
		uint32_t sid;
		int32_t result; /* -1 no answer (a fresh Login followed), 0 accepted, else reason */
		/* CLOCK_REALTIME: attempt started (its stderr line), Login sent, answer received */
		uint64_t started_ns, sent_ns, done_ns;
	} login_log[LG_LOGIN_LOG];
	unsigned nlogin_log;
	uint64_t rej[LG_REJ_MAX]; /* by enum xe_reject_reason */
	uint64_t cxl[LG_CXL_MAX]; /* by enum xe_cancel_reason */
	uint64_t t_start, t_end_send, t_last_answer;
	struct hist rtt;
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* session.c */
int session_open(const struct config *cfg, struct session *s);
int session_login(const struct config *cfg, struct session *s);
int session_send_login(struct session *s, uint64_t next_seq, uint64_t *ts_out);
int session_retarget(const struct config *cfg, struct session *s);
int session_reopen(const struct config *cfg, struct session *s);
void login_start(const struct config *cfg, struct stats *st, struct session *s, uint64_t now);
void login_answer(const struct config *cfg, struct stats *st, struct session *s, const uint8_t *m,
		  uint64_t now);
void login_tick(const struct config *cfg, struct stats *st, struct session *s, uint64_t now);
void session_logout(struct config *cfg, struct stats *st);
int session_send_session_msg(struct session *s, const void *msg, uint8_t flags);
const char *login_reason_name(unsigned r);

/* xsk.c: AF_XDP mode */
struct xsk_io;
int xsk_io_open(struct config *cfg);
void xsk_io_close(struct config *cfg);
unsigned xsk_io_send(struct config *cfg, struct stats *st, struct session *s,
		     const struct iovec *iov, unsigned n, uint64_t now);
unsigned xsk_io_poll(struct config *cfg, struct stats *st);
int xsk_io_stats(struct config *cfg, uint64_t out[3]);

extern volatile sig_atomic_t lg_stop; /* SIGINT/SIGTERM: stop sending, report */

/* run.c */
int run_load(struct config *cfg, struct stats *st);
void handle_datagram(struct config *cfg, struct stats *st, struct session *s, const uint8_t *buf,
		     size_t len, uint64_t now);
const char *reject_name(unsigned r);
const char *cancel_name(unsigned r);

#endif /* XDPEX_LOADGEN_H */
