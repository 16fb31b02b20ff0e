"""FastAPI operator API of the xdpex control plane (`create_app`)."""

from .main import create_app

__all__ = ["create_app"]
