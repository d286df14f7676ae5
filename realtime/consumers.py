"""What domain apps write their `prefix:` event handlers on: EventConsumer and EventRequest."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, ClassVar

from rest_framework.exceptions import ValidationError

from .errors import InvalidPayload, RealtimeError
from .permissions import check_room_access
from .rooms import validate_room

if TYPE_CHECKING:
    from rest_framework.serializers import Serializer

    from .server import Socket


def now_ms() -> int:
    return int(time.time() * 1000)


class EventRequest:
    """One client event as a handler sees it: its data, its user, and what it may do."""

    def __init__(self, socket: Socket, event: str, data: Any) -> None:
        self.socket = socket
        self.event = event
        self.data = data

    @property
    def user(self) -> Any:
        return self.socket.data.get("user")

    @property
    def socket_id(self) -> str:
        return self.socket.sid

    async def join(self, room: str) -> None:
        """Put the socket in `room` after the room-access policy agreed."""
        room = validate_room(room)
        user = self.user
        await check_room_access(user, room)
        await self.socket.join(room)
        # The check and the join await: a sign-out (a token expiring) or a sign-in meanwhile
        # left the private rooms the socket was in then, not this one. Ask again for whoever
        # the socket is now, until no change came in between.
        while self.user is not user:
            user = self.user
            try:
                await check_room_access(user, room)
            except RealtimeError:
                await self.socket.leave(room)
                raise

    async def authorize(self, room: str) -> None:
        """Raise unless the room-access policy lets this socket's user into `room` (for reads
        that answer with a room's data without joining it)."""
        await check_room_access(self.user, validate_room(room))

    async def leave(self, room: str) -> None:
        await self.socket.leave(validate_room(room))

    async def emit(self, event: str, data: Any) -> None:
        """An event to this socket only."""
        await self.socket.emit(event, data)


class EventConsumer:
    """A domain app's handlers for `<prefix>:<name>` events.

    `events` maps each name to a method; the router reads it once at start-up, so a client's
    event name only ever selects from this table. A handler takes an EventRequest and returns
    the fields of its `{"ok": true, ...}` ack, or raises a RealtimeError.
    """

    prefix: ClassVar[str]
    events: ClassVar[dict[str, str]]


def validate(serializer_class: type[Serializer], data: Any) -> dict:
    """The payload as the serializer's validated data, or InvalidPayload with its field errors
    (what `is_valid()` gives, as `is_valid()` computes it: `run_validation`)."""
    if not isinstance(data, dict):
        raise InvalidPayload("payload must be a JSON object")
    try:
        return _shared(serializer_class).run_validation(data)
    except ValidationError as exc:
        raise InvalidPayload(details=exc.detail) from None


@functools.cache
def _shared(serializer_class: type[Serializer]) -> Serializer:
    """One instance per serializer class, its fields bound once. A new instance deep-copies
    every declared field: 20 us of the 24 a `subscribe` payload took to validate. Validation
    keeps nothing on the instance, and no serializer given here has context or an instance."""
    return serializer_class()
