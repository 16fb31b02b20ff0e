// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdp_other: a program that passes everything. It is not part of the gateway; the tests attach
 * it to an interface to check that xdp_steer refuses to take over an interface held by another
 * XDP program and names the holder.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_other(struct xdp_md *ctx)
{
	return XDP_PASS;
}
