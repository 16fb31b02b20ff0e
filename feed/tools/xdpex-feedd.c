/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * xdpex-feedd: the feed's rewind and snapshot server. It tails the journal of every queue under
 * --journal (DIR/q<q>/, as xdpexd writes it; queues appearing later are picked up), indexes each
 * XJ_FEED record by feed sequence and applies its messages to a book per queue, and answers:
 *   - MoldUDP64 request packets on --rewind (UDP): the requested messages of the named session
 *     from the journal, as ordinary downstream packets sent back to the requester, at most
 *     --max-rewind messages a request (the requester asks again for the rest). A request at or
 *     past the end of what is journaled is answered with a heartbeat carrying the next sequence;
 *     an unknown session or a malformed request is dropped and counted.
 *   - snapshot requests on --snapshot (TCP): the queue's book as of a feed sequence, as a stream
 *     of message blocks (feed.h struct xf_snap_req), then the connection is closed.
 * Before answering it reads the journal up to its end, so what it serves is never behind what
 * the producer had journaled when the request arrived. One thread, poll(); the journal is
 * tailed every --poll-ms. Prints "xdpex-feedd: rewind udp A:P snapshot tcp A:P" once listening
 * and its counters as one JSON line on SIGTERM / SIGINT.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xdpex_feed.h"

#define MAX_QUEUES 64
#define MAX_CLIENTS 64
#define CLIENT_TIMEOUT_NS (10ull * 1000000000ull)

struct rec_idx {
	uint64_t seq; /* first feed sequence of the record */
	uint32_t count;
	uint32_t seg;
	uint64_t off; /* the record's offset in its segment */
	uint32_t len; /* the record's length (header included) */
};

struct queue {
	int q;
	char session[XF_SESSION_LEN];
	struct xf_jr jr;
	struct rec_idx *idx;
	uint32_t nidx, cap;
	struct xf_book *book;
	uint64_t next_seq, last_ts, refused;
	uint8_t *rbuf; /* a record read back for a rewind */
	size_t rcap;
	int32_t rcached; /* index entry in rbuf, -1 */
};

struct client {
	int fd;
	uint8_t req[XF_SNAP_REQ_SIZE];
	size_t got;
	uint8_t *out;
	size_t cap, len, sent;
	uint64_t since;
};

static struct {
	const char *dir, *prefix;
	struct queue qs[MAX_QUEUES];
	int nq;
	int ufd, lfd;
	struct client cl[MAX_CLIENTS];
	uint32_t max_rewind;
	uint8_t *scratch; /* gathered blocks of a rewind answer */
	size_t scap;
	uint64_t last_discover; /* CLOCK_MONOTONIC ns */
	uint64_t requests, served_msgs, served_pkts, beyond, bad_requests, unknown_session,
	    snapshots, snapshot_orders, journal_errors;
} d;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the journal ---- */

static int on_record(void *ctx, const struct xf_jrec *r)
{
	struct queue *q = ctx;
	const uint8_t *p = r->payload;
	struct rec_idx *x;

	if (r->hdr->type != XJ_FEED)
		return 0;
	if (r->hdr->msg_seq != q->next_seq) {
		fprintf(stderr,
			"xdpex-feedd: q%d journal seq %" PRIu64 ": feed sequence %" PRIu64
			", expected %" PRIu64 "\n",
			q->q, r->hdr->seq, r->hdr->msg_seq, q->next_seq);
		d.journal_errors++;
		if (r->hdr->msg_seq < q->next_seq)
			return 0; /* already indexed: never serve a sequence twice */
	}
	if (q->nidx == q->cap) {
		uint32_t cap = q->cap ? 2 * q->cap : 1024;
		struct rec_idx *n = realloc(q->idx, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		q->idx = n;
		q->cap = cap;
	}
	x = &q->idx[q->nidx++];
	*x = (struct rec_idx){r->hdr->msg_seq, r->hdr->count, r->seg, r->off, r->hdr->len};
	for (uint32_t i = 0; i < r->hdr->count; i++) {
		size_t ml;
		const uint8_t *m = xf_next_msg(&p, &ml);

		if (xf_book_apply(q->book, m, ml) && q->refused++ < 10)
			fprintf(stderr, "xdpex-feedd: q%d feed seq %" PRIu64 ": %s\n", q->q,
				r->hdr->msg_seq + i, xf_book_error(q->book));
	}
	q->next_seq = r->hdr->msg_seq + r->hdr->count;
	q->last_ts = r->hdr->ts;
	return 0;
}

static void tail(struct queue *q)
{
	long n;

	do {
		n = xf_jr_poll(&q->jr, on_record, q, 50000);
		if (n < 0) {
			if (d.journal_errors++ < 10)
				fprintf(stderr, "xdpex-feedd: q%d: %s\n", q->q,
					n == -EBADMSG ? q->jr.err : strerror((int)-n));
			return;
		}
	} while (n == 50000);
}

/* Picks up queue directories that appeared since the last look. */
static void discover(void)
{
	DIR *dir = opendir(d.dir);
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir)) && d.nq < MAX_QUEUES) {
		char *end, path[1024];
		long q;
		int have = 0;
		struct queue *x;

		if (e->d_name[0] != 'q')
			continue;
		q = strtol(e->d_name + 1, &end, 10);
		if (*end || end == e->d_name + 1 || q < 0 || q > 999)
			continue;
		for (int i = 0; i < d.nq; i++)
			have |= d.qs[i].q == q;
		if (have)
			continue;
		x = &d.qs[d.nq];
		memset(x, 0, sizeof(*x));
		x->q = (int)q;
		x->next_seq = 1;
		x->rcached = -1;
		if (xf_session_name(x->session, d.prefix, (int)q))
			continue;
		snprintf(path, sizeof(path), "%s/%s", d.dir, e->d_name);
		x->book = xf_book_new();
		if (!x->book || xf_jr_open(&x->jr, path)) {
			xf_book_free(x->book);
			continue;
		}
		d.nq++;
		fprintf(stderr, "xdpex-feedd: following %s as session %.10s\n", path, x->session);
	}
	closedir(dir);
}

static void tail_all(void)
{
	for (int i = 0; i < d.nq; i++)
		tail(&d.qs[i]);
}

static struct queue *by_session(const char *session)
{
	for (int i = 0; i < d.nq; i++)
		if (!memcmp(d.qs[i].session, session, XF_SESSION_LEN))
			return &d.qs[i];
	return NULL;
}

/* ---- rewind ---- */

/* The index entry holding seq (q->idx[0].seq <= seq < q->next_seq). */
static uint32_t find_rec(const struct queue *q, uint64_t seq)
{
	uint32_t lo = 0, hi = q->nidx - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (q->idx[mid].seq <= seq)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* The blocks of index entry i, read back from the journal. */
static const uint8_t *rec_blocks(struct queue *q, uint32_t i)
{
	const struct rec_idx *x = &q->idx[i];

	if (q->rcached == (int32_t)i)
		return q->rbuf + XJ_REC_HDR;
	if (x->len > q->rcap) {
		uint8_t *n = realloc(q->rbuf, x->len);

		if (!n)
			return NULL;
		q->rbuf = n;
		q->rcap = x->len;
	}
	if (xf_jr_read(&q->jr, x->seg, x->off, q->rbuf, x->len) ||
	    xf_crc32c(0, q->rbuf + 8, x->len - 8) != ((struct xj_rec *)q->rbuf)->crc) {
		q->rcached = -1;
		d.journal_errors++;
		return NULL;
	}
	q->rcached = (int32_t)i;
	return q->rbuf + XJ_REC_HDR;
}

static void send_to(const uint8_t *pkt, size_t len, const struct sockaddr_in *to)
{
	if (sendto(d.ufd, pkt, len, 0, (const struct sockaddr *)to, sizeof(*to)) == (ssize_t)len)
		d.served_pkts++;
}

static void serve_rewind(const uint8_t *req, size_t len, const struct sockaddr_in *from)
{
	uint8_t pkt[XF_MAX_PAYLOAD];
	struct queue *q;
	uint64_t seq, want, have;
	size_t used = 0;
	struct xf_pack k;

	d.requests++;
	if (len != XF_MOLD_REQ_SIZE) {
		d.bad_requests++;
		return;
	}
	q = by_session((const char *)req);
	if (!q && mono_ns() - d.last_discover > 10000000ull) {
		/* Perhaps a queue whose journal appeared since the last look. */
		discover();
		d.last_discover = mono_ns();
		q = by_session((const char *)req);
	}
	if (!q) {
		d.unknown_session++;
		return;
	}
	seq = xf_get_be(req + 10, 8);
	want = xf_get_be(req + 18, 2);
	if (seq == 0 || want == 0 || want == XF_MOLD_END) {
		d.bad_requests++;
		return;
	}
	if (seq >= q->next_seq)
		tail(q);
	if (seq >= q->next_seq || !q->nidx || seq < q->idx[0].seq) {
		/* Not journaled (yet): say where the session is. */
		d.beyond++;
		send_to(pkt, xf_pack_empty(pkt, q->session, q->next_seq, 0), from);
		return;
	}
	if (want > d.max_rewind)
		want = d.max_rewind;
	if (want > q->next_seq - seq)
		want = q->next_seq - seq;
	have = 0;
	/* Gather the blocks (across records), then pack them into full packets. */
	for (uint32_t i = find_rec(q, seq); have < want && i < q->nidx; i++) {
		const struct rec_idx *x = &q->idx[i];
		const uint8_t *b = rec_blocks(q, i), *p;
		long off;
		size_t rlen = x->len - XJ_REC_HDR;

		if (!b)
			break;
		off = xf_blocks_seek(b, rlen, x->seq, x->count, seq + have);
		if (off < 0)
			break;
		p = b + off;
		while (have < want && seq + have < x->seq + x->count) {
			size_t bl = XF_BLOCK_HDR + (size_t)xf_get_be(p, 2);

			if (used + bl > d.scap) {
				size_t cap = d.scap ? 2 * d.scap : 1u << 16;
				uint8_t *n = realloc(d.scratch, cap);

				if (!n)
					return;
				d.scratch = n;
				d.scap = cap;
			}
			memcpy(d.scratch + used, p, bl);
			used += bl;
			p += bl;
			have++;
		}
	}
	xf_pack_init(&k, q->session, seq, d.scratch, used, 0);
	while ((len = xf_pack_next(&k, pkt)))
		send_to(pkt, len, from);
	d.served_msgs += have;
}

/* ---- snapshots ---- */

static void client_close(struct client *c)
{
	close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void snapshot_answer(struct client *c)
{
	const struct xf_snap_req *r = (const void *)c->req;
	struct queue *q = by_session(r->session);
	struct xf_snapshot_begin *b;
	long n;

	d.snapshots++;
	if (q && r->version == XF_VERSION) {
		tail(q);
		n = xf_book_snapshot(q->book, r->symbol_id, q->last_ts, q->next_seq, &c->out,
				     &c->cap);
		if (n < 0) {
			client_close(c);
			return;
		}
		c->len = (size_t)n;
		d.snapshot_orders += ((struct xf_snapshot_begin *)(c->out + XF_BLOCK_HDR))->orders;
		return;
	}
	/* Refused: SNAPSHOT_BEGIN with the status, SNAPSHOT_END. */
	c->cap = 2 * XF_BLOCK_HDR + sizeof(*b) + sizeof(struct xf_snapshot_end);
	c->out = calloc(1, c->cap);
	if (!c->out) {
		client_close(c);
		return;
	}
	xf_put_be(c->out, 2, sizeof(*b));
	b = (void *)(c->out + XF_BLOCK_HDR);
	b->type = XF_SNAPSHOT_BEGIN;
	b->status = q ? XF_SNAP_BAD_REQUEST : XF_SNAP_UNKNOWN_SESSION;
	b->symbol_id = r->symbol_id;
	xf_put_be(c->out + XF_BLOCK_HDR + sizeof(*b), 2, sizeof(struct xf_snapshot_end));
	c->out[2 * XF_BLOCK_HDR + sizeof(*b)] = XF_SNAPSHOT_END;
	memcpy(c->out + 2 * XF_BLOCK_HDR + sizeof(*b) + 4, &r->symbol_id, 4);
	c->len = c->cap;
}

static void client_io(struct client *c, short revents)
{
	if (!c->out && (revents & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = read(c->fd, c->req + c->got, sizeof(c->req) - c->got);

		if (n <= 0) {
			client_close(c);
			return;
		}
		c->got += (size_t)n;
		if (c->got == sizeof(c->req))
			snapshot_answer(c);
	}
	while (c->fd >= 0 && c->out && c->sent < c->len) {
		ssize_t n = send(c->fd, c->out + c->sent, c->len - c->sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN)
				return;
			client_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	if (c->fd >= 0 && c->out && c->sent == c->len)
		client_close(c);
}

/* ---- setup ---- */

static int listen_on(const char *addr, int type, char *shown, size_t n)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd, one = 1;

	if (xf_parse_addr(addr, &sa))
		return -EINVAL;
	fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (type == SOCK_STREAM && listen(fd, 64)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		int e = -errno;

		close(fd);
		return e;
	}
	snprintf(shown, n, "%s:%u", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
	return fd;
}

static void usage(void)
{
	fprintf(stderr, "usage: xdpex-feedd --journal DIR [--rewind A.B.C.D:PORT] "
			"[--snapshot A.B.C.D:PORT]\n"
			"         [--session-prefix P] [--max-rewind N] [--poll-ms MS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"journal", 1, 0, 'j'},
	    {"rewind", 1, 0, 'r'},
	    {"snapshot", 1, 0, 's'},
	    {"session-prefix", 1, 0, 'p'},
	    {"max-rewind", 1, 0, 'm'},
	    {"poll-ms", 1, 0, 'P'},
	    {0, 0, 0, 0},
	};
	const char *rewind = "0.0.0.0:9401", *snapshot = "0.0.0.0:9402";
	char rshown[64], sshown[64];
	int poll_ms = 1, c;

	d.max_rewind = 4096;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j': d.dir = optarg; break;
		case 'r': rewind = optarg; break;
		case 's': snapshot = optarg; break;
		case 'p': d.prefix = optarg; break;
		case 'm': d.max_rewind = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'P': poll_ms = atoi(optarg); break;
		default: usage();
		}
	}
	if (!d.dir || !d.max_rewind || d.max_rewind > XF_MOLD_MAX_COUNT || poll_ms < 0)
		usage();
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	d.ufd = listen_on(rewind, SOCK_DGRAM, rshown, sizeof(rshown));
	d.lfd = listen_on(snapshot, SOCK_STREAM, sshown, sizeof(sshown));
	if (d.ufd < 0 || d.lfd < 0) {
		fprintf(stderr, "xdpex-feedd: cannot listen on %s (udp) / %s (tcp): %s\n", rewind,
			snapshot, strerror(-(d.ufd < 0 ? d.ufd : d.lfd)));
		return 1;
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		d.cl[i].fd = -1;
	discover();
	tail_all();
	printf("xdpex-feedd: rewind udp %s snapshot tcp %s\n", rshown, sshown);
	fflush(stdout);
	while (!stop) {
		struct pollfd p[2 + MAX_CLIENTS];
		int map[2 + MAX_CLIENTS], np = 2;
		uint64_t now = mono_ns();

		p[0] = (struct pollfd){d.ufd, POLLIN, 0};
		p[1] = (struct pollfd){d.lfd, POLLIN, 0};
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *cl = &d.cl[i];

			if (cl->fd < 0)
				continue;
			if (now - cl->since > CLIENT_TIMEOUT_NS) {
				client_close(
				    cl); /* a request that never came, or a stalled reader */
				continue;
			}
			map[np] = i;
			p[np++] = (struct pollfd){cl->fd, cl->out ? POLLOUT : POLLIN, 0};
		}
		if (poll(p, (nfds_t)np, poll_ms) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			for (int k = 0; k < 256; k++) {
				uint8_t buf[64];
				struct sockaddr_in from;
				socklen_t fl = sizeof(from);
				ssize_t n = recvfrom(d.ufd, buf, sizeof(buf), 0,
						     (struct sockaddr *)&from, &fl);

				if (n < 0)
					break;
				serve_rewind(buf, (size_t)n, &from);
			}
		}
		if (p[1].revents & POLLIN) {
			int fd;

			while ((fd = accept4(d.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
			       0) {
				int i;

				for (i = 0; i < MAX_CLIENTS && d.cl[i].fd >= 0; i++)
					;
				if (i == MAX_CLIENTS) {
					close(fd);
					continue;
				}
				d.cl[i] = (struct client){.fd = fd, .since = mono_ns()};
			}
		}
		for (int j = 2; j < np; j++)
			if (p[j].revents)
				client_io(&d.cl[map[j]], p[j].revents);
		if (now - d.last_discover > 1000000000ull) {
			discover();
			d.last_discover = now;
		}
		tail_all();
	}
	printf("{\"requests\": %" PRIu64 ", \"served_messages\": %" PRIu64
	       ", \"served_packets\": %" PRIu64 ", \"beyond_end\": %" PRIu64
	       ", \"bad_requests\": %" PRIu64 ", \"unknown_session\": %" PRIu64
	       ", \"snapshots\": %" PRIu64 ", \"snapshot_orders\": %" PRIu64
	       ", \"journal_errors\": %" PRIu64 ", \"queues\": %d}\n",
	       d.requests, d.served_msgs, d.served_pkts, d.beyond, d.bad_requests,
	       d.unknown_session, d.snapshots, d.snapshot_orders, d.journal_errors, d.nq);
	return 0;
}
