/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The XDP program xdp_steer (xdp/, libxdpex_xdp) on the gateway interface, for the backends that
 * put it in front of their receive path: AF_XDP (always: it redirects valid datagrams into the
 * queue's socket) and kernel UDP with --xdp-filter (valid datagrams go on to the kernel stack
 * and the UDP socket: no socket in xsks_map, so the program answers XDP_PASS, counted
 * no_sock_cnt). Either way it drops, before the kernel spends anything on them, malformed,
 * fragmented, disallowed, spoofed (bound session from another address) and over-rate datagrams,
 * each counted by reason in its stats_map.
 *
 * One program per process: loaded and pinned under --pin-dir, attached to --iface (native
 * first, generic as the logged fallback, or as --xdp-mode says), detached and unpinned at
 * teardown (libxdpex_xdp's lock files clean up after a crashed owner).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "xdpex_xdp.h"
#include "xdpexd.h"

static struct {
	struct xdpex_xdp *x;
	const struct xdpex_maps *maps;
	const char *attach;
	const char *iface;
} g = {.attach = "none"};

static void lib_log(enum xdpex_log_level level, const char *fmt, va_list ap)
{
	char buf[512];

	if (level == XDPEX_LOG_DEBUG && !xd_g_opts->verbose)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	xd_log("xdp: %s", buf);
}

int xd_xdp_apply(const struct xd_config *f)
{
	int rc = 0;

	if (!g.maps)
		return 0;
	if (f->has_rate)
		rc |= xdpex_set_rate(g.maps, f->rate_pps, f->rate_burst);
	if (f->has_allow) {
		struct xdpex_lpm_key cur[XD_MAX_ALLOW];
		int n = xdpex_allow_list(g.maps, cur, XD_MAX_ALLOW);

		for (int i = 0; i < n; i++)
			rc |= xdpex_allow_del(g.maps, cur[i].addr, cur[i].prefixlen);
		for (uint32_t i = 0; i < f->nallow; i++)
			rc |= xdpex_allow_add(g.maps, f->allow[i].addr, f->allow[i].len);
	}
	return rc ? -1 : 0;
}

int xd_xdp_setup(const struct xd_opts *o, const struct xd_config *cfg, const char *who, char *err,
		 size_t errlen)
{
	struct xdpex_xdp_opts xo = {.pin_dir = o->pin_dir, .ports = &o->port, .nports = 1};
	enum xdpex_mode mode = o->xdp_mode == 1	  ? XDPEX_MODE_NATIVE
			       : o->xdp_mode == 2 ? XDPEX_MODE_SKB
						  : XDPEX_MODE_AUTO;
	int ifindex = (int)if_nametoindex(o->iface), rc;

	xdpex_set_log(lib_log);
	g.iface = o->iface;
	rc = xdpex_xdp_open(&g.x, &xo);
	if (rc)
		return snprintf(err, errlen, "XDP program: cannot load/pin in %s: %s", o->pin_dir,
				strerror(-rc)),
		       -1;
	rc = xdpex_xdp_attach(g.x, ifindex, mode);
	if (rc)
		return snprintf(err, errlen, "XDP program: cannot attach to %s: %s%s", o->iface,
				strerror(-rc),
				rc == -EBUSY ? " (another XDP program holds the interface)" : ""),
		       -1;
	g.attach = xdpex_xdp_mode(g.x) == XDPEX_MODE_NATIVE ? "native" : "generic";
	if (mode == XDPEX_MODE_AUTO && xdpex_xdp_mode(g.x) != XDPEX_MODE_NATIVE)
		xd_log("%s: %s: native XDP refused, fell back to generic mode", who, o->iface);
	g.maps = xdpex_xdp_maps(g.x);
	if (xd_xdp_apply(cfg))
		return snprintf(err, errlen, "XDP maps: cannot set the allowlist or rate limit"),
		       -1;
	return 0;
}

void xd_xdp_teardown(void)
{
	if (!g.x)
		return;
	xdpex_xdp_close(g.x);
	g.x = NULL;
	g.maps = NULL;
	g.attach = "none";
	xd_log("detached XDP from %s, pins removed", g.iface);
}

const struct xdpex_maps *xd_xdp_maps(void)
{
	return g.maps;
}

const char *xd_xdp_attach_mode(void)
{
	return g.attach;
}

void xd_xdp_info(json_t *out)
{
	__u64 c[XDPEX_CNT_MAX];
	json_t *x = json_object();

	json_object_set_new(out, "attach_mode", json_string(g.attach));
	if (g.maps && !xdpex_read_counters(g.maps, c))
		for (int i = 0; i < XDPEX_CNT_MAX; i++)
			json_object_set_new(x, xdpex_cnt_name(i), json_integer((json_int_t)c[i]));
	json_object_set_new(out, "xdp_counters", x);
}

void xd_xdp_bind(uint32_t sid, const struct xd_peer *p)
{
	if (g.maps && xdpex_bind_session(g.maps, sid, p->addr, p->port))
		xd_log("warning: session %u: cannot program the XDP binding", sid);
}

void xd_xdp_unbind(uint32_t sid)
{
	if (g.maps)
		xdpex_unbind_session(g.maps, sid);
}
