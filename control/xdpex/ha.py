"""`xdpex ha-agent`: one per xdpexd started with `--ha`; elects the primary through etcd and keeps
its xdpexd fenced unless it holds the lease (docs/ha.md "Election").

- Every node publishes `/xdpex/<cluster>/nodes/<name>` (its role, journaled seq, replication
  and gateway addresses) under a short lease of its own, so a dead node's entry goes away.
- The leader key `/xdpex/<cluster>/leader` lives under a lease of `--ttl` seconds. Its create
  revision is the epoch: the winner promotes its xdpexd with it (journaled there, carried by
  LoginAccepted) and then renews every TTL/4; after each renewal it grants xdpexd
  `TTL - margin - (time since the renewal was sent)` on the control socket. xdpexd fences itself
  on its own monotonic clock when that runs out, so a primary cut off from etcd stops answering
  before its etcd lease can expire and anyone else can win.
- A standby follows the leader's replication address. When the key is gone it campaigns, with a
  transaction that creates the key only if absent; a standby with less journal than another live
  standby waits `--behind-wait` first, so the one with the most records normally wins. It
  campaigns only after its journal stopped growing (everything it received is applied).
- Planned switchover: `xdpex ha switchover` writes `/xdpex/<cluster>/switchover`; the leader's
  agent has xdpexd log every session out (Logout reason SWITCHOVER) and take nothing more in,
  waits until a standby has acknowledged every record, fences it (lease 0) and revokes the etcd
  lease: a standby takes over at once, without waiting for a TTL.
- A leader whose lease is gone (expired while it was cut off) fences xdpexd and exits with
  status 3: xdpexd, now an old primary, is restarted as a standby (it cuts any tail nobody
  acknowledged and follows the new primary).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .dataplane import ControlClient, DataplaneRejected
from .errors import Unavailable
from .etcdgw import Etcd, EtcdError, KeyValue

EXIT_LOST = 3  # the lease went while this node led: restart xdpexd as a standby


def keys(cluster: str) -> tuple[str, str, str]:
    base = f"/xdpex/{cluster}"
    return f"{base}/leader", f"{base}/nodes/", f"{base}/switchover"


def log(name: str, msg: str) -> None:
    print(f"{time.time():.6f} ha-agent {name}: {msg}", flush=True)


class Agent:
    def __init__(self, etcd: Etcd, ctl: ControlClient, *, cluster: str, name: str | None,
                 repl: str | None, gateway: str | None, ttl: int, margin_ms: int,
                 behind_wait: float, tick: float = 0.02):
        self.etcd, self.ctl = etcd, ctl
        self.cluster = cluster
        self.leader_key, self.nodes_prefix, self.switch_key = keys(cluster)
        ha = self.ctl.request("ha")
        if not ha.get("ha"):
            raise SystemExit("ha-agent: this xdpexd runs without --ha (start it with --ha)")
        self.name = name or str(ha["name"])
        self.repl = repl or ha.get("repl_listen")
        if not self.repl:
            raise SystemExit("ha-agent: xdpexd has no --repl-listen and --repl was not given")
        self.gateway = gateway
        self.ttl, self.margin_ms, self.behind_wait, self.tick = ttl, margin_ms, behind_wait, tick
        self.role = str(ha["role"])
        self.node_lease = 0
        self.node_renewed = 0.0
        self.node_published: dict[str, Any] = {}
        self.node_put = 0.0
        self.lease = 0  # the leader lease, while this node leads
        self.lease_ttl = ttl
        self.last_renew = 0.0
        self.epoch = int(ha.get("epoch") or 0)
        self.key_gone_at: float | None = None
        self.etcd_down_logged = False

    # -- xdpexd ------------------------------------------------------------------------------
    def ha(self) -> dict[str, Any]:
        return self.ctl.request("ha")

    @staticmethod
    def journal_seq(ha: dict[str, Any]) -> int:
        return sum(int(q.get("journal_seq", 0)) for q in ha.get("queues", []))

    def grant_dataplane(self, sent_at: float, ttl_s: int) -> int:
        ms = int(ttl_s * 1000 - self.margin_ms - (time.monotonic() - sent_at) * 1000)
        ms = max(0, min(ms, 60000))
        self.ctl.request("lease", ttl_ms=ms)
        return ms

    # -- etcd bookkeeping --------------------------------------------------------------------
    def publish(self, ha: dict[str, Any]) -> None:
        now = time.monotonic()
        if not self.node_lease:
            self.node_lease, _ = self.etcd.grant(2)
            self.node_renewed = now
            self.node_published = {}
        elif now - self.node_renewed > 0.5:
            if not self.etcd.keepalive(self.node_lease):
                self.node_lease = 0
                return self.publish(ha)
            self.node_renewed = now
        info = {"name": self.name, "role": self.role, "seq": self.journal_seq(ha),
                "repl": self.repl, "gateway": self.gateway,
                "diverged": any(q.get("following", {}).get("state") == "diverged"
                                for q in ha.get("queues", []))}
        # A new seq alone is published at most every 0.5 s (each put is an fsync in etcd);
        # anything else at once.
        same_but_seq = {**info, "seq": self.node_published.get("seq")} == self.node_published
        if info != self.node_published and (not same_but_seq or now - self.node_put >= 0.5):
            self.etcd.put(self.nodes_prefix + self.name, json.dumps(info), self.node_lease)
            self.node_published = info
            self.node_put = now

    def others(self) -> list[dict[str, Any]]:
        return [kv.json() for kv in self.etcd.get_prefix(self.nodes_prefix)
                if kv.key != self.nodes_prefix + self.name]

    # -- standby -----------------------------------------------------------------------------
    def standby_turn(self) -> None:
        ha = self.ha()
        self.publish(ha)
        leader = self.etcd.get(self.leader_key)
        if leader is not None:
            self.key_gone_at = None
            self.follow(leader, ha)
            return
        now = time.monotonic()
        if self.key_gone_at is None:
            self.key_gone_at = now
            log(self.name, "no leader: considering a campaign")
        if self.node_published.get("diverged"):
            return  # a standby whose state differs never leads
        mine = self.journal_seq(ha)
        ahead = [o for o in self.others() if o.get("role") == "standby" and not o.get("diverged")
                 and int(o.get("seq", 0)) > mine]
        if ahead and now - self.key_gone_at < self.behind_wait:
            return
        self.campaign(mine)

    def follow(self, leader: KeyValue, ha: dict[str, Any]) -> None:
        info = leader.json()
        if info.get("name") == self.name:
            # Our own key from before a restart: this xdpexd is a standby now, so that lease
            # is no one's; revoke it and let the election run.
            log(self.name, f"the leader key is a previous run's (lease {leader.lease}): revoking")
            self.etcd.revoke(leader.lease)
            return
        repl = info.get("repl")
        queues = ha.get("queues", [])
        if repl and queues and queues[0].get("following", {}).get("from") != repl:
            log(self.name, f"following {info.get('name')} at {repl} (epoch "
                           f"{leader.create_revision})")
            self.ctl.request("follow", **{"from": repl})

    def settled(self) -> int:
        """Wait (at most 0.3 s) until the journal stops growing: all received is applied."""
        seq = self.journal_seq(self.ha())
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.journal_seq(self.ha())
            if now == seq:
                break
            seq = now
        return seq

    def campaign(self, seq_before: int) -> None:
        seq = self.settled()
        sent = time.monotonic()
        lease, ttl = self.etcd.grant(self.ttl)
        value = json.dumps({"name": self.name, "repl": self.repl, "gateway": self.gateway,
                            "seq": seq})
        rev = self.etcd.create(self.leader_key, value, lease)
        if rev is None:
            self.etcd.revoke(lease)
            return
        try:
            r = self.ctl.request("promote", epoch=rev)
        except DataplaneRejected as e:
            log(self.name, f"won epoch {rev} but xdpexd refused to promote: {e}; stepping back")
            self.etcd.revoke(lease)
            raise SystemExit(1) from e
        self.lease, self.lease_ttl, self.epoch, self.role = lease, ttl, rev, "primary"
        ms = self.grant_dataplane(sent, ttl)
        self.last_renew = sent
        waited = time.monotonic() - (self.key_gone_at or sent)
        log(self.name, f"leader: epoch {rev}, journal seq {seq}, "
                       f"{r.get('sessions_logged_out', 0)} sessions to log in again; lease "
                       f"{ms} ms; {waited * 1000:.0f} ms after the key went")
        self.node_published = {}

    # -- leader ------------------------------------------------------------------------------
    def leader_turn(self) -> int | None:
        now = time.monotonic()
        if now - self.last_renew >= self.lease_ttl / 4:
            sent = time.monotonic()
            try:
                left = self.etcd.keepalive(self.lease)
            except EtcdError as e:
                if not self.etcd_down_logged:
                    log(self.name, f"cannot renew the lease ({e}); xdpexd fences itself when "
                                   "its grant runs out")
                    self.etcd_down_logged = True
                return None
            if left <= 0:
                self.ctl.request("lease", ttl_ms=0)
                log(self.name, f"lost the lease of epoch {self.epoch}: fenced; restart xdpexd "
                               "as a standby")
                return EXIT_LOST
            if self.etcd_down_logged:
                log(self.name, "renewing again: the lease was still ours")
                self.etcd_down_logged = False
            self.last_renew = sent
            self.lease_ttl = left
            self.grant_dataplane(sent, left)
        ha = self.ha()
        self.publish(ha)
        sw = self.etcd.get(self.switch_key)
        if sw is not None and sw.json().get("from") in (None, self.name):
            return self.switchover(sw.json().get("timeout", 5.0))
        return None

    def switchover(self, timeout: float) -> int:
        log(self.name, "switchover: sessions told to move, draining")
        self.ctl.request("switchover")
        deadline = time.monotonic() + float(timeout)
        while time.monotonic() < deadline:
            self.leader_turn_renew_only()
            qs = self.ha().get("queues", [])
            if all(q.get("held_datagrams", 0) == 0 and any(
                    s.get("acked_seq") == q.get("journal_seq") for s in q.get("standbys", []))
                   for q in qs):
                break
            time.sleep(0.01)
        else:
            log(self.name, "switchover: no standby acknowledged everything in time; handing "
                           "over anyway (what was not acknowledged was never answered)")
        self.ctl.request("lease", ttl_ms=0)
        self.etcd.delete(self.switch_key)
        self.etcd.revoke(self.lease)
        log(self.name, f"switchover: fenced, lease of epoch {self.epoch} revoked; restart "
                       "xdpexd as a standby")
        return 0

    def leader_turn_renew_only(self) -> None:
        if time.monotonic() - self.last_renew >= self.lease_ttl / 4:
            sent = time.monotonic()
            try:
                if self.etcd.keepalive(self.lease) > 0:
                    self.last_renew = sent
                    self.grant_dataplane(sent, self.lease_ttl)
            except EtcdError:
                pass

    # -- the loop ----------------------------------------------------------------------------
    def run(self, until: float | None = None) -> int:
        log(self.name, f"started: cluster {self.cluster}, role {self.role}, ttl {self.ttl} s, "
                       f"margin {self.margin_ms} ms")
        if self.role == "primary":
            # xdpexd is a primary already (an agent restarted under it): without our lease it
            # stays fenced; it cannot go back to standby by itself.
            log(self.name, "xdpexd is already a primary without a lease: fenced; restart it "
                           "as a standby")
            self.ctl.request("lease", ttl_ms=0)
            return EXIT_LOST
        while until is None or time.monotonic() < until:
            try:
                if self.role == "primary":
                    rc = self.leader_turn()
                    if rc is not None:
                        return rc
                else:
                    self.standby_turn()
                if self.etcd_down_logged and self.role != "primary":
                    log(self.name, "etcd answers again")
                    self.etcd_down_logged = False
            except EtcdError as e:
                if not self.etcd_down_logged:
                    log(self.name, f"cannot renew the lease ({e}); xdpexd fences itself when "
                                   "its grant runs out" if self.role == "primary"
                        else f"etcd: {e}")
                    self.etcd_down_logged = True
            except Unavailable as e:
                log(self.name, f"xdpexd: {e}; exiting")
                if self.lease:
                    try:
                        self.etcd.revoke(self.lease)
                    except EtcdError:
                        pass
                return 1
            time.sleep(self.tick)
        return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--etcd", required=True, help="etcd endpoints, comma-separated http://H:P")
    p.add_argument("--cluster", default="xdpex", help="name of the gateway pair (etcd prefix)")
    p.add_argument("--ctl", required=True, help="xdpexd's control socket")
    p.add_argument("--name", help="this node's name (default: xdpexd's --name)")
    p.add_argument("--repl", help="xdpexd's --repl-listen A.B.C.D:PORT (default: asked of it)")
    p.add_argument("--gateway", help="the clients' address of this node, HOST:PORT (published)")
    p.add_argument("--ttl", type=int, default=1, help="leader lease TTL in seconds (1)")
    p.add_argument("--margin-ms", type=int, default=300,
                   help="xdpexd's grant ends this long before the etcd lease can (300)")
    p.add_argument("--behind-wait", type=float, default=0.3,
                   help="a standby behind another waits this long before it campaigns (0.3 s)")


def run(args: argparse.Namespace) -> int:
    if args.ttl < 1 or not 0 <= args.margin_ms < args.ttl * 1000:
        print("ha-agent: --ttl must be >= 1 s and --margin-ms in 0..ttl", file=sys.stderr)
        return 2
    etcd = Etcd(args.etcd.split(","))
    ctl = ControlClient(args.ctl, timeout=1.0)
    try:
        agent = Agent(etcd, ctl, cluster=args.cluster, name=args.name, repl=args.repl,
                      gateway=args.gateway, ttl=args.ttl, margin_ms=args.margin_ms,
                      behind_wait=args.behind_wait)
    except Unavailable as e:
        print(f"ha-agent: {e}", file=sys.stderr)
        return 1
    try:
        return agent.run()
    except KeyboardInterrupt:
        return 0
    finally:
        etcd.close()
