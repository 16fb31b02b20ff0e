"""The private services (xdpex_services) with the real binaries: PostgreSQL, Redis and etcd.

- The session's instances (fixtures svc_pg, svc_redis, svc_etcd) are the test run's own: not on
  the system ports, their data in their own directories, unless XDPEX_TEST_* named a server.
- A PostgreSQL killed with SIGKILL is found again by its pid file and started in place (crash
  recovery keeps its committed data); instances left behind by a process that died are stopped
  and removed by the next start, by their pid files, and a pid that now names someone else's
  process is left alone.
- etcd grants a 1 s lease as 1 s and expires it; three members on chosen addresses keep a quorum
  when one is killed and take it back when it starts again; a member runs in a network namespace.
- Failures name the binary and quote its log; `python -m xdpex_services` runs one by hand.
- Where nothing listens on 127.0.0.1:5432/6379/2379 (a network namespace of the test's own),
  PostgreSQL and Redis tests of the control plane pass on the private instances.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis
from xdpex_services import (
    EtcdCluster,
    EtcdMember,
    PostgresInstance,
    RedisInstance,
    ServiceError,
    reap_stale,
    services_root,
)

TOP = Path(__file__).resolve().parents[1]
SYSTEM_PORTS = {5432, 6379, 2379, 2380}
ETCDCTL_ENV = {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def root():
    """A services root of the test's own that the postgres user can reach (pytest's tmp_path
    lives under a 0700 directory of root's)."""
    d = Path(tempfile.mkdtemp(prefix="xtsvc-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def etcdctl(endpoints: list[str], *args: str, timeout: float = 20) -> str:
    r = subprocess.run(
        ["etcdctl", "--endpoints", ",".join(endpoints), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ETCDCTL_ENV,
    )
    assert r.returncode == 0, f"etcdctl {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def test_the_session_services_are_private(svc_pg, svc_redis, svc_etcd):
    pg_env = os.environ.get("XDPEX_TEST_PG_URL")
    if pg_env:
        assert svc_pg.url == pg_env  # pointed at a server: used as it is
    else:
        assert svc_pg.port not in SYSTEM_PORTS and svc_pg.url.startswith("postgresql://")
        with psycopg.connect(svc_pg.url) as c:
            (data,) = c.execute("SHOW data_directory").fetchone()
            (listen,) = c.execute("SHOW listen_addresses").fetchone()
            (sockets,) = c.execute("SHOW unix_socket_directories").fetchone()
        assert Path(data) == svc_pg.data.resolve()
        assert (listen, sockets) == ("127.0.0.1", "")
        if "XDPEX_SERVICES_DIR" not in os.environ:
            assert svc_pg.dir.parent == services_root() == TOP / "build" / "services"
    redis_env = os.environ.get("XDPEX_TEST_REDIS_URL")
    if redis_env:
        assert svc_redis.url == redis_env
    else:
        assert svc_redis.port not in SYSTEM_PORTS
        r = redis.Redis.from_url(svc_redis.url)
        assert r.config_get("dir")["dir"] == str(svc_redis.dir)
        assert r.config_get("save")["save"] == ""
        assert r.config_get("appendonly")["appendonly"] == "no"
        r.close()
    etcd_env = os.environ.get("XDPEX_TEST_ETCD")
    if etcd_env:
        assert svc_etcd.endpoints == etcd_env.split(",")
    else:
        (ep,) = svc_etcd.endpoints
        assert int(ep.rsplit(":", 1)[1]) not in SYSTEM_PORTS
        members = json.loads(etcdctl(svc_etcd.endpoints, "member", "list", "-w", "json"))
        assert [(m["name"], m["clientURLs"]) for m in members["members"]] == [("m0", [ep])]


def test_a_killed_postgres_is_found_by_its_pid_file_and_started_in_place(root):
    pg = PostgresInstance(root=root, durable=True).start()  # a commit survives a crash
    try:
        with psycopg.connect(pg.url, autocommit=True) as c:
            c.execute("CREATE TABLE t (x int)")
            c.execute("INSERT INTO t VALUES (42)")
            backends = [
                r[0]
                for r in c.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'"
                )
            ]
        pid = pg.kill()
        assert pid and not _alive(pid) and backends
        assert (pg.data / "postmaster.pid").exists()  # stale: it died without removing it
        port = pg.port
        pg.start()  # reads the pid file, kills what is left of the group, starts again
        new = pg.pid
        assert new != pid and _alive(new) and pg.port == port
        assert not [b for b in backends if _alive(b)]
        with psycopg.connect(pg.url) as c:
            assert c.execute("SELECT x FROM t").fetchall() == [(42,)]
    finally:
        pg.stop()
    assert not _alive(new) and list(root.iterdir()) == []


ORPHAN = """
import json, os, signal, sys
from pathlib import Path
from xdpex_services import EtcdCluster, PostgresInstance, RedisInstance
root = Path(sys.argv[1])
pg, r, e = PostgresInstance(root=root).start(), RedisInstance(root=root).start(), \
    EtcdCluster.single(root=root).start()
print(json.dumps({"pids": [pg.pid, r.pid, e.pid("m0")], "dirs": [str(x.dir) for x in (pg, r, e)],
                  "pg": pg.url}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the owner crashes; its services keep running
"""


def test_services_of_a_crashed_owner_are_reaped_by_the_next_start(root):
    p = subprocess.run(
        [sys.executable, "-c", ORPHAN, str(root)], capture_output=True, text=True, timeout=180
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    left = json.loads(p.stdout)
    assert all(_alive(pid) for pid in left["pids"]), left
    with psycopg.connect(left["pg"]) as c:  # still serving, nobody owns it
        assert c.execute("SELECT 1").fetchone() == (1,)
    # A stale instance whose pid file names a process that is not ours (a reused pid): the
    # process's working directory is elsewhere, so it must survive the reaping.
    bystander = subprocess.Popen(["sleep", "60"], cwd="/")
    fake = root / "redis-1-fake"
    fake.mkdir()
    (fake / "owner").write_text("1 0\n")  # pid 1 never started at tick 0: the owner is gone
    (fake / "redis.pid").write_text(f"{bystander.pid}\n")
    try:
        r = RedisInstance(root=root).start()  # every start reaps first
        try:
            assert not any(_alive(pid) for pid in left["pids"]), left
            assert not any(Path(d).exists() for d in left["dirs"]) and not fake.exists()
            assert bystander.poll() is None, "a process outside the instance was killed"
            assert sorted(x.name for x in root.iterdir()) == [r.dir.name]
        finally:
            r.stop()
    finally:
        bystander.kill()
        bystander.wait()
    assert reap_stale(root) == [] and list(root.iterdir()) == []


def test_a_failed_start_names_the_binary_and_quotes_its_log(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        r = RedisInstance(root=tmp_path)
        r.port = held.getsockname()[1]  # a fixed port that is taken: no retry on another
        with pytest.raises(ServiceError) as e:
            r.start()
    assert "redis-server" in str(e.value) and "Address already in use" in str(e.value)
    assert r.dir is None and list(tmp_path.iterdir()) == []  # a failed fresh start cleans up


def test_postgres_says_which_directory_its_user_cannot_enter(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("run as root: PostgreSQL then runs as the postgres user")
    with pytest.raises(ServiceError, match=r"cannot enter /tmp/pytest-of-root \(mode 700\)"):
        PostgresInstance(root=tmp_path).start()


def test_etcd_grants_a_one_second_lease_and_expires_it(svc_etcd):
    ep = svc_etcd.endpoints
    out = etcdctl(ep, "lease", "grant", "1")
    assert out.endswith("granted with TTL(1s)\n"), out
    lease = out.split()[1]
    key = f"xt-lease-{os.getpid()}"
    etcdctl(ep, "put", "--lease", lease, key, "v")
    t0 = time.monotonic()
    with subprocess.Popen(
        ["etcdctl", "--endpoints", ",".join(ep), "watch", key],
        text=True,
        stdout=subprocess.PIPE,
        env=ETCDCTL_ENV,
    ) as w:
        try:
            assert w.stdout is not None
            for line in w.stdout:  # the watch's own DELETE event, no sleeping
                if line.strip() == "DELETE" or time.monotonic() - t0 > 10:
                    break
        finally:
            w.kill()
    took = time.monotonic() - t0
    assert took < 5, f"a 1 s lease took {took:.1f} s to expire"
    assert etcdctl(ep, "get", key) == ""


def test_etcd_three_members_on_chosen_addresses_keep_and_regain_a_quorum(root):
    members = [EtcdMember(f"m{i}", f"127.0.0.{i + 1}") for i in range(3)]
    with EtcdCluster(members, root=root) as e:
        assert [u.split("//")[1].split(":")[0] for u in e.endpoints] == [
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
        ]
        etcdctl(e.endpoints, "put", "k", "1")
        old = e.wait_leader()
        pid = e.kill_member(old)
        assert pid and not _alive(pid) and not e.healthy(old)
        new = e.wait_leader()  # the two left elect one of themselves
        assert new != old
        rest = [m.client_url for m in e.members if m.name != old]
        etcdctl(rest, "put", "k", "2")  # two of three: still a quorum
        e.start_member(old)  # rejoins with its data and catches up
        assert all(e.healthy(m.name) for m in members)
        assert etcdctl([e.member(old).client_url], "get", "k", "--print-value-only") == "2\n"
    assert list(root.iterdir()) == []


def test_etcd_member_in_a_network_namespace(tmp_path):
    ns = f"xtsvc{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        with EtcdCluster([EtcdMember("m0", netns=ns)], root=tmp_path) as e:
            (ep,) = e.endpoints
            assert ep == "http://127.0.0.1:2379"  # the namespace's own loopback, not ours
            r = subprocess.run(
                ["ip", "netns", "exec", ns, "etcdctl", "--endpoints", ep, "put", "k", "v"],
                capture_output=True,
                text=True,
                env=ETCDCTL_ENV,
            )
            assert r.stdout == "OK\n", r.stderr
            pid = e.pid("m0")
            assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_python_m_xdpex_services_runs_one_until_sigterm():
    with subprocess.Popen([sys.executable, "-m", "xdpex_services", "redis"], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:  # fmt: skip
        try:
            assert p.stdout is not None and p.stderr is not None
            url = p.stdout.readline().strip()  # printed once it answers PING
            where = Path(p.stderr.readline().split()[1].rstrip(";"))
            r = redis.Redis.from_url(url)
            assert r.ping() and r.config_get("dir")["dir"] == str(where)
            r.close()
            p.send_signal(signal.SIGTERM)
            assert p.wait(30) == 0
        finally:
            p.kill()
    assert not where.exists()


NESTED = [
    "tests/test_control_e2e.py::test_order_entry_cancel_book_and_persistence[postgres]",
    "tests/test_control_persist.py::test_publisher_top_of_book_matches_the_engine",
    "tests/test_services.py::test_the_session_services_are_private",
]
REFUSED = """
import socket
for port in (5432, 6379, 2379):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        raise SystemExit(f"something listens on 127.0.0.1:{port}")
    except ConnectionRefusedError:
        pass
"""


def test_persister_and_publisher_pass_where_nothing_listens_on_the_system_ports():
    """In a network namespace of its own nothing answers on 5432, 6379 or 2379 (the host's
    servers are out of reach), and a persister test on PostgreSQL (orders through the API, the
    persister drains the journal into the database, the API reads them back) and the
    publisher's Redis test pass there on the session's private instances."""
    ns = f"xtnosvc{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDPEX_TEST_")}
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        inside = ["ip", "netns", "exec", ns, sys.executable]
        r = subprocess.run([*inside, "-c", REFUSED], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(
            [*inside, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NESTED],
            cwd=TOP, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0 and f"{len(NESTED)} passed" in r.stdout, r.stdout[-3000:]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
