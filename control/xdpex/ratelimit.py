"""Per-token request rate limit of the API (REST and gRPC): a token bucket per API token.

Each token may send `rate` requests a second with bursts of `burst` (its own, stored with the
token, or XDPEX_API_TOKEN_RATE / XDPEX_API_TOKEN_BURST; rate 0 = unlimited). A request beyond it
is refused before any work is done: HTTP 429 with `Retry-After` (whole seconds until a request
fits) and a reason naming the token and its rate, gRPC RESOURCE_EXHAUSTED with the same reason.
Buckets are kept per stored token (their number is bounded by the tokens table), in this
process's memory: several control-plane processes each apply the limit. A batch request counts
once; a gRPC stream counts when it opens.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .auth import Principal
from .errors import ServiceError


class RateLimited(ServiceError):
    """The token sent more requests than its rate allows (HTTP 429, RESOURCE_EXHAUSTED)."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class TokenRateLimiter:
    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._lock = threading.Lock()
        self._buckets: dict[int, list[float]] = {}  # token id -> [tokens left, last refill]
        self.refused: dict[str, int] = {}  # token name -> requests refused (for /metrics)

    def check(self, who: Principal) -> None:
        """Take one request from `who`'s bucket or raise RateLimited."""
        if not who.token_id:
            return  # the control plane's own calls
        rate = float(who.rate if who.rate is not None else self.rate)
        if rate <= 0:
            return
        burst = float(who.burst if who.burst else (self.burst or max(1.0, rate)))
        now = time.monotonic()
        with self._lock:
            b = self._buckets.get(who.token_id)
            if b is None:
                b = self._buckets[who.token_id] = [burst, now]
            else:
                b[0] = min(burst, b[0] + (now - b[1]) * rate)
                b[1] = now
            if b[0] >= 1.0:
                b[0] -= 1.0
                return
            wait = (1.0 - b[0]) / rate
            self.refused[who.name] = self.refused.get(who.name, 0) + 1
        raise RateLimited(
            f"rate limit: token {who.token_id} ({who.name}) may send {rate:g} requests/s "
            f"(burst {burst:g}); retry in {wait:.3f} s",
            wait,
        )


class RateLimitCollector(Collector):
    def __init__(self, lim: TokenRateLimiter):
        self.lim = lim

    def collect(self) -> Iterator[Metric]:
        c = CounterMetricFamily(
            "xdpex_api_rate_limited",
            "API requests refused with 429 / RESOURCE_EXHAUSTED, by token name",
            labels=["token"],
        )
        for name, n in sorted(self.lim.refused.items()):
            c.add_metric([name], float(n))
        yield c


class TokenExpiryCollector(Collector):
    """When each live token that has an expiry expires (a scrape reads the tokens table), so an
    alert can ask for rotation ahead of it."""

    def __init__(self, cp: Any):
        self.cp = cp

    def collect(self) -> Iterator[Metric]:
        from sqlalchemy import select

        from .auth import aware
        from .models import ApiToken, utcnow

        g = GaugeMetricFamily(
            "xdpex_api_token_expiry_timestamp_seconds",
            "when a live API token with an expiry expires (unix time)",
            labels=["token_id", "name", "role"],
        )
        try:
            with self.cp.db() as db:
                rows = list(
                    db.execute(
                        select(
                            ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.expires_at
                        ).where(ApiToken.revoked_at.is_(None), ApiToken.expires_at.is_not(None))
                    )
                )
        except Exception:  # noqa: BLE001 - database down: no figures this scrape
            rows = []
        now = utcnow()
        for tid, name, role, exp in rows:
            exp = aware(exp)
            if exp is not None and exp > now:
                g.add_metric([str(tid), name, role], exp.timestamp())
        yield g
