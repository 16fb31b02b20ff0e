// SPDX-License-Identifier: BSD-2-Clause
/*
 * The user-space twin of xdp_steer (xdpex_filter.h): xdpex_check.h over plain-memory state. The
 * allowlist is searched longest prefix first, one binary search per prefix length in use; the
 * rate table and the bindings are open-addressing hash tables with linear probing, sized at
 * creation (no allocation per packet).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex_filter.h"

#define RATE_SLOTS (2 * XDPEX_MAX_SOURCES) /* power of two */
#define RATE_PROBE 8 /* slots looked at before replacing one */
#define BIND_SLOTS (2 * XDPEX_MAX_SESSIONS) /* power of two */

struct rate_slot {
	__u32 addr; /* network order; 0 = empty */
	__u64 tat;
};

struct bind_slot {
	__u32 sid; /* 0 = empty */
	__u32 addr;
	__u16 port;
	__u8 tomb; /* deleted: keeps a probe chain going */
};

struct xdpex_filter {
	struct xdpex_filter_cfg **slot;
	const struct xdpex_filter_cfg *cfg; /* the snapshot of the burst */
	struct rate_slot *rate;
	struct bind_slot *bind;
	__u64 now;
	__u64 cnt[XDPEX_CNT_MAX];
};

static __u32 hash32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	x *= 0x846ca68b;
	return x ^ (x >> 16);
}

/* ---- the checks' state, for xdpex_check.h ---- */

#define XDPEX_ENV struct xdpex_filter

static int xdpex_env_allowed(XDPEX_ENV *f, __u32 saddr)
{
	const struct xdpex_filter_cfg *c = f->cfg;
	__u32 a = ntohl(saddr);

	for (__u32 i = 0; i < c->nlen; i++) {
		__u32 mask = c->lens[i] ? ~0u << (32 - c->lens[i]) : 0, want = a & mask;
		const __u32 *v = c->addrs + c->first[i];
		__u32 lo = 0, hi = c->count[i];

		while (lo < hi) {
			__u32 mid = (lo + hi) / 2;

			if (v[mid] < want)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < c->count[i] && v[lo] == want)
			return 1;
	}
	return 0;
}

static struct bind_slot *bind_find(struct xdpex_filter *f, __u32 sid)
{
	for (__u32 i = hash32(sid), n = 0; n < BIND_SLOTS; i++, n++) {
		struct bind_slot *b = &f->bind[i & (BIND_SLOTS - 1)];

		if (b->sid == sid && !b->tomb)
			return b;
		if (!b->sid && !b->tomb)
			return NULL;
	}
	return NULL;
}

static int xdpex_env_spoofed(XDPEX_ENV *f, __u32 session_id, __u32 saddr, __u16 sport)
{
	const struct bind_slot *b = bind_find(f, session_id);

	return b && (b->addr != saddr || b->port != sport);
}

static int xdpex_env_rate_ok(XDPEX_ENV *f, const struct xdpex_cfg *cfg, __u32 saddr)
{
	__u32 h = hash32(saddr);
	struct rate_slot *victim = NULL;

	for (__u32 n = 0; n < RATE_PROBE; n++) {
		struct rate_slot *r = &f->rate[(h + n) & (RATE_SLOTS - 1)];

		if (r->addr == saddr)
			return xdpex_gcra(&r->tat, f->now, cfg->interval_ns, cfg->tolerance_ns);
		if (!r->addr) {
			victim = r;
			break;
		}
		/* The bucket that is fullest again is the one least recently charged. */
		if (!victim || r->tat < victim->tat)
			victim = r;
	}
	victim->addr = saddr;
	victim->tat = f->now + cfg->interval_ns;
	return 1;
}

#include "xdpex_check.h"

/* ---- configuration snapshots ---- */

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

struct xdpex_filter_cfg *xdpex_filter_cfg_new(const __u16 *ports_be, int nports, __u32 flags,
					      const struct xdpex_lpm_key *prefixes, int nprefixes,
					      __u64 rate_pps, __u64 burst)
{
	struct xdpex_filter_cfg *c;
	__u32 at = 0;

	if (nports < 0 || nports > XDPEX_MAX_PORTS || nprefixes < 0 || rate_pps > 1000000000ULL ||
	    (rate_pps && burst < 1)) {
		errno = EINVAL;
		return NULL;
	}
	for (int i = 0; i < nprefixes; i++) {
		__u32 len = prefixes[i].prefixlen, a = ntohl(prefixes[i].addr);

		if (len > 32 || (len < 32 && (a & ~(len ? ~0u << (32 - len) : 0)))) {
			errno = EINVAL;
			return NULL;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->addrs = calloc((size_t)nprefixes + 1, sizeof(*c->addrs)))) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	for (int i = 0; i < nports; i++)
		c->c.ports[i] = ports_be[i];
	c->c.flags = flags;
	c->c.allow_cnt = (__u32)nprefixes;
	c->c.rate_pps = rate_pps;
	c->c.burst = burst;
	c->c.interval_ns = rate_pps ? 1000000000ULL / rate_pps : 0;
	c->c.tolerance_ns = rate_pps ? (burst - 1) * c->c.interval_ns : 0;
	for (int len = 32; len >= 0; len--) {
		__u32 n = 0;

		for (int i = 0; i < nprefixes; i++)
			if (prefixes[i].prefixlen == (__u32)len)
				c->addrs[at + n++] = ntohl(prefixes[i].addr);
		if (!n)
			continue;
		qsort(c->addrs + at, n, sizeof(*c->addrs), cmp_u32);
		c->lens[c->nlen] = (__u8)len;
		c->first[c->nlen] = at;
		c->count[c->nlen] = n;
		c->nlen++;
		at += n;
	}
	return c;
}

void xdpex_filter_publish(struct xdpex_filter_cfg **slot, struct xdpex_filter_cfg *cfg)
{
	cfg->retired = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	__atomic_store_n(slot, cfg, __ATOMIC_RELEASE);
}

void xdpex_filter_cfg_free_all(struct xdpex_filter_cfg **slot)
{
	struct xdpex_filter_cfg *c = *slot;

	while (c) {
		struct xdpex_filter_cfg *next = c->retired;

		free(c->addrs);
		free(c);
		c = next;
	}
	*slot = NULL;
}

/* ---- per-queue filters ---- */

struct xdpex_filter *xdpex_filter_new(struct xdpex_filter_cfg **slot)
{
	struct xdpex_filter *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->slot = slot;
	f->rate = calloc(RATE_SLOTS, sizeof(*f->rate));
	f->bind = calloc(BIND_SLOTS, sizeof(*f->bind));
	if (!f->rate || !f->bind) {
		xdpex_filter_free(f);
		return NULL;
	}
	return f;
}

void xdpex_filter_free(struct xdpex_filter *f)
{
	if (!f)
		return;
	free(f->rate);
	free(f->bind);
	free(f);
}

int xdpex_filter_run(struct xdpex_filter *f, const void *frame, uint32_t len, uint64_t now_ns,
		     __u32 *reason)
{
	const struct xdpex_filter_cfg *c = __atomic_load_n(f->slot, __ATOMIC_ACQUIRE);
	int v;

	__atomic_store_n(&f->cnt[XDPEX_CNT_RX], f->cnt[XDPEX_CNT_RX] + 1, __ATOMIC_RELAXED);
	if (c != f->cfg) {
		/* A new rate or allowlist: the kernel side forgets the sources too (rate_reset). */
		if (f->cfg && (c->c.interval_ns != f->cfg->c.interval_ns ||
			       c->c.tolerance_ns != f->cfg->c.tolerance_ns))
			memset(f->rate, 0, RATE_SLOTS * sizeof(*f->rate));
		f->cfg = c;
	}
	f->now = now_ns;
	v = xdpex_classify((void *)frame, (char *)frame + len, &c->c, f, reason);
	if (v != XDPEX_V_OURS)
		xdpex_filter_count(f, *reason);
	return v;
}

void xdpex_filter_count(struct xdpex_filter *f, __u32 reason)
{
	if (reason < XDPEX_CNT_MAX)
		__atomic_store_n(&f->cnt[reason], f->cnt[reason] + 1, __ATOMIC_RELAXED);
}

int xdpex_filter_bind(struct xdpex_filter *f, __u32 session_id, __u32 addr, __u16 port)
{
	struct bind_slot *b = bind_find(f, session_id), *tomb = NULL;

	if (!session_id)
		return -EINVAL;
	if (b) {
		b->addr = addr;
		b->port = port;
		return 0;
	}
	for (__u32 i = hash32(session_id), n = 0; n < BIND_SLOTS; i++, n++) {
		struct bind_slot *s = &f->bind[i & (BIND_SLOTS - 1)];

		if (s->tomb && !tomb)
			tomb = s;
		if (!s->sid && !s->tomb) {
			b = tomb ? tomb : s;
			*b = (struct bind_slot){.sid = session_id, .addr = addr, .port = port};
			return 0;
		}
	}
	if (!tomb)
		return -ENOSPC;
	*tomb = (struct bind_slot){.sid = session_id, .addr = addr, .port = port};
	return 0;
}

void xdpex_filter_unbind(struct xdpex_filter *f, __u32 session_id)
{
	struct bind_slot *b = bind_find(f, session_id);

	if (b)
		b->tomb = 1;
}

void xdpex_filter_counters(const struct xdpex_filter *f, __u64 *out)
{
	for (int i = 0; i < XDPEX_CNT_MAX; i++)
		out[i] += __atomic_load_n(&f->cnt[i], __ATOMIC_RELAXED);
}
