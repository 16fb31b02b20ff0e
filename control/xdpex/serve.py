"""`python -m xdpex.serve`: run the control plane (REST via uvicorn, gRPC in the same process)
with settings from XDPEX_* and the env file. `xdpex up` runs it under its supervisor."""

from __future__ import annotations

import logging
import sys

import uvicorn

from .api import create_app
from .config import load_settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="xdpex-control: %(name)s: %(message)s")
    s = load_settings()
    uvicorn.run(
        create_app(s), host=s.http_host, port=s.http_port, log_level="warning", access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
