"""atheris harness of the Python wire codec (proto/xdpex_proto/codec.py): any bytes, decoded in
each direction. decode_datagram either returns a Datagram or raises ProtocolError (any other
exception is a finding); what it returns encodes again and decodes to the same Datagram, and each
message decodes on its own. Run by fuzz/run.py (target atheris_codec) with libFuzzer's flags.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "proto"))
with atheris.instrument_imports():
    from xdpex_proto import codec as c

DIRS = (c.Direction.TO_GW, c.Direction.FROM_GW, c.Direction.AUTO)


def one(data: bytes) -> None:
    for d in DIRS:
        try:
            dg = c.decode_datagram(data, d)
        except c.ProtocolError as e:
            assert isinstance(e.code, c.ParseError) and str(e), (d, data.hex())
            continue
        assert len(data) == c.HDR_SIZE + len(dg.messages) * c.MSG_SIZE, data.hex()
        again = c.decode_datagram(dg.encode(), d)
        assert (again.session_id, again.seq, again.flags) == (dg.session_id, dg.seq, dg.flags)
        assert again.messages == dg.messages, data.hex()
        for i, m in enumerate(dg.messages):
            assert c.decode_message(data, c.HDR_SIZE + i * c.MSG_SIZE) == m
            m.to_dict()


def main() -> None:
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
