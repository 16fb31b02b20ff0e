/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness of the control socket's command parser (dataplane/ctl.c): the input is split
 * into request lines as the socket splits them, and each line goes through xd_ctl_handle, the
 * function that answers a socket client, against two real shards (queues 0 and 1 of the test
 * gateway, fresh journals each run) whose mailbox requests run in this thread (xd_ctl_attach).
 * Every line must get one JSON object answer with "ok" (and "error" when false); state-changing
 * requests really change the shards and are journaled.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...) (fprintf(stderr, "fuzz_ctl: " __VA_ARGS__), abort())
#define MAX_LINES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xd_shard sh[2];
	char *text = malloc(size + 1), *line, *next;
	char err[400];
	int nlines = 0;

	xd_log_quiet = 1;
	fz_opts(2);
	for (int i = 0; i < 2; i++)
		if (fz_shard(&sh[i], i, i, 1, err, sizeof(err)))
			FAIL("shard %d: %s\n", i, err);
	xd_ctl_attach(sh, 2);
	memcpy(text, data, size);
	text[size] = 0;
	for (line = text; line && nlines < MAX_LINES; line = next) {
		json_t *r, *ok;
		char *nl = strchr(line, '\n');

		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = 0;
		if (!*line)
			continue;
		nlines++;
		r = xd_ctl_handle(line);
		ok = json_object_get(r, "ok");
		if (!json_is_object(r) || !json_is_boolean(ok) ||
		    (json_is_false(ok) && !json_is_string(json_object_get(r, "error"))))
			FAIL("answer to %s is not {\"ok\": ..., \"error\"?}\n", line);
		json_decref(r);
	}
	free(text);
	for (int i = 0; i < 2; i++) {
		xd_shard_batch_end(&sh[i]);
		xd_shard_free(&sh[i]);
	}
	atomic_store(&xd_stop, 0);
	return 0;
}
