/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The feed's kernel UDP sender: one socket, every packet to every destination (a multicast group,
 * unicast subscribers, or both) with sendmmsg(), a short send counted as an error rather than
 * retried (the feed is not flow-controlled: a subscriber that misses a packet asks the rewind
 * server). Multicast TTL, loopback and the outgoing interface are set at open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xdpex_feed.h"

#define XF_TX_BATCH 64

int xf_parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (*end || !colon[1] || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

int xf_tx_open(struct xf_tx *t, const char *bind_addr, uint16_t bind_port, const char *mcast_if,
	       int ttl, int loop)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(bind_port)};
	unsigned char c;
	int one = 1, rc;

	memset(t, 0, sizeof(*t));
	t->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return -errno;
	if (bind_addr && inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
		rc = -EINVAL;
		goto fail;
	}
	setsockopt(t->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((bind_addr || bind_port) && bind(t->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		goto fail;
	}
	c = (unsigned char)(ttl > 0 ? ttl : 1);
	if (setsockopt(t->fd, IPPROTO_IP, IP_MULTICAST_TTL, &c, sizeof(c))) {
		rc = -errno;
		goto fail;
	}
	c = loop ? 1 : 0;
	if (setsockopt(t->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &c, sizeof(c))) {
		rc = -errno;
		goto fail;
	}
	if (mcast_if) {
		struct in_addr ifa;

		if (inet_pton(AF_INET, mcast_if, &ifa) != 1) {
			rc = -EINVAL;
			goto fail;
		}
		if (setsockopt(t->fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa))) {
			rc = -errno;
			goto fail;
		}
	}
	return 0;
fail:
	close(t->fd);
	t->fd = -1;
	return rc;
}

int xf_tx_add_dst(struct xf_tx *t, const char *addr_port)
{
	if (t->ndst == XF_TX_MAX_DSTS)
		return -ENOSPC;
	if (xf_parse_addr(addr_port, &t->dst[t->ndst]) || !t->dst[t->ndst].sin_port)
		return -EINVAL;
	t->ndst++;
	return 0;
}

int xf_tx_send(struct xf_tx *t, uint8_t *const *pkts, const size_t *lens, uint32_t n)
{
	struct mmsghdr mm[XF_TX_BATCH];
	struct iovec iov[XF_TX_BATCH];
	int err = 0;

	for (uint32_t d = 0; d < t->ndst; d++) {
		for (uint32_t i = 0; i < n; i += XF_TX_BATCH) {
			uint32_t k = n - i < XF_TX_BATCH ? n - i : XF_TX_BATCH, done = 0;

			for (uint32_t j = 0; j < k; j++) {
				iov[j].iov_base = pkts[i + j];
				iov[j].iov_len = lens[i + j];
				memset(&mm[j], 0, sizeof(mm[j]));
				mm[j].msg_hdr.msg_name = &t->dst[d];
				mm[j].msg_hdr.msg_namelen = sizeof(t->dst[d]);
				mm[j].msg_hdr.msg_iov = &iov[j];
				mm[j].msg_hdr.msg_iovlen = 1;
			}
			while (done < k) {
				int r = sendmmsg(t->fd, mm + done, k - done, 0);

				if (r < 0) {
					if (errno == EINTR)
						continue;
					/* ENOBUFS/EAGAIN and the like: this packet is lost to this
					 * destination (rewind recovers it); go on with the rest. */
					err = -errno;
					t->errors++;
					done++;
					continue;
				}
				for (int j = 0; j < r; j++) {
					t->datagrams++;
					t->bytes += mm[done + j].msg_len;
				}
				done += (uint32_t)r;
			}
		}
	}
	return err && !t->datagrams ? err : (int)n;
}

void xf_tx_close(struct xf_tx *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
