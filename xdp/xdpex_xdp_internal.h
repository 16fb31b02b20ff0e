/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Internals shared by the two halves of libxdpex_xdp: xdpex_xdp.c (load, pin, attach) and
 * xdpex_cfg.c (the map functions). Not installed, not for callers of the library.
 */
#ifndef XDPEX_XDP_INTERNAL_H
#define XDPEX_XDP_INTERNAL_H

#include "xdpex_xdp.h"

/* Pin names, in the order of struct xdpex_maps. */
#define XDPEX_NMAPS 6
extern const char *const xdpex_map_names[XDPEX_NMAPS];

__attribute__((format(printf, 2, 3))) void xdpex_log(enum xdpex_log_level l, const char *fmt, ...);

#define pr_warn(...) xdpex_log(XDPEX_LOG_WARN, __VA_ARGS__)
#define pr_info(...) xdpex_log(XDPEX_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) xdpex_log(XDPEX_LOG_DEBUG, __VA_ARGS__)

#endif /* XDPEX_XDP_INTERNAL_H */
