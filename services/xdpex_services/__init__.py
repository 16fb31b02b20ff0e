"""Private PostgreSQL, Redis and etcd instances for the tests and the benchmarks.

Each instance is started from the real binaries (PostgreSQL's `initdb` and `pg_ctl`,
`redis-server`, `etcd`) in a directory of its own under a root (`build/services` of the checkout,
or `$XDPEX_SERVICES_DIR`, or the temp directory), listens only on loopback ports the kernel said
were free, and is ready when the service itself answers (`pg_ctl -w` and a connection, a Redis
PING, etcd's /health), never after a sleep. PostgreSQL refuses to run as root: as root its
cluster belongs to, and runs as, the `postgres` user; its only authentication is trust on
127.0.0.1 (no unix socket at all).

Crashes: an instance directory holds an `owner` file (pid and start time of the process that
started it) and the service's own pid file (`data/postmaster.pid`, `redis.pid`,
`<member>.pid`). Every start first looks at the root for instance directories whose owner is
gone, stops the processes their pid files name and removes them; a pid is only signalled when its
working directory lies inside that instance directory, so a reused pid is never hit. Starting an
instance again after its process was killed (`kill()`, kill -9) finds its pid file the same way,
kills what is left of the process group and starts afresh. Failures raise `ServiceError` naming
the binary and the tail of its log.

    with PostgresInstance() as pg:   # pg.url == "postgresql://postgres@127.0.0.1:<port>/test"
        ...
    with EtcdCluster.single() as etcd:   # etcd.endpoints == ["http://127.0.0.1:<port>"]
        ...
"""

from __future__ import annotations

from .etcd import EtcdCluster, EtcdMember
from .postgres import PostgresInstance
from .procs import ServiceError, free_port, kill_by_pidfile, log_tail, reap_stale, services_root
from .redis import RedisInstance

__all__ = [
    "EtcdCluster",
    "EtcdMember",
    "PostgresInstance",
    "RedisInstance",
    "ServiceError",
    "free_port",
    "kill_by_pidfile",
    "log_tail",
    "reap_stale",
    "services_root",
]
