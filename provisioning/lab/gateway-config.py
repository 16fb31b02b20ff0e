#!/usr/bin/env python3
"""Writes a gateway configuration and the matching session credentials for a two-host lab (Vagrant
VMs or bare metal), where `make run` is not there to generate them.

    .venv/bin/python provisioning/lab/gateway-config.py --sessions 4 --symbols 4 -o /etc/xdpex

DIR/gateway.json is xdpexd's --config (docs/dataplane.md: symbols 1..N with tick 1, lot 1 and the
price band 9000..11000 the load generator and the TRex profiles trade in; sessions 1..N with fresh
random 32-byte secrets and cancel-on-disconnect). DIR/secrets.txt holds one "ID HEXSECRET" line
per session: the format of `xdpex-loadgen --credentials` and `traffic/trex/run.py --secrets`.
Copy secrets.txt to the traffic host. Both files are created mode 0600; existing files are kept
unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "traffic"))
from xdpex_traffic.wire import Session, make_config  # noqa: E402


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out", type=Path, required=True, help="directory for the two files")
    p.add_argument("--sessions", type=int, default=4, help="sessions 1..N (default 4)")
    p.add_argument("--symbols", type=int, default=4, help="symbols 1..N (default 4)")
    p.add_argument("--heartbeat-ms", type=int, default=1000)
    p.add_argument("--force", action="store_true", help="replace existing files")
    a = p.parse_args()
    if not 1 <= a.sessions <= 1024:
        p.error(f"--sessions {a.sessions}: expected 1..1024")
    if not 1 <= a.symbols <= 1024:
        p.error(f"--symbols {a.symbols}: expected 1..1024")
    if a.heartbeat_ms < 1:
        p.error(f"--heartbeat-ms {a.heartbeat_ms}: expected >= 1")
    cfg_path, sec_path = a.out / "gateway.json", a.out / "secrets.txt"
    for f in (cfg_path, sec_path):
        if f.exists() and not a.force:
            p.error(f"{f} exists (use --force to replace it and its sessions' secrets)")
    a.out.mkdir(parents=True, exist_ok=True)
    sessions = [Session(i) for i in range(1, a.sessions + 1)]
    cfg = make_config(list(range(1, a.symbols + 1)), sessions)
    cfg["heartbeat_ms"] = a.heartbeat_ms
    write_private(cfg_path, json.dumps(cfg, indent=2) + "\n")
    write_private(sec_path, "".join(f"{s.id} {s.secret.hex()}\n" for s in sessions))
    print(f"wrote {cfg_path} ({a.symbols} symbols, {a.sessions} sessions) and {sec_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
