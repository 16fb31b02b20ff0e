/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Sessions of xdpex-loadgen: one connected, non-blocking UDP socket per session (the gateway binds
 * a session to its source address and port), login with the HMAC-SHA256 proof of
 * docs/protocol.md, session-message datagrams (Heartbeat, RetransmitRequest, Logout) and the
 * final logout, which waits briefly for the last answers and the gateway's Logout.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loadgen.h"

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif

static const char *const login_reasons[] = {
    [XE_LOGIN_UNKNOWN_SESSION] = "UNKNOWN_SESSION",
    [XE_LOGIN_BAD_PROOF] = "BAD_PROOF",
    [XE_LOGIN_STALE] = "STALE",
    [XE_LOGIN_REPLAYED] = "REPLAYED",
    [XE_LOGIN_BOUND_ELSEWHERE] = "BOUND_ELSEWHERE",
    [XE_LOGIN_DISABLED] = "DISABLED",
    [XE_LOGIN_BAD_SEQUENCE] = "BAD_SEQUENCE",
};

const char *login_reason_name(unsigned r)
{
	if (r < sizeof(login_reasons) / sizeof(login_reasons[0]) && login_reasons[r])
		return login_reasons[r];
	return "UNKNOWN_REASON";
}

int session_open(const struct config *cfg, struct session *s)
{
	int one = 1, buf = 8 << 20;
	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	/* Large buffers absorb bursts; FORCE works as root, the plain option otherwise. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)))
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)))
		setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (cfg->busy_poll_us > 0) {
		setsockopt(s->fd, SOL_SOCKET, SO_BUSY_POLL, &cfg->busy_poll_us, sizeof(int));
		setsockopt(s->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one));
	}
	if (cfg->have_bind) {
		struct sockaddr_in b = cfg->bind;
		b.sin_port = 0;
		if (bind(s->fd, (struct sockaddr *)&b, sizeof(b)))
			return -errno;
	}
	if (connect(s->fd, (const struct sockaddr *)&cfg->servers[s->srv], sizeof(cfg->server)))
		return -errno;
	socklen_t alen = sizeof(s->local);
	if (getsockname(s->fd, (struct sockaddr *)&s->local, &alen))
		return -errno;
	return 0;
}

/* Points the session's socket at cfg->servers[s->srv] (failover: the next gateway). */
int session_retarget(const struct config *cfg, struct session *s)
{
	if (connect(s->fd, (const struct sockaddr *)&cfg->servers[s->srv], sizeof(cfg->server)))
		return -errno;
	return 0;
}

/* Sends one session message in a seq-0 datagram. */
int session_send_session_msg(struct session *s, const void *msg, uint8_t flags)
{
	uint8_t d[XE_HDR_SIZE + XE_MSG_SIZE];
	struct xe_hdr *h = (struct xe_hdr *)d;
	memset(h, 0, sizeof(*h));
	h->magic = XE_MAGIC;
	h->version = XE_VERSION;
	h->flags = flags;
	h->session_id = s->id;
	h->seq = 0;
	h->count = 1;
	h->length = sizeof(d);
	memcpy(d + XE_HDR_SIZE, msg, XE_MSG_SIZE);
	if (send(s->fd, d, sizeof(d), 0) != (ssize_t)sizeof(d))
		return -errno;
	return 0;
}

int session_send_login(struct session *s, uint64_t next_seq, uint64_t *ts_out)
{
	struct xe_login m;
	uint8_t in[20];
	unsigned int mlen = XE_HMAC_SIZE;
	memset(&m, 0, sizeof(m));
	m.type = XE_LOGIN;
	m.session_id = s->id;
	m.next_seq = next_seq;
	if (getrandom(&m.nonce, sizeof(m.nonce), 0) != sizeof(m.nonce))
		return -EIO;
	m.client_ts = now_ns();
	memcpy(in, &m.session_id, 4); /* the host is little-endian, as the wire */
	memcpy(in + 4, &m.client_ts, 8);
	memcpy(in + 12, &m.nonce, 8);
	if (!HMAC(EVP_sha256(), s->secret, (int)s->secret_len, in, sizeof(in), m.hmac, &mlen))
		return -EIO;
	*ts_out = m.client_ts;
	return session_send_session_msg(s, &m, 0);
}

/* Logs in: up to 3 attempts of 2 s each (with several --server addresses one of 300 ms: a
 * standby does not answer, the caller tries the next). Returns 0, a negative errno, or the
 * positive LoginRejected reason. */
int session_login(const struct config *cfg, struct session *s)
{
	uint8_t buf[2048];
	bool several = cfg->nservers > 1;
	for (int attempt = 0; attempt < (several ? 1 : 3); attempt++) {
		uint64_t ts;
		int err = session_send_login(s, 0, &ts);
		if (err)
			return err;
		uint64_t deadline = now_ns() + (several ? 300000000ull : 2000000000ull);
		for (;;) {
			uint64_t now = now_ns();
			if (now >= deadline)
				break;
			struct pollfd p = {.fd = s->fd, .events = POLLIN};
			int r = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
			if (r < 0 && errno != EINTR)
				return -errno;
			ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				if (errno == ECONNREFUSED) /* nothing listening yet: retry */
					break;
				return -errno;
			}
			if (n < XE_HDR_SIZE + XE_MSG_SIZE)
				continue;
			const struct xe_hdr *h = (const struct xe_hdr *)buf;
			if (h->magic != XE_MAGIC || h->seq != 0 || h->session_id != s->id)
				continue;
			const uint8_t *m = buf + XE_HDR_SIZE;
			if (m[0] == XE_LOGIN_ACCEPTED) {
				const struct xe_login_accepted *a = (const void *)m;
				if (a->echo_ts != ts)
					continue; /* answer to an earlier attempt */
				s->logged_in = true;
				s->next_seq = a->next_in_seq ? a->next_in_seq : 1;
				s->out_expected = a->next_out_seq ? a->next_out_seq : 1;
				s->out_high = s->out_expected;
				s->heartbeat_ms = a->heartbeat_ms ? a->heartbeat_ms : 1000;
				s->last_send_ns = s->last_recv_ns = now_ns();
				return 0;
			}
			if (m[0] == XE_LOGIN_REJECTED) {
				const struct xe_login_rejected *rj = (const void *)m;
				if (rj->echo_ts == ts)
					return rj->reason ? rj->reason : 255;
			}
		}
	}
	return -ETIMEDOUT;
}

/* Logs every session out and keeps receiving (and counting answers) until each has seen the
 * gateway's Logout or 500 ms have passed. */
void session_logout(struct config *cfg, struct stats *st)
{
	uint8_t buf[2048];
	for (unsigned i = 0; i < cfg->nsess; i++) {
		struct session *s = &cfg->sess[i];
		if (!s->logged_in)
			continue;
		struct xe_logout m;
		memset(&m, 0, sizeof(m));
		m.type = XE_LOGOUT;
		m.reason = XE_LOGOUT_USER;
		m.client_ts = now_ns();
		s->logout_sent = true;
		if (session_send_session_msg(s, &m, 0))
			s->logged_in = false;
	}
	uint64_t deadline = now_ns() + 500000000ull;
	for (;;) {
		bool waiting = false;
		struct pollfd p[LG_MAX_SESSIONS];
		for (unsigned i = 0; i < cfg->nsess; i++) {
			p[i].fd = cfg->sess[i].fd;
			p[i].events = POLLIN;
			waiting |= cfg->sess[i].logged_in;
		}
		uint64_t now = now_ns();
		if (!waiting || now >= deadline)
			break;
		if (poll(p, cfg->nsess, 10) <= 0)
			continue;
		for (unsigned i = 0; i < cfg->nsess; i++) {
			ssize_t n;
			while ((n = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
				handle_datagram(cfg, st, &cfg->sess[i], buf, (size_t)n, now_ns());
		}
	}
}

/* A new socket, so a new source port (the old one's flow landed on a gateway queue that does not
 * own the session: XE_LOGIN_BOUND_ELSEWHERE, docs/dataplane.md "Queues"). */
int session_reopen(const struct config *cfg, struct session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	return session_open(cfg, s);
}

/* ---- logins inside the run (--login-stagger, --relogin-ms) ----
 * A session's first Login is due at its staggered start; an unanswered Login is replaced by a
 * fresh one (new timestamp and nonce) after LG_LOGIN_RETRY_NS, so a gateway that was killed and
 * restarted meanwhile is simply asked again; a LoginRejected BOUND_ELSEWHERE before the session
 * was ever logged in takes a new source port. A session logged in logs in again every
 * --relogin-ms from the same socket (the gateway accepts a Login from the bound address and
 * serves what the Login's next_seq asks for), while its orders go on. */

static void login_record(struct stats *st, const struct session *s, int32_t result, uint64_t now)
{
	if (s->login_rec >= LG_LOGIN_LOG)
		return;
	struct login_rec *r = &st->login_log[s->login_rec];
	if (r->done_ns == 0 && r->result == -1) {
		r->result = result;
		r->done_ns = now;
	}
}

/* Sends the session's Login now (login_start decided it is due). */
static void login_send(struct stats *st, struct session *s, uint64_t now)
{
	uint64_t ts;
	/* next_seq: what the gateway sent that this session has not applied (0 before the
	 * first login: nothing to ask for) */
	if (session_send_login(s, s->ever_logged_in ? s->out_expected : 0, &ts))
		ts = now_ns(); /* not sent (a socket error): retried after LG_LOGIN_RETRY_NS */
	s->login_ts = ts;
	s->login_sent_ns = now;
	s->login_send_ns = 0;
	if (s->login_rec < LG_LOGIN_LOG)
		st->login_log[s->login_rec].sent_ns = now_ns();
}

void login_start(const struct config *cfg, struct stats *st, struct session *s, uint64_t now)
{
	uint64_t started = now_ns();
	if (s->login_pending) /* unanswered: that attempt is over (its record stays -1) */
		st->login_retries++;
	s->login_pending = true;
	s->login_ts = 0; /* (no answer matches until it is sent) */
	s->login_sent_ns = now;
	st->logins_sent++;
	s->login_rec = LG_LOGIN_LOG;
	if (st->nlogin_log < LG_LOGIN_LOG) {
		struct login_rec *r = &st->login_log[st->nlogin_log];
		s->login_rec = st->nlogin_log++;
		r->sid = s->id;
		r->result = -1;
		r->started_ns = started; /* (before the stderr line: what a watcher sees first) */
		r->sent_ns = r->done_ns = 0;
	}
	/* --log-logins: the line first, the Login LG_LOGIN_LEAD_NS later, so whoever watches
	 * can act while this login is under way (the soak kills the gateway then) */
	if (cfg->log_logins) {
		fprintf(stderr, "login %u\n", s->id);
		fflush(stderr);
		s->login_send_ns = now + LG_LOGIN_LEAD_NS;
		return;
	}
	login_send(st, s, now);
}

/* LoginAccepted or LoginRejected (m) for session s while a Login of the run is outstanding. */
void login_answer(const struct config *cfg, struct stats *st, struct session *s, const uint8_t *m,
		  uint64_t now)
{
	if (!s->login_pending)
		return;
	if (m[0] == XE_LOGIN_ACCEPTED) {
		const struct xe_login_accepted *a = (const void *)m;
		if (a->echo_ts != s->login_ts)
			return; /* an earlier attempt's answer */
		login_record(st, s, 0, now);
		s->login_pending = false;
		st->logins_accepted++;
		if (!s->logged_in) {
			s->next_seq = a->next_in_seq ? a->next_in_seq : 1;
			s->out_expected = a->next_out_seq ? a->next_out_seq : 1;
			s->out_high = s->out_expected;
			s->last_send_ns = now;
		} else if (a->next_out_seq > s->out_high) {
			s->out_high = a->next_out_seq;
		}
		s->logged_in = s->ever_logged_in = true;
		s->heartbeat_ms = a->heartbeat_ms ? a->heartbeat_ms : 1000;
		s->last_recv_ns = now;
		s->login_due_ns = cfg->relogin_ms > 0 ? now + (uint64_t)(cfg->relogin_ms * 1e6) : 0;
		return;
	}
	const struct xe_login_rejected *rj = (const void *)m;
	if (rj->echo_ts != s->login_ts)
		return;
	login_record(st, s, rj->reason ? rj->reason : 255, now);
	s->login_pending = false;
	st->logins_rejected++;
	if (rj->reason == XE_LOGIN_BOUND_ELSEWHERE && !s->ever_logged_in &&
	    s->rebinds < LG_REBIND_MAX && !session_reopen(cfg, s)) {
		s->rebinds++;
		st->login_rebinds++;
		s->login_due_ns = now; /* at once, from the new port */
		return;
	}
	s->login_due_ns = now + LG_LOGIN_RETRY_NS;
}

/* Every timer turn: the session's Login due, or one unanswered for too long. */
void login_tick(const struct config *cfg, struct stats *st, struct session *s, uint64_t now)
{
	if (s->logout_sent || !s->login_due_ns)
		return;
	if (s->login_send_ns) {
		if (now >= s->login_send_ns)
			login_send(st, s, now);
		return;
	}
	if (s->login_pending) {
		if (now > s->login_sent_ns && now - s->login_sent_ns > LG_LOGIN_RETRY_NS)
			login_start(cfg, st, s, now);
		return;
	}
	if (now >= s->login_due_ns)
		login_start(cfg, st, s, now);
}
