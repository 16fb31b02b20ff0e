/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Control requests as a shard executes them, in its own thread: queries (hash, stats, sessions,
 * book, journal) and state changes (apply, halt, resume, logout, expire_day). A state change is
 * journaled as an admin record holding the request line before it takes effect, and recovery
 * replays it through the same function, so the books and sessions after a restart are the ones
 * before it. The control thread (ctl.c) validates on every shard first (dry run), then applies.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "xdpexd.h"

/* A refusal: its code (docs/dataplane.md, Refusals) and its text into resp; while replaying
 * (resp NULL) a warning in the log. */
static int fail(json_t *resp, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(json_t *resp, const char *code, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (resp) {
		json_object_set_new(resp, "error", json_string(buf));
		json_object_set_new(resp, "code", json_string(code));
	} else
		xd_log("warning: replaying an admin record: %s", buf);
	return -1;
}

static bool sym_same(const struct xe_symbol_config *a, const struct xe_symbol_config *b)
{
	return a->tick_size == b->tick_size && a->lot_size == b->lot_size &&
	       a->band_low == b->band_low && a->band_high == b->band_high &&
	       a->max_qty == b->max_qty;
}

/* Why symbol entry i (y) cannot be applied on this shard: its code, with the text in buf; NULL
 * when it can. Only existing state is looked at, so the answer is the same at replay. */
static const char *check_symbol(const struct xd_shard *sh, uint32_t i,
				const struct xd_symbol_cfg *y, char *buf, size_t n)
{
	const struct xd_symbol_cfg *cur = &sh->syms[y->c.symbol_id];
	bool given = y->c.tick_size != 0;

	if (cur->c.symbol_id) {
		if (given && !sym_same(&cur->c, &y->c))
			return snprintf(
				   buf, n,
				   "symbols[%u]: symbol %u exists with other tick, lot, band or "
				   "max_qty; only halted can change",
				   i, y->c.symbol_id),
			       "symbol_conflict";
	} else if (xd_symbol_owner(y, sh->opts) == sh->queue && !given) {
		return snprintf(buf, n,
				"symbols[%u]: symbol %u does not exist; tick, lot and band are "
				"required to add it",
				i, y->c.symbol_id),
		       "unknown_symbol";
	}
	return NULL;
}

static const char *check_session(const struct xd_shard *sh, uint32_t i,
				 const struct xd_session_cfg *c, char *buf, size_t n)
{
	const struct xd_sess *s = &sh->sess[c->id];

	if (s->configured) {
		if (c->queue >= 0 && c->queue != sh->queue)
			return snprintf(buf, n, "sessions[%u].queue: session %u lives on queue %d",
					i, c->id, sh->queue),
			       "session_queue_conflict";
	} else if (!s->foreign && xd_session_owner(c, sh->opts) == sh->queue && !c->secret_len) {
		return snprintf(buf, n, "sessions[%u].secret: required to create session %u", i,
				c->id),
		       "secret_required";
	}
	return NULL;
}

static int apply_validate(struct xd_shard *sh, const struct xd_config *f, json_t *resp)
{
	char buf[400];
	const char *code;

	for (uint32_t i = 0; i < f->nsymbols; i++)
		if ((code = check_symbol(sh, i, &f->symbols[i], buf, sizeof(buf))))
			return fail(resp, code, "%s", buf);
	for (uint32_t i = 0; i < f->nsessions; i++)
		if ((code = check_session(sh, i, &f->sessions[i], buf, sizeof(buf))))
			return fail(resp, code, "%s", buf);
	return 0;
}

static json_t *refusal(const char *kind, uint32_t index, uint32_t id, const char *code,
		       const char *text)
{
	return json_pack("{s:s,s:I,s:I,s:s,s:s}", "kind", kind, "index", (json_int_t)index, "id",
			 (json_int_t)id, "code", code, "error", text);
}

void xd_shard_bulk_check(struct xd_shard *sh, const struct xd_config *f, const uint32_t *sym_index,
			 const uint32_t *ses_index, json_t *refused)
{
	char buf[400];
	const char *code;

	for (uint32_t i = 0; i < f->nsymbols; i++)
		if ((code = check_symbol(sh, sym_index[i], &f->symbols[i], buf, sizeof(buf))))
			json_array_append_new(
			    refused,
			    refusal("symbol", sym_index[i], f->symbols[i].c.symbol_id, code, buf));
	for (uint32_t i = 0; i < f->nsessions; i++)
		if ((code = check_session(sh, ses_index[i], &f->sessions[i], buf, sizeof(buf))))
			json_array_append_new(refused, refusal("session", ses_index[i],
							       f->sessions[i].id, code, buf));
}

/* Applies a validated fragment; returns the number of entries the engine still refused (none
 * is expected: validation covers what the engine checks). */
static int apply_do(struct xd_shard *sh, const struct xd_config *f, json_t *resp)
{
	uint32_t nsym = 0, nses = 0;
	int refused = 0;

	for (uint32_t i = 0; i < f->nsymbols; i++) {
		const struct xd_symbol_cfg *y = &f->symbols[i];
		struct xd_symbol_cfg *cur = &sh->syms[y->c.symbol_id];

		if (!cur->c.symbol_id) {
			int rc;

			if (xd_symbol_owner(y, sh->opts) != sh->queue || !y->c.tick_size)
				continue;
			rc = xe_engine_add_symbol(sh->engine, &y->c);
			if (rc) {
				fail(resp, rc == -ENOMEM ? "out_of_memory" : "engine_refused",
				     "symbols[%u]: engine refused symbol %u: %s", i, y->c.symbol_id,
				     strerror(-rc));
				refused++;
				continue;
			}
			*cur = *y;
			cur->queue = sh->queue;
			sh->nsyms++;
		}
		if (y->halted >= 0) {
			if (cur->halted != y->halted && (cur->halted > 0 || y->halted > 0))
				xd_feed_symbol_state(sh, y->c.symbol_id, y->halted);
			xe_engine_set_halted(sh->engine, y->c.symbol_id, y->halted);
			cur->halted = y->halted;
		}
		if (y->name[0])
			memcpy(cur->name, y->name, sizeof(cur->name));
		nsym++;
	}
	for (uint32_t i = 0; i < f->nsessions; i++) {
		const struct xd_session_cfg *c = &f->sessions[i];
		struct xd_sess *s = &sh->sess[c->id];
		int q = xd_session_owner(c, sh->opts);

		if (!s->configured) {
			/* Another queue's session: only its secret, so a login that reached the
			 * wrong queue is told so once it proves itself (session.c). */
			if (s->foreign && c->secret_len) {
				memcpy(s->cfg.secret, c->secret, sizeof(c->secret));
				s->cfg.secret_len = c->secret_len;
			}
			if (s->foreign || q != sh->queue || !c->secret_len)
				continue;
			s->configured = true;
			s->cfg = *c;
			s->cfg.queue = sh->queue;
			if (s->cfg.stp < 0)
				s->cfg.stp = XE_STP_NONE;
			if (s->cfg.cod < 0)
				s->cfg.cod = 0;
			if (s->cfg.enabled < 0)
				s->cfg.enabled = 1;
			if (s->cfg.rate < 0)
				s->cfg.rate = s->cfg.burst = 0;
			sh->sess_list[sh->nsess_list++] = c->id;
		} else {
			if (c->secret_len) {
				memcpy(s->cfg.secret, c->secret, sizeof(c->secret));
				s->cfg.secret_len = c->secret_len;
			}
			if (c->stp >= 0)
				s->cfg.stp = c->stp;
			if (c->cod >= 0)
				s->cfg.cod = c->cod;
			if (c->enabled >= 0)
				s->cfg.enabled = c->enabled;
			if (c->rate >= 0) {
				s->cfg.rate = c->rate;
				s->cfg.burst = c->burst;
			}
		}
		xe_engine_set_stp(sh->engine, c->id, (uint8_t)s->cfg.stp);
		nses++;
	}
	if (f->has_allow) {
		sh->allow_hit = 0;
		sh->nallow = f->nallow;
		if (f->nallow) /* "allowlist": [] leaves f->allow NULL */
			memcpy(sh->allow, f->allow, f->nallow * sizeof(*f->allow));
	}
	if (f->has_rate) {
		sh->rate_pps = f->rate_pps;
		sh->rate_burst = f->rate_burst;
	}
	if (resp)
		json_object_set_new(resp, "applied",
				    json_pack("{s:i,s:i,s:b,s:b}", "symbols", nsym, "sessions",
					      nses, "allowlist", f->has_allow, "rate",
					      f->has_rate));
	return refused;
}

static int get_u32(json_t *req, const char *key, uint32_t *out, json_t *resp)
{
	json_t *v = json_object_get(req, key);

	if (!v || !json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > UINT32_MAX)
		return fail(resp, "invalid_field", "%s: required, a non-negative integer", key);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

int xd_shard_admin(struct xd_shard *sh, json_t *req, const struct xd_config *frag, const char *line,
		   json_t *resp, int dry)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	struct xd_config parsed = {0};
	bool live = line != NULL;
	uint32_t id = 0, n, found = 0;
	uint64_t epoch = 0;
	int rc = 0;

	if (!cmd)
		return fail(resp, "bad_request", "cmd: required");
	/* A standby changes only by following its primary (or by becoming it). */
	if (live && sh->role == XD_ROLE_STANDBY && strcmp(cmd, "promote"))
		return fail(resp, "standby", "%s: this xdpexd is a standby; send it to the primary",
			    cmd);
	if (!strcmp(cmd, "apply") && !frag) {
		char err[400];

		if (xd_config_from_json(json_object_get(req, "config"), &parsed, sh->cfg, err,
					sizeof(err))) {
			xd_config_free(&parsed);
			return fail(resp, xd_config_err_code(), "config.%s", err);
		}
		frag = &parsed;
	}
	if (!strcmp(cmd, "halt") || !strcmp(cmd, "resume")) {
		if (get_u32(req, "symbol", &id, resp))
			return -1;
	} else if (!strcmp(cmd, "logout")) {
		if (get_u32(req, "session", &id, resp))
			return -1;
	} else if (!strcmp(cmd, "promote")) {
		json_t *e = json_object_get(req, "epoch");

		if (!json_is_integer(e) || json_integer_value(e) < 1)
			return fail(resp, "invalid_field",
				    "epoch: required, a positive integer (the etcd revision "
				    "of the leader key)");
		epoch = (uint64_t)json_integer_value(e);
		if (live && sh->role == XD_ROLE_PRIMARY)
			return fail(resp, "already_primary",
				    "promote: already the primary (epoch %llu)",
				    (unsigned long long)sh->epoch);
		if (epoch <= sh->epoch)
			return fail(resp, "stale_epoch",
				    "epoch %llu: not above this journal's epoch %llu",
				    (unsigned long long)epoch, (unsigned long long)sh->epoch);
	} else if (!strcmp(cmd, "switchover")) {
		if (live && !sh->opts->ha)
			return fail(resp, "not_ha", "switchover: this xdpexd runs without --ha");
	} else if (strcmp(cmd, "apply") && strcmp(cmd, "expire_day")) {
		return fail(resp, "unknown_command", "cmd: unknown command %s", cmd);
	}
	if (frag && apply_validate(sh, frag, resp)) {
		rc = -1;
		goto out;
	}
	if (dry)
		goto out;
	xd_shard_batch_begin(sh);
	if (live) {
		size_t len = strlen(line) + 1;
		void *p = xj_append(&sh->journal, XJ_ADMIN, 0, 0, 0, sh->now_ns, (uint32_t)len);

		if (!p) {
			xd_journal_oom(sh);
			rc = fail(resp, "out_of_memory",
				  "out of memory for the journal; xdpexd is stopping");
			goto out;
		}
		memcpy(p, line, len);
		sh->admin_seq = sh->journal.next_seq - 1;
	}
	if (frag) {
		if (apply_do(sh, frag, resp))
			rc = -1;
	} else if (!strcmp(cmd, "halt") || !strcmp(cmd, "resume")) {
		int halt = !strcmp(cmd, "halt");

		for (uint32_t y = 1; y <= sh->cfg->engine.max_symbols; y++) {
			if (!sh->syms[y].c.symbol_id || (id && y != id))
				continue;
			if (sh->syms[y].halted != halt)
				xd_feed_symbol_state(sh, y, halt);
			xe_engine_set_halted(sh->engine, y, halt);
			sh->syms[y].halted = halt;
			found++;
		}
	} else if (!strcmp(cmd, "logout")) {
		struct xd_sess *s = xd_sess_get(sh, id);

		if (s && s->logged_in) {
			xd_end_session(sh, s, XJ_SK_ADMIN_LOGOUT, XE_LOGOUT_ADMIN, 0, -1);
			found++;
		}
	} else if (!strcmp(cmd, "expire_day")) {
		n = xe_engine_expire_day(sh->engine, sh->ev);
		xd_feed_events(sh, n, NULL);
		xd_emit_events(sh, n, NULL, NULL, 0);
		found = n;
	} else if (!strcmp(cmd, "switchover")) {
		/* Every session is told to go to the next gateway; no cancel-on-disconnect (the
		 * client comes back there). Live, the queue takes nothing in from now on. */
		for (uint32_t i = 0; i < sh->nsess_list; i++) {
			struct xd_sess *s = &sh->sess[sh->sess_list[i]];

			if (s->logged_in) {
				xd_end_session(sh, s, XJ_SK_ADMIN_LOGOUT, XE_LOGOUT_SWITCHOVER, 0,
					       0);
				found++;
			}
		}
		if (live) {
			sh->draining = true;
			xd_log("q%d: switchover: %u session%s told to move, taking nothing in",
			       sh->queue, found, found == 1 ? "" : "s");
		}
	} else if (!strcmp(cmd, "promote")) {
		/* The epoch begins at this record; replay sees the logouts that follow it. */
		xd_epoch_begin(sh, epoch, sh->admin_seq);
		if (live)
			found = xd_repl_take_over(sh);
	}
	if (resp)
		json_object_set_new(resp, "found", json_integer(found));
	if (live) {
		xd_shard_batch_end(sh);
		if (sh->fatal)
			rc = fail(resp, "journal_failed",
				  "journal write failed; xdpexd is stopping");
	}
out:
	if (frag == &parsed)
		xd_config_free(&parsed);
	return rc;
}

static void add_stats(struct xd_shard *sh, json_t *q)
{
	const struct xd_stats *s = &sh->st;
	struct xe_engine_stats es;

	json_object_set_new(q, "queue", json_integer(sh->queue));
#define X(f) json_object_set_new(q, #f, json_integer((json_int_t)s->f))
	X(rx_datagrams);
	X(rx_msgs);
	X(tx_datagrams);
	X(tx_msgs);
	X(applied);
	X(duplicates);
	X(gaps);
	X(malformed);
	X(unknown_session);
	X(not_allowed);
	X(spoofed);
	X(not_logged_in);
	X(rate_limited);
	X(logins);
	X(login_rejects);
	X(login_unknown);
	X(login_disabled);
	X(login_bad_proof);
	X(login_throttled);
	X(retransmitted);
	X(tx_errors);
	X(heartbeats_out);
	X(timeouts);
	X(batches);
	X(busy_ns);
	X(standby_dropped);
#undef X
	json_object_set_new(q, "journal_seq", json_integer((json_int_t)sh->journal.next_seq - 1));
	json_object_set_new(q, "journal_bytes", json_integer((json_int_t)sh->journal.bytes));
	json_object_set_new(q, "journal_writes", json_integer((json_int_t)sh->journal.writes));
	json_object_set_new(q, "fsyncs", json_integer((json_int_t)sh->journal.fsyncs));
	{
		/* Read from the control thread while the queue thread and the preparer move them:
		 * a snapshot, clamped (a rotation may be half way through). */
		uint64_t tail = __atomic_load_n(&sh->journal.seg_off, __ATOMIC_RELAXED);
		uint64_t res = __atomic_load_n(&sh->journal.reserved, __ATOMIC_RELAXED);
		uint64_t map = __atomic_load_n(&sh->journal.faulted, __ATOMIC_RELAXED);

		json_object_set_new(q, "journal_reserved_ahead",
				    json_integer((json_int_t)(res > tail ? res - tail : 0)));
		json_object_set_new(q, "journal_mapped_ahead",
				    json_integer((json_int_t)(map > tail ? map - tail : 0)));
	}
	xd_shard_port_stats(sh, q);
	xd_feed_stats(sh, q);
	json_object_set_new(q, "latency", xd_hist_json(s->lat));
	xe_engine_get_stats(sh->engine, &es);
	json_object_set_new(
	    q, "engine",
	    json_pack("{s:I,s:I,s:I,s:I,s:I}", "resting_orders", (json_int_t)es.resting_orders,
		      "levels", (json_int_t)es.levels, "orders_in", (json_int_t)es.orders_in,
		      "fills", (json_int_t)es.fills, "rejects", (json_int_t)es.rejects));
	json_object_set_new(q, "limits", xd_shard_limits(sh, &es));
	json_object_set_new(q, "memory", xd_shard_memory(sh));
}

/* What a queue holds against what it was sized for (docs/dataplane.md, Sizing). */
json_t *xd_shard_limits(const struct xd_shard *sh, const struct xe_engine_stats *es)
{
	const struct xe_engine_config *e = &sh->cfg->engine;

	return json_pack("{s:{s:I,s:I},s:{s:I,s:I},s:{s:I,s:I}}", "symbols", "configured",
			 (json_int_t)sh->nsyms, "max", (json_int_t)e->max_symbols, "sessions",
			 "configured", (json_int_t)sh->nsess_list, "max",
			 (json_int_t)e->max_sessions, "orders", "resting",
			 (json_int_t)es->resting_orders, "max", (json_int_t)e->max_orders);
}

/* A queue's memory: what the engine and the shard allocated at start, the ladder in use, and
 * the cost of one more symbol id, session id or resting order (docs/dataplane.md, Sizing). */
json_t *xd_shard_memory(const struct xd_shard *sh)
{
	const struct xe_engine_config *e = &sh->cfg->engine;
	struct xe_engine_memory m;
	uint64_t sess_slot = sizeof(struct xd_sess) + 2 * sizeof(uint32_t);
	uint64_t sym_slot = sizeof(struct xd_symbol_cfg);
	uint64_t dp = (uint64_t)sh->nsess_slots * sess_slot +
		      ((uint64_t)e->max_symbols + 1) * sym_slot +
		      (uint64_t)sh->tx_cap * sizeof(struct xd_txd);
	/* Room for the events of the largest sweep (2 per resting order): address space, written
	 * only as far as the largest answer so far. */
	uint64_t evb = (uint64_t)sh->max_ev * sizeof(struct xe_event);

	xe_engine_get_memory(sh->engine, &m);
	return json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I,s:I}}",
	    "engine_fixed_bytes", (json_int_t)m.fixed_bytes, "directory_bytes",
	    (json_int_t)m.directory_bytes, "ladder_bytes", (json_int_t)m.ladder_bytes,
	    "ladder_touched_bytes", (json_int_t)m.ladder_touched_bytes, "ladder_reserved_bytes",
	    (json_int_t)m.reserved_bytes, "dataplane_bytes", (json_int_t)dp, "event_buffer_bytes",
	    (json_int_t)evb, "ladder", "pages_used", (json_int_t)m.pages_used, "pages_max",
	    (json_int_t)m.pages_max, "nodes_used", (json_int_t)m.nodes_used, "nodes_max",
	    (json_int_t)m.nodes_max, "per", "symbol_id", (json_int_t)(m.symbol_bytes + sym_slot),
	    "session_id", (json_int_t)(m.session_bytes + sess_slot), "resting_order",
	    (json_int_t)(m.order_bytes + 2 * sizeof(uint32_t)), "page", (json_int_t)m.page_bytes,
	    "node", (json_int_t)m.node_bytes);
}

/* Every resting order of one side, best price first and in time priority within a level, as
 * [order_id, price, leaves]; NULL without memory. */
static json_t *book_orders(struct xd_shard *sh, uint32_t sym, uint8_t side)
{
	uint32_t cap = 1024, n;
	struct xe_level *lv = NULL;
	struct xe_order_info *o = NULL;
	json_t *arr = NULL;

	for (;;) { /* as many levels as there are */
		struct xe_level *g = realloc(lv, cap * sizeof(*lv));

		if (!g)
			goto out;
		lv = g;
		n = xe_engine_book(sh->engine, sym, side, cap, lv);
		if (n < cap)
			break;
		cap *= 2;
	}
	arr = json_array();
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k, m = lv[i].orders;
		struct xe_order_info *g = realloc(o, (m ? m : 1) * sizeof(*o));

		if (!g) {
			json_decref(arr);
			arr = NULL;
			goto out;
		}
		o = g;
		k = xe_engine_level_orders(sh->engine, sym, side, lv[i].price, m, o);
		for (uint32_t j = 0; j < k; j++)
			json_array_append_new(arr, json_pack("[I,I,I]", (json_int_t)o[j].order_id,
							     (json_int_t)o[j].price,
							     (json_int_t)o[j].leaves));
	}
out:
	free(lv);
	free(o);
	return arr;
}

static const char *const stp_names[] = {"none", "cancel_newest", "cancel_oldest", "cancel_both"};

int xd_shard_query(struct xd_shard *sh, json_t *req, json_t *resp)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	char hex[32];

	json_object_set_new(resp, "queue", json_integer(sh->queue));
	if (!strcmp(cmd, "hash")) {
		snprintf(hex, sizeof(hex), "0x%016llx", (unsigned long long)xd_shard_hash(sh));
		json_object_set_new(resp, "state_hash", json_string(hex));
		json_object_set_new(resp, "journal_seq",
				    json_integer((json_int_t)sh->journal.next_seq - 1));
	} else if (!strcmp(cmd, "stats")) {
		add_stats(sh, resp);
	} else if (!strcmp(cmd, "sessions")) {
		json_t *arr = json_array();

		for (uint32_t i = 0; i < sh->nsess_list; i++) {
			struct xd_sess *s = &sh->sess[sh->sess_list[i]];
			char b[160];

			xd_peer_str(&s->peer, b, sizeof(b));
			json_array_append_new(
			    arr,
			    json_pack("{s:i,s:i,s:s,s:o,s:I,s:I,s:b,s:s,s:b}", "id", s->id, "queue",
				      sh->queue, "state", s->logged_in ? "logged_in" : "logged_out",
				      "bound", s->logged_in ? json_string(b) : json_null(),
				      "next_in", (json_int_t)s->next_in, "next_out",
				      (json_int_t)s->next_out, "enabled", s->cfg.enabled > 0, "stp",
				      stp_names[s->cfg.stp & 3], "cancel_on_disconnect",
				      s->cfg.cod > 0));
		}
		json_object_set_new(resp, "sessions", arr);
	} else if (!strcmp(cmd, "symbols")) {
		/* What the engine holds, for the control plane's reconciliation (ctl.c merges the
		 * queues' lists, ascending ids within each). */
		json_t *arr = json_array();

		for (uint32_t y = 1; y <= sh->cfg->engine.max_symbols; y++) {
			const struct xd_symbol_cfg *c = &sh->syms[y];

			if (!c->c.symbol_id)
				continue;
			json_array_append_new(
			    arr, json_pack("{s:i,s:s,s:I,s:I,s:[I,I],s:I,s:i,s:b}", "id", (int)y,
					   "name", c->name, "tick", (json_int_t)c->c.tick_size,
					   "lot", (json_int_t)c->c.lot_size, "band",
					   (json_int_t)c->c.band_low, (json_int_t)c->c.band_high,
					   "max_qty", (json_int_t)c->c.max_qty, "queue", sh->queue,
					   "halted", c->halted > 0));
		}
		json_object_set_new(resp, "symbols", arr);
		json_object_set_new(resp, "max_symbols", json_integer(sh->cfg->engine.max_symbols));
		json_object_set_new(resp, "max_sessions",
				    json_integer(sh->cfg->engine.max_sessions));
	} else if (!strcmp(cmd, "book")) {
		uint32_t sym = (uint32_t)json_integer_value(json_object_get(req, "symbol"));
		json_t *d = json_object_get(req, "depth");
		uint32_t depth = d ? (uint32_t)json_integer_value(d) : 10;
		struct xe_level lv[64];

		if (depth > 64)
			depth = 64;
		if (!sym || sym > sh->cfg->engine.max_symbols || !sh->syms[sym].c.symbol_id)
			return 0;
		json_object_set_new(resp, "found", json_true());
		json_object_set_new(resp, "symbol", json_integer(sym));
		json_object_set_new(resp, "halted", json_boolean(sh->syms[sym].halted > 0));
		for (int side = XE_BUY; side <= XE_SELL; side++) {
			uint32_t n = xe_engine_book(sh->engine, sym, (uint8_t)side, depth, lv);
			json_t *arr = json_array();

			for (uint32_t i = 0; i < n; i++)
				json_array_append_new(
				    arr, json_pack("[I,I,i]", (json_int_t)lv[i].price,
						   (json_int_t)lv[i].qty, lv[i].orders));
			json_object_set_new(resp, side == XE_BUY ? "bids" : "asks", arr);
		}
	} else if (!strcmp(cmd, "book_orders")) {
		uint32_t sym = (uint32_t)json_integer_value(json_object_get(req, "symbol"));

		if (!sym || sym > sh->cfg->engine.max_symbols || !sh->syms[sym].c.symbol_id)
			return 0;
		json_object_set_new(resp, "found", json_true());
		json_object_set_new(resp, "symbol", json_integer(sym));
		json_object_set_new(resp, "halted", json_boolean(sh->syms[sym].halted > 0));
		json_object_set_new(resp, "feed_next_seq",
				    sh->feed ? json_integer((json_int_t)xd_feed_next_seq(sh))
					     : json_null());
		for (int side = XE_BUY; side <= XE_SELL; side++) {
			json_t *arr = book_orders(sh, sym, (uint8_t)side);

			if (!arr) {
				json_object_set_new(resp, "error", json_string("out of memory"));
				json_object_set_new(resp, "code", json_string("out_of_memory"));
				return -1;
			}
			json_object_set_new(resp, side == XE_BUY ? "bids" : "asks", arr);
		}
	} else if (!strcmp(cmd, "ha")) {
		xd_repl_status(sh, resp);
	} else if (!strcmp(cmd, "follow")) {
		const char *from = json_string_value(json_object_get(req, "from"));

		if (sh->role != XD_ROLE_STANDBY || !sh->repl) {
			json_object_set_new(resp, "error",
					    json_string("follow: this xdpexd is not a standby"));
			json_object_set_new(resp, "code", json_string("not_standby"));
			return -1;
		}
		xd_repl_follow_addr(sh, from);
	} else if (!strcmp(cmd, "journal")) {
		json_t *segs = json_array();

		for (uint32_t i = 0; i < sh->journal.rfds_cap; i++) {
			if (sh->journal.rfds[i] >= 0) {
				snprintf(hex, sizeof(hex), "%08u.xjl", i);
				json_array_append_new(segs, json_string(hex));
			}
		}
		json_object_set_new(resp, "dir", json_string(sh->journal.dir));
		json_object_set_new(resp, "segments", segs);
		json_object_set_new(resp, "last_seq",
				    json_integer((json_int_t)sh->journal.next_seq - 1));
		json_object_set_new(resp, "durability",
				    json_string(sh->journal.durability ? "fsync" : "none"));
	}
	return 0;
}

/* Called by the shard thread when the control thread posted a request. */
void xd_shard_mbox(struct xd_shard *sh)
{
	struct xd_mbox *m = &sh->mbox;
	const char *cmd;

	pthread_mutex_lock(&m->mu);
	cmd = json_string_value(json_object_get(m->req, "cmd"));
	if (m->dry == XD_MBOX_BULK_CHECK) {
		json_t *refused = json_array();

		xd_shard_bulk_check(sh, m->frag, m->sym_index, m->ses_index, refused);
		json_object_set_new(m->resp, "refused", refused);
		m->rc = 0;
	} else if (cmd && (!strcmp(cmd, "hash") || !strcmp(cmd, "stats") ||
			   !strcmp(cmd, "sessions") || !strcmp(cmd, "symbols") ||
			   !strcmp(cmd, "book") || !strcmp(cmd, "book_orders") ||
			   !strcmp(cmd, "journal") || !strcmp(cmd, "ha") || !strcmp(cmd, "follow")))
		m->rc = xd_shard_query(sh, m->req, m->resp);
	else
		m->rc = xd_shard_admin(sh, m->req, m->frag, m->line, m->resp, m->dry);
	m->done = 1;
	atomic_store_explicit(&m->pending, 0, memory_order_release);
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}
