"""`xdpex up` / `xdpex down` / `xdpex status`: a supervised gateway on this host.

`up` starts a supervisor in the background that runs and watches three processes: the dataplane
(build/dataplane/xdpexd, kernel-UDP mode unless `--mode afxdp --iface IF`), the control plane
(REST on 127.0.0.1:8080, gRPC on 127.0.0.1:50051) and the persister. A child that dies is
restarted with back-off; SIGTERM to the supervisor (what `down` sends) stops them in reverse order.
Everything lives under the state directory: sockets in run/, the journal in journal/, the
SQLite database, logs in log/, the supervisor's pid file, and the operator token (operator.token,
mode 0600), whose path `up` prints. `status` shows the processes, readiness and dataplane mode.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .config import REPO_ROOT

XDPEXD = REPO_ROOT / "build/dataplane/xdpexd"


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("XDPEX_STATE_DIR", "/var/lib/xdpex")),
        help="where sockets, journal, database, logs and the token live",
    )


def add_up_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--mode", choices=["udp", "afxdp"], default="udp")
    p.add_argument("--iface", help="interface for afxdp mode")
    p.add_argument("--addr", default="127.0.0.1", help="udp mode: gateway address")
    p.add_argument("--port", type=int, default=9000, help="gateway UDP port")
    p.add_argument("--config", type=Path, help="xdpexd JSON config (default: a minimal one)")
    p.add_argument("--http", default="127.0.0.1:8080", help="REST listen address")
    p.add_argument("--grpc", default="127.0.0.1:50051", help="gRPC listen address")
    p.add_argument("--database-url", default="", help="default: SQLite in the state dir")
    p.add_argument("--redis-url", default="", help="publish executions and top of book")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for ready")


def _paths(state: Path) -> dict[str, Path]:
    return {
        "run": state / "run",
        "log": state / "log",
        "journal": state / "journal",
        "pid": state / "xdpex.pid",
        "spec": state / "xdpex.json",
        "token": state / "operator.token",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _pid(state: Path) -> int | None:
    try:
        pid = int(_paths(state)["pid"].read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _children(spec: dict) -> list[tuple[str, list[str], dict[str, str]]]:
    p = {k: Path(v) for k, v in spec["paths"].items()}
    env = {
        "XDPEX_STATE_DIR": spec["state_dir"],
        "XDPEX_CONTROL_SOCKET": str(p["run"] / "ctl.sock"),
        "XDPEX_ORDER_SOCKET": str(p["run"] / "entry.sock"),
        "XDPEX_JOURNAL_DIR": str(p["journal"]),
        "XDPEX_DATABASE_URL": spec["database_url"],
        "XDPEX_REDIS_URL": spec["redis_url"],
        "XDPEX_UDP_MODE": str(spec["mode"] == "udp"),
        "XDPEX_HTTP_HOST": spec["http"].rsplit(":", 1)[0],
        "XDPEX_HTTP_PORT": spec["http"].rsplit(":", 1)[1],
        "XDPEX_GRPC_HOST": spec["grpc"].rsplit(":", 1)[0],
        "XDPEX_GRPC_PORT": spec["grpc"].rsplit(":", 1)[1],
    }
    dp = [
        str(XDPEXD),
        "--mode",
        spec["mode"],
        "--port",
        str(spec["port"]),
        "--config",
        spec["config"],
        "--journal-dir",
        str(p["journal"]),
        "--ctl-socket",
        str(p["run"] / "ctl.sock"),
        "--entry-socket",
        str(p["run"] / "entry.sock"),
        "--poll",
        "sleep",
    ]
    dp += ["--iface", spec["iface"]] if spec["mode"] == "afxdp" else ["--addr", spec["addr"]]
    py = sys.executable
    return [
        ("dataplane", dp, {}),
        ("control", [py, "-m", "xdpex.serve"], env),
        ("persister", [py, "-m", "xdpex.persister"], env),
    ]


def supervise(state: Path) -> int:
    """Run the children until SIGTERM/SIGINT; restart any that dies (back-off up to 10 s)."""
    spec = json.loads(_paths(state)["spec"].read_text())
    kids = _children(spec)
    logdir = Path(spec["paths"]["log"])
    procs: dict[str, subprocess.Popen[bytes]] = {}
    backoff = {name: 0.5 for name, _, _ in kids}
    next_start = {name: 0.0 for name, _, _ in kids}
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop:
        for i, (name, argv, env) in enumerate(kids):
            pr = procs.get(name)
            if pr is not None and pr.poll() is None:
                continue
            if pr is not None:
                print(f"xdpex: {name} exited {pr.returncode}; restarting", file=sys.stderr)
                procs.pop(name)
                next_start[name] = time.monotonic() + backoff[name]
                backoff[name] = min(backoff[name] * 2, 10.0)
                continue
            if time.monotonic() < next_start[name]:
                continue
            if i > 0 and not (Path(spec["paths"]["run"]) / "ctl.sock").exists():
                continue  # the control plane and persister start once the dataplane is up
            with open(logdir / f"{name}.log", "ab") as logf:
                procs[name] = subprocess.Popen(
                    argv, stdout=logf, stderr=logf, env={**os.environ, **env}, cwd=spec["state_dir"]
                )
        time.sleep(0.2)
    for name, _, _ in reversed(kids):
        pr = procs.get(name)
        if pr is not None and pr.poll() is None:
            pr.terminate()
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait()
    _paths(state)["pid"].unlink(missing_ok=True)
    return 0


def _scheme() -> str:
    """https when the control plane is configured for TLS (XDPEX_TLS_CERTFILE, directly or in
    the XDPEX_CONFIG file), which its child inherits."""
    from .config import load_settings

    try:
        return "https" if load_settings().tls else "http"
    except ValueError:  # a bad setting: the control plane itself will say which
        return "http"


def _http_get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, dict]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = None
    if url.startswith("https:"):
        # the supervisor's own child on the address it was given: its certificate need not
        # name that address nor chain to a CA this host trusts
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return 0, {"error": str(e)}


def up(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.resolve()
    paths = _paths(state)
    if (pid := _pid(state)) is not None:
        print(f"xdpex: already up (supervisor pid {pid}); `xdpex status` or `xdpex down`")
        return 1
    if not XDPEXD.exists():
        print(f"xdpex: {XDPEXD} is missing: run `make build`", file=sys.stderr)
        return 2
    if args.mode == "afxdp" and not args.iface:
        print("xdpex: --iface is required with --mode afxdp", file=sys.stderr)
        return 2
    for k in ("run", "log", "journal"):
        paths[k].mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    config = args.config.resolve() if args.config else state / "xdpexd.json"
    if not args.config and not config.exists():
        config.write_text(json.dumps({"heartbeat_ms": 1000, "symbols": [], "sessions": []}))
    spec = {
        "state_dir": str(state),
        "mode": args.mode,
        "iface": args.iface,
        "addr": args.addr,
        "port": args.port,
        "config": str(config),
        "http": args.http,
        "grpc": args.grpc,
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "paths": {k: str(v) for k, v in paths.items()},
        "scheme": _scheme(),
    }
    paths["spec"].write_text(json.dumps(spec, indent=1))
    with open(paths["log"] / "supervisor.log", "ab") as logf:
        sup = subprocess.Popen(
            [sys.executable, "-m", "xdpex.lifecycle", "supervise", str(state)],
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
    paths["pid"].write_text(f"{sup.pid}\n")
    url = f"{spec['scheme']}://{args.http}"
    deadline = time.monotonic() + args.timeout
    code, body = 0, {}  # type: tuple[int, dict]
    while time.monotonic() < deadline:
        if sup.poll() is not None:
            print(f"xdpex: supervisor exited {sup.returncode}; see {paths['log']}", file=sys.stderr)
            return 1
        code, body = _http_get(f"{url}/readyz")
        if code == 200:
            break
        time.sleep(0.3)
    if code != 200:
        print(
            f"xdpex: not ready after {args.timeout:g} s: {body}; logs in {paths['log']}",
            file=sys.stderr,
        )
        return 1
    print(f"xdpex: up ({args.mode} mode, gateway udp {args.addr}:{args.port})")
    print(f"  REST      {url}  (OpenAPI {url}/docs, metrics {url}/metrics)")
    print(f"  gRPC      {args.grpc}")
    print(f"  operator token: {paths['token']}  (`cat` it; send as 'Authorization: Bearer ...')")
    print(f"  logs      {paths['log']}   journal {paths['journal']}")
    return 0


def down(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.resolve()
    pid = _pid(state)
    if pid is None:
        print("xdpex: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        print(f"xdpex: supervisor {pid} did not stop within 30 s", file=sys.stderr)
        return 1
    print("xdpex: down")
    return 0


def status(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.resolve()
    pid = _pid(state)
    if pid is None:
        print("xdpex: down")
        return 3
    spec = json.loads(_paths(state)["spec"].read_text())
    url = f"{spec.get('scheme', 'http')}://{spec['http']}"
    code, ready = _http_get(f"{url}/readyz")
    print(f"xdpex: supervisor pid {pid}, REST {url}, gRPC {spec['grpc']}")
    print(f"  ready: {'yes' if code == 200 else 'NO'} {json.dumps(ready.get('checks', ready))}")
    try:
        token = _paths(state)["token"].read_text().strip()
    except OSError:
        token = os.environ.get("XDPEX_OPERATOR_TOKEN", "")
    c2, dp = _http_get(f"{url}/api/v1/dataplane", token or None)
    if c2 == 200:
        print(
            f"  dataplane: mode {dp.get('mode')} attach {dp.get('attach_mode')} durability "
            f"{dp.get('durability')} queues {len(dp.get('queues') or [])} "
            f"state_hash {dp.get('state_hash')}"
        )
    else:
        print(f"  dataplane: {c2} {dp}")
    return 0 if code == 200 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "supervise":
        sys.exit(supervise(Path(sys.argv[2])))
    print("usage: python -m xdpex.lifecycle supervise STATE_DIR", file=sys.stderr)
    sys.exit(2)
