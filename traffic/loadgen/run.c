/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The send/receive loop of xdpex-loadgen. One thread spins: it sends up to LG_BURST datagrams
 * per sendmmsg when the open-loop schedule or the closed-loop window allows, then drains every
 * session socket with recvmmsg and matches each answer to its order slot (indexed by
 * cl_ord_id). An order message counts as answered at its first answer (Accepted or Rejected for a
 * NewOrder, Cancelled or Rejected for a Cancel, or a Fill/Cancelled that comes first), and its
 * round trip is now - echo_ts. Recovery follows docs/protocol.md: a SequenceGap makes the
 * session resend from the expected sequence (kept in a ring), an outbound gap is asked for
 * with a RetransmitRequest, and a silent tail is probed by resending the last datagram.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "loadgen.h"

#define NO_IDX UINT32_MAX
#define RESEND_GAP_NS 5000000ull /* same SequenceGap again after this: resend again */
#define RTX_REQ_NS 20000000ull /* re-ask for missing outbound messages */
#define TAIL_PROBE_NS 20000000ull /* no answer for this long while waiting: probe */
#define RESEND_MAX_DGRAMS 64 /* datagrams resent per SequenceGap */
#define SOCK_POLL_NS 100000ull /* AF_XDP mode: look at the session sockets this often */
/* Orders rest for at most REST_IDS cl_ord_ids: a new order first cancels the order still resting
 * from REST_IDS ids ago (that cancel is the message it sends instead). This bounds the book at
 * about REST_IDS resting orders per session (a busy book that stays in cache, like the engine
 * bench's stream) instead of letting it grow to the LG_SLOTS slots, and the slot is free long
 * before the ids wrap onto it, so no new order ever waits for a cancel's answer. */
#define REST_IDS 8192u
#define SLOT_AHEAD (LG_SLOTS - REST_IDS)

static const char *const reject_names[] = {
    "NONE",	      "UNKNOWN_SYMBOL", "OFF_TICK",	   "OFF_LOT",	   "OUTSIDE_BAND",
    "BAD_QUANTITY",   "BAD_PRICE",	"UNKNOWN_ORDER",   "DUPLICATE_ID", "POST_ONLY_CROSS",
    "FOK_UNFILLABLE", "CAPACITY",	"HALTED",	   "BAD_SIDE",	   "BAD_ORDER_TYPE",
    "BAD_TIF",	      "NOT_LOGGED_IN",	"UNKNOWN_MESSAGE", "RATE_LIMITED", "NO_CHANGE",
    "REPLACE_QTY",
};
static const char *const cancel_names[] = {
    "NONE", "USER", "IOC", "MASS", "SELF_TRADE", "DISCONNECT", "NO_LIQUIDITY", "EXPIRED", "HALT",
};

const char *reject_name(unsigned r)
{
	return r < sizeof(reject_names) / sizeof(reject_names[0]) ? reject_names[r] : "OTHER";
}

const char *cancel_name(unsigned r)
{
	return r < sizeof(cancel_names) / sizeof(cancel_names[0]) ? cancel_names[r] : "OTHER";
}

static uint64_t rng;

static inline uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Static buffers: nothing is allocated per datagram. */
static uint8_t tx_buf[LG_BURST][XE_MAX_PAYLOAD];
static struct iovec tx_iov[LG_BURST];
static struct mmsghdr tx_mm[LG_BURST];
static uint8_t rx_buf[LG_BURST][2048];
static struct iovec rx_iov[LG_BURST];
static struct mmsghdr rx_mm[LG_BURST];

static inline struct slot *slot_of(struct session *s, uint64_t cl)
{
	return &s->slots[cl & (LG_SLOTS - 1)];
}

static void live_add(struct session *s, struct slot *sl)
{
	sl->live_idx = s->nlive;
	s->live[s->nlive++] = sl->cl;
}

static void live_del(struct session *s, struct slot *sl)
{
	uint32_t i = sl->live_idx;
	if (i == NO_IDX)
		return;
	uint64_t last = s->live[--s->nlive];
	s->live[i] = last;
	slot_of(s, last)->live_idx = i;
	sl->live_idx = NO_IDX;
}

static void slot_settle(struct slot *sl)
{
	if (!(sl->state & (SL_NEW | SL_LIVE | SL_CXL)))
		sl->state = 0;
}

static inline void answered(struct stats *st, uint64_t echo_ts, uint64_t now)
{
	st->answered++;
	st->t_last_answer = now;
	if (echo_ts && now >= echo_ts)
		hist_add(&st->rtt, now - echo_ts);
}

/* Writes one order message (NewOrder or Cancel) for session s. Returns false when no order
 * slot is free (every candidate still waits for an answer). */
static bool build_order(const struct config *cfg, struct stats *st, struct session *s, uint8_t *msg,
			uint64_t ts)
{
	unsigned r = (unsigned)(rnd() % 100);
	struct slot *victim = NULL;

	memset(msg, 0, XE_MSG_SIZE);
	if (r < cfg->mix_cancel && s->nlive) {
		victim = slot_of(s, s->live[rnd() % s->nlive]);
	} else {
		struct slot *ahead = slot_of(s, s->next_cl + SLOT_AHEAD);
		struct slot *sl = slot_of(s, s->next_cl);
		if (ahead->state && ahead->cl < s->next_cl &&
		    (ahead->state & (SL_LIVE | SL_NEW | SL_CXL)) == SL_LIVE &&
		    ahead->live_idx != NO_IDX)
			victim = ahead;
		else if (sl->state) {
			/* The slot still holds an older order: cancel it if it rests, else wait. */
			if ((sl->state & (SL_LIVE | SL_NEW | SL_CXL)) != SL_LIVE ||
			    sl->live_idx == NO_IDX) {
				st->slot_stalls++;
				return false;
			}
			victim = sl;
		}
	}
	if (victim) {
		struct xe_cancel *c = (struct xe_cancel *)msg;
		c->type = XE_CANCEL;
		c->symbol_id = victim->sym;
		c->orig_cl_ord_id = victim->cl;
		c->client_ts = ts;
		live_del(s, victim);
		victim->state |= SL_CXL;
		st->cancel_sent++;
		return true;
	}

	uint64_t cl = s->next_cl++;
	struct slot *sl = slot_of(s, cl);
	bool cross = r >= cfg->mix_cancel && r < cfg->mix_cancel + cfg->mix_cross;
	struct xe_new_order *o = (struct xe_new_order *)msg;
	int64_t mid = (cfg->price_min + cfg->price_max) / 2;
	int64_t depth = (cfg->price_max - cfg->price_min) / 2;
	o->type = XE_NEW_ORDER;
	o->side = (rnd() & 1) ? XE_BUY : XE_SELL;
	o->ord_type = XE_ORD_LIMIT;
	o->symbol_id = s->nsym ? s->symbols[rnd() % s->nsym] : cfg->symbols[rnd() % cfg->nsym];
	o->cl_ord_id = cl;
	o->qty = 1 + (uint32_t)(rnd() % cfg->qty_max);
	o->client_ts = ts;
	if (cross) {
		/* IOC through the whole opposite side of the configured range. */
		o->tif = XE_TIF_IOC;
		o->price = o->side == XE_BUY ? cfg->price_max : cfg->price_min;
		st->cross_sent++;
	} else {
		int64_t off = depth > 1 ? 1 + (int64_t)(rnd() % (uint64_t)(depth)) : 0;
		o->tif = XE_TIF_GTC;
		o->price = o->side == XE_BUY ? mid - off : mid + off;
		if (o->price < cfg->price_min)
			o->price = cfg->price_min;
		if (o->price > cfg->price_max)
			o->price = cfg->price_max;
		st->new_sent++;
	}
	sl->cl = cl;
	sl->sym = o->symbol_id;
	sl->side = o->side;
	sl->live_idx = NO_IDX;
	sl->state = SL_NEW | (cross ? SL_IOC : 0);
	return true;
}

static void fill_hdr(uint8_t *d, const struct session *s, uint64_t seq, unsigned n)
{
	struct xe_hdr *h = (struct xe_hdr *)d;
	h->magic = XE_MAGIC;
	h->version = XE_VERSION;
	h->flags = 0;
	h->session_id = s->id;
	h->seq = seq;
	h->count = (uint16_t)n;
	h->length = (uint16_t)(XE_HDR_SIZE + n * XE_MSG_SIZE);
	h->reserved = 0;
}

/* Sends the first n prepared datagrams, retrying while the socket buffer is full. */
static void send_burst(struct stats *st, struct session *s, unsigned n, uint64_t now)
{
	unsigned done = 0;
	uint64_t give_up = now + 100000000ull;
	while (done < n) {
		int r = sendmmsg(s->fd, tx_mm + done, n - done, 0);
		if (r > 0) {
			done += (unsigned)r;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) &&
		    now_ns() < give_up)
			continue;
		/* Lost locally: the gateway will see a gap and the resend recovers it. */
		st->send_errors += n - done;
		break;
	}
	s->last_send_ns = now;
}

/* Resends inbound messages from `from` on, at most RESEND_MAX_DGRAMS datagrams of them: if more
 * is missing, the next datagram after the resent ones meets the gateway's gap again and its
 * SequenceGap asks for the next chunk, so a resend never floods a gateway that fell behind. */
static void resend_from(const struct config *cfg, struct stats *st, struct session *s,
			uint64_t from, uint64_t now)
{
	if (from >= s->next_seq)
		return;
	uint64_t end = from + (uint64_t)RESEND_MAX_DGRAMS * cfg->batch;
	if (end > s->next_seq)
		end = s->next_seq;
	if (s->next_seq - from > LG_RING) {
		st->unrecoverable++;
		return;
	}
	s->last_resend_from = from;
	s->last_resend_ns = now;
	while (from < end) {
		unsigned nd = 0;
		while (nd < LG_BURST && from < end) {
			uint64_t left = end - from;
			unsigned k = left < cfg->batch ? (unsigned)left : cfg->batch;
			fill_hdr(tx_buf[nd], s, from, k);
			for (unsigned i = 0; i < k; i++)
				memcpy(tx_buf[nd] + XE_HDR_SIZE + i * XE_MSG_SIZE,
				       s->ring + ((from + i) & (LG_RING - 1)) * XE_MSG_SIZE,
				       XE_MSG_SIZE);
			tx_iov[nd].iov_len = XE_HDR_SIZE + k * XE_MSG_SIZE;
			st->resent += k;
			from += k;
			nd++;
		}
		send_burst(st, s, nd, now);
	}
}

static void request_retransmit(struct stats *st, struct session *s, uint64_t from, uint64_t n,
			       uint64_t now)
{
	struct xe_retransmit_req m;
	memset(&m, 0, sizeof(m));
	m.type = XE_RETRANSMIT_REQ;
	m.from_seq = from;
	m.count = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	m.client_ts = now;
	session_send_session_msg(s, &m, 0);
	s->last_rtx_req_ns = now;
	st->rtx_requests++;
}

static inline bool out_has(const struct session *s, uint64_t q)
{
	uint64_t i = q & (LG_OUT_RING - 1);
	return s->out_have[i >> 3] & (1u << (i & 7));
}

static inline void out_mark(struct session *s, uint64_t q, bool v)
{
	uint64_t i = q & (LG_OUT_RING - 1);
	if (v)
		s->out_have[i >> 3] |= (uint8_t)(1u << (i & 7));
	else
		s->out_have[i >> 3] &= (uint8_t) ~(1u << (i & 7));
}

/* Outbound sequence `seen` exists (received, or announced by a heartbeat as the gateway's next).
 * Whatever lies between the highest known sequence and it is missing: ask for exactly that. */
static void out_gap(struct stats *st, struct session *s, uint64_t seen, uint64_t now)
{
	if (seen < s->out_high)
		return;
	if (seen > s->out_high) {
		st->out_gaps++;
		request_retransmit(st, s, s->out_high, seen - s->out_high, now);
	}
	s->out_high = seen + 1;
}

/* Length of the hole starting at out_expected (for asking again). */
static uint64_t out_hole(const struct session *s)
{
	uint64_t q = s->out_expected;
	while (q < s->out_high && q - s->out_expected < 1024 && !out_has(s, q))
		q++;
	return q - s->out_expected;
}

static void app_msg(struct stats *st, struct session *s, const uint8_t *m, uint64_t now)
{
	switch (m[0]) {
	case XE_ACCEPTED: {
		const struct xe_accepted *a = (const void *)m;
		struct slot *sl = slot_of(s, a->cl_ord_id);
		st->accepted++;
		if (sl->cl != a->cl_ord_id || !(sl->state & SL_NEW)) {
			st->unmatched++;
			return;
		}
		answered(st, a->echo_ts, now);
		sl->state = (uint8_t)((sl->state & ~SL_NEW) | SL_LIVE);
		if (!(sl->state & SL_IOC))
			live_add(s, sl);
		return;
	}
	case XE_REJECTED: {
		const struct xe_rejected *rj = (const void *)m;
		struct slot *sl = slot_of(s, rj->cl_ord_id);
		uint8_t want = rj->ref_type == XE_NEW_ORDER ? SL_NEW
			       : rj->ref_type == XE_CANCEL  ? SL_CXL
							    : 0;
		st->rejected++;
		st->rej[rj->reason < LG_REJ_MAX ? rj->reason : 0]++;
		if (!want || sl->cl != rj->cl_ord_id || !(sl->state & want) || !sl->state) {
			st->unmatched++;
			return;
		}
		answered(st, rj->echo_ts, now);
		sl->state &= (uint8_t)~want;
		slot_settle(sl);
		return;
	}
	case XE_FILL: {
		const struct xe_fill *f = (const void *)m;
		struct slot *sl = slot_of(s, f->cl_ord_id);
		st->fills++;
		st->filled_qty += f->qty;
		if (sl->cl != f->cl_ord_id || !sl->state) {
			st->unmatched++;
			return;
		}
		if ((sl->state & SL_NEW) && f->echo_ts) {
			answered(st, f->echo_ts, now);
			sl->state = (uint8_t)((sl->state & ~SL_NEW) | SL_LIVE);
			if (f->leaves && !(sl->state & SL_IOC))
				live_add(s, sl);
		}
		if (!f->leaves) {
			live_del(s, sl);
			sl->state &= (uint8_t) ~(SL_LIVE | SL_NEW);
			slot_settle(sl);
		}
		return;
	}
	case XE_CANCELLED: {
		const struct xe_cancelled *c = (const void *)m;
		struct slot *sl = slot_of(s, c->cl_ord_id);
		st->cancelled++;
		st->cxl[c->reason < LG_CXL_MAX ? c->reason : 0]++;
		if (sl->cl != c->cl_ord_id || !sl->state) {
			st->unmatched++;
			return;
		}
		if ((sl->state & SL_CXL) && c->reason == XE_CXL_USER) {
			answered(st, c->echo_ts, now);
			sl->state &= (uint8_t)~SL_CXL;
		} else if (sl->state & SL_NEW) {
			answered(st, c->echo_ts, now);
			sl->state &= (uint8_t)~SL_NEW;
		}
		live_del(s, sl);
		sl->state &= (uint8_t)~SL_LIVE;
		slot_settle(sl);
		return;
	}
	default: st->unmatched++;
	}
}

/* Heartbeat timeout or Logout with more than one --server: log in at the next one, asking
 * for the gateway's messages from the first not applied. */
static void fail_over(const struct config *cfg, struct stats *st, struct session *s, uint64_t now)
{
	if (!s->moving) {
		st->failovers++;
		s->move_start_ns = now;
	}
	s->moving = true;
	s->logged_in = false;
	s->srv = (s->srv + 1) % cfg->nservers;
	session_retarget(cfg, s);
	session_send_login(s, s->out_expected, &s->login_ts);
	s->login_sent_ns = s->last_recv_ns = now;
}

static void session_msg(const struct config *cfg, struct stats *st, struct session *s,
			const uint8_t *m, uint64_t now)
{
	switch (m[0]) {
	case XE_SEQUENCE_GAP: {
		const struct xe_sequence_gap *g = (const void *)m;
		st->seq_gaps++;
		if (g->expected != s->last_resend_from || now - s->last_resend_ns > RESEND_GAP_NS)
			resend_from(cfg, st, s, g->expected, now);
		return;
	}
	case XE_HEARTBEAT: {
		const struct xe_heartbeat *h = (const void *)m;
		if (h->next_seq > s->out_high) { /* a lost tail: [out_high, next_seq) */
			st->out_gaps++;
			request_retransmit(st, s, s->out_high, h->next_seq - s->out_high, now);
			s->out_high = h->next_seq;
		}
		return;
	}
	case XE_LOGOUT:
		if (!s->logout_sent)
			st->logged_out++;
		s->logged_in = false;
		if (!s->logout_sent && cfg->nservers > 1)
			fail_over(cfg, st, s, now); /* a switchover: the next gateway leads */
		return;
	case XE_LOGIN_REJECTED: login_answer(cfg, st, s, m, now); return;
	case XE_LOGIN_ACCEPTED: {
		const struct xe_login_accepted *a = (const void *)m;
		if (s->login_pending && !s->moving) {
			login_answer(cfg, st, s, m, now);
			return;
		}
		if (!s->moving || a->echo_ts != s->login_ts)
			return; /* late answers to an earlier login */
		s->moving = false;
		s->logged_in = true;
		s->heartbeat_ms = a->heartbeat_ms ? a->heartbeat_ms : 1000;
		if (a->next_out_seq > s->out_high)
			s->out_high = a->next_out_seq;
		uint64_t took = now - s->move_start_ns;
		st->failover_ns_sum += took;
		if (took > st->failover_ns_max)
			st->failover_ns_max = took;
		/* What the new primary has not applied goes again, with the same seqs. */
		resend_from(cfg, st, s, a->next_in_seq ? a->next_in_seq : 1, now);
		return;
	}
	default: return;
	}
}

void handle_datagram(struct config *cfg, struct stats *st, struct session *s, const uint8_t *buf,
		     size_t len, uint64_t now)
{
	const struct xe_hdr *h = (const struct xe_hdr *)buf;
	if (len < XE_HDR_SIZE || h->magic != XE_MAGIC || h->version != XE_VERSION ||
	    !(h->flags & XE_F_FROM_GW) || h->session_id != s->id || !h->count ||
	    h->count > XE_MAX_MSGS || h->length != len ||
	    len != XE_HDR_SIZE + (size_t)h->count * XE_MSG_SIZE) {
		st->bad_datagrams++;
		return;
	}
	const uint8_t *m = buf + XE_HDR_SIZE;
	s->last_recv_ns = now;
	if (h->seq == 0) {
		for (unsigned i = 0; i < h->count; i++)
			session_msg(cfg, st, s, m + i * XE_MSG_SIZE, now);
		return;
	}
	/* Outbound messages are applied in sequence, as the protocol asks: one that arrives
	 * beyond a hole waits in out_buf until the hole is filled by a retransmission. */
	for (unsigned i = 0; i < h->count; i++) {
		uint64_t q = h->seq + i;
		const uint8_t *msg = m + i * XE_MSG_SIZE;
		if (q < s->out_expected || (q > s->out_expected && out_has(s, q))) {
			st->duplicates++;
			continue;
		}
		if (q > s->out_expected) {
			if (q - s->out_expected >= LG_OUT_RING) {
				st->out_lost++; /* too far ahead to keep: apply it now */
				app_msg(st, s, msg, now);
				continue;
			}
			memcpy(s->out_buf + (q & (LG_OUT_RING - 1)) * XE_MSG_SIZE, msg,
			       XE_MSG_SIZE);
			out_mark(s, q, true);
			out_gap(st, s, q, now);
			continue;
		}
		app_msg(st, s, msg, now);
		s->out_expected++;
		while (out_has(s, s->out_expected)) {
			out_mark(s, s->out_expected, false);
			app_msg(st, s,
				s->out_buf + (s->out_expected & (LG_OUT_RING - 1)) * XE_MSG_SIZE,
				now);
			s->out_expected++;
		}
		if (s->out_high < s->out_expected)
			s->out_high = s->out_expected;
	}
}

static void receive_all(struct config *cfg, struct stats *st, uint64_t now)
{
	static uint64_t last_sock_poll;
	if (cfg->xio) {
		xsk_io_poll(cfg, st);
		/* Only session messages (heartbeats, SequenceGap, logout) arrive on the sockets in
		 * AF_XDP mode: look every SOCK_POLL_NS. Every 64th turn, as before, cost one
		 * recvmmsg per session every few microseconds while idle (19 % of the generator's
		 * CPU at --batch 1) and delayed the answers that arrived meanwhile. */
		if (now - last_sock_poll < SOCK_POLL_NS)
			return;
		last_sock_poll = now;
	}
	for (unsigned i = 0; i < cfg->nsess; i++) {
		struct session *s = &cfg->sess[i];
		for (;;) {
			int n = recvmmsg(s->fd, rx_mm, LG_BURST, MSG_DONTWAIT, NULL);
			if (n <= 0)
				break;
			uint64_t now = now_ns();
			st->rx_socket += (unsigned)n;
			for (int k = 0; k < n; k++)
				handle_datagram(cfg, st, s, rx_buf[k], rx_mm[k].msg_len, now);
			if (n < LG_BURST)
				break;
		}
	}
}

/* Builds and sends up to `want` messages for session s in datagrams of cfg->batch. */
static uint64_t send_orders(struct config *cfg, struct stats *st, struct session *s, uint64_t want,
			    uint64_t now)
{
	unsigned nd = 0;
	uint64_t sent = 0;
	while (nd < LG_BURST && want) {
		unsigned k = want < cfg->batch ? (unsigned)want : cfg->batch;
		unsigned built = 0;
		uint8_t *d = tx_buf[nd];
		while (built < k) {
			uint8_t *msg = d + XE_HDR_SIZE + built * XE_MSG_SIZE;
			if (!build_order(cfg, st, s, msg, now))
				break;
			memcpy(s->ring + ((s->next_seq + built) & (LG_RING - 1)) * XE_MSG_SIZE, msg,
			       XE_MSG_SIZE);
			built++;
		}
		if (!built)
			break;
		fill_hdr(d, s, s->next_seq, built);
		tx_iov[nd].iov_len = XE_HDR_SIZE + built * XE_MSG_SIZE;
		s->next_seq += built;
		sent += built;
		want -= built;
		nd++;
		if (built < k)
			break;
	}
	if (nd) {
		if (cfg->xio)
			xsk_io_send(cfg, st, s, tx_iov, nd, now);
		else
			send_burst(st, s, nd, now);
		st->datagrams += nd;
		st->sent += sent;
	}
	return sent;
}

static void timers(struct config *cfg, struct stats *st, bool waiting, uint64_t now)
{
	/* Probe interval: TAIL_PROBE_NS, doubled after each probe that brought nothing, back to
	 * the start when answers flow, so a merely slow gateway is not flooded with probes. */
	static uint64_t probe_ns = TAIL_PROBE_NS, answered_at_probe;
	if (st->answered != answered_at_probe) {
		answered_at_probe = st->answered;
		probe_ns = TAIL_PROBE_NS;
	}
	bool probed = false;
	for (unsigned i = 0; i < cfg->nsess; i++) {
		struct session *s = (struct session *)&cfg->sess[i];
		if (cfg->async_login)
			login_tick(cfg, st, s, now);
		if (s->moving) {
			/* No answer to the login (a standby says nothing): the next one. */
			if (now > s->login_sent_ns && now - s->login_sent_ns > 250000000ull)
				fail_over(cfg, st, s, now);
			continue;
		}
		if (!s->logged_in)
			continue;
		/* (last_recv_ns may be a little after `now`: taken later, in receive_all) */
		if (cfg->nservers > 1 && now > s->last_recv_ns &&
		    now - s->last_recv_ns > (uint64_t)s->heartbeat_ms * 3000000ull) {
			/* Silent, or only not read yet (a burst kept this thread sending)? */
			char b;
			if (recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) >= 0) {
				s->last_recv_ns = now;
				continue;
			}
			fail_over(cfg, st, s, now);
			continue;
		}
		if (s->out_high > s->out_expected && now - s->last_rtx_req_ns > RTX_REQ_NS)
			request_retransmit(st, s, s->out_expected, out_hole(s), now);
		if (waiting && now - st->t_last_answer > probe_ns &&
		    now - s->last_resend_ns > probe_ns && s->next_seq > 1) {
			/* Nothing answered for a while: resend the last datagram. If the gateway
			 * has it, it is a duplicate; if not, it answers with a SequenceGap. A lost
			 * tail of answers shows in the gateway's next Heartbeat (next_seq), which
			 * out_gap() turns into a RetransmitRequest; asking blindly here would only
			 * make a slow gateway send everything twice. */
			uint64_t from = s->next_seq > cfg->batch ? s->next_seq - cfg->batch : 1;
			resend_from(cfg, st, s, from, now);
			probed = true;
		}
		if (now - s->last_send_ns > (uint64_t)s->heartbeat_ms * 500000ull) {
			struct xe_heartbeat hb;
			memset(&hb, 0, sizeof(hb));
			hb.type = XE_HEARTBEAT;
			hb.next_seq = s->next_seq;
			hb.client_ts = now;
			session_send_session_msg(s, &hb, XE_F_HEARTBEAT);
			s->last_send_ns = now;
		}
	}
	if (probed && probe_ns < 1000000000ull)
		probe_ns *= 2;
}

int run_load(struct config *cfg, struct stats *st)
{
	rng = cfg->seed ? cfg->seed : 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < LG_BURST; i++) {
		tx_iov[i].iov_base = tx_buf[i];
		tx_mm[i].msg_hdr.msg_iov = &tx_iov[i];
		tx_mm[i].msg_hdr.msg_iovlen = 1;
		rx_iov[i].iov_base = rx_buf[i];
		rx_iov[i].iov_len = sizeof(rx_buf[i]);
		rx_mm[i].msg_hdr.msg_iov = &rx_iov[i];
		rx_mm[i].msg_hdr.msg_iovlen = 1;
	}
	uint64_t start = now_ns(), last_timer = start;
	uint64_t deadline = start + (uint64_t)(cfg->duration_s * 1e9);
	uint64_t drain_end = 0;
	unsigned rr = 0;
	st->t_start = start;
	st->t_last_answer = start;
	for (unsigned i = 0; cfg->async_login && i < cfg->nsess; i++)
		cfg->sess[i].login_due_ns = start + 1 + (uint64_t)(i * cfg->login_stagger_ms * 1e6);
	for (;;) {
		uint64_t now = now_ns();
		bool sending = st->sent < cfg->count && now < deadline && !lg_stop;
		if (sending) {
			uint64_t want;
			if (cfg->rate > 0) {
				uint64_t due = (uint64_t)((double)(now - start) * cfg->rate / 1e9);
				want = due > st->sent ? due - st->sent : 0;
			} else {
				uint64_t out = st->sent - st->answered;
				want = out < cfg->window ? cfg->window - out : 0;
			}
			if (want > cfg->count - st->sent)
				want = cfg->count - st->sent;
			/* Full datagrams only, except for the very last one. */
			if (st->sent + want < cfg->count)
				want -= want % cfg->batch;
			for (unsigned k = 0; k < cfg->nsess && want; k++) {
				struct session *s = &cfg->sess[rr++ % cfg->nsess];
				if (s->logged_in)
					want -= send_orders(cfg, st, s, want, now);
			}
		} else {
			if (!drain_end) {
				st->t_end_send = now;
				drain_end = now + (uint64_t)(cfg->drain_s * 1e9);
			}
			if (st->answered >= st->sent || now >= drain_end || lg_stop > 1)
				break;
		}
		uint64_t before = st->datagrams + st->rx_socket + st->rx_xsk;
		receive_all(cfg, st, now);
		if (st->datagrams + st->rx_socket + st->rx_xsk != before)
			st->busy_ns += now_ns() - now;
		if (now - last_timer > 1000000ull) {
			/* Probe a silent tail while draining, or when a closed loop's window is
			 * stuck on answers that may have been lost. */
			bool stuck = sending && cfg->rate <= 0 &&
				     st->sent - st->answered + cfg->batch > cfg->window;
			timers(cfg, st, (!sending || stuck) && st->answered < st->sent, now);
			last_timer = now;
		}
		bool any = false;
		for (unsigned i = 0; i < cfg->nsess; i++)
			any |= cfg->sess[i].logged_in || cfg->sess[i].moving ||
			       (cfg->async_login && !cfg->sess[i].ever_logged_in);
		if (!any)
			break;
	}
	if (!st->t_end_send)
		st->t_end_send = now_ns();
	return 0;
}
