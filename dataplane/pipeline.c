/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The order path of a shard: one validated datagram at a time through inbound sequencing
 * (duplicates skipped, gaps answered), the journal and the engine, and the engine's events turned
 * into wire messages packed per session into datagrams of up to 22 messages (the transmit slots of
 * shard.c). Session messages (login, logout, heartbeats, retransmission) are in session.c.
 * Nothing here transmits: the batch boundary in shard.c commits the journal first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex/parse.h"
#include "xdpexd.h"

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

static int allowed(struct xd_shard *sh, uint32_t addr)
{
	if (!sh->nallow)
		return 1;
	for (uint32_t i = 0; i < sh->nallow; i++) {
		uint32_t mask =
		    sh->allow[i].len ? __builtin_bswap32(~0u << (32 - sh->allow[i].len)) : 0;

		if ((addr & mask) == sh->allow[i].addr) {
			sh->allow_hit = addr; /* one-entry cache */
			return 1;
		}
	}
	return 0;
}

void xd_journal_oom(struct xd_shard *sh)
{
	xd_shard_fatal(sh, -ENOMEM, "journal batch buffer");
}

bool xd_buffers_high(struct xd_shard *sh)
{
	return sh->ntx >= XD_TX_SLOTS / 2 || xj_room(&sh->journal) < (1u << 20) || xd_feed_high(sh);
}

static void maybe_commit(struct xd_shard *sh)
{
	if (!sh->replaying && xd_buffers_high(sh))
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
		m = xd_out_app(sh, s, &s->peer, s->logged_in);
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
	struct xe_rejected *r = (void *)xd_out_app(sh, s, to, send);

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
void xd_apply_msg(struct xd_shard *sh, struct xd_sess *s, uint64_t in_seq, const uint8_t *m)
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
		xd_feed_events(sh, n, NULL);
		break;
	}
	case XE_CANCEL: {
		const struct xe_cancel *c = (const void *)m;

		n = xe_engine_cancel(sh->engine, s->id, c->orig_cl_ord_id, sh->ev);
		xd_feed_events(sh, n, NULL);
		break;
	}
	case XE_REPLACE: {
		const struct xe_replace *r = (const void *)m;
		struct xe_order_info prior;
		bool known = sh->feed && !sh->replaying &&
			     !xe_engine_get_order(sh->engine, s->id, r->orig_cl_ord_id, &prior);

		n = xe_engine_replace(sh->engine, s->id, r->orig_cl_ord_id, r->new_cl_ord_id,
				      r->price, r->qty, sh->ev);
		xd_feed_events(sh, n, known ? &prior : NULL);
		break;
	}
	case XE_MASS_CANCEL: {
		const struct xe_mass_cancel *mc = (const void *)m;

		n = xe_engine_mass_cancel(sh->engine, s->id, mc->symbol_id, mc->side, XE_CXL_MASS,
					  sh->ev);
		xd_feed_events(sh, n, NULL);
		if (!n) {
			/* Every applied message is answered: nothing to cancel. */
			reject(sh, s, &s->peer, s->logged_in, m, in_seq, XE_REJ_UNKNOWN_ORDER);
			return;
		}
		break;
	}
	default: reject(sh, s, &s->peer, s->logged_in, m, in_seq, XE_REJ_UNKNOWN_MESSAGE); return;
	}
	xd_emit_events(sh, n, s, m, in_seq);
}

/* Messages of a session that is not logged in: each answered NOT_LOGGED_IN, not applied. */
void xd_not_logged_in(struct xd_shard *sh, struct xd_sess *s, const struct xd_peer *to,
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
	if (!p) {
		xd_journal_oom(sh);
		return;
	}
	memcpy(p, msgs, (size_t)count * XE_MSG_SIZE);
}

static void handle_app(struct xd_shard *sh, const struct xe_hdr *h, struct xd_sess *s,
		       const struct xd_peer *src)
{
	const uint8_t *msgs = (const uint8_t *)h + XE_HDR_SIZE;
	uint64_t seq = h->seq;
	uint16_t n = h->count, i0 = 0, start;

	if (!s->logged_in) {
		/* Answered (and so journaled) at most 10 datagrams a second per session: anyone who
		 * knows a session id can send these, and they must not fill the journal. The ones
		 * dropped are not journaled, so a replay is not affected by the clock. */
		if (sh->mono_ns - s->nli_last < 100000000ull) {
			sh->st.not_logged_in += n;
			return;
		}
		s->nli_last = sh->mono_ns;
		journal_in(sh, s, seq, msgs, n);
		xd_not_logged_in(sh, s, src, seq, msgs, n);
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
		struct xe_sequence_gap *g = (void *)xd_out_session(sh, s, &s->peer, s->id, 0);

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
		if (xd_buffers_high(sh)) {
			journal_in(sh, s, seq + start, msgs + (size_t)start * XE_MSG_SIZE,
				   i - start);
			start = i;
			xd_shard_batch_end(sh);
		}
		xd_apply_msg(sh, s, seq + i, msgs + (size_t)i * XE_MSG_SIZE);
	}
	journal_in(sh, s, seq + start, msgs + (size_t)start * XE_MSG_SIZE, n - start);
}

void xd_shard_datagram(struct xd_shard *sh, const uint8_t *buf, size_t len,
		       const struct xd_peer *src)
{
	const struct xe_hdr *h;
	struct xe_parse_err perr;
	struct xd_sess *s;

	sh->st.rx_datagrams++;
	/* A backend with a filter in front (XDP, or its own) has applied the allowlist already. */
	if (src->kind == XD_PEER_UDP && sh->nallow && sh->own_allowlist &&
	    src->addr != sh->allow_hit && !allowed(sh, src->addr)) {
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
		xd_session_msgs(sh, h, s, src);
		return;
	}
	if (!s) {
		sh->st.unknown_session++;
		return;
	}
	handle_app(sh, h, s, src);
}
