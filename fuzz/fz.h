/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the libFuzzer harnesses of xdpexd (fuzz/fuzz_*.c) share: the daemon's options and
 * configuration as a small test gateway (2 symbols, 4 sessions with the secret below, sessions
 * 1-2 on queue 0 and 3-4 on queue 1), a private scratch directory on tmpfs, and a real shard
 * built from them (xd_shard_init: engine, sessions, journal recovery) that a harness drives
 * through the daemon's own code paths. Nothing here fakes a component: the harnesses call the
 * functions xdpexd calls.
 */
#ifndef XDPEX_FUZZ_FZ_H
#define XDPEX_FUZZ_FZ_H

#include <stddef.h>
#include <stdint.h>

#include "xdpexd.h"

/* The sessions' HMAC key (32 bytes, as in tests/dataplane_support.py). */
extern const uint8_t fz_secret[32];

/* Options of a udp-mode gateway with `nqueues` queues (0, 1, ...), journal under fz_dir(). */
struct xd_opts *fz_opts(int nqueues);
/* The test configuration, parsed once (xd_config_from_json of fz_config_json). */
struct xd_config *fz_config(void);
extern const char fz_config_json[];
/* The harness's scratch directory on /dev/shm (created at first use, removed at exit). */
const char *fz_dir(void);
/* Removes every file of directory `dir` and its subdirectories (one level of q<N>/). */
void fz_clean(const char *dir);
/* A shard of queue `queue` from fz_opts/fz_config after wiping its journal (clean = 1) or on
 * whatever journal is there (clean = 0). Returns 0 or -1 (err says why, as xdpexd logs it). */
int fz_shard(struct xd_shard *sh, int index, int queue, int clean, char *err, size_t errlen);
/* Signs the Login messages of datagram buf[0, len): the HMAC of fz_secret over session_id,
 * client_ts and nonce, client_ts set to now when `fresh`. */
void fz_sign_logins(uint8_t *buf, size_t len, int fresh);

#endif /* XDPEX_FUZZ_FZ_H */
