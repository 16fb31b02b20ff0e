// Compile check: proto.h and parse.h must stay usable from C++ (the engine and its tests), with
// the same warnings as the C parts. Built by tests/build.mk; nothing to run.
#include "xdpex/parse.h"

static_assert(sizeof(xe_hdr) == XE_HDR_SIZE, "header size");

int xe_parse_cxx_check(const void *buf, size_t len)
{
	const xe_hdr *hdr = nullptr;
	xe_parse_err err{};
	char text[256];
	int rc = xe_parse_datagram(buf, len, XE_DIR_TO_GW, &hdr, &err);

	if (rc)
		xe_parse_errstr(&err, text, sizeof(text));
	return rc;
}
