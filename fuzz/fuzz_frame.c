/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of the frame code of the AF_XDP and DPDK backends (dataplane/frame.c): any
 * bytes as a received frame at the offset a UMEM chunk or mbuf gives it (byte 0 picks 0..3, so
 * unaligned headers are exercised as the NIC delivers them), through xd_frame_parse and
 * xd_frame_arp_reply; a frame that parses is built again from what was parsed (xd_frame_build,
 * checksums on) and must parse to the same payload and addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_frame: " __VA_ARGS__), abort())
#define PORT_BE 0x2823 /* 9000 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[4096 + XD_FRAME_HDRS], arp[XD_ARP_FRAME];
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	const uint8_t *pay = NULL;
	struct xd_peer src, again;
	size_t plen = 0, off, n;
	uint8_t *f;

	if (!size || size > 4096)
		return 0;
	off = data[0] & 3;
	n = size - 1;
	f = malloc(off + n + 1); /* exactly the frame after `off`: ASan sees any overread */
	memcpy(f + off, data + 1, n);
	(void)xd_frame_arp_reply(f + off, (uint32_t)n, 0x0100000a, mac, arp);
	if (xd_frame_parse(f + off, (uint32_t)n, PORT_BE, &pay, &plen, &src)) {
		uint32_t len;

		if (pay < f + off || pay + plen > f + off + n)
			FAIL("payload [%p, +%zu) outside the frame\n", (const void *)pay, plen);
		if (plen > 4096)
			FAIL("payload of %zu bytes\n", plen);
		/* An answer to where it came from: swap ends, as the backends do. */
		again = src;
		len = xd_frame_build(out, &src, pay, (uint16_t)plen, true);
		if (len != XD_FRAME_HDRS + plen)
			FAIL("built %u bytes for a payload of %zu\n", len, plen);
		{
			const uint8_t *p2 = NULL;
			size_t l2 = 0;

			/* The built frame goes to src's port: parse it as that port's. */
			if (!xd_frame_parse(out, len, src.port, &p2, &l2, &again) || l2 != plen ||
			    memcmp(p2, pay, plen) || again.addr != src.laddr ||
			    again.port != src.lport)
				FAIL("a built frame does not parse back\n");
		}
	}
	free(f);
	return 0;
}
