"""Generated gRPC modules of xdpex/proto/*.proto (package data, so they ship in the wheel).

In a checkout `make build` generates them into build/control/pb (control/build.mk); when they are
missing or older than the .proto, this module generates them itself with grpc_tools, so the
control plane also runs from a bare checkout or an installed wheel (then into $XDPEX_PB_DIR or
~/.cache/xdpex/pb). Import the modules as `from xdpex.pb import orderentry_pb2,
orderentry_pb2_grpc`; other services load theirs with `load("<name>")`.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from .config import REPO_ROOT

PROTO_DIR = Path(__file__).resolve().parent / "proto"


def _out_dir() -> Path:
    if os.environ.get("XDPEX_PB_DIR"):
        return Path(os.environ["XDPEX_PB_DIR"])
    if (REPO_ROOT / "control" / "build.mk").exists():  # a checkout
        return REPO_ROOT / "build/control/pb"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xdpex" / "pb"


OUT_DIR = _out_dir()


def _generate(proto: Path) -> None:
    from grpc_tools import protoc

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(
        [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={OUT_DIR}",
            f"--grpc_python_out={OUT_DIR}",
            str(proto),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc failed ({rc}) on {proto}")


def load(name: str):  # type: ignore[no-untyped-def]
    """The generated (<name>_pb2, <name>_pb2_grpc) modules of xdpex/proto/<name>.proto."""
    proto = PROTO_DIR / f"{name}.proto"
    gen = OUT_DIR / f"{name}_pb2_grpc.py"
    if not gen.exists() or gen.stat().st_mtime < proto.stat().st_mtime:
        _generate(proto)
    if str(OUT_DIR) not in sys.path:
        sys.path.insert(0, str(OUT_DIR))
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")


orderentry_pb2, orderentry_pb2_grpc = load("orderentry")
