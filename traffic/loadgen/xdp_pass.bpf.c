/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xdp_pass: the smallest native XDP program, attached by `xdpex lab up` on the traffic-side veth.
 * A veth only accepts frames redirected or XDP_TX'd into it by its peer (the gateway's XDP
 * program and AF_XDP sockets) when it runs an XDP program of its own (or has GRO enabled); this
 * one passes every frame to the kernel stack unchanged, so the traffic namespace behaves like an
 * ordinary host while the gateway side uses the fast path in both directions.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
