/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Setting up a shard and recovering it: the engine and sessions from the configuration file, then
 * every journal record replayed through the live code paths (inbound messages through the engine,
 * session events, admin requests), which restores the books, the sessions (binding, sequences,
 * nonces) and the id counters; the state hash is logged.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpexd.h"
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
			xd_not_logged_in(sh, s, &s->peer, r->msg_seq, p, r->count);
			break;
		}
		if (r->msg_seq != s->next_in)
			xd_log("warning: journal q%d seq %llu: session %u inbound seq %llu, "
			       "expected %llu",
			       sh->queue, (unsigned long long)r->seq, s->id,
			       (unsigned long long)r->msg_seq, (unsigned long long)s->next_in);
		for (uint16_t i = 0; i < r->count; i++)
			xd_apply_msg(sh, s, r->msg_seq + i, p + (size_t)i * XE_MSG_SIZE);
		break;
	case XJ_OUT:
		if (s) {
			xd_index_out(sh, r, seg, off);
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
			xd_nonce_push(s, e->nonce, e->login_ts);
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
