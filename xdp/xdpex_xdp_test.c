// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xdpex_xdp_test: checks of libxdpex_xdp's API as the dataplane calls it, against the real
 * program in the kernel (no interface): pin / unpin / pin again, the configuration validators
 * and what they write to cfg_map, allowlist add / del / replace and its size in cfg_map, session
 * binding, xsks_map bounds, counter names. Usage: xdpex_xdp_test PIN_DIR (a fresh bpffs dir);
 * prints one line per failed check and "ok N checks" or exits 1. Run by tests/test_xdp_lib.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "xdpex_xdp.h"

static int checks, failed;

#define CHECK(cond) \
	do { \
		checks++; \
		if (!(cond)) { \
			failed++; \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

static __u32 ip(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static int pinned(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void test_pins(struct xdpex_xdp *x, const char *dir)
{
	struct xdpex_maps m;
	__u64 c[XDPEX_CNT_MAX];

	CHECK(!pinned(dir, "cfg_map"));
	CHECK(xdpex_xdp_unpin(x) == -ENOENT);
	CHECK(xdpex_xdp_pin(x, "") == -EINVAL);
	CHECK(xdpex_xdp_pin(x, dir) == 0);
	CHECK(xdpex_xdp_pin(x, dir) == -EALREADY);
	CHECK(pinned(dir, "cfg_map") && pinned(dir, "stats_map") && pinned(dir, "xsks_map"));
	CHECK(xdpex_maps_open_pinned(&m, dir) == 0);
	CHECK(xdpex_read_counters(&m, c) == 0 && c[XDPEX_CNT_RX] == 0);
	xdpex_maps_close(&m);
	CHECK(m.cfg_fd == -1 && m.stats_fd == -1);
	CHECK(xdpex_xdp_unpin(x) == 0);
	CHECK(!pinned(dir, "cfg_map") && access(dir, F_OK) != 0);
	CHECK(xdpex_xdp_pin(x, dir) == 0); /* again, after an unpin */
	CHECK(pinned(dir, "session_map"));
}

static void test_cfg(const struct xdpex_maps *m)
{
	const __u16 ports[] = {9000, 9001}, zero[] = {0};
	struct xdpex_cfg cfg;

	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.ports[0] == htons(9100) && cfg.ports[1] == 0);
	CHECK(xdpex_set_ports(m, ports, 2) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.ports[1] == htons(9001));
	CHECK(xdpex_set_ports(m, ports, 0) == -EINVAL);
	CHECK(xdpex_set_ports(m, ports, XDPEX_MAX_PORTS + 1) == -EINVAL);
	CHECK(xdpex_set_ports(m, zero, 1) == -EINVAL);

	CHECK(xdpex_set_rate(m, 1000, 10) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.rate_pps == 1000 && cfg.burst == 10 &&
	      cfg.interval_ns == 1000000 && cfg.tolerance_ns == 9000000);
	CHECK(xdpex_set_rate(m, 1000, 0) == -EINVAL);
	CHECK(xdpex_set_rate(m, 1000000001ULL, 1) == -EINVAL);
	CHECK(xdpex_set_rate(m, 0, 0) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.interval_ns == 0 && cfg.rate_pps == 0);
	CHECK(cfg.ports[1] == htons(9001)); /* the rate did not clobber the ports */

	CHECK(xdpex_set_flags(m, XDPEX_CFG_PASS_FRAGS) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.flags == XDPEX_CFG_PASS_FRAGS);
	CHECK(xdpex_set_flags(m, 0x80) == -EINVAL);
}

static void test_allow(const struct xdpex_maps *m)
{
	struct xdpex_lpm_key keys[8], set[2] = {{16, 0}, {32, 0}};
	struct xdpex_cfg cfg;

	set[0].addr = ip("10.5.0.0");
	set[1].addr = ip("192.0.2.1");
	CHECK(xdpex_allow_list(m, keys, 8) == 0);
	CHECK(xdpex_allow_add(m, ip("10.0.0.0"), 8) == 0);
	CHECK(xdpex_allow_add(m, ip("10.0.0.0"), 8) == 0); /* idempotent */
	CHECK(xdpex_allow_add(m, ip("172.16.0.0"), 12) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.allow_cnt == 2);
	CHECK(xdpex_allow_add(m, ip("10.0.0.1"), 8) == -EINVAL); /* host bits */
	CHECK(xdpex_allow_add(m, ip("10.0.0.0"), 33) == -EINVAL);
	CHECK(xdpex_allow_del(m, ip("10.9.0.0"), 16) == -ENOENT);
	CHECK(xdpex_allow_del(m, ip("10.0.0.0"), 8) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.allow_cnt == 1);
	CHECK(xdpex_allow_replace(m, set, 2) == 0);
	CHECK(xdpex_allow_list(m, keys, 8) == 2);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.allow_cnt == 2);
	set[1].prefixlen = 8; /* 192.0.2.1/8: host bits, nothing may change */
	CHECK(xdpex_allow_replace(m, set, 2) == -EINVAL);
	CHECK(xdpex_allow_list(m, keys, 8) == 2);
	CHECK(xdpex_allow_replace(m, NULL, 0) == 0);
	CHECK(xdpex_allow_list(m, keys, 8) == 0);
	CHECK(xdpex_get_cfg(m, &cfg) == 0 && cfg.allow_cnt == 0);
}

static void test_sessions_and_sockets(const struct xdpex_maps *m)
{
	struct xdpex_bind b;
	__u32 sid = 42;

	CHECK(xdpex_bind_session(m, 42, ip("10.1.0.1"), htons(40000)) == 0);
	CHECK(bpf_map_lookup_elem(m->session_fd, &sid, &b) == 0 && b.addr == ip("10.1.0.1") &&
	      b.port == htons(40000));
	CHECK(xdpex_bind_session(m, 0, ip("10.1.0.1"), htons(1)) == -EINVAL);
	CHECK(xdpex_bind_session(m, 1, 0, htons(1)) == -EINVAL);
	CHECK(xdpex_bind_session(m, 1, ip("10.1.0.1"), 0) == -EINVAL);
	CHECK(xdpex_unbind_session(m, 42) == 0);
	CHECK(xdpex_unbind_session(m, 42) == -ENOENT);
	CHECK(xdpex_set_xsk(m, XDPEX_MAX_QUEUES, 0) == -EINVAL);
	CHECK(xdpex_set_xsk(m, 0, 0) < 0); /* fd 0 is not an AF_XDP socket */
	CHECK(xdpex_clear_xsk(m, 0) == 0); /* an empty slot: nothing to do */
	CHECK(xdpex_clear_xsk(m, XDPEX_MAX_QUEUES) == -EINVAL);
}

int main(int argc, char **argv)
{
	struct xdpex_xdp_opts o = {.pin_dir = "", .ports = (const __u16[]){9100}, .nports = 1};
	struct xdpex_xdp *x;

	if (argc != 2) {
		fprintf(stderr, "usage: xdpex_xdp_test PIN_DIR\n");
		return 2;
	}
	CHECK(xdpex_xdp_open(&x, &o) == 0);
	if (failed)
		return 1;
	CHECK(xdpex_xdp_mode(x) == XDPEX_MODE_AUTO && xdpex_xdp_detach(x) == -ENOENT);
	CHECK(!strcmp(xdpex_cnt_name(XDPEX_CNT_RX), "rx_cnt"));
	CHECK(!strcmp(xdpex_cnt_name(XDPEX_CNT_RATE_LIMIT), "rate_limit_cnt"));
	CHECK(xdpex_cnt_name(XDPEX_CNT_MAX) == NULL && xdpex_cnt_name(-1) == NULL);
	CHECK(!strcmp(xdpex_mode_name(XDPEX_MODE_SKB), "skb"));
	test_cfg(xdpex_xdp_maps(x));
	test_allow(xdpex_xdp_maps(x));
	test_sessions_and_sockets(xdpex_xdp_maps(x));
	test_pins(x, argv[1]);
	xdpex_xdp_close(x);
	CHECK(access(argv[1], F_OK) != 0); /* close unpins */
	if (failed)
		return 1;
	printf("ok %d checks\n", checks);
	return 0;
}
