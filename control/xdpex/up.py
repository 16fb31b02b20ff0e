"""`xdpex up`: start the supervised gateway: dataplane, control plane (REST :8080, gRPC
:50051), persister (see xdpex.lifecycle)."""

from __future__ import annotations

import argparse

from . import lifecycle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lifecycle.add_up_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return lifecycle.up(args)
