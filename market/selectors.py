"""Reads of the market app: pairs by name, the stored snapshots, and the feed's schedule and spend."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

from realtime.api import REDIS_AWAY, occupied_rooms, room_members

from .errors import MarketDataUnavailable, PairNotFound, PairUnavailable
from .models import MarketPair

# Each poll of a pair costs three Horizon requests: /order_book, /trades, /trade_aggregations.
REQUESTS_PER_POLL = 3
# HORIZON_REQUESTS_PER_HOUR is Horizon's limit per IP, so every poller of this deployment shares
# it. They plan to spend 80% of it together: the rest absorbs on-demand snapshots (a new
# subscriber before the first poll), submissions, history reads and retries.
PLANNED_SHARE = 0.8
# The other apps' pollers (HORIZON_BUDGET_SHARERS: the transaction watcher) get what they ask for,
# up to half of the plan: a payment's confirmation matters more than a price a few seconds sooner,
# but many wallets must not stop the feed. The feed plans with what they leave.
SHARERS_MAX_SHARE = 0.5


def snapshot_key(name: str) -> str:
    return f"market:snapshot:{name}"


def pair_state_key(name: str) -> str:
    return f"market:feed:pair:{name}"


def spend_key(hour: int) -> str:
    return f"market:feed:spend:{hour}"


PAUSE_KEY = "market:feed:paused"
BEAT_KEY = "market:feed:beat"
# Beat ticks every MARKET_MIN_POLL_INTERVAL; this many missed ticks (and at least 30 s) means
# beat is not running: a worker restart takes seconds, not half a minute.
BEAT_STALE_TICKS = 10
RATELIMIT_KEY = "market:feed:ratelimit"


def _check(pair: MarketPair | None, name: str) -> MarketPair:
    if pair is None:
        raise PairNotFound(f"unknown pair {name} on {settings.STELLAR_NETWORK}")
    if not pair.is_configured:
        raise PairUnavailable(f"pair {name} is not configured: an operator must set its {' and '.join(pair.missing)} in the admin")
    if not pair.enabled:
        raise PairUnavailable(f"pair {name} is disabled on this server")
    return pair


def pair_enabled(name: str) -> MarketPair:
    """The enabled, configured pair `name` on this server's network, or PairNotFound/PairUnavailable."""
    return _check(MarketPair.objects.filter(name=name, network=settings.STELLAR_NETWORK).first(), name)


async def apair_enabled(name: str) -> MarketPair:
    return _check(await MarketPair.objects.filter(name=name, network=settings.STELLAR_NETWORK).afirst(), name)


def pair_by_id(pair_id: int) -> MarketPair:
    return MarketPair.objects.get(pk=pair_id)


def enabled_pairs() -> list[MarketPair]:
    """The pairs a client can subscribe to: enabled and configured, on this server's network."""
    return [pair for pair in MarketPair.objects.filter(enabled=True, network=settings.STELLAR_NETWORK) if pair.is_configured]


def active_pairs(occupied: set[str] | None | object = ...) -> list[MarketPair]:
    """The pairs the feed polls: the enabled, configured pairs on this server's network that
    someone is subscribed to (`market:{PAIR}` or its order-book room, by any path), from
    realtime's count of room members across the cluster. When that count is unknown (no server
    has published it yet, Redis unreachable), every enabled pair: a missed listener costs more
    than budget. Pairs another app needs fed without a subscriber (MARKET_FEED_PAIR_SOURCES, e.g.
    the pairs active automations watch) are polled too.
    """
    pairs = enabled_pairs()
    if occupied is ...:
        occupied = occupied_rooms()
    if occupied is None:
        return pairs
    wanted = wanted_pairs()
    return [pair for pair in pairs
            if pair.name in wanted or f"market:{pair.name}" in occupied or f"market:{pair.name}:orderbook" in occupied]


def wanted_pairs() -> set[str]:
    """Pair names other apps need fed whoever listens: functions named in MARKET_FEED_PAIR_SOURCES
    (market imports no other app; it finds them as realtime finds room owners)."""
    return {name for path in getattr(settings, "MARKET_FEED_PAIR_SOURCES", ()) for name in import_string(path)()}


def snapshot(name: str) -> dict | None:
    return cache.get(snapshot_key(name))


async def asnapshot(name: str) -> dict | None:
    """The stored snapshot, None before the first poll; MarketDataUnavailable while the cache
    cannot be read (a snapshot nobody can read is not available: no poll could store one either)."""
    try:
        return await cache.aget(snapshot_key(name))
    except REDIS_AWAY as exc:
        raise MarketDataUnavailable(f"market data for {name} is not available right now; try again shortly") from exc


def public_snapshot(stored: dict) -> dict:
    """A stored snapshot as clients see it (`market:snapshot`), without the feed's bookkeeping."""
    keys = ("pair", "price", "volume", "change24h", "bids", "asks", "timestamp", "sequence")
    return {key: stored.get(key) for key in keys}


def planned_per_hour() -> float:
    return max(1.0, settings.HORIZON_REQUESTS_PER_HOUR * PLANNED_SHARE)


def sharers_wanted() -> float:
    """Horizon requests per hour the other apps' pollers ask for at their own intervals: the
    functions named in HORIZON_BUDGET_SHARERS (market imports no other app)."""
    return float(sum(import_string(path)() for path in getattr(settings, "HORIZON_BUDGET_SHARERS", ())))


def sharers_granted(wanted: float) -> float:
    """Requests per hour the other apps' pollers may spend when they ask for `wanted`."""
    return min(wanted, planned_per_hour() * SHARERS_MAX_SHARE)


def sharers_stretch() -> float:
    """By how much the other apps' pollers lengthen their intervals to fit their share: 1 while
    what they ask for fits it."""
    wanted = sharers_wanted()
    return 1.0 if wanted <= 0 else max(1.0, wanted / sharers_granted(wanted))


def feed_interval(active: int, now: float | None = None) -> float:
    """Seconds between two polls of one pair, so that all active pairs fit what the other
    pollers leave of the plan.

    Horizon's own rate-limit headers, when they say less is left than the plan needs before the
    window resets, stretch the interval to what remains (less the other pollers' share).
    """
    now = time.time() if now is None else now
    others = sharers_granted(sharers_wanted())
    usable = max(1.0, planned_per_hour() - others)
    interval = max(settings.MARKET_MIN_POLL_INTERVAL, 3600.0 * REQUESTS_PER_POLL * max(active, 1) / usable)
    limit = cache.get(RATELIMIT_KEY)
    if limit and limit.get("remaining") is not None and limit.get("resetAt", 0) > now:
        reset_in = limit["resetAt"] - now
        remaining = limit["remaining"] - others * reset_in / 3600.0
        needed = REQUESTS_PER_POLL * max(active, 1) * reset_in / interval
        if remaining < needed:
            interval = max(interval, reset_in * REQUESTS_PER_POLL * max(active, 1) / max(remaining, 1))
    return interval


def feed_paused_until() -> float:
    return (cache.get(PAUSE_KEY) or {}).get("until", 0.0)


def feed_pair_state(name: str) -> dict:
    return cache.get(pair_state_key(name)) or {}


def feed_budget() -> dict:
    """The feed's schedule and spend, for /metrics and /api/market/feed."""
    now = time.time()
    pairs = active_pairs()
    hour = int(now // 3600)
    pause = cache.get(PAUSE_KEY) or {}
    members = room_members() or {}
    wanted = sharers_wanted()
    return {
        "mode": settings.MARKET_FEED_MODE,
        "runner": "in-process" if settings.MARKET_FEED_IN_PROCESS else "celery",
        "horizon": settings.STELLAR_HORIZON_URL,
        "network": settings.STELLAR_NETWORK,
        "requestsPerHour": settings.HORIZON_REQUESTS_PER_HOUR,
        "budgetShare": PLANNED_SHARE,
        "sharersWantedPerHour": round(wanted, 1),
        "sharersGrantedPerHour": round(sharers_granted(wanted), 1),
        "requestsPerPoll": REQUESTS_PER_POLL,
        "activePairs": [pair.name for pair in pairs],
        "pollIntervalSeconds": round(feed_interval(len(pairs), now), 3),
        "spentThisHour": cache.get(spend_key(hour), 0),
        "spentLastHour": cache.get(spend_key(hour - 1), 0),
        "rateLimit": cache.get(RATELIMIT_KEY),
        "pausedUntil": pause.get("until") if pause.get("until", 0) > now else None,
        "pauseReason": pause.get("reason") if pause.get("until", 0) > now else None,
        "pairs": {
            pair.name: {
                **{k: v for k, v in feed_pair_state(pair.name).items()},
                # sockets in its rooms, the order book's counted too, cluster-wide
                "subscribers": members.get(f"market:{pair.name}", 0) + members.get(f"market:{pair.name}:orderbook", 0),
                "sequence": (snapshot(pair.name) or {}).get("sequence"),
            }
            for pair in pairs
        },
    }


def feed_health() -> str:
    """For /health: "ok", or why the market feed is not being driven (named in HEALTH_CHECKS)."""
    if settings.MARKET_FEED_IN_PROCESS:
        return "ok"  # runs in the server process itself, started by the first market event
    last = cache.get(BEAT_KEY)
    stale_after = max(30.0, BEAT_STALE_TICKS * settings.MARKET_MIN_POLL_INTERVAL)
    driver = "Celery beat tick"
    if settings.MARKET_FEED_MODE == "stream":  # market_stream polls at least once a minute
        stale_after, driver = 180.0, "market_stream poll"
    if last is None:
        return f"failed: no {driver} seen yet"
    if time.time() - last > stale_after:
        return f"failed: no {driver} for {int(time.time() - last)} s"
    return "ok"
