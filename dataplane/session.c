/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Sessions in xdpexd (protocol.md "Sessions and login"): Login checked in the documented order
 * (unknown, disabled, HMAC-SHA256 proof, clock skew, nonce reuse, bound elsewhere, sequence) and
 * bound to its source address, Logout, heartbeats out and timeouts with optional
 * cancel-on-disconnect, and retransmission of journaled outbound messages (RetransmitRequest and
 * Login.next_seq). Every state change is journaled as a session event before it takes effect.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex/parse.h"
#include "xdpexd.h"

void xd_nonce_push(struct xd_sess *s, uint64_t nonce, uint64_t ts)
{
	if (s->nonce_n == XD_NONCES && s->nonce_ts[s->nonce_pos] > s->nonce_floor)
		s->nonce_floor = s->nonce_ts[s->nonce_pos];
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
	if (!e) {
		xd_journal_oom(sh);
		return;
	}
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
	/* At a failover the session was bound to the old primary's wire: nothing to say on it. */
	if (!sh->replaying && kind != XJ_SK_FAILOVER) {
		struct xe_logout *lo = (void *)xd_out_session(sh, s, &s->peer, s->id, 0);

		lo->type = XE_LOGOUT;
		lo->reason = reason;
		lo->echo_ts = echo_ts;
		lo->client_ts = sh->now_ns;
	}
	if (!sh->replaying)
		xd_shard_unbind(sh, s->id);
	s->logged_in = false;
	s->peer.kind = XD_PEER_NONE;
	if (cod) {
		n = xe_engine_mass_cancel(sh->engine, s->id, 0, 0, XE_CXL_DISCONNECT, sh->ev);
		xd_feed_events(sh, n, NULL);
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
	if (sh->fatal || !s->idx_n)
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
		t = xd_tx_new(sh, &s->peer, true, s->id, XE_F_RETRANSMIT, a);
		t->retrans = true;
		for (uint64_t q = a; q < b; q++)
			memcpy(xd_tx_msg(t), sh->rbuf + XJ_REC_HDR + (q - x->seq) * XE_MSG_SIZE,
			       XE_MSG_SIZE);
		sh->st.retransmitted += b - a;
		if (sh->ntx >= XD_TX_SLOTS / 2)
			xd_shard_batch_end(sh);
	}
}

static void login_reply_reject(struct xd_shard *sh, const struct xd_peer *src, uint32_t sid,
			       const struct xe_login *l, uint8_t reason)
{
	struct xe_login_rejected *r = (void *)xd_out_session(sh, NULL, src, sid, 0);

	sh->st.login_rejects++;
	r->type = XE_LOGIN_REJECTED;
	r->reason = reason;
	r->session_id = sid;
	r->echo_ts = l->client_ts;
	r->recv_ts = sh->now_ns;
}

/* ---- the refused-login budget ----
 *
 * Every refused Login costs an HMAC and an answer, and a sender needs no session to send one:
 * refusals are charged to a GCRA bucket of the source (its IPv4 address, or its unix path) and
 * to one of the queue ("login_limit" in the configuration). A Login from a source whose bucket,
 * or the queue's, is empty is dropped unanswered before any HMAC (login_throttled). Accepted
 * logins cost no tokens, so a client that proves itself is never slowed by its own success;
 * only a source that keeps failing, or a flood that spends the queue's budget, is. Sources live
 * in a direct-mapped table of XD_LOGIN_SLOTS: one that collides takes the slot over with a full
 * bucket, which bounds the state, and the queue's bucket still bounds the total. */

static uint64_t source_key(const struct xd_peer *p)
{
	uint64_t h = 0xcbf29ce484222325ull;

	if (p->kind != XD_PEER_UNIX)
		return (uint64_t)p->kind << 32 | p->addr;
	for (const char *c = p->path; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
	return h | 1ull << 63;
}

static struct xd_login_slot *source_slot(struct xd_shard *sh, uint64_t key)
{
	uint64_t h = key * 0x9e3779b97f4a7c15ull;

	return &sh->login_slots[(h >> 40) % XD_LOGIN_SLOTS];
}

static uint64_t interval_ns(uint64_t rate)
{
	return rate ? 1000000000ull / rate : 0;
}

/* Whether bucket `tat` (rate, burst) has a token at `now`. */
static bool bucket_ok(uint64_t tat, uint64_t now, uint64_t rate, uint64_t burst)
{
	uint64_t iv = interval_ns(rate);

	return !rate || tat <= now || tat - now <= (burst - 1) * iv;
}

static void bucket_charge(uint64_t *tat, uint64_t now, uint64_t rate)
{
	if (rate)
		*tat = (*tat > now ? *tat : now) + interval_ns(rate);
}

static bool login_budget_ok(struct xd_shard *sh, const struct xd_peer *src)
{
	const struct xd_login_limit *l = &sh->cfg->login_limit;
	uint64_t key = source_key(src), now = sh->mono_ns;
	const struct xd_login_slot *s = source_slot(sh, key);

	if (!bucket_ok(sh->login_total_tat, now, l->total_rate, l->total_burst))
		return false;
	return s->key != key || bucket_ok(s->tat, now, l->src_rate, l->src_burst);
}

static void login_budget_charge(struct xd_shard *sh, const struct xd_peer *src)
{
	const struct xd_login_limit *l = &sh->cfg->login_limit;
	uint64_t key = source_key(src), now = sh->mono_ns;
	struct xd_login_slot *s = source_slot(sh, key);

	if (s->key != key) {
		s->key = key;
		s->tat = 0;
	}
	bucket_charge(&s->tat, now, l->src_rate);
	bucket_charge(&sh->login_total_tat, now, l->total_rate);
}

/* The refusal's detail, for the operator: logged at most once a second per queue (a flood must
 * not turn the log into the bottleneck), the lines in between counted. */
static void login_log(struct xd_shard *sh, const struct xd_peer *src, uint32_t sid, const char *why)
{
	char peer[160];

	if (sh->replaying)
		return;
	if (sh->login_log_last && sh->mono_ns - sh->login_log_last < 1000000000ull) {
		sh->login_log_quiet++;
		return;
	}
	xd_peer_str(src, peer, sizeof(peer));
	if (sh->login_log_quiet)
		xd_log("q%d: login of session %u from %s refused: %s (and %llu more refusals "
		       "not logged)",
		       sh->queue, sid, peer, why, (unsigned long long)sh->login_log_quiet);
	else
		xd_log("q%d: login of session %u from %s refused: %s", sh->queue, sid, peer, why);
	sh->login_log_last = sh->mono_ns;
	sh->login_log_quiet = 0;
}

/* A refusal: charged to the budget, logged in detail, answered with `reason`. */
static void login_refuse(struct xd_shard *sh, const struct xd_peer *src, uint32_t sid,
			 const struct xe_login *l, uint8_t reason, const char *why)
{
	login_budget_charge(sh, src);
	login_log(sh, src, sid, why);
	login_reply_reject(sh, src, sid, l, reason);
}

/* An HMAC key for sessions that do not exist here, so that their Login costs what a real one
 * costs (no timing tells unknown from bad proof); random per process. */
static uint8_t decoy_secret[32];

static void decoy_init(void)
{
	static bool done;
	FILE *f;

	if (done)
		return;
	done = true;
	f = fopen("/dev/urandom", "rb");
	if (!f || fread(decoy_secret, 1, sizeof(decoy_secret), f) != sizeof(decoy_secret))
		for (size_t i = 0; i < sizeof(decoy_secret); i++)
			decoy_secret[i] = (uint8_t)(xd_mono_ns() >> (i % 8));
	if (f)
		fclose(f);
}

static void handle_login(struct xd_shard *sh, uint32_t sid, struct xd_sess *s,
			 const struct xe_login *l, const struct xd_peer *src)
{
	uint8_t msg[20], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	uint64_t skew, diff;
	struct xe_login_accepted *a;
	const struct xd_sess *foreign = NULL;
	const uint8_t *key = decoy_secret;
	int keylen = (int)sizeof(decoy_secret);
	bool proven;

	if (!login_budget_ok(sh, src)) {
		sh->st.login_throttled++;
		return;
	}
	if (!s && sid < sh->nsess_slots && sh->sess[sid].foreign && sh->sess[sid].cfg.secret_len)
		foreign = &sh->sess[sid];
	if (s && l->session_id == sid) {
		key = s->cfg.secret;
		keylen = (int)s->cfg.secret_len;
	} else if (foreign && l->session_id == sid) {
		key = foreign->cfg.secret;
		keylen = (int)foreign->cfg.secret_len;
	} else {
		decoy_init();
	}
	/* Unknown, another queue's, disabled or not: the same HMAC, then one answer for all who
	 * have not proven themselves (XE_LOGIN_BAD_PROOF); the detail goes to the log and the
	 * counters only. */
	memcpy(msg, &l->session_id, 4);
	memcpy(msg + 4, &l->client_ts, 8);
	memcpy(msg + 12, &l->nonce, 8);
	proven = HMAC(EVP_sha256(), key, keylen, msg, sizeof(msg), mac, &maclen) &&
		 maclen == XE_HMAC_SIZE && !CRYPTO_memcmp(mac, l->hmac, XE_HMAC_SIZE) &&
		 key != decoy_secret;
	if (!proven) {
		const char *why = s || foreign ? "bad proof" : "unknown session";

		if (s || foreign)
			sh->st.login_bad_proof++;
		else
			sh->st.login_unknown++;
		login_refuse(sh, src, sid, l, XE_LOGIN_BAD_PROOF, why);
		return;
	}
	if (foreign) {
		login_refuse(sh, src, sid, l, XE_LOGIN_BOUND_ELSEWHERE, "owned by another queue");
		return;
	}
	if (!s->cfg.enabled) {
		sh->st.login_disabled++;
		login_refuse(sh, src, sid, l, XE_LOGIN_DISABLED, "disabled");
		return;
	}
	skew = (uint64_t)sh->cfg->skew_ms * 1000000ull;
	diff = l->client_ts > sh->now_ns ? l->client_ts - sh->now_ns : sh->now_ns - l->client_ts;
	if (diff > skew) {
		login_refuse(sh, src, sid, l, XE_LOGIN_STALE, "stale timestamp");
		return;
	}
	if (nonce_seen(s, l->nonce) || l->client_ts <= s->nonce_floor) {
		login_refuse(sh, src, sid, l, XE_LOGIN_REPLAYED, "nonce replayed");
		return;
	}
	if (s->logged_in && !xd_peer_eq(&s->peer, src)) {
		login_refuse(sh, src, sid, l, XE_LOGIN_BOUND_ELSEWHERE, "bound to another address");
		return;
	}
	if (l->next_seq > s->next_out) {
		login_refuse(sh, src, sid, l, XE_LOGIN_BAD_SEQUENCE,
			     "next_seq beyond what was sent");
		return;
	}
	s->peer = *src;
	s->logged_in = true;
	s->last_rx = sh->mono_ns;
	xd_nonce_push(s, l->nonce, l->client_ts);
	journal_sess(sh, s, XJ_SK_LOGIN, 0, l->nonce, l->client_ts);
	xd_shard_bind(sh, s->id, &s->peer);
	sh->st.logins++;
	a = (void *)xd_out_session(sh, s, &s->peer, sid, 0);
	a->type = XE_LOGIN_ACCEPTED;
	a->session_id = sid;
	a->next_in_seq = s->next_in;
	a->next_out_seq = s->next_out;
	a->heartbeat_ms = sh->cfg->heartbeat_ms;
	a->epoch = sh->epoch;
	a->echo_ts = l->client_ts;
	a->recv_ts = sh->now_ns;
	if (l->next_seq && l->next_seq < s->next_out)
		serve_retransmit(sh, s, l->next_seq, s->next_out - l->next_seq);
}

void xd_session_msgs(struct xd_shard *sh, const struct xe_hdr *h, struct xd_sess *s,
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
				    (void *)xd_out_session(sh, s, &s->peer, s->id, 0);

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
		default: break;
		}
	}
}

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
			m = (void *)xd_out_session(sh, s, &s->peer, s->id, XE_F_HEARTBEAT);
			m->type = XE_HEARTBEAT;
			m->next_seq = s->next_out;
			m->client_ts = sh->now_ns;
			sh->st.heartbeats_out++;
		}
	}
	if (any)
		xd_shard_batch_end(sh);
}
