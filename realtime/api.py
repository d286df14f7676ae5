"""The small API domain apps use: handlers, errors, payload validation, emit, and the OpenAPI
shapes of our errors for their REST views."""

from .background_retry import emit_in_background
from .consumers import EventConsumer, EventRequest, now_ms, validate
from .emit import emit, emit_sync
from .metrics import occupied_rooms, room_members
from .permissions import follow_room_owners
from .redis_client import REDIS_AWAY
from .schema import FIELD_ERRORS, UNAUTHENTICATED, DetailSerializer, ErrorSerializer
from .serializers import StrictCharField, StrictRegexField
from .errors import AuthRequired, Forbidden, InvalidPayload, NotFound, RealtimeError

__all__ = [
    "FIELD_ERRORS", "REDIS_AWAY", "UNAUTHENTICATED", "AuthRequired", "DetailSerializer", "ErrorSerializer", "EventConsumer", "EventRequest", "Forbidden", "InvalidPayload", "NotFound",
    "RealtimeError", "StrictCharField", "StrictRegexField", "emit", "emit_in_background", "emit_sync", "follow_room_owners", "occupied_rooms", "now_ms", "room_members", "validate",
]
