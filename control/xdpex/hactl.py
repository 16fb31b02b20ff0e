"""`xdpex ha status|switchover`: the HA cluster as etcd sees it (leader, epoch, nodes and their
journaled seqs), and a planned handover of leadership to a standby (docs/ha.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .etcdgw import Etcd, EtcdError
from .ha import keys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["status", "switchover"])
    p.add_argument("--etcd", required=True, help="etcd endpoints, comma-separated http://H:P")
    p.add_argument("--cluster", default="xdpex")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="switchover: seconds to wait for the new leader (10)")


def status(etcd: Etcd, cluster: str) -> dict[str, object]:
    leader_key, nodes, _ = keys(cluster)
    kv = etcd.get(leader_key)
    return {
        "cluster": cluster,
        "leader": kv.json().get("name") if kv else None,
        "epoch": kv.create_revision if kv else None,
        "nodes": sorted((n.json() for n in etcd.get_prefix(nodes)),
                        key=lambda n: str(n.get("name"))),
    }


def switchover(etcd: Etcd, cluster: str, timeout: float) -> dict[str, object]:
    """Ask the leader to hand over; returns the new leader and epoch once elected."""
    leader_key, _, switch_key = keys(cluster)
    old = etcd.get(leader_key)
    if old is None:
        raise EtcdError(f"cluster {cluster}: no leader to hand over from")
    frm = old.json().get("name")
    etcd.put(switch_key, json.dumps({"from": frm, "timeout": min(timeout / 2, 5.0)}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kv = etcd.get(leader_key)
        if kv is not None and kv.create_revision != old.create_revision:
            return {"from": frm, "to": kv.json().get("name"), "epoch": kv.create_revision,
                    "old_epoch": old.create_revision}
        time.sleep(0.02)
    etcd.delete(switch_key)
    raise EtcdError(f"switchover: no new leader within {timeout:g} s (still {frm})")


def run(args: argparse.Namespace) -> int:
    etcd = Etcd(args.etcd.split(","), timeout=1.0)
    try:
        out = (status(etcd, args.cluster) if args.action == "status"
               else switchover(etcd, args.cluster, args.timeout))
    except EtcdError as e:
        print(f"xdpex ha {args.action}: {e}", file=sys.stderr)
        return 1
    finally:
        etcd.close()
    print(json.dumps(out, indent=2))
    return 0
