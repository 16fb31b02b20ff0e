/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdpex-loadgen entry point: option parsing (every bad value is named and refused with exit
 * code 2), session set-up and login (exit 3 when a login fails), the run, logout, and the JSON
 * report on stdout. Usage: xdpex-loadgen --help.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "loadgen.h"

static const char usage[] =
    "usage: xdpex-loadgen --server IP[:PORT][,IP[:PORT]...] --session ID:HEXSECRET [options]\n"
    "  --server IP[:PORT]     gateway address (port 9000 by default); a primary and its\n"
    "                         standbys comma-separated: the sessions log in where the leader\n"
    "                         is and follow it (heartbeat timeout, Logout), resending what the\n"
    "                         new primary had not applied (kernel UDP mode only)\n"
    "  --session ID:HEX       session id and its secret in hex; repeat for more sessions\n"
    "  --credentials FILE     sessions from a file, one 'ID HEXSECRET [SYMBOLS]' a line\n"
    "                         (SYMBOLS: that session's symbols, as --symbols)\n"
    "  --bind IP              local address to send from\n"
    "  --count N              order messages to send (default 100000)\n"
    "  --duration SEC         time limit for sending (default 10)\n"
    "  --drain SEC            time allowed for the last answers (default 2)\n"
    "  --rate R               open loop: messages per second\n"
    "  --window W             closed loop: unanswered messages allowed (default 1024)\n"
    "  --batch N              messages per datagram, 1..22 (default 16)\n"
    "  --mix NEW:CXL:CROSS    percentages of resting orders, cancels and crossing IOC orders\n"
    "                         (default 60:30:10, must add up to 100); an order still resting\n"
    "                         8192 order ids later is cancelled by the new order's message\n"
    "  --symbols LIST         symbol ids, e.g. 1,2,5-8 (default 1)\n"
    "  --price MIN:MAX        price range in ticks (default 9900:10100)\n"
    "  --qty-max N            order quantities are 1..N (default 100)\n"
    "  --cpu N                pin the generator thread to CPU N\n"
    "  --busy-poll USEC       SO_BUSY_POLL on the sockets\n"
    "  --xdp IF               AF_XDP mode: orders out and answers in through an AF_XDP\n"
    "                         socket on IF (replaces IF's XDP program while it runs)\n"
    "  --login-stagger MS     log the sessions in inside the run, session i at i x MS\n"
    "                         (unanswered Logins sent again every 250 ms)\n"
    "  --relogin-ms MS        each logged-in session logs in again every MS (same socket,\n"
    "                         orders go on; implies logins inside the run)\n"
    "  --log-logins           a line 'login ID' on stderr at each Login, which is sent\n"
    "                         2 ms later (a watcher can act while the login is under way)\n"
    "  A Login refused BOUND_ELSEWHERE before the session was logged in is sent again from\n"
    "  a new source port (its flow landed on a gateway queue not owning the session)\n"
    "  --seed N               random seed (default fixed)\n";

static void die_arg(const char *opt, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "xdpex-loadgen: %s: ", opt);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		die_arg(opt, "'%s' is not a number", s);
	if (v < lo || v > hi)
		die_arg(opt, "%llu is out of range %" PRIu64 "..%" PRIu64, v, lo, hi);
	return v;
}

static double parse_pos_double(const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v) || v <= 0)
		die_arg(opt, "'%s' is not a positive number", s);
	return v;
}

static void parse_addr(const char *opt, const char *s, struct sockaddr_in *a, bool port_ok)
{
	char host[64];
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	if (n == 0 || n >= sizeof(host))
		die_arg(opt, "'%s' is not IP[:PORT]", s);
	memcpy(host, s, n);
	host[n] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons(XE_DEFAULT_PORT);
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		die_arg(opt, "'%s' is not an IPv4 address", host);
	if (colon) {
		if (!port_ok)
			die_arg(opt, "no port allowed in '%s'", s);
		a->sin_port = htons((uint16_t)parse_u64(opt, colon + 1, 1, 65535));
	}
}

static void add_session(struct config *cfg, const char *opt, const char *id_s, const char *hex)
{
	if (cfg->nsess >= LG_MAX_SESSIONS)
		die_arg(opt, "at most %d sessions", LG_MAX_SESSIONS);
	struct session *s = &cfg->sess[cfg->nsess];
	s->id = (uint32_t)parse_u64(opt, id_s, 1, UINT32_MAX);
	for (unsigned i = 0; i < cfg->nsess; i++)
		if (cfg->sess[i].id == s->id)
			die_arg(opt, "session %u given twice", s->id);
	size_t n = strlen(hex);
	if (n == 0 || n % 2 || n / 2 > LG_SECRET_MAX)
		die_arg(opt, "session %u: the secret must be 1..%d bytes of hex", s->id,
			LG_SECRET_MAX);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]))
			die_arg(opt, "session %u: the secret is not hex", s->id);
		s->secret[i] = (uint8_t)v;
	}
	s->secret_len = (unsigned)(n / 2);
	cfg->nsess++;
}

static void parse_session(struct config *cfg, const char *opt, char *arg)
{
	char *colon = strchr(arg, ':');
	if (!colon)
		die_arg(opt, "'%s' is not ID:HEXSECRET", arg);
	*colon = 0;
	add_session(cfg, opt, arg, colon + 1);
}

static void parse_symbol_list(const char *opt, char *arg, uint32_t *out, unsigned *n);

static void parse_credentials(struct config *cfg, const char *opt, const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");
	if (!f)
		die_arg(opt, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char id[32], hex[256], syms[256], tail[2];
		if (line[0] == '#' || line[strspn(line, " \t\r\n")] == 0)
			continue;
		int n = sscanf(line, "%31s %255s %255s %1s", id, hex, syms, tail);
		if (n != 2 && n != 3)
			die_arg(opt, "%s: line '%s' is not 'ID HEXSECRET [SYMBOLS]'", path, line);
		add_session(cfg, opt, id, hex);
		if (n == 3) {
			struct session *s = &cfg->sess[cfg->nsess - 1];
			parse_symbol_list(opt, syms, s->symbols, &s->nsym);
		}
	}
	fclose(f);
}

static void parse_symbol_list(const char *opt, char *arg, uint32_t *out, unsigned *n)
{
	char *save = NULL;
	for (char *tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t lo, hi;
		if (dash) {
			*dash = 0;
			lo = parse_u64(opt, tok, 1, UINT32_MAX);
			hi = parse_u64(opt, dash + 1, lo, UINT32_MAX);
		} else {
			lo = hi = parse_u64(opt, tok, 1, UINT32_MAX);
		}
		for (uint64_t v = lo; v <= hi; v++) {
			if (*n >= LG_MAX_SYMBOLS)
				die_arg(opt, "at most %d symbols", LG_MAX_SYMBOLS);
			out[(*n)++] = (uint32_t)v;
		}
	}
	if (!*n)
		die_arg(opt, "no symbol given");
}

static void parse_symbols(struct config *cfg, const char *opt, char *arg)
{
	parse_symbol_list(opt, arg, cfg->symbols, &cfg->nsym);
}

static void parse_args(struct config *cfg, int argc, char **argv)
{
	enum {
		O_SERVER = 256,
		O_SESSION,
		O_CREDS,
		O_BIND,
		O_COUNT,
		O_DURATION,
		O_DRAIN,
		O_RATE,
		O_WINDOW,
		O_BATCH,
		O_MIX,
		O_SYMBOLS,
		O_PRICE,
		O_QTY,
		O_CPU,
		O_BUSY,
		O_SEED,
		O_XDP,
		O_STAGGER,
		O_RELOGIN,
		O_LOGLOGINS,
		O_HELP
	};
	static const struct option opts[] = {
	    {"server", required_argument, 0, O_SERVER},
	    {"session", required_argument, 0, O_SESSION},
	    {"credentials", required_argument, 0, O_CREDS},
	    {"bind", required_argument, 0, O_BIND},
	    {"count", required_argument, 0, O_COUNT},
	    {"duration", required_argument, 0, O_DURATION},
	    {"drain", required_argument, 0, O_DRAIN},
	    {"rate", required_argument, 0, O_RATE},
	    {"window", required_argument, 0, O_WINDOW},
	    {"batch", required_argument, 0, O_BATCH},
	    {"mix", required_argument, 0, O_MIX},
	    {"symbols", required_argument, 0, O_SYMBOLS},
	    {"price", required_argument, 0, O_PRICE},
	    {"qty-max", required_argument, 0, O_QTY},
	    {"cpu", required_argument, 0, O_CPU},
	    {"busy-poll", required_argument, 0, O_BUSY},
	    {"seed", required_argument, 0, O_SEED},
	    {"xdp", required_argument, 0, O_XDP},
	    {"login-stagger", required_argument, 0, O_STAGGER},
	    {"relogin-ms", required_argument, 0, O_RELOGIN},
	    {"log-logins", no_argument, 0, O_LOGLOGINS},
	    {"help", no_argument, 0, O_HELP},
	    {0, 0, 0, 0},
	};
	bool have_server = false, have_window = false;
	char sym_default[] = "1";
	cfg->count = 100000;
	cfg->duration_s = 10;
	cfg->drain_s = 2;
	cfg->window = 1024;
	cfg->batch = 16;
	cfg->mix_new = 60, cfg->mix_cancel = 30, cfg->mix_cross = 10;
	cfg->price_min = 9900, cfg->price_max = 10100;
	cfg->qty_max = 100;
	cfg->cpu = -1;
	opterr = 0;
	int c, idx = 0;
	while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		if (c == '?' || c == ':') {
			fprintf(stderr, "xdpex-loadgen: unknown option or missing value: '%s'\n%s",
				argv[optind - 1], usage);
			exit(2);
		}
		char name[32];
		snprintf(name, sizeof(name), "--%s", opts[idx].name);
		switch (c) {
		case O_SERVER: {
			char list[512], *save = NULL;
			if (strlen(optarg) >= sizeof(list))
				die_arg(name, "too long");
			strcpy(list, optarg);
			cfg->nservers = 0;
			for (char *t = strtok_r(list, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (cfg->nservers >= LG_MAX_SERVERS)
					die_arg(name, "at most %d addresses", LG_MAX_SERVERS);
				parse_addr(name, t, &cfg->servers[cfg->nservers++], true);
			}
			if (!cfg->nservers)
				die_arg(name, "'%s' is not IP[:PORT]", optarg);
			cfg->server = cfg->servers[0];
			have_server = true;
			break;
		}
		case O_SESSION: parse_session(cfg, name, optarg); break;
		case O_CREDS: parse_credentials(cfg, name, optarg); break;
		case O_BIND:
			parse_addr(name, optarg, &cfg->bind, false);
			cfg->have_bind = true;
			break;
		case O_COUNT: cfg->count = parse_u64(name, optarg, 1, 1ull << 40); break;
		case O_DURATION: cfg->duration_s = parse_pos_double(name, optarg); break;
		case O_DRAIN: cfg->drain_s = parse_pos_double(name, optarg); break;
		case O_RATE: cfg->rate = parse_pos_double(name, optarg); break;
		case O_WINDOW:
			cfg->window = (uint32_t)parse_u64(name, optarg, 1, LG_SLOTS / 2);
			have_window = true;
			break;
		case O_BATCH: cfg->batch = (unsigned)parse_u64(name, optarg, 1, XE_MAX_MSGS); break;
		case O_MIX: {
			unsigned a, b, x;
			char tail;
			if (sscanf(optarg, "%u:%u:%u%c", &a, &b, &x, &tail) != 3 ||
			    a + b + x != 100)
				die_arg(name, "'%s' is not NEW:CANCEL:CROSS adding up to 100",
					optarg);
			cfg->mix_new = a, cfg->mix_cancel = b, cfg->mix_cross = x;
			break;
		}
		case O_SYMBOLS: parse_symbols(cfg, name, optarg); break;
		case O_PRICE: {
			long long lo, hi;
			char tail;
			if (sscanf(optarg, "%lld:%lld%c", &lo, &hi, &tail) != 2 || lo <= 0 ||
			    hi <= lo)
				die_arg(name, "'%s' is not MIN:MAX with 0 < MIN < MAX", optarg);
			cfg->price_min = lo, cfg->price_max = hi;
			break;
		}
		case O_QTY: cfg->qty_max = (uint32_t)parse_u64(name, optarg, 1, UINT32_MAX); break;
		case O_CPU: cfg->cpu = (int)parse_u64(name, optarg, 0, CPU_SETSIZE - 1); break;
		case O_BUSY: cfg->busy_poll_us = (int)parse_u64(name, optarg, 0, 1000000); break;
		case O_SEED: cfg->seed = parse_u64(name, optarg, 0, UINT64_MAX); break;
		case O_XDP:
			if (!optarg[0] || strlen(optarg) >= IF_NAMESIZE)
				die_arg(name, "'%s' is not an interface name", optarg);
			snprintf(cfg->xdp_if, sizeof(cfg->xdp_if), "%s", optarg);
			break;
		case O_STAGGER:
			cfg->login_stagger_ms = parse_pos_double(name, optarg);
			cfg->async_login = true;
			break;
		case O_RELOGIN:
			cfg->relogin_ms = parse_pos_double(name, optarg);
			cfg->async_login = true;
			break;
		case O_LOGLOGINS: cfg->log_logins = true; break;
		case O_HELP: fputs(usage, stdout); exit(0);
		}
	}
	if (optind < argc)
		die_arg(argv[optind], "unexpected argument");
	if (!have_server)
		die_arg("--server", "required");
	if (cfg->nservers > 1 && cfg->xdp_if[0])
		die_arg("--server",
			"several gateways (failover) only in kernel UDP mode, not --xdp");
	if (cfg->async_login && cfg->nservers > 1)
		die_arg("--login-stagger",
			"logins inside the run are for one gateway, not several --server");
	if (!cfg->nsess)
		die_arg("--session", "at least one session is required (or --credentials)");
	if (cfg->rate > 0 && have_window)
		die_arg("--window",
			"open loop (--rate) and closed loop (--window) exclude each other");
	if (cfg->rate <= 0 && cfg->window < cfg->batch)
		die_arg("--window", "%u is smaller than --batch %u", cfg->window, cfg->batch);
	if (!cfg->nsym)
		parse_symbols(cfg, "--symbols", sym_default);
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* This thread's time on the CPU and time spent runnable but waiting for it, in ns. */
static int schedstat(uint64_t *run, uint64_t *wait)
{
	unsigned long long r, w;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	int ok = f && fscanf(f, "%llu %llu", &r, &w) == 2;
	if (f)
		fclose(f);
	if (!ok)
		return -1;
	*run = r;
	*wait = w;
	return 0;
}

static void report(const struct config *cfg, const struct stats *st)
{
	char srv[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &cfg->server.sin_addr, srv, sizeof(srv));
	uint64_t end = st->t_last_answer > st->t_start ? st->t_last_answer : st->t_end_send;
	double secs = (double)(end - st->t_start) / 1e9;
	double send_secs = (double)(st->t_end_send - st->t_start) / 1e9;
	printf("{\"server\": \"%s:%u\", \"io\": \"%s\", \"sessions\": %u, "
	       "\"orders_per_datagram\": %u, ",
	       srv, ntohs(cfg->server.sin_port), cfg->xdp_if[0] ? "afxdp" : "udp", cfg->nsess,
	       cfg->batch);
	if (cfg->rate > 0)
		printf("\"loop\": \"open\", \"offered\": %.0f, \"window\": null, ", cfg->rate);
	else
		printf("\"loop\": \"closed\", \"offered\": null, \"window\": %u, ", cfg->window);
	printf("\"count\": %" PRIu64 ", \"sent\": %" PRIu64 ", \"datagrams\": %" PRIu64
	       ", \"answered\": %" PRIu64 ", \"lost\": %" PRIu64 ", ",
	       cfg->count, st->sent, st->datagrams, st->answered, st->sent - st->answered);
	printf("\"duration_s\": %.6f, \"send_duration_s\": %.6f, \"orders_per_s\": %.0f, "
	       "\"sent_per_s\": %.0f, ",
	       secs, send_secs, secs > 0 ? (double)st->answered / secs : 0.0,
	       send_secs > 0 ? (double)st->sent / send_secs : 0.0);
	printf("\"rtt_us\": {\"samples\": %" PRIu64
	       ", \"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, "
	       "\"p999\": %.2f, \"max\": %.2f, \"mean\": %.2f}, ",
	       st->rtt.count, us(hist_pct(&st->rtt, 50)), us(hist_pct(&st->rtt, 90)),
	       us(hist_pct(&st->rtt, 99)), us(hist_pct(&st->rtt, 99.9)), us(st->rtt.max),
	       st->rtt.count ? us(st->rtt.sum / st->rtt.count) : 0.0);
	printf("\"mix\": {\"new\": %" PRIu64 ", \"cancel\": %" PRIu64 ", \"cross\": %" PRIu64 "}, ",
	       st->new_sent, st->cancel_sent, st->cross_sent);
	printf("\"accepted\": %" PRIu64 ", \"rejected\": %" PRIu64 ", \"rejects\": {", st->accepted,
	       st->rejected);
	const char *sep = "";
	for (unsigned r = 0; r < LG_REJ_MAX; r++)
		if (st->rej[r]) {
			printf("%s\"%s\": %" PRIu64, sep, reject_name(r), st->rej[r]);
			sep = ", ";
		}
	printf("}, \"fills\": %" PRIu64 ", \"filled_qty\": %" PRIu64 ", \"cancelled\": %" PRIu64
	       ", \"cancels\": {",
	       st->fills, st->filled_qty, st->cancelled);
	sep = "";
	for (unsigned r = 0; r < LG_CXL_MAX; r++)
		if (st->cxl[r]) {
			printf("%s\"%s\": %" PRIu64, sep, cancel_name(r), st->cxl[r]);
			sep = ", ";
		}
	printf("}, \"recovery\": {\"seq_gaps\": %" PRIu64 ", \"resent\": %" PRIu64
	       ", \"rtx_requests\": %" PRIu64 ", \"out_gaps\": %" PRIu64 ", \"out_lost\": %" PRIu64
	       ", \"unrecoverable\": %" PRIu64 ", \"send_errors\": %" PRIu64 "}, ",
	       st->seq_gaps, st->resent, st->rtx_requests, st->out_gaps, st->out_lost,
	       st->unrecoverable, st->send_errors);
	printf("\"logins\": {\"sent\": %" PRIu64 ", \"accepted\": %" PRIu64
	       ", \"rejected\": %" PRIu64 ", \"retries\": %" PRIu64 ", \"rebinds\": %" PRIu64
	       ", \"attempts\": [",
	       st->logins_sent, st->logins_accepted, st->logins_rejected, st->login_retries,
	       st->login_rebinds);
	for (unsigned i = 0; i < st->nlogin_log; i++) {
		const struct login_rec *r = &st->login_log[i];
		printf("%s[%u, %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %d]", i ? ", " : "", r->sid,
		       r->started_ns, r->sent_ns, r->done_ns, r->result);
	}
	printf("]}, \"login_rebinds\": %" PRIu64 ", ", st->login_rebinds);
	printf("\"rx_datagrams\": {\"xsk\": %" PRIu64 ", \"socket\": %" PRIu64 "}, ", st->rx_xsk,
	       st->rx_socket);
	printf("\"xsk_drops\": {\"rx_dropped\": %" PRIu64 ", \"rx_ring_full\": %" PRIu64
	       ", \"fill_ring_empty\": %" PRIu64 "}, ",
	       st->xsk_stats[0], st->xsk_stats[1], st->xsk_stats[2]);
	/* Share of the run the generator spent sending and receiving (the rest it spun waiting):
	 * near 100 means the generator itself was the bottleneck. */
	uint64_t run_ns =
	    (st->t_end_send > st->t_last_answer ? st->t_end_send : st->t_last_answer) - st->t_start;
	printf("\"generator_busy_pct\": %.1f, ",
	       run_ns ? 100.0 * (double)st->busy_ns / (double)run_ns : 0.0);
	/* Share of the run the generator was runnable but another task had its core: on a shared
	 * machine this, not the wire path, makes the millisecond tails. */
	if (st->wait_ns != UINT64_MAX && st->cpu_ns + st->wait_ns)
		printf("\"generator_cpu_wait_pct\": %.1f, ",
		       100.0 * (double)st->wait_ns / (double)(st->cpu_ns + st->wait_ns));
	else
		printf("\"generator_cpu_wait_pct\": null, ");
	printf("\"unmatched\": %" PRIu64 ", \"duplicates\": %" PRIu64
	       ", \"bad_datagrams\": %" PRIu64 ", \"slot_stalls\": %" PRIu64
	       ", \"logged_out_by_gateway\": %" PRIu64 ", \"failovers\": %" PRIu64
	       ", \"failover_ms_max\": %.1f}\n",
	       st->unmatched, st->duplicates, st->bad_datagrams, st->slot_stalls, st->logged_out,
	       st->failovers, (double)st->failover_ns_max / 1e6);
}

volatile sig_atomic_t lg_stop;

static void on_signal(int sig)
{
	(void)sig;
	lg_stop++;
}

static void finish(struct config *cfg, struct stats *st)
{
	session_logout(cfg, st);
	xsk_io_stats(cfg, st->xsk_stats);
	xsk_io_close(cfg);
}

int main(int argc, char **argv)
{
	static struct config cfg;
	static struct stats st;
	parse_args(&cfg, argc, argv);
	if (cfg.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cfg.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die_arg("--cpu", "cannot pin to CPU %d: %s", cfg.cpu, strerror(errno));
	}
	for (unsigned i = 0; i < cfg.nsess; i++) {
		struct session *s = &cfg.sess[i];
		s->slots = calloc(LG_SLOTS, sizeof(*s->slots));
		s->live = calloc(LG_SLOTS, sizeof(*s->live));
		s->ring = calloc(LG_RING, XE_MSG_SIZE);
		s->out_have = calloc(LG_OUT_RING / 8, 1);
		s->out_buf = calloc(LG_OUT_RING, XE_MSG_SIZE);
		if (!s->slots || !s->live || !s->ring || !s->out_have || !s->out_buf) {
			fprintf(stderr, "xdpex-loadgen: out of memory\n");
			return 1;
		}
		s->next_cl = 1;
		int err = session_open(&cfg, s);
		if (err) {
			fprintf(stderr, "xdpex-loadgen: session %u: socket: %s\n", s->id,
				strerror(-err));
			return 1;
		}
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (cfg.xdp_if[0] && xsk_io_open(&cfg)) {
		xsk_io_close(&cfg);
		return 1;
	}
	for (unsigned i = 0; i < cfg.nsess && !cfg.async_login; i++) {
		struct session *s = &cfg.sess[i];
		int r = session_login(&cfg, s);
		/* Its flow landed on a gateway queue that does not own the session: another
		 * source port, until one lands on the session's queue. */
		while (r == XE_LOGIN_BOUND_ELSEWHERE && s->rebinds < LG_REBIND_MAX &&
		       !session_reopen(&cfg, s)) {
			s->rebinds++;
			st.login_rebinds++;
			r = session_login(&cfg, s);
		}
		if (r == 0)
			s->ever_logged_in = true;
		/* Several gateways: the first that answers leads (a standby says nothing); round
		 * after round for up to 6 s, as long as an election may take. */
		for (unsigned k = 1; cfg.nservers > 1 && k < 20 * cfg.nservers && r == -ETIMEDOUT;
		     k++) {
			s->srv = k % cfg.nservers;
			r = session_retarget(&cfg, s);
			if (!r)
				r = session_login(&cfg, s);
		}
		if (r < 0) {
			fprintf(stderr, "xdpex-loadgen: session %u: login failed: %s\n", s->id,
				r == -ETIMEDOUT ? "no answer from the gateway in 6 s"
						: strerror(-r));
			finish(&cfg, &st);
			return 3;
		}
		if (r > 0) {
			fprintf(stderr, "xdpex-loadgen: session %u: login rejected: %s\n", s->id,
				login_reason_name((unsigned)r));
			finish(&cfg, &st);
			return 3;
		}
	}
	uint64_t run0, wait0, run1, wait1;
	bool sched = !schedstat(&run0, &wait0);
	run_load(&cfg, &st);
	sched = sched && !schedstat(&run1, &wait1);
	st.cpu_ns = sched ? run1 - run0 : 0;
	st.wait_ns = sched ? wait1 - wait0 : UINT64_MAX;
	finish(&cfg, &st);
	report(&cfg, &st);
	return 0;
}
