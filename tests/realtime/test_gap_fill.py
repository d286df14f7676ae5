"""What a process reads back from the Redis event log after its subscriber connection returns."""

from __future__ import annotations

import asyncio
import os

from realtime import gap_fill
from realtime.gap_fill import LogGapFill
from realtime.recovery import RedisEventLog, offset_key
from tests.servers import REDIS_URL


def ms(offset: str) -> int:
    return offset_key(offset)[0]


async def test_events_in_the_process_rooms_since_it_joined_them_and_since_its_last_delivery(monkeypatch):
    log = RedisEventLog(REDIS_URL, f"test-gap-{os.getpid()}", max_age_ms=60_000)
    fill = LogGapFill(log)
    try:
        before_join = await log.append("/", ("market:A_B",), "e", "before join")
        await asyncio.sleep(0.05)
        first = await log.append("/", ("market:A_B",), "e", "first")
        await log.append("/", ("market:C_D",), "e", "not our room")
        both = await log.append("/", ("market:C_D", "user:u1"), "e", "in one of ours")
        ours = {"market:A_B": ms(first) + 1000, "user:u1": ms(first) + 1000}  # joined_ms - skew = first's ms

        messages = await fill(None, ours)
        assert [m["frames"][0] for m in messages] == [
            f'42["e","first","{first}"]', f'42["e","in one of ours","{both}"]',
        ]
        assert messages[1]["rooms"] == ["market:C_D", "user:u1"] and messages[1]["offset"] == both
        assert before_join not in [m["offset"] for m in messages]

        monkeypatch.setattr(gap_fill, "REWIND_SECONDS", 0.0)  # read from the last delivery on
        await asyncio.sleep(0.05)
        delivered = await log.append("/", ("market:A_B",), "e", "delivered last")
        await asyncio.sleep(0.01)
        later = await log.append("/", ("market:A_B",), "e", "later")
        offsets = [m["offset"] for m in await fill(delivered, ours)]
        assert offsets[-1] == later and first not in offsets and both not in offsets
        assert await fill(None, {}) == []  # in no room: nothing to read
    finally:
        await log.client.delete(log.key)
        await log.client.aclose()
