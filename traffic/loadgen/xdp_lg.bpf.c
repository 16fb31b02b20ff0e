/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdp_lg: the load generator's receive steering for its AF_XDP mode (xdpex-loadgen --xdp IF).
 * Application datagrams from the gateway (UDP from the gateway port, xdpex header with seq != 0)
 * are redirected to the generator's AF_XDP socket on the frame's rx queue; everything else,
 * including the session-message datagrams (seq 0: LoginAccepted, Heartbeat, SequenceGap,
 * Logout) that the generator handles on its ordinary UDP sockets, goes to the kernel stack.
 * The generator attaches it in place of the lab's xdp_pass and puts xdp_pass back when it ends.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdpex/proto.h>

const volatile __u16 gw_port = XE_DEFAULT_PORT; /* set by the generator before load */

/* AF_XDP sockets by rx queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} lg_xsks_map SEC(".maps");

SEC("xdp")
int xdp_lg(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1); /* the gateway sends no IP options */
	struct xe_hdr *xe = (void *)(udp + 1);

	if ((void *)(xe + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (udp->source != bpf_htons(gw_port) || xe->seq == 0)
		return XDP_PASS;
	return bpf_redirect_map(&lg_xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
