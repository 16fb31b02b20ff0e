/* SPDX-License-Identifier: BSD-2-Clause */
/* The harnesses' shared set-up (fz.h). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fz.h"
#include "xdpex/parse.h"

const uint8_t fz_secret[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

#define SECRET_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

const char fz_config_json[] =
    "{\"engine\": {\"max_orders\": 1024, \"max_symbols\": 8, \"max_sessions\": 8},"
    " \"heartbeat_ms\": 1000, \"login_skew_ms\": 5000,"
    " \"symbols\": ["
    "  {\"id\": 1, \"name\": \"ACME\", \"tick\": 1, \"lot\": 1, \"band\": [1, 2000],"
    "   \"max_qty\": 10000},"
    "  {\"id\": 2, \"name\": \"BOLT\", \"tick\": 5, \"lot\": 10, \"band\": [100, 5000],"
    "   \"max_qty\": 1000, \"queue\": 1}],"
    " \"sessions\": ["
    "  {\"id\": 1, \"secret\": \"" SECRET_HEX "\", \"cancel_on_disconnect\": true},"
    "  {\"id\": 2, \"secret\": \"" SECRET_HEX "\"},"
    "  {\"id\": 3, \"secret\": \"" SECRET_HEX "\", \"queue\": 1},"
    "  {\"id\": 4, \"secret\": \"" SECRET_HEX "\", \"enabled\": false, \"queue\": 1}]}";

static char dir[64];
static struct xd_opts opts;
static struct xd_config cfg;
static int have_cfg;

static void rm_dir(void)
{
	fz_clean(dir);
	rmdir(dir);
}

const char *fz_dir(void)
{
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/dev/shm/xdpex-fuzz-%d", (int)getpid());
		if (mkdir(dir, 0700) && errno != EEXIST) {
			fprintf(stderr, "fuzz: mkdir %s: %s\n", dir, strerror(errno));
			abort();
		}
		atexit(rm_dir);
	}
	return dir;
}

void fz_clean(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;

	if (!dp)
		return;
	while ((e = readdir(dp))) {
		char p[PATH_MAX];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		if (!lstat(p, &st) && S_ISDIR(st.st_mode)) {
			fz_clean(p);
			rmdir(p);
		} else {
			unlink(p);
		}
	}
	closedir(dp);
}

struct xd_opts *fz_opts(int nqueues)
{
	static char jdir[PATH_MAX];

	memset(&opts, 0, sizeof(opts));
	opts.backend = &xd_backend_udp;
	opts.addr = "127.0.0.1";
	opts.port = 9;
	for (int i = 0; i < nqueues; i++)
		opts.queues[i] = i;
	opts.nqueues = nqueues;
	snprintf(jdir, sizeof(jdir), "%s/journal", fz_dir());
	opts.journal_dir = jdir;
	opts.durability = XD_DUR_NONE;
	opts.poll = XD_POLL_SLEEP;
	opts.batch = 64;
	opts.frames = 4096;
	opts.segment_bytes = 1u << 20;
	opts.name = "fuzz";
	xd_g_opts = &opts;
	return &opts;
}

struct xd_config *fz_config(void)
{
	if (!have_cfg) {
		json_error_t je;
		json_t *j = json_loads(fz_config_json, JSON_REJECT_DUPLICATES, &je);
		char err[400];

		if (!j || xd_config_from_json(j, &cfg, NULL, err, sizeof(err))) {
			fprintf(stderr, "fuzz: test configuration: %s\n", j ? err : je.text);
			abort();
		}
		json_decref(j);
		have_cfg = 1;
	}
	return &cfg;
}

int fz_shard(struct xd_shard *sh, int index, int queue, int clean, char *err, size_t errlen)
{
	if (!opts.nqueues)
		fz_opts(2);
	if (clean)
		fz_clean(opts.journal_dir);
	return xd_shard_init(sh, index, queue, &opts, fz_config(), err, errlen);
}

void fz_sign_logins(uint8_t *buf, size_t len, int fresh)
{
	if (len < XE_HDR_SIZE)
		return;
	for (size_t off = XE_HDR_SIZE; off + XE_MSG_SIZE <= len; off += XE_MSG_SIZE) {
		struct xe_login *l = (struct xe_login *)(buf + off);
		uint8_t msg[20], mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		uint64_t ts;

		if (buf[off] != XE_LOGIN)
			continue;
		if (fresh) {
			ts = xd_wall_ns();
			memcpy(&l->client_ts, &ts, 8);
		}
		memcpy(msg, &l->session_id, 4);
		memcpy(msg + 4, &l->client_ts, 8);
		memcpy(msg + 12, &l->nonce, 8);
		if (HMAC(EVP_sha256(), fz_secret, sizeof(fz_secret), msg, sizeof(msg), mac,
			 &maclen))
			memcpy(l->hmac, mac, XE_HMAC_SIZE);
	}
}
