"""Writes the seed corpora of fuzz/ (fuzz/corpus/<target>/seed-*), from the golden vectors of
tests/golden/vectors.txt where the input is wire datagrams. Deterministic; run it again after the
golden vectors change (`python fuzz/gen_seeds.py`) and commit the result. Reproducers of fixed
findings live beside the seeds as repro-* and are never rewritten here.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "proto"))

from xdpex_proto.golden import load_vectors  # noqa: E402

CORPUS = TOP / "fuzz" / "corpus"
SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
XJ_IN, XJ_OUT, XJ_SESSION, XJ_ADMIN = 1, 2, 3, 4
REC_HDR = struct.Struct("<IIQBBHIQQ")


def write(target: str, name: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob(f"seed-{name}"):
        old.unlink()
    (d / f"seed-{name}").write_bytes(data)


def rec(typ: int, sid: int, msg_seq: int, count: int, payload: bytes, end: bool = True) -> bytes:
    """One journal record; CRC and seq 0: the journal harness fixes them (flags bits 1, 2)."""
    body = payload + b"\0" * (-(REC_HDR.size + len(payload)) % 8)
    ln = REC_HDR.size + len(body)
    ts = 1_700_000_000 * 10**9
    return REC_HDR.pack(ln, 0, 0, typ, 1 if end else 0, count, sid, msg_seq, ts) + body


def sess_login(nonce: int, path: bytes = b"") -> bytes:
    kind_udp = 2 if path else 1
    ev = struct.pack("<BBBBHHIIQQ6s6s20s", 1, kind_udp, 0, 0, 0x2823, 0x2823, 0x0100007F,
                     0x0100007F, nonce, 1_700_000_000 * 10**9, b"\0" * 6, b"\0" * 6, b"\0" * 20)
    return ev + (path + b"\0" if path else b"")


def with_session(data: bytes, sid: int, seq: int | None = None) -> bytes:
    b = bytearray(data)
    b[4:8] = struct.pack("<I", sid)
    if seq is not None:
        b[8:16] = struct.pack("<Q", seq)
    return bytes(b)


def main() -> None:
    vectors = load_vectors(TOP / "tests" / "golden" / "vectors.txt")
    for v in vectors:
        write("parse", v.name, v.data)
        write("atheris_codec", v.name, v.data)

    to_gw = [v for v in vectors if v.dir == "TO_GW" and v.error is None]
    apps = [v for v in to_gw if v.hdr and v.hdr["seq"] != 0]
    login = next(v for v in to_gw if v.name == "login")

    # entry: [flags][len u16][datagram]...; flags 3 = sign the Logins with client_ts = now.
    def dgram(flags: int, data: bytes) -> bytes:
        return struct.pack("<BH", flags, len(data)) + data

    lg = with_session(login.data, 1)
    lg = lg[:24] + lg[24:28] + struct.pack("<I", 1) + struct.pack("<Q", 0) + lg[40:]
    seq, stream = 1, [dgram(3, lg)]
    for v in apps:
        stream.append(dgram(0, with_session(v.data, 1, seq)))
        seq += v.hdr["count"]  # type: ignore[index]
    write("entry", "login-then-orders", b"".join(stream))
    write("entry", "login-only", dgram(3, lg))
    write("entry", "unsigned-login", dgram(0, lg))
    write("entry", "second-peer", dgram(3, lg) + dgram(7, lg))
    for v in vectors:
        if v.dir == "TO_GW":
            write("entry", f"golden-{v.name}", dgram(3, v.data))

    # journal: flags 7 = prepend a segment header, fix CRCs and seqs.
    msgs = b"".join(v.data[24:] for v in apps[:3])
    nmsg = sum(int(v.hdr["count"]) for v in apps[:3])  # type: ignore[index]
    admin = json.dumps({"cmd": "halt", "symbol": 1}).encode()
    seg = (rec(XJ_SESSION, 1, 0, 0, sess_login(7)) + rec(XJ_IN, 1, 1, nmsg, msgs)
           + rec(XJ_OUT, 1, 1, 1, bytes(64)) + rec(XJ_ADMIN, 0, 0, 0, admin + b"\0")
           + rec(XJ_SESSION, 2, 0, 0, sess_login(8, b"/tmp/client.sock")))
    write("journal", "one-segment", bytes([7]) + struct.pack("<I", len(seg)) + seg)
    write("journal", "two-segments", bytes([7]) + struct.pack("<I", len(seg)) + seg
          + struct.pack("<I", len(seg)) + seg)
    write("journal", "raw-unfixed", bytes([1]) + struct.pack("<I", len(seg)) + seg)
    write("atheris_journal", "one-segment", bytes([7]) + seg)

    # frame: [offset byte] + Ethernet/IPv4/UDP to 9000 around golden datagrams, and an ARP
    # request for 10.0.0.1 (the harness's gateway address).
    def udp_frame(payload: bytes) -> bytes:
        eth = bytes.fromhex("020000000002" "020000000001" "0800")
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0x4000, 64, 17, 0,
                         bytes([10, 1, 0, 1]), bytes([10, 0, 0, 1]))
        udp = struct.pack("!HHHH", 40000, 9000, 8 + len(payload), 0)
        return eth + ip + udp + payload

    for i, v in enumerate(to_gw[:8]):
        write("frame", v.name, bytes([i & 3]) + udp_frame(v.data))
    arp = (bytes.fromhex("ffffffffffff" "020000000001" "0806") + struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes.fromhex("020000000001"),
        bytes([10, 1, 0, 1]), b"\0" * 6, bytes([10, 0, 0, 1])))
    write("frame", "arp-request", b"\2" + arp)

    # config: the harness's own configuration and variants of each section.
    base = {
        "engine": {"max_orders": 4096, "max_symbols": 8, "max_sessions": 8},
        "heartbeat_ms": 1000, "login_skew_ms": 5000,
        "login_limit": {"per_source_rate": 10, "per_source_burst": 20, "total_rate": 1000,
                        "total_burst": 1000},
        "rate": {"pps": 1000, "burst": 10}, "allowlist": ["10.0.0.0/8", "192.168.1.7"],
        "symbols": [{"id": 1, "name": "ACME", "tick": 1, "lot": 1, "band": [1, 100000],
                     "max_qty": 100000, "queue": 0, "halted": False}],
        "sessions": [{"id": 1, "secret": SECRET, "cancel_on_disconnect": True, "enabled": True,
                      "stp": "cancel_newest", "queue": 0, "rate": 100, "burst": 10}],
    }
    write("config", "full", json.dumps(base).encode())
    write("config", "fragment", json.dumps({"sessions": [{"id": 2, "enabled": False}]}).encode())
    write("config", "empty", b"{}")

    # ctl: one request per line.
    reqs = [{"cmd": c} for c in ("hash", "stats", "sessions", "journal", "ha", "expire_day")]
    reqs += [{"cmd": "book", "symbol": 1, "depth": 5}, {"cmd": "book_orders", "symbol": 2},
             {"cmd": "halt", "symbol": 1}, {"cmd": "resume", "symbol": 1},
             {"cmd": "logout", "session": 1}, {"cmd": "lease", "ttl_ms": 100},
             {"cmd": "apply", "config": {"sessions": [{"id": 5, "secret": SECRET}],
                                          "symbols": [{"id": 3, "tick": 1, "lot": 1,
                                                       "band": [1, 10]}]}},
             {"cmd": "apply", "dry_run": True, "config": {"rate": {"pps": 10, "burst": 2}}},
             {"cmd": "promote", "epoch": 2}, {"cmd": "follow", "from": "127.0.0.1:1"}]
    for i, r in enumerate(reqs):
        write("ctl", f"{i:02d}-{r['cmd']}", json.dumps(r).encode() + b"\n")
    write("ctl", "all", b"".join(json.dumps(r).encode() + b"\n" for r in reqs[:8]))

    # repl: [flags] + the stream as xdpexd receives it, frames [u32 type][u32 len][payload]
    # (dataplane/repl.c). Standby side (bit 0 clear; 6 = fix the records' CRCs and seqs): the
    # primary's welcome, records, a hash, a heartbeat. Primary side (bit 0 set; 7 = fix the
    # hello's magic, queue and next_seq): a standby's hello and acks.
    def frame(typ: int, payload: bytes) -> bytes:
        return struct.pack("<II", typ, len(payload)) + payload

    def welcome(primary_seq: int, match: int, epochs: list[tuple[int, int]]) -> bytes:
        tab = b"".join(struct.pack("<QQ", e, f) for e, f in epochs)
        tab += b"\0" * (64 * 16 - len(tab))
        return frame(2, struct.pack("<QQII", primary_seq, 1, match, len(epochs)) + tab)

    def hello(next_seq: int, crc: int = 0) -> bytes:
        return frame(1, struct.pack("<IIQQI36s", 0x31504552, 0, next_seq, 1, crc, b"fuzz"))

    def ack(seq: int) -> bytes:
        return frame(5, struct.pack("<QQ", seq, seq))

    recs = [rec(XJ_SESSION, 1, 0, 0, sess_login(7)), rec(XJ_IN, 1, 1, nmsg, msgs),
            rec(XJ_OUT, 1, 1, 1, bytes(64)), rec(XJ_ADMIN, 0, 0, 0, admin + b"\0")]
    write("repl", "standby-stream", bytes([6]) + welcome(4, 1, [(1, 1)]) + frame(3, b"".join(recs))
          + frame(4, struct.pack("<QQ", 4, 0)) + frame(6, struct.pack("<Q", 4)))
    write("repl", "standby-split", bytes([6]) + welcome(4, 1, [(1, 1)])
          + frame(3, b"".join(recs[:2])) + frame(3, b"".join(recs[2:])))
    write("repl", "standby-unfixed", bytes([0]) + welcome(4, 1, []) + frame(3, b"".join(recs)))
    write("repl", "standby-no-match", bytes([6]) + welcome(9, 0, [(1, 1), (2, 5)]))
    write("repl", "standby-beat", bytes([6]) + welcome(0, 1, []) + frame(6, struct.pack("<Q", 0)))
    write("repl", "primary-hello-acks", bytes([7]) + hello(1) + ack(1) + ack(2) + ack(3))
    write("repl", "primary-hello-behind", bytes([7]) + hello(3, 0x12345678) + ack(2))
    write("repl", "primary-ack-first", bytes([1]) + ack(2) + hello(1))


if __name__ == "__main__":
    main()
