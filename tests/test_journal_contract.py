"""The journal reader (xdpex_proto.journal), the persister and the publisher against
include/xdpex/journal.h, the one source of truth for the journal's bytes.

- Every #define, every enum member and value, every field of struct xj_seg_hdr, xj_rec and
  xj_sess_ev (name, offset, size, signedness) as gcc compiles the header
  (tests/contract_support.py) equals the reader's; a member or field on either side only fails.
- A segment written by C code through the header's structs (records of every type, CRC32C over
  bytes 8..len, a batch end) is read back by JournalReader field for field; the persister turns
  it into the rows it stands for (an order, its fill, the session events with their addresses)
  and the publisher puts the fill into its Redis stream (the session's private Redis).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from contract_support import INCLUDE, Contract, Field, read_contract, struct_layout
from xdpex.persister import SESSION_EVENTS, Batch
from xdpex.publisher import Publisher
from xdpex_proto import codec as c
from xdpex_proto import journal as j


@pytest.fixture(scope="module")
def h() -> Contract:
    return read_contract("journal.h")


def comparable(fields: list[Field]) -> list[tuple[str, int, int, bool | None]]:
    return [(f.name, f.offset, f.size, None if f.count else f.signed) for f in fields if not f.pad]


def test_constants(h: Contract) -> None:
    assert h.defines == {
        "XJ_MAGIC": j.SEG_MAGIC.decode(),
        "XJ_VERSION": j.VERSION,
        "XJ_SEG_HDR": j.SEG_HDR_SIZE,
        "XJ_REC_HDR": j.REC_HDR_SIZE,
        "XJ_ALIGN": j.ALIGN,
        "XJ_F_BATCH_END": j.FLAG_BATCH_END,
    }


@pytest.mark.parametrize(
    "name, py, prefix",
    [("xj_type", j.RecType, "XJ_"), ("xj_sess_kind", j.SessKind, "XJ_SK_"),
     ("xj_addr_kind", j.AddrKind, "XJ_ADDR_")],
)  # fmt: skip
def test_enum(h: Contract, name: str, py: type, prefix: str) -> None:
    assert h.enum(name, prefix) == {m.name: m.value for m in py}


def test_every_enum_and_struct_of_the_header_is_checked(h: Contract) -> None:
    assert set(h.enums) == {"xj_type", "xj_sess_kind", "xj_addr_kind"}
    assert set(h.structs) == {"xj_seg_hdr", "xj_rec", "xj_sess_ev"}
    assert (j.REC_INBOUND, j.REC_OUTBOUND, j.REC_SESSION, j.REC_ADMIN, j.REC_FEED) == \
        tuple(j.RecType)


@pytest.mark.parametrize(
    "struct, st, names",
    [("xj_seg_hdr", j.SEG_HDR, j.SEG_HDR_FIELDS), ("xj_rec", j.REC_HDR, j.REC_HDR_FIELDS),
     ("xj_sess_ev", j.SESS_EV, j.SESS_EV_FIELDS)],
)  # fmt: skip
def test_layout(h: Contract, struct: str, st, names: tuple[str, ...]) -> None:
    assert st.size == h.sizes[struct]
    assert comparable(struct_layout(st.format, list(names))) == comparable(h.structs[struct])


def test_persister_names_every_session_kind(h: Contract) -> None:
    assert SESSION_EVENTS == {
        v: k.removeprefix("XJ_SK_").lower() for k, v in h.enums["xj_sess_kind"].items()
    }


WRITER = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xdpex/journal.h"
#include "xdpex/proto.h"

static unsigned char seg[1 << 16];
static size_t pos;
static uint64_t seq;

static uint32_t crc32c(const unsigned char *p, size_t n)
{
	uint32_t c = ~0u;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void rec(uint8_t type, uint8_t flags, uint16_t count, uint32_t sid, uint64_t msg_seq,
		const void *payload, size_t n)
{
	struct xj_rec r = { 0 };
	size_t len = (XJ_REC_HDR + n + XJ_ALIGN - 1) / XJ_ALIGN * XJ_ALIGN;
	r.len = (uint32_t)len;
	r.seq = ++seq;
	r.type = type;
	r.flags = flags;
	r.count = count;
	r.session_id = sid;
	r.msg_seq = msg_seq;
	r.ts = 1700000000000000000ull + seq;
	memcpy(seg + pos, &r, sizeof(r));
	memcpy(seg + pos + XJ_REC_HDR, payload, n);
	r.crc = crc32c(seg + pos + 8, len - 8);
	memcpy(seg + pos, &r, sizeof(r));
	pos += len;
}

int main(int argc, char **argv)
{
	struct xj_seg_hdr h = { .version = XJ_VERSION, .queue = 0, .segment = 1, .first_seq = 1 };
	memcpy(h.magic, XJ_MAGIC, sizeof(h.magic));
	memcpy(seg, &h, sizeof(h));
	pos = XJ_SEG_HDR;

	struct xe_new_order no = { .type = XE_NEW_ORDER, .side = XE_BUY, .ord_type = XE_ORD_LIMIT,
		.tif = XE_TIF_GTC, .symbol_id = 3, .cl_ord_id = 42, .price = -7, .qty = 5 };
	rec(XJ_IN, 0, 1, 7, 1, &no, sizeof(no));

	struct { struct xe_accepted a; struct xe_fill f; } out = {
		{ .type = XE_ACCEPTED, .side = XE_BUY, .ord_type = XE_ORD_LIMIT, .tif = XE_TIF_GTC,
			.symbol_id = 3, .cl_ord_id = 42, .order_id = 1001, .price = -7, .qty = 5 },
		{ .type = XE_FILL, .side = XE_BUY, .liquidity = XE_LIQ_REMOVED, .symbol_id = 3,
			.cl_ord_id = 42, .exec_id = 77, .price = -7, .qty = 2, .leaves = 3,
			.order_id = 1001 },
	};
	rec(XJ_OUT, 0, 2, 7, 1, &out, sizeof(out));

	struct xj_sess_ev ev = { .kind = XJ_SK_LOGIN, .addr_kind = XJ_ADDR_UDP, .has_l2 = 1,
		.port = htons(40000), .lport = htons(9000), .nonce = 99, .login_ts = 123,
		.mac = { 2, 0, 0, 0, 0, 1 }, .lmac = { 2, 0, 0, 0, 0, 2 } };
	inet_pton(AF_INET, "10.77.0.2", &ev.addr);
	inet_pton(AF_INET, "10.77.0.1", &ev.laddr);
	rec(XJ_SESSION, 0, 0, 7, 0, &ev, sizeof(ev));

	struct { struct xj_sess_ev ev; char path[32]; } ue = {
		{ .kind = XJ_SK_TIMEOUT, .addr_kind = XJ_ADDR_UNIX, .cod = 1 }, "/run/xdpex/e9.sock" };
	rec(XJ_SESSION, 0, 0, 8, 0, &ue, sizeof(ue));

	const char admin[] = "{\"op\": \"halt\", \"symbol\": 3}";
	rec(XJ_ADMIN, XJ_F_BATCH_END, 0, 0, 0, admin, sizeof(admin));

	FILE *f = fopen(argv[1], "wb");
	if (argc != 2 || !f || fwrite(seg, 1, pos + 4096, f) != pos + 4096 || fclose(f))
		return 1; /* zeros after the data: the written end, like a preallocated segment */
	return 0;
}
"""


@pytest.fixture(scope="module")
def journal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("jc")
    (d / "q0").mkdir()
    src, exe = d / "writer.c", d / "writer"
    src.write_text(WRITER)
    cc = subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}",
                         "-o", str(exe), str(src)], capture_output=True, text=True)  # fmt: skip
    assert cc.returncode == 0, cc.stderr
    subprocess.run([str(exe), str(d / "q0" / j.segment_name(1))], check=True)
    return d


def test_a_segment_written_through_the_header_reads_back(journal_dir: Path) -> None:
    qdir = journal_dir / "q0"
    assert j.read_segment_header(qdir / j.segment_name(1)) == (0, 1, 1)
    r = j.JournalReader(qdir, stall_s=0)
    recs = r.poll()
    r.close()
    assert [(x.seq, x.type, x.flags, x.count, x.session_id, x.msg_seq) for x in recs] == [
        (1, j.RecType.IN, 0, 1, 7, 1),
        (2, j.RecType.OUT, 0, 2, 7, 1),
        (3, j.RecType.SESSION, 0, 0, 7, 0),
        (4, j.RecType.SESSION, 0, 0, 8, 0),
        (5, j.RecType.ADMIN, j.FLAG_BATCH_END, 0, 0, 0),
    ]
    assert [x.ts for x in recs] == [1700000000000000000 + i for i in range(1, 6)]
    no = c.decode_message(recs[0].payload)
    assert no == c.NewOrder(side=c.Side.BUY, ord_type=c.OrdType.LIMIT, tif=c.Tif.GTC,
                            symbol_id=3, cl_ord_id=42, price=-7, qty=5)  # fmt: skip
    fill = c.decode_message(recs[1].payload, c.MSG_SIZE)
    assert isinstance(fill, c.Fill) and (fill.exec_id, fill.qty, fill.leaves) == (77, 2, 3)
    ev = j.decode_session_event(recs[2].payload)
    assert ev is not None and (ev.kind, ev.addr_kind, ev.peer) == (1, 1, "10.77.0.2:40000")
    assert (ev.lport, ev.laddr.to_bytes(4, "big"), ev.nonce, ev.login_ts) == (
        9000, bytes([10, 77, 0, 1]), 99, 123)  # fmt: skip
    assert (ev.has_l2, ev.mac, ev.lmac) == (1, bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 2]))
    ue = j.decode_session_event(recs[3].payload)
    assert ue is not None and (ue.kind, ue.cod, ue.peer) == (3, 1, "unix:/run/xdpex/e9.sock")
    assert recs[4].payload.rstrip(b"\0") == b'{"op": "halt", "symbol": 3}'


def test_the_persister_makes_the_rows_of_the_records(journal_dir: Path) -> None:
    r = j.JournalReader(journal_dir / "q0", stall_s=0)
    b = Batch(0)
    for rec in r.poll():
        b.add(rec)
    r.close()
    order = b.new_orders[1001]
    assert {k: order[k] for k in ("session_id", "cl_ord_id", "symbol_id", "side", "price",
                                  "qty", "filled", "leaves", "status")} == {
        "session_id": 7, "cl_ord_id": 42, "symbol_id": 3, "side": 1, "price": -7, "qty": 5,
        "filled": 2, "leaves": 3, "status": "partially_filled"}  # fmt: skip
    (ex,) = b.executions
    assert (ex["exec_id"], ex["order_id"], ex["liquidity"], ex["qty"]) == (77, 1001, 2, 2)
    assert [(e["session_id"], e["event"], e["detail"]) for e in b.events] == [
        (7, "login", "10.77.0.2:40000"),
        (8, "timeout", "unix:/run/xdpex/e9.sock"),
    ]


def test_the_publisher_streams_the_fill(journal_dir: Path, svc_redis) -> None:
    prefix = f"xtjc{uuid.uuid4().hex[:8]}"
    pub = Publisher(svc_redis.url, journal_dir, prefix)
    r = redis.Redis.from_url(svc_redis.url)
    try:
        while pub.step():
            pass
        pub.close()
        ((key, f),) = r.xrange(f"{prefix}:q0:executions")
        assert key == b"2-1"  # journal seq 2, message 1 of the record
        want = {"seq": 2, "exec_id": 77, "order_id": 1001, "session_id": 7, "cl_ord_id": 42,
                "symbol_id": 3, "side": 1, "liquidity": 2, "price": -7, "qty": 2, "leaves": 3}
        assert {k.decode(): int(v) for k, v in f.items() if k != b"ts"} == want
        (_, top), *_ = r.xrange(f"{prefix}:q0:tob")  # written at the batch end
        assert int(top[b"symbol_id"]) == 3 and int(top[b"bid_px"]) == -7
        assert int(top[b"bid_qty"]) == 3
    finally:
        for k in r.scan_iter(f"{prefix}:*"):
            r.delete(k)
        r.close()
