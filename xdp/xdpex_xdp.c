// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * libxdpex_xdp: the user-space side of xdp_steer. It loads the program from its skeleton, pins
 * the maps under a pin dir, attaches the one program directly to an interface (native mode with
 * a fallback to generic mode; libxdp's dispatcher cannot load on our kernels), refuses an
 * interface another XDP program holds, and cleans up pins and attachments that a crashed
 * previous run left behind. The map functions (xdpex_cfg.c) work on a loaded program or on the
 * pinned maps of a running one, so the dataplane and the control plane share them.
 *
 * Ownership is proven with flock()ed files under XDPEX_LOCK_DIR: one per pin dir and one per
 * (network namespace, ifindex). The kernel releases them when a process dies, so a pin dir or an
 * xdp_steer attachment whose lock is free was left by a dead run and may be cleared.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <xdpex/proto.h>
#include "xdpex_xdp_internal.h"
#include "xdpex.skel.h"

#define XDPEX_LOCK_DIR "/run/xdpex"

/* A flock()ed file; the kernel drops the lock when its holder dies. */
struct xdpex_lock {
	int fd;
	char path[PATH_MAX];
};

struct xdpex_xdp {
	struct xdpex *skel;
	struct xdpex_maps maps;
	char pin_dir[PATH_MAX]; /* empty: not pinned */
	struct xdpex_lock pin_lock;
	struct xdpex_lock if_lock;
	int ifindex; /* 0: not attached */
	enum xdpex_mode mode;
};

const char *const xdpex_map_names[XDPEX_NMAPS] = {"xsks_map", "cfg_map",     "allow_map",
						  "rate_map", "session_map", "stats_map"};
#define NMAPS XDPEX_NMAPS
#define map_names xdpex_map_names

/* Logging ------------------------------------------------------------------------------------ */

static void log_stderr(enum xdpex_log_level level, const char *fmt, va_list ap)
{
	static const char *const tag[] = {"warning: ", "", "debug: "};

	if (level == XDPEX_LOG_DEBUG && !getenv("XDPEX_DEBUG"))
		return;
	fprintf(stderr, "xdpex-xdp: %s", tag[level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static xdpex_log_fn log_fn = log_stderr;

void xdpex_set_log(xdpex_log_fn fn)
{
	log_fn = fn ? fn : log_stderr;
}

void xdpex_log(enum xdpex_log_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_fn(l, fmt, ap);
	va_end(ap);
}

/* Locks -------------------------------------------------------------------------------------- */

/* Take the lock file `name` in XDPEX_LOCK_DIR: 0, or -EBUSY with the holder's pid. The owner
 * unlinks the file before it lets go, so a taker re-checks that the file it locked is still the
 * one at the path. */
static int lock_take(struct xdpex_lock *l, const char *name, int *holder)
{
	struct stat a, b;
	char buf[32];
	int fd, n, err;

	if (mkdir(XDPEX_LOCK_DIR, 0755) && errno != EEXIST)
		return -errno;
	snprintf(l->path, sizeof(l->path), "%s/%s.lock", XDPEX_LOCK_DIR, name);
	for (int tries = 0; tries < 8; tries++) {
		fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			*holder = atoi(buf);
			close(fd);
			return err;
		}
		if (fstat(fd, &a) || stat(l->path, &b) || a.st_ino != b.st_ino ||
		    a.st_dev != b.st_dev) {
			close(fd); /* unlinked by its previous owner meanwhile: take the new one */
			continue;
		}
		n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) || pwrite(fd, buf, n, 0) != n)
			pr_debug("cannot record pid in %s: %s", l->path, strerror(errno));
		l->fd = fd;
		return 0;
	}
	return -EAGAIN;
}

static void lock_release(struct xdpex_lock *l)
{
	if (l->fd < 0)
		return;
	unlink(l->path);
	close(l->fd);
	l->fd = -1;
}

/* Pinning ------------------------------------------------------------------------------------ */

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Remove our pins from `dir`: the number removed. */
static int unpin_all(const char *dir)
{
	char path[PATH_MAX];
	int removed = 0;

	for (int i = 0; i < NMAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, map_names[i]);
		if (unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			pr_warn("cannot remove pin %s: %s", path, strerror(errno));
	}
	if (rmdir(dir) && errno != ENOENT && errno != ENOTEMPTY)
		pr_debug("cannot remove %s: %s", dir, strerror(errno));
	return removed;
}

static void lock_name_for_dir(const char *dir, char *out, size_t n)
{
	size_t j = snprintf(out, n, "pins");

	for (const char *p = dir; *p && j + 1 < n; p++)
		out[j++] = (*p == '/' || *p == '.') ? '_' : *p;
	out[j] = '\0';
}

static void skel_maps(const struct xdpex_xdp *x, struct bpf_map *maps[NMAPS])
{
	maps[0] = x->skel->maps.xsks_map;
	maps[1] = x->skel->maps.cfg_map;
	maps[2] = x->skel->maps.allow_map;
	maps[3] = x->skel->maps.rate_map;
	maps[4] = x->skel->maps.session_map;
	maps[5] = x->skel->maps.stats_map;
}

/* Unpin the first n maps through libbpf (so they can be pinned again) and drop the dir. */
static void unpin_maps(struct xdpex_xdp *x, const char *dir, int n)
{
	struct bpf_map *maps[NMAPS];
	int err;

	skel_maps(x, maps);
	for (int i = 0; i < n; i++) {
		err = bpf_map__unpin(maps[i], NULL);
		if (err)
			pr_warn("cannot unpin %s/%s: %s", dir, map_names[i], strerror(-err));
	}
	if (rmdir(dir) && errno != ENOENT && errno != ENOTEMPTY)
		pr_debug("cannot remove %s: %s", dir, strerror(errno));
}

int xdpex_xdp_pin(struct xdpex_xdp *x, const char *dir)
{
	char path[PATH_MAX], lname[NAME_MAX];
	struct bpf_map *maps[NMAPS];
	int err, holder = 0, stale;

	if (x->pin_dir[0])
		return -EALREADY;
	if (!dir || !dir[0] || strlen(dir) >= sizeof(x->pin_dir) - 16)
		return -EINVAL;
	lock_name_for_dir(dir, lname, sizeof(lname));
	err = lock_take(&x->pin_lock, lname, &holder);
	if (err < 0) {
		if (err == -EBUSY)
			pr_warn("pin dir %s is in use by a running xdpex (pid %d)", dir, holder);
		else
			pr_warn("cannot lock pin dir %s: %s", dir, strerror(-err));
		return err;
	}
	stale = unpin_all(dir);
	if (stale)
		pr_info("removed %d stale pins in %s left by a previous run", stale, dir);
	err = mkdir_p(dir);
	if (err) {
		pr_warn("cannot create pin dir %s: %s (is bpffs mounted?)", dir, strerror(-err));
		lock_release(&x->pin_lock);
		return err;
	}
	skel_maps(x, maps);
	for (int i = 0; i < NMAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, map_names[i]);
		err = bpf_map__pin(maps[i], path);
		if (err) {
			pr_warn("cannot pin %s: %s", path, strerror(-err));
			unpin_maps(x, dir, i);
			lock_release(&x->pin_lock);
			return err;
		}
	}
	snprintf(x->pin_dir, sizeof(x->pin_dir), "%s", dir);
	pr_info("maps pinned in %s", dir);
	return 0;
}

int xdpex_xdp_unpin(struct xdpex_xdp *x)
{
	if (!x->pin_dir[0])
		return -ENOENT;
	unpin_maps(x, x->pin_dir, NMAPS);
	pr_info("maps unpinned from %s", x->pin_dir);
	x->pin_dir[0] = '\0';
	lock_release(&x->pin_lock);
	return 0;
}

/* Load and close ----------------------------------------------------------------------------- */

int xdpex_xdp_open(struct xdpex_xdp **out, const struct xdpex_xdp_opts *opts)
{
	static const __u16 default_port = XE_DEFAULT_PORT;
	const char *dir = opts && opts->pin_dir ? opts->pin_dir : XDPEX_PIN_DIR;
	const __u16 *ports = &default_port;
	struct xdpex_xdp *x;
	int nports = 1, err;

	if (opts && opts->ports && opts->nports > 0) {
		ports = opts->ports;
		nports = opts->nports;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->pin_lock.fd = x->if_lock.fd = -1;
	x->skel = xdpex__open();
	if (!x->skel) {
		err = -errno;
		pr_warn("cannot open the xdp_steer skeleton: %s", strerror(-err));
		goto cleanup;
	}
	err = xdpex__load(x->skel);
	if (err) {
		pr_warn("cannot load xdp_steer: %s (verifier log above)", strerror(-err));
		goto cleanup;
	}
	x->maps = (struct xdpex_maps){
	    .xsks_fd = bpf_map__fd(x->skel->maps.xsks_map),
	    .cfg_fd = bpf_map__fd(x->skel->maps.cfg_map),
	    .allow_fd = bpf_map__fd(x->skel->maps.allow_map),
	    .rate_fd = bpf_map__fd(x->skel->maps.rate_map),
	    .session_fd = bpf_map__fd(x->skel->maps.session_map),
	    .stats_fd = bpf_map__fd(x->skel->maps.stats_map),
	};
	err = xdpex_set_ports(&x->maps, ports, nports);
	if (err)
		goto cleanup;
	if (dir[0]) {
		err = xdpex_xdp_pin(x, dir);
		if (err)
			goto cleanup;
	}
	*out = x;
	return 0;
cleanup:
	xdpex_xdp_close(x);
	return err;
}

void xdpex_xdp_close(struct xdpex_xdp *x)
{
	if (!x)
		return;
	if (x->ifindex)
		xdpex_xdp_detach(x);
	xdpex_xdp_unpin(x);
	xdpex__destroy(x->skel);
	free(x);
}

int xdpex_xdp_prog_fd(const struct xdpex_xdp *x)
{
	return bpf_program__fd(x->skel->progs.xdp_steer);
}

const struct xdpex_maps *xdpex_xdp_maps(const struct xdpex_xdp *x)
{
	return &x->maps;
}

/* Attach and detach -------------------------------------------------------------------------- */

const char *xdpex_mode_name(enum xdpex_mode mode)
{
	switch (mode) {
	case XDPEX_MODE_NATIVE: return "native";
	case XDPEX_MODE_SKB: return "skb";
	default: return "auto";
	}
}

enum xdpex_mode xdpex_xdp_mode(const struct xdpex_xdp *x)
{
	return x->mode;
}

static __u32 mode_flag(enum xdpex_mode mode)
{
	return mode == XDPEX_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

static void prog_name(__u32 id, char *name, size_t n)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	snprintf(name, n, "?");
	if (fd < 0)
		return;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		snprintf(name, n, "%s", info.name);
	close(fd);
}

/* The XDP program on `ifindex` other than ours: 0 when free, else its id, name and mode. */
static __u32 current_prog(int ifindex, char *name, size_t n, __u32 *flag)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	__u32 id;

	if (bpf_xdp_query(ifindex, 0, &q))
		return 0;
	id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
	*flag = q.drv_prog_id	? XDP_FLAGS_DRV_MODE
		: q.skb_prog_id ? XDP_FLAGS_SKB_MODE
				: XDP_FLAGS_HW_MODE;
	if (id)
		prog_name(id, name, n);
	return id;
}

static int netns_ino(unsigned long *ino)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st))
		return -errno;
	*ino = st.st_ino;
	return 0;
}

static int try_attach(struct xdpex_xdp *x, int ifindex, enum xdpex_mode mode)
{
	__u32 flags = XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flag(mode);

	return bpf_xdp_attach(ifindex, xdpex_xdp_prog_fd(x), flags, NULL);
}

int xdpex_xdp_attach(struct xdpex_xdp *x, int ifindex, enum xdpex_mode mode)
{
	char ifname[IF_NAMESIZE] = "?", lname[64], other[BPF_OBJ_NAME_LEN];
	unsigned long ino = 0;
	int err, holder = 0;
	__u32 id, flag = 0;

	if (x->ifindex)
		return -EALREADY;
	if (!if_indextoname(ifindex, ifname)) {
		pr_warn("no interface with ifindex %d", ifindex);
		return -ENODEV;
	}
	err = netns_ino(&ino);
	if (err)
		return err;
	snprintf(lname, sizeof(lname), "if-%lu-%d", ino, ifindex);
	err = lock_take(&x->if_lock, lname, &holder);
	if (err < 0) {
		if (err == -EBUSY)
			pr_warn("interface %s is held by a running xdpex (pid %d)", ifname, holder);
		else
			pr_warn("cannot lock interface %s: %s", ifname, strerror(-err));
		return err;
	}

	id = current_prog(ifindex, other, sizeof(other), &flag);
	if (id && !strcmp(other, XDPEX_PROG_NAME)) {
		/* Ours, and no live process holds the interface lock: left by a crashed run. */
		err = bpf_xdp_detach(ifindex, flag, NULL);
		if (err) {
			pr_warn("cannot detach stale %s (id %u) from %s: %s", other, id, ifname,
				strerror(-err));
			goto fail;
		}
		pr_info("detached stale %s (id %u) from %s left by a previous run", other, id,
			ifname);
		id = current_prog(ifindex, other, sizeof(other), &flag);
	}
	if (id) {
		err = -EBUSY;
		goto busy;
	}

	err = try_attach(x, ifindex, mode == XDPEX_MODE_SKB ? XDPEX_MODE_SKB : XDPEX_MODE_NATIVE);
	if (!err) {
		x->mode = mode == XDPEX_MODE_SKB ? XDPEX_MODE_SKB : XDPEX_MODE_NATIVE;
	} else if (mode == XDPEX_MODE_AUTO && err != -EBUSY && err != -EEXIST) {
		pr_info("native XDP on %s failed (%s); falling back to generic (skb) mode", ifname,
			strerror(-err));
		err = try_attach(x, ifindex, XDPEX_MODE_SKB);
		if (!err)
			x->mode = XDPEX_MODE_SKB;
	}
	if (err == -EBUSY || err == -EEXIST) {
		/* Somebody attached between our check and our attach. */
		id = current_prog(ifindex, other, sizeof(other), &flag);
		err = -EBUSY;
		goto busy;
	}
	if (err) {
		pr_warn("cannot attach %s to %s in %s mode: %s", XDPEX_PROG_NAME, ifname,
			xdpex_mode_name(mode), strerror(-err));
		goto fail;
	}
	x->ifindex = ifindex;
	pr_info("%s attached to %s (ifindex %d) in %s mode", XDPEX_PROG_NAME, ifname, ifindex,
		xdpex_mode_name(x->mode));
	return 0;
busy:
	pr_warn("interface %s already has XDP program id %u '%s' attached (%s mode); "
		"remove it first, e.g. ip link set dev %s xdp off",
		ifname, id, other,
		flag == XDP_FLAGS_SKB_MODE  ? "skb"
		: flag == XDP_FLAGS_HW_MODE ? "hw"
					    : "native",
		ifname);
fail:
	lock_release(&x->if_lock);
	return err;
}

int xdpex_xdp_detach(struct xdpex_xdp *x)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = xdpex_xdp_prog_fd(x));
	char ifname[IF_NAMESIZE] = "?";
	int err;

	if (!x->ifindex)
		return -ENOENT;
	if_indextoname(x->ifindex, ifname);
	err = bpf_xdp_detach(x->ifindex, mode_flag(x->mode), &o);
	if (err)
		pr_warn("cannot detach %s from %s: %s (was it replaced?)", XDPEX_PROG_NAME, ifname,
			strerror(-err));
	else
		pr_info("%s detached from %s", XDPEX_PROG_NAME, ifname);
	x->ifindex = 0;
	lock_release(&x->if_lock);
	return err;
}
