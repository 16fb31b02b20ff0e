/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ethernet/IPv4/UDP framing and ARP replies for the frame-level backends (frame.h says what each
 * function promises). Checksums are the one's-complement sums of RFC 1071, 4 bytes a step into a
 * 64-bit accumulator.
 */
#include <arpa/inet.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <string.h>

#include "frame.h"
#include "xdpexd.h"

struct arp_ipv4 {
	uint16_t htype, ptype;
	uint8_t hlen, plen;
	uint16_t op;
	uint8_t sha[ETH_ALEN];
	uint32_t spa;
	uint8_t tha[ETH_ALEN];
	uint32_t tpa;
} __attribute__((packed));
_Static_assert(sizeof(struct ethhdr) + sizeof(struct arp_ipv4) == XD_ARP_FRAME, "ARP frame");
_Static_assert(sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) ==
		   XD_FRAME_HDRS,
	       "frame headers");

static uint64_t csum_add(uint64_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		sum += ntohl(w);
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The IPv4 and UDP headers sit 14 bytes into a frame (2 mod 4): accessed through types of
 * alignment 1, so the compiler never assumes what the frame does not give (UBSan's alignment
 * check found the plain structs used here at run time). */
typedef struct iphdr xd_iphdr_u __attribute__((aligned(1)));
typedef struct udphdr xd_udphdr_u __attribute__((aligned(1)));

uint16_t xd_csum(const void *data, size_t len)
{
	return csum_fold(csum_add(0, data, len));
}

uint32_t xd_frame_build(uint8_t *f, const struct xd_peer *to, const void *payload, uint16_t len,
			bool csum)
{
	struct ethhdr *eth = (struct ethhdr *)f;
	xd_iphdr_u *ip = (xd_iphdr_u *)(eth + 1);
	xd_udphdr_u *udp = (xd_udphdr_u *)(ip + 1);
	uint16_t ulen = (uint16_t)(sizeof(*udp) + len);

	memcpy(eth->h_dest, to->mac, ETH_ALEN);
	memcpy(eth->h_source, to->lmac, ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = htons((uint16_t)(sizeof(*ip) + ulen));
	ip->id = 0;
	ip->frag_off = htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->check = 0;
	ip->saddr = to->laddr;
	ip->daddr = to->addr;
	udp->source = to->lport;
	udp->dest = to->port;
	udp->len = htons(ulen);
	udp->check = 0;
	memcpy(udp + 1, payload, len);
	if (csum) {
		uint64_t sum = csum_add(0, &ip->saddr, 8) + IPPROTO_UDP + ulen;

		ip->check = htons(xd_csum(ip, sizeof(*ip)));
		udp->check = htons(csum_fold(csum_add(sum, udp, ulen)));
		if (!udp->check)
			udp->check = 0xffff;
	}
	return (uint32_t)(XD_FRAME_HDRS + len);
}

bool xd_frame_parse(const uint8_t *f, uint32_t len, uint16_t port_be, const uint8_t **payload,
		    size_t *plen, struct xd_peer *src)
{
	const struct ethhdr *eth = (const struct ethhdr *)f;
	const xd_iphdr_u *ip = (const xd_iphdr_u *)(eth + 1);
	const xd_udphdr_u *udp;
	uint32_t ihl;

	if (len < XD_FRAME_HDRS || eth->h_proto != htons(ETH_P_IP) || ip->version != 4 ||
	    ip->protocol != IPPROTO_UDP)
		return false;
	ihl = ip->ihl * 4u;
	if (ihl < sizeof(*ip) || sizeof(*eth) + ihl + sizeof(*udp) > len)
		return false;
	udp = (const xd_udphdr_u *)((const uint8_t *)ip + ihl);
	if (udp->dest != port_be || ntohs(udp->len) < sizeof(*udp) ||
	    sizeof(*eth) + ihl + ntohs(udp->len) > len)
		return false;
	*payload = (const uint8_t *)(udp + 1);
	*plen = ntohs(udp->len) - sizeof(*udp);
	memset(src, 0, offsetof(struct xd_peer, path));
	src->kind = XD_PEER_UDP;
	src->has_l2 = 1;
	src->addr = ip->saddr;
	src->port = udp->source;
	src->laddr = ip->daddr;
	src->lport = udp->dest;
	memcpy(src->mac, eth->h_source, ETH_ALEN);
	memcpy(src->lmac, eth->h_dest, ETH_ALEN);
	return true;
}

uint32_t xd_frame_arp_reply(const uint8_t *f, uint32_t len, uint32_t addr_be, const uint8_t mac[6],
			    uint8_t *out)
{
	const struct ethhdr *eth = (const struct ethhdr *)f;
	const struct arp_ipv4 *a = (const struct arp_ipv4 *)(eth + 1);
	struct ethhdr *oe = (struct ethhdr *)out;
	struct arp_ipv4 *r = (struct arp_ipv4 *)(oe + 1);

	if (len < XD_ARP_FRAME || eth->h_proto != htons(ETH_P_ARP) ||
	    a->htype != htons(ARPHRD_ETHER) || a->ptype != htons(ETH_P_IP) || a->hlen != ETH_ALEN ||
	    a->plen != 4 || a->op != htons(ARPOP_REQUEST) || a->tpa != addr_be)
		return 0;
	memcpy(oe->h_dest, a->sha, ETH_ALEN);
	memcpy(oe->h_source, mac, ETH_ALEN);
	oe->h_proto = htons(ETH_P_ARP);
	r->htype = htons(ARPHRD_ETHER);
	r->ptype = htons(ETH_P_IP);
	r->hlen = ETH_ALEN;
	r->plen = 4;
	r->op = htons(ARPOP_REPLY);
	memcpy(r->sha, mac, ETH_ALEN);
	r->spa = addr_be;
	memcpy(r->tha, a->sha, ETH_ALEN);
	r->tpa = a->spa;
	return XD_ARP_FRAME;
}
