/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The lab's fault injector (tc_faults.bpf.c): the layout of its two maps, shared by the BPF
 * program and, through tests that decode the same bytes, traffic/xdpex_traffic/faults.py.
 * Both maps are mmapable arrays, so user space sets rates and reads counters without a syscall
 * per access. Direction 0 is traffic -> gateway (UDP to the gateway port), 1 the way back.
 */
#ifndef XDPEX_FAULTS_H
#define XDPEX_FAULTS_H

#include <linux/types.h>

#define FAULT_DIRS 2
#define FAULT_PPM 1000000u /* rates are parts per million */
#define FAULT_BURST_MAX 8 /* copies one duplication event may add */
#define FAULT_MARK_PASS 0x78650001u /* skb->mark of a copy or a released datagram: pass it */

/* fcfg_map[0]: what to inject. All zero: pass everything (counting what is seen). */
struct fault_cfg {
	__u64 seed; /* decisions are a function of (seed, direction, datagram number) */
	__u32 loss_ppm[FAULT_DIRS]; /* drop */
	__u32 dup_ppm[FAULT_DIRS]; /* send 1..dup_burst extra copies */
	__u32 reorder_ppm[FAULT_DIRS]; /* hand to the holding relay, which sends it later */
	__u32 dup_burst; /* most extra copies of one duplicated datagram, 1..FAULT_BURST_MAX */
	__u32 port; /* the gateway's UDP port */
	__u32 wire_ifindex; /* the traffic side's lab interface (both hooks sit on it) */
	__u32 hold_ifindex; /* where held datagrams leave for the relay and come back from it */
	__u32 all_datagrams; /* 0: sequenced application datagrams only (seq != 0); 1: every one */
	__u32 feed_port; /* UDP port of the market-data feed from the gateway; 0: none */
	__u32 feed_loss_ppm; /* drop of feed datagrams (direction 1 only: the feed's way) */
	__u32 enabled;
};

/* fcnt_map[direction]: what the program did. */
struct fault_cnt {
	__u64 seen_cnt; /* xdpex datagrams of this direction considered */
	__u64 drop_cnt; /* dropped */
	__u64 dup_cnt; /* duplication events */
	__u64 copy_cnt; /* extra copies sent (sum of the bursts) */
	__u64 hold_cnt; /* handed to the relay */
	__u64 release_cnt; /* came back from the relay and went on */
	__u64 error_cnt; /* a clone or redirect the kernel refused (the datagram passed instead) */
	__u64 copy_msg_cnt; /* messages in the extra copies (a datagram carries 1..22) */
	__u64 session_cnt; /* session datagrams (seq 0) passed untouched (all_datagrams off) */
	__u64 msg_cnt; /* messages in the datagrams seen (seen_cnt) */
	__u64 drop_msg_cnt; /* messages in the datagrams dropped */
	__u64 hold_msg_cnt; /* messages in the datagrams held */
	__u64 feed_cnt; /* feed datagrams (UDP to feed_port) considered; direction 1 only */
	__u64 feed_drop_cnt; /* feed datagrams dropped */
};

#endif
