"""`python -m xdpex_services`: a private PostgreSQL, Redis or etcd by hand, for trying `xdpex up
--database-url/--redis-url` or a failover experiment without touching the host's own servers.

    python -m xdpex_services postgres [--db NAME] [--durable]
    python -m xdpex_services redis [--persist]
    python -m xdpex_services etcd [--members N]     (N members on 127.0.0.1, 127.0.0.2, ...)
    python -m xdpex_services reap                   (stop what crashed runs left behind)

Prints the URL (etcd: the comma-separated endpoints) on the first line of its output once the
service answers, then runs until SIGINT or SIGTERM and stops it, removing its directory.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import EtcdCluster, EtcdMember, PostgresInstance, RedisInstance, ServiceError, reap_stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m xdpex_services", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("postgres", help="a PostgreSQL cluster (initdb + pg_ctl)")
    p.add_argument("--db", default="xdpex", help="database to create (default xdpex)")
    p.add_argument("--durable", action="store_true", help="keep fsync and synchronous_commit on")
    r = sub.add_parser("redis", help="a redis-server")
    r.add_argument("--persist", action="store_true", help="append-only file")
    e = sub.add_parser("etcd", help="an etcd cluster")
    e.add_argument("--members", type=int, default=1, help="members, on 127.0.0.1..N (1..7)")
    sub.add_parser("reap", help="stop and remove instances whose owner process is gone")
    a = ap.parse_args(argv)
    if a.what == "reap":
        for d in reap_stale():
            print(f"reaped {d}")
        return 0
    if a.what == "etcd" and not 1 <= a.members <= 7:
        ap.error(f"--members: {a.members} is outside 1..7")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    svc: PostgresInstance | RedisInstance | EtcdCluster
    if a.what == "postgres":
        svc = PostgresInstance(dbname=a.db, durable=a.durable)
    elif a.what == "redis":
        svc = RedisInstance(persist=a.persist)
    else:
        svc = EtcdCluster([EtcdMember(f"m{i}", f"127.0.0.{i + 1}") for i in range(a.members)])
    try:
        svc.start()
        url = ",".join(svc.endpoints) if isinstance(svc, EtcdCluster) else svc.url
        print(url, flush=True)
        print(f"in {svc.dir}; SIGINT or SIGTERM stops it", file=sys.stderr, flush=True)
        stop.wait()
    except ServiceError as err:
        print(f"xdpex_services: {err}", file=sys.stderr)
        return 1
    finally:
        svc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
