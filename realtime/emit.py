"""The one emit API for every producer: encode the event once, send it to the room's group.

Async code awaits `emit`; Celery tasks, views and admin actions call `emit_sync`.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .fanout import MESSAGE_TYPE
from .protocol import socketio as sio
from .rooms import room_to_group, validate_room


def encode_event(event: str, data: Any, namespace: str = "/") -> list[str | bytes]:
    """The Engine.IO frames of a Socket.IO EVENT: built once, written to every socket as is."""
    text, *attachments = sio.encode_packet(sio.Packet(sio.PacketType.EVENT, namespace, [event, data]))
    return ["4" + text, *attachments]


async def emit(room: str, event: str, data: Any, *, namespace: str = "/") -> None:
    room = validate_room(room)
    message = {"type": MESSAGE_TYPE, "namespace": namespace, "room": room, "frames": encode_event(event, data, namespace)}
    await get_channel_layer().group_send(room_to_group(room), message)


def emit_sync(room: str, event: str, data: Any, *, namespace: str = "/") -> None:
    async_to_sync(emit)(room, event, data, namespace=namespace)
