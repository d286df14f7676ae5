"""The room event log: offsets in order, filtered by room, bounded in length and in age."""

from __future__ import annotations

import asyncio
import time

from realtime.recovery import MemoryEventLog, MemorySessionStore, RedisSessionStore, offset_key, valid_offset
from tests.redisproc import RedisProcess


async def test_events_after_an_offset_in_the_given_rooms_once_each():
    log = MemoryEventLog(max_age_ms=60_000)
    first = await log.append("/", ("market:A_B",), "e", 1)
    await log.append("/", ("market:C_D",), "e", 2)
    await log.append("/", ("market:A_B", "user:u1"), "e", 3)  # one event for two rooms
    await log.append("/custom", ("market:A_B",), "e", 4)
    got = await log.since(first, "/", {"market:A_B", "user:u1"})
    assert [e.data for e in got] == [3]
    assert await log.head() == "4"


async def test_a_client_behind_what_the_log_keeps_is_told_so():
    log = MemoryEventLog(max_age_ms=60_000, max_entries=3)
    offsets = [await log.append("/", ("market:A_B",), "e", n) for n in range(5)]
    assert await log.since(offsets[0], "/", {"market:A_B"}) is None  # trimmed by length
    assert [e.data for e in await log.since(offsets[2], "/", {"market:A_B"})] == [3, 4]


async def test_entries_older_than_the_recovery_window_are_dropped():
    log = MemoryEventLog(max_age_ms=50)
    old = await log.append("/", ("market:A_B",), "e", "old")
    await asyncio.sleep(0.1)
    await log.append("/", ("market:A_B",), "e", "new")
    assert await log.since(str(int(old) - 1), "/", {"market:A_B"}) is None  # trimmed by age


async def test_saved_sessions_are_taken_once_and_expire():
    store = MemorySessionStore(ttl_ms=50)
    await store.save("p1", {"sid": "s"})
    assert await store.take("p1") == {"sid": "s"}
    assert await store.take("p1") is None
    await store.save("p2", {"sid": "t"})
    await asyncio.sleep(0.1)
    assert await store.take("p2") is None


async def test_a_session_saved_while_redis_is_away_is_found_here_and_by_others_once_it_is_back(tmp_path):
    """A client that drops during a Redis outage: its state stays in this process (which finds
    it), and reaches Redis once it is back (where another process finds it), with what is left
    of its time."""
    redis_server = RedisProcess(tmp_path).start()
    here = RedisSessionStore(redis_server.url, ttl_ms=60_000, prefix="test-held")
    here.RETRY_SECONDS = 0.2
    try:
        redis_server.stop()
        await here.save("p1", {"sid": "one"})
        await here.save("p2", {"sid": "two"})
        assert await here.take("p1") == {"sid": "one"}
        redis_server.start()
        elsewhere = RedisSessionStore(redis_server.url, ttl_ms=60_000, prefix="test-held")
        for _ in range(50):
            if (state := await elsewhere.take("p2")) is not None:
                break
            await asyncio.sleep(0.1)
        assert state == {"sid": "two"}
        assert await here.take("p2") is None and await elsewhere.take("p1") is None  # each once
        await elsewhere.client.aclose()
    finally:
        await here.client.aclose()
        redis_server.stop()


def test_offsets_compare_across_both_forms():
    assert offset_key("1700000000000-3") < offset_key("1700000000001-0")
    assert offset_key("12") < offset_key("13")
    assert valid_offset("5") and valid_offset("1-2")
    assert not valid_offset("x") and not valid_offset(5) and not valid_offset("1" * 50)


async def test_the_redis_stream_is_trimmed_by_age_and_says_so():
    import os

    from realtime.recovery import RedisEventLog
    from tests.servers import REDIS_URL

    log = RedisEventLog(REDIS_URL, f"test-recovery-{os.getpid()}", max_age_ms=50)
    node = int((await log.client.config_get("stream-node-max-entries"))["stream-node-max-entries"])
    try:
        start = f"{int(time.time() * 1000) - 1}-0"
        await log.append("/", ("market:A_B",), "e", "old")
        assert [e.data for e in await log.since(start, "/", {"market:A_B"})] == ["old"]
        assert [e.data for e in await log.since("0-0", "/", {"market:A_B"})] == ["old"]  # nothing trimmed yet
        for _ in range(node):  # a full node: `~` trims whole ones
            await log.append("/", ("market:C_D",), "e", "other")
        await asyncio.sleep(0.1)
        recent = f"{int(time.time() * 1000) - 1}-0"
        new = await log.append("/", ("market:A_B",), "e", {"b": b"\x00"})  # binary survives
        assert await log.head() == new
        kept = [e.data for e in await log.after("0-0")]
        assert "old" not in kept and len(kept) <= node  # gone from Redis, by that append
        assert await log.since(start, "/", {"market:A_B"}) is None  # older than the window: told so
        assert [e.data for e in await log.since(recent, "/", {"market:A_B"})] == [{"b": b"\x00"}]
        assert [e.data for e in await log.since(new, "/", {"market:A_B"})] == []
    finally:
        await log.client.delete(log.key)
        await log.client.aclose()


async def test_the_redis_stream_is_bounded_when_every_append_has_a_log_of_its_own():
    """emit_sync (Celery, views) makes a log object per event: each append trims, by age and by
    length, and the boundary recovery checks is the stream's own (its first entry), however
    much more than asked the approximate trim keeps."""
    import os

    from realtime.recovery import RedisEventLog
    from tests.servers import REDIS_URL

    async def append(n: int, max_entries: int = 50, max_age_ms: int = 60_000) -> str:
        log = RedisEventLog(REDIS_URL, prefix, max_age_ms=max_age_ms, max_entries=max_entries)
        try:
            return await log.append("/", ("market:A_B",) if n % 2 else ("market:C_D",), "e", n)
        finally:
            await log.client.aclose()

    prefix = f"test-bounded-{os.getpid()}"
    log = RedisEventLog(REDIS_URL, prefix, max_age_ms=60_000)
    node = int((await log.client.config_get("stream-node-max-entries"))["stream-node-max-entries"])
    try:
        offsets = [await append(n) for n in range(500)]
        length = await log.client.xlen(log.key)
        assert 50 <= length <= 50 + node  # by length: at most a node's worth more than asked
        first = (await log.client.xrange(log.key, count=1))[0][0].decode()
        kept_from = offsets.index(first)
        assert await log.since(offsets[0], "/", {"market:A_B"}) is None
        assert await log.since(offsets[kept_from - 1], "/", {"market:A_B"}) is None  # its next one is gone
        assert [e.data for e in await log.since(first, "/", {"market:A_B"})] == [
            n for n in range(kept_from + 1, 500) if n % 2]
        assert [e.data for e in await log.since(offsets[-3], "/", {"market:A_B"})] == [499]

        await asyncio.sleep(0.1)
        last = await append(500, max_age_ms=50)  # by age: everything before it is older than 50 ms
        assert await log.client.xlen(log.key) <= node
        assert await log.since(offsets[-1], "/", {"market:A_B", "market:C_D"}) is None
        await append(501, max_age_ms=50)
        assert [e.data for e in await log.since(last, "/", {"market:A_B", "market:C_D"})] == [501]
    finally:
        await log.client.delete(log.key)
        await log.client.aclose()


async def test_connects_in_a_burst_share_one_read_of_the_redis_log_head():
    import os

    from realtime.recovery import RedisEventLog
    from tests.servers import REDIS_URL

    log = RedisEventLog(REDIS_URL, f"test-head-{os.getpid()}", max_age_ms=60_000)
    try:
        newest = await log.append("/", ("market:A_B",), "e", 1)
        reads = []  # each real command the shared read sends (a spy on its connection, not a stub)
        execute = log._head_connection.execute
        log._head_connection.execute = lambda *args: reads.append(args[0]) or execute(*args)
        heads = await asyncio.gather(*(log.shared_head() for _ in range(20)))
        assert heads == [newest] * 20
        assert reads == ["XREVRANGE"]  # twenty connects, one round trip
        later = await log.append("/", ("market:A_B",), "e", 2)
        assert await log.shared_head() == later and len(reads) == 2  # afresh once the last one is done
    finally:
        await log.client.delete(log.key)
        await log.aclose()


async def test_an_append_whose_answer_is_lost_is_logged_once():
    """Redis logs the event, then the connection drops before its answer arrives. The client's
    retry, and an emitter's retry of the same event, get the offset it was given: the event is
    in the log once (twice, recovery would replay it twice and a gap fill deliver it twice)."""
    import os

    import redis.asyncio

    from realtime.recovery import RedisEventLog
    from tests.servers import REDIS_URL
    from tests.tcpproxy import TcpProxy

    prefix = f"test-append-once-{os.getpid()}"
    direct = redis.asyncio.Redis.from_url(REDIS_URL)
    proxy = await TcpProxy(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    log = RedisEventLog(f"redis://127.0.0.1:{proxy.port}/0", prefix, max_age_ms=60_000)
    try:
        await log.append("/", ("market:A_B",), "e", {"n": 0}, "first")  # the script is loaded
        proxy.lose_reply_to(b"EVALSHA")
        offset = await log.append("/", ("market:A_B",), "e", {"n": 1}, "second")
        assert await log.append("/", ("market:A_B",), "e", {"n": 1}, "second") == offset  # the emitter's retry
        entries = await direct.xrange(log.key)
        assert [entry_id.decode() for entry_id, _ in entries][1:] == [offset]
    finally:
        await log.client.aclose()
        await proxy.stop()
        await direct.delete(log.key, *[key async for key in direct.scan_iter(match=f"{log.key}:appended:*")])
        await direct.aclose()


async def test_a_take_whose_answer_is_lost_still_recovers():
    """Redis hands over a saved session state, then the connection drops before the answer
    arrives. The client's retry gets the same state (a plain GETDEL's retry found nothing: the
    reconnection was not recovered), and nobody else can take it again."""
    import os

    import redis.asyncio

    from tests.servers import REDIS_URL
    from tests.tcpproxy import TcpProxy

    prefix = f"test-take-once-{os.getpid()}"
    direct = redis.asyncio.Redis.from_url(REDIS_URL)
    proxy = await TcpProxy(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    store = RedisSessionStore(f"redis://127.0.0.1:{proxy.port}/0", ttl_ms=60_000, prefix=prefix)
    try:
        await store.save("warm", {"rooms": []})
        assert await store.take("warm") == {"rooms": []}  # the script is loaded
        await store.save("pid-1", {"rooms": ["market:A_B"]})
        proxy.lose_reply_to(b"pid-1")  # the take's command, whatever it is
        assert await store.take("pid-1") == {"rooms": ["market:A_B"]}
        assert await store.take("pid-1") is None  # taken once
    finally:
        await store.client.aclose()
        await proxy.stop()
        await direct.delete(*[key async for key in direct.scan_iter(match=f"{prefix}:*")] or ["-"])
        await direct.aclose()
