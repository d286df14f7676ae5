"""Room events this process missed while its subscriber connection was down, read from the log.

Every room event is in the event log before it is published (emit.py), so what a process missed
between losing its subscription and subscribing again is there: the events after the last one it
delivered, in the rooms it has local sockets in. Its fan-out holds live messages while it reads
them, then delivers both in log order, each offset once (fanout.Fanout.resubscribed).
"""

from __future__ import annotations

from .emit import room_message
from .recovery import offset_key

# How far before the last event it delivered a process reads back: an event is logged, then
# published, so two producers' events can arrive some milliseconds out of log order. Events it
# delivered in that span it recognises by offset (fanout.SEEN_EVENTS) and drops.
REWIND_SECONDS = 5.0
# Clock difference allowed between this host (room join times) and Redis (offsets).
SKEW_SECONDS = 1.0


class LogGapFill:
    def __init__(self, log) -> None:
        self.log = log  # recovery.RedisEventLog: offsets are Redis' milliseconds

    async def __call__(self, last_offset: str | None, joined_ms: dict[str, float]) -> list[dict]:
        """Room messages logged after `last_offset` (rewound) for the rooms in `joined_ms`
        (room -> when this process subscribed to it, epoch ms), none from before that join."""
        if not joined_ms:
            return []
        start = self.log.rewound(last_offset, REWIND_SECONDS, min(joined_ms.values()))
        skew_ms = SKEW_SECONDS * 1000
        messages = []
        for event in await self.log.after(start):
            logged_ms = offset_key(event.offset)[0]
            if any(joined_ms.get(room, float("inf")) - skew_ms <= logged_ms for room in event.rooms):
                messages.append(room_message(event.namespace, event.rooms, event.event, event.data, event.offset))
        return messages
