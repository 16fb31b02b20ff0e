"""Runs an xdpex TRex STL profile against a gateway and reports what went out and came back.

Steps: connect to the TRex server (STLClient), acquire the port, log every session in from the
exact source address and UDP port its stream will use (the gateway binds a session to the Login's
address), load the profile with --start-seq set to each session's next_in_seq from LoginAccepted,
send each session a Heartbeat (loading takes seconds; a silent session is logged out after three
heartbeat intervals), start the streams, wait for them to finish (--count) or stop them after
--duration, read the port, per-stream (--pg-id) and latency statistics, log the sessions out and
print a JSON report.

Login has two paths. `--login trex` (the default) pushes the Login datagrams through the TRex port
and reads the answers from a TRex capture: the only way when TRex owns the NIC (DPDK). `--login udp`
uses an ordinary kernel UDP socket bound to the stream's address, for a generator whose kernel
also holds that address (TRex on a software/af_packet port). `--login none` skips it; then
--start-seq must be given.

    .venv/bin/python traffic/trex/run.py --server 127.0.0.1 --profile traffic/trex/orders.py \\
        --secret 00112233... --sessions 4 --rate 1000000 --orders 16 --duration 10
    .venv/bin/python traffic/trex/run.py --dry-run --sessions 2      # profile JSON, no server

Runs in its own process with TRex's bundled scapy; it uses the project's codec (no scapy) for the
Login and LoginAccepted bytes. Exit status: 0 done, 2 bad arguments, 3 TRex unreachable or failed,
4 login refused or unanswered.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# xdpex_traffic and xdpex_proto when the project is not installed
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1] / "proto")]
import lbr_trex_client  # noqa: E402,F401  (puts trex on sys.path)
from trex.stl.api import STLClient, STLProfile, TRexError  # noqa: E402
from xdpex_proto import codec  # noqa: E402

PROG = "run.py"


class RunError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--server", help="TRex server host (required unless --dry-run)")
    p.add_argument("--sync-port", type=int, default=4501, help="TRex RPC port (4501)")
    p.add_argument("--async-port", type=int, default=4500, help="TRex event port (4500)")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (10)")
    p.add_argument("--port", type=int, default=0, help="TRex port facing the gateway (0)")
    p.add_argument("--profile", default=str(HERE / "orders.py"))
    p.add_argument("--dry-run", action="store_true", help="load the profile, print its JSON")
    p.add_argument("--login", choices=("trex", "udp", "none"), default="trex")
    p.add_argument("--secret", help="session secret, 64 hex digits (all sessions)")
    p.add_argument("--secrets", help="file of 'session_id secret_hex' lines")
    p.add_argument("--login-timeout", type=float, default=3.0, help="seconds (3)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds for endless streams")
    p.add_argument("--json", help="also write the report to this file")
    g = p.add_argument_group("profile tunables (see xdpex_stl.py)")
    g.add_argument("--rate", type=int, default=10_000, help="datagrams/s over all sessions")
    g.add_argument("--orders", type=int, default=16, help="messages a datagram (1..22)")
    g.add_argument("--symbols", type=int, default=1)
    g.add_argument("--sessions", type=int, default=1)
    g.add_argument("--first-session", type=int, default=1)
    g.add_argument("--start-seq", help="with --login none: SEQ or SEQ,SEQ,... per session")
    g.add_argument("--count", type=int, default=0, help="datagrams a session (0 = --duration)")
    g.add_argument("--price", type=int, default=10_000)
    g.add_argument("--qty", type=int, default=1)
    g.add_argument("--tif", default="DAY")
    g.add_argument("--src", help="source IPv4 (default: the TRex port's address)")
    g.add_argument("--dst", help="gateway IPv4 (default: the TRex port's default gateway)")
    g.add_argument("--sport", type=int, default=40000, help="UDP source port of session 1")
    g.add_argument("--dport", type=int, default=9000)
    g.add_argument("--cores", type=int, default=1)
    g.add_argument("--pg-id", type=int, default=0, help="per-stream flow stats from this pg_id")
    a = p.parse_args(argv)

    def bad(text: str) -> None:
        p.error(text)

    if not Path(a.profile).is_file():
        bad(f"--profile: {a.profile} does not exist")
    if not a.dry_run:
        if not a.server:
            bad("--server is required (or --dry-run)")
        if a.login != "none" and not (a.secret or a.secrets):
            bad(f"--login {a.login} needs --secret or --secrets")
        if a.login == "none" and not a.start_seq:
            bad("--login none needs --start-seq (the sessions' next inbound sequences)")
    for name in ("sync_port", "async_port", "sport", "dport"):
        if not 1 <= getattr(a, name) <= 65535:
            bad(f"--{name.replace('_', '-')}: {getattr(a, name)}, expected 1..65535")
    if a.secret is not None:
        try:
            a.secret_bytes = bytes.fromhex(a.secret)
        except ValueError:
            bad("--secret: not hex")
        if len(a.secret_bytes) != 32:
            bad(f"--secret: {len(a.secret_bytes)} bytes, expected 32 (64 hex digits)")
    if a.duration <= 0 or a.connect_timeout <= 0 or a.login_timeout <= 0:
        bad("--duration, --connect-timeout and --login-timeout must be > 0")
    return a


def session_secrets(a: argparse.Namespace) -> dict[int, bytes]:
    ids = range(a.first_session, a.first_session + a.sessions)
    if a.secrets:
        table: dict[int, bytes] = {}
        for n, line in enumerate(Path(a.secrets).read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                sid, hexkey = line.split()
                table[int(sid)] = bytes.fromhex(hexkey)
            except ValueError:
                raise RunError(2, f"--secrets {a.secrets}:{n}: expected 'session_id hex'") from None
        missing = [i for i in ids if i not in table]
        if missing:
            raise RunError(2, f"--secrets: no secret for session(s) {missing}")
        return {i: table[i] for i in ids}
    return {i: a.secret_bytes for i in ids}


def tunables(a: argparse.Namespace, starts: list[int] | None) -> list[str]:
    t = ["--rate", a.rate, "--orders", a.orders, "--symbols", a.symbols, "--sessions", a.sessions,
         "--first-session", a.first_session, "--count", a.count, "--price", a.price,
         "--qty", a.qty, "--tif", a.tif, "--sport", a.sport, "--dport", a.dport,
         "--cores", a.cores, "--pg-id", a.pg_id]  # fmt: skip
    if a.src:
        t += ["--src", a.src]
    if a.dst:
        t += ["--dst", a.dst]
    if starts:
        t += ["--start-seq", ",".join(map(str, starts))]
    elif a.start_seq:
        t += ["--start-seq", a.start_seq]
    return [str(x) for x in t]


def load_profile(a: argparse.Namespace, starts: list[int] | None) -> Any:
    try:
        profile = STLProfile.load_py(a.profile, tunables=tunables(a, starts))
    except TRexError as e:
        raise RunError(2, f"profile {a.profile}: {str(e).strip().splitlines()[-1]}") from None
    if profile is None:  # the profile's tunables parser refused them and said why above
        raise RunError(2, f"profile {a.profile}: tunables refused")
    return profile


def connect(a: argparse.Namespace) -> Any:
    """STLClient.connect() bounded by --connect-timeout, with an error that says what to check."""
    client = STLClient(server=a.server, sync_port=a.sync_port, async_port=a.async_port,
                       verbose_level="error")  # fmt: skip
    err: list[BaseException] = []

    def go() -> None:
        try:
            client.connect()
        except BaseException as e:  # noqa: BLE001 - reported below
            err.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(a.connect_timeout)
    where = f"tcp://{a.server}:{a.sync_port}"
    hint = "is the server running (cd /opt/trex/current && ./t-rex-64 -i) and reachable?"
    if t.is_alive():
        raise RunError(3, f"TRex server at {where}: no answer in {a.connect_timeout:g} s; {hint}")
    if err:
        text = str(err[0]).strip().replace("*** ", "") or type(err[0]).__name__
        raise RunError(3, f"cannot connect to the TRex server at {where}: {text}; {hint}")
    return client


def login_datagram(sid: int, secret: bytes) -> bytes:
    ts, nonce = time.time_ns(), secrets.randbits(64)
    proof = codec.login_proof(secret, sid, ts, nonce)
    login = codec.Login(session_id=sid, next_seq=0, nonce=nonce, hmac=proof, client_ts=ts)
    return codec.encode_datagram(sid, 0, [login])


def read_answers(payloads: list[bytes], want: set[int]) -> dict[int, int]:
    """next_in_seq per session from LoginAccepted; RunError on a LoginRejected."""
    starts: dict[int, int] = {}
    for data in payloads:
        try:
            dg = codec.decode_datagram(data, codec.Direction.FROM_GW)
        except codec.ProtocolError:
            continue
        for m in dg.messages:
            if isinstance(m, codec.LoginAccepted) and m.session_id in want:
                starts[m.session_id] = m.next_in_seq
            elif isinstance(m, codec.LoginRejected) and m.session_id in want:
                try:
                    reason = codec.LoginReason(m.reason).name
                except ValueError:
                    reason = f"reason {m.reason}"
                raise RunError(4, f"session {m.session_id}: login rejected ({reason})")
    return starts


def udp_payload(frame: bytes) -> bytes | None:
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    return frame[14 + ihl + 8 :]


def sport_of(a: argparse.Namespace, sid: int) -> int:
    """The UDP source port of session `sid`'s stream (and so of its login)."""
    return int(a.sport + sid - a.first_session)


def trex_frames(c: Any, a: argparse.Namespace, payloads: dict[int, bytes]) -> list[Any]:
    """Frames from each session's stream address; TRex fills in the port's MACs."""
    from trex.stl.api import IP, UDP, Ether

    cfg = c.ports[a.port].get_layer_cfg()
    src, dst = a.src or cfg["ipv4"]["src"], a.dst or cfg["ipv4"]["dst"]
    return [
        Ether() / IP(src=src, dst=dst) / UDP(sport=sport_of(a, sid), dport=a.dport) / data
        for sid, data in payloads.items()
    ]


def login_trex(c: Any, a: argparse.Namespace, keys: dict[int, bytes]) -> dict[int, int]:
    frames = trex_frames(c, a, {sid: login_datagram(sid, key) for sid, key in keys.items()})
    c.set_service_mode(ports=[a.port], enabled=True)
    try:
        cap = c.start_capture(rx_ports=[a.port], limit=10_000,
                              bpf_filter=f"udp and src port {a.dport}")  # fmt: skip
        c.push_packets(frames, ports=[a.port], force=True)
        deadline = time.monotonic() + a.login_timeout
        while time.monotonic() < deadline:
            if c.get_capture_status()[cap["id"]]["count"] >= len(keys):
                break
            time.sleep(0.05)
        got: list[dict[str, Any]] = []
        c.stop_capture(cap["id"], output=got)
    finally:
        c.set_service_mode(ports=[a.port], enabled=False)
    payloads = [p for p in (udp_payload(bytes(x["binary"])) for x in got) if p]
    return read_answers(payloads, set(keys))


def session_datagrams(kind: str, starts: dict[int, int]) -> dict[int, bytes]:
    """A Heartbeat (keeps a session alive between its login and its stream: loading a profile
    takes seconds, the gateway logs a silent session out after 3 heartbeat intervals) or a
    Logout per session."""
    now = time.time_ns()
    out = {}
    for sid, nxt in starts.items():
        if kind == "heartbeat":
            msg: codec.Message = codec.Heartbeat(next_seq=nxt, client_ts=now)
            out[sid] = codec.encode_datagram(sid, 0, [msg], codec.F_HEARTBEAT)
        else:
            msg = codec.Logout(reason=codec.LogoutReason.USER, client_ts=now)
            out[sid] = codec.encode_datagram(sid, 0, [msg])
    return out


def send_session(c: Any, a: argparse.Namespace, payloads: dict[int, bytes]) -> None:
    """Session datagrams from each session's stream address, on the login's path."""
    if a.login == "trex":
        c.set_service_mode(ports=[a.port], enabled=True)
        try:
            c.push_packets(trex_frames(c, a, payloads), ports=[a.port], force=True)
        finally:
            c.set_service_mode(ports=[a.port], enabled=False)
    elif a.login == "udp":
        for sid, data in payloads.items():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((a.src, sport_of(a, sid)))
                s.sendto(data, (a.dst, a.dport))


def login_udp(a: argparse.Namespace, keys: dict[int, bytes]) -> dict[int, int]:
    if not a.src or not a.dst:
        raise RunError(2, "--login udp needs --src and --dst")
    socks = []
    try:
        for sid, key in keys.items():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind((a.src, sport_of(a, sid)))
            s.sendto(login_datagram(sid, key), (a.dst, a.dport))
        payloads = []
        deadline = time.monotonic() + a.login_timeout  # one wait for all, not one each
        for s in socks:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                payloads.append(s.recv(2048))
            except TimeoutError:
                pass
    except OSError as e:
        raise RunError(4, f"login over UDP from {a.src}: {e}") from None
    finally:
        for s in socks:
            s.close()
    return read_answers(payloads, set(keys))


def report(c: Any, a: argparse.Namespace, starts: list[int], elapsed: float) -> dict[str, Any]:
    st = c.get_stats(ports=[a.port])
    port = st[a.port]
    out: dict[str, Any] = {
        "profile": Path(a.profile).name, "sessions": a.sessions, "orders_per_datagram": a.orders,
        "start_seq": starts, "seconds": round(elapsed, 3),
        "tx_datagrams": port["opackets"], "tx_messages": port["opackets"] * a.orders,
        "rx_datagrams": port["ipackets"], "tx_pps": round(port["opackets"] / elapsed),
        "rx_pps": round(port["ipackets"] / elapsed), "tx_drops": port.get("oerrors", 0),
        "rx_errors": port.get("ierrors", 0),
    }  # fmt: skip
    if a.pg_id:
        pg = c.get_pgid_stats(list(range(a.pg_id, a.pg_id + a.sessions)))
        flow = pg.get("flow_stats", {})
        out["streams"] = {
            f"session-{a.first_session + i}": {
                "tx_datagrams": flow.get(a.pg_id + i, {}).get("tx_pkts", {}).get(a.port, 0)
            }
            for i in range(a.sessions)
        }
        lat = pg.get("latency", {})
        if lat:
            out["latency"] = {k: v.get("latency", {}) for k, v in lat.items() if isinstance(k, int)}
    return out


def run(a: argparse.Namespace) -> dict[str, Any]:
    keys = session_secrets(a) if a.login != "none" else {}
    c = connect(a)
    try:
        c.acquire(ports=[a.port], force=True)
        c.reset(ports=[a.port])
        if a.login == "trex":
            got = login_trex(c, a, keys)
        elif a.login == "udp":
            got = login_udp(a, keys)
        else:
            got = {}
        if a.login != "none":
            missing = sorted(set(keys) - set(got))
            if missing:
                if got:  # do not leave the others logged in and bound
                    send_session(c, a, session_datagrams("logout", got))
                raise RunError(4, f"no LoginAccepted within {a.login_timeout:g} s for session(s) "
                                  f"{missing}")  # fmt: skip
        starts = [got[s] for s in keys] if got else None
        profile = load_profile(a, starts)
        c.add_streams(profile.get_streams(), ports=[a.port])
        c.clear_stats()
        if got:
            send_session(c, a, session_datagrams("heartbeat", got))
        t0 = time.monotonic()
        c.start(ports=[a.port], duration=-1 if a.count else a.duration)
        # A burst ends by itself; bound the wait anyway (a port whose link went down).
        burst_s = a.count * a.sessions / max(a.rate, 1)
        c.wait_on_traffic(ports=[a.port], timeout=int((burst_s if a.count else a.duration) + 60))
        elapsed = time.monotonic() - t0
        result = report(c, a, starts or [], elapsed)
        if got:
            send_session(c, a, session_datagrams("logout", got))
        return result
    except TRexError as e:
        raise RunError(3, f"TRex: {str(e).strip()}") from None
    finally:
        try:
            c.disconnect()
        except TRexError:
            pass


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if a.dry_run:
            profile = load_profile(a, None)
            print(json.dumps(profile.to_json(), indent=1))
            return 0
        result = run(a)
    except RunError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.status
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
