/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * test_xsk: the smallest AF_XDP receiver (libxdp's xsk API, copy mode, no program of its own),
 * used by `xdpex-xdp attach --xsk-queue Q` so the tests can see xdp_steer's XDP_REDIRECT deliver
 * frames into a real socket through xsks_map. Not the dataplane's fast path.
 */
#ifndef XDPEX_TEST_XSK_H
#define XDPEX_TEST_XSK_H

#include <linux/types.h>

struct test_xsk;

/* Each received frame. */
typedef void (*test_xsk_cb)(const unsigned char *frame, __u32 len, void *arg);

int test_xsk_open(struct test_xsk **out, const char *ifname, __u32 queue);
int test_xsk_fd(const struct test_xsk *t);
/* Wait up to timeout_ms for frames, hand each to cb, recycle them: frames received or -errno. */
int test_xsk_poll(struct test_xsk *t, int timeout_ms, test_xsk_cb cb, void *arg);
void test_xsk_close(struct test_xsk *t);

#endif /* XDPEX_TEST_XSK_H */
