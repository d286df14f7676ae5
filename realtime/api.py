"""The small API domain apps use: handlers, errors, payload validation and emit."""

from .consumers import EventConsumer, EventRequest, now_ms, validate
from .emit import emit, emit_sync
from .metrics import occupied_rooms
from .permissions import forget_room_owner
from .serializers import StrictCharField, StrictRegexField
from .errors import AuthRequired, Forbidden, InvalidPayload, NotFound, RealtimeError

__all__ = [
    "AuthRequired", "EventConsumer", "EventRequest", "Forbidden", "InvalidPayload", "NotFound",
    "RealtimeError", "StrictCharField", "StrictRegexField", "emit", "emit_sync", "forget_room_owner", "occupied_rooms", "now_ms", "validate",
]
