"""`xdpex down`: stop the supervised gateway (see xdpex.lifecycle)."""

from __future__ import annotations

import argparse

from . import lifecycle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lifecycle.add_common(parser)


def run(args: argparse.Namespace) -> int:
    return lifecycle.down(args)
