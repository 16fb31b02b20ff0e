"""TRex STL profile: order + cancel pairs, one stream per session.

Each datagram carries --orders/2 resting limit buys and then a Cancel of each, so every message is
applied and answered (Accepted, Cancelled) and the books end every datagram empty: a steady load
that can run for hours without growing the gateway's state. --orders must be even. Tunables and the
field engine: xdpex_stl.py. Sessions must be logged in first (traffic/trex/run.py, docs/lab.md).
"""

from xdpex_stl import XdpexProfile


class XdpexOrderCancel(XdpexProfile):
    KIND = "order_cancel"
    DEFAULTS = {"rate": 10_000, "orders": 16}


def register() -> XdpexOrderCancel:
    return XdpexOrderCancel()
