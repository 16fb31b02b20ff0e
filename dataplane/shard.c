/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The per-queue pipeline of xdpexd: one validated datagram at a time through sessions (login,
 * heartbeat, logout, retransmission), inbound sequencing (duplicates skipped, gaps answered),
 * the journal and the engine, and the engine's events turned into wire messages packed per
 * session into datagrams of up to 22 messages. Nothing of a batch is transmitted before the
 * journal write of that batch (xd_shard_batch_end).
 *
 * Recovery replays journal records through the same functions with `replaying` set: the engine
 * and the sequence counters move exactly as they did live, nothing is journaled or sent.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex/parse.h"
#include "xdpexd.h"

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

struct xd_sess *xd_sess_get(struct xd_shard *sh, uint32_t id)
{
	if (!id || id >= sh->nsess_slots || !sh->sess[id].configured)
		return NULL;
	return &sh->sess[id];
}

bool xd_peer_eq(const struct xd_peer *a, const struct xd_peer *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == XD_PEER_UDP)
		return a->addr == b->addr && a->port == b->port;
	if (a->kind == XD_PEER_UNIX)
		return !strcmp(a->path, b->path);
	return true;
}

int xd_peer_str(const struct xd_peer *p, char *buf, size_t n)
{
	const uint8_t *a = (const uint8_t *)&p->addr;

	if (p->kind == XD_PEER_UDP)
		return snprintf(buf, n, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
				(unsigned)__builtin_bswap16(p->port));
	if (p->kind == XD_PEER_UNIX)
		return snprintf(buf, n, "unix:%s", p->path);
	return snprintf(buf, n, "none");
}

int xd_allowed(const struct xd_shard *sh, uint32_t addr)
{
	if (!sh->nallow)
		return 1;
	for (uint32_t i = 0; i < sh->nallow; i++) {
		uint32_t mask = sh->allow[i].len ? __builtin_bswap32(~0u << (32 - sh->allow[i].len)) : 0;

		if ((addr & mask) == sh->allow[i].addr)
			return 1;
	}
	return 0;
}

/* ---- transmit slots ---- */

static void tx_reset(struct xd_shard *sh)
{
	for (uint32_t i = 0; i < sh->ntouched; i++)
		sh->sess[sh->touched[i]].open_app = -1;
	sh->ntouched = 0;
	sh->ntx = 0;
}

static struct xd_txd *tx_new(struct xd_shard *sh, const struct xd_peer *to, bool send,
			     uint32_t sid, uint8_t flags, uint64_t seq)
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

static uint8_t *tx_msg(struct xd_txd *t)
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
static uint8_t *out_session(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to,
			    uint32_t sid, uint8_t flags)
{
	if (sh->replaying)
		return memset(sh->scratch, 0, sizeof(sh->scratch));
	if (s)
		s->open_app = -1;
	return tx_msg(tx_new(sh, to, true, sid, flags, 0));
}

/* Next application message of session s, with its outbound sequence. */
static uint8_t *out_app(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to, bool send)
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
		if (s->open_app < 0)
			sh->touched[sh->ntouched++] = s->id;
		t = tx_new(sh, to, send, s->id, 0, s->next_out);
		s->open_app = (int)(sh->ntx - 1);
	}
	s->next_out++;
	return tx_msg(t);
}

/* ---- journal + transmit ---- */

static void index_out(void *ctx, const struct xj_rec *r, uint32_t seg, uint64_t off)
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
	s->idx[s->idx_n++] = (struct xd_outidx){ r->msg_seq, r->count, seg, off };
}

void xd_shard_batch_begin(struct xd_shard *sh)
{
	sh->now_ns = xd_wall_ns();
	sh->mono_ns = xd_mono_ns();
}

int xd_shard_batch_end(struct xd_shard *sh)
{
	uint32_t nsend = 0;
	int rc;

	if (sh->replaying)
		return 0;
	for (uint32_t i = 0; i < sh->ntx; i++) {
		struct xd_txd *t = &sh->tx[i];
		struct xe_hdr *h = (struct xe_hdr *)t->buf;
		uint8_t *p;

		if (!h->seq || t->retrans)
			continue;
		p = xj_append(&sh->journal, XJ_OUT, t->session_id, h->seq, h->count, sh->now_ns,
			      (uint32_t)h->count * XE_MSG_SIZE);
		if (!p) {
			xd_log("error: q%d: journal batch buffer full", sh->queue);
			return -ENOSPC;
		}
		memcpy(p, t->buf + XE_HDR_SIZE, (size_t)h->count * XE_MSG_SIZE);
	}
	rc = xj_commit(&sh->journal, index_out, sh);
	if (rc) {
		sh->fatal = rc;
		atomic_store(&xd_stop, 1);
		tx_reset(sh);
		return rc;
	}
	for (uint32_t i = 0; i < sh->ntx; i++) {
		struct xd_txd *t = &sh->tx[i];

		if (!t->send)
			continue;
		nsend++;
		sh->st.tx_msgs += ((struct xe_hdr *)t->buf)->count;
		if (t->session_id < sh->nsess_slots)
			sh->sess[t->session_id].last_tx = sh->mono_ns;
	}
	if (nsend) {
		sh->st.tx_datagrams += nsend;
		xd_io_send(sh, sh->tx, sh->ntx);
		if (sh->entry_fd >= 0)
			xd_entry_send(sh, sh->tx, sh->ntx);
	}
	tx_reset(sh);
	return 0;
}

/* Commit in the middle of a batch when the buffers run high. */
static void maybe_commit(struct xd_shard *sh)
{
	if (!sh->replaying && (sh->ntx >= XD_TX_SLOTS / 2 || xj_room(&sh->journal) < (1u << 20)))
		xd_shard_batch_end(sh);
}

/* ---- engine events -> wire messages ---- */

void xd_emit_events(struct xd_shard *sh, uint32_t n, const struct xd_sess *sender,
			const uint8_t *cause, uint64_t in_seq)
{
	uint64_t echo = cause ? msg_client_ts(cause) : 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct xe_event *e = &sh->ev[i];
		struct xd_sess *s = xd_sess_get(sh, e->session_id);
		uint64_t my_echo = sender && e->session_id == sender->id ? echo : 0;
		uint8_t *m;

		if (!s)
			continue;
		m = out_app(sh, s, &s->peer, s->logged_in);
		switch (e->type) {
		case XE_EV_ACCEPTED: {
			struct xe_accepted *a = (void *)m;

			a->type = XE_ACCEPTED;
			a->side = e->side;
			a->ord_type = e->ord_type;
			a->tif = e->tif;
			a->symbol_id = e->symbol_id;
			a->cl_ord_id = e->cl_ord_id;
			a->order_id = e->order_id;
			a->price = e->price;
			a->qty = e->qty;
			a->echo_ts = my_echo;
			break;
		}
		case XE_EV_REJECTED: {
			struct xe_rejected *r = (void *)m;

			r->type = XE_REJECTED;
			r->ref_type = cause ? cause[0] : 0;
			r->reason = e->reason;
			r->symbol_id = e->symbol_id;
			r->cl_ord_id = e->cl_ord_id;
			r->ref_seq = in_seq;
			r->echo_ts = my_echo;
			break;
		}
		case XE_EV_FILL: {
			struct xe_fill *f = (void *)m;

			f->type = XE_FILL;
			f->side = e->side;
			f->liquidity = e->liquidity;
			f->symbol_id = e->symbol_id;
			f->cl_ord_id = e->cl_ord_id;
			f->exec_id = e->exec_id;
			f->price = e->price;
			f->qty = e->qty;
			f->leaves = e->leaves;
			f->order_id = e->order_id;
			f->echo_ts = my_echo;
			break;
		}
		case XE_EV_CANCELLED: {
			struct xe_cancelled *c = (void *)m;

			c->type = XE_CANCELLED;
			c->side = e->side;
			c->reason = (uint8_t)e->reason;
			c->symbol_id = e->symbol_id;
			c->cl_ord_id = e->cl_ord_id;
			c->order_id = e->order_id;
			c->price = e->price;
			c->qty = e->qty;
			c->echo_ts = my_echo;
			break;
		}
		case XE_EV_REPLACED: {
			struct xe_replaced *r = (void *)m;

			r->type = XE_REPLACED;
			r->side = e->side;
			r->symbol_id = e->symbol_id;
			r->cl_ord_id = e->cl_ord_id;
			r->order_id = e->order_id;
			r->price = e->price;
			r->qty = e->qty;
			r->leaves = e->leaves;
			r->orig_cl_ord_id = e->orig_cl_ord_id;
			r->echo_ts = my_echo;
			break;
		}
		default:
			/* Unknown event type: answer nothing rather than garbage; counted. */
			((struct xe_rejected *)m)->type = XE_REJECTED;
			((struct xe_rejected *)m)->reason = XE_REJ_UNKNOWN_MESSAGE;
			break;
		}
		/* recv_ts sits at offset 56 in every gateway -> client message. */
		memcpy(m + 56, &sh->now_ns, 8);
	}
}

/* A Rejected built by the dataplane itself (not logged in, rate limited, nothing to cancel). */
static void reject(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to, bool send,
		   const uint8_t *msg, uint64_t in_seq, uint16_t reason)
{
	struct xe_rejected *r = (void *)out_app(sh, s, to, send);

	r->type = XE_REJECTED;
	r->ref_type = msg[0];
	r->reason = reason;
	r->symbol_id = rd32(msg + 4);
	r->cl_ord_id = msg[0] == XE_MASS_CANCEL ? 0 : rd64(msg + 8);
	r->ref_seq = in_seq;
	r->echo_ts = msg_client_ts(msg);
	r->recv_ts = sh->now_ns;
}

/* GCRA per session on the batch clock (journaled, so replay decides the same). */
static bool rate_limited(struct xd_shard *sh, struct xd_sess *s)
{
	uint64_t interval, tol, now = sh->now_ns;

	if (s->cfg.rate <= 0)
		return false;
	interval = 1000000000ull / (uint64_t)s->cfg.rate;
	tol = s->cfg.burst > 1 ? (uint64_t)(s->cfg.burst - 1) * interval : 0;
	if (s->tat > now + tol)
		return true;
	s->tat = (s->tat > now ? s->tat : now) + interval;
	return false;
}

/* Applies inbound application message `m` with sequence in_seq (already accepted). */
static void apply_msg(struct xd_shard *sh, struct xd_sess *s, uint64_t in_seq, const uint8_t *m)
{
	uint32_t n = 0;

	s->next_in = in_seq + 1;
	sh->st.applied++;
	if (rate_limited(sh, s)) {
		sh->st.rate_limited++;
		reject(sh, s, &s->peer, s->logged_in, m, in_seq, XE_REJ_RATE_LIMITED);
		return;
	}
	switch (m[0]) {
	case XE_NEW_ORDER: {
		const struct xe_new_order *no = (const void *)m;
		struct xe_order o = {
			.session_id = s->id,
			.symbol_id = no->symbol_id,
			.cl_ord_id = no->cl_ord_id,
			.price = no->price,
			.qty = no->qty,
			.side = no->side,
			.ord_type = no->ord_type,
			.tif = no->tif,
		};

		n = xe_engine_new_order(sh->engine, &o, sh->ev);
		break;
	}
	case XE_CANCEL: {
		const struct xe_cancel *c = (const void *)m;

		n = xe_engine_cancel(sh->engine, s->id, c->orig_cl_ord_id, sh->ev);
		break;
	}
	case XE_REPLACE: {
		const struct xe_replace *r = (const void *)m;

		n = xe_engine_replace(sh->engine, s->id, r->orig_cl_ord_id, r->new_cl_ord_id,
				      r->price, r->qty, sh->ev);
		break;
	}
	case XE_MASS_CANCEL: {
		const struct xe_mass_cancel *mc = (const void *)m;

		n = xe_engine_mass_cancel(sh->engine, s->id, mc->symbol_id, mc->side, XE_CXL_MASS,
					  sh->ev);
		if (!n) {
			/* Every applied message is answered: nothing to cancel. */
			reject(sh, s, &s->peer, s->logged_in, m, in_seq, XE_REJ_UNKNOWN_ORDER);
			return;
		}
		break;
	}
	default:
		reject(sh, s, &s->peer, s->logged_in, m, in_seq, XE_REJ_UNKNOWN_MESSAGE);
		return;
	}
	xd_emit_events(sh, n, s, m, in_seq);
}

/* Messages of a session that is not logged in: each answered NOT_LOGGED_IN, not applied. */
static void not_logged_in(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to,
			  uint64_t seq, const uint8_t *msgs, uint16_t count)
{
	for (uint16_t i = 0; i < count; i++)
		reject(sh, s, to, true, msgs + (size_t)i * XE_MSG_SIZE, seq + i,
		       XE_REJ_NOT_LOGGED_IN);
	sh->st.not_logged_in += count;
}

static void journal_in(struct xd_shard *sh, struct xd_sess *s, uint64_t seq, const uint8_t *msgs,
		       uint16_t count)
{
	uint8_t *p;

	if (!count || sh->replaying)
		return;
	p = xj_append(&sh->journal, XJ_IN, s->id, seq, count, sh->now_ns,
		      (uint32_t)count * XE_MSG_SIZE);
	if (p)
		memcpy(p, msgs, (size_t)count * XE_MSG_SIZE);
}

static void handle_app(struct xd_shard *sh, const struct xe_hdr *h, struct xd_sess *s,
		       const struct xd_peer *src)
{
	const uint8_t *msgs = (const uint8_t *)h + XE_HDR_SIZE;
	uint64_t seq = h->seq;
	uint16_t n = h->count, i0 = 0, start;

	if (!s->logged_in) {
		journal_in(sh, s, seq, msgs, n);
		not_logged_in(sh, s, src, seq, msgs, n);
		return;
	}
	if (!xd_peer_eq(&s->peer, src)) {
		sh->st.spoofed++;
		return;
	}
	s->last_rx = sh->mono_ns;
	if (seq < s->next_in) {
		uint64_t skip = s->next_in - seq;

		if (skip >= n) {
			sh->st.duplicates += n;
			return;
		}
		sh->st.duplicates += skip;
		i0 = (uint16_t)skip;
	} else if (seq > s->next_in) {
		struct xe_sequence_gap *g = (void *)out_session(sh, s, &s->peer, s->id, 0);

		sh->st.gaps++;
		g->type = XE_SEQUENCE_GAP;
		g->expected = s->next_in;
		g->received = seq;
		g->echo_ts = msg_client_ts(msgs);
		g->recv_ts = sh->now_ns;
		return;
	}
	start = i0;
	for (uint16_t i = i0; i < n; i++) {
		if (sh->ntx >= XD_TX_SLOTS / 2 || xj_room(&sh->journal) < (1u << 20)) {
			journal_in(sh, s, seq + start, msgs + (size_t)start * XE_MSG_SIZE,
				   i - start);
			start = i;
			xd_shard_batch_end(sh);
		}
		apply_msg(sh, s, seq + i, msgs + (size_t)i * XE_MSG_SIZE);
	}
	journal_in(sh, s, seq + start, msgs + (size_t)start * XE_MSG_SIZE, n - start);
}

/* ---- sessions ---- */

static void nonce_push(struct xd_sess *s, uint64_t nonce, uint64_t ts)
{
	s->nonce[s->nonce_pos] = nonce;
	s->nonce_ts[s->nonce_pos] = ts;
	s->nonce_pos = (s->nonce_pos + 1) % XD_NONCES;
	if (s->nonce_n < XD_NONCES)
		s->nonce_n++;
}

static bool nonce_seen(const struct xd_sess *s, uint64_t nonce)
{
	for (uint32_t i = 0; i < s->nonce_n; i++)
		if (s->nonce[i] == nonce)
			return true;
	return false;
}

static void journal_sess(struct xd_shard *sh, struct xd_sess *s, uint8_t kind, uint8_t cod,
			 uint64_t nonce, uint64_t login_ts)
{
	const struct xd_peer *p = &s->peer;
	struct xj_sess_ev *e;
	uint32_t plen = sizeof(*e);
	size_t pathlen = 0;

	if (sh->replaying)
		return;
	if (p->kind == XD_PEER_UNIX && kind == XJ_SK_LOGIN) {
		pathlen = strlen(p->path) + 1;
		plen += (uint32_t)pathlen;
	}
	e = xj_append(&sh->journal, XJ_SESSION, s->id, 0, 0, sh->now_ns, plen);
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->addr_kind = p->kind;
	e->cod = cod;
	e->has_l2 = p->has_l2;
	e->port = p->port;
	e->lport = p->lport;
	e->addr = p->addr;
	e->laddr = p->laddr;
	e->nonce = nonce;
	e->login_ts = login_ts;
	memcpy(e->mac, p->mac, 6);
	memcpy(e->lmac, p->lmac, 6);
	if (pathlen)
		memcpy((uint8_t *)(e + 1), p->path, pathlen);
}

/* Logout, timeout or operator: unbind, optional cancel-on-disconnect. */
void xd_end_session(struct xd_shard *sh, struct xd_sess *s, uint8_t kind, uint8_t reason,
			uint64_t echo_ts, int cod)
{
	uint32_t n;

	if (cod < 0)
		cod = s->cfg.cod > 0;
	journal_sess(sh, s, kind, (uint8_t)cod, 0, 0);
	if (!sh->replaying) {
		struct xe_logout *lo = (void *)out_session(sh, s, &s->peer, s->id, 0);

		lo->type = XE_LOGOUT;
		lo->reason = reason;
		lo->echo_ts = echo_ts;
		lo->client_ts = sh->now_ns;
		xd_io_unbind(sh, s->id);
	}
	s->logged_in = false;
	s->peer.kind = XD_PEER_NONE;
	if (cod) {
		n = xe_engine_mass_cancel(sh->engine, s->id, 0, 0, XE_CXL_DISCONNECT, sh->ev);
		xd_emit_events(sh, n, NULL, NULL, 0);
	}
}

static void serve_retransmit(struct xd_shard *sh, struct xd_sess *s, uint64_t from, uint64_t count)
{
	uint64_t end;
	uint32_t lo = 0, hi;

	if (sh->replaying || !from || from >= s->next_out || !count)
		return;
	if (count > XD_RETRANS_MAX)
		count = XD_RETRANS_MAX;
	end = from + count < s->next_out ? from + count : s->next_out;
	/* Everything up to now must be journaled (and indexed) before it can be read back. */
	xd_shard_batch_end(sh);
	if (!s->idx_n)
		return;
	if (from < s->idx[0].seq)
		from = s->idx[0].seq;
	hi = s->idx_n;
	while (lo + 1 < hi) { /* last entry with seq <= from */
		uint32_t mid = (lo + hi) / 2;

		if (s->idx[mid].seq <= from)
			lo = mid;
		else
			hi = mid;
	}
	for (uint32_t k = lo; k < s->idx_n && s->idx[k].seq < end; k++) {
		const struct xd_outidx *x = &s->idx[k];
		uint64_t a = from > x->seq ? from : x->seq;
		uint64_t b = end < x->seq + x->count ? end : x->seq + x->count;
		struct xj_rec *r = (struct xj_rec *)sh->rbuf;
		struct xd_txd *t;

		if (a >= b)
			continue;
		if (xj_read(&sh->journal, x->seg, x->off, sh->rbuf,
			    XJ_REC_HDR + (size_t)x->count * XE_MSG_SIZE) ||
		    r->type != XJ_OUT || r->session_id != s->id || r->msg_seq != x->seq) {
			xd_log("error: q%d: session %u: journal record for outbound seq %llu "
			       "unreadable",
			       sh->queue, s->id, (unsigned long long)x->seq);
			break;
		}
		s->open_app = -1;
		t = tx_new(sh, &s->peer, true, s->id, XE_F_RETRANSMIT, a);
		t->retrans = true;
		for (uint64_t q = a; q < b; q++)
			memcpy(tx_msg(t), sh->rbuf + XJ_REC_HDR + (q - x->seq) * XE_MSG_SIZE,
			       XE_MSG_SIZE);
		sh->st.retransmitted += b - a;
		if (sh->ntx >= XD_TX_SLOTS / 2)
			xd_shard_batch_end(sh);
	}
}

static void login_reply_reject(struct xd_shard *sh, const struct xd_peer *src, uint32_t sid,
			       const struct xe_login *l, uint8_t reason)
{
	struct xe_login_rejected *r = (void *)out_session(sh, NULL, src, sid, 0);

	sh->st.login_rejects++;
	r->type = XE_LOGIN_REJECTED;
	r->reason = reason;
	r->session_id = sid;
	r->echo_ts = l->client_ts;
	r->recv_ts = sh->now_ns;
}

static void handle_login(struct xd_shard *sh, uint32_t sid, struct xd_sess *s,
			 const struct xe_login *l, const struct xd_peer *src)
{
	uint8_t msg[20], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	uint64_t skew, diff;
	struct xe_login_accepted *a;

	if (!s || l->session_id != sid) {
		bool foreign = sid < sh->nsess_slots && sh->sess[sid].foreign;

		login_reply_reject(sh, src, sid, l,
				   foreign ? XE_LOGIN_BOUND_ELSEWHERE : XE_LOGIN_UNKNOWN_SESSION);
		return;
	}
	if (!s->cfg.enabled) {
		login_reply_reject(sh, src, sid, l, XE_LOGIN_DISABLED);
		return;
	}
	memcpy(msg, &l->session_id, 4);
	memcpy(msg + 4, &l->client_ts, 8);
	memcpy(msg + 12, &l->nonce, 8);
	if (!HMAC(EVP_sha256(), s->cfg.secret, (int)s->cfg.secret_len, msg, sizeof(msg), mac,
		  &maclen) ||
	    maclen != XE_HMAC_SIZE || CRYPTO_memcmp(mac, l->hmac, XE_HMAC_SIZE)) {
		login_reply_reject(sh, src, sid, l, XE_LOGIN_BAD_PROOF);
		return;
	}
	skew = (uint64_t)sh->cfg->skew_ms * 1000000ull;
	diff = l->client_ts > sh->now_ns ? l->client_ts - sh->now_ns : sh->now_ns - l->client_ts;
	if (diff > skew) {
		login_reply_reject(sh, src, sid, l, XE_LOGIN_STALE);
		return;
	}
	if (nonce_seen(s, l->nonce)) {
		login_reply_reject(sh, src, sid, l, XE_LOGIN_REPLAYED);
		return;
	}
	if (s->logged_in && !xd_peer_eq(&s->peer, src)) {
		login_reply_reject(sh, src, sid, l, XE_LOGIN_BOUND_ELSEWHERE);
		return;
	}
	if (l->next_seq > s->next_out) {
		login_reply_reject(sh, src, sid, l, XE_LOGIN_BAD_SEQUENCE);
		return;
	}
	s->peer = *src;
	s->logged_in = true;
	s->last_rx = sh->mono_ns;
	nonce_push(s, l->nonce, l->client_ts);
	journal_sess(sh, s, XJ_SK_LOGIN, 0, l->nonce, l->client_ts);
	xd_io_bind(sh, s->id, &s->peer);
	sh->st.logins++;
	a = (void *)out_session(sh, s, &s->peer, sid, 0);
	a->type = XE_LOGIN_ACCEPTED;
	a->session_id = sid;
	a->next_in_seq = s->next_in;
	a->next_out_seq = s->next_out;
	a->heartbeat_ms = sh->cfg->heartbeat_ms;
	a->echo_ts = l->client_ts;
	a->recv_ts = sh->now_ns;
	if (l->next_seq && l->next_seq < s->next_out)
		serve_retransmit(sh, s, l->next_seq, s->next_out - l->next_seq);
}

static void handle_session_msgs(struct xd_shard *sh, const struct xe_hdr *h, struct xd_sess *s,
				const struct xd_peer *src)
{
	for (uint16_t i = 0; i < h->count; i++) {
		const uint8_t *m = xe_msg_at(h, i);
		bool mine = s && s->logged_in && xd_peer_eq(&s->peer, src);

		if (m[0] == XE_LOGIN) {
			handle_login(sh, h->session_id, s, (const struct xe_login *)m, src);
			continue;
		}
		if (!s) {
			sh->st.unknown_session++;
			return;
		}
		if (!mine) {
			if (s->logged_in)
				sh->st.spoofed++;
			else
				sh->st.not_logged_in++;
			continue;
		}
		s->last_rx = sh->mono_ns;
		switch (m[0]) {
		case XE_HEARTBEAT: {
			const struct xe_heartbeat *hb = (const void *)m;

			if (hb->next_seq > s->next_in) {
				struct xe_sequence_gap *g =
					(void *)out_session(sh, s, &s->peer, s->id, 0);

				sh->st.gaps++;
				g->type = XE_SEQUENCE_GAP;
				g->expected = s->next_in;
				g->received = hb->next_seq - 1;
				g->echo_ts = hb->client_ts;
				g->recv_ts = sh->now_ns;
			}
			break;
		}
		case XE_RETRANSMIT_REQ: {
			const struct xe_retransmit_req *rr = (const void *)m;

			serve_retransmit(sh, s, rr->from_seq, rr->count);
			break;
		}
		case XE_LOGOUT:
			xd_end_session(sh, s, XJ_SK_LOGOUT, XE_LOGOUT_USER, msg_client_ts(m), -1);
			return;
		default:
			break;
		}
	}
}

void xd_shard_datagram(struct xd_shard *sh, const uint8_t *buf, size_t len,
		       const struct xd_peer *src)
{
	const struct xe_hdr *h;
	struct xe_parse_err perr;
	struct xd_sess *s;

	sh->st.rx_datagrams++;
	if (src->kind == XD_PEER_UDP && !xd_allowed(sh, src->addr)) {
		sh->st.not_allowed++;
		return;
	}
	if (xe_parse_datagram(buf, len, XE_DIR_TO_GW, &h, &perr)) {
		sh->st.malformed++;
		if (sh->st.malformed <= 10 || sh->st.malformed % 100000 == 0) {
			char why[160], from[160];

			xe_parse_errstr(&perr, why, sizeof(why));
			xd_peer_str(src, from, sizeof(from));
			xd_log("q%d: dropped malformed datagram from %s: %s (%llu so far)",
			       sh->queue, from, why, (unsigned long long)sh->st.malformed);
		}
		return;
	}
	sh->st.rx_msgs += h->count;
	maybe_commit(sh);
	s = xd_sess_get(sh, h->session_id);
	if (h->seq == 0) {
		handle_session_msgs(sh, h, s, src);
		return;
	}
	if (!s) {
		sh->st.unknown_session++;
		return;
	}
	handle_app(sh, h, s, src);
}

/* Heartbeats out and timeouts, every 10 ms at most. */
void xd_shard_timers(struct xd_shard *sh)
{
	uint64_t mono = xd_mono_ns(), hb;
	bool any = false;

	if (mono - sh->last_sweep < 10000000ull)
		return;
	sh->last_sweep = mono;
	hb = (uint64_t)sh->cfg->heartbeat_ms * 1000000ull;
	for (uint32_t i = 0; i < sh->nsess_list; i++) {
		struct xd_sess *s = &sh->sess[sh->sess_list[i]];

		if (!s->logged_in)
			continue;
		if (mono - s->last_rx > 3 * hb) {
			if (!any)
				xd_shard_batch_begin(sh);
			any = true;
			sh->st.timeouts++;
			xd_log("q%d: session %u timed out (nothing received for %u ms)", sh->queue,
			       s->id, 3 * sh->cfg->heartbeat_ms);
			xd_end_session(sh, s, XJ_SK_TIMEOUT, XE_LOGOUT_TIMEOUT, 0, -1);
		} else if (mono - s->last_tx >= hb) {
			struct xe_heartbeat *m;

			if (!any)
				xd_shard_batch_begin(sh);
			any = true;
			m = (void *)out_session(sh, s, &s->peer, s->id, XE_F_HEARTBEAT);
			m->type = XE_HEARTBEAT;
			m->next_seq = s->next_out;
			m->client_ts = sh->now_ns;
			sh->st.heartbeats_out++;
		}
	}
	if (any)
		xd_shard_batch_end(sh);
}

/* ---- recovery ---- */

static int replay_rec(void *ctx, const struct xj_rec *r, const uint8_t *p, uint32_t seg,
		      uint64_t off)
{
	struct xd_shard *sh = ctx;
	struct xd_sess *s = xd_sess_get(sh, r->session_id);

	sh->now_ns = r->ts;
	switch (r->type) {
	case XJ_IN:
		if (!s)
			break;
		if (!s->logged_in) {
			not_logged_in(sh, s, &s->peer, r->msg_seq, p, r->count);
			break;
		}
		if (r->msg_seq != s->next_in)
			xd_log("warning: journal q%d seq %llu: session %u inbound seq %llu, "
			       "expected %llu",
			       sh->queue, (unsigned long long)r->seq, s->id,
			       (unsigned long long)r->msg_seq, (unsigned long long)s->next_in);
		for (uint16_t i = 0; i < r->count; i++)
			apply_msg(sh, s, r->msg_seq + i, p + (size_t)i * XE_MSG_SIZE);
		break;
	case XJ_OUT:
		if (s) {
			index_out(sh, r, seg, off);
			if (r->msg_seq + r->count > s->next_out) {
				xd_log("warning: journal q%d seq %llu: session %u outbound up to "
				       "%llu, replay reached %llu",
				       sh->queue, (unsigned long long)r->seq, s->id,
				       (unsigned long long)(r->msg_seq + r->count),
				       (unsigned long long)s->next_out);
				s->next_out = r->msg_seq + r->count;
			}
		}
		break;
	case XJ_SESSION: {
		const struct xj_sess_ev *e = (const void *)p;

		if (!s)
			break;
		if (e->kind == XJ_SK_LOGIN) {
			memset(&s->peer, 0, sizeof(s->peer));
			s->peer.kind = e->addr_kind;
			s->peer.has_l2 = e->has_l2;
			s->peer.port = e->port;
			s->peer.lport = e->lport;
			s->peer.addr = e->addr;
			s->peer.laddr = e->laddr;
			memcpy(s->peer.mac, e->mac, 6);
			memcpy(s->peer.lmac, e->lmac, 6);
			if (e->addr_kind == XD_PEER_UNIX)
				snprintf(s->peer.path, sizeof(s->peer.path), "%s",
					 (const char *)(e + 1));
			s->logged_in = true;
			nonce_push(s, e->nonce, e->login_ts);
		} else {
			xd_end_session(sh, s, e->kind, 0, 0, e->cod);
		}
		break;
	}
	case XJ_ADMIN: {
		json_error_t je;
		struct json_t *req = json_loads((const char *)p, 0, &je);

		if (!req) {
			xd_log("error: journal q%d seq %llu: admin record is not JSON: %s",
			       sh->queue, (unsigned long long)r->seq, je.text);
			return -EINVAL;
		}
		xd_shard_admin(sh, req, NULL, NULL, NULL, 0);
		json_decref(req);
		break;
	}
	default:
		xd_log("error: journal q%d seq %llu: unknown record type %u", sh->queue,
		       (unsigned long long)r->seq, r->type);
		return -EINVAL;
	}
	return 0;
}

/* ---- setup ---- */

static int owner_queue(const struct xd_opts *o, int q)
{
	return q >= 0 ? q : o->queues[0];
}

int xd_shard_init(struct xd_shard *sh, int index, int queue, const struct xd_opts *o,
		  struct xd_config *cfg, char *err, size_t errlen)
{
	uint32_t logged = 0;
	int rc;

	memset(sh, 0, sizeof(*sh));
	sh->index = index;
	sh->queue = queue;
	sh->opts = o;
	sh->cfg = cfg;
	sh->entry_fd = -1;
	sh->journal.fd = -1;
	pthread_mutex_init(&sh->mbox.mu, NULL);
	pthread_cond_init(&sh->mbox.cv, NULL);
	sh->engine = xe_engine_create(&cfg->engine);
	if (!sh->engine) {
		snprintf(err, errlen, "engine: cannot create (max_orders %u, max_symbols %u, "
				      "max_sessions %u): bad sizes or out of memory",
			 cfg->engine.max_orders, cfg->engine.max_symbols, cfg->engine.max_sessions);
		return -1;
	}
	sh->max_ev = xe_engine_max_events(sh->engine);
	sh->ev = malloc((size_t)sh->max_ev * sizeof(*sh->ev));
	sh->nsess_slots = cfg->engine.max_sessions + 1;
	sh->sess = calloc(sh->nsess_slots, sizeof(*sh->sess));
	sh->sess_list = calloc(sh->nsess_slots, sizeof(*sh->sess_list));
	sh->touched = calloc(sh->nsess_slots, sizeof(*sh->touched));
	sh->syms = calloc(cfg->engine.max_symbols + 1, sizeof(*sh->syms));
	sh->tx_cap = XD_TX_SLOTS;
	sh->tx = malloc(sh->tx_cap * sizeof(*sh->tx));
	if (!sh->ev || !sh->sess || !sh->sess_list || !sh->touched || !sh->syms || !sh->tx) {
		snprintf(err, errlen, "out of memory for queue %d", queue);
		return -1;
	}
	for (uint32_t i = 0; i < sh->nsess_slots; i++) {
		sh->sess[i].id = i;
		sh->sess[i].open_app = -1;
		sh->sess[i].next_in = sh->sess[i].next_out = 1;
	}
	/* The configuration file first, then the journal on top of it. */
	for (uint32_t i = 0; i < cfg->nsymbols; i++) {
		struct xd_symbol_cfg *y = &cfg->symbols[i];
		int q = y->queue >= 0 ? y->queue : o->queues[(y->c.symbol_id - 1) % o->nqueues];

		if (q != queue)
			continue;
		rc = xe_engine_add_symbol(sh->engine, &y->c);
		if (rc) {
			snprintf(err, errlen, "symbols[%u]: engine refused symbol %u: %s", i,
				 y->c.symbol_id, strerror(-rc));
			return -1;
		}
		if (y->halted > 0)
			xe_engine_set_halted(sh->engine, y->c.symbol_id, 1);
		sh->syms[y->c.symbol_id] = *y;
	}
	for (uint32_t i = 0; i < cfg->nsessions; i++) {
		struct xd_session_cfg *c = &cfg->sessions[i];
		struct xd_sess *s = &sh->sess[c->id];

		if (owner_queue(o, c->queue) != queue) {
			s->foreign = true;
			continue;
		}
		s->configured = true;
		s->cfg = *c;
		sh->sess_list[sh->nsess_list++] = c->id;
		xe_engine_set_stp(sh->engine, c->id, (uint8_t)c->stp);
	}
	sh->nallow = cfg->nallow;
	memcpy(sh->allow, cfg->allow, cfg->nallow * sizeof(*cfg->allow));
	sh->rate_pps = cfg->rate_pps;
	sh->rate_burst = cfg->rate_burst;
	sh->replaying = true;
	rc = xj_open(&sh->journal, o->journal_dir, queue, o->durability, o->segment_bytes,
		     replay_rec, sh);
	sh->replaying = false;
	if (rc) {
		snprintf(err, errlen, "journal %s/q%d: %s (see the line above)", o->journal_dir,
			 queue, strerror(-rc));
		return -1;
	}
	sh->mono_ns = xd_mono_ns();
	for (uint32_t i = 0; i < sh->nsess_list; i++) {
		struct xd_sess *s = &sh->sess[sh->sess_list[i]];

		s->last_rx = s->last_tx = sh->mono_ns;
		logged += s->logged_in;
	}
	{
		struct xe_engine_stats es;

		xe_engine_get_stats(sh->engine, &es);
		xd_log("recovered q%d: state_hash=0x%016llx orders=%llu sessions=%u logged_in=%u",
		       queue, (unsigned long long)xe_engine_state_hash(sh->engine),
		       (unsigned long long)es.resting_orders, sh->nsess_list, logged);
	}
	return 0;
}

void xd_shard_free(struct xd_shard *sh)
{
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
}

uint64_t xd_shard_hash(struct xd_shard *sh)
{
	return xe_engine_state_hash(sh->engine);
}

void xd_shard_rebind_all(struct xd_shard *sh)
{
	for (uint32_t i = 0; i < sh->nsess_list; i++) {
		struct xd_sess *s = &sh->sess[sh->sess_list[i]];

		if (s->logged_in)
			xd_io_bind(sh, s->id, &s->peer);
	}
}
