// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdp_steer: the gateway's XDP program. For every received frame it runs the gateway's checks
 * (xdpex_check.h, shared with user space: not ours -> XDP_PASS, malformed or refused -> XDP_DROP,
 * each counted by reason) before any user space sees it, and hands a valid datagram to the AF_XDP
 * socket of its rx queue: xsks_map[rx queue] -> XDP_REDIRECT redirect_cnt, or, with no socket on
 * the queue, XDP_PASS no_sock_cnt (so kernel-UDP mode still works). The checks' state lives in the
 * maps below (allowlist, per-source rate, session bindings), described in xdpex_maps.h.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpex_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* rx queue -> AF_XDP socket bound to it; the dataplane inserts one per queue it serves */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, XDPEX_MAX_QUEUES);
} xsks_map SEC(".maps");

/* live configuration: ports, rate limit, allowlist size (one entry, written by user space) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xdpex_cfg);
	__uint(max_entries, 1);
} cfg_map SEC(".maps");

/* source allowlist; consulted only when cfg.allow_cnt != 0 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct xdpex_lpm_key);
	__type(value, __u8);
	__uint(max_entries, XDPEX_MAX_ALLOW);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} allow_map SEC(".maps");

/* per-source rate limiter state; least recently seen sources are evicted */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, struct xdpex_rate);
	__uint(max_entries, XDPEX_MAX_SOURCES);
} rate_map SEC(".maps");

/* session id -> bound source address, written by the dataplane at login */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct xdpex_bind);
	__uint(max_entries, XDPEX_MAX_SESSIONS);
} session_map SEC(".maps");

/* per-CPU packet counters by enum xdpex_cnt; user space sums the CPUs */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XDPEX_CNT_MAX);
} stats_map SEC(".maps");

static __always_inline void count(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&stats_map, &reason);

	if (v)
		*v += 1;
}

/* ---- the checks' state, for xdpex_check.h ---- */

struct xdpex_bpf_env {
	int unused;
};
#define XDPEX_ENV struct xdpex_bpf_env

static __always_inline int xdpex_env_allowed(XDPEX_ENV *env, __u32 saddr)
{
	struct xdpex_lpm_key lpm = {.prefixlen = 32, .addr = saddr};

	(void)env;
	return bpf_map_lookup_elem(&allow_map, &lpm) != NULL;
}

static __always_inline int xdpex_env_spoofed(XDPEX_ENV *env, __u32 session_id, __u32 saddr,
					     __u16 sport)
{
	struct xdpex_bind *bind = bpf_map_lookup_elem(&session_map, &session_id);

	(void)env;
	return bind && (bind->addr != saddr || bind->port != sport);
}

static __always_inline int xdpex_env_rate_ok(XDPEX_ENV *env, const struct xdpex_cfg *cfg,
					     __u32 saddr)
{
	__u64 now = bpf_ktime_get_ns();
	struct xdpex_rate *st = bpf_map_lookup_elem(&rate_map, &saddr), fresh;

	(void)env;
	if (!st) {
		fresh.tat = now + cfg->interval_ns;
		bpf_map_update_elem(&rate_map, &saddr, &fresh, BPF_ANY);
		return 1;
	}
	/* Racing CPUs may each admit one datagram on the same source: the limit is exact per
	 * CPU and approximate by at most one datagram per CPU across them. */
	return xdpex_gcra(&st->tat, now, cfg->interval_ns, cfg->tolerance_ns);
}

#include "xdpex_check.h"

SEC("xdp")
int xdp_steer(struct xdp_md *ctx)
{
	struct xdpex_bpf_env env;
	struct xdpex_cfg *cfg;
	__u32 key = 0, reason;
	int v, action;

	count(XDPEX_CNT_RX);
	cfg = bpf_map_lookup_elem(&cfg_map, &key);
	if (!cfg) {
		count(XDPEX_CNT_NOT_OURS);
		return XDP_PASS;
	}
	v = xdpex_classify((void *)(long)ctx->data, (void *)(long)ctx->data_end, cfg, &env,
			   &reason);
	if (v != XDPEX_V_OURS) {
		count(reason);
		return v == XDPEX_V_PASS ? XDP_PASS : XDP_DROP;
	}
	action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	count(action == XDP_REDIRECT ? XDPEX_CNT_REDIRECT : XDPEX_CNT_NO_SOCK);
	return action;
}
