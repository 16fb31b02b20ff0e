"""Errors of the control plane's service layer and how each maps to HTTP and gRPC.

Service functions raise these; the REST layer (xdpex.api) and the gRPC layer (xdpex.grpc_api)
translate them with the tables below, so the same failure gets the same meaning on both.
"""

from __future__ import annotations

from .auth import AuthError, PermissionDenied


class ServiceError(Exception):
    """Base of the errors below; `str(e)` is the message shown to the caller."""

    http_status = 500
    grpc_code = "INTERNAL"


class InvalidArgument(ServiceError):
    """A field has a value the operation cannot accept (HTTP 422, INVALID_ARGUMENT)."""

    http_status = 422
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ServiceError):
    http_status = 404
    grpc_code = "NOT_FOUND"


class Conflict(ServiceError):
    """The request is valid but conflicts with current state (HTTP 409, FAILED_PRECONDITION)."""

    http_status = 409
    grpc_code = "FAILED_PRECONDITION"


class Unavailable(ServiceError):
    """The dataplane, the database or the XDP maps cannot be reached (HTTP 503, UNAVAILABLE)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class DeadlineExceeded(ServiceError):
    """The dataplane took the request but did not answer in time (HTTP 504)."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


def http_status_of(exc: Exception) -> int:
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, ServiceError):
        return exc.http_status
    return 500


def grpc_code_of(exc: Exception) -> str:
    if isinstance(exc, AuthError):
        return "UNAUTHENTICATED"
    if isinstance(exc, PermissionDenied):
        return "PERMISSION_DENIED"
    if isinstance(exc, ServiceError):
        return exc.grpc_code
    return "INTERNAL"
