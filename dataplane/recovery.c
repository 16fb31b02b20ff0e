/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Recovery of a shard set up from its configuration (shard.c): every journal record replayed
 * through the live code paths (inbound messages through the engine, session events, admin
 * requests), which restores the books, the sessions (binding, sequences, nonces) and the id
 * counters; the state hash is logged. Nothing is journaled or sent while `replaying` is set.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdpexd.h"

/* Whether a record's payload holds what its type and count say (the CRC only proves the bytes
 * are those written): a record that does not is refused with what is wrong, never read past. */
static int rec_shape_ok(const struct xd_shard *sh, const struct xj_rec *r, const uint8_t *p)
{
	uint32_t plen = r->len - XJ_REC_HDR;
	const char *why = NULL;

	switch (r->type) {
	case XJ_IN:
	case XJ_OUT:
		if ((uint64_t)r->count * XE_MSG_SIZE > plen)
			why = "message count does not fit the record";
		break;
	case XJ_SESSION:
		if (plen < sizeof(struct xj_sess_ev))
			why = "session event shorter than 64 bytes";
		/* Only a login carries the path (journal_sess): a logout, timeout or failover of
		 * a session bound to a unix path has the addr_kind and nothing after the event. */
		else if (((const struct xj_sess_ev *)p)->kind == XJ_SK_LOGIN &&
			 ((const struct xj_sess_ev *)p)->addr_kind == XJ_ADDR_UNIX &&
			 !memchr(p + sizeof(struct xj_sess_ev), 0,
				 plen - sizeof(struct xj_sess_ev)))
			why = "unix path not NUL-terminated";
		break;
	case XJ_ADMIN:
		if (!memchr(p, 0, plen))
			why = "admin request not NUL-terminated";
		break;
	default: break;
	}
	if (!why)
		return 1;
	xd_log("error: journal q%d seq %llu: %s record of %u bytes, count %u: %s", sh->queue,
	       (unsigned long long)r->seq,
	       r->type == XJ_IN	       ? "inbound"
	       : r->type == XJ_OUT     ? "outbound"
	       : r->type == XJ_SESSION ? "session"
				       : "admin",
	       r->len, r->count, why);
	return 0;
}

int xd_replay_rec(void *ctx, const struct xj_rec *r, const uint8_t *p, uint32_t seg, uint64_t off)
{
	struct xd_shard *sh = ctx;
	struct xd_sess *s = xd_sess_get(sh, r->session_id);

	if (!rec_shape_ok(sh, r, p))
		return -EINVAL;
	sh->now_ns = r->ts;
	switch (r->type) {
	case XJ_IN:
		if (!s)
			break;
		if (!s->logged_in) {
			xd_not_logged_in(sh, s, &s->peer, r->msg_seq, p, r->count);
			break;
		}
		if (r->msg_seq != s->next_in)
			xd_log("warning: journal q%d seq %llu: session %u inbound seq %llu, "
			       "expected %llu",
			       sh->queue, (unsigned long long)r->seq, s->id,
			       (unsigned long long)r->msg_seq, (unsigned long long)s->next_in);
		for (uint16_t i = 0; i < r->count; i++)
			xd_apply_msg(sh, s, r->msg_seq + i, p + (size_t)i * XE_MSG_SIZE);
		break;
	case XJ_OUT:
		if (s) {
			xd_index_out(sh, r, seg, off);
			if (r->msg_seq + r->count > s->next_out) {
				xd_log("warning: journal q%d seq %llu: session %u outbound up to "
				       "%llu, replay reached %llu",
				       sh->queue, (unsigned long long)r->seq, s->id,
				       (unsigned long long)(r->msg_seq + r->count),
				       (unsigned long long)s->next_out);
				s->next_out = r->msg_seq + r->count;
			}
		}
		break;
	case XJ_SESSION: {
		const struct xj_sess_ev *e = (const void *)p;

		if (!s)
			break;
		if (e->kind == XJ_SK_LOGIN) {
			memset(&s->peer, 0, sizeof(s->peer));
			s->peer.kind = e->addr_kind;
			s->peer.has_l2 = e->has_l2;
			s->peer.port = e->port;
			s->peer.lport = e->lport;
			s->peer.addr = e->addr;
			s->peer.laddr = e->laddr;
			memcpy(s->peer.mac, e->mac, 6);
			memcpy(s->peer.lmac, e->lmac, 6);
			if (e->addr_kind == XD_PEER_UNIX)
				snprintf(s->peer.path, sizeof(s->peer.path), "%s",
					 (const char *)(e + 1));
			s->logged_in = true;
			xd_nonce_push(s, e->nonce, e->login_ts);
		} else {
			xd_end_session(sh, s, e->kind, 0, 0, e->cod);
		}
		break;
	}
	case XJ_ADMIN: {
		json_error_t je;
		struct json_t *req = json_loads((const char *)p, 0, &je);

		if (!req) {
			xd_log("error: journal q%d seq %llu: admin record is not JSON: %s",
			       sh->queue, (unsigned long long)r->seq, je.text);
			return -EINVAL;
		}
		sh->admin_seq = r->seq;
		/* It passed these checks when it was journaled: failing now means the
		 * configuration file changed under the journal, and replaying on would give
		 * other books than before the stop. */
		if (xd_shard_admin(sh, req, NULL, NULL, NULL, 0)) {
			xd_log("error: journal q%d seq %llu: admin record %s no longer applies to "
			       "the configuration (see the line above)",
			       sh->queue, (unsigned long long)r->seq, (const char *)p);
			json_decref(req);
			return -EINVAL;
		}
		json_decref(req);
		break;
	}
	case XJ_FEED:
		xd_feed_replayed(sh, r); /* the feed continues after it: nothing to encode again */
		break;
	default:
		xd_log("error: journal q%d seq %llu: unknown record type %u", sh->queue,
		       (unsigned long long)r->seq, r->type);
		return -EINVAL;
	}
	return 0;
}

int xd_recover(struct xd_shard *sh, char *err, size_t errlen)
{
	const struct xd_opts *o = sh->opts;
	struct xe_engine_stats es;
	uint32_t logged = 0;
	int rc;

	sh->replaying = true;
	rc = xj_open(&sh->journal, o->journal_dir, sh->queue, o->durability, o->segment_bytes,
		     xd_replay_rec, sh);
	sh->replaying = false;
	if (rc)
		return snprintf(err, errlen, "journal %s/q%d: %s (see the line above)",
				o->journal_dir, sh->queue, strerror(-rc)),
		       -1;
	sh->mono_ns = xd_mono_ns();
	for (uint32_t i = 0; i < sh->nsess_list; i++) {
		struct xd_sess *s = &sh->sess[sh->sess_list[i]];

		s->last_rx = s->last_tx = sh->mono_ns;
		logged += s->logged_in;
	}
	xe_engine_get_stats(sh->engine, &es);
	xd_log("recovered q%d: state_hash=0x%016llx orders=%llu sessions=%u logged_in=%u",
	       sh->queue, (unsigned long long)xd_shard_hash(sh),
	       (unsigned long long)es.resting_orders, sh->nsess_list, logged);
	return 0;
}
