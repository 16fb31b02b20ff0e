/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The I/O backend contract of xdpexd. A backend moves datagrams between a NIC queue (or a socket)
 * and one shard, and is a table of operations and nothing else: the shard loop (shard.c,
 * xd_shard_run) is the only caller, and a backend never calls into the shard. Which backend runs
 * is chosen once, by name (--mode), from xd_backends[]; no other file of dataplane/ names one.
 *
 * Every shard owns two ports: its network port (the --mode backend, one per served queue) and
 * its entry port (the local unix order-entry socket, itself a backend). A port is an ops table
 * and the backend's opaque per-queue state.
 *
 * The receive contract: rx_burst fills up to `max` descriptors whose buffers stay valid until
 * rx_release(n) is called for the same burst (the shard has journaled and answered by then, and
 * holds copies of anything it keeps). A descriptor with buf == NULL is a frame the backend could
 * not make sense of (not a datagram to the gateway port): the shard counts it malformed.
 *
 * The transmit contract: tx sends the slots of the array that are for this port (send set and
 * to.kind == the port's peer kind) and returns how many of those it could not hand to the
 * kernel or the NIC; they stay journaled and can be fetched again with RetransmitRequest.
 */
#ifndef XDPEXD_BACKEND_H
#define XDPEXD_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

struct json_t;
struct xd_opts;
struct xd_config;
struct xd_peer;
struct xd_txd;

/* One received datagram. */
struct xd_rxd {
	const uint8_t *buf; /* UDP payload; NULL = unusable frame (counted malformed) */
	uint32_t len;
	struct xd_peer *src; /* where it came from (points into the backend's state) */
};

/* What a backend needs to open one port. */
struct xd_port_cfg {
	const struct xd_opts *o;
	int queue; /* NIC queue (network port) */
	int index; /* shard index */
	const char *path; /* entry port: socket path */
};

/* struct xd_backend.flags */
enum xd_backend_flags {
	/* Header validity, allowlist, per-source rate limit and session-to-source binding are
	 * enforced before a datagram reaches rx_burst (the XDP program, or the backend itself
	 * with xdp/xdpex_check.h). Without it the shard applies the allowlist. */
	XD_BE_FILTERS = 0x1,
	/* rx_burst may wait (a blocking receive with a timeout): its empty turns are idle ones. */
	XD_BE_RX_WAITS = 0x2,
};

struct xd_backend {
	const char *name; /* --mode name, "mode" in stats */
	unsigned flags; /* enum xd_backend_flags (rx_waits may depend on --poll: see rx_waits) */
	uint8_t peer_kind; /* enum xd_peer_kind of the peers it sends to */

	/* Process-wide. check: the command line is usable (called while parsing; err for the
	 * user). setup: before any port opens (programs, maps, pools). apply: a config fragment's
	 * allowlist/rate reaches the filter. info: mode-wide fields of `stats`. All optional. */
	int (*check)(const struct xd_opts *o, char *err, size_t errlen);
	int (*setup)(const struct xd_opts *o, const struct xd_config *cfg, char *err,
		     size_t errlen);
	void (*teardown)(void);
	int (*apply)(const struct xd_config *frag);
	void (*info)(struct json_t *out);
	/* XD_BE_RX_WAITS for these options (NULL: the flag as given). */
	bool (*rx_waits)(const struct xd_opts *o);
	/* XD_BE_FILTERS for these options (NULL: the flag as given). */
	bool (*filters)(const struct xd_opts *o);

	/* Per port. open allocates *state; close frees it (also after a failed open). thread_init
	 * runs once in the shard thread before its loop (optional). */
	int (*open)(const struct xd_port_cfg *c, void **state, char *err, size_t errlen);
	void (*close)(void *state);
	void (*thread_init)(void *state);
	uint32_t (*rx_burst)(void *state, struct xd_rxd *rx, uint32_t max);
	void (*rx_release)(void *state, uint32_t n); /* optional */
	uint32_t (*tx)(void *state, const struct xd_txd *tx, uint32_t n);
	/* Every loop turn after the receive: `idle` when it brought nothing (kicks, completions,
	 * busy polling). Optional. */
	void (*poll)(void *state, bool idle);
	int (*fd)(void *state); /* readable when rx_burst has work (--poll sleep); -1 = none */
	void (*stats)(void *state, struct json_t *q); /* per-queue fields of `stats`; optional */
	void (*bind)(void *state, uint32_t session_id, const struct xd_peer *p); /* optional */
	/* Where the port's own frames come from: lmac, laddr and has_l2 of *p (frame backends);
	 * optional (the kernel addresses udp's datagrams). */
	void (*self)(void *state, struct xd_peer *p);
	void (*unbind)(void *state, uint32_t session_id); /* optional */
};

/* A backend and its state for one shard. */
struct xd_port {
	const struct xd_backend *be;
	void *st;
};

extern const struct xd_backend xd_backend_udp; /* io_udp.c */
extern const struct xd_backend xd_backend_afxdp; /* io_afxdp.c */
extern const struct xd_backend xd_backend_dpdk; /* io_dpdk.c (or its stand-in without DPDK) */
extern const struct xd_backend xd_backend_entry; /* entry.c */

/* The --mode backends, NULL-terminated (main.c's table lives in backends.c). */
extern const struct xd_backend *const xd_backends[];
const struct xd_backend *xd_backend_find(const char *name);

#endif /* XDPEXD_BACKEND_H */
