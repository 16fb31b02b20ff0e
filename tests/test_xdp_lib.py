"""libxdpex_xdp's API as the dataplane calls it: build/xdp/xdpex_xdp_test (xdp/xdpex_xdp_test.c)
loads xdp_steer into the kernel and checks pin / unpin / pin again, the configuration validators
and what they write to cfg_map, allowlist add / del / replace, session binding, xsks_map bounds and
counter names. This file runs it with a bpffs pin dir of its own and reports its failed checks."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
TEST_BIN = TOP / "build" / "xdp" / "xdpex_xdp_test"


def test_library_api() -> None:
    if not TEST_BIN.is_file():
        pytest.fail(f"{TEST_BIN} is missing: run `make build` first")
    if os.geteuid() != 0:
        pytest.fail("loading xdp_steer needs root")
    pin_dir = Path(f"/sys/fs/bpf/xdpex-lib-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        proc = subprocess.run(
            [str(TEST_BIN), str(pin_dir)], capture_output=True, text=True, timeout=60
        )
        failures = [line for line in proc.stderr.splitlines() if line.startswith("FAIL")]
        assert proc.returncode == 0 and not failures, proc.stderr
        assert proc.stdout.startswith("ok ")
        assert not pin_dir.exists()  # close unpinned everything
    finally:
        if pin_dir.is_dir():
            for pin in pin_dir.iterdir():
                pin.unlink()
            pin_dir.rmdir()
