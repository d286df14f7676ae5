"""The consumer base both transports share: Channels' dispatch by message type, minus two costs."""

from __future__ import annotations

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer


class TransportConsumer(AsyncConsumer):
    """A Channels consumer that joins no channel layer and skips the per-message ORM cleanup.

    A socket joins nothing on the layer because fan-out is per process (`realtime.fanout`): one
    layer channel per socket is what collapsed at 5,000 subscribers (DESIGN.md decision 3).
    `aclose_old_connections`, which Channels runs before every handler, is a thread-pool round
    trip that was half the CPU of a broadcast; transports never touch the ORM, and handlers that
    do go through `database_sync_to_async`, which closes stale connections itself.
    """

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
