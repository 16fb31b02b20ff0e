"""The Python feed codec (proto/xdpex_proto/feed.py) against the feed's golden vectors and against
include/xdpex/feed.h itself: every constant and enum value the codec mirrors is read out of the
header and compared, so a change on one side without the other fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xdpex_proto import feed, journal
from xdpex_proto.feed_golden import Vector, build_message, load_vectors, message_fields

TOP = Path(__file__).resolve().parent.parent
FEED_H = (TOP / "include" / "xdpex" / "feed.h").read_text()
JOURNAL_H = (TOP / "include" / "xdpex" / "journal.h").read_text()
VECTORS = load_vectors()
PACKETS = [v for v in VECTORS if v.kind == "PACKET" and not v.malformed]
MALFORMED = [v for v in VECTORS if v.malformed]


def header_defines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#define\s+(XF_\w+)\s+(\S+)", text, flags=re.M))


def header_enum(text: str, name: str) -> dict[str, int]:
    m = re.search(r"enum " + name + r"\s*\{(.*?)\};", text, flags=re.S)
    assert m, f"enum {name} not in the header"
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    out = {}
    for k, v in re.findall(r"(\w+)\s*=\s*('.'|-?0x[0-9a-fA-F]+|-?\d+)", body):
        out[k] = ord(v[1]) if v.startswith("'") else int(v, 0)
    return out


def test_constants_match_feed_h() -> None:
    d = header_defines(FEED_H)
    ints = {
        "XF_VERSION": feed.VERSION, "XF_DEFAULT_PORT": feed.DEFAULT_PORT,
        "XF_REWIND_PORT": feed.REWIND_PORT, "XF_SNAPSHOT_PORT": feed.SNAPSHOT_PORT,
        "XF_MAX_PAYLOAD": feed.MAX_PAYLOAD, "XF_SESSION_LEN": feed.SESSION_LEN,
        "XF_MOLD_HDR_SIZE": feed.MOLD_HDR_SIZE, "XF_MOLD_REQ_SIZE": feed.MOLD_REQ_SIZE,
        "XF_BLOCK_HDR": feed.BLOCK_HDR, "XF_MSG_HDR_SIZE": feed.MSG_HDR_SIZE,
        "XF_MAX_MSG_SIZE": feed.MAX_MSG_SIZE, "XF_MOLD_HEARTBEAT": feed.MOLD_HEARTBEAT,
        "XF_MOLD_END": feed.MOLD_END, "XF_MOLD_MAX_COUNT": feed.MOLD_MAX_COUNT,
        "XF_SNAP_REQ_SIZE": feed.SNAP_REQ_SIZE,
    }  # fmt: skip
    for name, value in ints.items():
        assert int(d[name], 0) == value, name
    assert d["XF_DEFAULT_GROUP"].strip('"') == feed.DEFAULT_GROUP
    assert d["XF_SESSION_PREFIX"].strip('"') == feed.SESSION_PREFIX
    assert max(feed.SIZES.values()) == feed.MAX_MSG_SIZE
    assert feed.MOLD_HDR.size == feed.MOLD_HDR_SIZE and feed.SNAP_REQ.size == feed.SNAP_REQ_SIZE


@pytest.mark.parametrize(
    "cname,pyenum,prefix",
    [
        ("xf_msg_type", feed.MsgType, "XF_"),
        ("xf_side", feed.Side, "XF_"),
        ("xf_sys_event", feed.SysEvent, "XF_SYS_"),
        ("xf_symbol_state_code", feed.SymbolStateCode, "XF_STATE_"),
        ("xf_snap_status", feed.SnapStatus, "XF_SNAP_"),
        ("xf_parse_error", feed.ParseError, "XF_PERR_"),
    ],
)
def test_enums_match_feed_h(cname: str, pyenum: type, prefix: str) -> None:
    c = header_enum(FEED_H, cname)
    py = {prefix + m.name: int(m.value) for m in pyenum}  # type: ignore[attr-defined]
    assert c == py


def test_message_sizes_match_feed_h_static_asserts() -> None:
    sizes = dict(re.findall(r"sizeof\(struct xf_(\w+)\) == (\d+)", FEED_H))
    for cls in feed.MESSAGE_TYPES.values():
        cname = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        assert int(sizes[cname]) == cls.size(), cls.__name__


def test_journal_feed_record_type() -> None:
    m = re.search(r"XJ_FEED = (\d+)", JOURNAL_H)
    assert m and int(m.group(1)) == feed.REC_FEED == journal.REC_FEED


@pytest.mark.parametrize("v", PACKETS, ids=lambda v: v.name)
def test_packet_vectors_encode_and_decode(v: Vector) -> None:
    assert v.hdr is not None
    session, seq, count = str(v.hdr["session"]), int(v.hdr["seq"]), int(v.hdr["count"])
    msgs = [build_message(m) for m in v.msgs]
    if count == feed.MOLD_HEARTBEAT:
        wire = feed.heartbeat(session, seq)
    elif count == feed.MOLD_END:
        wire = feed.end_of_session(session, seq)
    else:
        wire = feed.encode_datagram(session, seq, msgs)
    assert wire.hex() == v.data.hex()
    pkt = feed.decode_datagram(v.data)
    assert pkt.session == session.encode().ljust(10) and pkt.seq == seq and pkt.count == count
    assert [message_fields(m) for m in pkt.messages] == v.msgs
    assert pkt.next_seq == seq + len(msgs)


@pytest.mark.parametrize("v", MALFORMED, ids=lambda v: v.name)
def test_malformed_vectors_raise_feed_h_errors(v: Vector) -> None:
    with pytest.raises(feed.FeedError) as ei:
        feed.decode_datagram(v.data)
    assert ei.value.code.c_name == v.error
    assert ei.value.text == v.text


def test_request_snapshot_request_and_blocks_vectors() -> None:
    by_name = {v.name: v for v in VECTORS}
    req = by_name["rewind_request"]
    assert req.hdr is not None
    r = feed.RewindRequest.decode(req.data)
    assert (r.session.decode().rstrip(), r.seq, r.count) == (
        req.hdr["session"], req.hdr["seq"], req.hdr["count"])
    assert r.encode() == req.data
    sreq = by_name["snapshot_request"]
    assert sreq.hdr is not None
    s = feed.SnapshotRequest.decode(sreq.data)
    assert (s.session.decode().rstrip(), s.version, s.symbol_id) == (
        sreq.hdr["session"], sreq.hdr["version"], sreq.hdr["symbol_id"])
    assert s.encode() == sreq.data
    for name in ("snapshot_stream", "snapshot_refused"):
        v = by_name[name]
        msgs = feed.decode_blocks(v.data, len(v.msgs))
        assert [message_fields(m) for m in msgs] == v.msgs
        assert feed.encode_blocks(msgs) == v.data
    with pytest.raises(ValueError, match="expected 20"):
        feed.RewindRequest.decode(req.data[:19])


def test_golden_set_covers_every_type_and_error() -> None:
    types = {str(m["type"]) for v in VECTORS for m in v.msgs}
    assert types == {t.name for t in feed.MsgType}
    errors = {v.error for v in MALFORMED}
    assert errors == {e.c_name for e in feed.ParseError if e != feed.ParseError.OK}


def test_journal_payload_with_padding_decodes() -> None:
    msgs = [build_message(m) for m in PACKETS[0].msgs] * 3
    payload = feed.encode_blocks(msgs)
    payload += bytes(-len(payload) % 8)  # XJ_FEED payloads are zero-padded to 8 bytes
    assert feed.decode_blocks(payload, len(msgs)) == msgs
    with pytest.raises(ValueError, match="block\\[3\\]"):
        feed.decode_blocks(payload, 4)


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)


@given(
    st.lists(
        st.one_of(
            st.builds(feed.AddOrder, st.sampled_from(feed.Side), u32, u64, u64, i64, u32),
            st.builds(feed.Executed, st.sampled_from(feed.Side), u32, u64, u64, u64, i64, u32,
                      u32),
            st.builds(feed.Reduced, st.sampled_from(feed.Side), u32, u64, u64, u32, u32),
            st.builds(feed.Deleted, st.sampled_from(feed.Side), u32, u64, u64, u32),
            st.builds(feed.Replaced, st.sampled_from(feed.Side), u32, u64, u64, i64, u32),
            st.builds(feed.Trade, st.sampled_from(feed.Side), u32, u64, u64, i64, u32),
            st.builds(feed.SymbolState, st.sampled_from(feed.SymbolStateCode), u32, u64),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 2**63),
)
def test_any_messages_round_trip(msgs: list[feed.Message], seq: int) -> None:
    wire = feed.encode_datagram(feed.session_name(5), seq, msgs)
    pkt = feed.decode_datagram(wire)
    assert pkt.messages == msgs and pkt.seq == seq
