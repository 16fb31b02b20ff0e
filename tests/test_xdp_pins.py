"""The pinned-map subcommands of xdpex-xdp against pin dirs that are not what they should be.

The control plane edits xdp_steer's maps through their pins while the dataplane runs. When the
pins are missing, or belong to a build with another layout, the tool must refuse with a message
naming the map and the reason, and change nothing. No interface is needed: the wrong maps are
created with bpftool in a bpffs dir unique to the test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
TOOL = TOP / "build" / "xdp" / "xdpex-xdp"


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    if not TOOL.is_file():
        pytest.fail(f"{TOOL} is missing: run `make build` first")
    if os.geteuid() != 0:
        pytest.fail("bpffs pins need root")
    d = Path(f"/sys/fs/bpf/xdpex-pins-{os.getpid()}-{secrets.token_hex(3)}")
    d.mkdir()
    try:
        yield d
    finally:
        for pin in d.iterdir():
            pin.unlink()
        d.rmdir()


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=30)


def test_missing_pins_are_named(pin_dir: Path) -> None:
    for args in (["counters"], ["allow", "list"], ["rate", "--pps", "5"], ["unbind", "7"]):
        proc = tool(*args, "--pin-dir", str(pin_dir))
        assert proc.returncode == 1, args
        assert f"cannot open pinned map {pin_dir}/xsks_map" in proc.stderr, args
        assert "is xdp_steer loaded with this pin dir?" in proc.stderr


def test_pins_of_another_layout_are_refused(pin_dir: Path) -> None:
    # xsks_map right, cfg_map with a value size this build does not have.
    subprocess.run(
        [
            "bpftool",
            "map",
            "create",
            str(pin_dir / "xsks_map"),
            "type",
            "xskmap",
            "key",
            "4",
            "value",
            "4",
            "entries",
            "4",
            "name",
            "xsks_map",
        ],
        check=True,
    )
    subprocess.run(
        [
            "bpftool",
            "map",
            "create",
            str(pin_dir / "cfg_map"),
            "type",
            "array",
            "key",
            "4",
            "value",
            "16",
            "entries",
            "1",
            "name",
            "cfg_map",
        ],
        check=True,
    )
    for name in ("allow_map", "rate_map", "session_map", "stats_map"):
        subprocess.run(
            [
                "bpftool",
                "map",
                "create",
                str(pin_dir / name),
                "type",
                "hash",
                "key",
                "4",
                "value",
                "8",
                "entries",
                "4",
                "name",
                name,
            ],
            check=True,
        )
    proc = tool("rate", "--pps", "5", "--pin-dir", str(pin_dir))
    assert proc.returncode == 1
    assert f"pinned map {pin_dir}/cfg_map has 16-byte values, this build expects" in proc.stderr


def test_subcommand_usage_errors_name_the_argument() -> None:
    cases = [
        (["allow", "add", "10.0.0.0/40"], "allow: 10.0.0.0/40: expected A.B.C.D[/LEN]"),
        (["allow", "frob"], "allow: expected add CIDR, del CIDR, set [CIDR...] or list"),
        (["bind", "7", "10.0.0.1"], "bind: expected SESSION A.B.C.D:PORT"),
        (["rate", "--pps", "x"], "--pps x: expected 0..1000000000"),
        (["attach"], "attach: --ifname is required"),
        (["attach", "--ifname", "no-such-if0"], "attach: no interface no-such-if0"),
        (["attach", "--ifname", "lo", "--mode", "fast"], "--mode fast: expected auto, native"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ]
    for args, message in cases:
        proc = tool(*args, "--pin-dir", "/sys/fs/bpf/xdpex-nonexistent")
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
