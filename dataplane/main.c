/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpexd: the xdpex dataplane daemon. Parses the command line, loads the configuration, recovers
 * every queue's journal, sets up the --mode backend and opens each shard's ports (network and
 * entry) and the control socket, prints what it runs with, starts one thread per queue and waits
 * for SIGINT/SIGTERM, then stops receiving, flushes the journals, closes the ports and tears the
 * backend down (XDP detached, pins and sockets removed). docs/dataplane.md is the contract.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xdpexd.h"

/* --socket-group: a group name or number, which must exist. */
static unsigned group_id(const char *s)
{
	struct group *g = getgrnam(s);
	char *end;
	unsigned long v;

	if (g)
		return (unsigned)g->gr_gid;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s && !*end && !errno && v < 1u << 31 && getgrgid((gid_t)v))
		return (unsigned)v;
	fprintf(stderr, "xdpexd: error: --socket-group %s: no such group\n", s);
	exit(2);
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: xdpexd --mode afxdp|udp|dpdk --config FILE --journal-dir DIR [options]\n"
	    "              [-- backend arguments (dpdk: EAL arguments)]\n"
	    "  --iface IF              interface (afxdp: required; udp: SO_BINDTODEVICE;\n"
	    "                          dpdk: the name the port is known by in logs)\n"
	    "  --queues LIST           rx queues, e.g. 0 or 0,1 (udp: 0..n-1)        [0]\n"
	    "  --addr A.B.C.D          udp: address to bind                          [0.0.0.0]\n"
	    "  --port N                gateway UDP port                              [9000]\n"
	    "  --durability none|fsync|replicated|replicated-fsync\n"
	    "                          when an answer may leave (docs/ha.md)        [none]\n"
	    "  --repl-listen A.B.C.D:PORT  standbys connect here (queue i: PORT + i)\n"
	    "  --repl-from A.B.C.D:PORT    the primary a standby follows\n"
	    "  --repl-missing hold|local   replicated, no standby: hold answers or go on  [hold]\n"
	    "  --role primary|standby  role at start                                 [primary]\n"
	    "  --ha                    start as a standby; as primary answer only while a\n"
	    "                          lease granted on the control socket runs (docs/ha.md)\n"
	    "  --name NAME             this node in logs and replication         [hostname]\n"
	    "  --feed A.B.C.D:PORT[@MAC]  send the market-data feed there (a multicast group\n"
	    "                          or a subscriber; repeatable, 8 at most; "
	    "docs/marketdata.md)\n"
	    "  --ctl-socket PATH       control socket            [/run/xdpex/ctl.sock]\n"
	    "  --entry-socket PATH     local order-entry socket  [/run/xdpex/entry.sock]\n"
	    "  --socket-mode 0600|0660 both sockets' mode (0660: the group may connect) [0660]\n"
	    "  --socket-group GROUP    both sockets' group (name or number) [the process's]\n"
	    "  --pin-dir DIR           afxdp, udp --xdp-filter: bpffs pin directory\n"
	    "                          [/sys/fs/bpf/xdpex]\n"
	    "  --xdp-filter            udp: attach the XDP program to --iface as a filter in\n"
	    "                          front of the socket (header checks, allowlist, session\n"
	    "                          bindings, per-source rate; the rest passes to the kernel)\n"
	    "  --poll spin|busy|sleep  receive loop                                  [spin]\n"
	    "  --busy-usec N           SO_BUSY_POLL microseconds                     [20]\n"
	    "  --busy-budget N         SO_BUSY_POLL_BUDGET                           [64]\n"
	    "  --xdp-mode auto|native|generic                                        [auto]\n"
	    "  --bind-mode auto|zerocopy|copy                                        [auto]\n"
	    "  --frames N              afxdp: UMEM frames per queue, power of two    [16384]\n"
	    "  --batch N               datagrams per rx batch, 1..256                [64]\n"
	    "  --segment-mb N          journal segment size                          [256]\n"
	    "  --journal-reserve-mb N  journal space reserved and mapped at start,\n"
	    "                          ahead of the tail (at most the segment)       [0]\n"
	    "  --journal-ahead-mb N    with --cpus: journal space kept ready ahead of\n"
	    "                          the tail by a thread off the queue cpus       [64]\n"
	    "  --cpus LIST             pin queue thread i to the i-th cpu of LIST\n"
	    "  --netns NAME            run in network namespace /run/netns/NAME\n"
	    "  --exit-with-parent      stop cleanly (as on SIGTERM) when the parent process dies\n"
	    "  -v, --verbose           debug log lines\n");
}

static int pick(const char *opt, const char *v, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(v, names[i]))
			return i;
	fprintf(stderr, "xdpexd: error: %s %s: expected one of", opt, v);
	for (int i = 0; names[i]; i++)
		fprintf(stderr, " %s", names[i]);
	fprintf(stderr, "\n");
	exit(2);
}

static const struct xd_backend *backend(const char *name)
{
	const struct xd_backend *be = xd_backend_find(name);

	if (be)
		return be;
	fprintf(stderr, "xdpexd: error: --mode %s: expected one of", name);
	for (int i = 0; xd_backends[i]; i++)
		fprintf(stderr, " %s", xd_backends[i]->name);
	fprintf(stderr, "\n");
	exit(2);
}

static long num(const char *opt, const char *v, long lo, long hi)
{
	char *end;
	long x = strtol(v, &end, 10);

	if (!*v || *end || x < lo || x > hi) {
		fprintf(stderr, "xdpexd: error: %s %s: expected an integer in %ld..%ld\n", opt, v,
			lo, hi);
		exit(2);
	}
	return x;
}

static int parse_list(const char *opt, const char *v, int *out, int max)
{
	char *copy = strdup(v), *save = NULL, *tok;
	int n = 0;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max) {
			fprintf(stderr, "xdpexd: error: %s %s: at most %d entries\n", opt, v, max);
			exit(2);
		}
		out[n] = (int)num(opt, tok, 0, 4095);
		for (int i = 0; i < n; i++)
			if (out[i] == out[n]) {
				fprintf(stderr, "xdpexd: error: %s %s: %d given twice\n", opt, v,
					out[n]);
				exit(2);
			}
		n++;
	}
	free(copy);
	if (!n) {
		fprintf(stderr, "xdpexd: error: %s: empty list\n", opt);
		exit(2);
	}
	return n;
}

/* --netns NAME: join /run/netns/NAME before anything is opened. Unlike `ip netns exec` this keeps
 * the host's mount namespace, so bpffs stays at /sys/fs/bpf for the XDP pins. */
static void enter_netns(const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "xdpexd: error: --netns %s: %s\n", name, strerror(errno));
		exit(2);
	}
	close(fd);
}

static void parse_args(int argc, char **argv, struct xd_opts *o)
{
	static const char *const durs[] = {"none", "fsync", "replicated", "replicated-fsync", NULL};
	static const char *const missing[] = {"hold", "local", NULL};
	static const char *const roles[] = {"primary", "standby", NULL};
	static const char *const polls[] = {"spin", "busy", "sleep", NULL};
	static const char *const xmodes[] = {"auto", "native", "generic", NULL};
	static const char *const bmodes[] = {"auto", "zerocopy", "copy", NULL};
	static const struct option lo[] = {
	    {"mode", required_argument, 0, 'm'},
	    {"iface", required_argument, 0, 'i'},
	    {"queues", required_argument, 0, 'q'},
	    {"addr", required_argument, 0, 'a'},
	    {"port", required_argument, 0, 'p'},
	    {"config", required_argument, 0, 'c'},
	    {"journal-dir", required_argument, 0, 'j'},
	    {"durability", required_argument, 0, 'd'},
	    {"ctl-socket", required_argument, 0, 'C'},
	    {"socket-mode", required_argument, 0, 'O'},
	    {"socket-group", required_argument, 0, 'G'},
	    {"entry-socket", required_argument, 0, 'E'},
	    {"pin-dir", required_argument, 0, 'P'},
	    {"poll", required_argument, 0, 'o'},
	    {"busy-usec", required_argument, 0, 'U'},
	    {"busy-budget", required_argument, 0, 'B'},
	    {"xdp-mode", required_argument, 0, 'X'},
	    {"xdp-filter", no_argument, 0, 'x'},
	    {"bind-mode", required_argument, 0, 'Z'},
	    {"frames", required_argument, 0, 'f'},
	    {"batch", required_argument, 0, 'b'},
	    {"segment-mb", required_argument, 0, 's'},
	    {"journal-ahead-mb", required_argument, 0, 'A'},
	    {"journal-reserve-mb", required_argument, 0, 'R'},
	    {"cpus", required_argument, 0, 'k'},
	    {"netns", required_argument, 0, 'N'},
	    {"exit-with-parent", no_argument, 0, 'W'},
	    {"repl-listen", required_argument, 0, 'L'},
	    {"repl-from", required_argument, 0, 'F'},
	    {"repl-missing", required_argument, 0, 'M'},
	    {"role", required_argument, 0, 'r'},
	    {"ha", no_argument, 0, 'H'},
	    {"name", required_argument, 0, 'n'},
	    {"feed", required_argument, 0, 'e'},
	    {"verbose", no_argument, 0, 'v'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	char err[400];
	int c;

	memset(o, 0, sizeof(*o));
	o->nqueues = 1;
	o->addr = "0.0.0.0";
	o->port = XE_DEFAULT_PORT;
	o->ctl_path = "/run/xdpex/ctl.sock";
	o->entry_path = "/run/xdpex/entry.sock";
	o->sock_mode = 0660;
	o->pin_dir = "/sys/fs/bpf/xdpex";
	o->busy_usec = 20;
	o->busy_budget = 64;
	o->frames = 16384;
	o->batch = 64;
	o->segment_bytes = 256ull << 20;
	o->journal_ahead = 64ull << 20;
	while ((c = getopt_long(argc, argv, "+vh", lo, NULL)) != -1) {
		switch (c) {
		case 'm': o->backend = backend(optarg); break;
		case 'i': o->iface = optarg; break;
		case 'q':
			o->nqueues = parse_list("--queues", optarg, o->queues, XD_MAX_QUEUES);
			break;
		case 'a': o->addr = optarg; break;
		case 'p': o->port = (uint16_t)num("--port", optarg, 1, 65535); break;
		case 'c': o->config = optarg; break;
		case 'j': o->journal_dir = optarg; break;
		case 'd': {
			int d = pick("--durability", optarg, durs);

			o->durability = d & 1 ? XD_DUR_FSYNC : XD_DUR_NONE;
			o->replicated = d >= 2;
			break;
		}
		case 'L': o->repl_listen = optarg; break;
		case 'F': o->repl_from = optarg; break;
		case 'M': o->repl_missing = pick("--repl-missing", optarg, missing); break;
		case 'r': o->role = pick("--role", optarg, roles); break;
		case 'H': o->ha = true; break;
		case 'n': o->name = optarg; break;
		case 'e':
			if (o->nfeed == XD_FEED_DSTS) {
				fprintf(stderr,
					"xdpexd: error: --feed %s: at most %d destinations\n",
					optarg, XD_FEED_DSTS);
				exit(2);
			}
			o->feed[o->nfeed++] = optarg;
			break;
		case 'C': o->ctl_path = optarg; break;
		case 'E': o->entry_path = optarg; break;
		case 'O':
			if (strcmp(optarg, "0600") && strcmp(optarg, "600") &&
			    strcmp(optarg, "0660") && strcmp(optarg, "660")) {
				fprintf(stderr,
					"xdpexd: error: --socket-mode %s: 0600 (owner only) or "
					"0660 (owner and group)\n",
					optarg);
				exit(2);
			}
			o->sock_mode = (unsigned)strtoul(optarg, NULL, 8);
			break;
		case 'G':
			o->sock_gid = group_id(optarg);
			o->sock_group = true;
			break;
		case 'P': o->pin_dir = optarg; break;
		case 'o': o->poll = pick("--poll", optarg, polls); break;
		case 'U': o->busy_usec = (int)num("--busy-usec", optarg, 0, 1000000); break;
		case 'B': o->busy_budget = (int)num("--busy-budget", optarg, 1, 65535); break;
		case 'X': o->xdp_mode = pick("--xdp-mode", optarg, xmodes); break;
		case 'x': o->xdp_filter = true; break;
		case 'Z': o->bind_mode = pick("--bind-mode", optarg, bmodes); break;
		case 'f': o->frames = (uint32_t)num("--frames", optarg, 64, 1 << 20); break;
		case 'b': o->batch = (int)num("--batch", optarg, 1, XD_MAX_BATCH); break;
		case 's':
			o->segment_bytes = (uint64_t)num("--segment-mb", optarg, 1, 1 << 20) << 20;
			break;
		case 'A':
			o->journal_ahead = (uint64_t)num("--journal-ahead-mb", optarg, 0, 1 << 16)
					   << 20;
			break;
		case 'R':
			o->journal_reserve =
			    (uint64_t)num("--journal-reserve-mb", optarg, 0, 1 << 20) << 20;
			break;
		case 'k': o->ncpus = parse_list("--cpus", optarg, o->cpus, XD_MAX_QUEUES); break;
		case 'N': enter_netns(optarg); break;
		case 'W':
			/* Test harnesses and supervisors that die without stopping us. */
			if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() == 1) {
				fprintf(stderr,
					"xdpexd: error: --exit-with-parent: parent already gone\n");
				exit(2);
			}
			break;
		case 'v': o->verbose = xd_verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	/* Whatever follows `--` is the backend's (getopt stops there and leaves it). */
	if (optind < argc && !strcmp(argv[optind - 1], "--")) {
		o->backend_argv = argv + optind;
		o->backend_argc = argc - optind;
	} else if (optind < argc) {
		fprintf(stderr, "xdpexd: error: unexpected argument %s\n", argv[optind]);
		exit(2);
	}
	if (!o->backend || !o->config || !o->journal_dir) {
		fprintf(stderr, "xdpexd: error: %s is required\n",
			!o->backend  ? "--mode"
			: !o->config ? "--config"
				     : "--journal-dir");
		usage(stderr);
		exit(2);
	}
	if (o->frames & (o->frames - 1)) {
		fprintf(stderr, "xdpexd: error: --frames %u: must be a power of two\n", o->frames);
		exit(2);
	}
	if (o->replicated && !o->repl_listen) {
		fprintf(stderr,
			"xdpexd: error: --durability replicated: needs --repl-listen (where "
			"standbys connect)\n");
		exit(2);
	}
	if (o->ha)
		o->role = XD_ROLE_STANDBY; /* its agent promotes it or tells it whom to follow */
	if (!o->name) {
		static char host[64];

		o->name = gethostname(host, sizeof(host)) ? "xdpexd" : host;
	}
	if (o->xdp_filter && !o->backend->filters) {
		fprintf(stderr,
			"xdpexd: error: --xdp-filter: --mode %s has its filter already (afxdp: the "
			"XDP program; dpdk: the same checks in user space); it is for --mode udp\n",
			o->backend->name);
		exit(2);
	}
	if (o->backend->check && o->backend->check(o, err, sizeof(err))) {
		fprintf(stderr, "xdpexd: error: %s\n", err);
		exit(2);
	}
}

/* Every queue a symbol or session names must be served. */
static int check_queues(const struct xd_opts *o, const struct xd_config *cfg, char *err, size_t n)
{
	for (uint32_t i = 0; i < cfg->nsymbols; i++) {
		int q = cfg->symbols[i].queue, ok = q < 0;

		for (int k = 0; k < o->nqueues; k++)
			ok |= o->queues[k] == q;
		if (!ok)
			return snprintf(err, n,
					"config %s: symbols[%u].queue: %d is not served "
					"(--queues)",
					o->config, i, q),
			       -1;
	}
	for (uint32_t i = 0; i < cfg->nsessions; i++) {
		int q = cfg->sessions[i].queue, ok = q < 0;

		for (int k = 0; k < o->nqueues; k++)
			ok |= o->queues[k] == q;
		if (!ok)
			return snprintf(err, n,
					"config %s: sessions[%u].queue: %d is not served "
					"(--queues)",
					o->config, i, q),
			       -1;
	}
	return 0;
}

static void mkparent(const char *path)
{
	char *d = strdup(path), *slash = strrchr(d, '/');

	if (slash && slash != d) {
		*slash = 0;
		mkdir(d, 0755);
	}
	free(d);
}

/* One journal preparer per queue, kept off the cpus the queue threads are pinned to (when that
 * leaves any), so it does not take time from them. */
static void start_preparers(const struct xd_opts *o, struct xd_shard *shards)
{
	cpu_set_t set;
	int started = 0;

	/* Unpinned queue threads share every cpu with it: then the queue thread reserves as it
	 * goes, 256 KiB at a time, as cheaply as the preparer would. */
	if (!o->journal_ahead || !o->ncpus || sched_getaffinity(0, sizeof(set), &set))
		return;
	for (int i = 0; i < o->ncpus; i++)
		if (o->cpus[i] >= 0 && o->cpus[i] < CPU_SETSIZE)
			CPU_CLR(o->cpus[i], &set);
	if (!CPU_COUNT(&set))
		return;
	/* One that cannot start says so itself; its queue thread then reserves as it goes. */
	for (int i = 0; i < o->nqueues; i++)
		started += !xj_prep_start(&shards[i].journal, o->journal_ahead, &set, sizeof(set));
	if (started == o->nqueues)
		xd_log(
		    "journal: %llu MiB kept ready ahead of each queue's tail by a preparer thread "
		    "off the queue cpus",
		    (unsigned long long)(o->journal_ahead >> 20));
	else if (started)
		xd_log("journal: %llu MiB kept ready ahead of %d of %d queues' tails by a preparer "
		       "thread off the queue cpus",
		       (unsigned long long)(o->journal_ahead >> 20), started, o->nqueues);
}

static void *shard_thread(void *arg)
{
	struct xd_shard *sh = arg;
	const struct xd_opts *o = sh->opts;

	if (o->ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o->cpus[sh->index % o->ncpus], &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			xd_log("warning: q%d: cannot pin to cpu %d", sh->queue,
			       o->cpus[sh->index % o->ncpus]);
	}
	xd_shard_run(sh);
	return NULL;
}

/* The filter a backend starts with: the allowlist and rate as recovered (file, then journaled
 * changes), not only the file's. */
static struct xd_config effective_filter(const struct xd_shard *sh)
{
	struct xd_config f = {.has_allow = 1, .has_rate = 1};

	f.allow = (struct xd_prefix *)sh->allow;
	f.nallow = sh->nallow;
	f.rate_pps = sh->rate_pps;
	f.rate_burst = sh->rate_burst;
	return f;
}

int main(int argc, char **argv)
{
	static struct xd_opts o;
	static struct xd_config cfg;
	const struct xd_backend *be;
	struct xd_shard *shards = NULL;
	struct xd_config filter;
	char err[600];
	sigset_t sigs;
	int sig = 0, rc = 1, started = 0, ninit = 0, setup = 0;

	setvbuf(stderr, NULL, _IOLBF, 0);
	parse_args(argc, argv, &o);
	xd_g_opts = &o;
	be = o.backend;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (xd_config_load(o.config, &cfg, err, sizeof(err)) ||
	    check_queues(&o, &cfg, err, sizeof(err))) {
		fprintf(stderr, "xdpexd: error: %s\n", err);
		return 2;
	}
	xd_log("config %s: %u symbols, %u sessions, allowlist %u prefixes, heartbeat %u ms",
	       o.config, cfg.nsymbols, cfg.nsessions, cfg.nallow, cfg.heartbeat_ms);
	xd_log(o.durability == XD_DUR_FSYNC
		   ? "durability fsync: acknowledged orders survive a crash and a power loss "
		     "(one fdatasync per batch)"
		   : "durability none: acknowledged orders survive a crash of xdpexd, not a "
		     "power loss");
	if (o.replicated)
		xd_log("durability replicated: an answer leaves only once a standby has its batch, "
		       "so acknowledged orders also survive the loss of this host; with no standby "
		       "%s",
		       o.repl_missing == XD_MISSING_HOLD ? "answers are held (--repl-missing hold)"
							 : "answers leave on the local journal "
							   "(--repl-missing local)");
	if (o.ha || o.role == XD_ROLE_STANDBY)
		xd_log("role standby (%s)%s%s", o.name, o.repl_from ? ": following " : "",
		       o.repl_from ? o.repl_from : "");
	if (mkdir(o.journal_dir, 0700) && errno != EEXIST) {
		fprintf(stderr, "xdpexd: error: --journal-dir %s: %s\n", o.journal_dir,
			strerror(errno));
		return 1;
	}
	shards = calloc((size_t)o.nqueues, sizeof(*shards));
	if (!shards)
		return 1;
	for (; ninit < o.nqueues; ninit++) {
		if (xd_shard_init(&shards[ninit], ninit, o.queues[ninit], &o, &cfg, err,
				  sizeof(err))) {
			fprintf(stderr, "xdpexd: error: %s\n", err);
			ninit++; /* partly set up: freed below */
			goto out;
		}
	}
	for (int i = 0; i < o.nqueues; i++) {
		if (xj_reserve(&shards[i].journal, o.journal_reserve)) {
			fprintf(stderr,
				"xdpexd: error: --journal-reserve-mb %llu: journal %s/q%d "
				"(see the line above)\n",
				(unsigned long long)(o.journal_reserve >> 20), o.journal_dir,
				shards[i].queue);
			goto out;
		}
	}
	start_preparers(&o, shards);
	filter = effective_filter(&shards[0]);
	setup = 1; /* a failed setup may have done part of it: teardown undoes that part */
	if (be->setup && be->setup(&o, &filter, err, sizeof(err))) {
		fprintf(stderr, "xdpexd: error: %s\n", err);
		goto out;
	}
	for (int i = 0; i < o.nqueues; i++) {
		char path[PATH_MAX];

		if (i == 0)
			snprintf(path, sizeof(path), "%s", o.entry_path);
		else
			snprintf(path, sizeof(path), "%s.q%d", o.entry_path, o.queues[i]);
		mkparent(path);
		if (xd_shard_open_ports(&shards[i], path, err, sizeof(err))) {
			fprintf(stderr, "xdpexd: error: %s\n", err);
			goto out;
		}
	}
	mkparent(o.ctl_path);
	if (xd_ctl_start(o.ctl_path, shards, o.nqueues, err, sizeof(err))) {
		fprintf(stderr, "xdpexd: error: %s\n", err);
		goto out;
	}
	xd_log("control socket %s, entry socket %s", o.ctl_path, o.entry_path);
	for (int i = 0; i < o.nqueues; i++) {
		if (pthread_create(&shards[i].thread, NULL, shard_thread, &shards[i])) {
			fprintf(stderr, "xdpexd: error: queue thread: %s\n", strerror(errno));
			atomic_store(&xd_stop, 1);
			break;
		}
		started++;
	}
	if (started == o.nqueues) {
		struct timespec poll_ts = {0, 100000000};

		xd_log("ready");
		while (!atomic_load(&xd_stop)) {
			sig = sigtimedwait(&sigs, NULL, &poll_ts);
			if (sig == SIGINT || sig == SIGTERM)
				break;
		}
		xd_log("stopping%s", sig > 0 ? (sig == SIGINT ? " (SIGINT)" : " (SIGTERM)") : "");
	}
	atomic_store(&xd_stop, 1);
	for (int i = 0; i < started; i++)
		pthread_join(shards[i].thread, NULL);
	xd_ctl_stop();
	rc = 0;
	for (int i = 0; i < o.nqueues; i++)
		if (shards[i].fatal)
			rc = 1;
out:
	for (int i = 0; i < ninit; i++) {
		uint64_t last = shards[i].journal.next_seq ? shards[i].journal.next_seq - 1 : 0;

		xd_shard_close_ports(&shards[i]);
		if (shards[i].engine && shards[i].journal.buf)
			xd_log("journal flushed: q%d last seq %llu", shards[i].queue,
			       (unsigned long long)last);
		xd_shard_free(&shards[i]);
	}
	if (setup && be->teardown)
		be->teardown();
	free(shards);
	xd_config_free(&cfg);
	xd_log(rc ? "stopped with errors" : "stopped");
	return rc;
}
