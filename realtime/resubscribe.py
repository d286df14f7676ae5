"""Hearing that the channel layer's subscriber connection to Redis was made again.

When that connection drops, redis-py connects again and subscribes again by itself, but room
messages published in between reached no one in this process, and channels_redis says nothing
(4.3 keeps an `on_reconnect` argument and never calls it). redis-py does call each of a
connection's connect callbacks after every reconnect, after its own that subscribes again; the
fan-out registers one there (fanout.Fanout.resubscribed) and reads what it missed from the log.
"""

from __future__ import annotations

from collections.abc import Callable


def watch_resubscribes(layer, callback: Callable) -> None:
    """Have `callback(connection)` called after each reconnect of the layer's subscriber
    connections that exist now. `callback` must be a bound method (redis-py keeps a weak
    reference); registering it twice on one connection is a no-op, so call this after each
    subscribe that may have made a connection (a room's group can live on another shard)."""
    get_layer = getattr(layer, "_get_layer", None)
    if get_layer is None:
        return  # not channels_redis' pub/sub layer: the in-memory one has no connection to lose
    for shard in get_layer()._shards:
        connection = getattr(shard._pubsub, "connection", None)
        if connection is not None:
            connection.register_connect_callback(callback)
