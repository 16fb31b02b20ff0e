/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Process-wide bits of xdpexd shared by the daemon and its benchmark: the stop flag, the options,
 * log lines ("xdpexd: ..." on stderr, line-buffered) and the two clocks (wall clock for the wire
 * timestamps, monotonic for timers).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xdpexd.h"

atomic_int xd_stop;
const struct xd_opts *xd_g_opts;
int xd_verbose;
int xd_log_quiet;

void xd_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (xd_log_quiet)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	fprintf(stderr, "xdpexd: %.*s", n, buf);
}

uint64_t xd_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t xd_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int xd_bind_unix(int fd, const struct sockaddr_un *a, const struct xd_opts *o)
{
	unsigned mode = o && o->sock_mode ? o->sock_mode : 0660;
	mode_t old = umask(0177); /* the socket file is made 0600 */
	int rc = bind(fd, (const struct sockaddr *)a, sizeof(*a)) ? -errno : 0;

	umask(old);
	if (rc)
		return rc;
	if (o && o->sock_group && chown(a->sun_path, (uid_t)-1, (gid_t)o->sock_gid))
		return -errno;
	if (chmod(a->sun_path, (mode_t)mode))
		return -errno;
	return 0;
}
