/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The dpdk backend's stand-in in an xdpexd built where `pkg-config libdpdk` failed: --mode dpdk
 * is refused at the command line, saying why and what to install.
 */
#include <stdio.h>

#include "xdpexd.h"

static int nodpdk_check(const struct xd_opts *o, char *err, size_t errlen)
{
	(void)o;
	return snprintf(
		   err, errlen,
		   "--mode dpdk: this xdpexd was built without DPDK (pkg-config libdpdk "
		   "failed at build time); install libdpdk-dev (provisioning/setup.sh does) and "
		   "rebuild"),
	       -1;
}

const struct xd_backend xd_backend_dpdk = {
    .name = "dpdk",
    .check = nodpdk_check,
};
