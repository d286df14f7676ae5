"""The market:* event handlers: validate, join or leave the pair rooms, reply."""

from realtime.api import EventConsumer, EventRequest, now_ms, validate

from .serializers import PairsSerializer


def pair_room(pair: str) -> str:
    return f"market:{pair}"


class MarketConsumer(EventConsumer):
    prefix = "market"
    events = {"subscribe": "subscribe", "unsubscribe": "unsubscribe"}

    async def subscribe(self, request: EventRequest) -> dict:
        pairs = validate(PairsSerializer, request.data)["pairs"]
        for pair in pairs:
            await request.join(pair_room(pair))
            await request.emit("subscribed", {"room": pair_room(pair), "timestamp": now_ms()})
        return {"pairs": pairs}

    async def unsubscribe(self, request: EventRequest) -> dict:
        pairs = validate(PairsSerializer, request.data)["pairs"]
        for pair in pairs:
            await request.leave(pair_room(pair))
            await request.emit("unsubscribed", {"room": pair_room(pair), "timestamp": now_ms()})
        return {"pairs": pairs}
