// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * libxdpex_xdp, map half: open the pinned maps of a running xdp_steer, and every function that
 * reads or writes them (ports, rate, flags, allowlist, session bindings, xsks_map, counters). They
 * take a struct xdpex_maps, from xdpex_xdp_maps() of a loaded program or from
 * xdpex_maps_open_pinned(), so the dataplane and the control plane's tools share them. cfg_map
 * has one writer at a time (read-modify-write of its single entry); concurrent writers from two
 * processes could lose an update.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xdpex_xdp_internal.h"

#define NMAPS XDPEX_NMAPS
#define map_names xdpex_map_names

/* Pinned maps -------------------------------------------------------------------------------- */

void xdpex_maps_close(struct xdpex_maps *m)
{
	int *fds[NMAPS] = {&m->xsks_fd, &m->cfg_fd,	&m->allow_fd,
			   &m->rate_fd, &m->session_fd, &m->stats_fd};

	for (int i = 0; i < NMAPS; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int xdpex_maps_open_pinned(struct xdpex_maps *m, const char *pin_dir)
{
	static const __u32 value_size[NMAPS] = {sizeof(__u32),
						sizeof(struct xdpex_cfg),
						sizeof(__u8),
						sizeof(struct xdpex_rate),
						sizeof(struct xdpex_bind),
						sizeof(__u64)};
	int *fds[NMAPS] = {&m->xsks_fd, &m->cfg_fd,	&m->allow_fd,
			   &m->rate_fd, &m->session_fd, &m->stats_fd};
	const char *dir = pin_dir ? pin_dir : XDPEX_PIN_DIR;
	char path[PATH_MAX];
	int err;

	for (int i = 0; i < NMAPS; i++)
		*fds[i] = -1;
	for (int i = 0; i < NMAPS; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		snprintf(path, sizeof(path), "%s/%s", dir, map_names[i]);
		*fds[i] = bpf_obj_get(path);
		if (*fds[i] < 0) {
			err = -errno;
			pr_warn("cannot open pinned map %s: %s (is xdp_steer loaded with this pin "
				"dir?)",
				path, strerror(-err));
			goto cleanup;
		}
		err = bpf_obj_get_info_by_fd(*fds[i], &info, &len);
		if (err)
			goto cleanup;
		if (info.value_size != value_size[i]) {
			pr_warn("pinned map %s has %u-byte values, this build expects %u "
				"(a different xdpex version?)",
				path, info.value_size, value_size[i]);
			err = -EPROTO;
			goto cleanup;
		}
	}
	return 0;
cleanup:
	xdpex_maps_close(m);
	return err;
}

/* Configuration ------------------------------------------------------------------------------ */

int xdpex_get_cfg(const struct xdpex_maps *m, struct xdpex_cfg *cfg)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(m->cfg_fd, &key, cfg) ? -errno : 0;
}

static int put_cfg(const struct xdpex_maps *m, const struct xdpex_cfg *cfg)
{
	__u32 key = 0;
	int err = bpf_map_update_elem(m->cfg_fd, &key, cfg, BPF_ANY) ? -errno : 0;

	if (err)
		pr_warn("cannot write cfg_map: %s", strerror(-err));
	return err;
}

int xdpex_set_ports(const struct xdpex_maps *m, const __u16 *ports, int n)
{
	struct xdpex_cfg cfg;
	int err;

	if (n < 1 || n > XDPEX_MAX_PORTS) {
		pr_warn("ports: %d given, 1..%d allowed", n, XDPEX_MAX_PORTS);
		return -EINVAL;
	}
	for (int i = 0; i < n; i++) {
		if (ports[i] == 0) {
			pr_warn("ports: port 0 is not a valid gateway port");
			return -EINVAL;
		}
	}
	err = xdpex_get_cfg(m, &cfg);
	if (err)
		return err;
	memset(cfg.ports, 0, sizeof(cfg.ports));
	for (int i = 0; i < n; i++)
		cfg.ports[i] = htons(ports[i]);
	return put_cfg(m, &cfg);
}

int xdpex_set_flags(const struct xdpex_maps *m, __u32 flags)
{
	struct xdpex_cfg cfg;
	int err;

	if (flags & ~XDPEX_CFG_PASS_FRAGS) {
		pr_warn("flags: unknown bits 0x%x", flags & ~XDPEX_CFG_PASS_FRAGS);
		return -EINVAL;
	}
	err = xdpex_get_cfg(m, &cfg);
	if (err)
		return err;
	cfg.flags = flags;
	return put_cfg(m, &cfg);
}

/* Forget every source's limiter state, so a new rate applies from now on. */
static void rate_reset(const struct xdpex_maps *m)
{
	__u32 key, next;

	while (!bpf_map_get_next_key(m->rate_fd, NULL, &next)) {
		key = next;
		if (bpf_map_delete_elem(m->rate_fd, &key))
			break;
	}
}

int xdpex_rate_check(__u64 pps, __u64 burst)
{
	if (pps > 1000000000ULL) {
		pr_warn("rate: %llu datagrams/s per source is above the 1e9 maximum",
			(unsigned long long)pps);
		return -EINVAL;
	}
	if (pps && (burst < 1 || burst > UINT32_MAX)) {
		pr_warn("burst: %llu, must be 1..%u when a rate is set", (unsigned long long)burst,
			UINT32_MAX);
		return -EINVAL;
	}
	return 0;
}

int xdpex_set_rate(const struct xdpex_maps *m, __u64 pps, __u64 burst)
{
	struct xdpex_cfg cfg;
	int err = xdpex_rate_check(pps, burst);

	if (err)
		return err;
	err = xdpex_get_cfg(m, &cfg);
	if (err)
		return err;
	cfg.rate_pps = pps;
	cfg.burst = burst;
	cfg.interval_ns = pps ? 1000000000ULL / pps : 0;
	cfg.tolerance_ns = pps ? (burst - 1) * cfg.interval_ns : 0;
	err = put_cfg(m, &cfg);
	if (!err)
		rate_reset(m);
	return err;
}

/* Allowlist ---------------------------------------------------------------------------------- */

int xdpex_allow_key(__u32 addr, __u32 prefixlen, struct xdpex_lpm_key *key)
{
	__u32 mask = prefixlen ? htonl(~0U << (32 - prefixlen)) : 0;
	struct in_addr a = {.s_addr = addr};

	if (prefixlen > 32) {
		pr_warn("allowlist: prefix length %u above 32", prefixlen);
		return -EINVAL;
	}
	if (addr & ~mask) {
		pr_warn("allowlist: %s/%u has host bits set", inet_ntoa(a), prefixlen);
		return -EINVAL;
	}
	key->prefixlen = prefixlen;
	key->addr = addr;
	return 0;
}

int xdpex_allow_list(const struct xdpex_maps *m, struct xdpex_lpm_key *out, int max)
{
	struct xdpex_lpm_key key, next;
	int n = 0;

	for (int err = bpf_map_get_next_key(m->allow_fd, NULL, &next); !err;
	     err = bpf_map_get_next_key(m->allow_fd, &key, &next)) {
		if (out && n < max)
			out[n] = next;
		n++;
		key = next;
	}
	return n;
}

static int allow_sync(const struct xdpex_maps *m, int n)
{
	struct xdpex_cfg cfg;
	int err = xdpex_get_cfg(m, &cfg);

	if (err)
		return err;
	cfg.allow_cnt = n;
	return put_cfg(m, &cfg);
}

int xdpex_allow_add(const struct xdpex_maps *m, __u32 addr, __u32 prefixlen)
{
	struct xdpex_lpm_key key;
	__u8 one = 1;
	int err = xdpex_allow_key(addr, prefixlen, &key);

	if (err)
		return err;
	/* Insert first, then enable: no window in which an empty allowlist is enforced. */
	if (bpf_map_update_elem(m->allow_fd, &key, &one, BPF_ANY)) {
		err = -errno;
		pr_warn("allowlist: cannot add prefix: %s", strerror(-err));
		return err;
	}
	return allow_sync(m, xdpex_allow_list(m, NULL, 0));
}

int xdpex_allow_del(const struct xdpex_maps *m, __u32 addr, __u32 prefixlen)
{
	struct xdpex_lpm_key key;
	__u8 v;
	int err = xdpex_allow_key(addr, prefixlen, &key);

	if (err)
		return err;
	if (bpf_map_lookup_elem(m->allow_fd, &key, &v))
		return -ENOENT;
	/* Removing the last prefix: open the gate before the trie is empty. */
	if (xdpex_allow_list(m, NULL, 0) == 1) {
		err = allow_sync(m, 0);
		if (err)
			return err;
	}
	if (bpf_map_delete_elem(m->allow_fd, &key))
		return -errno;
	return allow_sync(m, xdpex_allow_list(m, NULL, 0));
}

static int key_in(const struct xdpex_lpm_key *k, const struct xdpex_lpm_key *set, int n)
{
	for (int i = 0; i < n; i++)
		if (set[i].prefixlen == k->prefixlen && set[i].addr == k->addr)
			return 1;
	return 0;
}

int xdpex_allow_replace(const struct xdpex_maps *m, const struct xdpex_lpm_key *keys, int n)
{
	struct xdpex_lpm_key cur, next, tmp;
	int err;

	if (n < 0 || n > XDPEX_MAX_ALLOW) {
		pr_warn("allowlist: %d prefixes, at most %d", n, XDPEX_MAX_ALLOW);
		return -EINVAL;
	}
	for (int i = 0; i < n; i++) {
		err = xdpex_allow_key(keys[i].addr, keys[i].prefixlen, &tmp);
		if (err)
			return err; /* validated as a whole before anything changes */
	}
	if (n == 0) {
		err = allow_sync(m, 0); /* open the gate first */
		if (err)
			return err;
	}
	for (int i = 0; i < n; i++) {
		__u8 one = 1;

		if (bpf_map_update_elem(m->allow_fd, &keys[i], &one, BPF_ANY)) {
			err = -errno;
			pr_warn("allowlist: cannot add prefix %d: %s", i, strerror(-err));
			return err;
		}
	}
	/* Remove what is not in the new list; restart the walk after each delete. */
	for (int again = 1; again;) {
		again = 0;
		for (err = bpf_map_get_next_key(m->allow_fd, NULL, &next); !err;
		     err = bpf_map_get_next_key(m->allow_fd, &cur, &next)) {
			cur = next;
			if (key_in(&cur, keys, n))
				continue;
			if (bpf_map_delete_elem(m->allow_fd, &cur))
				return -errno;
			again = 1;
			break;
		}
	}
	return allow_sync(m, xdpex_allow_list(m, NULL, 0));
}

/* Sessions and sockets ----------------------------------------------------------------------- */

int xdpex_bind_session(const struct xdpex_maps *m, __u32 session_id, __u32 addr, __u16 port)
{
	struct xdpex_bind b = {.addr = addr, .port = port};

	if (!session_id || !addr || !port) {
		pr_warn("bind: %s is 0", !session_id ? "session id" : !addr ? "address" : "port");
		return -EINVAL;
	}
	if (bpf_map_update_elem(m->session_fd, &session_id, &b, BPF_ANY)) {
		int err = -errno;

		pr_warn("bind: session %u: %s", session_id, strerror(-err));
		return err;
	}
	return 0;
}

int xdpex_unbind_session(const struct xdpex_maps *m, __u32 session_id)
{
	return bpf_map_delete_elem(m->session_fd, &session_id) ? -errno : 0;
}

int xdpex_set_xsk(const struct xdpex_maps *m, __u32 queue, int xsk_fd)
{
	if (queue >= XDPEX_MAX_QUEUES) {
		pr_warn("xsks_map: queue %u above the %d supported", queue, XDPEX_MAX_QUEUES);
		return -EINVAL;
	}
	if (bpf_map_update_elem(m->xsks_fd, &queue, &xsk_fd, BPF_ANY)) {
		int err = -errno;

		pr_warn("xsks_map: cannot set queue %u to fd %d: %s", queue, xsk_fd,
			strerror(-err));
		return err;
	}
	return 0;
}

int xdpex_clear_xsk(const struct xdpex_maps *m, __u32 queue)
{
	if (queue >= XDPEX_MAX_QUEUES)
		return -EINVAL;
	return bpf_map_delete_elem(m->xsks_fd, &queue) ? -errno : 0;
}

/* Counters ----------------------------------------------------------------------------------- */

const char *xdpex_cnt_name(int cnt)
{
	static const char *const names[] = XDPEX_CNT_NAMES;

	_Static_assert(sizeof(names) / sizeof(names[0]) == XDPEX_CNT_MAX, "XDPEX_CNT_NAMES");

	return cnt >= 0 && cnt < XDPEX_CNT_MAX ? names[cnt] : NULL;
}

int xdpex_read_counters(const struct xdpex_maps *m, __u64 out[XDPEX_CNT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *v;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (__u32 k = 0; k < XDPEX_CNT_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(m->stats_fd, &k, v)) {
			int err = -errno;

			free(v);
			return err;
		}
		for (int c = 0; c < ncpu; c++)
			out[k] += v[c];
	}
	free(v);
	return 0;
}
