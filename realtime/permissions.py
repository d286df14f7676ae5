"""The one room-access policy, used by every path that puts a socket in a room."""

from __future__ import annotations

from typing import Any

from .errors import AuthRequired
from .rooms import is_public


def check_room_access(user: Any, room: str) -> None:
    """Return if `user` (None when anonymous) may join `room`, else raise a RealtimeError."""
    if is_public(room):
        return
    # Private rooms need a verified user; token verification lands with the auth issue, so
    # until then no socket is authenticated and every private room is refused.
    raise AuthRequired(f"{room} is a private room: authenticate first")
