/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of include/xdpex/parse.h, the wire parser every C side uses: any bytes, in
 * each direction. Besides the sanitizers it checks what the parser promises: an accepted datagram
 * is exactly 24 + 64 * count bytes of known messages, an error names a code in range and its text
 * fits; and, differentially, the XDP program's header check (xdp/xdpex_check.h, compiled here as
 * user-space C) refuses every client datagram parse.h refuses at the header level (a header check
 * that passes what the parser refuses would hand the dataplane work the XDP program exists to
 * drop).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpex/parse.h"
#include "xdpex_maps.h"

struct fz_env {
	int unused;
};
#define XDPEX_ENV struct fz_env
static inline int xdpex_env_allowed(XDPEX_ENV *env, __u32 saddr)
{
	(void)env, (void)saddr;
	return 1;
}
static inline int xdpex_env_spoofed(XDPEX_ENV *env, __u32 sid, __u32 saddr, __u16 sport)
{
	(void)env, (void)sid, (void)saddr, (void)sport;
	return 0;
}
static inline int xdpex_env_rate_ok(XDPEX_ENV *env, const struct xdpex_cfg *cfg, __u32 saddr)
{
	(void)env, (void)cfg, (void)saddr;
	return 1;
}
#include "xdpex_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_parse: " __VA_ARGS__), abort())

/* Header-level refusals: every code decided by the header alone (the message loop's codes carry
 * a message index). */
static int header_level(const struct xe_parse_err *e)
{
	return e->code != 0 && e->index < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum xe_dir dirs[] = {XE_DIR_TO_GW, XE_DIR_FROM_GW, XE_DIR_AUTO};
	/* A copy of exactly `size` bytes, so ASan sees any read past the datagram. */
	uint8_t *buf = malloc(size ? size : 1);
	char text[256];

	memcpy(buf, data, size);
	for (unsigned d = 0; d < 3; d++) {
		const struct xe_hdr *h = NULL;
		struct xe_parse_err e;
		int rc = xe_parse_datagram(buf, size, dirs[d], &h, &e), n;

		if (rc > 0 || rc < XE_PERR_MIN || rc != e.code)
			FAIL("dir %u: return %d, err.code %d\n", d, rc, e.code);
		n = xe_parse_errstr(&e, text, sizeof(text));
		if (n <= 0 || (size_t)n >= sizeof(text))
			FAIL("dir %u: error text of %d bytes for code %d\n", d, n, rc);
		if (!strcmp(xe_parse_error_name(rc), "XE_PERR_UNKNOWN"))
			FAIL("dir %u: code %d has no name\n", d, rc);
		if (rc) {
			if (h)
				FAIL("dir %u: header set on error %d\n", d, rc);
			if (e.index >= XE_MAX_MSGS)
				FAIL("dir %u: error index %d\n", d, e.index);
			continue;
		}
		if (h != (const void *)buf || size != XE_HDR_SIZE + (size_t)h->count * XE_MSG_SIZE)
			FAIL("dir %u: accepted %zu bytes for count %u\n", d, size, h->count);
		for (unsigned i = 0; i < h->count; i++) {
			const uint8_t *m = xe_msg_at(h, i);

			if (!xe_msg_type_name(m[0]) || xe_msg_kind(m[0]) == XE_KIND_UNKNOWN)
				FAIL("dir %u: msg[%u] type 0x%02x accepted\n", d, i, m[0]);
		}
	}
	/* The XDP header check against parse.h, client -> gateway (what the gateway receives). */
	if (size >= XE_HDR_SIZE) {
		struct xe_parse_err e;
		int rc = xe_parse_datagram(buf, size, XE_DIR_TO_GW, NULL, &e);
		__u32 r = xdpex_check_header((const struct xe_hdr *)buf, (__u32)size);

		if (header_level(&e) && !r) {
			xe_parse_errstr(&e, text, sizeof(text));
			FAIL("xdpex_check_header passes what parse.h refuses: %s (%d)\n", text, rc);
		}
		if (!rc && r)
			FAIL("xdpex_check_header refuses a valid datagram (reason %u)\n", r);
	}
	free(buf);
	return 0;
}
