"""The `xdpex` command line: the operator's entry point.

Each subcommand lives in the part that owns it and is imported only when it runs, so a broken or
heavy part never slows down or breaks the others. A subcommand module exposes
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "engine": ("xdpex_engine.cli", "matching engine tools: replay, bench, lobster"),
    "lab": ("xdpex_traffic.lab", "two-namespace veth lab: up, down, status"),
    "pcap": ("xdpex_traffic.pcap", "capture lab traffic, dissect a pcap one message a line"),
    "run": ("xdpex.run", "set up the lab, run the gateway in AF_XDP mode, drive orders, summarise"),
    "up": ("xdpex.up", "start the supervised gateway: dataplane, control plane, persister"),
    "down": ("xdpex.down", "stop the supervised gateway"),
    "status": ("xdpex.status", "supervised gateway: processes, readiness, dataplane mode"),
    "ha-agent": ("xdpex.ha", "HA agent beside one xdpexd --ha: etcd election, lease, fencing"),
    "ha": ("xdpex.hactl", "HA cluster: status, planned switchover (docs/ha.md)"),
    "bench": ("xdpex.benchreport", "wire and control-plane benchmarks as a report"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdpex", description="xdpex order gateway")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
