"""The one room-access policy, used by every path that puts a socket in a room.

Public rooms (`market:*`, `system:notifications`) are open to all; `user:{id}` to that user;
`wallet:{id}` and `automation:{id}` to their owner, looked up through the domain apps'
functions named in settings.REALTIME_ROOM_OWNERS; the `admin` permission opens every room.
"""

from __future__ import annotations

import logging
import secrets
from functools import cache
from typing import Callable

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils.module_loading import import_string

from .background_retry import retry_in_background
from .emit import DELIVERY_ERRORS, EmitFailed, recheck_room_sync
from .errors import AuthRequired, Forbidden
from .redis_client import REDIS_AWAY
from .rooms import is_public

# Ownership changes rarely and is invalidated on change (forget_room_owner); 30 s bounds how
# stale a cache in another process can be if an invalidation is lost.
OWNER_CACHE_SECONDS = 30
# A room's owner generation (see room_owner) outlives its cached owners so they stay usable; if
# it expires or is evicted, a new one is drawn and they are merely missed (one database read).
GENERATION_SECONDS = 3600
# How long an owner change's forget and re-check are retried while Redis is away: a restart or
# a failover takes seconds to tens of seconds. A process ending meanwhile waits for them (up to
# this long: background_retry), so not minutes.
RECHECK_RETRY_SECONDS = 60.0
_NO_OWNER = ""
logger = logging.getLogger(__name__)


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
    """The owner of `kind:ident` (None if none), cached for OWNER_CACHE_SECONDS; read from the
    database alone while the cache (Redis) is away, rather than refusing every private room."""
    try:
        return await _cached_room_owner(kind, ident)
    except REDIS_AWAY as exc:
        logger.warning("owner of %s:%s read from the database: the cache is away: %s", kind, ident, exc)
        return await database_sync_to_async(_owner_lookup(kind))(ident) or None


async def _cached_room_owner(kind: str, ident: str) -> str | None:
    """room_owner through the cache.

    A lookup that read the old owner just before an owner change committed may write it to the
    cache after forget_room_owner ran; left as is, the old owner would be let in again for 30 s.
    So each cached owner carries the room's generation as the lookup saw it before its database
    read, and forget_room_owner draws a new generation: a stale write is never read back.
    """
    generation_key, owner_key = _cache_keys(kind, ident)
    found = await django_cache.aget_many([generation_key, owner_key])
    generation, cached = found.get(generation_key), found.get(owner_key)
    if generation is not None and cached is not None and cached[0] == generation:
        return cached[1] or None
    if generation is None:  # first lookup (or it expired): racing lookups keep the first one's
        await django_cache.aadd(generation_key, secrets.token_hex(8), GENERATION_SECONDS)
        generation = await django_cache.aget(generation_key)
    owner = await database_sync_to_async(_owner_lookup(kind))(ident) or _NO_OWNER
    if generation is not None:
        await django_cache.aset(owner_key, (generation, owner), OWNER_CACHE_SECONDS)
    return owner or None


def forget_room_owner(kind: str, ident: str) -> None:
    """Drop the cached owner of `kind:ident`; domain apps call it when ownership changes, after
    the commit. A new generation rather than a delete: see room_owner."""
    django_cache.set(_cache_keys(kind, ident)[0], secrets.token_hex(8), GENERATION_SECONDS)


def room_access_changed(kind: str, ident: str, *, recheck: bool = True) -> None:
    """Who may be in `kind:ident` changed (its owner, or it is gone): forget the cached owner,
    and (`recheck`) every process asks the policy again about its sockets in the room (those
    refused leave it, told `unsubscribed`). Both go to Redis, so both are retried in the
    background through an outage (RECHECK_RETRY_SECONDS); the caller waits a second at most."""
    room = f"{kind}:{ident}"

    def forget_and_recheck(timeout: float | None) -> None:
        try:  # first: a re-check answered from the cache would keep the old owner in
            forget_room_owner(kind, ident)
        except DELIVERY_ERRORS as exc:
            raise EmitFailed(f"could not forget the owner of {room}: {exc}") from exc
        if recheck:
            recheck_room_sync(room, timeout)

    retry_in_background(forget_and_recheck, retry_for=RECHECK_RETRY_SECONDS, what=f"re-check of {room} after its owner changed",
                        gave_up="its sockets stay in it until they leave" if recheck else "its cached owner lasts its 30 s")


def follow_room_owners(model, kind: str) -> None:
    """Keep `kind:{pk}` rooms true to `model`'s `owner_id`, after each commit: a saved row's
    cached owner is forgotten; one whose owner changed, or that is deleted, has its room's
    sockets checked again (room_access_changed)."""

    def remember(sender, instance, update_fields=None, **kwargs) -> None:
        if not instance._state.adding and (update_fields is None or "owner_id" in update_fields):
            instance._owner_before = sender.objects.filter(pk=instance.pk).values_list("owner_id", flat=True).first()

    def saved(sender, instance, created=False, update_fields=None, **kwargs) -> None:
        if created or (update_fields is not None and "owner_id" not in update_fields):
            # A new row's id is new: no owner of its room is cached. A save of other fields (the
            # engine's, a status change) leaves the owner as it was. Nothing to forget.
            return
        moved = instance.__dict__.pop("_owner_before", instance.owner_id) != instance.owner_id
        ident = str(instance.pk)
        # In the background too when only forgetting: raising from an after-commit hook would
        # fail the request whose change is committed (and skip the hooks after it: its events).
        transaction.on_commit(lambda: room_access_changed(kind, ident, recheck=moved))

    def deleted(sender, instance, **kwargs) -> None:
        ident = str(instance.pk)
        transaction.on_commit(lambda: room_access_changed(kind, ident))

    uid = f"realtime.room-owner.{kind}"
    pre_save.connect(remember, sender=model, weak=False, dispatch_uid=uid)
    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(deleted, sender=model, weak=False, dispatch_uid=uid)


def _cache_keys(kind: str, ident: str) -> tuple[str, str]:
    """The keys of the room's owner generation and of its cached (generation, owner)."""
    return f"realtime:room-owner-generation:{kind}:{ident}", f"realtime:room-owner-entry:{kind}:{ident}"


@cache
def _owner_lookup(kind: str) -> Callable[[str], str | None]:
    try:
        return import_string(settings.REALTIME_ROOM_OWNERS[kind])
    except KeyError:
        raise Forbidden(f"no owner is known for {kind} rooms") from None
