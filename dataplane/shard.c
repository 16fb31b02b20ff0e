/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The shard: one per served queue, run to completion by one thread. This file owns its life
 * (set-up from the configuration, recovery, its two ports, teardown, state hash), its loop
 * (xd_shard_run: mailbox, a receive burst from the network port, the entry port and the timers,
 * idle work), the batch boundary (xd_shard_batch_end: the journal commit, then the answers to the
 * ports; nothing of a batch is transmitted before its journal write) and the one fatal path.
 * The order path itself (sequencing, engine, events into wire messages) is pipeline.c.
 *
 * Backends are driven only through their operations table (backend.h); the shard never knows
 * which one carries its datagrams. Recovery replays journal records through the same functions
 * with `replaying` set: the engine and the sequence counters move exactly as they did live,
 * nothing is journaled or sent.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "xdpexd.h"

/* ---- set-up and teardown ---- */

static int add_config(struct xd_shard *sh, char *err, size_t errlen)
{
	const struct xd_config *cfg = sh->cfg;

	for (uint32_t i = 0; i < cfg->nsymbols; i++) {
		struct xd_symbol_cfg *y = &cfg->symbols[i];
		int rc;

		if (xd_symbol_owner(y, sh->opts) != sh->queue)
			continue;
		rc = xe_engine_add_symbol(sh->engine, &y->c);
		if (rc)
			return snprintf(err, errlen, "symbols[%u]: engine refused symbol %u: %s", i,
					y->c.symbol_id, strerror(-rc)),
			       -1;
		if (y->halted > 0)
			xe_engine_set_halted(sh->engine, y->c.symbol_id, 1);
		sh->syms[y->c.symbol_id] = *y;
		sh->nsyms++;
	}
	for (uint32_t i = 0; i < cfg->nsessions; i++) {
		const struct xd_session_cfg *c = &cfg->sessions[i];
		struct xd_sess *s = &sh->sess[c->id];

		if (xd_session_owner(c, sh->opts) != sh->queue) {
			s->foreign = true;
			s->cfg = *c; /* its secret: logins on the wrong queue (session.c) */
			continue;
		}
		s->configured = true;
		s->cfg = *c;
		sh->sess_list[sh->nsess_list++] = c->id;
		xe_engine_set_stp(sh->engine, c->id, (uint8_t)c->stp);
	}
	sh->nallow = cfg->nallow;
	if (cfg->nallow) /* no allowlist: cfg->allow is NULL, not a zero-length array */
		memcpy(sh->allow, cfg->allow, cfg->nallow * sizeof(*cfg->allow));
	sh->rate_pps = cfg->rate_pps;
	sh->rate_burst = cfg->rate_burst;
	return 0;
}

int xd_shard_init(struct xd_shard *sh, int index, int queue, const struct xd_opts *o,
		  struct xd_config *cfg, char *err, size_t errlen)
{
	memset(sh, 0, sizeof(*sh));
	sh->index = index;
	sh->queue = queue;
	sh->opts = o;
	sh->cfg = cfg;
	sh->journal.fd = -1;
	sh->feed_next = 1;
	pthread_mutex_init(&sh->mbox.mu, NULL);
	pthread_cond_init(&sh->mbox.cv, NULL);
	sh->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sh->wake_fd < 0)
		return snprintf(err, errlen, "q%d: eventfd: %s", queue, strerror(errno)), -1;
	sh->engine = xe_engine_create(&cfg->engine);
	if (!sh->engine)
		return snprintf(err, errlen,
				"engine: cannot create (max_orders %u, max_symbols %u, "
				"max_sessions %u): bad sizes or out of memory",
				cfg->engine.max_orders, cfg->engine.max_symbols,
				cfg->engine.max_sessions),
		       -1;
	sh->max_ev = xe_engine_max_events(sh->engine);
	sh->ev = malloc((size_t)sh->max_ev * sizeof(*sh->ev));
	sh->nsess_slots = cfg->engine.max_sessions + 1;
	sh->sess = calloc(sh->nsess_slots, sizeof(*sh->sess));
	sh->sess_list = calloc(sh->nsess_slots, sizeof(*sh->sess_list));
	sh->touched = calloc(sh->nsess_slots, sizeof(*sh->touched));
	sh->syms = calloc(cfg->engine.max_symbols + 1, sizeof(*sh->syms));
	sh->tx_cap = XD_TX_SLOTS;
	sh->tx = malloc(sh->tx_cap * sizeof(*sh->tx));
	sh->login_slots = calloc(XD_LOGIN_SLOTS, sizeof(*sh->login_slots));
	if (!sh->ev || !sh->sess || !sh->sess_list || !sh->touched || !sh->syms || !sh->tx ||
	    !sh->login_slots)
		return snprintf(err, errlen, "out of memory for queue %d", queue), -1;
	for (uint32_t i = 0; i < sh->nsess_slots; i++) {
		sh->sess[i].id = i;
		sh->sess[i].open_app = -1;
		sh->sess[i].next_in = sh->sess[i].next_out = 1;
	}
	/* The configuration file first, then the journal on top of it. */
	if (add_config(sh, err, errlen) || xd_recover(sh, err, errlen))
		return -1;
	return xd_repl_open(sh, err, errlen);
}

static int open_port(struct xd_shard *sh, struct xd_port *p, const struct xd_backend *be,
		     const char *path, char *err, size_t errlen)
{
	struct xd_port_cfg c = {
	    .o = sh->opts, .queue = sh->queue, .index = sh->index, .path = path};

	p->be = be;
	return be->open(&c, &p->st, err, errlen);
}

int xd_shard_open_ports(struct xd_shard *sh, const char *entry_path, char *err, size_t errlen)
{
	if (open_port(sh, &sh->net, sh->opts->backend, NULL, err, errlen))
		return -1;
	sh->own_allowlist = !(sh->net.be->filters ? sh->net.be->filters(sh->opts)
						  : sh->net.be->flags & XD_BE_FILTERS);
	if (entry_path && open_port(sh, &sh->entry, &xd_backend_entry, entry_path, err, errlen))
		return -1;
	/* Sessions recovery found logged in keep their binding in the new filter (a standby's are
	 * its primary's: they log in again here if it takes over). */
	for (uint32_t i = 0; sh->role == XD_ROLE_PRIMARY && i < sh->nsess_list; i++) {
		struct xd_sess *s = &sh->sess[sh->sess_list[i]];

		if (s->logged_in)
			xd_shard_bind(sh, s->id, &s->peer);
	}
	return xd_feed_open(sh, err, errlen);
}

static void close_port(struct xd_port *p)
{
	if (p->be)
		p->be->close(p->st);
	p->be = NULL;
	p->st = NULL;
}

void xd_shard_close_ports(struct xd_shard *sh)
{
	close_port(&sh->entry);
	close_port(&sh->net);
}

void xd_shard_free(struct xd_shard *sh)
{
	xd_shard_close_ports(sh);
	xd_repl_close(sh);
	xd_feed_close(sh);
	xj_close(&sh->journal);
	if (sh->engine)
		xe_engine_destroy(sh->engine);
	for (uint32_t i = 0; sh->sess && i < sh->nsess_slots; i++)
		free(sh->sess[i].idx);
	free(sh->sess);
	free(sh->sess_list);
	free(sh->touched);
	free(sh->syms);
	free(sh->tx);
	free(sh->ev);
	free(sh->login_slots);
	if (sh->wake_fd >= 0)
		close(sh->wake_fd);
	sh->wake_fd = -1;
}

uint64_t xd_shard_hash(struct xd_shard *sh)
{
	return xe_engine_state_hash(sh->engine);
}

void xd_shard_fatal(struct xd_shard *sh, int rc, const char *what)
{
	if (!sh->fatal) {
		xd_log("error: q%d: %s: %s; stopping", sh->queue, what, strerror(-rc));
		sh->fatal = rc;
	}
	atomic_store(&xd_stop, 1);
}

/* ---- the network port, for the rest of the shard ---- */

void xd_shard_bind(struct xd_shard *sh, uint32_t session_id, const struct xd_peer *p)
{
	if (sh->net.be && sh->net.be->bind && p->kind == sh->net.be->peer_kind)
		sh->net.be->bind(sh->net.st, session_id, p);
}

void xd_shard_unbind(struct xd_shard *sh, uint32_t session_id)
{
	if (sh->net.be && sh->net.be->unbind)
		sh->net.be->unbind(sh->net.st, session_id);
}

void xd_shard_port_stats(struct xd_shard *sh, json_t *q)
{
	if (sh->net.be && sh->net.be->stats)
		sh->net.be->stats(sh->net.st, q);
}

void xd_shard_wake(struct xd_shard *sh)
{
	uint64_t one = 1;

	if (sh->wake_fd >= 0 && write(sh->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* the counter is full: a wake-up is pending anyway */
}

/* ---- transmit slots ---- */

static void tx_reset(struct xd_shard *sh)
{
	for (uint32_t i = 0; i < sh->ntouched; i++) {
		sh->sess[sh->touched[i]].open_app = -1;
		sh->sess[sh->touched[i]].touched = false;
	}
	sh->ntouched = 0;
	sh->ntx = 0;
}

struct xd_txd *xd_tx_new(struct xd_shard *sh, const struct xd_peer *to, bool send, uint32_t sid,
			 uint8_t flags, uint64_t seq)
{
	struct xd_txd *t;
	struct xe_hdr *h;

	if (sh->ntx == sh->tx_cap) {
		/* One engine call produced more answers than the slots hold: grow (rare). */
		struct xd_txd *n = realloc(sh->tx, 2 * sh->tx_cap * sizeof(*n));

		if (!n) {
			xd_log("error: q%d: out of memory for %u transmit slots", sh->queue,
			       2 * sh->tx_cap);
			abort();
		}
		sh->tx = n;
		sh->tx_cap *= 2;
	}
	t = &sh->tx[sh->ntx++];
	memcpy(&t->to, to, offsetof(struct xd_peer, path));
	if (to->kind == XD_PEER_UNIX)
		memcpy(t->to.path, to->path, sizeof(t->to.path));
	t->send = send && to->kind != XD_PEER_NONE;
	t->retrans = false;
	t->raw = false;
	t->session_id = sid;
	h = (struct xe_hdr *)t->buf;
	h->magic = XE_MAGIC;
	h->version = XE_VERSION;
	h->flags = flags | XE_F_FROM_GW;
	h->session_id = sid;
	h->seq = seq;
	h->count = 0;
	h->length = XE_HDR_SIZE;
	h->reserved = 0;
	t->len = XE_HDR_SIZE;
	return t;
}

uint8_t *xd_tx_msg(struct xd_txd *t)
{
	struct xe_hdr *h = (struct xe_hdr *)t->buf;
	uint8_t *m = t->buf + t->len;

	h->count++;
	t->len += XE_MSG_SIZE;
	h->length = t->len;
	memset(m, 0, XE_MSG_SIZE);
	return m;
}

/* A session-message datagram (seq 0) to `to`; closes the session's open application datagram
 * so later application messages follow it on the wire. */
uint8_t *xd_out_session(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to,
			uint32_t sid, uint8_t flags)
{
	if (sh->replaying)
		return memset(sh->scratch, 0, sizeof(sh->scratch));
	if (s)
		s->open_app = -1;
	return xd_tx_msg(xd_tx_new(sh, to, true, sid, flags, 0));
}

/* Next application message of session s, with its outbound sequence. */
uint8_t *xd_out_app(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to, bool send)
{
	struct xd_txd *t = NULL;

	if (sh->replaying) {
		s->next_out++;
		return memset(sh->scratch, 0, sizeof(sh->scratch));
	}
	if (s->open_app >= 0) {
		t = &sh->tx[s->open_app];
		if (((struct xe_hdr *)t->buf)->count == XE_MAX_MSGS || t->send != send ||
		    !xd_peer_eq(&t->to, to))
			t = NULL;
	}
	if (!t) {
		if (!s->touched) {
			s->touched = true;
			sh->touched[sh->ntouched++] = s->id;
		}
		t = xd_tx_new(sh, to, send, s->id, 0, s->next_out);
		s->open_app = (int)(sh->ntx - 1);
	}
	s->next_out++;
	return xd_tx_msg(t);
}

/* ---- journal + transmit ---- */

void xd_index_out(void *ctx, const struct xj_rec *r, uint32_t seg, uint64_t off)
{
	struct xd_shard *sh = ctx;
	struct xd_sess *s = xd_sess_get(sh, r->session_id);

	if (!s)
		return;
	if (s->idx_n == s->idx_cap) {
		uint32_t cap = s->idx_cap ? 2 * s->idx_cap : 256;
		struct xd_outidx *n = realloc(s->idx, cap * sizeof(*n));

		if (!n) {
			xd_log("error: q%d: out of memory for the retransmission index of session "
			       "%u",
			       sh->queue, s->id);
			return;
		}
		s->idx = n;
		s->idx_cap = cap;
	}
	s->idx[s->idx_n++] = (struct xd_outidx){r->msg_seq, r->count, seg, off};
}

/* ---- journal + transmit ---- */

void xd_shard_batch_begin(struct xd_shard *sh)
{
	sh->now_ns = xd_wall_ns();
	sh->mono_ns = xd_mono_ns();
	sh->batch_rx = 0;
}

/* Hands datagrams [tx, tx + n) to the ports they go to, counted. */
static void transmit(struct xd_shard *sh, const struct xd_txd *tx, uint32_t n)
{
	uint32_t nsend[3] = {0};

	for (uint32_t i = 0; i < n; i++) {
		const struct xd_txd *t = &tx[i];

		if (!t->send)
			continue;
		nsend[t->to.kind]++;
		if (t->raw) /* a feed packet, counted by the feed */
			continue;
		sh->st.tx_datagrams++;
		sh->st.tx_msgs += ((const struct xe_hdr *)t->buf)->count;
		if (t->session_id < sh->nsess_slots)
			sh->sess[t->session_id].last_tx = sh->mono_ns;
	}
	if (sh->net.be && nsend[sh->net.be->peer_kind])
		sh->st.tx_errors += sh->net.be->tx(sh->net.st, tx, n);
	if (sh->entry.be && nsend[sh->entry.be->peer_kind])
		sh->st.tx_errors += sh->entry.be->tx(sh->entry.st, tx, n);
}

static void observe(struct xd_shard *sh, enum xd_lat_stage stage, uint64_t ns, uint32_t n)
{
	xd_hist_add(&sh->st.lat[stage], ns, n);
}

/* Whether this batch's answers must wait: for a standby's ack (--durability replicated), or
 * because the lease ran out (--ha: a fenced primary says nothing). */
static bool must_hold(struct xd_shard *sh, uint64_t seq)
{
	return sh->held && (xd_repl_acked(sh) < seq || xd_fenced(sh->opts, xd_mono_ns()));
}

void xd_shard_release(struct xd_shard *sh)
{
	const struct xd_held_batch *b;
	uint64_t acked;

	if (!sh->held || !xd_held_oldest(sh->held) || xd_fenced(sh->opts, xd_mono_ns()))
		return;
	xd_repl_poll(sh); /* the acks of the standbys this thread serves */
	acked = xd_repl_acked(sh);
	while ((b = xd_held_oldest(sh->held)) && b->seq <= acked) {
		const struct xd_txd *r1, *r2;
		uint32_t n1, n2;
		uint64_t t0 = xd_mono_ns(), done;

		xd_held_runs(sh->held, &r1, &n1, &r2, &n2);
		xd_repl_released(sh, t0);
		transmit(sh, r1, n1);
		if (n2)
			transmit(sh, r2, n2);
		done = xd_mono_ns();
		if (b->nrx) {
			observe(sh, XD_LAT_TOTAL, done - b->mono_start, b->nrx);
			observe(sh, XD_LAT_ENGINE, b->commit_start - b->mono_start, b->nrx);
			observe(sh, XD_LAT_JOURNAL, b->committed - b->commit_start, b->nrx);
			observe(sh, XD_LAT_REPLICATION, t0 - b->committed, b->nrx);
			observe(sh, XD_LAT_TRANSMIT, done - t0, b->nrx);
		}
		xd_held_pop(sh->held);
	}
}

void xd_shard_batch_end(struct xd_shard *sh)
{
	uint64_t t_commit, t_sent, seq;
	int rc;

	if (sh->replaying)
		return;
	if (sh->fatal) {
		/* Stopping: nothing more is journaled, so nothing more may leave. */
		tx_reset(sh);
		return;
	}
	for (uint32_t i = 0; i < sh->ntx; i++) {
		struct xd_txd *t = &sh->tx[i];
		struct xe_hdr *h = (struct xe_hdr *)t->buf;
		uint8_t *p;

		if (!h->seq || t->retrans)
			continue;
		p = xj_append(&sh->journal, XJ_OUT, t->session_id, h->seq, h->count, sh->now_ns,
			      (uint32_t)h->count * XE_MSG_SIZE);
		if (!p) {
			xd_journal_oom(sh);
			tx_reset(sh);
			return;
		}
		memcpy(p, t->buf + XE_HDR_SIZE, (size_t)h->count * XE_MSG_SIZE);
	}
	if (xd_feed_journal(sh)) {
		xd_journal_oom(sh);
		tx_reset(sh);
		return;
	}
	t_commit = xd_mono_ns();
	rc = xj_commit(&sh->journal, xd_index_out, sh);
	if (rc) {
		xd_shard_fatal(sh, rc, "journal write");
		tx_reset(sh);
		return;
	}
	t_sent = xd_mono_ns();
	xd_feed_publish(sh); /* the packets join the answers: held or sent with them */
	seq = sh->journal.committed_seq;
	xd_repl_committed(sh);
	if (sh->held && (xd_held_oldest(sh->held) || must_hold(sh, seq))) {
		/* In order behind what is held already, or held itself. */
		struct xd_held_batch b = {.seq = seq,
					  .mono_start = sh->mono_ns,
					  .commit_start = t_commit,
					  .committed = t_sent,
					  .nrx = sh->batch_rx};

		while (!xd_held_room(sh->held, sh->ntx) && !atomic_load(&xd_stop))
			xd_shard_release(sh); /* one sweep's answers outgrew the ring: wait */
		xd_held_push(sh->held, sh->tx, sh->ntx, &b);
		sh->batch_rx = 0;
		tx_reset(sh);
		xd_shard_release(sh);
		return;
	}
	transmit(sh, sh->tx, sh->ntx);
	tx_reset(sh);
	if (sh->batch_rx) {
		/* Every datagram of the batch so far shares its receipt (the burst) and its
		 * answers' departure (now): one observation each. */
		uint64_t done = xd_mono_ns();

		observe(sh, XD_LAT_TOTAL, done - sh->mono_ns, sh->batch_rx);
		observe(sh, XD_LAT_ENGINE, t_commit - sh->mono_ns, sh->batch_rx);
		observe(sh, XD_LAT_JOURNAL, t_sent - t_commit, sh->batch_rx);
		observe(sh, XD_LAT_TRANSMIT, done - t_sent, sh->batch_rx);
		sh->batch_rx = 0;
	}
}

/* ---- the loop ---- */

/* One receive burst of port p: every datagram through the pipeline, the frames back to the
 * port, then the batch committed and answered. */
void xd_shard_rx_batch(struct xd_shard *sh, struct xd_port *p, uint32_t n)
{
	xd_shard_batch_begin(sh);
	for (uint32_t i = 0; i < n; i++) {
		const struct xd_rxd *d = &sh->rx[i];

		sh->batch_rx++; /* counted by the commit that answers it (mid-batch ones included)
				 */
		if (d->buf) {
			xd_shard_datagram(sh, d->buf, d->len, d->src);
		} else {
			sh->st.rx_datagrams++;
			sh->st.malformed++;
		}
	}
	/* The journal batch and the answers hold copies: the frames can go back now. */
	if (p->be->rx_release)
		p->be->rx_release(p->st, n);
	xd_shard_batch_end(sh);
	sh->st.batches++;
	sh->st.busy_ns += xd_mono_ns() - sh->mono_ns;
}

/* The entry port and the timers: served on an idle turn, otherwise at most every 50 us (checked
 * every 64th turn), so a busy loop reacts to packets at once and still serves them. */
static void side_work(struct xd_shard *sh, bool idle)
{
	bool due = (++sh->side_turn & 63) == 0 && xd_mono_ns() - sh->side_last >= 50000;

	if (!due && !idle)
		return;
	if (sh->entry.be) {
		uint32_t n = sh->entry.be->rx_burst(sh->entry.st, sh->rx, XD_MAX_BATCH);

		if (n)
			xd_shard_rx_batch(sh, &sh->entry, n);
	}
	xd_shard_timers(sh);
	xd_repl_publish_hash(sh);
	sh->side_last = xd_mono_ns();
	xd_feed_timers(sh, sh->side_last);
}

/* --poll sleep: up to 1 ms until the network port, the entry port or the mailbox has work. */
static void sleep_turn(struct xd_shard *sh)
{
	struct pollfd p[3 + XD_MAX_STANDBYS] = {
	    {-1, POLLIN, 0}, {sh->wake_fd, POLLIN, 0}, {-1, POLLIN, 0}};
	uint64_t v;
	int n = 3;

	if (sh->role == XD_ROLE_STANDBY)
		p[0].fd = xd_repl_fd(sh);
	else if (sh->net.be->fd)
		p[0].fd = sh->net.be->fd(sh->net.st);
	if (sh->entry.be)
		p[2].fd = sh->entry.be->fd(sh->entry.st);
	/* The acks of the standbys this thread serves wake it directly (held answers). */
	if (sh->role == XD_ROLE_PRIMARY && sh->held && xd_held_oldest(sh->held))
		n += xd_repl_poll_fds(sh, p + 3, XD_MAX_STANDBYS);
	if (poll(p, (nfds_t)n, 1) > 0 && p[1].revents && read(sh->wake_fd, &v, sizeof(v)) < 0)
		(void)0; /* drained by a racing wake-up: nothing to do */
}

/* A standby's turn: follow the primary; what arrives on the network port is not ours to
 * answer (a client that found us first moves on after its heartbeat timeout). */
static bool standby_turn(struct xd_shard *sh)
{
	bool busy = xd_repl_follow(sh);
	uint32_t n = sh->net.be->rx_burst(sh->net.st, sh->rx, XD_MAX_BATCH);

	if (n) {
		sh->st.standby_dropped += n;
		if (sh->net.be->rx_release)
			sh->net.be->rx_release(sh->net.st, n);
	}
	return busy || n;
}

void xd_shard_run(struct xd_shard *sh)
{
	const struct xd_backend *be = sh->net.be;
	const struct xd_opts *o = sh->opts;
	bool sleeps = o->poll == XD_POLL_SLEEP;
	/* A receive that waits (busy polling in the kernel, or a sleep) makes its empty turns
	 * slow already: those serve the entry port and the timers each time. */
	bool idle_side = sleeps || (be->rx_waits ? be->rx_waits(o) : be->flags & XD_BE_RX_WAITS);

	if (be->thread_init)
		be->thread_init(sh->net.st);
	while (!atomic_load_explicit(&xd_stop, memory_order_relaxed)) {
		uint32_t n = 0;

		if (atomic_load_explicit(&sh->mbox.pending, memory_order_acquire))
			xd_shard_mbox(sh);
		if (sh->role == XD_ROLE_STANDBY) {
			if (!standby_turn(sh) && sleeps)
				sleep_turn(sh);
			continue;
		}
		if (o->ha && xd_fenced(o, xd_mono_ns())) {
			/* No lease: not a datagram in, not an answer out, until one is granted. */
			if (sleeps)
				sleep_turn(sh);
			continue;
		}
		if (sh->draining) {
			/* Handing over: the rest of the held answers leave, nothing comes in. */
			xd_shard_release(sh);
			if (be->poll)
				be->poll(sh->net.st, true);
			if (sleeps)
				sleep_turn(sh);
			continue;
		}
		if (sh->held) {
			xd_shard_release(sh);
			/* Held answers fill the ring: stop taking orders until a standby catches
			 * up. */
			if (!xd_held_room(sh->held, 2 * XD_TX_SLOTS)) {
				if (be->poll)
					be->poll(sh->net.st, true);
				continue;
			}
		}
		n = be->rx_burst(sh->net.st, sh->rx, (uint32_t)o->batch);
		if (n)
			xd_shard_rx_batch(sh, &sh->net, n);
		side_work(sh, !n && idle_side);
		if (be->poll)
			be->poll(sh->net.st, !n);
		if (!n && sleeps)
			sleep_turn(sh);
	}
	/* Anything still open is journaled (and answered) before the thread ends. */
	xd_shard_batch_end(sh);
}
