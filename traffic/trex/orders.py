"""TRex STL profile: NewOrder flood, --orders limit orders a datagram, one stream per session.

Sides alternate at one price, so every second order crosses the one before it: the gateway answers
with Accepted and Fills and the books stay shallow. Tunables and the field engine: xdpex_stl.py.
Sessions must be logged in first (traffic/trex/run.py does it, see docs/lab.md).

    .venv/bin/python traffic/trex/run.py --profile traffic/trex/orders.py --rate 100000 \\
        --orders 16 --sessions 4 --symbols 8 --duration 10 --server 127.0.0.1
"""

from xdpex_stl import XdpexProfile


class XdpexOrders(XdpexProfile):
    KIND = "orders"
    DEFAULTS = {"rate": 10_000, "orders": 16}


def register() -> XdpexOrders:
    return XdpexOrders()
