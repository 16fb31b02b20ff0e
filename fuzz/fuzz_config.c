/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of the configuration loader (dataplane/config.c): the bytes as a whole
 * configuration file (what xd_config_load parses: JSON with duplicate keys refused) and as a
 * control-socket "apply" fragment checked against the test configuration. Either it is accepted
 * and every value is inside the limits the loader documents, or it is refused with a message that
 * names a field; never a crash, a leak or an unterminated message.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_config: " __VA_ARGS__), abort())

static void check(const struct xd_config *c, int full)
{
	for (uint32_t i = 0; i < c->nsessions; i++) {
		const struct xd_session_cfg *s = &c->sessions[i];

		if (!s->id || (full && s->id > c->engine.max_sessions))
			FAIL("session id %u accepted (max_sessions %u)\n", s->id,
			     c->engine.max_sessions);
		if (s->secret_len > sizeof(s->secret))
			FAIL("secret of %u bytes\n", s->secret_len);
	}
	for (uint32_t i = 0; i < c->nsymbols; i++)
		if (!c->symbols[i].c.symbol_id || memchr(c->symbols[i].name, 0, 32) == NULL)
			FAIL("symbols[%u] id %u accepted\n", i, c->symbols[i].c.symbol_id);
	for (uint32_t i = 0; i < c->nallow; i++)
		if (c->allow[i].len > 32)
			FAIL("allowlist[%u] /%u accepted\n", i, c->allow[i].len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	struct xd_config c;
	json_error_t je;
	char err[400];
	json_t *j;

	if (!init) {
		xd_log_quiet = 1;
		fz_opts(2);
		fz_config();
		init = 1;
	}
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return 0;
	for (int full = 1; full >= 0; full--) {
		memset(err, 'x', sizeof(err));
		if (xd_config_from_json(j, &c, full ? NULL : fz_config(), err, sizeof(err))) {
			if (!memchr(err, 0, sizeof(err)) || !err[0])
				FAIL("refused without a message\n");
		} else {
			check(&c, full);
		}
		xd_config_free(&c);
	}
	json_decref(j);
	return 0;
}
