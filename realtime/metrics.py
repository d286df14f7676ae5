"""The seed's /metrics numbers: this process's, and the cluster's through Redis.

Each server process publishes its snapshot to Redis every few seconds with a short expiry, so
/metrics on any node sums the live ones and a dead node drops out by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket as socket_module
import time
from collections import Counter

from django.conf import settings

from .permissions import is_private

logger = logging.getLogger(__name__)

NODE_ID = f"{socket_module.gethostname()}:{os.getpid()}"
# Publish every 5 s, expire after 15 s: a node that stops publishing leaves the sum within 15 s.
PUBLISH_SECONDS = 5
EXPIRE_SECONDS = 15
STARTED_AT = time.time()


class ProcessMetrics:
    """Reads the numbers off this process's running server objects."""

    def __init__(self, engine, sio, fanout, emitter) -> None:
        self.engine, self.sio, self.fanout, self.emitter = engine, sio, fanout, emitter
        self._publisher: asyncio.Task | None = None

    def snapshot(self) -> dict:
        sockets = [s for session in list(self.engine.sessions.values()) for s in session.data["sio"].sockets.values()]
        rooms = Counter()
        for (namespace, room), members in list(self.fanout._members.items()):
            rooms[room] += len(members)
        times = os.times()
        return {
            "node": NODE_ID,
            "server": {
                "uptime": int(time.time() - STARTED_AT),
                "memory": _memory(),
                "cpu": {"user": int(times.user * 1e6), "system": int(times.system * 1e6)},  # µs, as Node's
                "environment": settings.NODE_ENV,
                "version": settings.GALAXY_VERSION,
            },
            "connections": {
                "total": len(sockets),
                "authenticated": sum(1 for s in sockets if s.data.get("user") is not None),
                "sessions": len(self.engine.sessions),
                "timeouts": self.engine.timeouts,
                "heartbeats": self.engine.heartbeats,
                "slowConsumers": self.engine.slow_consumers,
            },
            "rooms": dict(rooms),
            "events": self.emitter.queue.stats(),
            "recovery": {"recovered": self.sio.recovered, "notRecovered": self.sio.not_recovered},
            "rateLimits": {
                "limitedEvents": getattr(self.sio.namespaces["/"], "rate_limited", 0),
                "floodDisconnects": getattr(self.sio.namespaces["/"], "flood_disconnects", 0),
            },
            "latency": self.fanout.latency.summary(),
            "refilledEvents": self.fanout.refilled,
        }

    def ensure_publishing(self) -> None:
        if settings.REDIS_URL and (self._publisher is None or self._publisher.done()):
            self._publisher = asyncio.ensure_future(self._publish())

    async def _publish(self) -> None:
        import redis.asyncio as redis

        client = redis.from_url(settings.REDIS_URL)
        while True:
            try:
                await client.set(f"{settings.REDIS_PREFIX}:metrics:{NODE_ID}", json.dumps(self.snapshot()), ex=EXPIRE_SECONDS)
            except Exception as exc:
                logger.warning("could not publish metrics: %s", exc)
            await asyncio.sleep(PUBLISH_SECONDS)


def _memory() -> dict:
    """RSS and virtual size from /proc (named after Node's fields the seed shows)."""
    fields = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmSize"):
                    fields[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return {"rss": fields.get("VmRSS"), "heapUsed": fields.get("VmRSS"), "heapTotal": fields.get("VmSize")}


_current: ProcessMetrics | None = None


def register(metrics: ProcessMetrics) -> None:
    global _current
    _current = metrics


def current() -> ProcessMetrics | None:
    return _current


async def cluster_snapshots() -> list[dict]:
    """Every live node's snapshot (this one's fresh), or just this one without Redis."""
    local = _current.snapshot() if _current is not None else None
    snapshots = {local["node"]: local} if local else {}
    if settings.REDIS_URL:
        import redis.asyncio as redis

        client = redis.from_url(settings.REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{settings.REDIS_PREFIX}:metrics:*", count=100)]
            for raw in await client.mget(keys) if keys else []:
                if raw:
                    snap = json.loads(raw)
                    snapshots.setdefault(snap["node"], snap)
        except Exception as exc:
            logger.warning("cluster metrics unavailable, showing this node only: %s", exc)
        finally:
            await client.aclose()
    return list(snapshots.values())


def summarise(snapshots: list[dict], *, show_private: bool) -> dict:
    """The seed's JSON over all nodes; private room names only for admins (the seed leaks them)."""
    rooms = Counter()
    for snap in snapshots:
        rooms.update(snap["rooms"])
    stats = []
    hidden = Counter()
    for room, members in sorted(rooms.items()):
        if is_private(room) and not show_private:
            hidden[room.split(":", 1)[0] + ":*"] += members
        else:
            stats.append({"room": room, "members": members})
    stats += [{"room": kind, "members": members} for kind, members in sorted(hidden.items())]
    local = next((s for s in snapshots if s["node"] == NODE_ID), snapshots[0] if snapshots else None)
    sum_of = lambda block, key: sum((s.get(block, {}).get(key) or 0) for s in snapshots)  # noqa: E731
    return {
        "server": local["server"] if local else {},
        "nodes": [s["node"] for s in snapshots],
        "connections": {k: sum_of("connections", k) for k in ("total", "authenticated", "timeouts", "heartbeats", "slowConsumers")},
        "rooms": {"total": len(rooms), "stats": stats},
        "recovery": {k: sum_of("recovery", k) for k in ("recovered", "notRecovered")},
        "rateLimits": {k: sum_of("rateLimits", k) for k in ("limitedEvents", "floodDisconnects")},
        "latency": {s["node"]: s["latency"] for s in snapshots},
        "events": {
            "queueSize": sum_of("events", "queueSize"),
            "maxQueueSize": local["events"]["maxQueueSize"] if local else settings.EVENT_QUEUE_MAX,
            "oldestItem": min((s["events"]["oldestItem"] for s in snapshots if s["events"]["oldestItem"]), default=None),
            "retries": sum_of("events", "retries"),
            "dropped": sum_of("events", "dropped"),
            # read back from the log after a node's layer connection re-subscribed
            "refilled": sum(s.get("refilledEvents", 0) for s in snapshots),
        },
    }


def prometheus(snapshots: list[dict], extra: dict | None = None) -> str:
    """Prometheus text exposition, one sample per node (and the domain apps' extra blocks)."""
    lines = []

    def metric(name: str, kind: str, help_text: str, value_of) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for snap in snapshots:
            lines.append(f'{name}{{node="{snap["node"]}"}} {value_of(snap)}')

    metric("galaxy_connections", "gauge", "Socket.IO connections", lambda s: s["connections"]["total"])
    metric("galaxy_connections_authenticated", "gauge", "authenticated connections", lambda s: s["connections"]["authenticated"])
    metric("galaxy_heartbeats_total", "counter", "pongs received", lambda s: s["connections"]["heartbeats"])
    metric("galaxy_heartbeat_timeouts_total", "counter", "sessions closed for a missed pong", lambda s: s["connections"]["timeouts"])
    metric("galaxy_slow_consumer_disconnects_total", "counter", "sessions closed for falling too far behind", lambda s: s["connections"]["slowConsumers"])
    metric("galaxy_rooms", "gauge", "rooms with local members", lambda s: len(s["rooms"]))
    metric("galaxy_room_members", "gauge", "room memberships", lambda s: sum(s["rooms"].values()))
    metric("galaxy_event_queue_size", "gauge", "events waiting for the channel layer", lambda s: s["events"]["queueSize"])
    metric("galaxy_event_queue_retries_total", "counter", "delivery retries", lambda s: s["events"]["retries"])
    metric("galaxy_event_queue_dropped_total", "counter", "events dropped from a full queue", lambda s: s["events"]["dropped"])
    metric("galaxy_process_cpu_seconds_total", "counter", "CPU time", lambda s: (s["server"]["cpu"]["user"] + s["server"]["cpu"]["system"]) / 1e6)
    metric("galaxy_process_resident_memory_bytes", "gauge", "resident memory", lambda s: s["server"]["memory"]["rss"] or 0)
    metric("galaxy_recovered_total", "counter", "sockets that recovered their state", lambda s: s.get("recovery", {}).get("recovered", 0))
    metric("galaxy_not_recovered_total", "counter", "sockets that asked to recover too late", lambda s: s.get("recovery", {}).get("notRecovered", 0))
    metric("galaxy_rate_limited_events_total", "counter", "events refused by rate limits", lambda s: s.get("rateLimits", {}).get("limitedEvents", 0))
    metric("galaxy_flood_disconnects_total", "counter", "sockets cut off for flooding", lambda s: s.get("rateLimits", {}).get("floodDisconnects", 0))
    metric("galaxy_fanout_latency_p99_seconds", "gauge", "emit to fan-out latency, p99 of recent", lambda s: (s.get("latency", {}).get("p99Ms") or 0) / 1000)
    metric("galaxy_fanout_messages_total", "counter", "room messages fanned out", lambda s: s.get("latency", {}).get("count", 0))
    metric("galaxy_fanout_refilled_events_total", "counter", "room events read back from the log after the layer re-subscribed",
           lambda s: s.get("refilledEvents", 0))
    market = (extra or {}).get("market") or {}
    if "spentThisHour" in market:
        lines.append("# HELP galaxy_horizon_requests_this_hour Horizon requests spent this hour")
        lines.append("# TYPE galaxy_horizon_requests_this_hour gauge")
        lines.append(f"galaxy_horizon_requests_this_hour {market['spentThisHour']}")
        lines.append("# HELP galaxy_horizon_requests_budget Horizon requests allowed per hour")
        lines.append("# TYPE galaxy_horizon_requests_budget gauge")
        lines.append(f"galaxy_horizon_requests_budget {market['requestsPerHour']}")
        lines.append("# HELP galaxy_horizon_poll_interval_seconds seconds between polls of a pair")
        lines.append("# TYPE galaxy_horizon_poll_interval_seconds gauge")
        lines.append(f"galaxy_horizon_poll_interval_seconds {market['pollIntervalSeconds']}")
    return "\n".join(lines) + "\n"


def room_members() -> dict[str, int] | None:
    """Members of each room with any, summed over the cluster, as of the nodes' last published
    snapshots (at most PUBLISH_SECONDS old); None when that cannot be known (no server has
    published, or Redis is unreachable): callers should then assume every room may be in use.

    Sync, for Celery tasks and services; in a server process without Redis, this process's rooms.
    """
    if not settings.REDIS_URL:
        return dict(_current.snapshot()["rooms"]) if _current is not None else None
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        keys = list(client.scan_iter(match=f"{settings.REDIS_PREFIX}:metrics:*", count=100))
        snapshots = [json.loads(raw) for raw in client.mget(keys) if raw] if keys else []
        client.close()
    except Exception as exc:
        logger.warning("room occupancy unknown: %s", exc)
        return None
    if not snapshots:
        return None
    members = Counter()
    for snap in snapshots:
        members.update(snap["rooms"])
    return {room: count for room, count in members.items() if count}


def occupied_rooms() -> set[str] | None:
    """The rooms of room_members(): those with a member anywhere (None: unknown)."""
    members = room_members()
    return None if members is None else set(members)
