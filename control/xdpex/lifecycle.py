"""`xdpex up` / `xdpex down` / `xdpex status`: a supervised gateway on this host.

`up` starts a supervisor in the background that runs and watches three processes: the dataplane
(build/dataplane/xdpexd, kernel-UDP mode unless `--mode afxdp --iface IF`), the control plane
(REST on 127.0.0.1:8080, gRPC on 127.0.0.1:50051) and the persister. A child that dies is
restarted with back-off; SIGTERM to the supervisor (what `down` sends) stops them in reverse order.
Everything lives under the state directory: sockets in run/, the journal in journal/, the
SQLite database, logs in log/, the supervisor's pid file, and the operator token (operator.token,
mode 0600), whose path `up` prints. `status` shows the processes, readiness and dataplane mode.

`up --ha` runs a hot-standby pair on this host instead of one dataplane (docs/ha.md): a private
etcd (state/etcd, client port --etcd-port), two xdpexd --ha (nodes a and b: gateway ports PORT and
PORT+1, journals state/a/journal and state/b/journal, replication 127.0.0.1:7700/7701, durability
replicated with --repl-missing local) and an `xdpex ha-agent` beside each. A node is a group: when
its xdpexd or its agent exits (an old primary fenced for good, a cut tail, a switchover), both are
started again and the node rejoins as a standby. run/ctl.sock and run/entry.sock are symbolic
links to the leader's sockets, switched by the supervisor at each election, so the control plane
talks to whichever node leads; the persister and the publisher follow the leader's journal
(XDPEX_HA_NODES). `status` shows each node's role, epoch, lease and replication lag.
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
    p.add_argument("--iface", help="interface for afxdp mode (udp: with --xdp-filter)")
    p.add_argument(
        "--xdp-filter",
        action="store_true",
        help="udp mode: the XDP program on --iface in front of the socket (docs/dataplane.md)",
    )
    p.add_argument("--addr", default="127.0.0.1", help="udp mode: gateway address")
    p.add_argument("--port", type=int, default=9000, help="gateway UDP port")
    p.add_argument("--config", type=Path, help="xdpexd JSON config (default: a minimal one)")
    p.add_argument("--http", default="127.0.0.1:8080", help="REST listen address")
    p.add_argument("--grpc", default="127.0.0.1:50051", help="gRPC listen address")
    p.add_argument("--database-url", default="", help="default: SQLite in the state dir")
    p.add_argument("--redis-url", default="", help="publish executions and top of book")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for ready")
    p.add_argument("--ha", action="store_true",
                   help="a primary and a hot standby (nodes a, b) with etcd and HA agents")
    p.add_argument("--etcd-port", type=int, default=2379, help="--ha: etcd client port "
                   "(the peer port is the next one)")
    p.add_argument("--repl-port", type=int, default=7700, help="--ha: node a's replication "
                   "port (b: the next one)")


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


def _dp_argv(spec: dict, journal: Path, run: Path, port: int, prefix: str = "") -> list[str]:
    dp = [
        str(XDPEXD),
        "--mode",
        spec["mode"],
        "--port",
        str(port),
        "--config",
        spec["config"],
        "--journal-dir",
        str(journal),
        "--ctl-socket",
        str(run / f"{prefix}ctl.sock"),
        "--entry-socket",
        str(run / f"{prefix}entry.sock"),
        "--poll",
        "sleep",
    ]
    dp += ["--iface", spec["iface"]] if spec["mode"] == "afxdp" else ["--addr", spec["addr"]]
    if spec.get("xdp_filter"):
        dp += ["--iface", spec["iface"], "--xdp-filter"]
    return dp


HA_NODES = ("a", "b")


def _children(spec: dict) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, argv, env) of every child, in start order."""
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
    py = sys.executable
    cp = [
        ("control", [py, "-m", "xdpex.serve"], env),
        ("persister", [py, "-m", "xdpex.persister"], env),
    ]
    if not spec.get("ha"):
        return [("dataplane", _dp_argv(spec, p["journal"], p["run"], spec["port"]), {}), *cp]
    state = Path(spec["state_dir"])
    ep, etcd = spec["etcd_port"], f"http://127.0.0.1:{spec['etcd_port']}"
    kids: list[tuple[str, list[str], dict[str, str]]] = [(
        "etcd",
        ["etcd", "--name", "m0", "--data-dir", str(state / "etcd"),
         "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
         "--listen-peer-urls", f"http://127.0.0.1:{ep + 1}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{ep + 1}",
         "--initial-cluster", f"m0=http://127.0.0.1:{ep + 1}",
         "--heartbeat-interval", "50", "--election-timeout", "500"],
        {},
    )]
    nodes = []
    for i, n in enumerate(HA_NODES):
        journal, ctl = state / n / "journal", p["run"] / f"{n}.ctl.sock"
        dp = _dp_argv(spec, journal, p["run"], spec["port"] + i, f"{n}.")
        dp += ["--ha", "--name", n, "--repl-listen", f"127.0.0.1:{spec['repl_port'] + i}",
               "--durability", "replicated", "--repl-missing", "local"]
        agent = [py, "-m", "xdpex.cli", "ha-agent", "--etcd", etcd, "--cluster", "xdpex",
                 "--ctl", str(ctl), "--gateway", f"{spec['addr']}:{spec['port'] + i}"]
        kids += [(f"dataplane-{n}", dp, {}), (f"agent-{n}", agent, {})]
        nodes.append(f"{journal}={ctl}")
    env["XDPEX_HA_NODES"] = ",".join(nodes)
    return kids + cp


def _group(name: str) -> str:
    """Children that live and die together: a node's xdpexd and its agent."""
    return name.split("-", 1)[1] if name.startswith(("dataplane-", "agent-")) else name


def _ready_to_start(spec: dict, name: str) -> bool:
    run = Path(spec["paths"]["run"])
    if name.startswith("agent-"):
        return (run / f"{_group(name)}.ctl.sock").exists()
    if name.startswith("dataplane-"):
        return True
    if name in ("control", "persister"):
        return (run / "ctl.sock").exists()
    return True


def _point_at_leader(spec: dict) -> None:
    """run/ctl.sock and run/entry.sock -> the sockets of the node that leads (not fenced)."""
    from .dataplane import ControlClient
    from .errors import ServiceError

    run = Path(spec["paths"]["run"])
    for n in HA_NODES:
        cl = ControlClient(run / f"{n}.ctl.sock", timeout=0.3)
        try:
            ha = cl.request("ha")
        except ServiceError:
            continue
        finally:
            cl.close()
        if ha.get("role") != "primary" or ha.get("fenced"):
            continue
        for sock in ("ctl.sock", "entry.sock"):
            link, target = run / sock, f"{n}.{sock}"
            if link.is_symlink() and os.readlink(link) == target:
                continue
            tmp = run / f".{sock}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            tmp.replace(link)
            print(f"xdpex: {sock} -> node {n} (epoch {ha.get('epoch')})", file=sys.stderr)
        return


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
    if spec.get("ha"):
        for n in HA_NODES:  # sockets of a previous run would look like a started node
            (Path(spec["paths"]["run"]) / f"{n}.ctl.sock").unlink(missing_ok=True)
    while not stop:
        if spec.get("ha"):
            _point_at_leader(spec)
        for name, argv, env in kids:
            pr = procs.get(name)
            if pr is not None and pr.poll() is None:
                continue
            if pr is not None:
                print(f"xdpex: {name} exited {pr.returncode}; restarting", file=sys.stderr)
                procs.pop(name)
                next_start[name] = time.monotonic() + backoff[name]
                backoff[name] = min(backoff[name] * 2, 10.0)
                for other, _, _ in kids:  # its partner goes too and rejoins with it
                    po = procs.get(other)
                    if other != name and _group(other) == _group(name) and po is not None:
                        po.terminate()
                        po.wait(10)
                        procs.pop(other)
                        next_start[other] = next_start[name]
                        if other.startswith("dataplane-"):
                            sock = Path(spec["paths"]["run"]) / f"{_group(other)}.ctl.sock"
                            sock.unlink(missing_ok=True)
                continue
            if time.monotonic() < next_start[name]:
                continue
            if not spec.get("ha") and name != "dataplane" and \
                    not (Path(spec["paths"]["run"]) / "ctl.sock").exists():
                continue  # the control plane and persister start once the dataplane is up
            if spec.get("ha") and not _ready_to_start(spec, name):
                continue
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
    if getattr(args, "xdp_filter", False) and (
        args.mode != "udp" or not args.iface or getattr(args, "ha", False)
    ):
        print(
            "xdpex: --xdp-filter is for --mode udp, needs --iface, and one gateway on it "
            "(not --ha)",
            file=sys.stderr,
        )
        return 2
    for k in ("run", "log", "journal"):
        paths[k].mkdir(parents=True, exist_ok=True)
    if getattr(args, "ha", False):
        for n in HA_NODES:
            (state / n / "journal").mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    config = args.config.resolve() if args.config else state / "xdpexd.json"
    if not args.config and not config.exists():
        config.write_text(json.dumps({"heartbeat_ms": 1000, "symbols": [], "sessions": []}))
    spec = {
        "state_dir": str(state),
        "mode": args.mode,
        "iface": args.iface,
        "xdp_filter": bool(getattr(args, "xdp_filter", False)),
        "addr": args.addr,
        "port": args.port,
        "config": str(config),
        "http": args.http,
        "grpc": args.grpc,
        "database_url": args.database_url,
        "redis_url": args.redis_url,
        "paths": {k: str(v) for k, v in paths.items()},
        "scheme": _scheme(),
        "ha": bool(getattr(args, "ha", False)),
        "etcd_port": getattr(args, "etcd_port", 2379),
        "repl_port": getattr(args, "repl_port", 7700),
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
    if spec["ha"]:
        print(f"xdpex: up, high availability ({args.mode} mode): gateways udp "
              f"{args.addr}:{args.port} (node a) and {args.addr}:{args.port + 1} (node b), etcd "
              f"127.0.0.1:{spec['etcd_port']}")
    else:
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
    if spec.get("ha"):
        ha_status(spec)
    return 0 if code == 200 else 1


def ha_status(spec: dict) -> None:
    """One line per node: role, epoch, lease, journal seq and the replication lag."""
    from .dataplane import ControlClient
    from .errors import ServiceError

    run = Path(spec["paths"]["run"])
    for n in HA_NODES:
        cl = ControlClient(run / f"{n}.ctl.sock", timeout=1.0)
        try:
            ha = cl.request("ha")
        except ServiceError as e:
            print(f"  node {n}: down ({e})")
            continue
        finally:
            cl.close()
        q = (ha.get("queues") or [{}])[0]
        line = (f"  node {n}: {ha.get('role')} epoch {ha.get('epoch')} "
                f"{'fenced' if ha.get('fenced') else 'lease ' + str(ha.get('lease_ms')) + ' ms'}"
                f" journal seq {q.get('journal_seq')}")
        for sb in q.get("standbys") or []:
            line += (f"; standby {sb['name']} acked {sb['acked_seq']} lag {sb['lag_records']} "
                     f"records {sb['lag_bytes']} bytes {sb['lag_us']} us")
        f = q.get("following")
        if f:
            line += (f"; following {f.get('from')} ({f.get('state')}) lag "
                     f"{f.get('lag_records')} records")
        print(line)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "supervise":
        sys.exit(supervise(Path(sys.argv[2])))
    print("usage: python -m xdpex.lifecycle supervise STATE_DIR", file=sys.stderr)
    sys.exit(2)
