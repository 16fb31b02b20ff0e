"""`python -m xdpex.serve`: run the control plane (REST via uvicorn, gRPC in the same process)
with settings from XDPEX_* and the env file. `xdpex up` runs it under its supervisor. With
XDPEX_TLS_CERTFILE and XDPEX_TLS_KEYFILE both are served over TLS (docs/operations.md).

One process (one event loop) on purpose: it holds the control plane's order-entry session and
the gRPC server; REST requests never block the loop (database work and token lookups go to
worker threads; the loop reads the order-entry session's socket itself while it runs)."""

from __future__ import annotations

import logging
import ssl
import sys
from typing import Any

import uvicorn

from .api import create_app
from .config import load_settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="xdpex-control: %(name)s: %(message)s")
    s = load_settings()
    try:
        s.check_tls()
    except ValueError as e:
        print(f"xdpex-control: error: {e}", file=sys.stderr)
        return 2
    tls: dict[str, Any] = {}
    if s.tls_certfile is not None:  # HTTPS (and gRPC over TLS, xdpex.grpc_api.serve)
        tls = {"ssl_certfile": str(s.tls_certfile), "ssl_keyfile": str(s.tls_keyfile)}
        if s.tls_client_ca is not None:
            tls |= {"ssl_ca_certs": str(s.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    uvicorn.run(
        create_app(s),
        host=s.http_host,
        port=s.http_port,
        **tls,
        loop="uvloop",  # C event loop and HTTP parser: about twice the requests per CPU second
        http="httptools",  # of asyncio + h11 on this path
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
