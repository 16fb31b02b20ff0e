"""Prometheus metrics of the control plane, all named `xdpex_*`.

Two kinds. Counters and histograms this process keeps itself (REST/gRPC order entry latency,
orders entered by API and result, HTTP request durations). And a collector that, on every
scrape, asks xdpexd's control socket for `stats` and reads the persister's position from the
database: XDP verdict counters by reason (the XDP program's pinned stats map, as xdpexd reports
it), AF_XDP socket statistics, dataplane drop counters by reason and queue, engine counters, the
journal sequence and the persister's lag behind it. A scrape while the dataplane is down still
succeeds, with `xdpex_dataplane_up 0`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import select

from .bpfmap import counter_names, read_percpu_counters
from .models import PersisterPosition

if TYPE_CHECKING:
    from .service import ControlPlane

QUEUE_COUNTERS = (
    "rx_datagrams",
    "rx_msgs",
    "tx_datagrams",
    "tx_msgs",
    "applied",
    "duplicates",
    "gaps",
    "logins",
    "login_rejects",
    "timeouts",  # sessions the gateway dropped for missed heartbeats (disconnects)
    "retransmitted",
    "journal_bytes",
    "journal_writes",
    "fsyncs",
)
DROP_REASONS = (
    "malformed",
    "unknown_session",
    "not_allowed",
    "spoofed",
    "not_logged_in",
    "rate_limited",
)
# Why xdpexd refused logins (the wire says only BAD_PROOF to whoever has not proven itself):
# stats field -> reason label of xdpex_dataplane_login_refusals.
LOGIN_REFUSALS = {
    "login_unknown": "unknown_session",
    "login_bad_proof": "bad_proof",
    "login_disabled": "disabled",
    "login_throttled": "throttled",  # dropped unanswered: the refused-login budget was spent
}
AFXDP_STATS = (
    "rx_dropped",
    "rx_invalid_descs",
    "tx_invalid_descs",
    "rx_ring_full",
    "rx_fill_ring_empty_descs",
    "tx_ring_empty_descs",
)
LAT_BUCKETS = (
    50e-6,
    100e-6,
    200e-6,
    500e-6,
    1e-3,
    2e-3,
    5e-3,
    10e-3,
    25e-3,
    50e-3,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def read_pinned_counters(pin_dir: Path) -> dict[str, int] | None:
    """The XDP program's counters straight from its pinned stats map (bpf(2), no process), for
    when xdpexd cannot report them; None when nothing is pinned or the map cannot be read."""
    if not (pin_dir / "stats_map").exists():
        return None
    try:
        return read_percpu_counters(pin_dir / "stats_map", counter_names())
    except OSError:
        return None


class _DataplaneCollector(Collector):
    def __init__(self, cp: ControlPlane):
        self.cp = cp

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("xdpex_dataplane_up", "1 if xdpexd's control socket answers")
        try:
            st = self.cp.ctl.stats()
        except Exception:  # noqa: BLE001 - any failure = down
            st = None
        up.add_metric([], 1 if st else 0)
        yield up
        journal_seq: dict[str, int] = {}
        if st:
            yield from self._stats(st, journal_seq)
        if not (st and st.get("xdp_counters")):
            pinned = read_pinned_counters(self.cp.settings.xdp_pin_dir)
            if pinned:
                yield self._xdp(pinned)
        yield from self._persister(journal_seq)
        if st:
            try:
                ha = self.cp.ctl.request("ha")
            except Exception:  # noqa: BLE001 - an older xdpexd: no HA figures
                ha = None
            if ha:
                yield from ha_metrics(ha)

    @staticmethod
    def _xdp(counters: dict[str, int]) -> Metric:
        xdp = CounterMetricFamily(
            "xdpex_xdp_packets",
            "packets the XDP program handled, by verdict reason (pinned stats_map)",
            labels=["reason"],
        )
        for name, v in counters.items():
            xdp.add_metric([name.removesuffix("_cnt")], float(v))
        return xdp

    def _stats(self, st: dict, journal_seq: dict[str, int]) -> Iterator[Metric]:
        qc = {
            k: CounterMetricFamily(
                f"xdpex_dataplane_{k}", f"xdpexd {k} per queue", labels=["queue"]
            )
            for k in QUEUE_COUNTERS
        }
        drops = CounterMetricFamily(
            "xdpex_dataplane_dropped",
            "datagrams/messages xdpexd refused, by reason and queue",
            labels=["queue", "reason"],
        )
        refusals = CounterMetricFamily(
            "xdpex_dataplane_login_refusals",
            "logins xdpexd refused, by the reason it logged (throttled: not even answered)",
            labels=["queue", "reason"],
        )
        afx = CounterMetricFamily(
            "xdpex_afxdp_events",
            "AF_XDP socket statistics (XDP_STATISTICS) by queue",
            labels=["queue", "reason"],
        )
        jseq = GaugeMetricFamily(
            "xdpex_journal_seq", "last journal sequence written", labels=["queue"]
        )
        jahead = GaugeMetricFamily(
            "xdpex_journal_ahead_bytes",
            "journal space ready past the tail: reserved (blocks and page cache) or mapped "
            "writable (the queue thread copies into it with no syscall)",
            labels=["queue", "state"],
        )
        for q in st.get("queues", []) or []:
            ql = str(q.get("queue", 0))
            for k in QUEUE_COUNTERS:
                if k in q:
                    qc[k].add_metric([ql], float(q[k]))
            for r in DROP_REASONS:
                if r in q:
                    drops.add_metric([ql, r], float(q[r]))
            for k, label in LOGIN_REFUSALS.items():
                if k in q:
                    refusals.add_metric([ql, label], float(q[k]))
            for r in AFXDP_STATS:
                v = (q.get("xdp") or {}).get(r)
                if v is not None:
                    afx.add_metric([ql, r], float(v))
            for state in ("reserved", "mapped"):
                if f"journal_{state}_ahead" in q:
                    jahead.add_metric([ql, state], float(q[f"journal_{state}_ahead"]))
            if "journal_seq" in q:
                jseq.add_metric([ql], float(q["journal_seq"]))
                journal_seq[ql] = int(q["journal_seq"])
        yield from qc.values()
        yield drops
        yield refusals
        yield afx
        yield jseq
        yield jahead
        if st.get("xdp_counters"):
            yield self._xdp(st["xdp_counters"])
        if st.get("dpdk"):
            yield from self._dpdk(st)
        yield self._latency(st)
        eng = st.get("engine") or {}
        for k, kind in (
            ("resting_orders", "g"),
            ("levels", "g"),
            ("orders_in", "c"),
            ("fills", "c"),
            ("rejects", "c"),
        ):
            if k in eng:
                m = (GaugeMetricFamily if kind == "g" else CounterMetricFamily)(
                    f"xdpex_engine_{k}", f"matching engine {k} (all queues)"
                )
                m.add_metric([], float(eng[k]))
                yield m
        yield from self._sizing(st)
        info = GaugeMetricFamily(
            "xdpex_dataplane_info",
            "dataplane mode",
            labels=["mode", "attach_mode", "bind_mode", "durability", "poll"],
        )
        info.add_metric(
            [str(st.get(k)) for k in ("mode", "attach_mode", "bind_mode", "durability", "poll")], 1
        )
        yield info

    @staticmethod
    def _sizing(st: dict) -> Iterator[Metric]:
        """What each queue holds against what it was sized for, and its memory
        (docs/dataplane.md, Sizing)."""
        used = GaugeMetricFamily("xdpex_dataplane_configured", "symbols and sessions "
                                 "configured, orders resting, per queue", labels=["queue", "kind"])
        cap = GaugeMetricFamily("xdpex_dataplane_limit", "engine.max_symbols / max_sessions / "
                                "max_orders, per queue", labels=["queue", "kind"])
        mem = GaugeMetricFamily("xdpex_dataplane_memory_bytes", "memory per queue: engine_fixed "
                                "(orders, index, books), directory, ladder (pages and nodes in "
                                "use), ladder_touched, ladder_reserved (address space), dataplane",
                                labels=["queue", "part"])
        per = GaugeMetricFamily("xdpex_dataplane_memory_per_item_bytes", "memory one more "
                                "symbol id, session id or resting order costs, per queue",
                                labels=["item"])
        for q in st.get("queues", []) or []:
            ql = str(q.get("queue", 0))
            for kind, v in (q.get("limits") or {}).items():
                used.add_metric([ql, kind], float(v.get("configured", v.get("resting", 0))))
                cap.add_metric([ql, kind], float(v.get("max", 0)))
            for part, v in (q.get("memory") or {}).items():
                if part.endswith("_bytes"):
                    mem.add_metric([ql, part[: -len("_bytes")]], float(v))
        for item, v in ((st.get("memory") or {}).get("per") or {}).items():
            per.add_metric([item], float(v))
        yield from (used, cap, mem, per)

    @staticmethod
    def _latency(st: dict) -> Metric:
        """xdpexd's per-queue histograms: receipt of a datagram to its answers' departure
        (stage total) and its shares (engine, journal, transmit)."""
        h = HistogramMetricFamily(
            "xdpex_gateway_latency_seconds",
            "xdpexd: start of the receive burst that brought a datagram to the end of its "
            "batch's transmit (total), and the engine, journal and transmit stages of it",
            labels=["queue", "stage"],
        )
        for q in st.get("queues", []) or []:
            lat = q.get("latency")
            if not lat:
                continue
            bounds = lat["bounds_ns"]
            for stage, v in lat.items():
                if stage == "bounds_ns":
                    continue
                cum, buckets = 0, []
                for le, n in zip(bounds, v["buckets"], strict=False):
                    cum += n
                    buckets.append((repr(le / 1e9), float(cum)))
                buckets.append(("+Inf", float(v["count"])))
                h.add_metric([str(q.get("queue", 0)), stage], buckets, v["sum_ns"] / 1e9)
        return h

    @staticmethod
    def _dpdk(st: dict) -> Iterator[Metric]:
        """The DPDK port of --mode dpdk: its counters, every xstat, and per-queue figures."""
        port = st["dpdk"]
        pl = [str(port.get("port")), str(port.get("driver"))]
        stats = CounterMetricFamily(
            "xdpex_dpdk_port",
            "DPDK port counters (rte_eth_stats)",
            labels=["port", "driver", "counter"],
        )
        for k, v in (port.get("stats") or {}).items():
            stats.add_metric([*pl, k], float(v))
        yield stats
        xs = CounterMetricFamily(
            "xdpex_dpdk_xstat", "DPDK port extended statistics (rte_eth_xstats)",
            labels=["port", "driver", "name"],
        )
        for k, v in (port.get("xstats") or {}).items():
            xs.add_metric([*pl, k], float(v))
        yield xs
        q = CounterMetricFamily(
            "xdpex_dpdk_queue", "DPDK queue counters: packets in and out, errors, ARP replies sent",
            labels=["queue", "counter"],
        )
        for qs in st.get("queues", []) or []:
            for k, v in (qs.get("dpdk") or {}).items():
                if k != "queue":
                    q.add_metric([str(qs.get("queue", 0)), k], float(v))
        yield q

    def _persister(self, journal_seq: dict[str, int]) -> Iterator[Metric]:
        pos = GaugeMetricFamily(
            "xdpex_persister_seq", "journal sequence the database holds", labels=["queue"]
        )
        lag = GaugeMetricFamily(
            "xdpex_persister_lag_records",
            "journal records not yet in the database",
            labels=["queue"],
        )
        try:
            with self.cp.db() as db:
                rows = list(db.scalars(select(PersisterPosition)))
        except Exception:  # noqa: BLE001 - database down: no persister figures
            rows = []
        for r in rows:
            q = r.name.removeprefix("q")
            pos.add_metric([q], float(r.journal_seq))
            if q in journal_seq:
                lag.add_metric([q], float(max(0, journal_seq[q] - r.journal_seq)))
        yield pos
        yield lag


class Metrics:
    """The registry of one ControlPlane and the instruments the front ends update."""

    def __init__(self, cp: ControlPlane):
        self.registry = CollectorRegistry(auto_describe=False)
        self.order_latency = Histogram(
            "xdpex_order_entry_latency_seconds",
            "submit call to gateway acknowledgement",
            ["api"],
            buckets=LAT_BUCKETS,
            registry=self.registry,
        )
        self.orders = Counter(
            "xdpex_orders_entered",
            "orders entered through the control plane, by API and result",
            ["api", "result"],
            registry=self.registry,
        )
        self.http = Histogram(
            "xdpex_http_request_duration_seconds",
            "REST request duration",
            ["method", "route", "status"],
            buckets=LAT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_DataplaneCollector(cp))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def ha_metrics(ha: dict) -> Iterator[Metric]:
    """High availability (docs/ha.md) from xdpexd's `ha` answer: role, epoch, fencing, and per
    queue the replication figures of a primary (each standby's lag) or of a standby (what it
    follows, in which state)."""
    role = GaugeMetricFamily("xdpex_ha_role", "1 for this node's role", labels=["role"])
    role.add_metric([str(ha.get("role"))], 1)
    yield role
    for name, v, doc in (
        ("xdpex_ha_epoch", ha.get("epoch"), "leadership epoch (the etcd revision of the key)"),
        ("xdpex_ha_fenced", int(bool(ha.get("fenced"))), "1 while answers may not leave"),
        ("xdpex_ha_lease_seconds", (ha.get("lease_ms") or 0) / 1000,
         "what is left of the lease the agent granted"),
    ):
        g = GaugeMetricFamily(name, doc)
        g.add_metric([], float(v or 0))
        yield g
    standbys = GaugeMetricFamily("xdpex_replication_standbys",
                                 "standbys streaming from this primary", labels=["queue"])
    held = GaugeMetricFamily("xdpex_replication_held_datagrams",
                             "answers held for a standby's acknowledgement", labels=["queue"])
    lag = {k: GaugeMetricFamily(f"xdpex_replication_lag_{k}",
                                f"a standby's replication lag in {k}",
                                labels=["queue", "standby"])
           for k in ("records", "bytes", "seconds")}
    following = GaugeMetricFamily("xdpex_replication_following",
                                  "1 for a standby's replication state", labels=["queue", "state"])
    flag = GaugeMetricFamily("xdpex_replication_standby_lag_records",
                             "records the primary has that this standby does not",
                             labels=["queue"])
    hashes = CounterMetricFamily("xdpex_replication_hashes_matched",
                                 "state hashes of the primary this standby matched",
                                 labels=["queue"])
    for i, q in enumerate(ha.get("queues", []) or []):
        ql = str(q.get("queue", i))
        held.add_metric([ql], float(q.get("held_datagrams", 0)))
        if "standbys" in q:
            standbys.add_metric([ql], float(len(q["standbys"])))
            for sb in q["standbys"]:
                lag["records"].add_metric([ql, sb["name"]], float(sb["lag_records"]))
                lag["bytes"].add_metric([ql, sb["name"]], float(sb["lag_bytes"]))
                lag["seconds"].add_metric([ql, sb["name"]], sb["lag_us"] / 1e6)
        f = q.get("following")
        if f:
            following.add_metric([ql, str(f.get("state"))], 1)
            flag.add_metric([ql], float(f.get("lag_records", 0)))
            hashes.add_metric([ql], float(f.get("hashes_matched", 0)))
    yield standbys
    yield held
    yield from lag.values()
    yield following
    yield flag
    yield hashes
