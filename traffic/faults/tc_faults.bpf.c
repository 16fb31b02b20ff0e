/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * tc_faults: the lab's fault injector (this kernel has no netem qdisc). Attached as a tc
 * classifier (direct action) on the traffic side's lab interface, egress for what goes to the
 * gateway and ingress for what comes back, and on the ingress of the holding pair's near end,
 * where held datagrams return from the relay. It acts on xdpex datagrams only (UDP to or from the
 * configured port with the xdpex magic; by default only sequenced ones, seq != 0), so the
 * gateway's side of the lab runs whatever it runs (xdpexd's XDP program or kernel UDP) untouched.
 *
 * For datagram number n of a direction, three independent draws of a seeded mix of (seed,
 * direction, n) decide, in this order: drop it (loss_ppm); hand it to the holding relay
 * (reorder_ppm), which sends it back later, so it arrives after datagrams sent after it; send
 * 1..dup_burst extra copies of it with bpf_clone_redirect (dup_ppm). Copies and released datagrams
 * carry FAULT_MARK_PASS so the hook they pass through again lets them by. Every decision is
 * counted in fcnt_map; see faults.h.
 *
 * The market-data feed (MoldUDP64 from the gateway to the traffic side, UDP to feed_port, any
 * destination address: multicast or unicast) is a second, separate stream: on the ingress of the
 * lab interface its datagram number m is dropped when a draw of (seed ^ FEED_SALT, m) falls
 * under feed_loss_ppm, so a subscriber has real gaps to recover by rewind.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdpex/proto.h>
#include "faults.h"

/* What to inject: one fault_cfg, written by user space through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fault_cfg);
} fcfg_map SEC(".maps");

/* What was done, per direction (0: to the gateway, 1: from it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FAULT_DIRS);
	__type(key, __u32);
	__type(value, struct fault_cnt);
} fcnt_map SEC(".maps");

struct l4 {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
} __attribute__((packed));

struct frame {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	struct xe_hdr xe;
} __attribute__((packed));

static __always_inline __u64 mix64(__u64 z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A uniform draw in [0, FAULT_PPM) for decision `what` about datagram n of direction dir. */
static __always_inline __u32 draw(__u64 seed, __u32 dir, __u64 n, __u32 what)
{
	__u64 r = mix64(seed ^ mix64((n << 4) | ((__u64)dir << 2) | what));
	return (__u32)(((r >> 32) * FAULT_PPM) >> 32);
}

#define FEED_SALT 0x66656564ULL /* "feed": its draws are independent of the order stream's */

/* TC_ACT_SHOT or TC_ACT_OK for a feed datagram arriving from the gateway, -1 for anything else. */
static __always_inline int feed_fault(struct __sk_buff *skb, const struct fault_cfg *cfg)
{
	__u32 one = 1;
	struct fault_cnt *cnt;
	struct l4 f;
	__u64 m;

	if (skb->ifindex != cfg->wire_ifindex || bpf_skb_load_bytes(skb, 0, &f, sizeof(f)) < 0)
		return -1;
	if (f.eth.h_proto != bpf_htons(ETH_P_IP) || f.ip.ihl != 5 || f.ip.protocol != IPPROTO_UDP ||
	    f.udp.dest != bpf_htons((__u16)cfg->feed_port))
		return -1;
	if (skb->ingress_ifindex != cfg->wire_ifindex) /* leaving the traffic side: not the feed */
		return -1;
	cnt = bpf_map_lookup_elem(&fcnt_map, &one);
	if (!cnt)
		return TC_ACT_OK;
	m = __sync_fetch_and_add(&cnt->feed_cnt, 1);
	if (draw(cfg->seed ^ FEED_SALT, 1, m, 0) < cfg->feed_loss_ppm) {
		__sync_fetch_and_add(&cnt->feed_drop_cnt, 1);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

/* The direction of an xdpex datagram of the configured port, or -1 for anything else; its
 * sequence and message count in *seq and *msgs. */
static __always_inline int classify(struct __sk_buff *skb, const struct fault_cfg *cfg, __u64 *seq,
				    __u32 *msgs)
{
	struct frame f;

	if (bpf_skb_load_bytes(skb, 0, &f, sizeof(f)) < 0)
		return -1;
	if (f.eth.h_proto != bpf_htons(ETH_P_IP) || f.ip.ihl != 5 || f.ip.protocol != IPPROTO_UDP)
		return -1;
	if (f.xe.magic != XE_MAGIC)
		return -1;
	*seq = f.xe.seq;
	*msgs = f.xe.count;
	if (f.udp.dest == bpf_htons((__u16)cfg->port))
		return 0;
	if (f.udp.source == bpf_htons((__u16)cfg->port))
		return 1;
	return -1;
}

SEC("tc")
int tc_faults(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct fault_cfg *cfg = bpf_map_lookup_elem(&fcfg_map, &zero);
	struct fault_cnt *cnt;
	__u32 dir, copies, i, msgs = 0;
	__u64 n, seq = 0;
	int d;

	if (skb->mark == FAULT_MARK_PASS) {
		skb->mark = 0;
		return TC_ACT_OK;
	}
	if (!cfg || !cfg->enabled)
		return TC_ACT_OK;
	if (cfg->feed_port) {
		d = feed_fault(skb, cfg);
		if (d >= 0)
			return d;
	}
	d = classify(skb, cfg, &seq, &msgs);
	if (d < 0)
		return skb->ifindex == cfg->hold_ifindex ? TC_ACT_SHOT : TC_ACT_OK;
	dir = (__u32)d;
	cnt = bpf_map_lookup_elem(&fcnt_map, &dir);
	if (!cnt)
		return TC_ACT_OK;
	if (seq == 0 && !cfg->all_datagrams) {
		__sync_fetch_and_add(&cnt->session_cnt, 1);
		return TC_ACT_OK;
	}

	if (skb->ifindex == cfg->hold_ifindex) { /* back from the relay: on its way */
		__sync_fetch_and_add(&cnt->release_cnt, 1);
		skb->mark = FAULT_MARK_PASS;
		return bpf_redirect(cfg->wire_ifindex, dir ? BPF_F_INGRESS : 0);
	}

	n = __sync_fetch_and_add(&cnt->seen_cnt, 1);
	__sync_fetch_and_add(&cnt->msg_cnt, msgs);
	if (draw(cfg->seed, dir, n, 0) < cfg->loss_ppm[dir & 1]) {
		__sync_fetch_and_add(&cnt->drop_cnt, 1);
		__sync_fetch_and_add(&cnt->drop_msg_cnt, msgs);
		return TC_ACT_SHOT;
	}
	if (cfg->hold_ifindex && draw(cfg->seed, dir, n, 1) < cfg->reorder_ppm[dir & 1]) {
		__sync_fetch_and_add(&cnt->hold_cnt, 1);
		__sync_fetch_and_add(&cnt->hold_msg_cnt, msgs);
		return bpf_redirect(cfg->hold_ifindex, 0);
	}
	if (draw(cfg->seed, dir, n, 2) < cfg->dup_ppm[dir & 1]) {
		copies = 1;
		if (cfg->dup_burst > 1)
			copies += draw(cfg->seed, dir, n, 3) % cfg->dup_burst;
		__sync_fetch_and_add(&cnt->dup_cnt, 1);
		for (i = 0; i < FAULT_BURST_MAX; i++) {
			if (i >= copies)
				break;
			skb->mark = FAULT_MARK_PASS;
			if (bpf_clone_redirect(skb, cfg->wire_ifindex, dir ? BPF_F_INGRESS : 0) < 0)
				__sync_fetch_and_add(&cnt->error_cnt, 1);
			else {
				__sync_fetch_and_add(&cnt->copy_cnt, 1);
				__sync_fetch_and_add(&cnt->copy_msg_cnt, msgs);
			}
		}
		skb->mark = 0;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
