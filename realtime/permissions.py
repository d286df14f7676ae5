"""The one room-access policy, used by every path that puts a socket in a room.

Public rooms (`market:*`, `system:notifications`) are open to all; `user:{id}` to that user;
`wallet:{id}` and `automation:{id}` to their owner, looked up through the domain apps'
functions named in settings.REALTIME_ROOM_OWNERS; the `admin` permission opens every room.
"""

from __future__ import annotations

from functools import cache
from typing import Callable

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache as django_cache
from django.utils.module_loading import import_string

from .errors import AuthRequired, Forbidden
from .rooms import is_public

# Ownership changes rarely and is invalidated on change (forget_room_owner); 30 s bounds how
# stale a cache in another process can be if an invalidation is lost.
OWNER_CACHE_SECONDS = 30
_NO_OWNER = ""


def is_private(room: str) -> bool:
    return not is_public(room)


async def check_room_access(user, room: str) -> None:
    """Return if `user` (a Principal, or None when anonymous) may join `room`; else raise."""
    if is_public(room):
        return
    if user is None:
        raise AuthRequired(f"{room} is a private room: authenticate first")
    if user.is_admin:
        return
    kind, _, ident = room.partition(":")
    owner = ident if kind == "user" else await room_owner(kind, ident)
    if owner != user.user_id:
        # Same answer whether the id exists or not: no probing for other users' ids.
        raise Forbidden(f"{room} is not yours")


async def room_owner(kind: str, ident: str) -> str | None:
    key = _cache_key(kind, ident)
    owner = await django_cache.aget(key)
    if owner is None:
        owner = await database_sync_to_async(_owner_lookup(kind))(ident) or _NO_OWNER
        await django_cache.aset(key, owner, OWNER_CACHE_SECONDS)
    return owner or None


def forget_room_owner(kind: str, ident: str) -> None:
    """Drop the cached owner of `kind:ident`; domain apps call it when ownership changes."""
    django_cache.delete(_cache_key(kind, ident))


def _cache_key(kind: str, ident: str) -> str:
    return f"realtime:room-owner:{kind}:{ident}"


@cache
def _owner_lookup(kind: str) -> Callable[[str], str | None]:
    try:
        return import_string(settings.REALTIME_ROOM_OWNERS[kind])
    except KeyError:
        raise Forbidden(f"no owner is known for {kind} rooms") from None
