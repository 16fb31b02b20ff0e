"""`xdpex run` / `make run`: the end-to-end demonstration of the fast path.

`make` has already set up the machine and built everything. This brings up the veth lab, starts
xdpexd in AF_XDP mode in the gateway namespace with a generated configuration (four symbols,
sessions with fresh random secrets), waits for its control socket, drives a batched run and a
single-order latency run through it with xdpex-loadgen from the traffic namespace, prints what
happened (orders, answers, fills, rejects, rate, round-trip percentiles, the XDP program's
verdict counters and the dataplane's own counters), stops xdpexd cleanly and takes the lab down.
Beside the dataplane it runs the control plane (REST + gRPC, http://127.0.0.1:8080 unless that is
taken), prints its URL and operator token, and enters one order through REST, which travels the
same sequenced, journaled path as the wire orders.
A failing step ends the run with a non-zero status and a message naming the step.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xdpex_traffic.lab import GW_CPU, TG_CPU, Lab, LabError
from xdpex_traffic.wire import PRICE_BAND, Gateway, WireError, run_loadgen, xdpexd_path

from .localcp import ControlPlaneError, LocalControlPlane


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orders", type=int, default=200_000, help="orders in the batched run")
    parser.add_argument("--batch", type=int, default=16, help="orders per datagram (1..22)")
    parser.add_argument(
        "--latency-orders", type=int, default=20_000, help="orders in the single-order run"
    )
    parser.add_argument(
        "--latency-rate", type=int, default=50_000, help="orders/s offered in the single-order run"
    )
    parser.add_argument("--mode", choices=["afxdp", "udp"], default="afxdp")
    parser.add_argument("--prefix", default="xdpex", help="lab namespace prefix")
    parser.add_argument(
        "--generator",
        choices=["afxdp", "udp"],
        default="afxdp",
        help="the load generator's own I/O: its AF_XDP socket (default) or kernel UDP",
    )
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--http-port", type=int, default=8080, help="control plane REST port")
    parser.add_argument("--grpc-port", type=int, default=50051, help="control plane gRPC port")
    parser.add_argument(
        "--no-control", action="store_true", help="do not start the control plane beside xdpexd"
    )
    parser.add_argument(
        "--ha", action="store_true",
        help="instead: a primary and a standby with etcd, the primary killed under load "
             "(kernel UDP on 127.0.0.1; docs/ha.md)")
    parser.add_argument("--ha-rate", type=int, default=2000, help="--ha: orders/s offered")
    parser.add_argument("--ha-seconds", type=float, default=6.0, help="--ha: seconds of load")


def _line(name: str, r: dict[str, Any]) -> str:
    rtt = r["rtt_us"]
    rej = ", ".join(f"{k} {v}" for k, v in sorted(r["rejects"].items())) or "none"
    return (
        f"{name}: sent {r['sent']:,} answered {r['answered']:,} lost {r['lost']:,}  "
        f"{r['orders_per_s']:,.0f} orders/s\n"
        f"    rtt us p50 {rtt['p50']:.1f}  p99 {rtt['p99']:.1f}  p99.9 {rtt['p999']:.1f}  "
        f"max {rtt['max']:.1f}\n"
        f"    accepted {r['accepted']:,}  fills {r['fills']:,} ({r['filled_qty']:,} lots)  "
        f"cancelled {r['cancelled']:,}  rejects: {rej}"
    )


def _summary(mode: str, batched: dict[str, Any], single: dict[str, Any], st: dict[str, Any]) -> str:
    out = [
        f"xdpex run: xdpexd mode={st.get('mode', mode)} attach={st.get('attach_mode')} "
        f"bind={st.get('bind_mode')} poll={st.get('poll')} durability={st.get('durability')}; "
        f"generator io={batched.get('io')}",
        _line(f"batched ({batched['orders_per_datagram']} orders/datagram)", batched),
        _line("single order/datagram", single),
    ]
    counters = st.get("xdp_counters") or {}
    if counters:
        out.append("XDP verdicts: " + "  ".join(f"{k} {v:,}" for k, v in sorted(counters.items())))
    for q in st.get("queues", []):
        keys = ("rx_datagrams", "rx_msgs", "tx_datagrams", "tx_msgs", "applied", "gaps")
        out.append(f"queue {q.get('queue')}: " + "  ".join(f"{k} {q.get(k, 0):,}" for k in keys))
        xdp = q.get("xdp") or {}
        if xdp:
            out.append("  AF_XDP: " + "  ".join(f"{k} {v:,}" for k, v in sorted(xdp.items())))
    eng = st.get("engine") or {}
    if eng:
        out.append("engine: " + "  ".join(f"{k} {v:,}" for k, v in sorted(eng.items())))
    return "\n".join(out)


def _control_demo(cp: LocalControlPlane) -> str:
    """One order entered and cancelled through REST, then what readiness and metrics say."""
    price = PRICE_BAND[0] + 1  # far below the market: it rests
    body = {"symbol_id": 1, "side": "buy", "type": "limit", "tif": "gtc", "qty": 1, "price": price}
    r = cp.request("POST", "/api/v1/orders", json=body)
    if r.status_code >= 300:
        raise ControlPlaneError(f"POST /api/v1/orders: HTTP {r.status_code}: {r.text}")
    ack = r.json()
    r = cp.request("DELETE", f"/api/v1/orders/{ack.get('order_id')}")
    if r.status_code >= 300:
        raise ControlPlaneError(f"DELETE /api/v1/orders/{ack.get('order_id')}: {r.text}")
    cxl = r.json()
    ready = cp.request("GET", "/readyz").json()
    metrics = cp.request("GET", "/metrics").text.splitlines()
    samples = [m for m in metrics if m.startswith("xdpex_") and not m.startswith("#")]
    keep = ("xdpex_xdp_packets_total", "xdpex_orders_entered", "xdpex_journal_seq")
    shown = [m for m in samples if m.startswith(keep) and "_created" not in m][:8]
    out = [
        f"control plane: REST order {body['side']} {body['qty']} @ {price} GTC on symbol 1 -> "
        f"{ack.get('status')} (order_id {ack.get('order_id')}, session {ack.get('session_id')}); "
        f"DELETE -> {cxl.get('status', cxl)}",
        "control plane: readiness " + ", ".join(f"{k}: {v}" for k, v in ready["checks"].items()),
        f"control plane: /metrics exports {len(samples)} xdpex_* samples, e.g.",
    ]
    out += [f"    {m}" for m in shown]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.ha and xdpexd_path().exists():
        from .runha import run_ha

        return run_ha(args.ha_rate, args.ha_seconds)
    if not xdpexd_path().exists():
        print(
            "xdpex run: the fast path is not built yet: "
            f"{xdpexd_path()} is missing (the dataplane arrives with issue 4).",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.batch <= 22:
        print(f"xdpex run: --batch {args.batch}: must be 1..22", file=sys.stderr)
        return 2
    step = "lab up"
    lab: Lab | None = None
    gw: Gateway | None = None
    cp: LocalControlPlane | None = None
    try:
        lab = Lab(args.prefix)
        lab.up()
        step = f"start xdpexd ({args.mode})"
        # Journal space for this run's records reserved before the first order, as a gateway
        # does before the open (docs/BENCHMARKS.md, "Wire: where the time goes").
        gw = Gateway(
            lab, args.mode, cpu=GW_CPU, poll="spin", extra_args=["--journal-reserve-mb", "64"]
        )
        gw.start()
        print(f"xdpex run: lab {lab.prefix} up, xdpexd {args.mode} ready on {gw.server}")
        if not args.no_control:
            step = "start the control plane"
            cp = LocalControlPlane(
                gw.workdir / "control",
                ctl_socket=gw.ctl_path,
                order_socket=gw.workdir / "entry.sock",
                journal_dir=gw.workdir / "journal",
                udp_mode=args.mode == "udp",
                pin_dir=gw.pin_dir if args.mode == "afxdp" or gw.xdp_filter else None,
                http_port=args.http_port,
                grpc_port=args.grpc_port,
            )
            cp.start()
            for note in cp.moved:
                print(f"xdpex run: {note}")
            print(
                f"xdpex run: control plane at {cp.url} (OpenAPI at {cp.url}/docs, gRPC on "
                f"127.0.0.1:{cp.grpc_port}); operator token for this run: {cp.token}"
            )
        io = ["--xdp", lab.tg_if] if args.generator == "afxdp" else []
        step = "batched load run"
        window = max(args.batch * 64, 256)
        batched = run_loadgen(
            lab,
            gw,
            gw.sessions[0:2],
            ["--count", str(args.orders), "--batch", str(args.batch), "--window", str(window)]
            + ["--duration", "20"]
            + io,
            cpu=TG_CPU,
        )
        step = "single-order latency run"
        single = run_loadgen(
            lab,
            gw,
            gw.sessions[2:4],
            ["--count", str(args.latency_orders), "--batch", "1"]
            + ["--rate", str(args.latency_rate), "--duration", "20"]
            + io,
            cpu=TG_CPU,
        )
        step = "xdpexd stats"
        st = gw.stats()
        print(_summary(args.mode, batched, single, st))
        if cp is not None:
            step = "order entry through the control plane"
            print(_control_demo(cp))
            cp.stop()
        step = "stop xdpexd"
        rc = gw.stop()
        if rc != 0:
            raise WireError(f"xdpexd exited with status {rc}:\n{gw.log_tail()}")
        bad = [n for n, r in (("batched", batched), ("single", single)) if r["lost"]]
        if bad:
            print(f"xdpex run: orders left unanswered in the {' and '.join(bad)} run")
            return 1
        print("xdpex run: ok")
        return 0
    except (LabError, WireError, ControlPlaneError, OSError) as e:
        print(f"xdpex run: step '{step}' failed: {e}", file=sys.stderr)
        return 1
    finally:
        if cp is not None:
            cp.stop()
        if gw is not None:
            gw.cleanup()
        if lab is not None and not args.keep:
            try:
                lab.down()
            except LabError as e:
                print(f"xdpex run: step 'lab down' failed: {e}", file=sys.stderr)
