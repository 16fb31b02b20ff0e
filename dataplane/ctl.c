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
#define CTL_LINE (1u << 20)

struct client {
	int fd;
	char *buf;
	size_t len;
};

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
} ctl = { .lfd = -1 };

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
			m->rc = -1;
			break;
		}
	}
	rc = m->rc;
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static json_t *err_resp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *err_resp(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s}", "ok", 0, "error", buf);
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

static json_t *gather(json_t *req, const char *cmd)
{
	json_t *out = json_pack("{s:b}", "ok", 1), *queues = json_array();
	uint64_t hashes[XD_MAX_QUEUES];

	for (int i = 0; i < ctl.nshards; i++) {
		json_t *r = json_object();

		if (post(&ctl.shards[i], req, NULL, NULL, r, 0)) {
			json_decref(queues);
			json_decref(out);
			out = json_pack("{s:b,s:O}", "ok", 0, "error", json_object_get(r, "error"));
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
			 (unsigned long long)(ctl.nshards == 1 ? hashes[0]
							       : combine_hash(hashes, ctl.nshards)));
		json_object_set_new(out, "state_hash", json_string(hex));
		json_object_set_new(out, "queues", queues);
	} else if (!strcmp(cmd, "stats")) {
		const struct xd_opts *o = xd_g_opts;
		json_t *eng = json_pack("{s:I,s:I,s:I,s:I,s:I}", "resting_orders", (json_int_t)0,
					"levels", (json_int_t)0, "orders_in", (json_int_t)0, "fills",
					(json_int_t)0, "rejects", (json_int_t)0);
		size_t i;
		json_t *q;

		json_array_foreach(queues, i, q) {
			const char *k;
			json_t *v, *qe = json_object_get(q, "engine");

			json_object_foreach(qe, k, v)
				json_object_set_new(eng, k,
						    json_integer(json_integer_value(
									 json_object_get(eng, k)) +
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
				    json_string(o->poll == XD_POLL_SPIN   ? "spin"
						: o->poll == XD_POLL_BUSY ? "busy"
									  : "sleep"));
		json_object_set_new(out, "uptime_s",
				    json_real((double)(xd_mono_ns() - ctl.start_mono) / 1e9));
		json_object_set_new(out, "queues", queues);
		json_object_set_new(out, "engine", eng);
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
		json_object_set_new(out, "lease_ms",
				    o->ha ? json_integer(until > now ? (json_int_t)((until - now) / 1000000)
								     : 0)
					  : json_null());
		json_object_set_new(out, "durability",
				    json_string(o->replicated ? (o->durability == XD_DUR_FSYNC
									 ? "replicated-fsync"
									 : "replicated")
						: o->durability == XD_DUR_FSYNC ? "fsync"
										: "none"));
		json_object_set_new(out, "repl_missing",
				    json_string(o->repl_missing == XD_MISSING_HOLD ? "hold" : "local"));
		json_object_set_new(out, "repl_listen",
				    o->repl_listen ? json_string(o->repl_listen) : json_null());
		json_object_set_new(out, "queues", queues);
	} else if (!strcmp(cmd, "book") || !strcmp(cmd, "book_orders")) {
		json_t *q, *found = NULL;
		size_t i;

		json_array_foreach(queues, i, q)
			if (json_is_true(json_object_get(q, "found")))
				found = q;
		if (!found) {
			json_decref(out);
			out = err_resp("symbol %lld: unknown",
				       (long long)json_integer_value(json_object_get(req, "symbol")));
		} else {
			const char *k;
			json_t *v;

			json_object_foreach(found, k, v)
				if (strcmp(k, "found") && strcmp(k, "queue"))
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
			return err_resp("config.symbols[%u].queue: %d is not served (--queues)", i,
					f->symbols[i].queue);
	for (uint32_t i = 0; i < f->nsessions; i++)
		if (f->sessions[i].queue >= 0 && !served(f->sessions[i].queue))
			return err_resp("config.sessions[%u].queue: %d is not served (--queues)", i,
					f->sessions[i].queue);
	return NULL;
}

static json_t *change(json_t *req, const char *cmd)
{
	struct xd_config frag = { 0 };
	const struct xd_config *fp = NULL;
	json_t *out, *refused;
	char *line = NULL;
	long long found = 0, nsym = 0, nses = 0;

	if (!strcmp(cmd, "apply")) {
		char err[400];
		json_t *c = json_object_get(req, "config");

		if (!c)
			return err_resp("config: required, an object with symbols, sessions, "
					"allowlist or rate");
		if (xd_config_from_json(c, &frag, ctl.shards[0].cfg, err, sizeof(err))) {
			xd_config_free(&frag);
			return err_resp("config.%s", err);
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
			out = json_pack("{s:b,s:O}", "ok", 0, "error", json_object_get(r, "error"));
			json_decref(r);
			goto done;
		}
		json_decref(r);
	}
	for (int i = 0; i < ctl.nshards; i++) {
		json_t *r = json_object(), *a;

		if (post(&ctl.shards[i], req, fp, line, r, 0)) {
			out = json_pack("{s:b,s:O}", "ok", 0, "error", json_object_get(r, "error"));
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
		out = err_resp("applied, but programming the %s filter failed (see the log)",
			       xd_g_opts->backend->name);
		goto done;
	}
	if ((!strcmp(cmd, "halt") || !strcmp(cmd, "resume")) && !found)
		out = err_resp("symbol %lld: unknown",
			       (long long)json_integer_value(json_object_get(req, "symbol")));
	else if (!strcmp(cmd, "logout") && !found)
		out = err_resp("session %lld: not logged in",
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
	}
	else
		out = json_pack("{s:b,s:I}", "ok", 1, "found", (json_int_t)found);
done:
	free(line);
	json_decref(refused);
	xd_config_free(&frag);
	return out;
}

/* "lease": the HA agent renewed this primary's lease; answers may leave for ttl_ms more (its own
 * clock). ttl_ms 0 fences at once (a planned switchover, or the lease lost). */
static json_t *lease(json_t *req)
{
	json_t *t = json_object_get(req, "ttl_ms");
	uint64_t now = xd_mono_ns();

	if (!xd_g_opts->ha)
		return err_resp("lease: this xdpexd runs without --ha");
	if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 60000)
		return err_resp("ttl_ms: required, an integer in 0..60000");
	atomic_store(&xd_lease_until, now + (uint64_t)json_integer_value(t) * 1000000ull);
	if (!json_integer_value(t))
		xd_log("lease: ended by the agent: fenced, no answers leave");
	for (int i = 0; i < ctl.nshards; i++)
		xd_shard_wake(&ctl.shards[i]);
	return json_pack("{s:b,s:b}", "ok", 1, "fenced", !json_integer_value(t));
}

/* Every command xd_ctl_handle() knows, for the errors that name them. */
#define CTL_CMDS                                                                                   \
	"hash, stats, sessions, symbols, book, journal, ha, apply, halt, resume, logout, expire_day, " \
	"promote, follow, lease, switchover"

json_t *xd_ctl_handle(const char *text)
{
	json_error_t je;
	json_t *req = json_loads(text, JSON_REJECT_DUPLICATES, &je), *out;
	const char *cmd;

	if (!req)
		return err_resp("request: not JSON: %s", je.text);
	if (!json_is_object(req)) {
		json_decref(req);
		return err_resp("request: must be a JSON object like {\"cmd\":\"stats\"}");
	}
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!cmd)
		out = err_resp("cmd: required (" CTL_CMDS ")");
	else if (!strcmp(cmd, "hash") || !strcmp(cmd, "stats") || !strcmp(cmd, "sessions") ||
		 !strcmp(cmd, "symbols") || !strcmp(cmd, "journal") || !strcmp(cmd, "ha"))
		out = gather(req, cmd);
	else if (!strcmp(cmd, "lease"))
		out = lease(req);
	else if (!strcmp(cmd, "follow")) {
		const char *from = json_string_value(json_object_get(req, "from"));

		out = from ? gather(req, cmd)
			   : err_resp("from: required, the primary's --repl-listen A.B.C.D:PORT");
	}
	else if (!strcmp(cmd, "book") || !strcmp(cmd, "book_orders")) {
		json_t *s = json_object_get(req, "symbol"), *d = json_object_get(req, "depth");

		if (!json_is_integer(s) || json_integer_value(s) <= 0)
			out = err_resp("symbol: required, a positive integer");
		else if (d && !strcmp(cmd, "book") &&
			 (!json_is_integer(d) || json_integer_value(d) < 1 ||
			  json_integer_value(d) > 64))
			out = err_resp("depth: an integer in 1..64");
		else
			out = gather(req, cmd);
	} else if (!strcmp(cmd, "apply") || !strcmp(cmd, "halt") || !strcmp(cmd, "resume") ||
		   !strcmp(cmd, "logout") || !strcmp(cmd, "expire_day") || !strcmp(cmd, "promote") ||
		   !strcmp(cmd, "switchover"))
		out = change(req, cmd);
	else
		out = err_resp("cmd: unknown command %s (" CTL_CMDS ")",
			       cmd);
	json_decref(req);
	return out;
}

static void reply(struct client *c, json_t *resp)
{
	char *s = json_dumps(resp, JSON_COMPACT);
	size_t len = strlen(s), off = 0;

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
}

static void client_read(struct client *c)
{
	ssize_t r;
	char *nl;

	if (!c->buf)
		c->buf = malloc(CTL_LINE + 1);
	r = read(c->fd, c->buf + c->len, CTL_LINE - c->len);
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
		reply(c, err_resp("request: longer than %u bytes", CTL_LINE));
		drop_client(c);
	}
}

static void *ctl_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&xd_stop)) {
		struct pollfd p[CTL_CLIENTS + 1];
		int n = 0;

		p[n++] = (struct pollfd){ ctl.lfd, POLLIN, 0 };
		for (int i = 0; i < CTL_CLIENTS; i++)
			p[n++] = (struct pollfd){ ctl.cl[i].fd, POLLIN, 0 };
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
				const char *msg = "{\"ok\":false,\"error\":\"too many control "
						  "connections\"}\n";

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
	struct sockaddr_un a = { .sun_family = AF_UNIX };
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
