/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The gateway's frame checks, written once: compiled into the XDP program xdp_steer (xdpex.bpf.c)
 * and into user space (xdpex_filter.c, for the DPDK backend and the tests), so a datagram is judged
 * the same way whichever path it takes. For every frame xdpex_classify() decides whether it is
 * ours (IPv4 UDP to a gateway port, one optional 802.1Q tag) and, if so, whether it is a
 * well-formed xdpex datagram from a source that may send it:
 *
 *   not ours (ARP, IPv6, TCP, other ports, ...)             -> XDPEX_V_PASS   not_ours_cnt
 *   ours but fragmented / truncated / bad header            -> XDPEX_V_DROP   <reason>_cnt
 *   source not allowed / bound session spoofed / over rate  -> XDPEX_V_DROP   <reason>_cnt
 *   valid                                                   -> XDPEX_V_OURS   (the caller counts
 *                                                              where it went)
 *
 * Checks run in that order: header, allowlist, session binding, rate (a spoofer or a malformed
 * datagram never consumes the real client's tokens).
 *
 * The includer provides the state behind the checks as three functions on its own environment
 * type, declared before including this header:
 *
 *   #define XDPEX_ENV struct my_env
 *   static __always_inline int xdpex_env_allowed(XDPEX_ENV *env, __u32 saddr);
 *   static __always_inline int xdpex_env_spoofed(XDPEX_ENV *env, __u32 session_id,
 *                                                __u32 saddr, __u16 sport);
 *   static __always_inline int xdpex_env_rate_ok(XDPEX_ENV *env, const struct xdpex_cfg *cfg,
 *                                                __u32 saddr);
 *
 * (addresses and ports in network order, as in the packet). Rate state is the GCRA of
 * xdpex_gcra() (xdpex_maps.h), the same arithmetic on both sides.
 *
 * Parsers follow one rule: they take a cursor and data_end, check bounds, advance the cursor and
 * return the next protocol (or a length) in host order, or -1 when the bytes are not there.
 */
#ifndef XDPEX_CHECK_H
#define XDPEX_CHECK_H

#ifdef __bpf__
#include <bpf/bpf_endian.h>
#define xdpex_ntohs(x) bpf_ntohs(x)
#else
#include <arpa/inet.h> /* before the linux/ headers: glibc's netinet/in.h leads */
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define xdpex_ntohs(x) ntohs(x)
#endif

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/types.h>
#include <linux/udp.h>

#include <xdpex/proto.h>
#include "xdpex_maps.h"

#ifndef XDPEX_ENV
#error "define XDPEX_ENV and its xdpex_env_* functions before including xdpex_check.h"
#endif

struct xdpex_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Ethernet plus at most one 802.1Q tag: returns the EtherType, host order. */
static __always_inline int xdpex_parse_eth(void **pos, void *data_end)
{
	struct ethhdr *eth = *pos;
	struct xdpex_vlan_hdr *vlh;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = xdpex_ntohs(eth->h_proto);
	*pos = eth + 1;
	if (proto != ETH_P_8021Q)
		return proto;
	vlh = *pos;
	if ((void *)(vlh + 1) > data_end)
		return -1;
	*pos = vlh + 1;
	return xdpex_ntohs(vlh->proto);
}

/* IPv4 with options: returns the IP protocol; *iphp points at the header. */
static __always_inline int xdpex_parse_ipv4(void **pos, void *data_end, struct iphdr **iphp)
{
	struct iphdr *iph = *pos;
	__u32 hlen;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	hlen = iph->ihl * 4;
	if ((char *)*pos + hlen > (char *)data_end)
		return -1;
	*pos = (char *)*pos + hlen;
	*iphp = iph;
	return iph->protocol;
}

static __always_inline int xdpex_is_gateway_port(const struct xdpex_cfg *cfg, __u16 port_be)
{
#ifdef __clang__
#pragma unroll
#endif
	for (int i = 0; i < XDPEX_MAX_PORTS; i++)
		if (cfg->ports[i] && cfg->ports[i] == port_be)
			return 1;
	return 0;
}

/* The header of an xdpex datagram of `plen` payload bytes: returns 0 or the drop reason. */
/* Every check of parse.h's xe_parse_datagram that the header alone decides, for a client ->
 * gateway datagram, in its order: what parse.h refuses at the header level never reaches the
 * dataplane (fuzz/fuzz_parse.c and fuzz/bpfdiff.c check exactly that). */
static __always_inline __u32 xdpex_check_header(const struct xe_hdr *h, __u32 plen)
{
	__u16 count = h->count;
	__u64 seq = h->seq;

	if (h->magic != XE_MAGIC)
		return XDPEX_CNT_BAD_MAGIC;
	if (h->version != XE_VERSION)
		return XDPEX_CNT_BAD_VERSION;
	/* Unknown bits, or FROM_GW / RETRANSMIT, which a client never sets. */
	if (h->flags & (__u8)~XE_F_KNOWN || h->flags & (XE_F_FROM_GW | XE_F_RETRANSMIT))
		return XDPEX_CNT_BAD_FLAGS;
	if (count < 1 || count > XE_MAX_MSGS)
		return XDPEX_CNT_BAD_COUNT;
	if (h->length != plen || plen != XE_HDR_SIZE + (__u32)count * XE_MSG_SIZE)
		return XDPEX_CNT_BAD_LENGTH;
	if (h->session_id == 0)
		return XDPEX_CNT_BAD_SESSION;
	if (seq != 0 && seq + (count - 1) < seq)
		return XDPEX_CNT_BAD_SEQ;
	return 0;
}

/* The verdict on one frame [data, data_end); *reason gets the counter that explains a PASS or
 * DROP (XDPEX_CNT_NOT_OURS, XDPEX_CNT_BAD_MAGIC, ...), untouched for OURS. */
static __always_inline int xdpex_classify(void *data, void *data_end, const struct xdpex_cfg *cfg,
					  XDPEX_ENV *env, __u32 *reason)
{
	void *pos = data;
	struct iphdr *iph;
	struct udphdr *udph;
	struct xe_hdr *h;
	__u32 r, ulen, iplen, plen;
	__u16 frag;

	*reason = XDPEX_CNT_NOT_OURS;
	if (xdpex_parse_eth(&pos, data_end) != ETH_P_IP)
		return XDPEX_V_PASS;
	if (xdpex_parse_ipv4(&pos, data_end, &iph) != IPPROTO_UDP)
		return XDPEX_V_PASS;

	frag = xdpex_ntohs(iph->frag_off);
	if (frag & 0x1fff) {
		/* A later fragment: no UDP header, so the port is unknown (see
		 * XDPEX_CFG_PASS_FRAGS). */
		if (cfg->flags & XDPEX_CFG_PASS_FRAGS)
			return XDPEX_V_PASS;
		*reason = XDPEX_CNT_FRAGMENT;
		return XDPEX_V_DROP;
	}

	udph = pos;
	if ((void *)(udph + 1) > data_end)
		return XDPEX_V_PASS;
	if (!xdpex_is_gateway_port(cfg, udph->dest))
		return XDPEX_V_PASS;
	*reason = XDPEX_CNT_FRAGMENT;
	if (frag & 0x2000) /* IP_MF: the first fragment of a datagram to our port */
		return XDPEX_V_DROP;

	/* The UDP length must fit the IP datagram and the frame, and hold an xdpex header. */
	ulen = xdpex_ntohs(udph->len);
	iplen = xdpex_ntohs(iph->tot_len);
	*reason = XDPEX_CNT_TRUNCATED;
	if (ulen < sizeof(*udph) + XE_HDR_SIZE || (char *)udph + ulen > (char *)data_end ||
	    (char *)udph + ulen > (char *)iph + iplen)
		return XDPEX_V_DROP;
	plen = ulen - sizeof(*udph);
	h = (void *)(udph + 1);
	if ((void *)(h + 1) > data_end)
		return XDPEX_V_DROP;
	r = xdpex_check_header(h, plen);
	if (r) {
		*reason = r;
		return XDPEX_V_DROP;
	}
	if (cfg->allow_cnt && !xdpex_env_allowed(env, iph->saddr)) {
		*reason = XDPEX_CNT_NOT_ALLOWED;
		return XDPEX_V_DROP;
	}
	if (xdpex_env_spoofed(env, h->session_id, iph->saddr, udph->source)) {
		*reason = XDPEX_CNT_SPOOFED;
		return XDPEX_V_DROP;
	}
	/* Before reading the clock: the helper call is a third of the cost. */
	if (cfg->interval_ns && !xdpex_env_rate_ok(env, cfg, iph->saddr)) {
		*reason = XDPEX_CNT_RATE_LIMIT;
		return XDPEX_V_DROP;
	}
	return XDPEX_V_OURS;
}

#endif /* XDPEX_CHECK_H */
