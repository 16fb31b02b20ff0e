/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpexd configuration: the JSON file given with --config and the fragments the control socket's
 * "apply" command carries (docs/dataplane.md lists every field). Parsing validates everything and
 * names the offending field ("symbols[2].tick: must be a positive integer"); unknown fields are
 * errors so that a typo never silently does nothing. Nothing here touches running state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpexd.h"

/* Every refusal has a machine-readable code beside its text (docs/dataplane.md lists them):
 * the code of the last failed parse of this thread, for xd_config_err_code(). */
static __thread const char *err_code = "invalid_field";

#define CFG_ERRC(code, ...) (err_code = (code), snprintf(err, errlen, __VA_ARGS__), -1)
#define CFG_ERR(...) CFG_ERRC("invalid_field", __VA_ARGS__)

const char *xd_config_err_code(void)
{
	return err_code;
}

/* An id field: 1..max; above max is the limit of the configuration (id_over_limit). */
static int get_id(json_t *obj, uint32_t max, const char *limit, uint32_t *out, const char *where,
		  char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, "id");

	if (!v)
		return CFG_ERR("%s.id: required (1..%u)", where, max);
	if (!json_is_integer(v) || json_integer_value(v) < 1)
		return CFG_ERR("%s.id: must be an integer in 1..%u", where, max);
	if (json_integer_value(v) > max)
		return CFG_ERRC("id_over_limit",
				"%s.id: %lld is above engine.%s %u (raise it in the configuration "
				"file and restart)",
				where, (long long)json_integer_value(v), limit, max);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static int only_keys(json_t *obj, const char *const *keys, const char *where, char *err,
		     size_t errlen)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
	{
		int ok = 0;

		for (const char *const *p = keys; *p; p++)
			ok |= !strcmp(*p, k);
		if (!ok)
			return CFG_ERR("%s%s%s: unknown field", where, *where ? "." : "", k);
	}
	return 0;
}

/* Integer field in [lo, hi]; absent leaves *out alone and returns 0. */
static int get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out,
		   const char *where, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return CFG_ERR("%s%s%s: must be an integer in %lld..%lld", where, *where ? "." : "",
			       key, lo, hi);
	*out = json_integer_value(v);
	return 1;
}

static int get_bool(json_t *obj, const char *key, int *out, const char *where, char *err,
		    size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return CFG_ERR("%s.%s: must be true or false", where, key);
	*out = json_is_true(v);
	return 1;
}

static int parse_hex(const char *s, uint8_t *out, uint32_t max, uint32_t *len)
{
	size_t n = strlen(s);

	if (n % 2 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = (uint32_t)(n / 2);
	return 0;
}

static int parse_prefix(const char *s, struct xd_prefix *p)
{
	char buf[32], *slash;
	struct in_addr a;
	long len = 32;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash) {
		char *end;

		*slash = 0;
		len = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || len < 0 || len > 32)
			return -1;
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -1;
	p->len = (uint32_t)len;
	p->addr = len ? a.s_addr & htonl(~0u << (32 - len)) : 0;
	return 0;
}

/* Ids seen in one array of a request: a bitmap for ids 1..max (at most 128 KiB for 2^20 ids),
 * allocated per array and freed with it. */
static uint64_t *seen_new(uint32_t max)
{
	return calloc((size_t)max / 64 + 1, sizeof(uint64_t));
}

/* 1 when id was already seen in `bits` (ids are 1..max, checked by the parser). */
static int seen_twice(uint64_t *bits, uint32_t id)
{
	uint64_t bit = 1ull << (id & 63), *w = &bits[id >> 6];

	if (*w & bit)
		return 1;
	*w |= bit;
	return 0;
}

static const char *const stp_names[] = {"none", "cancel_newest", "cancel_oldest", "cancel_both",
					NULL};

static int parse_symbol(json_t *o, int i, const struct xe_engine_config *ec,
			struct xd_symbol_cfg *s, int full, char *err, size_t errlen)
{
	static const char *const keys[] = {"id",      "name",  "tick",	 "lot", "band",
					   "max_qty", "queue", "halted", NULL};
	char where[32];
	long long v;
	json_t *band, *name;

	snprintf(where, sizeof(where), "symbols[%d]", i);
	if (!json_is_object(o))
		return CFG_ERR("%s: must be an object", where);
	if (only_keys(o, keys, where, err, errlen))
		return -1;
	memset(s, 0, sizeof(*s));
	s->queue = -1;
	s->halted = -1;
	if (get_id(o, ec->max_symbols, "max_symbols", &s->c.symbol_id, where, err, errlen))
		return -1;
	name = json_object_get(o, "name");
	if (name) {
		if (!json_is_string(name) || strlen(json_string_value(name)) >= sizeof(s->name))
			return CFG_ERRC("bad_name",
					"%s.name: must be a string of at most %zu characters",
					where, sizeof(s->name) - 1);
		strcpy(s->name, json_string_value(name));
	}
	if (get_bool(o, "halted", &s->halted, where, err, errlen) < 0)
		return -1;
	v = -1;
	if (get_int(o, "queue", 0, XD_MAX_QUEUES - 1, &v, where, err, errlen) < 0)
		return -1;
	s->queue = (int)v;
	/* A fragment naming only id (+ halted) changes an existing symbol. */
	if (!full && !json_object_get(o, "tick") && !json_object_get(o, "lot") &&
	    !json_object_get(o, "band"))
		return 0;
	if (get_int(o, "tick", 1, INT64_MAX, &v, where, err, errlen) != 1)
		return *err ? (err_code = "bad_tick", -1)
			    : CFG_ERRC("bad_tick", "%s.tick: required, a positive integer", where);
	s->c.tick_size = v;
	if (get_int(o, "lot", 1, UINT32_MAX, &v, where, err, errlen) != 1)
		return *err ? (err_code = "bad_lot", -1)
			    : CFG_ERRC("bad_lot", "%s.lot: required, a positive integer", where);
	s->c.lot_size = (uint32_t)v;
	v = 0;
	if (get_int(o, "max_qty", 0, UINT32_MAX, &v, where, err, errlen) < 0)
		return err_code = "bad_max_qty", -1;
	s->c.max_qty = (uint32_t)v;
	band = json_object_get(o, "band");
	if (!band || !json_is_array(band) || json_array_size(band) != 2 ||
	    !json_is_integer(json_array_get(band, 0)) || !json_is_integer(json_array_get(band, 1)))
		return CFG_ERRC("bad_band", "%s.band: required, [low, high] in ticks", where);
	s->c.band_low = json_integer_value(json_array_get(band, 0));
	s->c.band_high = json_integer_value(json_array_get(band, 1));
	if (s->c.band_low <= 0 || s->c.band_high < s->c.band_low)
		return CFG_ERRC("bad_band", "%s.band: [%lld, %lld]: need 0 < low <= high", where,
				(long long)s->c.band_low, (long long)s->c.band_high);
	if (s->c.band_low % s->c.tick_size || s->c.band_high % s->c.tick_size)
		return CFG_ERRC("band_off_tick", "%s.band: bounds must be multiples of tick %lld",
				where, (long long)s->c.tick_size);
	return 0;
}

static int parse_session(json_t *o, int i, const struct xe_engine_config *ec,
			 struct xd_session_cfg *s, int full, char *err, size_t errlen)
{
	static const char *const keys[] = {"id",      "secret", "stp",	  "cancel_on_disconnect",
					   "enabled", "queue",	"limits", NULL};
	static const char *const lkeys[] = {"rate", "burst", NULL};
	char where[32], lwhere[48];
	long long v;
	json_t *x;

	snprintf(where, sizeof(where), "sessions[%d]", i);
	if (!json_is_object(o))
		return CFG_ERR("%s: must be an object", where);
	if (only_keys(o, keys, where, err, errlen))
		return -1;
	memset(s, 0, sizeof(*s));
	s->stp = s->cod = s->enabled = s->queue = -1;
	s->rate = s->burst = -1;
	if (get_id(o, ec->max_sessions, "max_sessions", &s->id, where, err, errlen))
		return -1;
	x = json_object_get(o, "secret");
	if (x) {
		if (!json_is_string(x) ||
		    parse_hex(json_string_value(x), s->secret, sizeof(s->secret), &s->secret_len) ||
		    s->secret_len < 16)
			return CFG_ERRC("bad_secret", "%s.secret: must be 16..64 bytes in hex",
					where);
	} else if (full) {
		return CFG_ERRC("secret_required", "%s.secret: required (hex, 16..64 bytes)",
				where);
	}
	x = json_object_get(o, "stp");
	if (x) {
		int k;

		for (k = 0; stp_names[k]; k++)
			if (json_is_string(x) && !strcmp(stp_names[k], json_string_value(x)))
				break;
		if (!stp_names[k])
			return CFG_ERRC("bad_stp",
					"%s.stp: must be none, cancel_newest, cancel_oldest or "
					"cancel_both",
					where);
		s->stp = k;
	}
	if (get_bool(o, "cancel_on_disconnect", &s->cod, where, err, errlen) < 0 ||
	    get_bool(o, "enabled", &s->enabled, where, err, errlen) < 0)
		return -1;
	v = -1;
	if (get_int(o, "queue", 0, XD_MAX_QUEUES - 1, &v, where, err, errlen) < 0)
		return -1;
	s->queue = (int)v;
	x = json_object_get(o, "limits");
	if (x) {
		long long r = -1, b = -1;

		snprintf(lwhere, sizeof(lwhere), "%s.limits", where);
		if (!json_is_object(x))
			return CFG_ERR("%s: must be an object", lwhere);
		if (only_keys(x, lkeys, lwhere, err, errlen) ||
		    get_int(x, "rate", 0, 1000000000, &r, lwhere, err, errlen) < 0 ||
		    get_int(x, "burst", 0, 1000000000, &b, lwhere, err, errlen) < 0)
			return -1;
		s->rate = r < 0 ? 0 : r;
		s->burst = b < 0 ? 0 : b;
	}
	if (full) {
		if (s->stp < 0)
			s->stp = XE_STP_NONE;
		if (s->cod < 0)
			s->cod = 0;
		if (s->enabled < 0)
			s->enabled = 1;
		if (s->rate < 0)
			s->rate = s->burst = 0;
	}
	return 0;
}

/* A symbol or session entry the parser refused (its text in err): a control-socket fragment
 * stops at the first one (returns 1); the configuration file goes on, so that one start names
 * every bad entry (each on stderr; counted in *bad). */
static __thread const char *bad_code;

static int entry_refused(int full, const char *err, uint32_t *bad)
{
	if (!full)
		return 1;
	if (!*bad)
		bad_code = err_code;
	fprintf(stderr, "xdpexd: config: %s (%s)\n", err, err_code);
	(*bad)++;
	return 0;
}

int xd_config_from_json(json_t *j, struct xd_config *cfg, const struct xd_config *base, char *err,
			size_t errlen)
{
	uint32_t bad = 0;
	static const char *const keys[] = {"engine",	  "heartbeat_ms", "login_skew_ms",
					   "login_limit", "rate",	  "allowlist",
					   "symbols",	  "sessions",	  NULL};
	static const char *const fkeys[] = {"rate", "allowlist", "symbols", "sessions", NULL};
	int full = base == NULL;
	long long v;
	json_t *x;
	uint64_t *seen;

	memset(cfg, 0, sizeof(*cfg));
	err[0] = 0;
	err_code = "invalid_field";
	if (!json_is_object(j))
		return CFG_ERR("configuration: must be a JSON object");
	if (only_keys(j, full ? keys : fkeys, "", err, errlen))
		return -1;
	cfg->engine =
	    (struct xe_engine_config){XD_DEF_MAX_ORDERS, XD_DEF_MAX_SYMBOLS, XD_DEF_MAX_SESSIONS};
	cfg->heartbeat_ms = 1000;
	cfg->skew_ms = 5000;
	cfg->login_limit = (struct xd_login_limit)XD_LOGIN_LIMIT_DEFAULT;
	if (!full) {
		cfg->engine = base->engine;
		cfg->heartbeat_ms = base->heartbeat_ms;
		cfg->skew_ms = base->skew_ms;
		cfg->login_limit = base->login_limit;
	}
	x = json_object_get(j, "engine");
	if (x) {
		static const char *const ekeys[] = {"max_orders", "max_symbols", "max_sessions",
						    NULL};

		if (!json_is_object(x))
			return CFG_ERR("engine: must be an object");
		if (only_keys(x, ekeys, "engine", err, errlen))
			return -1;
		v = cfg->engine.max_orders;
		if (get_int(x, "max_orders", 1, 1 << 28, &v, "engine", err, errlen) < 0)
			return -1;
		cfg->engine.max_orders = (uint32_t)v;
		v = cfg->engine.max_symbols;
		if (get_int(x, "max_symbols", 1, 1 << 20, &v, "engine", err, errlen) < 0)
			return -1;
		cfg->engine.max_symbols = (uint32_t)v;
		v = cfg->engine.max_sessions;
		if (get_int(x, "max_sessions", 1, 1 << 20, &v, "engine", err, errlen) < 0)
			return -1;
		cfg->engine.max_sessions = (uint32_t)v;
	}
	v = cfg->heartbeat_ms;
	if (get_int(j, "heartbeat_ms", 10, 3600000, &v, "", err, errlen) < 0)
		return -1;
	cfg->heartbeat_ms = (uint32_t)v;
	v = cfg->skew_ms;
	if (get_int(j, "login_skew_ms", 1, 3600000, &v, "", err, errlen) < 0)
		return -1;
	cfg->skew_ms = (uint32_t)v;
	x = json_object_get(j, "login_limit");
	if (x) {
		static const char *const lkeys[] = {"per_source_rate", "per_source_burst",
						    "total_rate", "total_burst", NULL};
		struct xd_login_limit *l = &cfg->login_limit;
		long long sr = (long long)l->src_rate, sb = (long long)l->src_burst;
		long long tr = (long long)l->total_rate, tb = (long long)l->total_burst;

		if (!json_is_object(x))
			return CFG_ERR("login_limit: must be an object");
		if (only_keys(x, lkeys, "login_limit", err, errlen) ||
		    get_int(x, "per_source_rate", 0, 1000000, &sr, "login_limit", err, errlen) <
			0 ||
		    get_int(x, "per_source_burst", 1, 1000000, &sb, "login_limit", err, errlen) <
			0 ||
		    get_int(x, "total_rate", 0, 10000000, &tr, "login_limit", err, errlen) < 0 ||
		    get_int(x, "total_burst", 1, 10000000, &tb, "login_limit", err, errlen) < 0)
			return -1;
		*l =
		    (struct xd_login_limit){(uint64_t)sr, (uint64_t)sb, (uint64_t)tr, (uint64_t)tb};
	}
	x = json_object_get(j, "rate");
	if (x) {
		static const char *const rkeys[] = {"pps", "burst", NULL};
		long long pps = 0, burst = 0;

		if (!json_is_object(x))
			return CFG_ERR("rate: must be an object");
		if (only_keys(x, rkeys, "rate", err, errlen) ||
		    get_int(x, "pps", 0, 1000000000, &pps, "rate", err, errlen) < 0 ||
		    get_int(x, "burst", 0, 1000000000, &burst, "rate", err, errlen) < 0)
			return -1;
		cfg->has_rate = 1;
		cfg->rate_pps = (uint64_t)pps;
		cfg->rate_burst = (uint64_t)burst;
	}
	x = json_object_get(j, "allowlist");
	if (x) {
		if (!json_is_array(x) || json_array_size(x) > XD_MAX_ALLOW)
			return CFG_ERR("allowlist: must be an array of at most %d IPv4 prefixes",
				       XD_MAX_ALLOW);
		cfg->has_allow = 1;
		cfg->nallow = (uint32_t)json_array_size(x);
		cfg->allow = calloc(cfg->nallow + 1, sizeof(*cfg->allow));
		if (!cfg->allow)
			return CFG_ERR("out of memory");
		for (uint32_t i = 0; i < cfg->nallow; i++) {
			json_t *p = json_array_get(x, i);

			if (!json_is_string(p) ||
			    parse_prefix(json_string_value(p), &cfg->allow[i]))
				return CFG_ERR("allowlist[%u]: must be an IPv4 prefix like "
					       "10.0.0.0/8",
					       i);
		}
	}
	x = json_object_get(j, "symbols");
	if (x) {
		if (!json_is_array(x))
			return CFG_ERR("symbols: must be an array");
		cfg->nsymbols = (uint32_t)json_array_size(x);
		cfg->symbols = calloc(cfg->nsymbols + 1, sizeof(*cfg->symbols));
		seen = seen_new(cfg->engine.max_symbols);
		if (!cfg->symbols || !seen)
			return free(seen), CFG_ERRC("out_of_memory", "out of memory");
		for (uint32_t i = 0; i < cfg->nsymbols; i++) {
			if (parse_symbol(json_array_get(x, i), (int)i, &cfg->engine,
					 &cfg->symbols[i], full, err, errlen)) {
				if (entry_refused(full, err, &bad))
					return free(seen), -1;
			} else if (seen_twice(seen, cfg->symbols[i].c.symbol_id)) {
				(void)CFG_ERRC("duplicate_in_request",
					       "symbols[%u].id: %u given twice", i,
					       cfg->symbols[i].c.symbol_id);
				if (entry_refused(full, err, &bad))
					return free(seen), -1;
			}
		}
		free(seen);
	}
	x = json_object_get(j, "sessions");
	if (x) {
		if (!json_is_array(x))
			return CFG_ERR("sessions: must be an array");
		cfg->nsessions = (uint32_t)json_array_size(x);
		cfg->sessions = calloc(cfg->nsessions + 1, sizeof(*cfg->sessions));
		seen = seen_new(cfg->engine.max_sessions);
		if (!cfg->sessions || !seen)
			return free(seen), CFG_ERRC("out_of_memory", "out of memory");
		for (uint32_t i = 0; i < cfg->nsessions; i++) {
			if (parse_session(json_array_get(x, i), (int)i, &cfg->engine,
					  &cfg->sessions[i], full, err, errlen)) {
				if (entry_refused(full, err, &bad))
					return free(seen), -1;
			} else if (seen_twice(seen, cfg->sessions[i].id)) {
				(void)CFG_ERRC("duplicate_in_request",
					       "sessions[%u].id: %u given twice", i,
					       cfg->sessions[i].id);
				if (entry_refused(full, err, &bad))
					return free(seen), -1;
			}
		}
		free(seen);
	}
	if (bad)
		return CFG_ERRC(bad_code,
				"%u symbol and session entries refused (each listed above); "
				"fix them all and start again",
				bad);
	return 0;
}

int xd_config_load(const char *path, struct xd_config *cfg, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	char sub[400];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (!j) {
		if (je.line < 1)
			return CFG_ERR("config %s: %s", path, je.text);
		return CFG_ERR("config %s: line %d column %d: %s", path, je.line, je.column,
			       je.text);
	}
	rc = xd_config_from_json(j, cfg, NULL, sub, sizeof(sub));
	json_decref(j);
	if (rc)
		return CFG_ERR("config %s: %s", path, sub);
	return 0;
}

void xd_config_free(struct xd_config *cfg)
{
	free(cfg->allow);
	free(cfg->symbols);
	free(cfg->sessions);
	memset(cfg, 0, sizeof(*cfg));
}

int xd_symbol_owner(const struct xd_symbol_cfg *y, const struct xd_opts *o)
{
	if (y->queue >= 0)
		return y->queue;
	return o->queues[(y->c.symbol_id - 1) % (uint32_t)o->nqueues];
}

int xd_session_owner(const struct xd_session_cfg *c, const struct xd_opts *o)
{
	return c->queue >= 0 ? c->queue : o->queues[0];
}

int xd_config_symbol(json_t *o, int i, const struct xe_engine_config *ec, struct xd_symbol_cfg *s,
		     char *err, size_t errlen)
{
	err[0] = 0;
	err_code = "invalid_field";
	return parse_symbol(o, i, ec, s, 0, err, errlen);
}

int xd_config_session(json_t *o, int i, const struct xe_engine_config *ec, struct xd_session_cfg *s,
		      char *err, size_t errlen)
{
	err[0] = 0;
	err_code = "invalid_field";
	return parse_session(o, i, ec, s, 0, err, errlen);
}
