"""Generated gRPC modules of control/proto/*.proto (built into build/control/pb).

`make build` generates them (control/build.mk); when they are missing or older than the .proto,
this module generates them in place with grpc_tools, so the control plane also runs from a bare
checkout. Import the modules as `from xdpex.pb import orderentry_pb2, orderentry_pb2_grpc`;
other services load theirs with `load("<name>")`.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from .config import REPO_ROOT

PROTO_DIR = REPO_ROOT / "control/proto"
OUT_DIR = Path(os.environ.get("XDPEX_PB_DIR", REPO_ROOT / "build/control/pb"))


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
    """The generated (<name>_pb2, <name>_pb2_grpc) modules of control/proto/<name>.proto."""
    proto = PROTO_DIR / f"{name}.proto"
    gen = OUT_DIR / f"{name}_pb2_grpc.py"
    if not gen.exists() or gen.stat().st_mtime < proto.stat().st_mtime:
        _generate(proto)
    if str(OUT_DIR) not in sys.path:
        sys.path.insert(0, str(OUT_DIR))
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")


orderentry_pb2, orderentry_pb2_grpc = load("orderentry")
