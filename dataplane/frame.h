/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ethernet frames for the backends that see them (AF_XDP, DPDK): an answer datagram wrapped in
 * Ethernet, IPv4 and UDP headers from the addresses its session's datagrams arrived with, and a
 * received frame unwrapped to its UDP payload and those addresses. Plus ARP, for a backend that
 * owns the wire (DPDK) and so must answer who-has for the gateway address itself.
 */
#ifndef XDPEXD_FRAME_H
#define XDPEXD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xd_peer;

#define XD_FRAME_HDRS 42 /* Ethernet 14 + IPv4 20 + UDP 8 */
#define XD_ARP_FRAME 42 /* Ethernet 14 + ARP 28 */

/* Writes the frame carrying `len` payload bytes to `to` into f (room for XD_FRAME_HDRS + len);
 * with csum the IPv4 and UDP checksums are computed, else left 0 for the NIC (TX offload).
 * Returns the frame length. */
uint32_t xd_frame_build(uint8_t *f, const struct xd_peer *to, const void *payload, uint16_t len,
			bool csum);
/* A frame of len bytes: true if it is IPv4/UDP to port_be (network order) with a UDP length that
 * fits, then *payload and *plen are its payload and src where it came from (with MACs). */
bool xd_frame_parse(const uint8_t *f, uint32_t len, uint16_t port_be, const uint8_t **payload,
		    size_t *plen, struct xd_peer *src);
/* A frame that is an ARP request for addr_be: writes the reply (from mac) into out (room for
 * XD_ARP_FRAME) and returns its length; 0 when it is not such a request. */
uint32_t xd_frame_arp_reply(const uint8_t *f, uint32_t len, uint32_t addr_be, const uint8_t mac[6],
			    uint8_t *out);
/* The internet checksum of len bytes (one's-complement sum folded, inverted). */
uint16_t xd_csum(const void *data, size_t len);

#endif /* XDPEXD_FRAME_H */
