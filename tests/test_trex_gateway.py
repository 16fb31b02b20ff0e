"""The TRex profiles' packets against the real gateway, without TRex.

In the veth lab (unique prefix), xdpexd runs in the gateway namespace. From the traffic namespace,
traffic/trex/run.py's own code logs two sessions in over UDP (`--login udp`) and loads a profile
with the sessions' next inbound sequences as --start-seq, exactly as it does before starting a
TRex stream. The test then plays each stream's field engine forward (TRex's `inc` semantics) and
puts the resulting frames on the traffic end's wire with a raw socket, as TRex would. The gateway
must apply every message: each session's next inbound sequence advances by orders x datagrams,
no SequenceGap, no reject for an unknown or duplicate order id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane_support import lab_up
from xdpex_traffic.lab import GW_MAC, TG_MAC, Lab
from xdpex_traffic.wire import Gateway

TOP = Path(__file__).resolve().parent.parent
TREX = TOP / "traffic" / "trex"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_trex_profiles import play  # noqa: E402

LOGIN_AND_LOAD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import run as trexrun
a = trexrun.parse_args(sys.argv[2:])
keys = trexrun.session_secrets(a)
got = trexrun.login_udp(a, keys)
starts = [got[s] for s in keys]
streams = trexrun.load_profile(a, starts).to_json()
trexrun.send_session(None, a, trexrun.session_datagrams("heartbeat", got))  # as run() does
print(json.dumps({"starts": starts, "streams": streams}))
"""

LOGOUT = """
import sys
sys.path.insert(0, sys.argv[1])
import run as trexrun
a = trexrun.parse_args(sys.argv[2:])
keys = trexrun.session_secrets(a)
trexrun.send_session(None, a, trexrun.session_datagrams("logout", dict.fromkeys(keys, 0)))
"""

SEND_FRAMES = """
import json, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in json.load(sys.stdin):
    s.send(bytes.fromhex(frame))
"""


@pytest.fixture
def lab() -> Iterator[Lab]:
    with lab_up("xtg") as lab:
        yield lab


def sessions_by_id(gw: Gateway) -> dict[int, dict[str, Any]]:
    st = gw.ctl({"cmd": "sessions"})
    assert st.get("ok"), st
    return {s["id"]: s for s in st["sessions"]}


@pytest.mark.parametrize(
    ("profile", "mode", "orders"),
    [("orders.py", "udp", 5), ("order_cancel.py", "afxdp", 8)],
)
def test_profile_stream_is_applied_in_full(
    lab: Lab, tmp_path: Path, profile: str, mode: str, orders: int
) -> None:
    count = 25  # datagrams per session
    with Gateway(lab, mode, nsessions=2) as gw:
        creds = tmp_path / "secrets.txt"
        creds.write_text("".join(f"{s.id} {s.secret.hex()}\n" for s in gw.sessions))
        args = ["--server", "unused", "--login", "udp", "--secrets", str(creds),
                "--profile", str(TREX / profile), "--sessions", "2", "--orders", str(orders),
                "--symbols", "3", "--count", str(count), "--price", "10000",
                "--src", lab.tg_ip, "--dst", lab.gw_ip]  # fmt: skip
        r = subprocess.run(
            lab.netns_cmd(lab.tg_ns, [sys.executable, "-c", LOGIN_AND_LOAD, str(TREX), *args]),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr + gw.log_tail()
        loaded = json.loads(r.stdout)
        starts, streams = loaded["starts"], loaded["streams"]
        before = sessions_by_id(gw)
        for sid, start in zip((1, 2), starts, strict=True):
            assert before[sid]["state"] == "logged_in"
            assert before[sid]["bound"] == f"{lab.tg_ip}:{40000 + sid - 1}"
            assert before[sid]["next_in"] == start

        frames = []
        for s in streams:
            assert s["mode"]["total_pkts"] == count
            for f in play(s, count):
                mac = bytes.fromhex(GW_MAC.replace(":", "")) + bytes.fromhex(
                    TG_MAC.replace(":", "")
                )
                frames.append((mac + f[12:]).hex())
        stats0 = gw.stats()["queues"][0]
        send = subprocess.run(
            lab.netns_cmd(lab.tg_ns, [sys.executable, "-c", SEND_FRAMES, lab.tg_if]),
            input=json.dumps(frames), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert send.returncode == 0, send.stderr

        want = {sid: start + orders * count for sid, start in zip((1, 2), starts, strict=True)}
        deadline = time.monotonic() + 20
        while True:
            now = sessions_by_id(gw)
            got = {sid: now[sid]["next_in"] for sid in want}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == want, gw.log_tail()
        q = gw.stats()["queues"][0]
        assert q["applied"] - stats0["applied"] == 2 * orders * count
        assert q["gaps"] == stats0["gaps"] and q["duplicates"] == stats0["duplicates"]
        assert q["malformed"] == stats0["malformed"]
        engine = gw.stats()["engine"]
        assert engine["rejects"] == 0, engine
        if profile == "order_cancel.py":
            assert engine["resting_orders"] == 0  # every order cancelled in its own datagram

        # The runner's closing Logout, from each stream's address, ends the sessions.
        bye = subprocess.run(
            lab.netns_cmd(lab.tg_ns, [sys.executable, "-c", LOGOUT, str(TREX), *args]),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bye.returncode == 0, bye.stderr
        deadline = time.monotonic() + 10
        while any(s["state"] != "logged_out" for s in sessions_by_id(gw).values()):
            assert time.monotonic() < deadline, sessions_by_id(gw)
            time.sleep(0.1)


def test_runner_login_refused_names_the_reason(lab: Lab, tmp_path: Path) -> None:
    with Gateway(lab, "udp", nsessions=1) as gw:
        creds = tmp_path / "secrets.txt"
        creds.write_text(f"1 {'00' * 32}\n")  # not the session's secret
        code = (
            "import sys\n"
            f"sys.path.insert(0, {str(TREX)!r})\n"
            "import run as trexrun\n"
            "a = trexrun.parse_args(sys.argv[1:])\n"
            "try:\n"
            "    trexrun.login_udp(a, trexrun.session_secrets(a))\n"
            "except trexrun.RunError as e:\n"
            "    print(e.status, e)\n"
        )
        args = ["--server", "unused", "--login", "udp", "--secrets", str(creds),
                "--src", lab.tg_ip, "--dst", lab.gw_ip]  # fmt: skip
        r = subprocess.run(
            lab.netns_cmd(lab.tg_ns, [sys.executable, "-c", code, *args]),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "4 session 1: login rejected (BAD_PROOF)", gw.log_tail()
        assert sessions_by_id(gw)[1]["state"] == "logged_out"


def test_runner_login_uses_each_sessions_stream_port(lab: Lab, tmp_path: Path) -> None:
    # Session ids from --first-session 2: session 2 streams (and logs in) from --sport, session 3
    # from --sport + 1; the gateway binds each to exactly that address.
    with Gateway(lab, "udp", nsessions=3) as gw:
        creds = tmp_path / "secrets.txt"
        creds.write_text("".join(f"{s.id} {s.secret.hex()}\n" for s in gw.sessions))
        code = (
            "import json, sys\n"
            f"sys.path.insert(0, {str(TREX)!r})\n"
            "import run as trexrun\n"
            "a = trexrun.parse_args(sys.argv[1:])\n"
            "print(json.dumps(trexrun.login_udp(a, trexrun.session_secrets(a))))\n"
        )
        args = ["--server", "unused", "--login", "udp", "--secrets", str(creds),
                "--first-session", "2", "--sessions", "2", "--sport", "41000",
                "--src", lab.tg_ip, "--dst", lab.gw_ip]  # fmt: skip
        r = subprocess.run(
            lab.netns_cmd(lab.tg_ns, [sys.executable, "-c", code, *args]),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"2": 1, "3": 1}  # next inbound sequence of fresh sessions
        now = sessions_by_id(gw)
        assert now[1]["state"] == "logged_out"
        assert now[2]["bound"] == f"{lab.tg_ip}:41000"
        assert now[3]["bound"] == f"{lab.tg_ip}:41001"
