// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * test_xsk: a minimal AF_XDP receive socket for the xdpex-xdp tool (see test_xsk.h). One UMEM of
 * NFRAMES frames, all of them posted to a fill ring twice their number, an rx ring, no tx ring.
 * Bound in copy mode with XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD: xdp_steer, already attached,
 * is the program that redirects into it once its fd is in xsks_map.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include "test_xsk.h"

#define NFRAMES 1024
#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE

struct test_xsk {
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fq;
	struct xsk_ring_cons cq;
	struct xsk_ring_cons rx;
	void *area;
};

void test_xsk_close(struct test_xsk *t)
{
	if (!t)
		return;
	if (t->xsk)
		xsk_socket__delete(t->xsk);
	if (t->umem)
		xsk_umem__delete(t->umem);
	if (t->area)
		munmap(t->area, (size_t)NFRAMES * FRAME_SIZE);
	free(t);
}

int test_xsk_open(struct test_xsk **out, const char *ifname, __u32 queue)
{
	struct xsk_umem_config ucfg = {.fill_size = NFRAMES * 2,
				       .comp_size = NFRAMES,
				       .frame_size = FRAME_SIZE,
				       .frame_headroom = 0};
	struct xsk_socket_config scfg = {.rx_size = NFRAMES,
					 .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					 .bind_flags = XDP_COPY};
	struct test_xsk *t = calloc(1, sizeof(*t));
	__u32 idx = 0;
	int err;

	if (!t)
		return -ENOMEM;
	t->area = mmap(NULL, (size_t)NFRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->area == MAP_FAILED) {
		t->area = NULL;
		err = -errno;
		goto cleanup;
	}
	err =
	    xsk_umem__create(&t->umem, t->area, (__u64)NFRAMES * FRAME_SIZE, &t->fq, &t->cq, &ucfg);
	if (err)
		goto cleanup;
	err = xsk_socket__create(&t->xsk, ifname, queue, t->umem, &t->rx, NULL, &scfg);
	if (err)
		goto cleanup;
	if (xsk_ring_prod__reserve(&t->fq, NFRAMES, &idx) != NFRAMES) {
		err = -ENOSPC;
		goto cleanup;
	}
	for (__u32 i = 0; i < NFRAMES; i++)
		*xsk_ring_prod__fill_addr(&t->fq, idx + i) = (__u64)i * FRAME_SIZE;
	xsk_ring_prod__submit(&t->fq, NFRAMES);
	*out = t;
	return 0;
cleanup:
	test_xsk_close(t);
	return err;
}

int test_xsk_fd(const struct test_xsk *t)
{
	return xsk_socket__fd(t->xsk);
}

int test_xsk_poll(struct test_xsk *t, int timeout_ms, test_xsk_cb cb, void *arg)
{
	struct pollfd pfd = {.fd = xsk_socket__fd(t->xsk), .events = POLLIN};
	__u32 idx_rx = 0, idx_fq = 0, n;

	if (poll(&pfd, 1, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	n = xsk_ring_cons__peek(&t->rx, 64, &idx_rx);
	if (!n)
		return 0;
	/* The fill ring holds twice the frames, so there is always room. */
	if (xsk_ring_prod__reserve(&t->fq, n, &idx_fq) != n)
		return -ENOSPC;
	for (__u32 i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&t->rx, idx_rx + i);

		cb(xsk_umem__get_data(t->area, d->addr), d->len, arg);
		*xsk_ring_prod__fill_addr(&t->fq, idx_fq + i) = xsk_umem__extract_addr(d->addr);
	}
	xsk_ring_prod__submit(&t->fq, n);
	xsk_ring_cons__release(&t->rx, n);
	return n;
}
