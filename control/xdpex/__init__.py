"""xdpex control plane and operator command line."""

__version__ = "0.1.0"
