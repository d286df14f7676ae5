"""Room names: the one grammar every room must match, and its injective map to layer groups.

Channels group names allow only ASCII letters, digits, "-", "_" and "." and fewer than 100
characters. The grammar below never produces ".", so replacing ":" with "." is injective.
"""

from __future__ import annotations

import re

from .errors import InvalidRoom

# An asset code on Stellar is 1-12 alphanumerics; a pair is BASE_COUNTER.
PAIR = r"[A-Z0-9]{1,12}_[A-Z0-9]{1,12}"
# User ids are Supabase UUIDs; wallet and automation ids are ours (UUIDs) or a Stellar public
# key (56 characters). 64 leaves room without letting a client make huge group names.
ID = r"[A-Za-z0-9-]{1,64}"

ROOM_GRAMMAR = re.compile(
    rf"(?:market:{PAIR}(?::orderbook)?|system:notifications|user:{ID}|wallet:{ID}|automation:{ID})"
)
PUBLIC_PREFIXES = ("market:", "system:")
GROUP_PREFIX = "room."
# The groups of private rooms (one user's or one entity's each): what the grammar's private kinds
# become in room_to_group. The fan-out hears them all through one pattern (pubsub_layer).
PRIVATE_GROUP_PREFIXES = tuple(f"{GROUP_PREFIX}{kind}." for kind in ("user", "wallet", "automation"))


def validate_room(room: object) -> str:
    if not isinstance(room, str) or ROOM_GRAMMAR.fullmatch(room) is None:
        raise InvalidRoom(f"{room!r} is not a room name" if isinstance(room, str) else "room must be a string")
    return room


def is_public(room: str) -> bool:
    return room.startswith(PUBLIC_PREFIXES)


def room_to_group(room: str) -> str:
    return GROUP_PREFIX + validate_room(room).replace(":", ".")


def group_to_room(group: str) -> str:
    return group.removeprefix(GROUP_PREFIX).replace(".", ":")
