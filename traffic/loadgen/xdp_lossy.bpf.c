/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdp_lossy: loss injection for the load generator's recovery tests (this kernel has no netem).
 * Drops every 23rd xdpex application datagram (UDP to or from port 9000, header seq != 0) that
 * arrives on the interface and passes everything else, login and session messages included.
 * Attached by tests/test_loadgen_recovery.py on both ends of a lab, so orders are lost on the
 * way in (the gateway answers SequenceGap, the generator resends) and answers on the way out
 * (the generator sees an outbound gap and sends RetransmitRequest).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdpex/proto.h>

#define LOSSY_EVERY 23

__u64 seen_cnt = 0; /* application datagrams seen */

SEC("xdp")
int xdp_lossy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct xe_hdr *xe = (void *)(udp + 1);

	if ((void *)(xe + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (udp->source != bpf_htons(XE_DEFAULT_PORT) && udp->dest != bpf_htons(XE_DEFAULT_PORT))
		return XDP_PASS;
	if (xe->magic != XE_MAGIC || xe->seq == 0)
		return XDP_PASS;
	if (__sync_fetch_and_add(&seen_cnt, 1) % LOSSY_EVERY == LOSSY_EVERY - 1)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
