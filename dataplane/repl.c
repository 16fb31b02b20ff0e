/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Journal replication between xdpexd instances (docs/ha.md), per queue, over TCP.
 *
 * A primary queue has a sender thread: it listens on --repl-listen's port + queue index, takes
 * standbys, and streams each one the queue's committed journal records from where that standby's
 * own journal ends (journal shipping from the segment files, then live: the same reader), with now
 * and then the primary's state hash at a batch boundary; it reads the standbys' acknowledgements
 * and publishes the highest acknowledged record for the shard, which releases answers held for it
 * (--durability replicated). The shard thread never waits on a socket: it commits, nudges the
 * sender (an eventfd, only when the sender sleeps) and carries on.
 *
 * A standby queue follows in its own shard thread: it connects to the primary, says where its
 * journal ends (seq, CRC of its last record, its epoch), appends the records it receives to its own
 * journal byte for byte, commits at each batch end, acknowledges, and applies them through the
 * recovery path, so its books, sessions, sequence numbers and journal are the primary's. A state
 * hash that differs stops it (diverged: logged, in `ha`, the control plane's readiness). A journal
 * that ran ahead of the primary's epoch (an old primary rejoining with records nobody
 * acknowledged) is cut back to where the epochs part and xdpexd exits 75 to be started again.
 *
 * Frames: struct xr_frame (type, payload length) and the payload; records go as they are in the
 * journal (their own lengths, seqs and CRCs).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xdpexd.h"

#define XR_MAGIC 0x31504552u /* "REP1" */
#define XR_BUF (8u << 20)
#define XR_HASH_EVERY_NS 500000000ull
#define XR_BEAT_NS 100000000ull
#define XR_RETRY_NS 200000000ull
#define XR_EXIT_REJOIN 75

enum xr_type {
	XR_HELLO = 1, /* standby -> primary: struct xr_hello */
	XR_WELCOME = 2, /* primary -> standby: struct xr_welcome + epochs */
	XR_RECORDS = 3, /* primary -> standby: whole journal records */
	XR_HASH = 4, /* primary -> standby: struct xr_hash, after the records through its seq */
	XR_ACK = 5, /* standby -> primary: struct xr_ack */
	XR_BEAT = 6, /* primary -> standby: struct xr_beat, when idle */
};

struct xr_frame {
	uint32_t type;
	uint32_t len;
} __attribute__((packed));

struct xr_hello {
	uint32_t magic;
	uint32_t queue;
	uint64_t next_seq; /* the standby's journal ends before this record */
	uint64_t epoch; /* the epoch of the standby's last epoch record */
	uint32_t last_crc; /* CRC of record next_seq - 1 (0 when next_seq is 1) */
	char name[36];
} __attribute__((packed));

struct xr_welcome {
	uint64_t primary_seq; /* last committed record */
	uint64_t epoch;
	uint32_t match; /* 1: record next_seq - 1 is the same on both (or the journal empty) */
	uint32_t nepochs;
	struct xd_epoch epochs[XD_MAX_EPOCHS];
} __attribute__((packed));

struct xr_hash {
	uint64_t seq;
	uint64_t hash;
} __attribute__((packed));

struct xr_ack {
	uint64_t seq; /* durable on the standby through here */
	uint64_t applied; /* applied through here */
} __attribute__((packed));

struct xr_beat {
	uint64_t primary_seq;
} __attribute__((packed));

enum xr_peer_state { XR_FREE = 0, XR_HELLO_WAIT, XR_STREAMING };

/* Where a batch's replication time goes (`ha` -> "stages_us"): 1 us buckets up to 255 us, the
 * last one above. One batch in flight (ping-pong) makes every stage exact; under load a stage is
 * sampled for the newest batch it sees. */
enum xr_stage {
	XR_ST_COMMIT_SENT, /* primary: the batch committed -> its records handed to TCP */
	XR_ST_SENT_ACK, /* primary: handed to TCP -> the standby's ack read */
	XR_ST_ACK_RELEASE, /* primary: the ack read -> the shard releases the held answers */
	XR_ST_RECV_ACK, /* standby: records read -> their ack handed to TCP (journal write) */
	XR_STAGES
};
static const char *const xr_stage_names[XR_STAGES] = {"commit_to_sent", "sent_to_ack",
						      "ack_to_release", "recv_to_ack"};
#define XR_HBUCKETS 256

struct xr_hist {
	uint64_t n[XR_HBUCKETS];
	uint64_t count, sum_ns;
};

static void xr_hist_add(struct xr_hist *h, uint64_t ns)
{
	uint64_t us = ns / 1000;

	h->n[us < XR_HBUCKETS ? us : XR_HBUCKETS - 1]++;
	h->count++;
	h->sum_ns += ns;
}

struct xr_peer {
	int fd;
	enum xr_peer_state state;
	char addr[64], name[40];
	struct xj_reader rd;
	uint64_t sent; /* last record sent */
	uint64_t acked, applied;
	uint64_t acked_mono; /* when the last ack came */
	uint64_t hash_sent; /* seq of the last hash frame sent */
	uint8_t *in;
	size_t inlen;
	uint8_t *out; /* frame(s) being sent */
	size_t outlen, outoff;
	uint64_t last_tx;
	uint64_t send_seq, send_mono; /* the last records frame handed to TCP (stages) */
	/* Who serves a streaming peer: the sender thread (catching up, handshakes), or, with
	 * --durability replicated once it has every committed record, the shard thread itself,
	 * which then sends each batch as it commits and reads the acks in its own poll: no thread
	 * between the commit and the socket, nor between the ack and the release. Whoever owns a
	 * peer alone touches it; the other side hands it over with a release store. */
	_Atomic int owner;
	uint64_t handbacks; /* times the shard gave it back (full socket, new segment, error) */
	bool reread; /* given back for what its socket said (closed, not an ack): read it again */
};

enum { XR_OWN_SENDER = 0, XR_OWN_SHARD };

enum xr_follow_state { XF_IDLE = 0, XF_CONNECTING, XF_WELCOME_WAIT, XF_STREAMING, XF_DIVERGED };

struct xd_repl {
	struct xd_shard *sh;
	/* primary side, owned by the sender thread */
	int lfd, wake_fd;
	pthread_t thread;
	bool running;
	struct xr_peer peer[XD_MAX_STANDBYS];
	uint8_t *chunk;
	size_t chunk_cap;
	_Atomic int sleeping; /* the sender waits in poll(): the shard nudges wake_fd */
	_Atomic uint64_t acked; /* highest seq any standby made durable */
	_Atomic int streaming; /* standbys streaming */
	_Atomic int sender_live; /* of those, served by the sender thread (it wants nudges) */
	pthread_mutex_t mu; /* the published hash and the epoch table copy */
	uint64_t hash_seq, hash_val, hash_at;
	/* commit time of recent batches by seq, for the lag in microseconds */
	uint64_t lag_seq[1024], lag_mono[1024], lag_bytes[1024];
	uint32_t lag_n;
	/* stage timing: the last commit (shard -> sender), the last ack read (sender -> shard) */
	_Atomic uint64_t c_seq, c_mono, a_mono;
	uint64_t a_seen;
	uint64_t peek_at; /* the shard's idle read of its peers (xd_repl_publish_hash) */
	struct xr_hist st[XR_STAGES];
	/* standby side, owned by the shard thread */
	enum xr_follow_state fstate;
	char from[80];
	int cfd;
	uint64_t retry_at, last_rx;
	uint8_t *rbuf;
	size_t rlen;
	uint64_t primary_seq, received, hashes_ok;
	uint64_t ack_seq; /* the batch being committed: acknowledged right after (send_ack) */
	bool frame_follows; /* another whole records frame is in rbuf after this one */
	bool ack_later; /* a later batch end is in rbuf already: its ack covers this batch */
	bool ack_failed;
	char why[240]; /* why it stopped (diverged) */
	bool notified;
};

_Atomic uint64_t xd_lease_until;

/* ---- helpers ---- */

static int parse_addr(const char *s, int add, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	long port;
	char *end;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port + add > 65535)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)(port + add));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -EINVAL;
}

static void nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Sends as much of [buf, len) as the socket takes now; returns bytes sent or -errno. */
static ssize_t send_some(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
	return n;
}

/* Blocking send of a small frame (handshakes, acks: the socket has room for them). */
static int send_frame(int fd, uint32_t type, const void *p, uint32_t len)
{
	uint8_t buf[sizeof(struct xr_frame) + sizeof(struct xr_welcome)];
	struct xr_frame f = {type, len};
	size_t off = 0, total = sizeof(f) + len;

	if (len > sizeof(buf) - sizeof(f))
		return -EMSGSIZE;
	memcpy(buf, &f, sizeof(f));
	memcpy(buf + sizeof(f), p, len);
	for (int spins = 0; off < total; spins++) {
		ssize_t n = send_some(fd, buf + off, total - off);

		if (n < 0)
			return (int)n;
		if (!n) {
			struct pollfd pf = {fd, POLLOUT, 0};

			if (spins > 50 || poll(&pf, 1, 100) < 0)
				return -ETIMEDOUT;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Reads what is there into buf (grown to hold a frame); 0, 1 (got bytes) or -errno (closed). */
static int recv_some(int fd, uint8_t **buf, size_t *len)
{
	ssize_t n;

	if (!*buf && !(*buf = malloc(XR_BUF)))
		return -ENOMEM;
	if (*len == XR_BUF)
		return -EMSGSIZE;
	n = recv(fd, *buf + *len, XR_BUF - *len, MSG_DONTWAIT);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
	*len += (size_t)n;
	return 1;
}

/* The next whole frame in buf, or NULL. */
static const struct xr_frame *next_frame(const uint8_t *buf, size_t len, size_t at)
{
	const struct xr_frame *f = (const struct xr_frame *)(buf + at);

	if (len - at < sizeof(*f) || len - at - sizeof(*f) < f->len)
		return NULL;
	return f;
}

static void consume(uint8_t *buf, size_t *len, size_t used)
{
	memmove(buf, buf + used, *len - used);
	*len -= used;
}

/* ---- primary: the sender thread ---- */

static void peer_close(struct xd_repl *r, struct xr_peer *p, const char *why)
{
	if (p->state == XR_STREAMING) {
		atomic_fetch_sub(&r->streaming, 1);
		if (atomic_load(&p->owner) == XR_OWN_SENDER)
			atomic_fetch_sub(&r->sender_live, 1);
	}
	xd_log("repl q%d: standby %s (%s) %s", r->sh->queue, p->name[0] ? p->name : "?", p->addr,
	       why);
	close(p->fd);
	xj_reader_close(&p->rd);
	free(p->in);
	free(p->out);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	if (!atomic_load(&r->streaming) && r->sh->opts->replicated)
		xd_log("repl q%d: no standby streaming: answers %s", r->sh->queue,
		       r->sh->opts->repl_missing == XD_MISSING_HOLD
			   ? "are held until one catches up (--repl-missing hold)"
			   : "leave with the local journal's guarantee (--repl-missing local)");
}

static void handle_hello(struct xd_repl *r, struct xr_peer *p, const struct xr_hello *h)
{
	struct xd_journal *j = &r->sh->journal;
	uint64_t cseq = __atomic_load_n(&j->committed_seq, __ATOMIC_ACQUIRE);
	uint64_t cpos = __atomic_load_n(&j->committed_pos, __ATOMIC_ACQUIRE);
	struct xr_welcome w = {.primary_seq = cseq, .epoch = r->sh->epoch};
	struct xj_reader rd;
	int rc;

	snprintf(p->name, sizeof(p->name), "%.*s", (int)sizeof(h->name), h->name);
	if (h->magic != XR_MAGIC || h->queue != (uint32_t)r->sh->queue) {
		peer_close(r, p, "sent a bad hello (not xdpexd replication of this queue)");
		return;
	}
	/* Does the standby's last record match ours? */
	w.match = h->next_seq == 1;
	if (h->next_seq > 1 && h->next_seq - 1 <= cseq &&
	    !xj_reader_open(&rd, j->dir, h->next_seq - 1, cpos)) {
		struct xj_rec rec;

		if (pread(rd.fd, &rec, sizeof(rec), (off_t)rd.off) == (ssize_t)sizeof(rec))
			w.match = rec.seq == h->next_seq - 1 && rec.crc == h->last_crc;
		xj_reader_close(&rd);
	}
	pthread_mutex_lock(&r->mu);
	w.nepochs = r->sh->nepochs;
	memcpy(w.epochs, r->sh->epochs, sizeof(w.epochs));
	pthread_mutex_unlock(&r->mu);
	if (send_frame(p->fd, XR_WELCOME, &w, sizeof(w))) {
		peer_close(r, p, "gone during the handshake");
		return;
	}
	if (!w.match) {
		/* The standby decides from the epochs whether to cut back; we stop here. */
		p->state = XR_HELLO_WAIT;
		return;
	}
	rc = xj_reader_open(&p->rd, j->dir, h->next_seq, cpos);
	if (rc) {
		xd_log("repl q%d: standby %s wants record %llu: %s", r->sh->queue, p->name,
		       (unsigned long long)h->next_seq,
		       rc == -ENOENT ? "not in this journal any more" : strerror(-rc));
		peer_close(r, p, "refused");
		return;
	}
	p->sent = h->next_seq - 1;
	p->acked = p->applied = p->sent;
	p->state = XR_STREAMING;
	atomic_fetch_add(&r->sender_live, 1);
	atomic_fetch_add(&r->streaming, 1);
	xd_log("repl q%d: standby %s (%s) streaming from record %llu (primary at %llu)",
	       r->sh->queue, p->name, p->addr, (unsigned long long)h->next_seq,
	       (unsigned long long)cseq);
}

/* False for an ack the peer must be closed for; the queue thread leaves that to the sender
 * thread (only the owner of a peer touches it, and only the sender closes). */
static bool handle_ack(struct xd_repl *r, struct xr_peer *p, const struct xr_ack *a, bool in_shard)
{
	uint64_t cur;

	/* An ack of a record it was not sent would release answers nobody else holds. */
	if (a->seq > p->sent && in_shard)
		return false;
	if (a->seq > p->sent) {
		xd_log("repl q%d: standby %s acknowledged record %llu, sent through %llu",
		       r->sh->queue, p->name, (unsigned long long)a->seq,
		       (unsigned long long)p->sent);
		peer_close(r, p, "acknowledged records it was not sent");
		return false;
	}
	p->acked = a->seq;
	p->applied = a->applied;
	p->acked_mono = xd_mono_ns();
	if (p->send_seq && a->seq >= p->send_seq) {
		xr_hist_add(&r->st[XR_ST_SENT_ACK], p->acked_mono - p->send_mono);
		p->send_seq = 0;
	}
	cur = atomic_load(&r->acked);
	if (a->seq > cur)
		atomic_store_explicit(&r->a_mono, p->acked_mono, memory_order_relaxed);
	while (a->seq > cur && !atomic_compare_exchange_weak(&r->acked, &cur, a->seq))
		;
	/* A shard that sleeps between datagrams (--poll sleep) holds answers for this ack: wake
	 * it now rather than at its next poll timeout (1 ms a round trip otherwise). */
	if (!in_shard && a->seq > cur && r->sh->held && r->sh->opts->poll == XD_POLL_SLEEP)
		xd_shard_wake(r->sh);
	return true;
}

static void peer_read(struct xd_repl *r, struct xr_peer *p)
{
	size_t at = 0;
	int rc = recv_some(p->fd, &p->in, &p->inlen);
	const struct xr_frame *f;

	if (rc < 0) {
		peer_close(r, p, rc == -ECONNRESET ? "disconnected" : strerror(-rc));
		return;
	}
	while (p->fd >= 0 && (f = next_frame(p->in, p->inlen, at))) {
		const void *body = f + 1;
		size_t flen = sizeof(*f) + f->len; /* (a handler that closes the peer frees f) */

		if (f->type == XR_HELLO && f->len == sizeof(struct xr_hello) &&
		    p->state == XR_HELLO_WAIT)
			handle_hello(r, p, body);
		else if (f->type == XR_ACK && f->len == sizeof(struct xr_ack) &&
			 p->state == XR_STREAMING)
			(void)handle_ack(r, p, body, false); /* (closes it when false) */
		else {
			peer_close(r, p, "sent an unexpected frame");
			return;
		}
		at += flen;
	}
	if (p->fd >= 0)
		consume(p->in, &p->inlen, at);
}

/* Queues the next frame for a streaming peer: records up to the committed position (cut after a
 * published hash's record, which then follows), a hash, or a heartbeat. */
static int peer_fill(struct xd_repl *r, struct xr_peer *p, uint64_t now)
{
	struct xd_journal *j = &r->sh->journal;
	uint64_t cpos = __atomic_load_n(&j->committed_pos, __ATOMIC_ACQUIRE);
	uint64_t hseq, hval, start_off;
	struct xr_frame *f;
	ssize_t n;

	pthread_mutex_lock(&r->mu);
	hseq = r->hash_seq;
	hval = r->hash_val;
	pthread_mutex_unlock(&r->mu);
	if (hseq && hseq == p->sent && p->hash_sent < hseq) {
		struct xr_hash h = {hseq, hval};

		p->hash_sent = hseq;
		f = (struct xr_frame *)p->out;
		*f = (struct xr_frame){XR_HASH, sizeof(h)};
		memcpy(f + 1, &h, sizeof(h));
		p->outlen = sizeof(*f) + sizeof(h);
		return 1;
	}
	start_off = p->rd.off;
	n = xj_reader_next(&p->rd, cpos, p->out + sizeof(*f), XR_BUF - sizeof(*f));
	if (n < 0)
		return (int)n;
	if (n > 0) {
		const struct xj_rec *last = NULL;
		size_t off = 0;

		/* A hash of a record inside this chunk: cut after that record. */
		while (off < (size_t)n) {
			last = (const struct xj_rec *)(p->out + sizeof(*f) + off);
			off += last->len;
			if (hseq && last->seq == hseq && p->hash_sent < hseq)
				break;
		}
		if (off < (size_t)n) {
			p->rd.off = start_off + off;
			p->rd.next_seq = last->seq + 1;
		}
		f = (struct xr_frame *)p->out;
		*f = (struct xr_frame){XR_RECORDS, (uint32_t)off};
		p->outlen = sizeof(*f) + off;
		p->sent = last->seq;
		return 1;
	}
	if (now - p->last_tx >= XR_BEAT_NS) {
		struct xr_beat b = {__atomic_load_n(&j->committed_seq, __ATOMIC_RELAXED)};

		f = (struct xr_frame *)p->out;
		*f = (struct xr_frame){XR_BEAT, sizeof(b)};
		memcpy(f + 1, &b, sizeof(b));
		p->outlen = sizeof(*f) + sizeof(b);
		return 1;
	}
	return 0;
}

/* Stage timing: a records frame went out whole. */
static void sent_records(struct xd_repl *r, struct xr_peer *p)
{
	uint64_t seq = atomic_load_explicit(&r->c_seq, memory_order_acquire);
	uint64_t cm = atomic_load_explicit(&r->c_mono, memory_order_relaxed);

	p->send_mono = xd_mono_ns();
	p->send_seq = p->sent;
	if (seq == p->sent && cm && p->send_mono > cm &&
	    atomic_load_explicit(&r->c_seq, memory_order_acquire) == seq)
		xr_hist_add(&r->st[XR_ST_COMMIT_SENT], p->send_mono - cm);
}

/* Sends what the peer has queued and queues more while the socket takes it; 1 if a frame is
 * still waiting for room (POLLOUT wanted). */
static int peer_pump(struct xd_repl *r, struct xr_peer *p, uint64_t now)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		if (p->outoff == p->outlen) {
			int rc;

			p->outoff = p->outlen = 0;
			rc = peer_fill(r, p, now);
			if (rc < 0) {
				peer_close(r, p, strerror(-rc));
				return 0;
			}
			if (!rc)
				return 0;
		}
		{
			ssize_t n = send_some(p->fd, p->out + p->outoff, p->outlen - p->outoff);

			if (n < 0) {
				peer_close(r, p, strerror((int)-n));
				return 0;
			}
			if (!n)
				return 1;
			p->outoff += (size_t)n;
			p->last_tx = now;
			if (p->outoff == p->outlen &&
			    ((const struct xr_frame *)p->out)->type == XR_RECORDS)
				sent_records(r, p);
		}
	}
	return p->outoff < p->outlen;
}

static void do_accept(struct xd_repl *r)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = accept4(r->lfd, (struct sockaddr *)&a, &al, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < XD_MAX_STANDBYS; i++) {
		struct xr_peer *p = &r->peer[i];

		if (p->state != XR_FREE)
			continue;
		memset(p, 0, sizeof(*p));
		p->fd = fd;
		p->rd.fd = -1;
		p->state = XR_HELLO_WAIT;
		p->out = malloc(XR_BUF);
		if (!p->out) {
			close(fd);
			p->state = XR_FREE;
			return;
		}
		nodelay(fd);
		snprintf(p->addr, sizeof(p->addr), "%s:%u", inet_ntoa(a.sin_addr),
			 ntohs(a.sin_port));
		return;
	}
	xd_log("repl q%d: refusing a standby from %s: %d are connected already", r->sh->queue,
	       inet_ntoa(a.sin_addr), XD_MAX_STANDBYS);
	close(fd);
}

/* A streaming peer with every committed record and nothing half sent goes to the shard thread
 * (--durability replicated only: the shard reads acks while it holds answers). Under r->mu, so
 * that a hash published meanwhile is either seen here (sent first) or sent by the shard. */
static void maybe_hand_over(struct xd_repl *r, struct xr_peer *p)
{
	struct xd_journal *j = &r->sh->journal;
	bool ok;

	if (!r->sh->opts->replicated || !r->sh->held || p->state != XR_STREAMING ||
	    atomic_load_explicit(&p->owner, memory_order_relaxed) != XR_OWN_SENDER ||
	    p->outoff != p->outlen || r->sh->role != XD_ROLE_PRIMARY)
		return;
	pthread_mutex_lock(&r->mu);
	ok = p->sent == __atomic_load_n(&j->committed_seq, __ATOMIC_ACQUIRE) &&
	     !(r->hash_seq && r->hash_seq == p->sent && p->hash_sent < r->hash_seq) &&
	     (uint32_t)(__atomic_load_n(&j->committed_pos, __ATOMIC_ACQUIRE) >> 40) == p->rd.seg;
	if (ok) {
		atomic_fetch_sub(&r->sender_live, 1);
		atomic_store_explicit(&p->owner, XR_OWN_SHARD, memory_order_release);
	}
	pthread_mutex_unlock(&r->mu);
	/* Whatever committed between the check and the store, the shard sends on this wake. */
	if (ok)
		xd_shard_wake(r->sh);
}

static bool sender_owns(struct xr_peer *p)
{
	return atomic_load_explicit(&p->owner, memory_order_acquire) == XR_OWN_SENDER;
}

static void *sender_main(void *arg)
{
	struct xd_repl *r = arg;

	while (!atomic_load(&xd_stop)) {
		struct pollfd pf[2 + XD_MAX_STANDBYS];
		uint64_t now = xd_mono_ns(), v;
		bool more = false;
		int n = 0;

		for (int i = 0; i < XD_MAX_STANDBYS; i++) {
			struct xr_peer *p = &r->peer[i];

			if (p->state == XR_STREAMING && r->sh->role == XD_ROLE_PRIMARY &&
			    sender_owns(p)) {
				/* What made the shard give it back is ours to read (and close
				 * for), before it could be handed over again. */
				if (p->reread || p->inlen >= sizeof(struct xr_frame)) {
					p->reread = false;
					peer_read(r, p);
				}
				if (p->state == XR_STREAMING)
					more |= peer_pump(r, p, now) == 1;
				maybe_hand_over(r, p);
			}
		}
		pf[n++] = (struct pollfd){r->lfd, POLLIN, 0};
		pf[n++] = (struct pollfd){r->wake_fd, POLLIN, 0};
		for (int i = 0; i < XD_MAX_STANDBYS; i++) {
			struct xr_peer *p = &r->peer[i];

			pf[n++] = (struct pollfd){
			    p->state && sender_owns(p) ? p->fd : -1,
			    (short)(POLLIN | (p->outoff < p->outlen ? POLLOUT : 0)), 0};
		}
		atomic_store(&r->sleeping, 1);
		/* Committed since the pump above? Then do not sleep on it. */
		{
			uint64_t cseq =
			    __atomic_load_n(&r->sh->journal.committed_seq, __ATOMIC_ACQUIRE);
			bool behind = false;

			for (int i = 0; i < XD_MAX_STANDBYS; i++)
				behind |= r->peer[i].state == XR_STREAMING &&
					  sender_owns(&r->peer[i]) && r->peer[i].sent < cseq &&
					  r->peer[i].outoff == r->peer[i].outlen;
			poll(pf, (nfds_t)n, behind || more ? 0 : (int)(XR_BEAT_NS / 1000000));
		}
		atomic_store(&r->sleeping, 0);
		if (pf[1].revents && read(r->wake_fd, &v, sizeof(v)) < 0)
			(void)0; /* drained by a racing nudge */
		if (pf[0].revents & POLLIN)
			do_accept(r);
		for (int i = 0; i < XD_MAX_STANDBYS; i++) {
			struct xr_peer *p = &r->peer[i];

			if (p->state && sender_owns(p) &&
			    (pf[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				peer_read(r, p);
		}
	}
	for (int i = 0; i < XD_MAX_STANDBYS; i++)
		if (r->peer[i].state && sender_owns(&r->peer[i]))
			peer_close(r, &r->peer[i], "closed: xdpexd is stopping");
	return NULL; /* the shard's peers are closed by xd_repl_close, after the shard stopped */
}

/* ---- setup ---- */

int xd_repl_open(struct xd_shard *sh, char *err, size_t errlen)
{
	const struct xd_opts *o = sh->opts;
	struct xd_repl *r;

	sh->role = o->role;
	if (!o->repl_listen && !o->repl_from && !o->ha && o->role == XD_ROLE_PRIMARY)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return snprintf(err, errlen, "out of memory"), -1;
	sh->repl = r;
	r->sh = sh;
	r->lfd = r->wake_fd = r->cfd = -1;
	pthread_mutex_init(&r->mu, NULL);
	if (o->repl_from)
		snprintf(r->from, sizeof(r->from), "%s", o->repl_from);
	if (o->repl_listen) {
		struct sockaddr_in a;
		int one = 1;

		if (parse_addr(o->repl_listen, sh->index, &a))
			return snprintf(err, errlen, "--repl-listen %s: expected A.B.C.D:PORT",
					o->repl_listen),
			       -1;
		r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (r->lfd < 0 || r->wake_fd < 0 ||
		    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(r->lfd, 8))
			return snprintf(err, errlen, "--repl-listen %s: queue %d on port %u: %s",
					o->repl_listen, sh->queue, ntohs(a.sin_port),
					strerror(errno)),
			       -1;
		if (pthread_create(&r->thread, NULL, sender_main, r))
			return snprintf(err, errlen, "repl q%d: sender thread: %s", sh->queue,
					strerror(errno)),
			       -1;
		r->running = true;
		xd_log("repl q%d: listening for standbys on %s:%u", sh->queue,
		       inet_ntoa(a.sin_addr), ntohs(a.sin_port));
	}
	if (o->replicated || o->ha) {
		sh->held = xd_held_new(16384, 4096);
		if (!sh->held)
			return snprintf(err, errlen, "out of memory for held answers"), -1;
	}
	return 0;
}

void xd_repl_close(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;

	if (!r)
		return;
	if (r->running)
		pthread_join(r->thread, NULL);
	for (int i = 0; i < XD_MAX_STANDBYS; i++)
		if (r->peer[i].state)
			peer_close(r, &r->peer[i], "closed: xdpexd is stopping");
	if (r->lfd >= 0)
		close(r->lfd);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	if (r->cfd >= 0)
		close(r->cfd);
	free(r->rbuf);
	free(r->chunk);
	pthread_mutex_destroy(&r->mu);
	free(r);
	sh->repl = NULL;
	xd_held_free(sh->held);
	sh->held = NULL;
}

/* ---- primary: the shard's side ---- */

/* ---- primary: the peers the shard thread serves (XR_OWN_SHARD) ---- */

/* Back to the sender thread (a socket that is full or broke, a segment change, a frame that is
 * not an ack): it carries on from p->rd and p->out. */
static void hand_back(struct xd_repl *r, struct xr_peer *p)
{
	uint64_t one = 1;

	p->handbacks++;
	atomic_fetch_add(&r->sender_live, 1);
	atomic_store_explicit(&p->owner, XR_OWN_SENDER, memory_order_release);
	if (write(r->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* the counter is full: it is awake anyway */
}

/* Queues the unsent tail of [iov) in p->out for the sender thread. */
static void keep_rest(struct xr_peer *p, const struct iovec *iov, int niov, size_t sent)
{
	p->outoff = p->outlen = 0;
	for (int i = 0; i < niov; i++) {
		size_t skip = sent < iov[i].iov_len ? sent : iov[i].iov_len;

		sent -= skip;
		memcpy(p->out + p->outlen, (const uint8_t *)iov[i].iov_base + skip,
		       iov[i].iov_len - skip);
		p->outlen += iov[i].iov_len - skip;
	}
}

/* Sends [iov) now, or what of it the socket takes and hands the rest to the sender thread;
 * false when the peer went back. */
static bool live_sendv(struct xd_repl *r, struct xr_peer *p, struct iovec *iov, int niov)
{
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
	size_t total = 0;
	ssize_t n;

	for (int i = 0; i < niov; i++)
		total += iov[i].iov_len;
	n = sendmsg(p->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)total) {
		p->last_tx = xd_mono_ns();
		return true;
	}
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		hand_back(r, p); /* the sender's own send meets the error and closes */
		return false;
	}
	keep_rest(p, iov, niov, n < 0 ? 0 : (size_t)n);
	hand_back(r, p);
	return false;
}

/* The committed records the peer does not have yet, straight from the segment's mapping: one
 * sendmsg of the frame header and the records, no copy. A new segment goes back to the sender
 * thread (its reader moves on through the files). */
static void live_records(struct xd_repl *r, struct xr_peer *p)
{
	struct xd_journal *j = &r->sh->journal;
	uint64_t cpos = j->committed_pos, coff = cpos & ((1ull << 40) - 1);
	struct xr_frame f;
	struct iovec iov[2];

	if (p->sent >= j->committed_seq)
		return;
	if ((uint32_t)(cpos >> 40) != p->rd.seg || p->rd.off > coff) {
		hand_back(r, p);
		return;
	}
	f = (struct xr_frame){XR_RECORDS, (uint32_t)(coff - p->rd.off)};
	iov[0] = (struct iovec){&f, sizeof(f)};
	iov[1] = (struct iovec){j->map + p->rd.off, coff - p->rd.off};
	p->rd.off = coff;
	p->rd.next_seq = j->committed_seq + 1;
	p->sent = j->committed_seq;
	if (live_sendv(r, p, iov, 2))
		sent_records(r, p);
}

static void live_frame(struct xd_repl *r, struct xr_peer *p, uint32_t type, void *body,
		       uint32_t len)
{
	struct xr_frame f = {type, len};
	struct iovec iov[2] = {{&f, sizeof(f)}, {body, len}};

	(void)live_sendv(r, p, iov, 2);
}

static bool shard_owns(struct xr_peer *p)
{
	return atomic_load_explicit(&p->owner, memory_order_acquire) == XR_OWN_SHARD;
}

static void live_pump(struct xd_repl *r)
{
	for (int i = 0; i < XD_MAX_STANDBYS; i++)
		if (shard_owns(&r->peer[i]))
			live_records(r, &r->peer[i]);
}

/* The acks of the shard's peers (and anything committed they have not got). */
void xd_repl_poll(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;

	if (!r || r->lfd < 0)
		return;
	for (int i = 0; i < XD_MAX_STANDBYS; i++) {
		struct xr_peer *p = &r->peer[i];
		const struct xr_frame *f;
		size_t at = 0;

		if (!shard_owns(p))
			continue;
		live_records(r, p);
		if (!shard_owns(p))
			continue;
		if (recv_some(p->fd, &p->in, &p->inlen) < 0) {
			p->reread = true; /* its recv sees the end too and closes */
			hand_back(r, p);
			continue;
		}
		while ((f = next_frame(p->in, p->inlen, at)) && f->type == XR_ACK &&
		       f->len == sizeof(struct xr_ack) &&
		       handle_ack(r, p, (const struct xr_ack *)(f + 1), true))
			at += sizeof(*f) + f->len;
		consume(p->in, &p->inlen, at);
		if (f) {
			p->reread = true; /* not a good ack: the sender thread reads it, closes */
			hand_back(r, p);
		}
	}
}

int xd_repl_poll_fds(struct xd_shard *sh, struct pollfd *pf, int max)
{
	struct xd_repl *r = sh->repl;
	int n = 0;

	for (int i = 0; r && i < XD_MAX_STANDBYS && n < max; i++)
		if (shard_owns(&r->peer[i]))
			pf[n++] = (struct pollfd){r->peer[i].fd, POLLIN, 0};
	return n;
}

void xd_repl_committed(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;
	uint64_t one = 1;

	if (!r || r->lfd < 0)
		return;
	{
		uint32_t i = r->lag_n++ & 1023;

		r->lag_seq[i] = sh->journal.committed_seq;
		r->lag_mono[i] = sh->mono_ns;
		r->lag_bytes[i] = sh->journal.bytes;
	}
	atomic_store_explicit(&r->c_mono, xd_mono_ns(), memory_order_relaxed);
	atomic_store_explicit(&r->c_seq, sh->journal.committed_seq, memory_order_release);
	live_pump(r);
	if (atomic_load_explicit(&r->sender_live, memory_order_acquire) &&
	    atomic_exchange_explicit(&r->sleeping, 0, memory_order_acq_rel) &&
	    write(r->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* the counter is full: it is awake anyway */
}

void xd_repl_released(struct xd_shard *sh, uint64_t now)
{
	struct xd_repl *r = sh->repl;
	uint64_t am;

	if (!r)
		return;
	am = atomic_load_explicit(&r->a_mono, memory_order_relaxed);
	if (am && am != r->a_seen && now > am) {
		xr_hist_add(&r->st[XR_ST_ACK_RELEASE], now - am);
		r->a_seen = am;
	}
}

uint64_t xd_repl_acked(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;

	if (!sh->opts->replicated || !r)
		return UINT64_MAX;
	if (!atomic_load_explicit(&r->streaming, memory_order_relaxed) &&
	    sh->opts->repl_missing == XD_MISSING_LOCAL)
		return UINT64_MAX;
	return atomic_load_explicit(&r->acked, memory_order_acquire);
}

void xd_repl_publish_hash(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;
	uint64_t seq = sh->journal.committed_seq, now = sh->mono_ns;

	if (!r || r->lfd < 0 || !atomic_load(&r->streaming))
		return;
	if (atomic_load_explicit(&r->streaming, memory_order_relaxed) !=
	    atomic_load_explicit(&r->sender_live, memory_order_relaxed)) {
		now = xd_mono_ns(); /* the shard's own peers: mono_ns is the last batch's */
		/* Nothing held, their sockets are not in the poll: read them now and then, so a
		 * standby that closed or talks nonsense goes back to the sender, which closes. */
		if (now - r->peek_at >= XR_BEAT_NS) {
			r->peek_at = now;
			xd_repl_poll(sh);
		}
	}
	/* The shard's idle peers hear a heartbeat, as the sender's do. */
	for (int i = 0; i < XD_MAX_STANDBYS; i++) {
		struct xr_peer *p = &r->peer[i];
		struct xr_beat b = {seq};

		if (shard_owns(p) && p->sent == seq && now - p->last_tx >= XR_BEAT_NS)
			live_frame(r, p, XR_BEAT, &b, sizeof(b));
	}
	if (now - r->hash_at < XR_HASH_EVERY_NS || seq == r->hash_seq)
		return;
	/* Only between batches: the books are those of every record through seq. */
	if (sh->journal.len)
		return;
	pthread_mutex_lock(&r->mu);
	r->hash_seq = seq;
	r->hash_val = xd_shard_hash(sh);
	r->hash_at = now;
	for (int i = 0; i < XD_MAX_STANDBYS; i++) {
		struct xr_peer *p = &r->peer[i];
		struct xr_hash h = {seq, r->hash_val};

		if (shard_owns(p) && p->sent == seq && p->hash_sent < seq) {
			p->hash_sent = seq;
			live_frame(r, p, XR_HASH, &h, sizeof(h));
		}
	}
	pthread_mutex_unlock(&r->mu);
}

void xd_epoch_begin(struct xd_shard *sh, uint64_t epoch, uint64_t first_seq)
{
	if (sh->repl)
		pthread_mutex_lock(&sh->repl->mu);
	if (sh->nepochs == XD_MAX_EPOCHS) { /* the oldest matters least */
		memmove(sh->epochs, sh->epochs + 1, sizeof(sh->epochs) - sizeof(sh->epochs[0]));
		sh->nepochs--;
	}
	sh->epochs[sh->nepochs++] = (struct xd_epoch){epoch, first_seq};
	sh->epoch = epoch;
	if (sh->repl)
		pthread_mutex_unlock(&sh->repl->mu);
}

/* ---- standby: following in the shard thread ---- */

static void follow_stop(struct xd_repl *r, enum xr_follow_state next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void follow_stop(struct xd_repl *r, enum xr_follow_state next, const char *fmt, ...)
{
	va_list ap;

	if (r->cfd >= 0)
		close(r->cfd);
	r->cfd = -1;
	r->rlen = 0;
	r->fstate = next;
	r->retry_at = xd_mono_ns() + XR_RETRY_NS;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	if (next == XF_DIVERGED || !r->notified)
		xd_log("%srepl q%d: %s", next == XF_DIVERGED ? "error: " : "", r->sh->queue,
		       r->why);
	r->notified = next != XF_DIVERGED;
}

static void follow_connect(struct xd_repl *r)
{
	struct sockaddr_in a;

	if (!r->from[0] || xd_mono_ns() < r->retry_at)
		return;
	if (parse_addr(r->from, r->sh->index, &a)) {
		follow_stop(r, XF_IDLE, "cannot follow %s: expected A.B.C.D:PORT", r->from);
		r->from[0] = 0;
		return;
	}
	r->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (r->cfd < 0)
		return;
	nodelay(r->cfd);
	if (connect(r->cfd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
		follow_stop(r, XF_IDLE, "cannot reach the primary at %s: %s", r->from,
			    strerror(errno));
		return;
	}
	r->fstate = XF_CONNECTING;
}

static void follow_hello(struct xd_repl *r)
{
	struct xd_shard *sh = r->sh;
	struct xr_hello h = {.magic = XR_MAGIC,
			     .queue = (uint32_t)sh->queue,
			     .next_seq = sh->journal.next_seq,
			     .epoch = sh->epoch};
	struct pollfd pf = {r->cfd, POLLOUT, 0};
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (poll(&pf, 1, 0) <= 0)
		return;
	if (getsockopt(r->cfd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
		follow_stop(r, XF_IDLE, "cannot reach the primary at %s: %s", r->from,
			    strerror(soerr ? soerr : errno));
		return;
	}
	if (h.next_seq > 1) {
		struct xj_reader rd;
		struct xj_rec rec;

		if (!xj_reader_open(
			&rd, sh->journal.dir, h.next_seq - 1,
			__atomic_load_n(&sh->journal.committed_pos, __ATOMIC_ACQUIRE))) {
			if (pread(rd.fd, &rec, sizeof(rec), (off_t)rd.off) == (ssize_t)sizeof(rec))
				h.last_crc = rec.crc;
			xj_reader_close(&rd);
		}
	}
	snprintf(h.name, sizeof(h.name), "%s", sh->opts->name ? sh->opts->name : "standby");
	if (send_frame(r->cfd, XR_HELLO, &h, sizeof(h))) {
		follow_stop(r, XF_IDLE, "primary %s: the connection broke", r->from);
		return;
	}
	r->fstate = XF_WELCOME_WAIT;
}

/* The primary's epochs say whether our journal ran ahead of it (an old primary's records that
 * were never replicated): then cut them and start again. */
static void follow_welcome(struct xd_repl *r, const struct xr_welcome *w)
{
	struct xd_shard *sh = r->sh;
	uint64_t next = sh->journal.next_seq, cut = 0;

	r->primary_seq = w->primary_seq;
	if (w->match) {
		r->fstate = XF_STREAMING;
		r->notified = false;
		xd_log("repl q%d: following %s from record %llu (primary at %llu, epoch %llu)",
		       sh->queue, r->from, (unsigned long long)next,
		       (unsigned long long)w->primary_seq, (unsigned long long)w->epoch);
		return;
	}
	for (uint32_t i = 0; i < w->nepochs && i < XD_MAX_EPOCHS; i++)
		if (w->epochs[i].epoch > sh->epoch) {
			cut = w->epochs[i].first_seq - 1; /* where the next epoch took over */
			break;
		}
	if (cut && cut < next - 1) {
		char dir[PATH_MAX];
		int rc;

		xd_log("repl q%d: this journal holds records %llu..%llu of epoch %llu that the "
		       "primary (epoch %llu) does not: never replicated, so never acknowledged; "
		       "cutting them and starting again",
		       sh->queue, (unsigned long long)cut + 1, (unsigned long long)next - 1,
		       (unsigned long long)sh->epoch, (unsigned long long)w->epoch);
		snprintf(dir, sizeof(dir), "%s", sh->journal.dir);
		xj_close(&sh->journal);
		rc = xj_truncate_after(dir, cut);
		_exit(rc ? 1 : XR_EXIT_REJOIN);
	}
	follow_stop(r, XF_DIVERGED,
		    "diverged: record %llu differs from the primary's (epoch %llu here, %llu "
		    "there) and the epochs do not explain it; replication stopped",
		    (unsigned long long)next - 1, (unsigned long long)sh->epoch,
		    (unsigned long long)w->epoch);
}

/* The batch is in this standby's journal: acknowledge it before applying it. */
static void send_ack(void *arg)
{
	struct xd_repl *r = arg;
	struct xr_ack a = {r->ack_seq, r->ack_seq};

	if (r->ack_later)
		return; /* one ack for what one read brought: fewer sends on both sides */
	if (send_frame(r->cfd, XR_ACK, &a, sizeof(a)))
		r->ack_failed = true;
	else
		xr_hist_add(&r->st[XR_ST_RECV_ACK], xd_mono_ns() - r->last_rx);
}

/* Whether a batch ends in the records at [off, len). */
static bool batch_end_after(const uint8_t *p, uint32_t off, uint32_t len)
{
	while (off + XJ_REC_HDR <= len) {
		const struct xj_rec *rec = (const struct xj_rec *)(p + off);

		if (rec->len < XJ_REC_HDR || rec->len > len - off)
			return false;
		if (rec->flags & XJ_F_BATCH_END)
			return true;
		off += rec->len;
	}
	return false;
}

static void follow_records(struct xd_repl *r, const uint8_t *p, uint32_t len)
{
	struct xd_shard *sh = r->sh;
	uint32_t off = 0;

	while (off + XJ_REC_HDR <= len) {
		const struct xj_rec *rec = (const struct xj_rec *)(p + off);
		int rc;

		if (rec->len < XJ_REC_HDR || rec->len > len - off ||
		    xj_crc32c(0, (const uint8_t *)rec + 8, rec->len - 8) != rec->crc) {
			follow_stop(r, XF_DIVERGED, "record %llu from the primary: CRC mismatch",
				    (unsigned long long)rec->seq);
			return;
		}
		rc = xj_append_raw(&sh->journal, rec);
		if (rc) {
			follow_stop(r, XF_DIVERGED,
				    "record %llu from the primary: %s (expected %llu)",
				    (unsigned long long)rec->seq,
				    rc == -EPROTO ? "out of order" : strerror(-rc),
				    (unsigned long long)sh->journal.next_seq);
			return;
		}
		off += rec->len;
		r->received = rec->seq;
		if (rec->flags & XJ_F_BATCH_END) {
			/* Durable here first, then acknowledged, then applied. */
			r->ack_seq = rec->seq;
			r->ack_later = r->frame_follows || batch_end_after(p, off, len);
			r->ack_failed = false;
			sh->replaying = true;
			rc = xj_commit_ack_replay(&sh->journal, send_ack, r, xd_replay_rec, sh);
			sh->replaying = false;
			if (rc) {
				xd_shard_fatal(sh, rc, "standby journal write");
				return;
			}
			if (r->ack_failed) {
				follow_stop(r, XF_IDLE, "primary %s: the connection broke",
					    r->from);
				return;
			}
		}
	}
}

static void follow_hash(struct xd_repl *r, const struct xr_hash *h)
{
	struct xd_shard *sh = r->sh;
	uint64_t mine;

	if (sh->journal.committed_seq != h->seq)
		return; /* not at that batch boundary (cannot happen in order) */
	mine = xd_shard_hash(sh);
	if (mine != h->hash) {
		follow_stop(r, XF_DIVERGED,
			    "diverged: state hash 0x%016llx after record %llu, the primary has "
			    "0x%016llx; replication stopped",
			    (unsigned long long)mine, (unsigned long long)h->seq,
			    (unsigned long long)h->hash);
		return;
	}
	r->hashes_ok++;
}

bool xd_repl_follow(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;
	const struct xr_frame *f;
	size_t at = 0, before, space;
	bool drained;
	int rc;

	if (!r || r->fstate == XF_DIVERGED || sh->fatal)
		return false;
	if (r->fstate == XF_IDLE) {
		follow_connect(r);
		return false;
	}
	if (r->fstate == XF_CONNECTING) {
		follow_hello(r);
		return false;
	}
	before = r->rlen;
	space = XR_BUF - before;
	rc = recv_some(r->cfd, &r->rbuf, &r->rlen);
	if (rc < 0) {
		follow_stop(r, XF_IDLE, "primary %s: %s", r->from,
			    rc == -ECONNRESET ? "disconnected" : strerror(-rc));
		return false;
	}
	if (!rc)
		return false;
	drained = r->rlen - before < space;
	r->last_rx = xd_mono_ns();
	while (r->cfd >= 0 && (f = next_frame(r->rbuf, r->rlen, at))) {
		const void *body = f + 1;
		const struct xr_frame *nf = next_frame(r->rbuf, r->rlen, at + sizeof(*f) + f->len);

		r->frame_follows = nf && nf->type == XR_RECORDS &&
				   batch_end_after((const uint8_t *)(nf + 1), 0, nf->len);

		if (f->type == XR_WELCOME && f->len == sizeof(struct xr_welcome) &&
		    r->fstate == XF_WELCOME_WAIT)
			follow_welcome(r, body);
		else if (f->type == XR_RECORDS && r->fstate == XF_STREAMING)
			follow_records(r, body, f->len);
		else if (f->type == XR_HASH && f->len == sizeof(struct xr_hash))
			follow_hash(r, body);
		else if (f->type == XR_BEAT && f->len == sizeof(struct xr_beat))
			r->primary_seq = ((const struct xr_beat *)body)->primary_seq;
		else
			follow_stop(r, XF_IDLE, "primary %s: unexpected frame %u", r->from,
				    f->type);
		at += sizeof(*f) + f->len;
	}
	if (r->cfd >= 0)
		consume(r->rbuf, &r->rlen, at);
	if (r->received > r->primary_seq)
		r->primary_seq = r->received;
	/* A read that did not fill the buffer emptied the socket: the next data wakes the poll,
	 * no recv to learn that there is none. */
	return !drained;
}

int xd_repl_fd(struct xd_shard *sh)
{
	return sh->repl ? sh->repl->cfd : -1;
}

void xd_repl_follow_addr(struct xd_shard *sh, const char *addr)
{
	struct xd_repl *r = sh->repl;

	if (!r)
		return;
	if (r->cfd >= 0)
		close(r->cfd);
	r->cfd = -1;
	r->rlen = 0;
	r->retry_at = 0;
	r->notified = false;
	snprintf(r->from, sizeof(r->from), "%s", addr);
	if (r->fstate != XF_DIVERGED)
		r->fstate = XF_IDLE;
}

uint32_t xd_repl_take_over(struct xd_shard *sh)
{
	struct xd_repl *r = sh->repl;
	uint32_t n = 0;

	if (r && r->cfd >= 0)
		close(r->cfd);
	if (r) {
		r->cfd = -1;
		r->fstate = XF_IDLE;
		r->from[0] = 0;
	}
	sh->role = XD_ROLE_PRIMARY;
	for (uint32_t i = 0; i < sh->nsess_list; i++) {
		struct xd_sess *s = &sh->sess[sh->sess_list[i]];

		if (s->logged_in) {
			xd_end_session(sh, s, XJ_SK_FAILOVER, 0, 0, 0);
			n++;
		}
	}
	xd_log("q%d: primary now, epoch %llu from record %llu; %u session%s log in again here",
	       sh->queue, (unsigned long long)sh->epoch, (unsigned long long)sh->admin_seq, n,
	       n == 1 ? "" : "s");
	return n;
}

/* ---- the status query ---- */

static json_t *stages_json(const struct xd_repl *r)
{
	json_t *o = json_object();

	for (int s = 0; s < XR_STAGES; s++) {
		const struct xr_hist *h = &r->st[s];
		uint64_t pct[3] = {50, 90, 99}, at[3] = {0, 0, 0}, cum = 0;
		int k = 0;

		if (!h->count)
			continue;
		for (int i = 0; i < XR_HBUCKETS && k < 3; i++) {
			cum += h->n[i];
			while (k < 3 && cum * 100 >= pct[k] * h->count)
				at[k++] = (uint64_t)i;
		}
		json_object_set_new(o, xr_stage_names[s],
				    json_pack("{s:I,s:f,s:I,s:I,s:I}", "count",
					      (json_int_t)h->count, "mean",
					      (double)h->sum_ns / (double)h->count / 1000.0, "p50",
					      (json_int_t)at[0], "p90", (json_int_t)at[1], "p99",
					      (json_int_t)at[2]));
	}
	return o;
}

void xd_repl_status(struct xd_shard *sh, json_t *q)
{
	static const char *const fnames[] = {"idle", "connecting", "handshake", "streaming",
					     "diverged"};
	struct xd_repl *r = sh->repl;
	uint64_t now = xd_mono_ns(), cseq = sh->journal.committed_seq;
	json_t *epochs = json_array();

	for (uint32_t i = 0; i < sh->nepochs; i++)
		json_array_append_new(
		    epochs, json_pack("{s:I,s:I}", "epoch", (json_int_t)sh->epochs[i].epoch,
				      "first_seq", (json_int_t)sh->epochs[i].first_seq));
	json_object_set_new(q, "role",
			    json_string(sh->role == XD_ROLE_PRIMARY ? "primary" : "standby"));
	json_object_set_new(q, "epoch", json_integer((json_int_t)sh->epoch));
	json_object_set_new(q, "epochs", epochs);
	json_object_set_new(q, "journal_seq", json_integer((json_int_t)cseq));
	json_object_set_new(q, "draining", json_boolean(sh->draining));
	json_object_set_new(q, "held_datagrams",
			    json_integer(sh->held ? (json_int_t)xd_held_datagrams(sh->held) : 0));
	if (!r)
		return;
	json_object_set_new(q, "stages_us", stages_json(r));
	if (sh->role == XD_ROLE_PRIMARY) {
		json_t *sb = json_array();

		for (int i = 0; i < XD_MAX_STANDBYS; i++) {
			struct xr_peer *p = &r->peer[i];
			uint64_t lag_us = 0, lag_bytes = 0;

			if (p->state != XR_STREAMING)
				continue;
			/* How long the oldest batch it has not acknowledged has waited, and the
			 * bytes committed since the last one it has (within the last 1,024
			 * batches). */
			for (uint32_t k = 0; k < 1024 && k < r->lag_n; k++) {
				uint32_t at = (r->lag_n - 1 - k) & 1023;

				if (r->lag_seq[at] <= p->acked) {
					lag_bytes = sh->journal.bytes - r->lag_bytes[at];
					break;
				}
				lag_us = (now - r->lag_mono[at]) / 1000;
				lag_bytes = sh->journal.bytes;
			}
			json_array_append_new(
			    sb, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:I}", "name", p->name,
					  "addr", p->addr, "sent_seq", (json_int_t)p->sent,
					  "acked_seq", (json_int_t)p->acked, "lag_records",
					  (json_int_t)(cseq > p->acked ? cseq - p->acked : 0),
					  "lag_bytes", (json_int_t)lag_bytes, "lag_us",
					  (json_int_t)lag_us, "served_by",
					  shard_owns(p) ? "queue thread" : "sender thread",
					  "handbacks", (json_int_t)p->handbacks));
		}
		json_object_set_new(q, "standbys", sb);
		json_object_set_new(q, "acked_seq",
				    json_integer((json_int_t)atomic_load(&r->acked)));
	} else {
		json_object_set_new(
		    q, "following",
		    json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:s}", "from", r->from, "state",
			      fnames[r->fstate], "primary_seq", (json_int_t)r->primary_seq,
			      "received_seq", (json_int_t)r->received, "lag_records",
			      (json_int_t)(r->primary_seq > cseq ? r->primary_seq - cseq : 0),
			      "hashes_matched", (json_int_t)r->hashes_ok, "why", r->why));
	}
}
