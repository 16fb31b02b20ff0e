/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Dispatch from the shard to the I/O backend of the running mode (kernel UDP or AF_XDP), so the
 * pipeline in shard.c never needs to know which one carries its datagrams.
 */
#include <jansson.h>
#include <stdint.h>
#include <unistd.h>

#include "xdpexd.h"

void xd_udp_send(struct xd_shard *sh, struct xd_txd *tx, uint32_t n);
void *xd_udp_loop(void *arg);
void xd_udp_close(struct xd_shard *sh);
int xd_udp_wake_fd(struct xd_shard *sh);
void xd_afxdp_send(struct xd_shard *sh, struct xd_txd *tx, uint32_t n);
void *xd_afxdp_loop(void *arg);
void xd_afxdp_close(struct xd_shard *sh);
int xd_afxdp_wake_fd(struct xd_shard *sh);
void xd_afxdp_stats(struct xd_shard *sh, json_t *out);
void xd_afxdp_bind(struct xd_shard *sh, uint32_t sid, const struct xd_peer *p);
void xd_afxdp_unbind(struct xd_shard *sh, uint32_t sid);
void xd_io_wake(struct xd_shard *sh);
const char *xd_attach_mode_name(void);
const char *xd_bind_mode_name(void);

static int afxdp(const struct xd_shard *sh)
{
	return sh->opts->mode == XD_MODE_AFXDP;
}

void xd_io_send(struct xd_shard *sh, struct xd_txd *tx, uint32_t n)
{
	if (afxdp(sh))
		xd_afxdp_send(sh, tx, n);
	else
		xd_udp_send(sh, tx, n);
}

void *xd_io_loop(void *arg)
{
	struct xd_shard *sh = arg;

	return afxdp(sh) ? xd_afxdp_loop(arg) : xd_udp_loop(arg);
}

void xd_io_close(struct xd_shard *sh)
{
	if (afxdp(sh))
		xd_afxdp_close(sh);
	else
		xd_udp_close(sh);
}

void xd_io_stats(struct xd_shard *sh, json_t *out)
{
	if (afxdp(sh))
		xd_afxdp_stats(sh, out);
}

void xd_io_bind(struct xd_shard *sh, uint32_t session_id, const struct xd_peer *p)
{
	if (afxdp(sh))
		xd_afxdp_bind(sh, session_id, p);
}

void xd_io_unbind(struct xd_shard *sh, uint32_t session_id)
{
	if (afxdp(sh))
		xd_afxdp_unbind(sh, session_id);
}

/* Wakes a shard sleeping in poll() (--poll sleep) so a control request runs at once. */
void xd_io_wake(struct xd_shard *sh)
{
	int fd = afxdp(sh) ? xd_afxdp_wake_fd(sh) : xd_udp_wake_fd(sh);
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		(void)0;
}

const char *xd_attach_mode_name(void)
{
	return xd_g_opts->mode == XD_MODE_AFXDP ? xd_afxdp_attach_mode() : "none";
}

const char *xd_bind_mode_name(void)
{
	return xd_g_opts->mode == XD_MODE_AFXDP ? xd_afxdp_bind_mode() : "none";
}
