"""Cost of one xdp_steer run per packet kind, measured in the kernel with BPF_PROG_TEST_RUN.

`make xdp-bench` runs each packet through `xdpex-xdp testrun --repeat N` (the kernel runs the
program N times back to back and reports the mean) and prints the nanoseconds per run, with the
configuration each row needs (allowlist, rate limit, session binding). The figure includes the
test-run loop's own overhead, the same for every row. Results also go to build/bench/xdp.json.
This is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from xdpex_traffic.scapy_layers import XE, XENewOrder

TOP = Path(__file__).resolve().parents[1]
TOOL = TOP / "build" / "xdp" / "xdpex-xdp"
OUT = TOP / "build" / "bench" / "xdp.json"
REPEAT = 2_000_000


def frame(n: int = 1, dport: int = 9000, **kw: object) -> bytes:
    msgs = [XENewOrder(side=1, ord_type=1, tif=2, symbol_id=1, cl_ord_id=i, price=1, qty=1)
            for i in range(n)]  # fmt: skip
    return bytes(
        Ether() / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=40000, dport=dport)
        / XE(session_id=7, seq=1, messages=msgs, **kw)  # type: ignore[arg-type]
    )  # fmt: skip


ROWS: list[tuple[str, bytes, list[str]]] = [
    ("valid, 1 msg, no allowlist/rate/binding", frame(1), []),
    ("valid, 22 msgs", frame(22), []),
    ("valid, allowlist 3 prefixes", frame(1),
     ["--allow", "10.0.0.0/8", "--allow", "192.168.0.0/16", "--allow", "172.16.0.0/12"]),
    ("valid, bound session", frame(1), ["--bind", "7=10.1.0.1:40000"]),
    ("valid, rate limit (never reached)", frame(1), ["--pps", "1000000000", "--burst", "1000"]),
    ("valid, all checks on", frame(1), ["--allow", "10.0.0.0/8", "--bind", "7=10.1.0.1:40000",
                                        "--pps", "1000000000", "--burst", "1000"]),
    ("not ours (UDP 53)", frame(1, dport=53), []),
    ("bad magic", frame(1, magic=0x1234), []),
]  # fmt: skip


def main() -> int:
    if not TOOL.is_file():
        print(f"{TOOL} is missing: run make build", file=sys.stderr)
        return 1
    results = []
    print(f"xdp_steer under BPF_PROG_TEST_RUN, repeat={REPEAT} (ns per run, mean)")
    for desc, pkt, opts in ROWS:
        proc = subprocess.run(
            [str(TOOL), "testrun", "--repeat", str(REPEAT), *opts],
            input=pkt.hex() + "\n", capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        res = json.loads(proc.stdout.splitlines()[0])
        results.append({"case": desc, "verdict": res["verdict"], "ns": res["duration_ns"]})
        print(f"  {res['duration_ns']:5d} ns  {res['verdict']:<9} {desc}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"repeat": REPEAT, "results": results}, indent=2) + "\n")
    print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
