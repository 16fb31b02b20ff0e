// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdpex-xdp: the operator's and the tests' handle on xdp_steer, built on libxdpex_xdp.
 *
 *   testrun  [config]         load xdp_steer (no interface), configure it, run each packet read
 *                             from stdin (hex, one a line; '#' comments) through
 *                             BPF_PROG_TEST_RUN and print one JSON line per packet: verdict and
 *                             the summed counters after it
 *   usertest [config]         the same through the user-space filter (xdpex_filter.h: the same
 *                             checks, as the DPDK backend runs them); a valid datagram has, as
 *                             in testrun, nobody to go to: XDP_PASS, no_sock_cnt
 *   attach   --ifname IF [--mode auto|native|skb] [--xsk-queue Q] [config]
 *                             load, pin, attach; print "attached IF MODE" and hold until
 *                             SIGINT/SIGTERM, then detach and unpin (what the dataplane does).
 *                             --xsk-queue: also bind a test AF_XDP socket (copy mode) to queue
 *                             Q, put it in xsks_map, print "xsk Q bound", then "frame LEN HEX"
 *                             for every frame xdp_steer redirects into it
 *   counters                  print the pinned counters as one JSON object
 *   allow    add|del CIDR | set [CIDR...] | list     edit, replace or show the pinned allowlist
 *   rate     --pps N [--burst B]      set the per-source limit (N 0 = unlimited)
 *   bind     SESSION IP:PORT | unbind SESSION     bind a session to its source address
 *
 * config: --port P (repeatable), --allow CIDR (repeatable), --pps N --burst B,
 * --bind SESSION=IP:PORT (repeatable), --pass-frags. Common: --pin-dir D (default
 * /sys/fs/bpf/xdpex; testrun does not pin unless given), --netns NAME (enter the network
 * namespace /run/netns/NAME first; mounts, and so bpffs pins, stay those of the caller).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <xdpex/proto.h>

#include "xdpex_filter.h"
#include "xdpex_xdp.h"
#include "test_xsk.h"

#define MAX_LIST 64
#define MAX_PKT 4096

struct bind_arg {
	__u32 session;
	__u32 addr;
	__u16 port;
};

struct args {
	const char *pin_dir;
	const char *ifname;
	enum xdpex_mode mode;
	__u16 ports[XDPEX_MAX_PORTS];
	int nports;
	struct xdpex_lpm_key allow[MAX_LIST];
	int nallow;
	struct bind_arg binds[MAX_LIST];
	int nbinds;
	long long pps, burst; /* -1: not given */
	int pass_frags;
	int repeat;
	int xsk_queue; /* -1: none */
	int argc; /* positional arguments after the subcommand */
	char **argv;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int fail(const char *fmt, const char *what)
{
	fprintf(stderr, "xdpex-xdp: ");
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	return 2;
}

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *out > max)
		return -EINVAL;
	return 0;
}

static int parse_cidr(const char *s, struct xdpex_lpm_key *k)
{
	char buf[64], *slash;
	unsigned long long plen = 32;
	struct in_addr a;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		if (parse_u64(slash + 1, 32, &plen))
			return -EINVAL;
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -EINVAL;
	k->addr = a.s_addr;
	k->prefixlen = plen;
	return 0;
}

static int parse_ipport(const char *s, __u32 *addr, __u16 *port)
{
	char buf[64], *colon;
	unsigned long long p;
	struct in_addr a;

	snprintf(buf, sizeof(buf), "%s", s);
	colon = strrchr(buf, ':');
	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (inet_pton(AF_INET, buf, &a) != 1 || parse_u64(colon + 1, 65535, &p) || !p)
		return -EINVAL;
	*addr = a.s_addr;
	*port = htons(p);
	return 0;
}

static int parse_bind(const char *s, struct bind_arg *b)
{
	unsigned long long sid;
	char buf[64], *eq;

	snprintf(buf, sizeof(buf), "%s", s);
	eq = strchr(buf, '=');
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	if (parse_u64(buf, UINT32_MAX, &sid) || !sid)
		return -EINVAL;
	b->session = sid;
	return parse_ipport(eq + 1, &b->addr, &b->port);
}

static int enter_netns(const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "xdpex-xdp: cannot enter network namespace %s: %s\n", name,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"pin-dir", required_argument, NULL, 'd'},
	    {"ifname", required_argument, NULL, 'i'},
	    {"mode", required_argument, NULL, 'm'},
	    {"port", required_argument, NULL, 'p'},
	    {"allow", required_argument, NULL, 'a'},
	    {"pps", required_argument, NULL, 'r'},
	    {"burst", required_argument, NULL, 'b'},
	    {"bind", required_argument, NULL, 's'},
	    {"pass-frags", no_argument, NULL, 'f'},
	    {"repeat", required_argument, NULL, 'n'},
	    {"netns", required_argument, NULL, 'N'},
	    {"xsk-queue", required_argument, NULL, 'q'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long long v;
	int c;

	a->pps = a->burst = -1;
	a->repeat = 1;
	a->xsk_queue = -1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': a->pin_dir = optarg; break;
		case 'i': a->ifname = optarg; break;
		case 'm':
			if (!strcmp(optarg, "auto"))
				a->mode = XDPEX_MODE_AUTO;
			else if (!strcmp(optarg, "native"))
				a->mode = XDPEX_MODE_NATIVE;
			else if (!strcmp(optarg, "skb"))
				a->mode = XDPEX_MODE_SKB;
			else
				return fail("--mode %s: expected auto, native or skb", optarg);
			break;
		case 'p':
			if (a->nports == XDPEX_MAX_PORTS || parse_u64(optarg, 65535, &v) || !v)
				return fail("--port %s: expected 1..65535, at most 8 ports",
					    optarg);
			a->ports[a->nports++] = v;
			break;
		case 'a':
			if (a->nallow == MAX_LIST || parse_cidr(optarg, &a->allow[a->nallow]))
				return fail("--allow %s: expected A.B.C.D[/LEN]", optarg);
			a->nallow++;
			break;
		case 'r':
			if (parse_u64(optarg, 1000000000ULL, &v))
				return fail("--pps %s: expected 0..1000000000", optarg);
			a->pps = v;
			break;
		case 'b':
			if (parse_u64(optarg, UINT32_MAX, &v) || !v)
				return fail("--burst %s: expected 1..4294967295", optarg);
			a->burst = v;
			break;
		case 's':
			if (a->nbinds == MAX_LIST || parse_bind(optarg, &a->binds[a->nbinds]))
				return fail("--bind %s: expected SESSION=A.B.C.D:PORT", optarg);
			a->nbinds++;
			break;
		case 'f': a->pass_frags = 1; break;
		case 'n':
			if (parse_u64(optarg, 100000000, &v) || !v)
				return fail("--repeat %s: expected 1..100000000", optarg);
			a->repeat = v;
			break;
		case 'q':
			if (parse_u64(optarg, XDPEX_MAX_QUEUES - 1, &v))
				return fail("--xsk-queue %s: expected 0..63", optarg);
			a->xsk_queue = v;
			break;
		case 'N':
			if (enter_netns(optarg))
				return 2;
			break;
		default: return 2;
		}
	}
	a->argc = argc - optind;
	a->argv = argv + optind;
	return 0;
}

/* Apply --allow/--pps/--burst/--bind/--pass-frags to the maps. */
static int configure(const struct xdpex_maps *m, const struct args *a)
{
	int err = 0;

	for (int i = 0; i < a->nallow && !err; i++)
		err = xdpex_allow_add(m, a->allow[i].addr, a->allow[i].prefixlen);
	if (!err && a->pps >= 0)
		err = xdpex_set_rate(m, a->pps, a->burst >= 0 ? a->burst : 1);
	for (int i = 0; i < a->nbinds && !err; i++)
		err =
		    xdpex_bind_session(m, a->binds[i].session, a->binds[i].addr, a->binds[i].port);
	if (!err && a->pass_frags)
		err = xdpex_set_flags(m, XDPEX_CFG_PASS_FRAGS);
	return err;
}

static void print_counters(FILE *f, const __u64 *c)
{
	fputc('{', f);
	for (int i = 0; i < XDPEX_CNT_MAX; i++)
		fprintf(f, "%s\"%s\": %llu", i ? ", " : "", xdpex_cnt_name(i),
			(unsigned long long)c[i]);
	fputc('}', f);
}

static const char *verdict_name(__u32 v)
{
	static const char *const names[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
					    "XDP_REDIRECT"};

	return v < sizeof(names) / sizeof(names[0]) ? names[v] : "unknown";
}

static int hex_decode(char *line, unsigned char *out, size_t max)
{
	size_t n = 0;
	int hi = -1;

	for (char *p = line; *p; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
			continue;
		else
			return -EINVAL;
		if (hi < 0) {
			hi = d;
			continue;
		}
		if (n == max)
			return -E2BIG;
		out[n++] = hi << 4 | d;
		hi = -1;
	}
	return hi >= 0 ? -EINVAL : (int)n;
}

static int cmd_testrun(struct args *a)
{
	struct xdpex_xdp_opts o = {
	    .pin_dir = a->pin_dir ? a->pin_dir : "", .ports = a->ports, .nports = a->nports};
	unsigned char pkt[MAX_PKT];
	struct xdpex_xdp *x;
	__u64 cnt[XDPEX_CNT_MAX];
	char *line = NULL;
	size_t cap = 0;
	int err, n, idx = 0, lineno = 0, rc = 0;

	err = xdpex_xdp_open(&x, &o);
	if (err)
		return 1;
	err = configure(xdpex_xdp_maps(x), a);
	if (err)
		goto cleanup;
	while (getline(&line, &cap, stdin) > 0) {
		LIBBPF_OPTS(bpf_test_run_opts, t, .repeat = a->repeat);

		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' || line[0] == '#')
			continue;
		n = hex_decode(line, pkt, sizeof(pkt));
		if (n <= 0) {
			fprintf(stderr, "xdpex-xdp: stdin line %d: %s\n", lineno,
				n == -E2BIG ? "packet above 4096 bytes" : "not a hex packet");
			rc = 1;
			break;
		}
		t.data_in = pkt;
		t.data_size_in = n;
		err = bpf_prog_test_run_opts(xdpex_xdp_prog_fd(x), &t);
		if (err) {
			fprintf(stderr, "xdpex-xdp: BPF_PROG_TEST_RUN on packet %d: %s\n", idx,
				strerror(errno));
			rc = 1;
			break;
		}
		err = xdpex_read_counters(xdpex_xdp_maps(x), cnt);
		if (err)
			goto cleanup;
		printf("{\"packet\": %d, \"len\": %d, \"verdict\": \"%s\", \"retval\": %u, "
		       "\"duration_ns\": %u, \"counters\": ",
		       idx++, n, verdict_name(t.retval), t.retval, t.duration);
		print_counters(stdout, cnt);
		printf("}\n");
		fflush(stdout);
	}
cleanup:
	free(line);
	xdpex_xdp_close(x);
	return err ? 1 : rc;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* testrun's loop over the user-space filter. */
static int cmd_usertest(struct args *a)
{
	static const __u16 default_port = XE_DEFAULT_PORT;
	struct xdpex_filter_cfg *slot = NULL, *c;
	struct xdpex_lpm_key keys[MAX_LIST];
	__u16 ports[XDPEX_MAX_PORTS];
	unsigned char pkt[MAX_PKT];
	struct xdpex_filter *f;
	int n, idx = 0, lineno = 0, rc = 0, nports = a->nports ? a->nports : 1;
	char *line = NULL;
	size_t cap = 0;

	for (int i = 0; i < nports; i++)
		ports[i] = htons(a->nports ? a->ports[i] : default_port);
	for (int i = 0; i < a->nallow; i++)
		if (xdpex_allow_key(a->allow[i].addr, a->allow[i].prefixlen, &keys[i]))
			return 1;
	if (a->pps >= 0 && xdpex_rate_check(a->pps, a->burst >= 0 ? a->burst : 1))
		return 1;
	c = xdpex_filter_cfg_new(ports, nports, a->pass_frags ? XDPEX_CFG_PASS_FRAGS : 0, keys,
				 a->nallow, a->pps > 0 ? a->pps : 0, a->burst >= 0 ? a->burst : 1);
	if (!c) {
		fprintf(stderr, "xdpex-xdp: filter configuration: %s\n", strerror(errno));
		return 1;
	}
	xdpex_filter_publish(&slot, c);
	f = xdpex_filter_new(&slot);
	if (!f) {
		xdpex_filter_cfg_free_all(&slot);
		return fail("%s", "out of memory for the filter tables");
	}
	for (int i = 0; i < a->nbinds; i++)
		xdpex_filter_bind(f, a->binds[i].session, a->binds[i].addr, a->binds[i].port);
	while (getline(&line, &cap, stdin) > 0) {
		__u64 cnt[XDPEX_CNT_MAX] = {0};
		__u32 reason;
		int v;

		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' || line[0] == '#')
			continue;
		n = hex_decode(line, pkt, sizeof(pkt));
		if (n <= 0) {
			fprintf(stderr, "xdpex-xdp: stdin line %d: %s\n", lineno,
				n == -E2BIG ? "packet above 4096 bytes" : "not a hex packet");
			rc = 1;
			break;
		}
		v = xdpex_filter_run(f, pkt, (uint32_t)n, now_ns(), &reason);
		if (v == XDPEX_V_OURS)
			xdpex_filter_count(f, XDPEX_CNT_NO_SOCK);
		xdpex_filter_counters(f, cnt);
		printf("{\"packet\": %d, \"len\": %d, \"verdict\": \"%s\", \"counters\": ", idx++,
		       n, v == XDPEX_V_DROP ? "XDP_DROP" : "XDP_PASS");
		print_counters(stdout, cnt);
		printf("}\n");
		fflush(stdout);
	}
	free(line);
	xdpex_filter_free(f);
	xdpex_filter_cfg_free_all(&slot);
	return rc;
}

static void print_frame(const unsigned char *frame, __u32 len, void *arg)
{
	(void)arg;
	printf("frame %u ", len);
	for (__u32 i = 0; i < len; i++)
		printf("%02x", frame[i]);
	putchar('\n');
	fflush(stdout);
}

/* Bind the test AF_XDP socket to the queue and hand it to xdp_steer. */
static int open_xsk(struct xdpex_xdp *x, const struct args *a, struct test_xsk **t)
{
	int err = test_xsk_open(t, a->ifname, a->xsk_queue);

	if (err) {
		fprintf(stderr, "xdpex-xdp: AF_XDP socket on %s queue %d: %s\n", a->ifname,
			a->xsk_queue, strerror(-err));
		return err;
	}
	err = xdpex_set_xsk(xdpex_xdp_maps(x), a->xsk_queue, test_xsk_fd(*t));
	if (!err) {
		printf("xsk %d bound\n", a->xsk_queue);
		fflush(stdout);
	}
	return err;
}

static int cmd_attach(struct args *a)
{
	struct xdpex_xdp_opts o = {.pin_dir = a->pin_dir, .ports = a->ports, .nports = a->nports};
	struct sigaction sa = {.sa_handler = on_signal};
	struct test_xsk *xsk = NULL;
	sigset_t block, orig;
	struct xdpex_xdp *x;
	int ifindex, err;

	if (!a->ifname)
		return fail("attach: --ifname%s is required", "");
	ifindex = if_nametoindex(a->ifname);
	if (!ifindex)
		return fail("attach: no interface %s", a->ifname);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	err = xdpex_xdp_open(&x, &o);
	if (err)
		return 1;
	err = configure(xdpex_xdp_maps(x), a);
	if (!err)
		err = xdpex_xdp_attach(x, ifindex, a->mode);
	if (!err) {
		printf("attached %s %s\n", a->ifname, xdpex_mode_name(xdpex_xdp_mode(x)));
		fflush(stdout);
	}
	if (!err && a->xsk_queue >= 0)
		err = open_xsk(x, a, &xsk);
	if (!err && !xsk) {
		/* Signals blocked between the test and the wait, so none can slip in between. */
		sigprocmask(SIG_BLOCK, &block, &orig);
		while (!stop)
			sigsuspend(&orig);
		sigprocmask(SIG_SETMASK, &orig, NULL);
	}
	while (!err && xsk && !stop) {
		err = test_xsk_poll(xsk, 100, print_frame, NULL);
		err = err < 0 ? err : 0;
	}
	if (xsk)
		xdpex_clear_xsk(xdpex_xdp_maps(x), a->xsk_queue);
	test_xsk_close(xsk);
	xdpex_xdp_close(x);
	return err ? 1 : 0;
}

/* Run fn on the pinned maps: first with m NULL (check the arguments only), then for real. */
static int with_pinned(struct args *a, int (*fn)(const struct xdpex_maps *, struct args *))
{
	struct xdpex_maps m;
	int err = fn(NULL, a);

	if (err)
		return err;
	if (xdpex_maps_open_pinned(&m, a->pin_dir))
		return 1;
	err = fn(&m, a);
	xdpex_maps_close(&m);
	return err;
}

static int do_counters(const struct xdpex_maps *m, struct args *a)
{
	__u64 cnt[XDPEX_CNT_MAX];

	if (a->argc)
		return fail("counters: unexpected argument %s", a->argv[0]);
	if (!m)
		return 0;
	if (xdpex_read_counters(m, cnt))
		return 1;
	print_counters(stdout, cnt);
	putchar('\n');
	return 0;
}

static int do_allow(const struct xdpex_maps *m, struct args *a)
{
	struct xdpex_lpm_key keys[XDPEX_MAX_ALLOW], k;
	char buf[INET_ADDRSTRLEN];
	int n, err;

	if (a->argc == 1 && !strcmp(a->argv[0], "list")) {
		if (!m)
			return 0;
		n = xdpex_allow_list(m, keys, XDPEX_MAX_ALLOW);
		for (int i = 0; i < n && i < XDPEX_MAX_ALLOW; i++)
			printf("%s/%u\n", inet_ntop(AF_INET, &keys[i].addr, buf, sizeof(buf)),
			       keys[i].prefixlen);
		return 0;
	}
	if (a->argc >= 1 && !strcmp(a->argv[0], "set")) {
		if (a->argc - 1 > XDPEX_MAX_ALLOW)
			return fail("allow set: more than %s prefixes", "4096");
		for (int i = 1; i < a->argc; i++)
			if (parse_cidr(a->argv[i], &keys[i - 1]))
				return fail("allow set: %s: expected A.B.C.D[/LEN]", a->argv[i]);
		if (!m)
			return 0;
		return xdpex_allow_replace(m, keys, a->argc - 1) ? 1 : 0;
	}
	if (a->argc != 2 || (strcmp(a->argv[0], "add") && strcmp(a->argv[0], "del")))
		return fail("allow: expected add CIDR, del CIDR, set [CIDR...] or list%s", "");
	if (parse_cidr(a->argv[1], &k))
		return fail("allow: %s: expected A.B.C.D[/LEN]", a->argv[1]);
	if (!m)
		return 0;
	if (!strcmp(a->argv[0], "add"))
		err = xdpex_allow_add(m, k.addr, k.prefixlen);
	else
		err = xdpex_allow_del(m, k.addr, k.prefixlen);
	if (err == -ENOENT)
		return fail("allow del: %s is not in the allowlist", a->argv[1]);
	return err ? 1 : 0;
}

static int do_rate(const struct xdpex_maps *m, struct args *a)
{
	if (a->pps < 0)
		return fail("rate: --pps N is required (0 = unlimited)%s", "");
	if (!m)
		return 0;
	return xdpex_set_rate(m, a->pps, a->burst >= 0 ? a->burst : 1) ? 1 : 0;
}

static int do_bind(const struct xdpex_maps *m, struct args *a)
{
	unsigned long long sid;
	__u32 addr;
	__u16 port;

	if (a->argc != 2 || parse_u64(a->argv[0], UINT32_MAX, &sid) || !sid ||
	    parse_ipport(a->argv[1], &addr, &port))
		return fail("bind: expected SESSION A.B.C.D:PORT (session 1..2^32-1)%s", "");
	if (!m)
		return 0;
	return xdpex_bind_session(m, sid, addr, port) ? 1 : 0;
}

static int do_unbind(const struct xdpex_maps *m, struct args *a)
{
	unsigned long long sid;
	int err;

	if (a->argc != 1 || parse_u64(a->argv[0], UINT32_MAX, &sid) || !sid)
		return fail("unbind: expected SESSION%s", "");
	if (!m)
		return 0;
	err = xdpex_unbind_session(m, sid);
	if (err == -ENOENT)
		return fail("unbind: session %s is not bound", a->argv[0]);
	return err ? 1 : 0;
}

static int cmd_counters(struct args *a)
{
	return with_pinned(a, do_counters);
}
static int cmd_allow(struct args *a)
{
	return with_pinned(a, do_allow);
}
static int cmd_rate(struct args *a)
{
	return with_pinned(a, do_rate);
}
static int cmd_bind(struct args *a)
{
	return with_pinned(a, do_bind);
}
static int cmd_unbind(struct args *a)
{
	return with_pinned(a, do_unbind);
}

static const struct {
	const char *name;
	int (*fn)(struct args *a);
	const char *help;
} cmds[] = {
    {"testrun", cmd_testrun, "run hex packets from stdin through BPF_PROG_TEST_RUN"},
    {"usertest", cmd_usertest, "run hex packets from stdin through the user-space filter"},
    {"attach", cmd_attach, "load, pin and attach to --ifname until SIGINT/SIGTERM"},
    {"counters", cmd_counters, "print the pinned counters (JSON)"},
    {"allow", cmd_allow, "add CIDR | del CIDR | set [CIDR...] | list: the pinned allowlist"},
    {"rate", cmd_rate, "--pps N [--burst B]: the pinned per-source rate limit"},
    {"bind", cmd_bind, "SESSION IP:PORT: bind a session to its source address"},
    {"unbind", cmd_unbind, "SESSION: remove a session's binding"},
};

static int usage(void)
{
	fprintf(stderr, "usage: xdpex-xdp COMMAND [options] (see the top of xdpex_xdp_tool.c)\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "  %-9s %s\n", cmds[i].name, cmds[i].help);
	return 2;
}

int main(int argc, char **argv)
{
	struct args a = {};
	int err;

	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		err = parse_args(argc - 1, argv + 1, &a);
		if (err)
			return err;
		return cmds[i].fn(&a);
	}
	fprintf(stderr, "xdpex-xdp: unknown command '%s'\n", argv[1]);
	return usage();
}
