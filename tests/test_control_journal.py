"""The control plane's journal reader on journals written by a real xdpexd: complete records only,
a torn tail (a record cut by a crash) is waited for rather than misread, a damaged record before
the tail is an error naming the file and offset, and a reader resumes from a saved position.
Also session management through the API seen from a real UDP client: login with the secret the
API showed once, disconnect (Logout ADMIN) and disable (LoginRejected DISABLED)."""

from __future__ import annotations

import secrets
import shutil
import socket
import time

import pytest
from control_support import Database, Dataplane, cleanup_dir, short_tmpdir
from fastapi.testclient import TestClient
from xdpex.api import create_app
from xdpex.auth import Principal
from xdpex.service import ControlPlane, OrderSpec
from xdpex_proto import codec as c
from xdpex_proto.journal import (
    REC_HDR_SIZE,
    SEG_HDR,
    SEG_HDR_SIZE,
    SEG_MAGIC,
    JournalError,
    JournalReader,
    list_segments,
    read_segment_header,
    segment_name,
)

WHO = Principal("test", "operator")
OP = {"Authorization": "Bearer xt_test_operator"}


@pytest.fixture
def journal():
    """A real journal of one segment with a few hundred records, copied after xdpexd stopped."""
    d = short_tmpdir("jr")
    db = Database("sqlite", d)
    dp = Dataplane(d).start()
    cp = ControlPlane(dp.settings(db))
    cp.start()
    try:
        for k in range(30):
            cp.submit_orders(
                WHO,
                [
                    OrderSpec(1, "buy" if i % 2 else "sell", "limit", "gtc", 5, 100 + k % 3)
                    for i in range(40)
                ],
            )
    finally:
        cp.close()
        dp.stop()
    copy = d / "copy"
    shutil.copytree(dp.journal / "q0", copy)
    try:
        yield copy
    finally:
        cleanup_dir(d)


def read_all(qdir, **kw):
    r = JournalReader(qdir, stall_s=0, **kw)
    out = []
    while recs := r.poll(1000):
        out += recs
    r.close()
    return out


def test_reader_sees_every_record_and_resumes_from_a_position(journal):
    recs = read_all(journal)
    assert len(recs) > 100
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    mid = recs[len(recs) // 2]
    rest = read_all(journal, segment=mid.segment, offset=mid.end, last_seq=mid.seq)
    assert [r.seq for r in rest] == [r.seq for r in recs if r.seq > mid.seq]


def test_torn_tail_is_not_read_and_damage_before_it_is_an_error(journal):
    seg = journal / f"{list_segments(journal)[-1]:08d}.xjl"
    recs = read_all(journal)
    data = seg.read_bytes()
    # a torn tail: the last record cut in the middle (what a crash during writev leaves)
    last = recs[-1]
    start = last.end - (REC_HDR_SIZE + len(last.payload))
    seg.write_bytes(data[: start + 20])
    torn = read_all(journal)
    assert torn and torn[-1].seq < last.seq
    assert all(r.flags & 0x01 for r in torn[-1:])  # still ends on a batch boundary
    # a flipped byte in an early record with more records behind it: refused, with the place
    bad = bytearray(data)
    bad[SEG_HDR_SIZE + REC_HDR_SIZE + 3] ^= 0xFF
    seg.write_bytes(bytes(bad))
    with pytest.raises(JournalError, match=r"00000001\.xjl: record seq 1 at offset 32: CRC"):
        read_all(journal)


def test_reader_tails_a_segment_being_written(journal):
    """The segment xdpexd is writing is sized ahead (zeros after the data): a zero length word is
    "no more data yet", a batch stored there later is read, and once the next segment exists the
    reader moves on to it."""
    last_no = list_segments(journal)[-1]
    seg = journal / segment_name(last_no)
    data = seg.read_bytes()
    recs = read_all(journal)
    k = max(i for i, r in enumerate(recs[:-1]) if r.flags & 0x01)  # the batch before the last
    cut = recs[k].end
    seg.write_bytes(data[:cut] + bytes(1 << 20))
    r = JournalReader(journal, stall_s=0)
    try:
        got = []
        while batch := r.poll(1000):
            got += batch
        assert [x.seq for x in got] == [x.seq for x in recs[: k + 1]]
        assert r.poll() == []  # zeros: nothing yet, not an error
        with open(seg, "r+b") as f:  # the last batch arrives in place
            f.seek(cut)
            f.write(data[cut:])
        assert [x.seq for x in r.poll()] == [x.seq for x in recs[k + 1 :]]
        queue, _, _ = read_segment_header(seg)
        nxt = journal / segment_name(last_no + 1)
        hdr = SEG_HDR.pack(SEG_MAGIC, 1, queue, last_no + 1, recs[-1].seq + 1)
        nxt.write_bytes(hdr + bytes(64))
        assert r.poll() == [] and r.segment == last_no + 1  # finished: on to the next one
    finally:
        r.close()


def test_sessions_seen_from_a_real_udp_client():
    d = short_tmpdir("ses")
    db = Database("sqlite", d)
    dp = Dataplane(d).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)

    def login(sid: int, secret: bytes) -> c.Message:
        ts, nonce = time.time_ns(), secrets.randbits(64)
        msg = c.Login(
            session_id=sid,
            next_seq=0,
            nonce=nonce,
            hmac=c.login_proof(secret, sid, ts, nonce),
            client_ts=ts,
        )
        sock.sendto(c.encode_datagram(sid, 0, [msg]), ("127.0.0.1", dp.port))
        return c.decode_datagram(sock.recv(2048), c.Direction.FROM_GW).messages[0]

    try:
        with TestClient(create_app(dp.settings(db)), raise_server_exceptions=False) as tc:
            made = tc.post("/api/v1/sessions", json={"name": "bob"}, headers=OP).json()
            sid, secret = made["session_id"], bytes.fromhex(made["secret"])
            assert isinstance(login(sid, secret), c.LoginAccepted)
            s = tc.get(f"/api/v1/sessions/{sid}", headers=OP).json()
            assert s["state"] == "logged_in" and s["bound"].startswith("127.0.0.1:")
            assert tc.post(f"/api/v1/sessions/{sid}/disconnect", headers=OP).status_code == 200
            out = c.decode_datagram(sock.recv(2048), c.Direction.FROM_GW).messages[0]
            assert isinstance(out, c.Logout) and out.reason == c.LogoutReason.ADMIN
            assert tc.post(f"/api/v1/sessions/{sid}/disable", headers=OP).status_code == 200
            rej = login(sid, secret)
            assert isinstance(rej, c.LoginRejected) and rej.reason == c.LoginReason.DISABLED
            assert tc.post(f"/api/v1/sessions/{sid}/enable", headers=OP).status_code == 200
            assert isinstance(login(sid, secret), c.LoginAccepted)
            bad = login(sid, b"x" * 32)
            assert isinstance(bad, c.LoginRejected) and bad.reason == c.LoginReason.BAD_PROOF
            assert tc.get("/api/v1/sessions/99999", headers=OP).status_code == 404
    finally:
        sock.close()
        dp.stop()
        cleanup_dir(d)
