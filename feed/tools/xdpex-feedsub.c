/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpex-feedsub: the reference C subscriber of the market-data feed. It receives the live feed
 * (--listen A.B.C.D:PORT, joining --group G on --mcast-if when given), rebuilds every book of the
 * session with the book builder, and recovers every gap through the rewind server (--rewind): a
 * packet past the next expected sequence is kept and the missing range requested, again after
 * --retry-ms without progress; a heartbeat or end-of-session packet announcing a later sequence
 * is a gap too. With --snapshot it joins late: it starts buffering the live feed, loads the
 * session's books from the snapshot server and goes on from the snapshot's sequence.
 * --drop-pct drops that share of live packets on receipt (seeded by --seed), to test recovery.
 * It stops at the end of the session (everything up to the end-of-session packet's sequence
 * applied), at --until-seq, after --until-quiet N heartbeats in a row with everything they
 * announce applied (a producer gone quiet: xdpexd sends one a second when idle), or fails after
 * --max-seconds; then prints top of book (--top), writes
 * the books (--dump, xf_book_dump's format), compares them with the engine's (--compare-dump: a
 * dump of the engine's books; --compare-ctl: every resting order, in priority, and the halts
 * xdpexd's control socket reports for symbols 1..--symbols, command book_orders) and prints one
 * JSON line of counters with the feed latency (message timestamp to receipt) percentiles.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "xdpex_feed.h"

#define LAT_BUCKETS 4096 /* log-linear: 64 per power of two */

struct pend {
	uint64_t seq;
	uint32_t count;
	uint32_t len;
	bool live;
	uint8_t blocks[XF_MAX_PAYLOAD];
};

static struct {
	struct xf_book *book;
	char session[XF_SESSION_LEN];
	bool have_session;
	uint64_t next; /* next sequence to apply */
	uint64_t known_end; /* highest "next sequence" the server announced */
	uint32_t quiet; /* heartbeats in a row while caught up */
	bool ended; /* an end-of-session packet was seen */
	struct pend *pend; /* packets ahead of `next`, sorted by seq */
	uint32_t npend, pcap;
	int live, rw; /* sockets: the live feed, rewind requests and answers */
	struct sockaddr_in rewind;
	bool have_rewind;
	uint64_t req_at, req_next; /* the last request: when, and `next` then */
	uint64_t rng;
	double drop;
	uint64_t packets, rewind_packets, msgs, live_msgs, rewound_msgs, dups, drops, gaps,
	    requests, heartbeats, foreign, malformed, refused, snapshot_seq, snapshot_orders;
	uint64_t lat[LAT_BUCKETS];
	uint64_t nlat;
} s;

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void)
{
	uint64_t z = (s.rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void lat_add(int64_t ns)
{
	uint64_t v = ns > 0 ? (uint64_t)ns : 0;
	int b;

	if (v < 64) {
		b = (int)v;
	} else {
		int e = 63 - __builtin_clzll(v); /* >= 6 */

		b = (e - 5) * 64 + (int)((v >> (e - 6)) & 63);
	}
	if (b >= LAT_BUCKETS)
		b = LAT_BUCKETS - 1;
	s.lat[b]++;
	s.nlat++;
}

static double lat_pct(double p)
{
	uint64_t want = (uint64_t)ceil(p * (double)s.nlat), acc = 0;

	for (int b = 0; b < LAT_BUCKETS; b++) {
		acc += s.lat[b];
		if (acc >= want && want) {
			if (b < 64)
				return b;
			int e = b / 64 + 5, m = b % 64;

			return (double)((1ull << e) + ((uint64_t)m << (e - 6)));
		}
	}
	return 0;
}

/* Applies messages [from, count) of a run of blocks whose first message is seq. */
static void apply_blocks(const uint8_t *blocks, uint64_t seq, uint32_t count, uint32_t from,
			 bool live)
{
	const uint8_t *p = blocks;

	for (uint32_t i = 0; i < count; i++) {
		size_t ml;
		const uint8_t *m = xf_next_msg(&p, &ml);

		if (i < from)
			continue;
		if (xf_book_apply(s.book, m, ml) && s.refused++ < 10)
			fprintf(stderr, "xdpex-feedsub: seq %" PRIu64 ": %s\n", seq + i,
				xf_book_error(s.book));
		s.msgs++;
		if (live)
			s.live_msgs++;
		else
			s.rewound_msgs++;
	}
	s.next = seq + count;
}

static void keep(const struct xf_mold_view *v, bool live)
{
	uint32_t i;

	for (i = 0; i < s.npend; i++) {
		if (s.pend[i].seq == v->seq && s.pend[i].count >= v->count)
			return; /* have it */
		if (s.pend[i].seq > v->seq)
			break;
	}
	if (s.npend == s.pcap) {
		uint32_t cap = s.pcap ? 2 * s.pcap : 256;
		struct pend *n = realloc(s.pend, cap * sizeof(*n));

		if (!n) {
			fprintf(stderr, "xdpex-feedsub: out of memory buffering packets\n");
			exit(1);
		}
		s.pend = n;
		s.pcap = cap;
	}
	memmove(&s.pend[i + 1], &s.pend[i], (s.npend - i) * sizeof(*s.pend));
	s.pend[i].seq = v->seq;
	s.pend[i].count = v->count;
	s.pend[i].len = (uint32_t)v->len;
	s.pend[i].live = live;
	memcpy(s.pend[i].blocks, v->blocks, v->len);
	s.npend++;
}

/* Applies whatever buffered packets have become contiguous. */
static void drain(void)
{
	uint32_t i = 0;

	while (i < s.npend && s.pend[i].seq <= s.next) {
		struct pend *p = &s.pend[i++];

		if (p->seq + p->count > s.next)
			apply_blocks(p->blocks, p->seq, p->count, (uint32_t)(s.next - p->seq),
				     p->live);
	}
	if (i) {
		memmove(s.pend, s.pend + i, (s.npend - i) * sizeof(*s.pend));
		s.npend -= i;
	}
}

static void on_packet(const uint8_t *buf, size_t len, bool live)
{
	struct xf_mold_view v;
	struct xf_parse_err err;
	char text[200];

	if (xf_parse_datagram(buf, len, &v, &err)) {
		if (s.malformed++ < 10) {
			xf_parse_errstr(&err, text, sizeof(text));
			fprintf(stderr, "xdpex-feedsub: malformed packet: %s\n", text);
		}
		return;
	}
	if (!s.have_session) {
		memcpy(s.session, v.session, XF_SESSION_LEN);
		s.have_session = true;
	} else if (memcmp(s.session, v.session, XF_SESSION_LEN)) {
		s.foreign++;
		return;
	}
	live ? s.packets++ : s.rewind_packets++;
	if (v.heartbeat || v.end) {
		s.heartbeats++;
		if (v.seq > s.known_end)
			s.known_end = v.seq;
		s.ended |= v.end;
		s.quiet = live && s.next >= v.seq ? s.quiet + 1 : 0;
		return;
	}
	s.quiet = 0;
	if (v.seq + v.count > s.known_end)
		s.known_end = v.seq + v.count;
	if (live) {
		/* Feed latency: the gateway's timestamp of each message to its receipt here. */
		uint64_t t = now_ns(CLOCK_REALTIME);
		const uint8_t *p = v.blocks;

		for (uint32_t i = 0; i < v.count; i++) {
			size_t ml;
			const struct xf_msg_hdr *m = (const void *)xf_next_msg(&p, &ml);

			lat_add((int64_t)(t - m->ts));
		}
	}
	if (v.seq + v.count <= s.next) {
		s.dups++;
		return;
	}
	if (v.seq <= s.next) {
		apply_blocks(v.blocks, v.seq, v.count, (uint32_t)(s.next - v.seq), live);
		drain();
		return;
	}
	keep(&v, live);
}

/* Asks for the first missing range when one is known and no request is in flight for it. */
static void maybe_request(uint64_t retry_ns)
{
	uint64_t upto = s.npend ? s.pend[0].seq : s.known_end, now, count;
	uint8_t req[XF_MOLD_REQ_SIZE];

	if (upto <= s.next || !s.have_rewind || !s.have_session)
		return;
	now = now_ns(CLOCK_MONOTONIC);
	if (s.req_at && s.req_next == s.next && now - s.req_at < retry_ns)
		return;
	if (s.req_next != s.next || !s.req_at)
		s.gaps++;
	count = upto - s.next;
	if (count > XF_MOLD_MAX_COUNT)
		count = XF_MOLD_MAX_COUNT;
	xf_mold_put_hdr(req, s.session, s.next, (uint16_t)count);
	if (sendto(s.rw, req, sizeof(req), 0, (struct sockaddr *)&s.rewind, sizeof(s.rewind)) ==
	    (ssize_t)sizeof(req))
		s.requests++;
	s.req_at = now;
	s.req_next = s.next;
}

/* Late join: the session's books from the snapshot server. 0 or -1 (said why). */
static int load_snapshot(const char *addr, const char *session_name, uint32_t symbol)
{
	struct sockaddr_in sa;
	struct xf_snap_req req = {.version = XF_VERSION, .symbol_id = symbol};
	struct timeval tv = {10, 0};
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int fd;

	if (xf_parse_addr(addr, &sa)) {
		fprintf(stderr, "xdpex-feedsub: --snapshot %s: not A.B.C.D:PORT\n", addr);
		return -1;
	}
	memset(req.session, ' ', sizeof(req.session));
	memcpy(req.session, session_name, strnlen(session_name, XF_SESSION_LEN));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
		fprintf(stderr, "xdpex-feedsub: snapshot server %s: %s\n", addr, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap = cap ? 2 * cap : 1u << 16;
			buf = realloc(buf, cap);
			if (!buf)
				return -1;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0) {
			fprintf(stderr, "xdpex-feedsub: snapshot: %s\n", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	for (const uint8_t *p = buf; p + XF_BLOCK_HDR <= buf + len;) {
		size_t ml;
		const uint8_t *m = xf_next_msg(&p, &ml);

		if (p > buf + len || !xf_msg_size(m[0]) || xf_msg_size(m[0]) != ml) {
			fprintf(stderr, "xdpex-feedsub: snapshot: malformed block\n");
			return -1;
		}
		if (m[0] == XF_SNAPSHOT_BEGIN) {
			const struct xf_snapshot_begin *b = (const void *)m;

			if (b->status != XF_SNAP_OK) {
				fprintf(stderr, "xdpex-feedsub: snapshot refused: status %u\n",
					b->status);
				return -1;
			}
			s.snapshot_orders = b->orders;
		}
		if (xf_book_apply(s.book, m, ml)) {
			fprintf(stderr, "xdpex-feedsub: snapshot: %s\n", xf_book_error(s.book));
			return -1;
		}
		if (m[0] == XF_SNAPSHOT_END) {
			s.snapshot_seq = s.next = ((const struct xf_snapshot_end *)m)->next_seq;
			free(buf);
			return 0;
		}
	}
	fprintf(stderr, "xdpex-feedsub: snapshot: ended without SNAPSHOT_END\n");
	return -1;
}

static int open_live(const char *listen_on, const char *group, const char *mcast_if)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	int rcv = 16 << 20;

	if (fd < 0 || xf_parse_addr(listen_on, &sa))
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return -1;
	if (group) {
		struct ip_mreq mr;

		if (inet_pton(AF_INET, group, &mr.imr_multiaddr) != 1)
			return -1;
		mr.imr_interface.s_addr = htonl(INADDR_ANY);
		if (mcast_if && inet_pton(AF_INET, mcast_if, &mr.imr_interface) != 1)
			return -1;
		if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)))
			return -1;
	}
	return fd;
}

/* The books against a dump of the engine's (xf_book_dump's format): 0 when equal, else -1 with
 * the first differing line said. */
static int compare_dump(const char *path)
{
	char *mine = NULL, *want = NULL, line[64];
	size_t mlen = 0, wlen = 0;
	FILE *m = open_memstream(&mine, &mlen), *w = fopen(path, "r");
	int rc = 0, n = 1;

	if (!m || !w) {
		fprintf(stderr, "xdpex-feedsub: --compare-dump %s: %s\n", path, strerror(errno));
		return -1;
	}
	xf_book_dump(s.book, m);
	fclose(m);
	{
		FILE *x = open_memstream(&want, &wlen);
		size_t k;

		while ((k = fread(line, 1, sizeof(line), w)) > 0)
			fwrite(line, 1, k, x);
		fclose(x);
		fclose(w);
	}
	if (mlen != wlen || memcmp(mine, want, mlen)) {
		for (size_t i = 0; i < mlen && i < wlen && mine[i] == want[i]; i++)
			n += mine[i] == '\n';
		fprintf(stderr, "xdpex-feedsub: books differ from %s at line %d\n", path, n);
		rc = -1;
	}
	free(mine);
	free(want);
	return rc;
}

/* One request on xdpexd's control socket (a JSON line each way); NULL on failure. */
static json_t *ctl_request(const char *path, const char *req)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {5, 0};
	char buf[1 << 16];
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	json_t *j = NULL;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		fprintf(stderr, "xdpex-feedsub: control socket %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (len < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (buf[len - 1] == '\n')
			break;
	}
	close(fd);
	buf[len] = '\0';
	j = json_loads(buf, 0, NULL);
	if (!j)
		fprintf(stderr, "xdpex-feedsub: control socket %s: not JSON: %.80s\n", path, buf);
	return j;
}

/* The books against xdpexd's own (control socket `book`: the best 64 levels of each side and
 * the halt) for symbols 1..nsym: the number of symbols that differ (each said), -1 on failure. */
/* The rebuilt books against xdpexd's, order by order (control socket "book_orders": every
 * resting order of each side in priority, and whether the symbol is halted). */
static int compare_ctl(const char *path, uint32_t nsym)
{
	struct xf_border *o = NULL;
	uint32_t cap = 0;
	int bad = 0;

	for (uint32_t y = 1; y <= nsym; y++) {
		char req[96];
		json_t *j;

		snprintf(req, sizeof(req), "{\"cmd\": \"book_orders\", \"symbol\": %u}\n", y);
		j = ctl_request(path, req);
		if (!j) {
			free(o);
			return -1;
		}
		if (!json_is_true(json_object_get(j, "ok"))) {
			struct xf_level lv[1];

			if (xf_book_levels(s.book, y, XF_BUY, 1, lv) ||
			    xf_book_levels(s.book, y, XF_SELL, 1, lv)) {
				fprintf(stderr,
					"xdpex-feedsub: symbol %u: xdpexd does not know it, the "
					"feed has orders\n",
					y);
				bad++;
			}
			json_decref(j);
			continue;
		}
		if (json_is_true(json_object_get(j, "halted")) !=
		    (xf_book_state(s.book, y) == XF_STATE_HALTED)) {
			fprintf(stderr, "xdpex-feedsub: symbol %u: halted differs\n", y);
			bad++;
		}
		for (uint8_t side = XF_BUY; side <= XF_SELL; side++) {
			json_t *arr = json_object_get(j, side == XF_BUY ? "bids" : "asks");
			uint32_t want = (uint32_t)json_array_size(arr), n;
			bool same;

			if (want + 1 > cap) {
				struct xf_border *g = realloc(o, (want + 1) * sizeof(*o));

				if (!g) {
					free(o);
					json_decref(j);
					return -1;
				}
				o = g;
				cap = want + 1;
			}
			n = xf_book_orders(s.book, y, side, want + 1, o);
			same = n == want;
			for (uint32_t i = 0; same && i < n; i++) {
				json_t *e = json_array_get(arr, i);

				same =
				    (uint64_t)json_integer_value(json_array_get(e, 0)) ==
					o[i].order_id &&
				    json_integer_value(json_array_get(e, 1)) == o[i].price &&
				    (uint32_t)json_integer_value(json_array_get(e, 2)) == o[i].qty;
			}
			if (!same) {
				fprintf(
				    stderr,
				    "xdpex-feedsub: symbol %u %s differ from xdpexd's (%u orders "
				    "here, %u there)\n",
				    y, side == XF_BUY ? "bids" : "asks", n, want);
				bad++;
			}
		}
		json_decref(j);
	}
	free(o);
	return bad;
}

static void print_top(void)
{
	for (uint32_t y = 1; y <= xf_book_max_symbol(s.book); y++) {
		struct xf_level b = {0}, a = {0};
		uint32_t nb = xf_book_levels(s.book, y, XF_BUY, 1, &b);
		uint32_t na = xf_book_levels(s.book, y, XF_SELL, 1, &a);
		int64_t lp;
		uint32_t lq;
		uint64_t lm;

		if (!xf_book_state(s.book, y))
			continue;
		printf("top %u %s bid ", y,
		       xf_book_state(s.book, y) == XF_STATE_HALTED ? "halted" : "trading");
		nb ? printf("%" PRIu64 "@%" PRId64 " (%u)", b.qty, b.price, b.orders) : printf("-");
		printf(" ask ");
		na ? printf("%" PRIu64 "@%" PRId64 " (%u)", a.qty, a.price, a.orders) : printf("-");
		if (!xf_book_last_trade(s.book, y, &lp, &lq, &lm))
			printf(" last %u@%" PRId64, lq, lp);
		printf("\n");
	}
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: xdpex-feedsub --listen A.B.C.D:PORT [--group G] [--mcast-if ADDR]\n"
	    "         [--rewind A.B.C.D:PORT] [--snapshot A.B.C.D:PORT --session NAME]\n"
	    "         [--session NAME] [--drop-pct P] [--seed S] [--retry-ms MS]\n"
	    "         [--until-seq N] [--until-quiet N] [--max-seconds S] [--dump FILE] [--top]\n"
	    "         [--compare-dump FILE] [--compare-ctl SOCKET [--symbols N]]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", 1, 0, 'l'},    {"group", 1, 0, 'g'},	   {"mcast-if", 1, 0, 'i'},
	    {"rewind", 1, 0, 'r'},    {"snapshot", 1, 0, 'S'},	   {"session", 1, 0, 'n'},
	    {"drop-pct", 1, 0, 'd'},  {"seed", 1, 0, 's'},	   {"retry-ms", 1, 0, 'R'},
	    {"until-seq", 1, 0, 'u'}, {"max-seconds", 1, 0, 'm'},  {"dump", 1, 0, 'D'},
	    {"top", 0, 0, 't'},	      {"compare-dump", 1, 0, 'C'}, {"compare-ctl", 1, 0, 'X'},
	    {"symbols", 1, 0, 'Y'},   {"until-quiet", 1, 0, 'Q'},  {0, 0, 0, 0},
	};
	const char *listen_on = NULL, *group = NULL, *mcast_if = NULL, *snap = NULL, *name = NULL;
	const char *dump = NULL, *cmp_dump = NULL, *cmp_ctl = NULL;
	uint32_t nsym = 16;
	uint64_t until = 0, retry_ns = 30000000ull, deadline;
	uint32_t quiet = 0;
	double max_s = 60;
	int top = 0, c, rc = 0;

	s.rng = 1;
	s.next = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen_on = optarg; break;
		case 'g': group = optarg; break;
		case 'i': mcast_if = optarg; break;
		case 'r':
			if (xf_parse_addr(optarg, &s.rewind) || !s.rewind.sin_port)
				usage();
			s.have_rewind = true;
			break;
		case 'S': snap = optarg; break;
		case 'n': name = optarg; break;
		case 'd': s.drop = atof(optarg) / 100.0; break;
		case 's': s.rng = strtoull(optarg, NULL, 10); break;
		case 'R': retry_ns = strtoull(optarg, NULL, 10) * 1000000ull; break;
		case 'u': until = strtoull(optarg, NULL, 10); break;
		case 'Q': quiet = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'm': max_s = atof(optarg); break;
		case 'D': dump = optarg; break;
		case 't': top = 1; break;
		case 'C': cmp_dump = optarg; break;
		case 'X': cmp_ctl = optarg; break;
		case 'Y': nsym = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (!listen_on || (snap && !name) || (name && strlen(name) > XF_SESSION_LEN))
		usage();
	s.book = xf_book_new();
	s.live = open_live(listen_on, group, mcast_if);
	s.rw = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!s.book || s.live < 0 || s.rw < 0) {
		fprintf(stderr, "xdpex-feedsub: cannot listen on %s%s%s: %s\n", listen_on,
			group ? " group " : "", group ? group : "", strerror(errno));
		return 1;
	}
	if (name) {
		memset(s.session, ' ', sizeof(s.session));
		memcpy(s.session, name, strlen(name));
		s.have_session = true;
	}
	printf("xdpex-feedsub: listening on %s\n", listen_on);
	fflush(stdout);
	if (snap && load_snapshot(snap, name, 0))
		return 1;
	deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)(max_s * 1e9);
	while (!(s.ended && s.next >= s.known_end) && !(until && s.next > until) &&
	       !(quiet && s.quiet >= quiet && s.next >= s.known_end)) {
		struct pollfd p[2] = {{s.live, POLLIN, 0}, {s.rw, POLLIN, 0}};
		uint8_t buf[XF_MAX_PAYLOAD + 64];

		if (now_ns(CLOCK_MONOTONIC) > deadline) {
			fprintf(stderr,
				"xdpex-feedsub: gave up after %.0f s at seq %" PRIu64
				" (server at %" PRIu64 ", %u packets buffered)\n",
				max_s, s.next, s.known_end, s.npend);
			rc = 1;
			break;
		}
		poll(p, 2, 5);
		for (int k = 0; k < 2; k++) {
			for (int j = 0; j < 512; j++) {
				ssize_t n = recv(k ? s.rw : s.live, buf, sizeof(buf), 0);

				if (n < 0)
					break;
				if (!k && s.drop > 0 &&
				    (double)(rnd() >> 11) / 9007199254740992.0 < s.drop) {
					s.drops++;
					continue;
				}
				on_packet(buf, (size_t)n, !k);
			}
		}
		maybe_request(retry_ns);
	}
	if (top)
		print_top();
	if (dump) {
		FILE *f = fopen(dump, "w");

		if (!f || xf_book_dump(s.book, f) || fclose(f)) {
			fprintf(stderr, "xdpex-feedsub: --dump %s: %s\n", dump, strerror(errno));
			rc = 1;
		}
	}
	if (cmp_dump && compare_dump(cmp_dump))
		rc = 1;
	if (cmp_ctl && compare_ctl(cmp_ctl, nsym))
		rc = 1;
	printf("{\"next_seq\": %" PRIu64 ", \"packets\": %" PRIu64 ", \"rewind_packets\": %" PRIu64
	       ", \"messages\": %" PRIu64 ", \"live_messages\": %" PRIu64
	       ", \"rewound_messages\": %" PRIu64 ", \"dropped_packets\": %" PRIu64
	       ", \"gaps\": %" PRIu64 ", \"requests\": %" PRIu64 ", \"duplicates\": %" PRIu64
	       ", \"heartbeats\": %" PRIu64 ", \"refused\": %" PRIu64 ", \"malformed\": %" PRIu64
	       ", \"foreign\": %" PRIu64 ", \"snapshot_seq\": %" PRIu64
	       ", \"snapshot_orders\": %" PRIu64 ", \"latency_ns\": {\"p50\": %.0f, \"p99\": %.0f, "
	       "\"p999\": %.0f, \"count\": %" PRIu64 "}}\n",
	       s.next, s.packets, s.rewind_packets, s.msgs, s.live_msgs, s.rewound_msgs, s.drops,
	       s.gaps, s.requests, s.dups, s.heartbeats, s.refused, s.malformed, s.foreign,
	       s.snapshot_seq, s.snapshot_orders, lat_pct(0.5), lat_pct(0.99), lat_pct(0.999),
	       s.nlat);
	return rc || s.refused ? 1 : 0;
}
