/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The control socket (--ctl-socket, unix SOCK_STREAM): one JSON request per line in, one JSON
 * answer per line out (docs/dataplane.md lists the commands). It runs in its own thread and never
 * touches a shard's state itself: every request is posted to the shards' mailboxes, executed by
 * each shard thread between batches, and the per-queue answers are merged here. State changes are
 * validated on every shard first and applied only when all agree.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "xdpexd.h"

#define CTL_CLIENTS 32
/* Longest request line: a bulk configuration of tens of thousands of symbols and sessions. The
 * buffer of a client is allocated on its first read; only what arrives is touched. */
#define CTL_LINE (64u << 20)

struct client {
	int fd;
	char *buf;
	size_t len;
	size_t cap; /* grows from CTL_LINE0 to CTL_LINE as a long line needs it */
};

#define CTL_LINE0 (64u << 10)

static struct {
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct xd_shard *shards;
	int nshards;
	pthread_t thread;
	int running;
	int direct; /* xd_ctl_attach: mailbox requests run in this thread */
	struct client cl[CTL_CLIENTS];
	uint64_t start_mono;
	const uint32_t *sym_index, *ses_index; /* the bulk request being checked */
} ctl = {.lfd = -1};

static int post(struct xd_shard *sh, json_t *req, const struct xd_config *frag, const char *line,
		json_t *resp, int dry)
{
	struct xd_mbox *m = &sh->mbox;
	int rc;

	if (ctl.direct) {
		m->req = req;
		m->resp = resp;
		m->frag = frag;
		m->line = (char *)line;
		m->dry = dry;
		m->done = 0;
		m->rc = 0;
		xd_shard_mbox(sh);
		return m->rc;
	}
	pthread_mutex_lock(&m->mu);
	m->req = req;
	m->resp = resp;
	m->frag = frag;
	m->line = (char *)line;
	m->dry = dry;
	m->sym_index = ctl.sym_index;
	m->ses_index = ctl.ses_index;
	m->done = 0;
	m->rc = 0;
	atomic_store_explicit(&m->pending, 1, memory_order_release);
	xd_shard_wake(sh);
	while (!m->done) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&m->cv, &m->mu, &ts);
		if (!m->done && atomic_load(&xd_stop)) {
			atomic_store(&m->pending, 0);
			json_object_set_new(resp, "error", json_string("xdpexd is stopping"));
			json_object_set_new(resp, "code", json_string("stopping"));
			m->rc = -1;
			break;
		}
	}
	rc = m->rc;
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* A refusal: {"ok": false, "code": CODE, "error": TEXT} (docs/dataplane.md, Refusals). */
static json_t *err_resp(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *err_resp(const char *code, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "code", code, "error", buf);
}

/* A shard's refusal passed on as it is, code included. */
static json_t *shard_err(json_t *r)
{
	json_t *code = json_object_get(r, "code");

	return json_pack("{s:b,s:O,s:O}", "ok", 0, "code", code ? code : json_string("internal"),
			 "error", json_object_get(r, "error"));
}

static uint64_t combine_hash(const uint64_t *h, int n)
{
	uint64_t x = 0xcbf29ce484222325ull;

	for (int i = 0; i < n; i++)
		for (int b = 0; b < 8; b++) {
			x ^= (h[i] >> (8 * b)) & 0xff;
			x *= 0x100000001b3ull;
		}
	return x;
}

/* Adds the integers of b into a, recursively (objects of the same shape). */
static void add_into(json_t *a, json_t *b)
{
	const char *k;
	json_t *v;

	json_object_foreach(b, k, v)
	{
		json_t *x = json_object_get(a, k);

		if (json_is_object(v)) {
			if (!x)
				json_object_set_new(a, k, x = json_object());
			add_into(x, v);
		} else if (json_is_integer(v)) {
			json_object_set_new(
			    a, k, json_integer(json_integer_value(x) + json_integer_value(v)));
		}
	}
}

/* The queues' limits summed: symbols and sessions live on one queue each, so their counts add
 * up; every queue has its own engine, so do the maxima. */
static json_t *sum_limits(json_t *queues)
{
	json_t *out = json_object(), *q;
	size_t i;

	json_array_foreach(queues, i, q) add_into(out, json_object_get(q, "limits"));
	return out;
}

/* The queues' memory summed, except the per-item costs (the same on every queue). */
static json_t *sum_memory(json_t *queues)
{
	json_t *out = json_object(), *q;
	size_t i;

	json_array_foreach(queues, i, q)
	{
		json_t *m = json_deep_copy(json_object_get(q, "memory"));

		json_object_del(m, "per");
		add_into(out, m);
		json_decref(m);
	}
	q = json_array_get(queues, 0);
	if (q)
		json_object_set(out, "per", json_object_get(json_object_get(q, "memory"), "per"));
	return out;
}

static json_t *gather(json_t *req, const char *cmd)
{
	json_t *out = json_pack("{s:b}", "ok", 1), *queues = json_array();
	uint64_t hashes[XD_MAX_QUEUES];

	for (int i = 0; i < ctl.nshards; i++) {
		json_t *r = json_object();

		if (post(&ctl.shards[i], req, NULL, NULL, r, 0)) {
			json_decref(queues);
			json_decref(out);
			out = shard_err(r);
			json_decref(r);
			return out;
		}
		json_array_append_new(queues, r);
	}
	if (!strcmp(cmd, "hash")) {
		char hex[32];

		for (int i = 0; i < ctl.nshards; i++)
			hashes[i] = strtoull(json_string_value(json_object_get(
						 json_array_get(queues, (size_t)i), "state_hash")),
					     NULL, 16);
		snprintf(hex, sizeof(hex), "0x%016llx",
			 (unsigned long long)(ctl.nshards == 1
						  ? hashes[0]
						  : combine_hash(hashes, ctl.nshards)));
		json_object_set_new(out, "state_hash", json_string(hex));
		json_object_set_new(out, "queues", queues);
	} else if (!strcmp(cmd, "stats")) {
		const struct xd_opts *o = xd_g_opts;
		json_t *eng = json_pack("{s:I,s:I,s:I,s:I,s:I}", "resting_orders", (json_int_t)0,
					"levels", (json_int_t)0, "orders_in", (json_int_t)0,
					"fills", (json_int_t)0, "rejects", (json_int_t)0);
		size_t i;
		json_t *q;

		json_array_foreach(queues, i, q)
		{
			const char *k;
			json_t *v, *qe = json_object_get(q, "engine");

			json_object_foreach(qe, k, v) json_object_set_new(
			    eng, k,
			    json_integer(json_integer_value(json_object_get(eng, k)) +
					 json_integer_value(v)));
		}
		json_object_set_new(out, "mode", json_string(o->backend->name));
		json_object_set_new(out, "attach_mode", json_string("none"));
		json_object_set_new(out, "bind_mode", json_string("none"));
		if (o->backend->info) /* attach and bind modes, filter counters, port figures */
			o->backend->info(out);
		json_object_set_new(out, "durability",
				    json_string(o->durability == XD_DUR_FSYNC ? "fsync" : "none"));
		json_object_set_new(out, "poll",
				    json_string(o->poll == XD_POLL_SPIN	  ? "spin"
						: o->poll == XD_POLL_BUSY ? "busy"
									  : "sleep"));
		json_object_set_new(out, "uptime_s",
				    json_real((double)(xd_mono_ns() - ctl.start_mono) / 1e9));
		json_object_set_new(out, "queues", queues);
		json_object_set_new(out, "engine", eng);
		json_object_set_new(out, "limits", sum_limits(queues));
		json_object_set_new(out, "memory", sum_memory(queues));
	} else if (!strcmp(cmd, "sessions")) {
		json_t *all = json_array(), *q;
		size_t i;

		json_array_foreach(queues, i, q)
		    json_array_extend(all, json_object_get(q, "sessions"));
		json_object_set_new(out, "sessions", all);
		json_decref(queues);
	} else if (!strcmp(cmd, "symbols")) {
		json_t *all = json_array(), *q;
		size_t i;

		json_array_foreach(queues, i, q)
		    json_array_extend(all, json_object_get(q, "symbols"));
		json_object_set_new(out, "symbols", all);
		q = json_array_get(queues, 0);
		json_object_set(out, "max_symbols", json_object_get(q, "max_symbols"));
		json_object_set(out, "max_sessions", json_object_get(q, "max_sessions"));
		json_decref(queues);
	} else if (!strcmp(cmd, "ha")) {
		const struct xd_opts *o = xd_g_opts;
		uint64_t until = atomic_load(&xd_lease_until), now = xd_mono_ns();
		json_t *q0 = json_array_get(queues, 0);

		json_object_set_new(out, "name", json_string(o->name));
		json_object_set(out, "role", json_object_get(q0, "role"));
		json_object_set(out, "epoch", json_object_get(q0, "epoch"));
		json_object_set_new(out, "ha", json_boolean(o->ha));
		json_object_set_new(out, "fenced", json_boolean(xd_fenced(o, now)));
		json_object_set_new(
		    out, "lease_ms",
		    o->ha ? json_integer(until > now ? (json_int_t)((until - now) / 1000000) : 0)
			  : json_null());
		json_object_set_new(
		    out, "durability",
		    json_string(o->replicated ? (o->durability == XD_DUR_FSYNC ? "replicated-fsync"
									       : "replicated")
				: o->durability == XD_DUR_FSYNC ? "fsync"
								: "none"));
		json_object_set_new(
		    out, "repl_missing",
		    json_string(o->repl_missing == XD_MISSING_HOLD ? "hold" : "local"));
		json_object_set_new(out, "repl_listen",
				    o->repl_listen ? json_string(o->repl_listen) : json_null());
		json_object_set_new(out, "queues", queues);
	} else if (!strcmp(cmd, "book") || !strcmp(cmd, "book_orders")) {
		json_t *q, *found = NULL;
		size_t i;

		json_array_foreach(queues, i, q) if (json_is_true(json_object_get(q, "found")))
		    found = q;
		if (!found) {
			json_decref(out);
			out =
			    err_resp("unknown_symbol", "symbol %lld: unknown",
				     (long long)json_integer_value(json_object_get(req, "symbol")));
		} else {
			const char *k;
			json_t *v;

			json_object_foreach(found, k,
					    v) if (strcmp(k, "found") && strcmp(k, "queue"))
			    json_object_set(out, k, v);
			json_object_set(out, "queue", json_object_get(found, "queue"));
		}
		json_decref(queues);
	} else {
		json_object_set_new(out, "queues", queues);
	}
	return out;
}

static bool served(int q)
{
	for (int i = 0; i < xd_g_opts->nqueues; i++)
		if (xd_g_opts->queues[i] == q)
			return true;
	return false;
}

/* A symbol or session placed on a queue this process does not serve would be added nowhere. */
static json_t *unserved_queue(const struct xd_config *f)
{
	for (uint32_t i = 0; i < f->nsymbols; i++)
		if (f->symbols[i].queue >= 0 && !served(f->symbols[i].queue))
			return err_resp("queue_not_served",
					"config.symbols[%u].queue: %d is not served (--queues)", i,
					f->symbols[i].queue);
	for (uint32_t i = 0; i < f->nsessions; i++)
		if (f->sessions[i].queue >= 0 && !served(f->sessions[i].queue))
			return err_resp("queue_not_served",
					"config.sessions[%u].queue: %d is not served (--queues)", i,
					f->sessions[i].queue);
	return NULL;
}

static json_t *change(json_t *req, const char *cmd)
{
	struct xd_config frag = {0};
	const struct xd_config *fp = NULL;
	json_t *out, *refused;
	char *line = NULL;
	long long found = 0, nsym = 0, nses = 0;

	if (!strcmp(cmd, "apply")) {
		char err[400];
		json_t *c = json_object_get(req, "config");

		if (!c)
			return err_resp("invalid_field",
					"config: required, an object with symbols, sessions, "
					"allowlist or rate");
		if (xd_config_from_json(c, &frag, ctl.shards[0].cfg, err, sizeof(err))) {
			xd_config_free(&frag);
			return err_resp(xd_config_err_code(), "config.%s", err);
		}
		fp = &frag;
		if ((out = unserved_queue(&frag))) {
			xd_config_free(&frag);
			return out;
		}
	}
	refused = json_array();
	line = json_dumps(req, JSON_COMPACT);
	for (int i = 0; i < ctl.nshards; i++) {
		json_t *r = json_object();

		if (post(&ctl.shards[i], req, fp, line, r, 1)) {
			out = shard_err(r);
			json_decref(r);
			goto done;
		}
		json_decref(r);
	}
	for (int i = 0; i < ctl.nshards; i++) {
		json_t *r = json_object(), *a;

		if (post(&ctl.shards[i], req, fp, line, r, 0)) {
			out = shard_err(r);
			json_decref(r);
			goto done;
		}
		found += json_integer_value(json_object_get(r, "found"));
		a = json_object_get(r, "applied");
		nsym += json_integer_value(json_object_get(a, "symbols"));
		nses += json_integer_value(json_object_get(a, "sessions"));
		/* An entry a shard's engine refused while applying (the rest is applied): said in
		 * the answer, so the caller need not guess from the counts. */
		if (json_object_get(r, "error"))
			json_array_append(refused, json_object_get(r, "error"));
		json_decref(r);
	}
	if (fp && xd_g_opts->backend->apply && xd_g_opts->backend->apply(fp)) {
		out = err_resp("filter_failed",
			       "applied, but programming the %s filter failed (see the log)",
			       xd_g_opts->backend->name);
		goto done;
	}
	if ((!strcmp(cmd, "halt") || !strcmp(cmd, "resume")) && !found)
		out = err_resp("unknown_symbol", "symbol %lld: unknown",
			       (long long)json_integer_value(json_object_get(req, "symbol")));
	else if (!strcmp(cmd, "logout") && !found)
		out = err_resp("not_logged_in", "session %lld: not logged in",
			       (long long)json_integer_value(json_object_get(req, "session")));
	else if (!strcmp(cmd, "promote"))
		out = json_pack("{s:b,s:I,s:I}", "ok", 1, "epoch",
				(json_int_t)json_integer_value(json_object_get(req, "epoch")),
				"sessions_logged_out", (json_int_t)found);
	else if (fp) {
		out = json_pack("{s:b,s:{s:I,s:I,s:b,s:b}}", "ok", 1, "applied", "symbols",
				(json_int_t)nsym, "sessions", (json_int_t)nses, "allowlist",
				frag.has_allow, "rate", frag.has_rate);
		if (json_array_size(refused))
			json_object_set(out, "refused", refused);
	} else
		out = json_pack("{s:b,s:I}", "ok", 1, "found", (json_int_t)found);
done:
	free(line);
	json_decref(refused);
	xd_config_free(&frag);
	return out;
}

/* Entries of one "apply" record a bulk request is cut into: each is journaled, replayed and
 * replicated as an ordinary apply of a few hundred KiB. */
#define BULK_CHUNK 1000

struct bulk_kind {
	const char *name; /* "symbol" / "session" */
	json_t *in; /* the request's array */
	size_t n;
	json_t **why; /* refusal of entry i, or NULL */
	uint32_t *index; /* accepted entries' indices, in order */
	uint32_t nok;
};

static json_t *refused_entry(const char *kind, size_t i, json_t *entry, const char *code,
			     const char *text)
{
	json_t *id = json_object_get(entry, "id");

	return json_pack("{s:s,s:I,s:O,s:s,s:s}", "kind", kind, "index", (json_int_t)i, "id",
			 json_is_integer(id) ? id : json_null(), "code", code, "error", text);
}

/* "bulk": every symbol and session of config applied that can be, one answer naming each entry
 * refused (docs/dataplane.md). Entries are checked on their own: parsed, against the request's
 * other entries (an id given twice), the served queues and every shard's state; the accepted ones
 * go through "apply" BULK_CHUNK at a time. */
static json_t *bulk(json_t *req)
{
	static const char *const keys[] = {"symbols", "sessions"};
	const struct xd_config *base = ctl.shards[0].cfg;
	json_t *c = json_object_get(req, "config"), *out = NULL, *refused = json_array();
	struct bulk_kind k[2] = {{.name = "symbol"}, {.name = "session"}};
	struct xd_config frag = {0};
	uint8_t *seen[2] = {NULL, NULL};
	uint32_t max[2] = {base->engine.max_symbols, base->engine.max_sessions};
	long long applied[2] = {0, 0};
	const char *k_name;
	json_t *v;
	char err[400];

	if (!json_is_object(c)) {
		out = err_resp("invalid_field", "config: required, an object with symbols and/or "
						"sessions");
		goto done;
	}
	json_object_foreach(c, k_name, v)
	{
		if (strcmp(k_name, "symbols") && strcmp(k_name, "sessions")) {
			out = err_resp("invalid_field",
				       "config.%s: unknown field (bulk takes symbols and sessions)",
				       k_name);
			goto done;
		}
	}
	for (int t = 0; t < 2; t++) {
		k[t].in = json_object_get(c, keys[t]);
		if (k[t].in && !json_is_array(k[t].in)) {
			out = err_resp("invalid_field", "config.%s: must be an array", keys[t]);
			goto done;
		}
		k[t].n = k[t].in ? json_array_size(k[t].in) : 0;
		k[t].why = calloc(k[t].n + 1, sizeof(*k[t].why));
		k[t].index = calloc(k[t].n + 1, sizeof(*k[t].index));
		seen[t] = calloc(max[t] + 1, 1);
		if (!k[t].why || !k[t].index || !seen[t]) {
			out = err_resp("out_of_memory", "out of memory for %zu entries", k[t].n);
			goto done;
		}
	}
	frag.engine = base->engine;
	frag.symbols = calloc(k[0].n + 1, sizeof(*frag.symbols));
	frag.sessions = calloc(k[1].n + 1, sizeof(*frag.sessions));
	if (!frag.symbols || !frag.sessions) {
		out = err_resp("out_of_memory", "out of memory for the entries");
		goto done;
	}
	/* Each entry on its own. */
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < k[t].n; i++) {
			json_t *e = json_array_get(k[t].in, i);
			uint32_t id;
			int queue, rc;

			if (t == 0) {
				struct xd_symbol_cfg *y = &frag.symbols[frag.nsymbols];

				rc =
				    xd_config_symbol(e, (int)i, &base->engine, y, err, sizeof(err));
				id = y->c.symbol_id;
				queue = y->queue;
			} else {
				struct xd_session_cfg *y = &frag.sessions[frag.nsessions];

				rc = xd_config_session(e, (int)i, &base->engine, y, err,
						       sizeof(err));
				id = y->id;
				queue = y->queue;
			}
			if (rc) {
				k[t].why[i] =
				    refused_entry(k[t].name, i, e, xd_config_err_code(), err);
				continue;
			}
			if (seen[t][id]) {
				snprintf(err, sizeof(err), "%s[%zu].id: %u given twice", keys[t], i,
					 id);
				k[t].why[i] =
				    refused_entry(k[t].name, i, e, "duplicate_in_request", err);
				continue;
			}
			seen[t][id] = 1;
			if (queue >= 0 && !served(queue)) {
				snprintf(err, sizeof(err),
					 "%s[%zu].queue: %d is not served (--queues)", keys[t], i,
					 queue);
				k[t].why[i] =
				    refused_entry(k[t].name, i, e, "queue_not_served", err);
				continue;
			}
			k[t].index[k[t].nok++] = (uint32_t)i;
			if (t == 0)
				frag.nsymbols++;
			else
				frag.nsessions++;
		}
	}
	/* Against every shard's state. */
	ctl.sym_index = k[0].index;
	ctl.ses_index = k[1].index;
	for (int s = 0; s < ctl.nshards; s++) {
		json_t *r = json_object(), *x;
		size_t i;

		if (post(&ctl.shards[s], req, &frag, NULL, r, XD_MBOX_BULK_CHECK)) {
			out = shard_err(r);
			json_decref(r);
			goto done;
		}
		json_array_foreach(json_object_get(r, "refused"), i, x)
		{
			int t = !strcmp(json_string_value(json_object_get(x, "kind")), "session");
			size_t at = (size_t)json_integer_value(json_object_get(x, "index"));

			if (!k[t].why[at])
				k[t].why[at] = json_incref(x);
		}
		json_decref(r);
	}
	/* The accepted entries, a chunk at a time. */
	for (int t = 0; t < 2; t++) {
		size_t i = 0;

		while (i < k[t].n) {
			json_t *arr = json_array(), *creq, *ans;
			size_t from = i;

			for (; i < k[t].n && json_array_size(arr) < BULK_CHUNK; i++)
				if (!k[t].why[i])
					json_array_append(arr, json_array_get(k[t].in, i));
			if (!json_array_size(arr)) {
				json_decref(arr);
				continue;
			}
			creq = json_pack("{s:s,s:{s:o}}", "cmd", "apply", "config", keys[t], arr);
			ans = change(creq, "apply");
			json_decref(creq);
			if (!json_is_true(json_object_get(ans, "ok"))) {
				if (!applied[0] && !applied[1]) {
					out = ans; /* nothing changed: the request is refused */
					goto done;
				}
				/* Later entries are not applied: say so for each. */
				for (size_t j = from; j < k[t].n; j++)
					if (!k[t].why[j])
						k[t].why[j] = refused_entry(
						    k[t].name, j, json_array_get(k[t].in, j),
						    json_string_value(json_object_get(ans, "code")),
						    json_string_value(
							json_object_get(ans, "error")));
				for (size_t j = 0; t == 0 && j < k[1].n; j++)
					if (!k[1].why[j])
						k[1].why[j] = refused_entry(
						    "session", j, json_array_get(k[1].in, j),
						    json_string_value(json_object_get(ans, "code")),
						    json_string_value(
							json_object_get(ans, "error")));
				json_decref(ans);
				goto answer;
			}
			applied[t] += json_integer_value(
			    json_object_get(json_object_get(ans, "applied"), keys[t]));
			json_decref(ans);
		}
	}
answer:
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < k[t].n; i++)
			if (k[t].why[i])
				json_array_append(refused, k[t].why[i]);
	out = json_pack("{s:b,s:{s:I,s:I},s:O}", "ok", 1, "applied", "symbols",
			(json_int_t)applied[0], "sessions", (json_int_t)applied[1], "refused",
			refused);
done:
	ctl.sym_index = ctl.ses_index = NULL;
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; k[t].why && i < k[t].n; i++)
			json_decref(k[t].why[i]);
		free(k[t].why);
		free(k[t].index);
		free(seen[t]);
	}
	free(frag.symbols);
	free(frag.sessions);
	json_decref(refused);
	return out;
}

/* "lease": the HA agent renewed this primary's lease; answers may leave for ttl_ms more (its own
 * clock). ttl_ms 0 fences at once (a planned switchover, or the lease lost). */
static json_t *lease(json_t *req)
{
	json_t *t = json_object_get(req, "ttl_ms");
	uint64_t now = xd_mono_ns();

	if (!xd_g_opts->ha)
		return err_resp("not_ha", "lease: this xdpexd runs without --ha");
	if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 60000)
		return err_resp("invalid_field", "ttl_ms: required, an integer in 0..60000");
	atomic_store(&xd_lease_until, now + (uint64_t)json_integer_value(t) * 1000000ull);
	if (!json_integer_value(t))
		xd_log("lease: ended by the agent: fenced, no answers leave");
	for (int i = 0; i < ctl.nshards; i++)
		xd_shard_wake(&ctl.shards[i]);
	return json_pack("{s:b,s:b}", "ok", 1, "fenced", !json_integer_value(t));
}

/* Every command xd_ctl_handle() knows, for the errors that name them. */
#define CTL_CMDS \
	"hash, stats, sessions, symbols, book, journal, ha, apply, halt, resume, logout, " \
	"expire_day, " \
	"promote, follow, lease, switchover, bulk"

json_t *xd_ctl_handle(const char *text)
{
	json_error_t je;
	json_t *req = json_loads(text, JSON_REJECT_DUPLICATES, &je), *out;
	const char *cmd;

	if (!req)
		return err_resp("bad_request", "request: not JSON: %s", je.text);
	if (!json_is_object(req)) {
		json_decref(req);
		return err_resp("bad_request",
				"request: must be a JSON object like {\"cmd\":\"stats\"}");
	}
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!cmd)
		out = err_resp("bad_request", "cmd: required (" CTL_CMDS ")");
	else if (!strcmp(cmd, "hash") || !strcmp(cmd, "stats") || !strcmp(cmd, "sessions") ||
		 !strcmp(cmd, "symbols") || !strcmp(cmd, "journal") || !strcmp(cmd, "ha"))
		out = gather(req, cmd);
	else if (!strcmp(cmd, "lease"))
		out = lease(req);
	else if (!strcmp(cmd, "bulk"))
		out = bulk(req);
	else if (!strcmp(cmd, "follow")) {
		const char *from = json_string_value(json_object_get(req, "from"));

		out = from ? gather(req, cmd)
			   : err_resp("invalid_field",
				      "from: required, the primary's --repl-listen A.B.C.D:PORT");
	} else if (!strcmp(cmd, "book") || !strcmp(cmd, "book_orders")) {
		json_t *s = json_object_get(req, "symbol"), *d = json_object_get(req, "depth");

		if (!json_is_integer(s) || json_integer_value(s) <= 0)
			out = err_resp("invalid_field", "symbol: required, a positive integer");
		else if (d && !strcmp(cmd, "book") &&
			 (!json_is_integer(d) || json_integer_value(d) < 1 ||
			  json_integer_value(d) > 64))
			out = err_resp("invalid_field", "depth: an integer in 1..64");
		else
			out = gather(req, cmd);
	} else if (!strcmp(cmd, "apply") || !strcmp(cmd, "halt") || !strcmp(cmd, "resume") ||
		   !strcmp(cmd, "logout") || !strcmp(cmd, "expire_day") ||
		   !strcmp(cmd, "promote") || !strcmp(cmd, "switchover"))
		out = change(req, cmd);
	else
		out = err_resp("unknown_command", "cmd: unknown command %s (" CTL_CMDS ")", cmd);
	json_decref(req);
	return out;
}

static void reply(struct client *c, json_t *resp)
{
	static char oom[] = "{\"ok\":false,\"code\":\"out_of_memory\","
			    "\"error\":\"no memory for the answer\"}";
	char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	size_t len, off = 0;

	if (!s) { /* the answer could not be built: say so rather than leave the client waiting */
		s = strdup(oom);
		if (!s)
			s = oom;
	}
	len = strlen(s);

	s[len] = 0;
	while (off <= len) {
		ssize_t w = off < len ? write(c->fd, s + off, len - off) : write(c->fd, "\n", 1);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break;
		}
		off += off < len ? (size_t)w : 1;
		if (off == len + 1)
			break;
	}
	if (s != oom)
		free(s);
	json_decref(resp);
}

static void drop_client(struct client *c)
{
	close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = 0;
	c->cap = 0;
}

static void client_read(struct client *c)
{
	ssize_t r;
	char *nl;

	/* The buffer grows with the line (a 64 MiB buffer per client would take 2 GiB of address
	 * space for 32 clients, and under a memory limit every request would be dropped). */
	if (c->len == c->cap && c->cap < CTL_LINE) {
		size_t cap = c->cap ? c->cap * 2 : CTL_LINE0;
		char *b;

		if (cap > CTL_LINE)
			cap = CTL_LINE;
		b = realloc(c->buf, cap + 1);
		if (!b) {
			reply(c, err_resp("out_of_memory", "request: no memory for a %zu-byte line",
					  cap));
			drop_client(c);
			return;
		}
		c->buf = b;
		c->cap = cap;
	}
	r = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (r <= 0) {
		drop_client(c);
		return;
	}
	c->len += (size_t)r;
	while ((nl = memchr(c->buf, '\n', c->len))) {
		size_t n = (size_t)(nl - c->buf);

		*nl = 0;
		if (n)
			reply(c, xd_ctl_handle(c->buf));
		memmove(c->buf, nl + 1, c->len - n - 1);
		c->len -= n + 1;
	}
	if (c->len == CTL_LINE) {
		reply(c, err_resp("too_long", "request: longer than %u bytes", CTL_LINE));
		drop_client(c);
	}
}

static void *ctl_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&xd_stop)) {
		struct pollfd p[CTL_CLIENTS + 1];
		int n = 0;

		p[n++] = (struct pollfd){ctl.lfd, POLLIN, 0};
		for (int i = 0; i < CTL_CLIENTS; i++)
			p[n++] = (struct pollfd){ctl.cl[i].fd, POLLIN, 0};
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int fd = accept4(ctl.lfd, NULL, NULL, SOCK_CLOEXEC);
			int slot = -1;

			for (int i = 0; fd >= 0 && i < CTL_CLIENTS; i++)
				if (ctl.cl[i].fd < 0) {
					slot = i;
					break;
				}
			if (fd >= 0 && slot < 0) {
				const char *msg = "{\"ok\":false,\"code\":\"too_many_clients\","
						  "\"error\":\"too many control connections\"}\n";

				if (write(fd, msg, strlen(msg)) < 0)
					(void)0;
				close(fd);
			} else if (fd >= 0) {
				ctl.cl[slot].fd = fd;
			}
		}
		for (int i = 0; i < CTL_CLIENTS; i++)
			if (ctl.cl[i].fd >= 0 && p[i + 1].revents)
				client_read(&ctl.cl[i]);
	}
	return NULL;
}

int xd_ctl_start(const char *path, struct xd_shard *shards, int nshards, char *err, size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int probe, rc;

	if (strlen(path) >= sizeof(a.sun_path))
		return snprintf(err, errlen, "--ctl-socket %s: path too long", path), -1;
	strcpy(a.sun_path, path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && !connect(probe, (struct sockaddr *)&a, sizeof(a))) {
		close(probe);
		return snprintf(err, errlen, "--ctl-socket %s: in use by another process", path),
		       -1;
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	ctl.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl.lfd < 0)
		return snprintf(err, errlen, "--ctl-socket %s: %s", path, strerror(errno)), -1;
	rc = xd_bind_unix(ctl.lfd, &a, xd_g_opts);
	if (rc || listen(ctl.lfd, 16))
		return snprintf(err, errlen, "--ctl-socket %s: %s", path,
				strerror(rc ? -rc : errno)),
		       -1;
	snprintf(ctl.path, sizeof(ctl.path), "%s", path);
	ctl.shards = shards;
	ctl.nshards = nshards;
	ctl.start_mono = xd_mono_ns();
	for (int i = 0; i < CTL_CLIENTS; i++)
		ctl.cl[i].fd = -1;
	if (pthread_create(&ctl.thread, NULL, ctl_loop, NULL))
		return snprintf(err, errlen, "control thread: %s", strerror(errno)), -1;
	ctl.running = 1;
	return 0;
}

void xd_ctl_attach(struct xd_shard *shards, int nshards)
{
	ctl.shards = shards;
	ctl.nshards = nshards;
	ctl.direct = 1;
	ctl.start_mono = xd_mono_ns();
}

void xd_ctl_stop(void)
{
	if (ctl.running)
		pthread_join(ctl.thread, NULL);
	ctl.running = 0;
	for (int i = 0; i < CTL_CLIENTS; i++)
		if (ctl.cl[i].fd >= 0)
			drop_client(&ctl.cl[i]);
	if (ctl.lfd >= 0) {
		close(ctl.lfd);
		unlink(ctl.path);
		ctl.lfd = -1;
	}
}
