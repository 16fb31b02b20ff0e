// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdp_steer: the gateway's XDP program. For every received frame it decides, before any user
 * space sees it, whether the frame is ours (IPv4 UDP to a gateway port, one optional 802.1Q tag)
 * and, if so, whether it is a well-formed xdpex datagram from a source that may send it:
 *
 *   not ours (ARP, IPv6, TCP, other ports, ...)             -> XDP_PASS   not_ours_cnt
 *   ours but fragmented / truncated / bad header            -> XDP_DROP   <reason>_cnt
 *   source not allowed / bound session spoofed / over rate  -> XDP_DROP   <reason>_cnt
 *   valid                                                   -> xsks_map[rx queue]: XDP_REDIRECT
 *                                                              redirect_cnt, or, with no socket
 *                                                              on the queue, XDP_PASS no_sock_cnt
 *                                                              (so kernel-UDP mode still works)
 *
 * Parsers below follow one rule: they take a cursor and data_end, check bounds, advance the
 * cursor and return the next protocol (or a length) in host order, or -1 when the bytes are not
 * there. Maps and the structs they hold are described in xdpex_maps.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include <xdpex/proto.h>
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

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline void count(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&stats_map, &reason);

	if (v)
		*v += 1;
}

static __always_inline int verdict(__u32 reason, int action)
{
	count(reason);
	return action;
}

/* Ethernet plus at most one 802.1Q tag: returns the EtherType, host order. */
static __always_inline int parse_eth(void **pos, void *data_end)
{
	struct ethhdr *eth = *pos;
	struct vlan_hdr *vlh;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = bpf_ntohs(eth->h_proto);
	*pos = eth + 1;
	if (proto != ETH_P_8021Q)
		return proto;
	vlh = *pos;
	if ((void *)(vlh + 1) > data_end)
		return -1;
	*pos = vlh + 1;
	return bpf_ntohs(vlh->proto);
}

/* IPv4 with options: returns the IP protocol; *iphp points at the header. */
static __always_inline int parse_ipv4(void **pos, void *data_end, struct iphdr **iphp)
{
	struct iphdr *iph = *pos;
	__u32 hlen;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	hlen = iph->ihl * 4;
	if (*pos + hlen > data_end)
		return -1;
	*pos += hlen;
	*iphp = iph;
	return iph->protocol;
}

static __always_inline int is_gateway_port(const struct xdpex_cfg *cfg, __u16 port_be)
{
#pragma unroll
	for (int i = 0; i < XDPEX_MAX_PORTS; i++)
		if (cfg->ports[i] && cfg->ports[i] == port_be)
			return 1;
	return 0;
}

/* The header of an xdpex datagram of `plen` payload bytes: returns 0 or the drop reason. */
static __always_inline __u32 check_header(const struct xe_hdr *h, __u32 plen)
{
	__u16 count = h->count;

	if (h->magic != XE_MAGIC)
		return XDPEX_CNT_BAD_MAGIC;
	if (h->version != XE_VERSION)
		return XDPEX_CNT_BAD_VERSION;
	if (count < 1 || count > XE_MAX_MSGS)
		return XDPEX_CNT_BAD_COUNT;
	if (h->length != plen || plen != XE_HDR_SIZE + (__u32)count * XE_MSG_SIZE)
		return XDPEX_CNT_BAD_LENGTH;
	if (h->session_id == 0)
		return XDPEX_CNT_BAD_SESSION;
	return 0;
}

/* GCRA: 1 when the source is within its rate (and charges it), 0 when over. */
static __always_inline int rate_ok(const struct xdpex_cfg *cfg, __u32 saddr)
{
	struct xdpex_rate *st, fresh;
	__u64 now, tat;

	if (!cfg->interval_ns)
		return 1; /* before reading the clock: the helper call is a third of the cost */
	now = bpf_ktime_get_ns();
	st = bpf_map_lookup_elem(&rate_map, &saddr);
	if (!st) {
		fresh.tat = now + cfg->interval_ns;
		bpf_map_update_elem(&rate_map, &saddr, &fresh, BPF_ANY);
		return 1;
	}
	/* Racing CPUs may each admit one datagram on the same source: the limit is exact per
	 * CPU and approximate by at most one datagram per CPU across them. */
	tat = st->tat > now ? st->tat : now;
	if (tat - now > cfg->tolerance_ns)
		return 0;
	st->tat = tat + cfg->interval_ns;
	return 1;
}

SEC("xdp")
int xdp_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *pos = (void *)(long)ctx->data;
	struct xdpex_lpm_key lpm;
	struct xdpex_bind *bind;
	struct xdpex_cfg *cfg;
	struct iphdr *iph;
	struct udphdr *udph;
	struct xe_hdr *h;
	__u32 key = 0, reason, ulen, iplen, plen;
	__u16 frag;
	int action;

	count(XDPEX_CNT_RX);
	cfg = bpf_map_lookup_elem(&cfg_map, &key);
	if (!cfg)
		return verdict(XDPEX_CNT_NOT_OURS, XDP_PASS);
	if (parse_eth(&pos, data_end) != ETH_P_IP)
		return verdict(XDPEX_CNT_NOT_OURS, XDP_PASS);
	if (parse_ipv4(&pos, data_end, &iph) != IPPROTO_UDP)
		return verdict(XDPEX_CNT_NOT_OURS, XDP_PASS);

	frag = bpf_ntohs(iph->frag_off);
	if (frag & 0x1fff) {
		/* A later fragment: no UDP header, so the port is unknown (see XDPEX_CFG_PASS_FRAGS). */
		if (cfg->flags & XDPEX_CFG_PASS_FRAGS)
			return verdict(XDPEX_CNT_NOT_OURS, XDP_PASS);
		return verdict(XDPEX_CNT_FRAGMENT, XDP_DROP);
	}

	udph = pos;
	if ((void *)(udph + 1) > data_end)
		return verdict(XDPEX_CNT_NOT_OURS, XDP_PASS);
	if (!is_gateway_port(cfg, udph->dest))
		return verdict(XDPEX_CNT_NOT_OURS, XDP_PASS);
	if (frag & 0x2000) /* IP_MF: the first fragment of a datagram to our port */
		return verdict(XDPEX_CNT_FRAGMENT, XDP_DROP);

	/* The UDP length must fit the IP datagram and the frame, and hold an xdpex header. */
	ulen = bpf_ntohs(udph->len);
	iplen = bpf_ntohs(iph->tot_len);
	if (ulen < sizeof(*udph) + XE_HDR_SIZE || (void *)udph + ulen > data_end ||
	    (void *)udph + ulen > (void *)iph + iplen)
		return verdict(XDPEX_CNT_TRUNCATED, XDP_DROP);
	plen = ulen - sizeof(*udph);
	h = (void *)(udph + 1);
	if ((void *)(h + 1) > data_end)
		return verdict(XDPEX_CNT_TRUNCATED, XDP_DROP);
	reason = check_header(h, plen);
	if (reason)
		return verdict(reason, XDP_DROP);

	if (cfg->allow_cnt) {
		lpm.prefixlen = 32;
		lpm.addr = iph->saddr;
		if (!bpf_map_lookup_elem(&allow_map, &lpm))
			return verdict(XDPEX_CNT_NOT_ALLOWED, XDP_DROP);
	}

	key = h->session_id;
	bind = bpf_map_lookup_elem(&session_map, &key);
	if (bind && (bind->addr != iph->saddr || bind->port != udph->source))
		return verdict(XDPEX_CNT_SPOOFED, XDP_DROP);

	if (!rate_ok(cfg, iph->saddr))
		return verdict(XDPEX_CNT_RATE_LIMIT, XDP_DROP);

	action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	return verdict(action == XDP_REDIRECT ? XDPEX_CNT_REDIRECT : XDPEX_CNT_NO_SOCK, action);
}
