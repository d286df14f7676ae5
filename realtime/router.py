"""Event name -> handler, built from the domain consumers listed in settings; no domain imports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from django.conf import settings
from django.utils.module_loading import import_string

from .consumers import EventConsumer, EventRequest
from .errors import UnknownEvent

Handler = Callable[[EventRequest], Awaitable[dict | None]]


class EventRouter:
    def __init__(self, consumers: Iterable[EventConsumer]) -> None:
        self._routes: dict[str, Handler] = {}
        for consumer in consumers:
            for name, method in consumer.events.items():
                event = f"{consumer.prefix}:{name}"
                if event in self._routes:
                    raise ValueError(f"event {event} is registered twice")
                self._routes[event] = getattr(consumer, method)

    def add(self, event: str, handler: Handler) -> None:
        self._routes[event] = handler

    @property
    def events(self) -> list[str]:
        """Every event name a client may send, sorted (for the README's catalogue test)."""
        return sorted(self._routes)

    def resolve(self, event: str) -> Handler:
        try:
            return self._routes[event]
        except KeyError:
            raise UnknownEvent(f"unknown event {event[:100]!r}") from None


def router_from_settings() -> EventRouter:
    """REALTIME_EVENT_CONSUMERS lists consumer classes by dotted path, as Channels lists routes."""
    return EventRouter(import_string(path)() for path in settings.REALTIME_EVENT_CONSUMERS)
