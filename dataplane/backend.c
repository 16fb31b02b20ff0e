/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The registry of --mode backends (backend.h): the only place that lists them.
 */
#include <string.h>

#include "xdpexd.h"

const struct xd_backend *const xd_backends[] = {&xd_backend_udp, &xd_backend_afxdp,
						&xd_backend_dpdk, NULL};

const struct xd_backend *xd_backend_find(const char *name)
{
	for (int i = 0; xd_backends[i]; i++)
		if (!strcmp(xd_backends[i]->name, name))
			return xd_backends[i];
	return NULL;
}
