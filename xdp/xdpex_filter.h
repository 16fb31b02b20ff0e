/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The XDP program's checks in user space (xdpex_check.h, the same code), with the state the maps
 * hold in the kernel kept in plain memory: for a dataplane backend that sees raw frames without
 * an XDP program in front (DPDK), and for the tests that hold both to one verdict table.
 *
 * Two parts with different owners:
 *   struct xdpex_filter_cfg  ports, flags, allowlist, rate: immutable once published; the
 *                            control thread builds a new one and publishes it (xdpex_filter_
 *                            publish), readers pick the current one per burst.
 *   struct xdpex_filter      one per queue, owned by that queue's thread: its view of the
 *                            current cfg, the per-source rate table, the session bindings and
 *                            counters by enum xdpex_cnt (read by other threads for stats).
 *
 * Differences from the kernel side, by design: rate state and bindings are per queue (the
 * kernel's are global; a session is bound where its queue runs, and a source whose datagrams
 * reach two queues has a bucket on each); the rate table holds XDPEX_MAX_SOURCES sources and,
 * full, replaces the source in the probe window whose bucket is fullest (least recently
 * charged), where the kernel's LRU replaces the least recently seen.
 */
#ifndef XDPEX_FILTER_H
#define XDPEX_FILTER_H

#include <linux/types.h>
#include <stdint.h>

#include "xdpex_maps.h"

struct xdpex_filter_cfg {
	struct xdpex_cfg c; /* ports, flags, allow_cnt, rate: the same struct as cfg_map's */
	uint32_t nlen; /* distinct prefix lengths in use, longest first */
	uint8_t lens[33];
	uint32_t first[33]; /* prefixes of lens[i]: addrs[first[i] .. first[i] + count[i]) */
	uint32_t count[33];
	uint32_t *addrs; /* network addresses, host order, sorted within each length */
	struct xdpex_filter_cfg *retired; /* older snapshots, freed with the last one */
};

struct xdpex_filter;

/* A configuration snapshot: nports gateway ports (network order, at most XDPEX_MAX_PORTS),
 * flags (enum xdpex_cfg_flags), the allowlist as LPM keys (network-order addresses) and the
 * per-source rate (0 = unlimited). NULL with errno EINVAL on a bad prefix (host bits set, length
 * over 32) or too many ports, ENOMEM without memory. */
struct xdpex_filter_cfg *xdpex_filter_cfg_new(const __u16 *ports_be, int nports, __u32 flags,
					      const struct xdpex_lpm_key *prefixes, int nprefixes,
					      __u64 rate_pps, __u64 burst);
/* Makes cfg the current snapshot of `slot` (an atomic pointer every filter of the process
 * reads); the previous one is kept until xdpex_filter_cfg_free_all. */
void xdpex_filter_publish(struct xdpex_filter_cfg **slot, struct xdpex_filter_cfg *cfg);
void xdpex_filter_cfg_free_all(struct xdpex_filter_cfg **slot);

struct xdpex_filter *xdpex_filter_new(struct xdpex_filter_cfg **slot);
void xdpex_filter_free(struct xdpex_filter *f);
/* The verdict (enum xdpex_verdict of xdpex_check.h) on one frame; counts rx and the reason.
 * XDPEX_V_OURS is not counted: the caller counts where the datagram went (redirect_cnt). */
int xdpex_filter_run(struct xdpex_filter *f, const void *frame, uint32_t len, uint64_t now_ns,
		     __u32 *reason);
void xdpex_filter_count(struct xdpex_filter *f, __u32 reason);
/* Session binding (at login) and its removal; addresses and ports in network order. */
int xdpex_filter_bind(struct xdpex_filter *f, __u32 session_id, __u32 addr, __u16 port);
void xdpex_filter_unbind(struct xdpex_filter *f, __u32 session_id);
/* Adds this filter's counters into out[XDPEX_CNT_MAX] (safe from another thread). */
void xdpex_filter_counters(const struct xdpex_filter *f, __u64 *out);

#endif /* XDPEX_FILTER_H */
