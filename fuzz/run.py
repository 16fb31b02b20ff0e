"""Runs the fuzz targets of fuzz/ one after the other and writes their figures.

    run.py --seconds S --out DIR [--regress] TARGET...

libFuzzer targets (build/fuzz/bin/fuzz_<t>) start from a working corpus DIR/<t>/corpus seeded
with fuzz/corpus/<t>/ (the committed seeds and the reproducers of every finding fixed so far, so
each run re-checks them first); findings go to DIR/<t>/artifacts/. bpfdiff is
build/fuzz/bin/bpfdiff; atheris_<x> is fuzz/atheris/fuzz_<x>.py under the venv's Python.
DIR/summary.json holds the latest row of every target run into DIR: target, executions, seconds,
coverage (libFuzzer's `cov:` edges; bpfdiff: distinct verdict/reason classes), crashes, ok, time,
loadavg; DIR/history.jsonl gets every row appended, and `total_executions` / `total_seconds` add
up every run recorded there.
--regress: also fail when a target ran no executions at all (the make test smoke run).
--summarize [--merge OTHER_DIR...]: no run; the rows of OTHER_DIR/history.jsonl are appended to
DIR's history first (runs made elsewhere, e.g. in parallel), then DIR/summary.json is rebuilt
from DIR/history.jsonl.
Exit status 1 when any target crashed, found a difference, or failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BIN = TOP / "build" / "fuzz" / "bin"
LIBFUZZER = ("parse", "config", "ctl", "journal", "entry", "frame", "repl")
# Per-target libFuzzer options: input size bound (a datagram is at most 1432 bytes; journal
# segments and entry batches hold several), and the dictionary of tokens if there is one.
# libFuzzer dictionaries (fuzz/dict/): the JSON targets get JSON tokens and xdpexd's field names.
DICT = {"config": "json.dict", "ctl": "json.dict"}
MAX_LEN = {"parse": 2048, "config": 4096, "ctl": 4096, "journal": 16384, "entry": 8192,
           "frame": 2048, "repl": 16384}


def libfuzzer_stats(text: str) -> dict[str, int]:
    """Executions and coverage from libFuzzer's (or atheris's) stderr."""
    out = {"executions": 0, "coverage": 0, "features": 0}
    m = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m:
        out["executions"] = int(m[-1])
    else:
        runs = re.findall(r"^#(\d+)\s", text, re.M)
        done = re.findall(r"Done (\d+) runs", text)
        if done:
            out["executions"] = int(done[-1])
        elif runs:
            out["executions"] = int(runs[-1])
    cov = re.findall(r"\bcov: (\d+)", text)
    ft = re.findall(r"\bft: (\d+)", text)
    if cov:
        out["coverage"] = int(cov[-1])
    if ft:
        out["features"] = int(ft[-1])
    return out


def run_libfuzzer(argv: list[str], work: Path, seeds: Path, seconds: int,
                  max_len: int, env: dict[str, str], dict_file: str | None = None) -> dict:
    corpus, art = work / "corpus", work / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    art.mkdir(parents=True, exist_ok=True)
    before = set(art.iterdir())
    cmd = [*argv, f"-max_total_time={seconds}", "-print_final_stats=1", "-timeout=20",
           "-rss_limit_mb=4096", f"-max_len={max_len}", f"-artifact_prefix={art}/",
           str(corpus)]
    if dict_file:
        cmd.insert(len(argv), f"-dict={TOP / 'fuzz' / 'dict' / dict_file}")
    if seeds.is_dir():
        cmd.append(str(seeds))
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env,
                       timeout=seconds * 3 + 300)
    elapsed = time.monotonic() - t0
    (work / "log.txt").write_text(p.stderr + p.stdout)
    st = libfuzzer_stats(p.stderr)
    found = sorted(str(a) for a in set(art.iterdir()) - before)
    return {**st, "seconds": round(elapsed, 1), "crashes": len(found), "artifacts": found,
            "rc": p.returncode, "corpus": sum(1 for _ in corpus.iterdir())}


def run_bpfdiff(work: Path, seconds: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    p = subprocess.run([str(BIN / "bpfdiff"), "--seconds", str(seconds), "--seed",
                        str(int(time.time())), "--corpus", str(TOP / "fuzz" / "corpus" / "parse"),
                        "--artifacts", str(work)],
                       capture_output=True, text=True, timeout=seconds * 3 + 120)
    elapsed = time.monotonic() - t0
    (work / "log.txt").write_text(p.stderr + p.stdout)
    row: dict = {"seconds": round(elapsed, 1), "rc": p.returncode, "executions": 0,
                 "coverage": 0, "crashes": 0}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            row.update(executions=r["executions"], coverage=r["classes"],
                       crashes=r["differences"], passed=r["passed"])
    if p.returncode and not row["crashes"]:
        row["crashes"] = 1
    return row


def summarize(out: Path, merge: list[Path]) -> int:
    hist = out / "history.jsonl"
    with hist.open("a") as f:
        for d in merge:
            f.write((d / "history.jsonl").read_text())
    latest: dict[str, dict] = {}
    totals: dict[str, list[float]] = {}
    for line in hist.read_text().splitlines():
        r = json.loads(line)
        if r["target"] not in latest or r["time"] >= latest[r["target"]]["time"]:
            latest[r["target"]] = r
        t = totals.setdefault(r["target"], [0, 0.0])
        t[0] += r["executions"]
        t[1] += r["seconds"]
    for t, r in latest.items():
        r["total_executions"], r["total_seconds"] = totals[t][0], round(totals[t][1], 1)
    rows = sorted(latest.values(), key=lambda r: r["target"])
    (out / "summary.json").write_text(json.dumps({"time": max(r["time"] for r in rows),
                                                  "targets": rows}, indent=1) + "\n")
    for r in rows:
        print(f"{r['target']}: {r['total_executions']} executions in {r['total_seconds']} s "
              f"(latest run {r['executions']} in {r['seconds']} s, coverage {r['coverage']}, "
              f"crashes {r['crashes']})")
    return 0 if all(r["ok"] for r in rows) else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--out", type=Path, default=TOP / "build" / "fuzz")
    ap.add_argument("--regress", action="store_true")
    ap.add_argument("--summarize", action="store_true")
    ap.add_argument("--merge", type=Path, nargs="*", default=[])
    ap.add_argument("targets", nargs="*")
    a = ap.parse_args()
    if a.summarize:
        return summarize(a.out, a.merge)
    if not a.targets:
        ap.error("no targets")
    a.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:allocator_may_return_null=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    rows = []
    for t in a.targets:
        work = a.out / t
        if t in LIBFUZZER:
            row = run_libfuzzer([str(BIN / f"fuzz_{t}")], work, TOP / "fuzz" / "corpus" / t,
                                a.seconds, MAX_LEN[t], env, DICT.get(t))
        elif t == "bpfdiff":
            row = run_bpfdiff(work, a.seconds)
        elif t.startswith("atheris_"):
            script = TOP / "fuzz" / "atheris" / f"fuzz_{t.removeprefix('atheris_')}.py"
            aenv = {k: v for k, v in env.items() if k != "ASAN_OPTIONS"}
            row = run_libfuzzer([sys.executable, str(script)], work,
                                TOP / "fuzz" / "corpus" / t, a.seconds, 4096, aenv)
        else:
            print(f"run.py: unknown target {t} (parse, config, ctl, journal, entry, bpfdiff, "
                  "atheris_codec, atheris_journal)", file=sys.stderr)
            return 2
        row = {"target": t, **row}
        row["ok"] = row["crashes"] == 0 and row["rc"] == 0 and (
            not a.regress or row["executions"] > 0)
        rows.append(row)
        print(f"fuzz {t}: {row['executions']} executions in {row['seconds']} s, coverage "
              f"{row['coverage']}, crashes {row['crashes']}{'' if row['ok'] else '  FAILED'}"
              + ("" if row["ok"] else f" (see {work}/log.txt)"), flush=True)
    hist = a.out / "history.jsonl"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load = os.getloadavg()
    for r in rows:
        r["time"], r["loadavg"] = stamp, [round(x, 2) for x in load]
    with hist.open("a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    totals: dict[str, dict[str, float]] = {}
    for line in hist.read_text().splitlines():
        r = json.loads(line)
        tt = totals.setdefault(r["target"], {"executions": 0, "seconds": 0.0})
        tt["executions"] += r["executions"]
        tt["seconds"] += r["seconds"]
    for r in rows:
        r["total_executions"] = totals[r["target"]]["executions"]
        r["total_seconds"] = round(totals[r["target"]]["seconds"], 1)
    # The latest row of every target ever run here: a run of some targets keeps the others'.
    old = a.out / "summary.json"
    latest = {}
    if old.exists():
        latest = {r["target"]: r for r in json.loads(old.read_text()).get("targets", [])}
    latest.update({r["target"]: r for r in rows})
    summary = {"time": stamp, "targets": sorted(latest.values(), key=lambda r: r["target"])}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
