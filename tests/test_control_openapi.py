"""The OpenAPI document tells the truth: `schemathesis run --checks all` with every phase
(examples, coverage, fuzzing, stateful) against the control plane as it runs in production
(`python -m xdpex.serve`, uvicorn, real xdpexd behind it, the private PostgreSQL) reports no
failure. Bounded: XDPEX_SCHEMATHESIS_EXAMPLES examples per operation (25) and a fixed seed
(XDPEX_SCHEMATHESIS_SEED) so a failure can be replayed; set another seed to explore, and
XDPEX_SCHEMATHESIS_OUT=DIR to keep the whole report.

The only hook (tests/schemathesis_hooks.py) puts the positive cases of POST /api/v1/symbols on
the tick grid: the one rule of the API JSON Schema cannot state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from control_support import Dataplane, cleanup_dir, database, short_tmpdir

TOKEN = "xt_schemathesis_operator"
HERE = Path(__file__).resolve().parent


def test_schemathesis_all_checks_all_phases_find_nothing(request):
    d = short_tmpdir("oapi")
    db = database(request, "postgres", d)
    dp = Dataplane(d).start()
    cp = dp.control_plane(
        TOKEN,
        env={
            "XDPEX_DATABASE_URL": db.url,
            "XDPEX_DB_SCHEMA": db.schema,
            "XDPEX_RECONCILE_INTERVAL_S": "1",
        },
    )
    try:
        cp.start()
        cmd = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{cp.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            os.environ.get("XDPEX_SCHEMATHESIS_EXAMPLES", "25"),
            "--seed",
            os.environ.get("XDPEX_SCHEMATHESIS_SEED", "20261203"),
            "--workers",
            "2",
            "--no-color",
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        run = subprocess.run(
            cmd, env=env, cwd=d, capture_output=True, text=True, timeout=300
        )
        out = run.stdout + run.stderr
        keep = Path(os.environ.get("XDPEX_SCHEMATHESIS_OUT", str(d)))  # the whole report
        (keep / "schemathesis.txt").write_text(out)
        assert run.returncode == 0, out[-12000:]
        assert "✅ Stateful" in out and "✅ Fuzzing" in out and "✅ Coverage" in out, out[-4000:]
        assert " passed" in out and "failure" not in out.split("SUMMARY")[-1], out[-4000:]
    finally:
        cp.stop()
        dp.stop()
        db.drop()
        cleanup_dir(d)
