"""A small etcd v3 client over etcd's JSON gateway (POST /v3/...; etcd 3.4 and 3.5, Debian's
etcd-server): the few calls the HA agent needs (leases, a create-if-absent transaction, range,
put, delete). One persistent HTTP connection per endpoint; a call that fails on one endpoint is
tried on the next, so losing one member of three changes nothing. Every call has a short
timeout: the agent's lease is about a second and a renewal that cannot answer in time is as
good as failed.
"""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class EtcdError(Exception):
    """No endpoint answered, or one answered with an error."""


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str) -> str:
    return base64.b64decode(s).decode()


def _prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with `prefix` (its last byte + 1)."""
    b = bytearray(prefix.encode())
    b[-1] += 1
    return base64.b64encode(bytes(b)).decode()


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    create_revision: int
    mod_revision: int
    lease: int

    def json(self) -> dict[str, Any]:
        try:
            out = json.loads(self.value)
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}


class Etcd:
    def __init__(self, endpoints: list[str], timeout: float = 0.3):
        if not endpoints:
            raise ValueError("etcd: at least one endpoint (http://HOST:PORT)")
        self.endpoints = []
        for ep in endpoints:
            u = urlsplit(ep if "//" in ep else f"http://{ep}")
            if u.scheme != "http" or not u.hostname or not u.port:
                raise ValueError(f"etcd endpoint {ep!r}: expected http://HOST:PORT")
            self.endpoints.append((u.hostname, u.port))
        self.timeout = timeout
        self._conns: dict[int, http.client.HTTPConnection] = {}
        self._first = 0  # the endpoint that answered last: asked first next time

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    def _one(self, i: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = self._conns.get(i)
        if conn is None:
            host, port = self.endpoints[i]
            conn = self._conns[i] = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._conns.pop(i, None)
            raise
        # A streaming call (keepalive) answers {"result": {...}} on a line of its own.
        out = json.loads(data.splitlines()[0] if data else b"{}")
        if r.status != 200 or "error" in out:
            raise EtcdError(f"etcd {path}: HTTP {r.status}: {out.get('error') or out}")
        res = out.get("result", out)
        if not isinstance(res, dict):
            raise EtcdError(f"etcd {path}: unexpected answer {out!r}")
        return res

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        n = len(self.endpoints)
        for k in range(n):
            i = (self._first + k) % n
            try:
                out = self._one(i, path, body)
                self._first = i
                return out
            except (OSError, http.client.HTTPException, ValueError, EtcdError) as e:
                host, port = self.endpoints[i]
                errors.append(f"{host}:{port}: {e or type(e).__name__}")
        raise EtcdError(f"etcd {path}: " + "; ".join(errors))

    # -- leases --------------------------------------------------------------------------------
    def grant(self, ttl_s: int) -> tuple[int, int]:
        """A new lease; (its id, the TTL etcd granted in seconds)."""
        r = self.call("/v3/lease/grant", {"TTL": ttl_s})
        return int(r["ID"]), int(r.get("TTL", ttl_s))

    def keepalive(self, lease: int) -> int:
        """Renew; the TTL it runs for again (seconds), 0 when the lease is gone."""
        r = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(r.get("TTL", 0))

    def revoke(self, lease: int) -> None:
        try:
            self.call("/v3/lease/revoke", {"ID": str(lease)})
        except EtcdError as e:
            if "not found" not in str(e):
                raise

    # -- keys ----------------------------------------------------------------------------------
    @staticmethod
    def _kv(d: dict[str, Any]) -> KeyValue:
        return KeyValue(_unb64(d["key"]), _unb64(d.get("value", "")),
                        int(d.get("create_revision", 0)), int(d.get("mod_revision", 0)),
                        int(d.get("lease", 0)))

    def get(self, key: str) -> KeyValue | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return self._kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str) -> list[KeyValue]:
        r = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return [self._kv(d) for d in r.get("kvs", [])]

    def put(self, key: str, value: str, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": _b64(key)})

    def create(self, key: str, value: str, lease: int) -> int | None:
        """Put `key` only if it does not exist; its create revision, or None if it existed."""
        r = self.call("/v3/kv/txn", {
            "compare": [{"key": _b64(key), "target": "CREATE", "create_revision": "0"}],
            "success": [{"requestPut": {"key": _b64(key), "value": _b64(value),
                                        "lease": str(lease)}}],
        })
        if not r.get("succeeded"):
            return None
        return int(r["header"]["revision"])
