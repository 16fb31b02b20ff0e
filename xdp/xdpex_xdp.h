/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * libxdpex_xdp: load, attach, pin and configure the xdp_steer XDP program (xdpex.bpf.c).
 * Link build/xdp/libxdpex_xdp.a with -lbpf -lelf -lz; include this header (-I$(TOP)/xdp).
 * Every int-returning function returns 0 (or a count) on success and a negative errno on
 * failure, and logs the reason through the log callback (stderr "xdpex-xdp: " by default).
 * Addresses and ports are in network byte order, as in struct sockaddr_in.
 *
 * API, one line each:
 *   int  xdpex_xdp_open(struct xdpex_xdp **out, const struct xdpex_xdp_opts *opts);  load + pin
 *   void xdpex_xdp_close(struct xdpex_xdp *x);             detach if attached, unpin, free
 *   int  xdpex_xdp_pin(struct xdpex_xdp *x, const char *dir);   pin (open does it unless dir "")
 *   int  xdpex_xdp_unpin(struct xdpex_xdp *x);             remove the pins (close does it)
 *   int  xdpex_xdp_attach(struct xdpex_xdp *x, int ifindex, enum xdpex_mode mode);  -EBUSY if taken
 *   int  xdpex_xdp_detach(struct xdpex_xdp *x);            remove our program from the interface
 *   enum xdpex_mode xdpex_xdp_mode(const struct xdpex_xdp *x);   NATIVE or SKB once attached
 *   const char *xdpex_mode_name(enum xdpex_mode mode);     "auto", "native", "skb"
 *   int  xdpex_xdp_prog_fd(const struct xdpex_xdp *x);     for BPF_PROG_TEST_RUN
 *   const struct xdpex_maps *xdpex_xdp_maps(const struct xdpex_xdp *x);  map fds of a loaded prog
 *   int  xdpex_maps_open_pinned(struct xdpex_maps *m, const char *pin_dir);  maps of a running one
 *   void xdpex_maps_close(struct xdpex_maps *m);           close fds opened by open_pinned
 *   int  xdpex_set_ports(const struct xdpex_maps *m, const __u16 *ports, int n);  host order, 1..8
 *   int  xdpex_set_rate(const struct xdpex_maps *m, __u64 pps, __u64 burst);  pps 0 = unlimited
 *   int  xdpex_set_flags(const struct xdpex_maps *m, __u32 flags);     enum xdpex_cfg_flags
 *   int  xdpex_get_cfg(const struct xdpex_maps *m, struct xdpex_cfg *cfg);
 *   int  xdpex_allow_add(const struct xdpex_maps *m, __u32 addr, __u32 prefixlen);
 *   int  xdpex_allow_del(const struct xdpex_maps *m, __u32 addr, __u32 prefixlen);  -ENOENT
 *   int  xdpex_allow_replace(const struct xdpex_maps *m, const struct xdpex_lpm_key *k, int n);
 *   int  xdpex_allow_list(const struct xdpex_maps *m, struct xdpex_lpm_key *out, int max);  count
 *   int  xdpex_bind_session(const struct xdpex_maps *m, __u32 session_id, __u32 addr, __u16 port);
 *   int  xdpex_unbind_session(const struct xdpex_maps *m, __u32 session_id);  -ENOENT if unbound
 *   int  xdpex_set_xsk(const struct xdpex_maps *m, __u32 queue, int xsk_fd);  xsks_map[queue]
 *   int  xdpex_clear_xsk(const struct xdpex_maps *m, __u32 queue);   0 also when already empty
 *   int  xdpex_read_counters(const struct xdpex_maps *m, __u64 out[XDPEX_CNT_MAX]);  CPUs summed
 *   const char *xdpex_cnt_name(int cnt);                    "rx_cnt", ... (NULL if out of range)
 *   void xdpex_set_log(xdpex_log_fn fn);                    NULL restores the stderr default
 */
#ifndef XDPEX_XDP_H
#define XDPEX_XDP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "xdpex_maps.h"

#ifdef __cplusplus
extern "C" {
#endif

struct xdpex_xdp;

/* How to attach: AUTO tries native (driver) mode and falls back to generic (skb) mode. */
enum xdpex_mode { XDPEX_MODE_AUTO = 0, XDPEX_MODE_NATIVE, XDPEX_MODE_SKB };

struct xdpex_xdp_opts {
	const char *pin_dir; /* NULL: XDPEX_PIN_DIR; "" : do not pin */
	const __u16 *ports; /* gateway UDP ports, host order; NULL/0: XE_DEFAULT_PORT */
	int nports; /* 0..XDPEX_MAX_PORTS */
};

/* Map fds. Owned by struct xdpex_xdp when returned by xdpex_xdp_maps(), by the caller when
 * filled by xdpex_maps_open_pinned(). */
struct xdpex_maps {
	int xsks_fd;
	int cfg_fd;
	int allow_fd;
	int rate_fd;
	int session_fd;
	int stats_fd;
};

enum xdpex_log_level { XDPEX_LOG_WARN, XDPEX_LOG_INFO, XDPEX_LOG_DEBUG };
typedef void (*xdpex_log_fn)(enum xdpex_log_level level, const char *fmt, va_list ap);

int xdpex_xdp_open(struct xdpex_xdp **out, const struct xdpex_xdp_opts *opts);
void xdpex_xdp_close(struct xdpex_xdp *x);
int xdpex_xdp_pin(struct xdpex_xdp *x, const char *dir);
int xdpex_xdp_unpin(struct xdpex_xdp *x);
int xdpex_xdp_attach(struct xdpex_xdp *x, int ifindex, enum xdpex_mode mode);
int xdpex_xdp_detach(struct xdpex_xdp *x);
enum xdpex_mode xdpex_xdp_mode(const struct xdpex_xdp *x);
const char *xdpex_mode_name(enum xdpex_mode mode);
int xdpex_xdp_prog_fd(const struct xdpex_xdp *x);
const struct xdpex_maps *xdpex_xdp_maps(const struct xdpex_xdp *x);

int xdpex_maps_open_pinned(struct xdpex_maps *m, const char *pin_dir);
void xdpex_maps_close(struct xdpex_maps *m);

int xdpex_set_ports(const struct xdpex_maps *m, const __u16 *ports, int n);
int xdpex_set_rate(const struct xdpex_maps *m, __u64 pps, __u64 burst);
int xdpex_set_flags(const struct xdpex_maps *m, __u32 flags);
int xdpex_get_cfg(const struct xdpex_maps *m, struct xdpex_cfg *cfg);
int xdpex_allow_add(const struct xdpex_maps *m, __u32 addr, __u32 prefixlen);
int xdpex_allow_del(const struct xdpex_maps *m, __u32 addr, __u32 prefixlen);
int xdpex_allow_replace(const struct xdpex_maps *m, const struct xdpex_lpm_key *keys, int n);
int xdpex_allow_list(const struct xdpex_maps *m, struct xdpex_lpm_key *out, int max);
int xdpex_bind_session(const struct xdpex_maps *m, __u32 session_id, __u32 addr, __u16 port);
int xdpex_unbind_session(const struct xdpex_maps *m, __u32 session_id);
int xdpex_set_xsk(const struct xdpex_maps *m, __u32 queue, int xsk_fd);
int xdpex_clear_xsk(const struct xdpex_maps *m, __u32 queue);
int xdpex_read_counters(const struct xdpex_maps *m, __u64 out[XDPEX_CNT_MAX]);
const char *xdpex_cnt_name(int cnt);
/* The checks behind allow_add and set_rate, for user-space filters (xdpex_filter.h): 0 or
 * -EINVAL with the reason logged. */
int xdpex_allow_key(__u32 addr, __u32 prefixlen, struct xdpex_lpm_key *key);
int xdpex_rate_check(__u64 pps, __u64 burst);
void xdpex_set_log(xdpex_log_fn fn);

#ifdef __cplusplus
}
#endif

#endif /* XDPEX_XDP_H */
