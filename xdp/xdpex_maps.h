/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The contract between the XDP program xdp_steer (xdpex.bpf.c) and user space (the loader
 * library, the xdpex-xdp tool, the dataplane, the control plane through pinned maps): map names,
 * key and value structs, counter reasons. Every struct is defined here once and included by both
 * sides; nothing is copied by hand. Addresses and ports are stored in network byte order, exactly
 * as they appear in the packet, so the BPF side compares them without conversion.
 *
 * Maps (pinned as <pin dir>/<name>, default pin dir XDPEX_PIN_DIR):
 *   xsks_map     XSKMAP    rx queue -> AF_XDP socket (written by the dataplane)
 *   cfg_map      ARRAY[1]  struct xdpex_cfg: gateway ports, rate limit, allowlist size, flags
 *   allow_map    LPM_TRIE  struct xdpex_lpm_key -> __u8: source allowlist (empty = allow all)
 *   rate_map     LRU_HASH  source IPv4 -> struct xdpex_rate: per-source rate limiter state
 *   session_map  HASH      session id -> struct xdpex_bind: address a session is bound to
 *   stats_map    PERCPU_ARRAY enum xdpex_cnt -> __u64: what happened to each packet, per CPU
 */
#ifndef XDPEX_MAPS_H
#define XDPEX_MAPS_H

#include <linux/types.h>

#define XDPEX_PIN_DIR "/sys/fs/bpf/xdpex"
#define XDPEX_PROG_NAME "xdp_steer"

/* Map sizes; override with -D at build time of both sides. */
#ifndef XDPEX_MAX_QUEUES
#define XDPEX_MAX_QUEUES 64 /* NIC rx queues that can carry an AF_XDP socket */
#endif
#ifndef XDPEX_MAX_ALLOW
#define XDPEX_MAX_ALLOW 4096 /* allowlist prefixes */
#endif
#ifndef XDPEX_MAX_SOURCES
#define XDPEX_MAX_SOURCES 65536 /* sources tracked by the rate limiter (LRU) */
#endif
#ifndef XDPEX_MAX_SESSIONS
#define XDPEX_MAX_SESSIONS 65536 /* bound sessions */
#endif
#define XDPEX_MAX_PORTS 8 /* gateway UDP ports in struct xdpex_cfg */

/* struct xdpex_cfg.flags */
enum xdpex_cfg_flags {
	/* Pass non-first IPv4 UDP fragments to the kernel. Their UDP port cannot be seen, so by
	 * default they are dropped (fragment_cnt): the gateway protocol never fragments, and the
	 * first fragment of a datagram to a gateway port is always dropped anyway. */
	XDPEX_CFG_PASS_FRAGS = 0x1,
};

/* The single entry of cfg_map. Written by user space only (one writer: the loader library);
 * read by every packet. */
struct xdpex_cfg {
	__u16 ports[XDPEX_MAX_PORTS]; /* gateway UDP ports, network order; 0 = unused slot */
	__u32 flags; /* enum xdpex_cfg_flags */
	__u32 allow_cnt; /* prefixes in allow_map; 0 = every source is allowed */
	__u64 rate_pps; /* per-source datagrams per second; 0 = unlimited */
	__u64 burst; /* datagrams a source may send back to back */
	__u64 interval_ns; /* 1e9 / rate_pps, derived by user space; 0 = unlimited */
	__u64 tolerance_ns; /* (burst - 1) * interval_ns, derived by user space */
};

/* allow_map key: prefixlen first, as BPF_MAP_TYPE_LPM_TRIE requires. */
struct xdpex_lpm_key {
	__u32 prefixlen; /* 0..32 */
	__u32 addr; /* IPv4, network order */
};

/* rate_map value: a GCRA limiter (token bucket expressed as one timestamp). A datagram at time
 * `now` passes when tat - now <= tolerance_ns, and then tat = max(tat, now) + interval_ns. */
struct xdpex_rate {
	__u64 tat; /* theoretical arrival time, bpf_ktime_get_ns() clock */
};

/* That rule, for both sides: 1 when a datagram at `now` is within the rate (and charges it),
 * 0 when over. interval_ns and tolerance_ns come from struct xdpex_cfg. */
static inline int xdpex_gcra(__u64 *tat, __u64 now, __u64 interval_ns, __u64 tolerance_ns)
{
	__u64 t = *tat > now ? *tat : now;

	if (t - now > tolerance_ns)
		return 0;
	*tat = t + interval_ns;
	return 1;
}

/* session_map value: where a logged-in session may send from. */
struct xdpex_bind {
	__u32 addr; /* IPv4, network order */
	__u16 port; /* UDP source port, network order */
	__u16 pad;
};

/* stats_map keys: each packet the program sees bumps rx_cnt and exactly one other counter, so
 * rx = redirect + no_sock + not_ours + every drop. Names (xdpex_cnt_names) are <event>_cnt. */
enum xdpex_cnt {
	XDPEX_CNT_RX = 0, /* rx_cnt: every packet the program ran on */
	XDPEX_CNT_REDIRECT, /* redirect_cnt: valid, handed to the AF_XDP socket of its queue */
	XDPEX_CNT_NO_SOCK, /* no_sock_cnt: valid, no AF_XDP socket on its queue: XDP_PASS */
	XDPEX_CNT_NOT_OURS, /* not_ours_cnt: not IPv4 UDP to a gateway port: XDP_PASS */
	XDPEX_CNT_TRUNCATED, /* truncated_cnt: UDP length beyond the packet, or < 24-byte header */
	XDPEX_CNT_BAD_MAGIC, /* bad_magic_cnt: header magic != XE_MAGIC */
	XDPEX_CNT_BAD_VERSION, /* bad_version_cnt: header version != XE_VERSION */
	XDPEX_CNT_BAD_COUNT, /* bad_count_cnt: count outside 1..XE_MAX_MSGS */
	XDPEX_CNT_BAD_LENGTH, /* bad_length_cnt: length != UDP payload or != 24 + 64 * count */
	XDPEX_CNT_BAD_SESSION, /* bad_session_cnt: session_id 0 */
	XDPEX_CNT_FRAGMENT, /* fragment_cnt: IPv4 fragment to a gateway port (or any later one) */
	XDPEX_CNT_NOT_ALLOWED, /* not_allowed_cnt: source not in a non-empty allowlist */
	XDPEX_CNT_SPOOFED, /* spoofed_cnt: bound session from another address or port */
	XDPEX_CNT_RATE_LIMIT, /* rate_limit_cnt: source over its rate */
	XDPEX_CNT_BAD_FLAGS, /* bad_flags_cnt: unknown flag bits, or FROM_GW / RETRANSMIT set */
	XDPEX_CNT_BAD_SEQ, /* bad_seq_cnt: seq + count - 1 overflows */
	XDPEX_CNT_MAX,
};

/* What the checks (xdpex_check.h) decide about a frame. */
enum xdpex_verdict {
	XDPEX_V_PASS = 0, /* not ours: the kernel's (XDP_PASS) or nobody's */
	XDPEX_V_DROP = 1, /* ours and refused: the counter says why */
	XDPEX_V_OURS = 2, /* a valid datagram for the dataplane */
};

#define XDPEX_CNT_NAMES \
	{ \
		"rx_cnt", "redirect_cnt", "no_sock_cnt", "not_ours_cnt", "truncated_cnt", \
		    "bad_magic_cnt", "bad_version_cnt", "bad_count_cnt", "bad_length_cnt", \
		    "bad_session_cnt", "fragment_cnt", "not_allowed_cnt", "spoofed_cnt", \
		    "rate_limit_cnt", "bad_flags_cnt", "bad_seq_cnt", \
	}

#endif /* XDPEX_MAPS_H */
