/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The market-data feed produced in the shard's batch (docs/marketdata.md): after every engine
 * call its events become ITCH-style feed messages (feed/xdpex_feed.h's encoder; no session
 * identity on the feed); at the batch end they are journaled as XJ_FEED records with the batch's
 * other records, and once the commit is done they leave as MoldUDP64 packets (session XDPEXQ<q>)
 * to every --feed destination, through the queue's own network port in the same transmit as the
 * answers (no syscall of their own on AF_XDP and DPDK, the answers' sendmmsg on kernel UDP). With
 * --durability replicated they are held with the answers. The feed sequence is therefore
 * deterministic from the journal: replay restores it from the XJ_FEED records (nothing is encoded
 * again), so after a restart or a failover the feed continues with no hole and no repeat; the
 * rewind and snapshot service (xdpex-feedd) serves what a subscriber missed from the journal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xdpex_feed.h"
#include "xdpexd.h"

#define FEED_BEAT_NS 1000000000ull /* a heartbeat after a second of silence */
#define FEED_HIGH (1u << 20) /* a batch's messages past this commit (and publish) early */

struct xd_feed {
	struct xf_enc enc;
	char session[XF_SESSION_LEN];
	struct xd_peer dst[XD_FEED_DSTS];
	uint32_t ndst;
	uint64_t last_tx;
	uint64_t packets, heartbeats;
	bool start; /* a new feed session: START_OF_SESSION goes with the first batch */
};

/* "A.B.C.D:PORT[@aa:bb:cc:dd:ee:ff]" */
static int parse_dst(const char *s, struct sockaddr_in *sa, uint8_t mac[6], bool *has_mac)
{
	char buf[80], *at;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	at = strchr(buf, '@');
	*has_mac = at != NULL;
	if (at) {
		*at++ = 0;
		if (sscanf(at, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
			   &mac[4], &mac[5]) != 6)
			return -EINVAL;
	}
	return xf_parse_addr(buf, sa) || !sa->sin_port ? -EINVAL : 0;
}

/* The MAC of a unicast destination from the kernel's neighbour table (the route picks the
 * device). 0 or -errno. */
static int neighbour_mac(uint32_t addr, uint8_t mac[6])
{
	struct arpreq r = {0};
	struct sockaddr_in *sa = (struct sockaddr_in *)&r.arp_pa;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = addr;
	if (ioctl(fd, SIOCGARP, &r))
		rc = -errno;
	else if (!(r.arp_flags & ATF_COM))
		rc = -EHOSTUNREACH;
	else
		memcpy(mac, r.arp_ha.sa_data, 6);
	close(fd);
	return rc;
}

int xd_feed_open(struct xd_shard *sh, char *err, size_t errlen)
{
	const struct xd_opts *o = sh->opts;
	struct xd_peer self = {0};
	struct xd_feed *f;
	int rc;

	if (!o->nfeed)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return snprintf(err, errlen, "out of memory"), -1;
	sh->feed = f;
	rc = xf_enc_init(&f->enc, sh->feed_next, 0);
	if (rc)
		return snprintf(err, errlen, "feed: %s", strerror(-rc)), -1;
	f->start = sh->feed_next == 1;
	xf_session_name(f->session, "XDPEXQ", sh->queue);
	if (sh->net.be && sh->net.be->self)
		sh->net.be->self(sh->net.st, &self);
	for (int i = 0; i < o->nfeed; i++) {
		struct xd_peer *d = &f->dst[f->ndst++];
		struct sockaddr_in sa;
		bool has_mac;
		uint8_t mac[6];
		uint32_t a;

		if (parse_dst(o->feed[i], &sa, mac, &has_mac))
			return snprintf(err, errlen, "--feed %s: expected A.B.C.D:PORT[@MAC]",
					o->feed[i]),
			       -1;
		a = ntohl(sa.sin_addr.s_addr);
		*d = self;
		d->kind = XD_PEER_UDP;
		d->addr = sa.sin_addr.s_addr;
		d->port = sa.sin_port;
		d->lport = sa.sin_port;
		if (!self.has_l2)
			continue; /* the kernel routes it (udp backend) */
		if ((a >> 28) == 0xe) { /* 224.0.0.0/4: the group's MAC (RFC 1112) */
			const uint8_t m[6] = {
			    0x01, 0x00, 0x5e, (a >> 16) & 0x7f, (a >> 8) & 0xff, a & 0xff};

			memcpy(d->mac, m, 6);
		} else if (has_mac) {
			memcpy(d->mac, mac, 6);
		} else if ((rc = neighbour_mac(d->addr, d->mac))) {
			return snprintf(err, errlen,
					"--feed %s: no neighbour entry for %s (this backend sends "
					"frames "
					"itself: add one, give the MAC as %s@aa:bb:cc:dd:ee:ff, or "
					"use a "
					"multicast group): %s",
					o->feed[i], inet_ntoa(sa.sin_addr), o->feed[i],
					strerror(-rc)),
			       -1;
		}
	}
	xd_log("feed q%d: session %.10s from message %llu to %d destination%s", sh->queue,
	       f->session, (unsigned long long)sh->feed_next, o->nfeed, o->nfeed == 1 ? "" : "s");
	return 0;
}

void xd_feed_close(struct xd_shard *sh)
{
	if (!sh->feed)
		return;
	xf_enc_free(&sh->feed->enc);
	free(sh->feed);
	sh->feed = NULL;
}

static void refused(struct xd_shard *sh, int rc, const char *what)
{
	if (rc == -ENOMEM)
		xd_shard_fatal(sh, rc, "feed buffer");
	else if (rc < 0 && (sh->feed->enc.refused <= 10 || sh->feed->enc.refused % 10000 == 0))
		xd_log("error: feed q%d: the encoder refused the events of %s (%llu so far)",
		       sh->queue, what, (unsigned long long)sh->feed->enc.refused);
}

/* A new feed session's first message says so. */
static void begin(struct xd_shard *sh)
{
	if (!sh->feed->start)
		return;
	sh->feed->start = false;
	refused(sh, xf_enc_system(&sh->feed->enc, XF_SYS_START_OF_SESSION, sh->now_ns),
		"the start of session");
}

void xd_feed_events(struct xd_shard *sh, uint32_t n, const struct xe_order_info *prior)
{
	if (!sh->feed || sh->replaying || !n)
		return;
	begin(sh);
	refused(sh, xf_enc_events(&sh->feed->enc, sh->ev, n, prior, sh->now_ns), "an engine call");
}

void xd_feed_symbol_state(struct xd_shard *sh, uint32_t symbol_id, int halted)
{
	if (!sh->feed || sh->replaying)
		return;
	begin(sh);
	refused(sh, xf_enc_symbol_state(&sh->feed->enc, symbol_id, halted, sh->now_ns), "a halt");
}

bool xd_feed_high(const struct xd_shard *sh)
{
	return sh->feed && sh->feed->enc.len > FEED_HIGH;
}

void xd_feed_replayed(struct xd_shard *sh, const struct xj_rec *r)
{
	sh->feed_next = r->msg_seq + r->count;
}

int xd_feed_journal(struct xd_shard *sh)
{
	struct xd_feed *f = sh->feed;
	struct xf_span sp;
	size_t pos = 0;

	if (!f || sh->replaying)
		return 0;
	while (xf_enc_next_record(&f->enc, &pos, &sp) == 1) {
		uint8_t *p = xj_append(&sh->journal, XJ_FEED, 0, sp.seq, (uint16_t)sp.count,
				       sh->now_ns, (uint32_t)sp.len);

		if (!p)
			return -ENOMEM;
		memcpy(p, sp.blocks, sp.len);
	}
	return 0;
}

/* A raw transmit slot (a feed packet, not a gateway datagram) to `to`; its buffer. */
static uint8_t *raw_slot(struct xd_shard *sh, const struct xd_peer *to)
{
	struct xd_txd *t = xd_tx_new(sh, to, true, 0, 0, 0);

	t->retrans = true; /* not journaled as an outbound record: XJ_FEED holds it */
	t->raw = true;
	t->len = 0;
	return t->buf;
}

void xd_feed_publish(struct xd_shard *sh)
{
	struct xd_feed *f = sh->feed;
	struct xf_pack k;
	uint8_t pkt[XF_MAX_PAYLOAD];
	size_t len;

	if (!f || sh->replaying || !f->enc.count)
		return;
	xf_pack_init(&k, f->session, f->enc.first_seq, f->enc.buf, f->enc.len, sizeof(pkt));
	while ((len = xf_pack_next(&k, pkt))) {
		for (uint32_t i = 0; i < f->ndst; i++) {
			memcpy(raw_slot(sh, &f->dst[i]), pkt, len);
			sh->tx[sh->ntx - 1].len = (uint16_t)len;
		}
		f->packets++;
	}
	xf_enc_commit(&f->enc);
	f->last_tx = sh->mono_ns;
}

void xd_feed_timers(struct xd_shard *sh, uint64_t mono)
{
	struct xd_feed *f = sh->feed;

	if (!f || mono - f->last_tx < FEED_BEAT_NS)
		return;
	xd_shard_batch_begin(sh);
	for (uint32_t i = 0; i < f->ndst; i++) {
		uint8_t *p = raw_slot(sh, &f->dst[i]);

		sh->tx[sh->ntx - 1].len =
		    (uint16_t)xf_pack_empty(p, f->session, f->enc.next_seq, 0);
	}
	f->heartbeats++;
	f->last_tx = mono;
	xd_shard_batch_end(sh);
}

uint64_t xd_feed_next_seq(const struct xd_shard *sh)
{
	return sh->feed ? sh->feed->enc.next_seq : 0;
}

void xd_feed_stats(const struct xd_shard *sh, json_t *q)
{
	const struct xd_feed *f = sh->feed;

	if (!f)
		return;
	json_object_set_new(
	    q, "feed",
	    json_pack("{s:s#,s:I,s:I,s:I,s:I,s:I,s:I}", "session", f->session,
		      (int)strnlen(f->session, XF_SESSION_LEN), "next_seq",
		      (json_int_t)f->enc.next_seq, "messages", (json_int_t)f->enc.msgs, "bytes",
		      (json_int_t)f->enc.bytes, "packets", (json_int_t)f->packets, "heartbeats",
		      (json_int_t)f->heartbeats, "refused", (json_int_t)f->enc.refused));
}
