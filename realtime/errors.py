"""Typed client errors with stable codes, and the one mapper to an ack or an `error` event.

DESIGN.md decision 9: a client event that asked for an ack gets {"ok": false, "error": {code,
message}}; one that did not gets the event `error` {event, code, message}.
"""

from __future__ import annotations

from typing import Any


class RealtimeError(Exception):
    code = "internal_error"
    default_message = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        body = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidPayload(RealtimeError):
    code = "invalid_payload"
    default_message = "Invalid payload"


class UnknownEvent(RealtimeError):
    code = "unknown_event"
    default_message = "Unknown event"


class InvalidRoom(RealtimeError):
    code = "invalid_room"
    default_message = "Invalid room name"


class AuthRequired(RealtimeError):
    code = "auth_required"
    default_message = "Authentication required"


class Forbidden(RealtimeError):
    code = "forbidden"
    default_message = "Not allowed"


class NotFound(RealtimeError):
    code = "not_found"
    default_message = "Not found"


class ServiceUnavailable(RealtimeError):
    """The database or Redis is unreachable (a restart, a failover): REST's 503, for sockets."""
    code = "service_unavailable"
    default_message = "a store this needs is unavailable: try again shortly"


class RateLimited(RealtimeError):
    code = "rate_limited"
    default_message = "Too many requests"

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"too many requests: try again in {retry_after_ms // 1000 + 1} s")
        self.retry_after_ms = retry_after_ms

    def body(self) -> dict[str, Any]:
        return {**super().body(), "retryAfter": self.retry_after_ms}


def ack_error(error: RealtimeError) -> dict[str, Any]:
    return {"ok": False, "error": error.body()}


def error_event(event: str, error: RealtimeError) -> dict[str, Any]:
    return {"event": event, **error.body()}
