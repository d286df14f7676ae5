"""The market feed: fetch a pair from Horizon, compare it with the stored snapshot, decide what to emit.

Only this module calls Horizon (stellar-sdk: the sync Server in Celery, ServerAsync with
AiohttpClient in the event loop). It returns the events to emit; tasks and consumers emit them.
An event is (room, name, payload); every payload carries `timestamp` (ms) and `sequence`, which
counts up by one per event in that room (market:{PAIR} and market:{PAIR}:orderbook each have
their own), so a client sees a gap.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from stellar_sdk import Asset, Server, ServerAsync
from stellar_sdk.client.aiohttp_client import AiohttpClient
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import BaseHorizonError, BaseRequestError

from . import selectors
from .models import MarketPair

logger = logging.getLogger(__name__)

Event = tuple[str, str, dict]

# Horizon returns at most 200 records a page; more new trades than that between two polls are
# fetched on the next polls (the cursor only moves over what was emitted).
TRADE_PAGE = 200
# 24 h statistics from 15-minute buckets: 96 records fit one page, and the window's edge moves
# in steps a quarter of an hour long at most.
AGGREGATION_RESOLUTION_MS = 900_000
DAY_MS = 86_400_000
# A snapshot not refreshed for a day is history, not a market: let it go.
SNAPSHOT_TTL = 86_400
# Counted Horizon requests are bucketed per hour and kept two hours (this hour and the last).
SPEND_TTL = 7_200
# Digits kept on prices and amounts: Stellar amounts have 7 decimals.
DECIMALS = 7


class HorizonUnavailable(Exception):
    """Horizon failed (HTTP error, timeout, connection, or a response we could not read)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


# -- Horizon clients: every request is counted against the budget, with its rate-limit headers --

# A 429 without Retry-After or rate-limit headers: wait a minute, a sixtieth of Horizon's window
# (the market feed's pause, and the transaction watcher's).
RATE_LIMIT_DEFAULT_PAUSE = 60.0


def retry_after_seconds(headers: dict, now: float | None = None) -> float | None:
    """Retry-After (seconds or an HTTP date), else X-RateLimit-Reset when nothing remains."""
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(0.0, when.timestamp() - (time.time() if now is None else now))
    if lowered.get("x-ratelimit-remaining") == "0" and lowered.get("x-ratelimit-reset", "").isdigit():
        return float(lowered["x-ratelimit-reset"])
    return None


def feed_record_response(*, status: int | None, headers: dict, now: float | None = None) -> None:
    """Count one Horizon request and remember the rate-limit headers it came back with."""
    now = time.time() if now is None else now
    key = selectors.spend_key(int(now // 3600))
    cache.add(key, 0, SPEND_TTL)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, SPEND_TTL)
    lowered = {k.lower(): v for k, v in headers.items()}
    if "x-ratelimit-remaining" in lowered:
        try:
            reset_in = int(lowered.get("x-ratelimit-reset", 0))
            # A 429's Retry-After is Horizon's own instruction: it bounds the wait even when the
            # window's reset is later (else one pair alone would stall until the window ends,
            # as nothing else refreshes these headers meanwhile).
            retry_after = retry_after_seconds(headers, now) if status == 429 else None
            if retry_after is not None:
                reset_in = min(reset_in, int(retry_after) + 1)
            cache.set(selectors.RATELIMIT_KEY, {
                "limit": int(lowered.get("x-ratelimit-limit", 0)),
                "remaining": int(lowered["x-ratelimit-remaining"]),
                "resetAt": now + reset_in,
                "seenAt": now,
            }, 3600)
        except ValueError:
            logger.warning("unreadable rate-limit headers from Horizon: %r", lowered)


class MeteredRequestsClient(RequestsClient):
    """stellar-sdk's sync client without its own retries (backoff is the task's) and metered."""

    def __init__(self) -> None:
        super().__init__(num_retries=0, request_timeout=settings.HORIZON_REQUEST_TIMEOUT)
        self.last_headers: dict = {}

    def get(self, url, params=None, max_content_size=None):
        try:
            response = super().get(url, params, max_content_size)
        except BaseRequestError:
            feed_record_response(status=None, headers={})
            raise
        self.last_headers = response.headers
        feed_record_response(status=response.status_code, headers=response.headers)
        return response


class MeteredAiohttpClient(AiohttpClient):
    """stellar-sdk's aiohttp client, metered; a timeout becomes the SDK's ConnectionError."""

    def __init__(self) -> None:
        super().__init__(request_timeout=settings.HORIZON_REQUEST_TIMEOUT)
        self.last_headers: dict = {}

    async def get(self, url, params=None, max_content_size=None):
        from stellar_sdk.exceptions import ConnectionError as SdkConnectionError

        try:
            response = await super().get(url, params, max_content_size)
        except (BaseRequestError, asyncio.TimeoutError) as exc:
            await database_sync_to_async(feed_record_response)(status=None, headers={})
            if isinstance(exc, asyncio.TimeoutError):
                raise SdkConnectionError("timed out") from exc
            raise
        self.last_headers = response.headers
        await database_sync_to_async(feed_record_response)(status=response.status_code, headers=response.headers)
        return response


def horizon_url(pair: MarketPair) -> str:
    return pair.horizon_url or settings.STELLAR_HORIZON_URL


def stellar_asset(code: str, issuer: str) -> Asset:
    return Asset.native() if not issuer else Asset(code, issuer)


def translate_error(exc: Exception) -> HorizonUnavailable:
    if isinstance(exc, HorizonUnavailable):
        return exc
    if isinstance(exc, BaseHorizonError):
        response = exc.args[0] if exc.args else None
        headers = getattr(response, "headers", {}) or {}
        return HorizonUnavailable(f"Horizon answered {exc.status}: {(exc.title or exc.message or '')[:200]}",
                                  status=exc.status, retry_after=retry_after_seconds(headers))
    if isinstance(exc, BaseRequestError):
        return HorizonUnavailable(f"Horizon unreachable: {str(exc)[:200]}")
    return HorizonUnavailable(f"Horizon sent something unreadable: {type(exc).__name__}: {str(exc)[:200]}")


# -- what a poll fetches ---------------------------------------------------------------------

@dataclass(frozen=True)
class TradeRecord:
    token: str
    price: float
    volume: float
    side: str
    traded_at: int


@dataclass(frozen=True)
class MarketData:
    since: str | None  # the cursor trades were fetched after; None: only the latest was fetched
    trades: list[TradeRecord]  # oldest first
    bids: list[list[float]]  # [price, amount of base], best first
    asks: list[list[float]]
    volume: float
    change24h: float
    cursor_reset: bool = False  # Horizon's history is behind our cursor (a testnet reset)


def market_calls(server: Server | ServerAsync, pair: MarketPair, since: str | None, now_ms: int) -> list:
    """The three call builders one poll runs, for either kind of server."""
    base, counter = stellar_asset(pair.base_code, pair.base_issuer), stellar_asset(pair.counter_code, pair.counter_issuer)
    trades = server.trades().for_asset_pair(base, counter)
    trades = trades.order(desc=True).limit(1) if since is None else trades.cursor(since).order(desc=False).limit(TRADE_PAGE)
    end = -(-now_ms // AGGREGATION_RESOLUTION_MS) * AGGREGATION_RESOLUTION_MS  # the current bucket's end
    aggregations = server.trade_aggregations(base, counter, AGGREGATION_RESOLUTION_MS, end - DAY_MS, end).limit(TRADE_PAGE)
    return [server.orderbook(base, counter).limit(settings.MARKET_ORDERBOOK_DEPTH), trades, aggregations]


def number(value: Any) -> Decimal:
    result = Decimal(str(value))
    if not result.is_finite() or result < 0:
        raise ValueError(f"not a non-negative amount: {value!r}")
    return result


def to_float(value: Decimal) -> float:
    return float(round(value, DECIMALS))


def parse_market(book: dict, trades: dict, aggregations: dict, *, since: str | None, latest_ledger: int | None) -> MarketData:
    """Horizon's JSON as MarketData; anything missing or of the wrong kind raises HorizonUnavailable."""
    try:
        depth = settings.MARKET_ORDERBOOK_DEPTH
        bids = []
        for level in book["bids"][:depth]:
            price = number(level["price"])
            # Horizon states bid amounts in the counter asset; clients get base amounts on both sides.
            bids.append([to_float(price), to_float(number(level["amount"]) / price) if price else 0.0])
        asks = [[to_float(number(level["price"])), to_float(number(level["amount"]))] for level in book["asks"][:depth]]
        records = []
        for record in trades["_embedded"]["records"]:
            if not isinstance(record["base_is_seller"], bool):
                raise ValueError("base_is_seller is not a boolean")
            at = datetime.fromisoformat(record["ledger_close_time"].replace("Z", "+00:00"))
            records.append(TradeRecord(
                token=str(record["paging_token"]),
                price=to_float(number(record["price"]["n"]) / number(record["price"]["d"])),
                volume=to_float(number(record["base_amount"])),
                # The base party sold base (base_is_seller) or bought it.
                side="sell" if record["base_is_seller"] else "buy",
                traded_at=int(at.timestamp() * 1000),
            ))
        if since is None:
            records.reverse()  # fetched newest first
        buckets = aggregations["_embedded"]["records"]
        volume = sum((number(b["base_volume"]) for b in buckets), Decimal(0))
        first_open = number(buckets[0]["open"]) if buckets else Decimal(0)
        change = number(buckets[-1]["close"]) / first_open - 1 if buckets and first_open else Decimal(0)
        reset = bool(since and latest_ledger is not None and latest_ledger < ledger_of(since))
    except (KeyError, TypeError, ValueError, IndexError, InvalidOperation, ArithmeticError, AttributeError) as exc:
        raise translate_error(exc) from exc
    return MarketData(since, [] if reset else records, bids, asks, to_float(volume), round(float(change), 8), reset)


def ledger_of(token: str) -> int:
    """Horizon paging tokens are TOIDs: the ledger sequence sits in the top 32 bits."""
    return int(token.split("-")[0]) >> 32


# The cursor of a market seen without any trade: Horizon pages trades after it from the start.
BEFORE_ANY_TRADE = "0-0"


def token_order(token: str) -> tuple[int, int]:
    head, _, tail = token.partition("-")
    return int(head), int(tail or 0)


def latest_ledger(headers: dict) -> int | None:
    value = {k.lower(): v for k, v in headers.items()}.get("latest-ledger")
    return int(value) if value and value.isdigit() else None


def market_fetch(*, pair: MarketPair, since: str | None) -> MarketData:
    client = MeteredRequestsClient()
    try:
        server = Server(horizon_url(pair), client=client)
        book, trades, aggregations = [call.call() for call in market_calls(server, pair, since, int(time.time() * 1000))]
    except Exception as exc:  # any failure of any of the three requests fails the whole poll
        raise translate_error(exc) from exc
    finally:
        client.close()
    return parse_market(book, trades, aggregations, since=since, latest_ledger=latest_ledger(client.last_headers))


async def market_afetch(*, pair: MarketPair, since: str | None) -> MarketData:
    client = MeteredAiohttpClient()
    try:
        server = ServerAsync(horizon_url(pair), client=client)
        results = []
        for call in market_calls(server, pair, since, int(time.time() * 1000)):
            results.append(await call.call())
    except Exception as exc:
        raise translate_error(exc) from exc
    finally:
        await client.close()
    return parse_market(*results, since=since, latest_ledger=latest_ledger(client.last_headers))


# -- the decision: what changed since the stored snapshot --------------------------------------

def market_compare(*, name: str, data: MarketData, previous: dict | None, now_ms: int) -> tuple[dict, list[Event]]:
    """The new snapshot and the events that tell subscribers what changed (pure: no I/O)."""
    prev = previous or {}
    room, book_room = f"market:{name}", f"market:{name}:orderbook"
    sequence, book_sequence = prev.get("sequence", 0), prev.get("bookSequence", 0)
    cursor, last_price = prev.get("cursor"), prev.get("lastTradePrice")
    events: list[Event] = []

    if data.cursor_reset:
        logger.warning("Horizon's history for %s is behind our cursor %s (network reset?): starting over", name, cursor)
        cursor = None
    elif data.since is None:
        # A first look: the latest trade gives the price and the cursor; history is not news.
        if data.trades:
            cursor, last_price = data.trades[-1].token, data.trades[-1].price
        else:  # no history at all: every trade from here on is news, the very first ones too
            cursor = BEFORE_ANY_TRADE
    else:
        for trade in data.trades:
            if cursor is not None and token_order(trade.token) <= token_order(cursor):
                continue  # never emit a trade twice
            sequence += 1
            events.append((room, "market:trade", {
                "pair": name, "price": trade.price, "volume": trade.volume, "side": trade.side,
                "id": trade.token, "tradedAt": trade.traded_at, "timestamp": now_ms, "sequence": sequence,
            }))
            cursor, last_price = trade.token, trade.price

    price = last_price
    if price is None and data.bids and data.asks:
        price = round((data.bids[0][0] + data.asks[0][0]) / 2, DECIMALS)  # no trade yet: the mid
    figures = (price, data.volume, data.change24h)
    if price is not None and figures != (prev.get("price"), prev.get("volume"), prev.get("change24h")):
        sequence += 1
        events.append((room, "market:price_update", {
            "pair": name, "price": price, "volume": data.volume, "change24h": data.change24h,
            "timestamp": now_ms, "sequence": sequence,
        }))
    if previous is None or (data.bids, data.asks) != (prev.get("bids"), prev.get("asks")):
        book_sequence += 1
        events.append((book_room, "market:orderbook_update", {
            "pair": name, "bids": data.bids, "asks": data.asks, "timestamp": now_ms, "sequence": book_sequence,
        }))

    snapshot = {
        "pair": name, "price": price, "volume": data.volume, "change24h": data.change24h,
        "bids": data.bids, "asks": data.asks, "timestamp": now_ms,
        "sequence": sequence, "bookSequence": book_sequence, "cursor": cursor, "lastTradePrice": last_price,
    }
    return snapshot, events


# -- one poll of one pair: lock, fetch, compare, store ----------------------------------------

def lock_key(name: str) -> str:
    return f"market:lock:{name}"


def lock_seconds() -> float:
    # Three requests, each bounded by the timeout, plus room to store: after that a crashed
    # poller's lock lapses by itself.
    return selectors.REQUESTS_PER_POLL * settings.HORIZON_REQUEST_TIMEOUT + 5


def _lock(name: str, extra_seconds: float = 0) -> str | None:
    token = uuid.uuid4().hex
    return token if cache.add(lock_key(name), token, lock_seconds() + extra_seconds) else None


def _unlock(name: str, token: str) -> None:
    if cache.get(lock_key(name)) == token:
        cache.delete(lock_key(name))


def _commit(name: str, data: MarketData, previous: dict | None) -> list[Event]:
    snapshot, events = market_compare(name=name, data=data, previous=previous, now_ms=int(time.time() * 1000))
    cache.set(selectors.snapshot_key(name), snapshot, SNAPSHOT_TTL)
    return events


def market_poll(*, pair: MarketPair, publish: Callable[[list[Event]], None] | None = None,
                publish_seconds: float = 0) -> list[Event] | None:
    """Poll one pair: compare, `publish` the events (within `publish_seconds`, which the pair's
    lock covers too), then store the snapshot; the events, or None when another process is
    polling it right now. Events that never went out (the poller killed, or Redis away past its
    retries) leave the old snapshot, so the next poll finds the same changes and sends them,
    under the same sequences (the same state again, to a client), rather than never."""
    token = _lock(pair.name, publish_seconds)
    if token is None:
        return None
    try:
        previous = cache.get(selectors.snapshot_key(pair.name))
        data = market_fetch(pair=pair, since=(previous or {}).get("cursor"))
        snapshot, events = market_compare(name=pair.name, data=data, previous=previous, now_ms=int(time.time() * 1000))
        if publish is not None:
            publish(events)
        if cache.get(lock_key(pair.name)) == token:  # else its lock lapsed: a later poll's is newer
            cache.set(selectors.snapshot_key(pair.name), snapshot, SNAPSHOT_TTL)
        return events
    finally:
        _unlock(pair.name, token)


async def market_apoll(*, pair: MarketPair) -> list[Event] | None:
    """market_poll for the event loop (ServerAsync); the same lock, snapshot and decision."""
    token = await database_sync_to_async(_lock)(pair.name)
    if token is None:
        return None
    try:
        previous = await cache.aget(selectors.snapshot_key(pair.name))
        data = await market_afetch(pair=pair, since=(previous or {}).get("cursor"))
        return await database_sync_to_async(_commit)(pair.name, data, previous)
    finally:
        await database_sync_to_async(_unlock)(pair.name, token)


# -- the schedule: which pairs are due, and what a failure does to it ---------------------------

def feed_claim_due_pairs(*, now: float | None = None) -> list[MarketPair]:
    """The active pairs due for a poll, each given its next due time (so one tick claims it once)."""
    now = time.time() if now is None else now
    if selectors.feed_paused_until() > now:
        return []
    pairs = selectors.active_pairs()
    interval = selectors.feed_interval(len(pairs), now)
    due = []
    for pair in pairs:
        state = selectors.feed_pair_state(pair.name)
        if state.get("nextDue", 0) <= now:
            cache.set(selectors.pair_state_key(pair.name), {**state, "nextDue": now + interval}, None)
            due.append(pair)
    return due


def feed_record_success(*, name: str, events: int, now: float | None = None) -> None:
    now = time.time() if now is None else now
    state = selectors.feed_pair_state(name)
    cache.set(selectors.pair_state_key(name), {**state, "failures": 0, "lastOk": now, "lastEvents": events}, None)


def feed_record_failure(*, name: str, delay: float, error: str, now: float | None = None) -> int:
    """Note a failed poll and push the pair's next poll `delay` seconds out; the failure count."""
    now = time.time() if now is None else now
    state = selectors.feed_pair_state(name)
    failures = state.get("failures", 0) + 1
    cache.set(selectors.pair_state_key(name), {
        **state, "failures": failures, "lastError": error[:300], "lastErrorAt": now,
        "nextDue": max(state.get("nextDue", 0), now + delay),
    }, None)
    return failures


def feed_pause(*, seconds: float, reason: str, now: float | None = None) -> None:
    """Stop polling every pair for `seconds`: Horizon's rate limit is per IP, not per pair."""
    now = time.time() if now is None else now
    cache.set(selectors.PAUSE_KEY, {"until": now + seconds, "reason": reason[:300]}, int(seconds) + 60)


def feed_record_beat(*, now: float | None = None) -> None:
    """Celery beat ticked (for /health: a feed whose beat stopped is a degraded node)."""
    cache.set(selectors.BEAT_KEY, time.time() if now is None else now, None)


# -- streaming mode: Horizon's SSE streams say when to look again -------------------------------

async def market_stream_changes(*, pair: MarketPair, changed: asyncio.Event) -> None:
    """Follow the pair's trades and order book over Horizon's SSE streams, setting `changed`
    whenever either moves; returns never, raises HorizonUnavailable when a stream breaks.

    The stream is the signal, the poll (market_apoll) the work: one code path decides what is
    news, and trades resume from the snapshot's cursor, so a reconnect repeats nothing.
    """
    base, counter = stellar_asset(pair.base_code, pair.base_issuer), stellar_asset(pair.counter_code, pair.counter_issuer)
    previous = await cache.aget(selectors.snapshot_key(pair.name)) or {}
    client = AiohttpClient()
    server = ServerAsync(horizon_url(pair), client=client)

    async def follow(builder) -> None:
        async for _ in builder.stream():
            changed.set()

    trades = server.trades().for_asset_pair(base, counter).cursor(previous.get("cursor") or "now")
    book = server.orderbook(base, counter).limit(settings.MARKET_ORDERBOOK_DEPTH)
    try:
        await asyncio.gather(follow(trades), follow(book))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise translate_error(exc) from exc
    finally:
        await client.close()
    raise HorizonUnavailable("Horizon closed the stream")
