"""Failover driven by etcd between two real xdpexd --ha, each with its real `xdpex ha-agent`, in
kernel-UDP mode on loopback and in AF_XDP mode on the two sites of `xdpex lab up --ha` (real XDP,
real packets over veth), under client load (docs/ha.md "Election"): the primary killed with
-9 (agent and all, as when its host dies) a few times, alternating; the primary cut off from etcd
fences itself before the standby answers; a standby killed and restarted catches up to the same
state hash; a planned switchover. Every time: each order the client sent is answered exactly
once, and every answer it saw is the new primary's answer at that sequence (nothing
acknowledged was lost). The long series (20 kills) is `make soak-ha`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane_support import Client, need_root_and_binary
from ha_support import REPO, FollowingClient, Node, etcd_netns, wait_until
from xdpex_proto import codec as c

KILLS = int(os.environ.get("XDPEX_HA_KILLS", "3"))


def cluster_name() -> str:
    return f"t{os.getpid()}{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def ha_lab() -> Iterator[Any]:
    """Two gateway sites, the replication link between them and the lab's three-member etcd,
    one member per gateway namespace and one in a third (xdpex lab up --ha)."""
    from xdpex_traffic.lab import HaLab, LabError

    need_root_and_binary()
    lab = HaLab(f"th{os.getpid() % 100000}")
    try:
        lab.up()
    except LabError as e:
        lab.down()
        pytest.fail(f"lab up --ha failed: {e}")
    try:
        yield lab
    finally:
        lab.down()


@contextlib.contextmanager
def started_pair(mode: str, etcd: list[str], workdir: Path,
                 request: pytest.FixtureRequest) -> Iterator[tuple[Node, Node]]:
    need_root_and_binary()
    cl = cluster_name()
    if mode == "udp":
        a = Node(workdir, "a", etcd, cluster=cl)
        b = Node(workdir, "b", etcd, cluster=cl)
    else:
        # Each agent beside its xdpexd in its gateway namespace, its own etcd member first.
        a, b = lab_nodes(request.getfixturevalue("ha_lab"), workdir, cl)
    try:
        start_pair(a, b)
        yield a, b
    finally:
        for n in (b, a):
            n.stop()


def lab_nodes(lab: Any, workdir: Path, cl: str) -> tuple[Node, Node]:
    """Nodes a and b on the two sites of `lab` (HaLab), each agent in its gateway namespace
    talking to the lab's etcd, its own member first."""
    from xdpex_traffic.lab import HA_IPS

    site_a, site_b = lab.sides
    return (Node(workdir, "a", lab.etcd_endpoints("a"), cluster=cl, site=site_a,
                 repl_ip=HA_IPS[0], agent_netns=site_a.gw_ns),
            Node(workdir, "b", lab.etcd_endpoints("b"), cluster=cl, site=site_b,
                 repl_ip=HA_IPS[1], agent_netns=site_b.gw_ns))


def switchover(node: Node) -> subprocess.CompletedProcess[str]:
    """`xdpex ha switchover` against the etcd `node`'s agent uses, from where that agent runs."""
    argv = [sys.executable, "-m", "xdpex.cli", "ha", "switchover", "--etcd", ",".join(node.etcd),
            "--cluster", node.cluster]
    if node.agent_netns:
        argv = ["ip", "netns", "exec", node.agent_netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=agent_env())


@pytest.fixture(params=["udp", "afxdp"])
def pair(request: pytest.FixtureRequest, svc_etcd: Any,
         dp_workdir: Path) -> Iterator[tuple[Node, Node]]:
    with started_pair(request.param, svc_etcd.endpoints, dp_workdir, request) as p:
        yield p


@pytest.fixture
def udp_pair(request: pytest.FixtureRequest, svc_etcd: Any,
             dp_workdir: Path) -> Iterator[tuple[Node, Node]]:
    with started_pair("udp", svc_etcd.endpoints, dp_workdir, request) as p:
        yield p


def start_pair(a: Node, b: Node) -> None:
    """a started first and elected primary, then b started and streaming from it."""
    a.start()
    wait_until(lambda: a.role() == "primary", "a elected")
    b.start()
    wait_until(lambda: streaming(b), "b following a")


def streaming(n: Node, slack: int = 0) -> bool:
    """Following live, at most `slack` records behind (under load the lag is rarely 0 at the
    moment it is asked)."""
    try:
        f = n.ha()["queues"][0].get("following", {})
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return f.get("state") == "streaming" and f.get("lag_records", 1 << 62) <= slack


def leader_of(*nodes: Node) -> Node:
    found: list[Node] = []

    def one() -> bool:
        found[:] = [n for n in nodes if n.role() == "primary" and not n.ha()["fenced"]]
        return len(found) == 1

    wait_until(one, "exactly one unfenced primary")
    return found[0]


def everything_replayed(server: tuple[str, int], session: int,
                        netns: str | None) -> dict[int, c.Message]:
    """Every answer of `session` from the gateway's journal: log in from seq 1 and ask for the
    rest in chunks."""
    cl = Client(server, session, netns=netns)
    try:
        la = cl.login(next_seq=1)
        assert isinstance(la, c.LoginAccepted), la
        want = la.next_out_seq - 1
        deadline = time.monotonic() + 30 + want / 500  # (a soak's 20 kills: ~30,000)
        while time.monotonic() < deadline:
            got = dict(cl.app_messages())
            missing = [s for s in range(1, want + 1) if s not in got]
            if not missing:
                return got
            for k in range(8):  # the gateway serves 1,024 a request
                cl.send_session([c.RetransmitReq(from_seq=missing[0] + 1024 * k, count=1024)])
            cl.recv(0.3)
        raise AssertionError(f"replay of session {session} incomplete")
    finally:
        cl.close()


def check_exactly_once(fc: FollowingClient, leader: Node) -> None:
    """Every order answered once; every answer seen equals the leader's at its seq."""
    fc.quiesce()
    fc.stop()
    fc.logout()
    acc = fc.accepted()
    sent = {m.cl_ord_id for m in fc.sent.values()}
    assert set(acc) == sent, f"unanswered: {sorted(sent - set(acc))[:20]}"
    doubled = {k: [a.seq for a in v] for k, v in acc.items() if len(v) != 1}
    assert not doubled, f"answered more than once: {list(doubled.items())[:10]}"
    assert all(isinstance(v[0].msg, c.Accepted) for v in acc.values())
    truth = everything_replayed(leader.server, fc.session_id, leader.client_ns)
    lost = [s for s, a in fc.answers.items() if truth.get(s) != a.msg]
    assert not lost, f"answers seen that the leader's journal does not have: {lost[:10]}"
    assert max(truth) == max(fc.answers)


def kill_and_take_over(fc: FollowingClient, old: Node, new: Node) -> float:
    """Kill the primary `old` (-9, agent and all) under load; the seconds from the kill to the
    first answer from `new`. `old` rejoins as a standby afterwards."""
    try:
        wait_until(lambda: streaming(new, slack=100), f"{new.name} caught up", 30)
    except AssertionError as e:
        raise AssertionError(f"{e}: {new.ha()['queues'][0]}\n{new.d.log()[-3000:]}\n"
                             f"{new.log()[-2000:]}") from None
    before = fc.answered_count()
    wait_until(lambda: fc.answered_count() > before + 50, "orders flowing")
    killed = time.monotonic()
    old.kill9()
    wait_until(lambda: new.role() == "primary", f"{new.name} took over", 10)

    def from_new() -> list[float]:
        src = fc.src_of(new)
        return [x.at for x in list(fc.answers.values()) if x.at > killed and x.src == src]

    wait_until(lambda: bool(from_new()), f"answers from {new.name}", 10)
    took = min(from_new()) - killed
    epoch = new.ha()["epoch"]
    wait_until(lambda: fc.epoch == epoch, "the client logged in at the new epoch")
    old.restart_as_standby()
    return took


def test_kill9_of_the_primary_under_load(pair: tuple[Node, Node]) -> None:
    a, b = pair
    fc = FollowingClient([a.endpoint, b.endpoint])
    fc.start()
    takeovers = []
    try:
        for _ in range(KILLS):
            old = leader_of(a, b)
            takeovers.append(kill_and_take_over(fc, old, b if old is a else a))
        leader = leader_of(a, b)
        check_exactly_once(fc, leader)
    finally:
        fc.stop_ev.set()
    print(f"takeovers (s): {[round(t, 3) for t in takeovers]}")
    out = os.environ.get("XDPEX_HA_REPORT")
    if out:  # make soak-ha / bench-failover: the figures, for the report
        Path(out).write_text(json.dumps({
            "kills": len(takeovers), "takeover_s": takeovers, "sent": len(fc.sent),
            "answered": len(fc.accepted()), "lost": len(fc.unanswered()),
            "duplicated": sum(len(v) - 1 for v in fc.accepted().values()),
            "client_resent": fc.stats.resent, "client_failovers": fc.stats.failovers}))
    assert len(takeovers) == KILLS
    assert max(takeovers) < 5.0


@pytest.mark.parametrize("mode", ["udp", "afxdp"])
def test_a_primary_cut_off_from_etcd_fences_itself_before_the_standby_answers(
        mode: str, dp_workdir: Path, request: pytest.FixtureRequest) -> None:
    """udp: one etcd member in the root namespace, a's agent in a namespace of its own whose veth
    is set down. afxdp: the lab's three members, a's agent beside its xdpexd in a's gateway
    namespace talking to its own member first; a's namespace's etcd link set down, which leaves
    a's member alone (a minority: it cannot serve) while b's and c's keep the quorum."""
    need_root_and_binary()
    from xdpex_services import EtcdCluster, EtcdMember

    with contextlib.ExitStack() as stack:
        cl = cluster_name()
        lab = None
        if mode == "udp":
            ns, host_ip, link = stack.enter_context(
                etcd_netns(f"ha{os.getpid() % 10000}{secrets.token_hex(2)}"))
            etcd = EtcdCluster([EtcdMember("m0", host=host_ip)]).start()
            stack.callback(etcd.stop)
            a = Node(dp_workdir, "a", etcd.endpoints, cluster=cl, agent_netns=ns)
            b = Node(dp_workdir, "b", etcd.endpoints, cluster=cl)

            def cut(up: bool) -> None:
                subprocess.run(["ip", "link", "set", link, "up" if up else "down"], check=True,
                               timeout=10)
        else:
            lab = request.getfixturevalue("ha_lab")
            a, b = lab_nodes(lab, dp_workdir, cl)

            def cut(up: bool) -> None:
                lab.set_etcd_link("a", up)

            stack.callback(cut, True)
        fc = FollowingClient([a.endpoint, b.endpoint])
        try:
            start_pair(a, b)
            fc.start()
            wait_until(lambda: fc.answered_count() > 200, "orders flowing")
            cut(False)
            cut_at = time.monotonic()
            wait_until(lambda: b.role() == "primary", "b took over", 15)
            assert a.ha()["fenced"] is True and a.role() == "primary"
            if lab is not None:  # a's own member is a minority now; b's and c's the quorum
                etcd_cl = lab.etcd_cluster()
                assert not etcd_cl.healthy("a")
                assert etcd_cl.healthy("b") and etcd_cl.healthy("c")
            wait_until(lambda: any(x.src == fc.src_of(b) for x in list(fc.answers.values())),
                       "answers from b")
            # When the kernel received each answer (SO_TIMESTAMPNS): not when the client
            # thread got round to reading it.
            from_a = [x.kernel_ns for x in list(fc.answers.values()) if x.src == fc.src_of(a)]
            from_b = [x.kernel_ns for x in list(fc.answers.values()) if x.src == fc.src_of(b)]
            assert all(from_a) and all(from_b)
            assert max(from_a) < min(from_b), "both primaries answered at once"
            print(f"fence: a's last answer {(min(from_b) - max(from_a)) / 1e6:.0f} ms before b's "
                  "first")
            last_a = max(x.at for x in list(fc.answers.values()) if x.src == fc.src_of(a))
            assert last_a - cut_at < 1.5  # a stopped within its lease (1 s, read late at worst)
            # a still cannot renew: its grant never comes back.
            assert "cannot renew the lease" in a.log()
            check_exactly_once(fc, b)
            # The link back: a's agent learns its lease is gone and fences for good.
            cut(True)
            assert a.agent is not None
            assert a.agent.wait(15) == 3, a.log()
            assert "lost the lease" in a.log()
            assert a.ha()["fenced"] is True
        finally:
            fc.stop_ev.set()
            for n in (b, a):
                n.stop()


def test_a_standby_killed_and_restarted_catches_up_with_the_same_hash(
        udp_pair: tuple[Node, Node]) -> None:
    a, b = udp_pair
    fc = FollowingClient([a.endpoint, b.endpoint])
    fc.start()
    try:
        wait_until(lambda: fc.answered_count() > 100, "orders flowing")
        b.kill9()
        n = fc.answered_count()
        wait_until(lambda: fc.answered_count() > n + 200, "orders flowing without b")
        b.restart_as_standby()
        wait_until(lambda: streaming(b), "b caught up")
        fc.quiesce()
        wait_until(lambda: a.d.state_hash() == b.d.state_hash() and streaming(b),
                   "the same state hash")
        assert a.role() == "primary" and fc.stats.failovers == 0
        check_exactly_once(fc, a)
    finally:
        fc.stop_ev.set()


def test_planned_switchover_under_load(pair: tuple[Node, Node]) -> None:
    a, b = pair
    fc = FollowingClient([a.endpoint, b.endpoint])
    fc.start()
    try:
        wait_until(lambda: fc.answered_count() > 200, "orders flowing")
        epoch = a.ha()["epoch"]
        r = switchover(a)
        assert r.returncode == 0, r.stderr
        assert '"to": "b"' in r.stdout
        wait_until(lambda: b.role() == "primary", "b took over")
        assert b.ha()["epoch"] > epoch
        assert a.agent is not None and a.agent.wait(10) == 0
        assert a.ha()["fenced"] is True
        wait_until(lambda: fc.epoch == b.ha()["epoch"], "the client followed")
        assert fc.stats.logouts >= 1  # told to move: Logout(SWITCHOVER), no heartbeat timeout
        assert all(why == "logout" for _, why in fc.stats.moves[:1])
        a.restart_as_standby()
        wait_until(lambda: streaming(a), "a rejoined as b's standby")
        check_exactly_once(fc, b)
    finally:
        fc.stop_ev.set()


def test_losing_one_etcd_member_changes_nothing_losing_quorum_fences(dp_workdir: Path) -> None:
    need_root_and_binary()
    from xdpex_services import EtcdCluster, EtcdMember

    # (election timeout 250 ms, as the lab's: a killed raft leader is replaced inside the
    # primary's grant)
    etcd = EtcdCluster([EtcdMember(f"m{i}") for i in range(3)], election_ms=250).start()
    cl = cluster_name()
    a = Node(dp_workdir, "a", etcd.endpoints, cluster=cl)
    b = Node(dp_workdir, "b", etcd.endpoints, cluster=cl)
    fc = FollowingClient([a.endpoint, b.endpoint])
    try:
        start_pair(a, b)
        fc.start()
        wait_until(lambda: fc.answered_count() > 100, "orders flowing")
        # One member of three down (the raft leader, the worst one): the lease still renews.
        etcd.kill_member(etcd.wait_leader())
        n = fc.answered_count()
        time.sleep(2.5)  # longer than the lease: it must have been renewed meanwhile
        assert fc.answered_count() > n + 300 and fc.stats.failovers == 0
        assert not a.ha()["fenced"] and b.role() == "standby"
        # A second one: no quorum, no renewal: a fences itself, and nobody else may lead.
        down = [m.name for m in etcd.members if etcd.running(m.name)][0]
        etcd.kill_member(down)
        wait_until(lambda: a.ha()["fenced"], "a fenced without quorum", 5)
        n = fc.answered_count()
        time.sleep(2.5)
        assert fc.answered_count() == n, "answers left without a quorum"
        assert b.role() == "standby"
        assert not [x for x in list(fc.answers.values()) if x.src == fc.src_of(b)]
    finally:
        fc.stop_ev.set()
        for node in (b, a):
            node.stop()
        etcd.stop()


def test_the_asyncio_client_follows_a_kill_and_a_switchover(udp_pair: tuple[Node, Node],
                                                              svc_etcd: Any) -> None:
    """xdpex_traffic.client.XeClient with both addresses: orders in flight while the primary is
    killed, then while leadership is handed back; each order answered once, none lost."""
    from dataplane_support import SECRET
    from xdpex_traffic.client import XeClient

    a, b = udp_pair
    accepted: dict[int, int] = {}

    def on_message(m: c.Message) -> None:
        if isinstance(m, c.Accepted):
            accepted[m.cl_ord_id] = accepted.get(m.cl_ord_id, 0) + 1

    async def main() -> tuple[XeClient, list[Any]]:
        client = await XeClient.connect([a.server, b.server], 3, SECRET, on_message=on_message,
                                        max_resends=1000)
        reqs: list[Any] = []
        stop = asyncio.Event()

        async def load() -> None:
            k = 0
            while not stop.is_set():
                k += 1
                reqs.append(client.new_order(1, c.Side.BUY, 40 + k % 30, 1))
                await asyncio.sleep(0.002)

        task = asyncio.create_task(load())
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.5)
        e0 = a.ha()["epoch"]
        await loop.run_in_executor(None, a.kill9)
        # b's own epoch while it still follows is a's, and the client has not noticed the kill
        # yet: wait for b to lead a later epoch (else a, restarted too soon, may win again)
        await wait_async(lambda: b.role() == "primary" and client.epoch == b.ha()["epoch"] > e0
                         and client.logged_in, "the client logged in at b after the kill", 30)
        await loop.run_in_executor(None, a.restart_as_standby)
        await asyncio.sleep(0.3)
        e1 = b.ha()["epoch"]
        r = await loop.run_in_executor(None, lambda: subprocess.run(
            [sys.executable, "-m", "xdpex.cli", "ha", "switchover", "--etcd",
             ",".join(svc_etcd.endpoints), "--cluster", a.cluster], capture_output=True,
            text=True, timeout=30, env=agent_env()))
        assert r.returncode == 0, r.stderr
        await wait_async(lambda: a.role() == "primary" and client.epoch == a.ha()["epoch"] > e1
                         and client.logged_in, "the client logged in at a after the switchover", 30)
        await asyncio.sleep(0.3)
        stop.set()
        await task
        answers = await asyncio.wait_for(asyncio.gather(*reqs), 30)
        assert all(isinstance(x, c.Accepted) for x in answers)
        await client.logout()
        return client, answers

    try:
        client, answers = asyncio.run(main())
    except BaseException as e:
        raise AssertionError(f"{type(e).__name__}: {e}\n--- agent a\n{a.log()[-2500:]}\n"
                             f"--- agent b\n{b.log()[-2500:]}") from e
    assert client.stats["failovers"] >= 2
    assert len(answers) > 300
    assert set(accepted) == {x.cl_ord_id for x in answers}
    assert set(accepted.values()) == {1}, "an order answered twice"


async def wait_async(pred: Any, what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await loop.run_in_executor(None, lambda: _safe(pred)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _safe(pred: Any) -> bool:
    try:
        return bool(pred())
    except Exception:  # noqa: BLE001 - a node between lives
        return False


def agent_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{REPO / 'control'}:{REPO / 'proto'}:{REPO / 'traffic'}")


def test_example_trade_finds_the_primary_in_a_list_of_gateways(
        udp_pair: tuple[Node, Node]) -> None:
    from dataplane_support import SECRET

    a, b = udp_pair
    gws = ",".join(f"{h}:{p}" for h, p in (b.server, a.server))  # the standby first
    r = subprocess.run([sys.executable, str(REPO / "examples" / "trade.py"), "--gateway", gws,
                        "--session", f"5:{SECRET.hex()}", "--session", f"6:{SECRET.hex()}"],
                       capture_output=True, text=True, timeout=60, env=agent_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[maker] logged in as session 5" in r.stdout
    assert a.d.ctl({"cmd": "stats"})["queues"][0]["applied"] > 0
    assert b.d.ctl({"cmd": "stats"})["queues"][0]["standby_dropped"] > 0


def test_the_load_generator_follows_a_kill_of_the_primary(udp_pair: tuple[Node, Node]) -> None:
    """build/traffic/xdpex-loadgen with both addresses (the standby first): it finds the
    primary, and when that is killed mid-run moves to the new one; every order answered."""
    import threading

    from dataplane_support import SECRET

    a, b = udp_pair
    lg = REPO / "build" / "traffic" / "xdpex-loadgen"
    gws = ",".join(f"{h}:{p}" for h, p in (b.server, a.server))
    proc = subprocess.Popen([str(lg), "--server", gws, "--session", f"7:{SECRET.hex()}",
                             "--rate", "2000", "--duration", "4", "--drain", "8", "--batch", "4",
                             "--count", "1000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(1.5, a.kill9)
    killer.start()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        killer.cancel()
        proc.kill()
    assert proc.returncode == 0, err
    r = json.loads(out)
    assert b.role() == "primary"
    assert 1 <= r["failovers"] <= 2, r  # one move per kill (a second if it hit the standby)
    assert r["sent"] > 4000 and r["answered"] == r["sent"] and r["lost"] == 0, r
    assert r["unmatched"] == 0, r


def test_persister_and_publisher_follow_the_leader(udp_pair: tuple[Node, Node], svc_pg: Any,
                                                   svc_redis: Any, dp_workdir: Path) -> None:
    """A real `python -m xdpex.persister` (PostgreSQL, and the Redis publisher in the same
    process) with XDPEX_HA_NODES: through a kill of the primary and a rejoin, it moves to the
    new leader's journal at the same record; afterwards the database and the Redis streams equal
    that journal, nothing missing, nothing doubled."""
    import redis
    from control_support import Database
    from sqlalchemy import func, select
    from xdpex.db import make_engine
    from xdpex.models import PersisterPosition
    from xdpex.persister import database_orders, journal_orders

    a, b = udp_pair
    db = Database("postgres", dp_workdir, svc_pg.url)
    prefix = f"ha{secrets.token_hex(4)}"
    env = dict(agent_env(), XDPEX_DATABASE_URL=db.url, XDPEX_DB_SCHEMA=db.schema,
               XDPEX_JOURNAL_DIR=str(a.d.journal), XDPEX_STATE_DIR=str(dp_workdir),
               XDPEX_REDIS_URL=svc_redis.url, XDPEX_REDIS_STREAM_PREFIX=prefix,
               XDPEX_PERSIST_BATCH="200",
               XDPEX_HA_NODES=f"{a.d.journal}={a.d.ctl_path},{b.d.journal}={b.d.ctl_path}")
    plog = dp_workdir / "persister.log"
    with open(plog, "wb") as out:
        per = subprocess.Popen([sys.executable, "-m", "xdpex.persister"], env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    engine = make_engine(db.url, db.schema)
    fc = FollowingClient([a.endpoint, b.endpoint], crossing=True)

    def position() -> int:
        try:
            with engine.connect() as cx:
                return int(cx.scalar(select(func.max(PersisterPosition.journal_seq))) or 0)
        except Exception:  # noqa: BLE001 - the tables may not exist yet
            return 0

    try:
        fc.start()
        wait_until(lambda: position() > 100, "the persister under way", 30)
        kill_and_take_over(fc, a, b)
        n = fc.answered_count()
        wait_until(lambda: fc.answered_count() > n + 300, "orders on the new primary")
        check_exactly_once(fc, b)
        end = b.ha()["queues"][0]["journal_seq"]
        wait_until(lambda: position() == end, f"the persister at the journal's end {end}", 30)
        assert "following the leader's journal" in plog.read_text()
        want = journal_orders(b.d.journal)
        execs = want.executions
        assert len(want.orders) > 500 and len(execs) > 200
        with engine.connect() as cx:
            got = database_orders(cx)
        assert got.doubled_rows == 0
        assert len(got.orders) == len(want.orders) and len(got.executions) == len(execs)
        assert got == want
        r = redis.Redis.from_url(svc_redis.url)

        def streamed() -> list[tuple[int, ...]]:
            return sorted((0, int(f[b"exec_id"]), int(f[b"order_id"]), int(f[b"price"]),
                           int(f[b"qty"]), int(f[b"leaves"]))
                          for _, f in r.xrange(f"{prefix}:q0:executions"))

        wait_until(lambda: len(streamed()) >= len(execs), "every execution in Redis", 30)
        assert streamed() == execs
    finally:
        fc.stop_ev.set()
        per.terminate()
        per.wait(10)
        engine.dispose()
        db.drop()


def test_a_corrupted_record_on_a_standby_is_detected(udp_pair: tuple[Node, Node]) -> None:
    """One byte of a record in the middle of the standby's journal flipped while it was down:
    it refuses to start and names the record's file and offset; with its journal removed it
    catches up from the primary to the same state hash."""
    import shutil
    import struct

    a, b = udp_pair
    fc = FollowingClient([a.endpoint, b.endpoint])
    fc.start()
    try:
        wait_until(lambda: fc.answered_count() > 300, "orders flowing")
        wait_until(lambda: streaming(b), "b caught up")
        b.kill9()
        seg = sorted((b.d.journal / "q0").glob("*.xjl"))[0]
        data = bytearray(seg.read_bytes())
        off, k = 32, 0
        while True:
            ln, _, seq, typ = struct.unpack_from("<IIQB", data, off)
            assert ln, "no inbound record found"
            if typ == 1 and (k := k + 1) == 50:
                data[off + 40 + 20] ^= 0x01  # a NewOrder's price byte; the CRC no longer fits
                break
            off += ln
        seg.write_bytes(bytes(data))
        with pytest.raises(AssertionError, match="exited with"):
            b.d.start()
        log = b.d.run_log()
        assert "CRC" in log and seg.name in log, log
        shutil.rmtree(b.d.journal)
        b.restart_as_standby()
        wait_until(lambda: streaming(b), "b caught up again from record 1")
        fc.quiesce()
        wait_until(lambda: a.d.state_hash() == b.d.state_hash(), "the same state hash")
        check_exactly_once(fc, a)
    finally:
        fc.stop_ev.set()


def test_replication_metrics_from_a_real_pair(udp_pair: tuple[Node, Node]) -> None:
    """xdpex.metrics.ha_metrics on both nodes' `ha` answers, rendered as Prometheus text."""
    from prometheus_client import CollectorRegistry, generate_latest
    from xdpex.metrics import ha_metrics

    a, b = udp_pair

    def text(n: Node) -> str:
        class One:
            def collect(self) -> Any:
                return ha_metrics(n.ha())

        reg = CollectorRegistry()
        reg.register(One())  # type: ignore[arg-type]
        return generate_latest(reg).decode()

    ta, tb = text(a), text(b)
    assert 'xdpex_ha_role{role="primary"} 1.0' in ta and "xdpex_ha_fenced 0.0" in ta
    assert f"xdpex_ha_epoch {float(a.ha()['epoch'])}" in ta
    assert 'xdpex_replication_standbys{queue="0"} 1.0' in ta
    assert 'xdpex_replication_lag_records{queue="0",standby="b"}' in ta
    assert 'xdpex_ha_role{role="standby"} 1.0' in tb and "xdpex_ha_fenced 1.0" in tb
    assert 'xdpex_replication_following{queue="0",state="streaming"} 1.0' in tb


def test_the_lab_runs_one_etcd_member_per_namespace(ha_lab: Any) -> None:
    """`lab up --ha`'s etcd: member a in a's gateway namespace, b in b's, c in the third; each
    listening on its namespace's own address, started with the timings that make a 1 s lease,
    and a 1 s lease asked from a gateway namespace is granted as 1 s."""
    from xdpex_traffic.lab import ETCD_MEMBER_IPS

    etcd = ha_lab.etcd_cluster()
    a, b = ha_lab.sides
    want = {"a": a.gw_ns, "b": b.gw_ns, "c": ha_lab.etcd_ns}
    for m in etcd.members:
        assert etcd.running(m.name) and etcd.healthy(m.name), m
        pid = etcd.pid(m.name)
        ns = subprocess.run(["ip", "netns", "identify", str(pid)], capture_output=True,
                            text=True, timeout=10).stdout.split()
        assert ns == [want[m.name]], (m.name, ns)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--heartbeat-interval") + 1] == b"50"
        assert argv[argv.index(b"--election-timeout") + 1] == b"250"
    listed = etcd._call(etcd.member("c"), "/v3/cluster/member/list")["members"]
    assert sorted((x["name"], x["peerURLs"], x["clientURLs"]) for x in listed) == [
        (n, [f"http://{ip}:2380"], [f"http://{ip}:2379"])
        for n, ip in zip("abc", ETCD_MEMBER_IPS, strict=True)]
    for ns, url in ((a.gw_ns, ha_lab.etcd_endpoints("a")[0]),
                    (b.gw_ns, ha_lab.etcd_endpoints("b")[0])):
        r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "2", "-X",
                            "POST", "-d", '{"TTL": 1}', f"{url}/v3/lease/grant"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["TTL"] == "1", r.stdout


def test_lab_etcd_losing_one_member_changes_nothing_losing_quorum_fences(
        ha_lab: Any, dp_workdir: Path) -> None:
    """AF_XDP pair on the lab, each agent talking to its own namespace's member first. One
    member killed (the raft leader), then the standby's namespace cut off from etcd: the primary
    keeps answering, nobody fails over. Two members killed: the primary stops answering before
    its lease could expire and nothing answers until the quorum is back; then the primary
    answers again and every order is answered exactly once."""
    lab, etcd = ha_lab, ha_lab.etcd_cluster()
    a, b = lab_nodes(lab, dp_workdir, cluster_name())
    fc = FollowingClient([a.endpoint, b.endpoint])

    def nothing_changes(what: str) -> None:
        n = fc.answered_count()
        time.sleep(2.5)  # longer than the lease: it must have been renewed meanwhile
        assert fc.answered_count() > n + 300, f"{what}: answers stopped"
        assert fc.stats.failovers == 0, f"{what}: the client moved {fc.stats.moves}"
        assert not a.ha()["fenced"] and a.role() == "primary" and b.role() == "standby", what

    try:
        start_pair(a, b)
        fc.start()
        wait_until(lambda: fc.answered_count() > 100, "orders flowing")
        victim = etcd.wait_leader()
        etcd.kill_member(victim)
        nothing_changes(f"etcd member {victim} (the raft leader) killed")
        etcd.start_member(victim)
        lab.set_etcd_link("b", False)
        try:
            nothing_changes("b's namespace cut off from etcd")
        finally:
            lab.set_etcd_link("b", True)
        wait_until(lambda: all(etcd.healthy(m) for m in "abc"), "the three members healthy")
        # No quorum: two of three gone. The end of a's grant (its own clock) is watched: it
        # lies `margin` (300 ms) before the earliest moment its etcd lease can expire (the last
        # renewal + TTL). If a's member is the raft leader it renews until etcd's CheckQuorum
        # steps it down (one to two election timeouts), so the fence can come up to ~1.2 s
        # after the loss; no other member can elect a leader (or expire the lease) meanwhile.
        grant_end: list[int] = []
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                with contextlib.suppress(Exception):  # (a connection of its own)
                    t, ha = time.time_ns(), ctl_request(a.d.ctl_path, {"cmd": "ha"}, 1.0)
                    if not ha["fenced"]:
                        grant_end.append(t + int(ha["lease_ms"]) * 1_000_000)
                time.sleep(0.01)

        from xdpex_traffic.wire import ctl_request

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            etcd.kill_member("c")
            etcd.kill_member("b")
            lost_ns = time.time_ns()
            wait_until(lambda: a.ha()["fenced"], "a fenced without quorum", 3.0)
        finally:
            watching.set()
            watcher.join(5)
        from_a = [x.kernel_ns for x in list(fc.answers.values()) if x.src == fc.src_of(a)]
        print(f"quorum lost: a's last answer {(max(from_a) - lost_ns) / 1e6:.0f} ms after, its "
              f"grant ended {(max(grant_end) - lost_ns) / 1e6:.0f} ms after")
        # (+20 ms: lease_ms is whole milliseconds, read after the clock)
        assert max(from_a) < max(grant_end) + 20_000_000, "a answered after its grant"
        n = fc.answered_count()
        time.sleep(2.5)
        assert fc.answered_count() == n, "answers left without a quorum"
        assert b.role() == "standby" and a.ha()["fenced"]
        assert not [x for x in list(fc.answers.values()) if x.src == fc.src_of(b)]
        etcd.start_member("b")
        etcd.start_member("c")
        leader = leader_of(a, b)
        n = fc.answered_count()
        wait_until(lambda: fc.answered_count() > n + 100, "answers again with the quorum back")
        check_exactly_once(fc, leader)
    finally:
        fc.stop_ev.set()
        for node in (b, a):
            node.stop()
        for m in "abc":
            if not etcd.running(m):
                etcd.start_member(m)


def test_the_control_plane_session_resends_what_went_to_the_wrong_node(
        udp_pair: tuple[Node, Node], dp_workdir: Path) -> None:
    """xdpex.orderentry.OrderEntrySession with failover_s (what the control plane runs under
    `up --ha`) on an entry socket link that the test moves as the supervisor would: pointed at
    the standby, which drops what it gets, the session notices the silence, logs in again
    (nobody answers) until the link names the primary again; there it resends what went
    astray with the same seqs: the caller waiting meanwhile gets its acknowledgements, each
    order applied once."""
    import threading

    from dataplane_support import SECRET
    from xdpex.orderentry import OrderEntrySession
    from xdpex_proto.journal import REC_INBOUND, JournalReader, queue_dirs

    a, b = udp_pair
    link = dp_workdir / "e.sock"

    def point(at: Path) -> None:
        tmp = dp_workdir / "e.sock.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(at)
        tmp.replace(link)

    point(a.d.entry_path)
    s = OrderEntrySession(link, dp_workdir / "oe.sock", 4, SECRET, timeout=2.0, failover_s=5.0)
    s.open()
    try:
        s.login()
        buy = (int(c.Side.BUY), int(c.OrdType.LIMIT), int(c.Tif.GTC), 1, 50, 1)
        first = s.submit([buy])
        assert first.status == ["new"]
        point(b.d.entry_path)  # the standby: it answers nothing
        got: list[Any] = []
        t = threading.Thread(target=lambda: got.append(s.submit([buy] * 8)), daemon=True)
        t.start()
        # (whichever comes first: its own silence detection, or the primary's Logout of a
        # session it heard nothing from, sent to the session's own socket)
        wait_until(lambda: s._lost_at is not None, "the session noticed the silence", 5)
        assert "no datagram from the gateway" in s._lost_why or \
            "logged out by the gateway, reason 2" in s._lost_why, s._lost_why
        point(a.d.entry_path)
        t.join(10)
        assert not t.is_alive() and got, "the caller hangs"
        e = got[0]
        assert e.status == ["new"] * 8 and all(e.order_id)
        assert s.failovers == 1 and s.logged_in
    finally:
        s.close()
    applied: dict[int, int] = {}
    for qdir in queue_dirs(a.d.journal).values():
        r = JournalReader(qdir, stall_s=0)
        while recs := r.poll(10000):
            for rec in recs:
                if rec.type == REC_INBOUND and rec.session_id == 4:
                    for i in range(rec.count):
                        m = c.decode_message(rec.payload, i * 64)
                        if isinstance(m, c.NewOrder):
                            applied[m.cl_ord_id] = applied.get(m.cl_ord_id, 0) + 1
        r.close()
    assert set(applied) == {first.cl_ord_id(0), *(e.cl_ord_id(i) for i in range(8))}
    assert set(applied.values()) == {1}
