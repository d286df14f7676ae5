"""The market:* event handlers: validate, check the pair, join or leave its rooms, reply."""

from __future__ import annotations

import asyncio
import logging


from realtime.api import EventConsumer, EventRequest, RealtimeError, emit, now_ms, validate

from . import selectors, services, tasks
from .errors import MarketDataUnavailable
from .models import MarketPair
from .serializers import PairSerializer, PairsSerializer

logger = logging.getLogger(__name__)

# A new subscriber arriving while another process fetches the pair's first snapshot waits this
# long for it (a poll is three Horizon requests, usually well under a second).
SNAPSHOT_WAIT_SECONDS = 5.0
SNAPSHOT_WAIT_STEP = 0.1


def pair_room(pair: str) -> str:
    return f"market:{pair}"


def orderbook_room(pair: str) -> str:
    return f"market:{pair}:orderbook"


async def current_snapshot(pair: MarketPair) -> tuple[dict | None, bool]:
    """(the stored snapshot, whether its events are broadcast to the pair's rooms after the caller joined).

    Without a stored snapshot the pair is polled now, and what that poll finds goes to the rooms
    like any change; if another process is polling it, its result is awaited (bounded).
    """
    stored = await selectors.asnapshot(pair.name)
    if stored is not None:
        return stored, False
    try:
        events = await services.market_apoll(pair=pair)
    except services.HorizonUnavailable as exc:
        logger.warning("no snapshot for %s: %s", pair.name, exc)
        raise MarketDataUnavailable(f"market data for {pair.name} is not available right now; try again shortly") from exc
    if events is not None:
        for room, event, data in events:
            await emit(room, event, data)
        return await selectors.asnapshot(pair.name), True
    for _ in range(int(SNAPSHOT_WAIT_SECONDS / SNAPSHOT_WAIT_STEP)):
        await asyncio.sleep(SNAPSHOT_WAIT_STEP)
        stored = await selectors.asnapshot(pair.name)
        if stored is not None:
            # Committed by a poll that began before we looked, so after the caller joined the
            # room: that poll's events reach the caller through the room.
            return stored, True
    raise MarketDataUnavailable(f"market data for {pair.name} is not available right now; try again shortly")


def price_update(stored: dict) -> dict:
    return {key: stored[key] for key in ("pair", "price", "volume", "change24h", "timestamp", "sequence")}


def orderbook_update(stored: dict) -> dict:
    return {"pair": stored["pair"], "bids": stored["bids"], "asks": stored["asks"],
            "timestamp": stored["timestamp"], "sequence": stored["bookSequence"]}


class MarketConsumer(EventConsumer):
    prefix = "market"
    events = {
        "subscribe": "subscribe",
        "unsubscribe": "unsubscribe",
        "get_snapshot": "get_snapshot",
        "subscribe_orderbook": "subscribe_orderbook",
        "unsubscribe_orderbook": "unsubscribe_orderbook",
    }

    async def subscribe(self, request: EventRequest) -> dict:
        tasks.ensure_feed_running()
        names = validate(PairsSerializer, request.data)["pairs"]
        accepted: list[MarketPair] = []
        rejected: list[tuple[str, RealtimeError]] = []
        for name in dict.fromkeys(names):  # XLM_USDC and XLM/USDC are one pair
            try:
                pair = await selectors.apair_enabled(name)
            except RealtimeError as exc:
                rejected.append((name, exc))
                continue
            await request.join(pair_room(name))
            await request.emit("subscribed", {"room": pair_room(name), "timestamp": now_ms()})
            accepted.append(pair)
        details = [{"pair": name, **exc.body()} for name, exc in rejected]
        if not accepted:
            error = rejected[0][1]
            raise type(error)(error.message if len(rejected) == 1 else "none of these pairs is available", details=details)
        for pair in accepted:
            await self.send_current_price(request, pair)
        return {"pairs": [pair.name for pair in accepted], "rejected": details}

    async def send_current_price(self, request: EventRequest, pair: MarketPair) -> None:
        try:
            stored, broadcast = await current_snapshot(pair)
        except MarketDataUnavailable:
            return  # subscribed all the same: the feed's first update will reach the room
        if stored and not broadcast and stored.get("price") is not None:
            await request.emit("market:price_update", price_update(stored))

    async def unsubscribe(self, request: EventRequest) -> dict:
        names = list(dict.fromkeys(validate(PairsSerializer, request.data)["pairs"]))
        for name in names:  # a pair disabled since must still be left
            await request.leave(pair_room(name))
            await request.emit("unsubscribed", {"room": pair_room(name), "timestamp": now_ms()})
        return {"pairs": names, "rejected": []}

    async def subscribe_orderbook(self, request: EventRequest) -> dict:
        tasks.ensure_feed_running()
        pair = await selectors.apair_enabled(validate(PairSerializer, request.data)["pair"])
        room = orderbook_room(pair.name)
        await request.join(room)
        await request.emit("subscribed", {"room": room, "timestamp": now_ms()})
        try:
            stored, broadcast = await current_snapshot(pair)
        except MarketDataUnavailable:
            stored, broadcast = None, False
        if stored and not broadcast:
            await request.emit("market:orderbook_update", orderbook_update(stored))
        return {"pair": pair.name, "room": room}

    async def unsubscribe_orderbook(self, request: EventRequest) -> dict:
        name = validate(PairSerializer, request.data)["pair"]
        room = orderbook_room(name)
        await request.leave(room)
        await request.emit("unsubscribed", {"room": room, "timestamp": now_ms()})
        return {"pair": name, "room": room}

    async def get_snapshot(self, request: EventRequest) -> dict:
        tasks.ensure_feed_running()
        pair = await selectors.apair_enabled(validate(PairSerializer, request.data)["pair"])
        stored, _ = await current_snapshot(pair)
        if stored is None:
            raise MarketDataUnavailable()
        snapshot = selectors.public_snapshot(stored)
        await request.emit("market:snapshot", snapshot)
        return snapshot
