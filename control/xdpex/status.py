"""`xdpex status`: the supervised gateway's processes, readiness and dataplane mode
(see xdpex.lifecycle)."""

from __future__ import annotations

import argparse

from . import lifecycle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lifecycle.add_common(parser)


def run(args: argparse.Namespace) -> int:
    return lifecycle.status(args)
