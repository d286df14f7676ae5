"""batching.Coalescer: calls that come while a batch gathers or is in flight go together, each
caller gets its own answer, and a batch waits turns of the event loop, never a timer."""

from __future__ import annotations

import asyncio

import pytest

from realtime.batching import GATHER_TURNS, Coalescer


def turn_counter(loop: asyncio.AbstractEventLoop) -> list[int]:
    """[turns so far], counted by a callback that reschedules itself each turn until stopped
    (set the count to -1)."""
    count = [0]

    def tick() -> None:
        if count[0] >= 0:
            count[0] += 1
            loop.call_soon(tick)

    loop.call_soon(tick)
    return count


async def test_calls_arriving_over_the_next_turns_go_in_one_batch():
    batches = []

    async def send(items):
        batches.append(items)
        return [item * 10 for item in items]

    coalesce = Coalescer(send)
    loop = asyncio.get_running_loop()
    answers = []

    def call_in(turns: int, item: int) -> None:
        # A connection whose call comes some turns later: under a burst, each turn runs other
        # connections' work, which is where their calls come from.
        if turns:
            loop.call_soon(call_in, turns - 1, item)
        else:
            answers.append(coalesce(item))

    for item in range(10):
        call_in(item * 2, item)
    while len(answers) < 10:
        await asyncio.sleep(0)
    assert [await answer for answer in answers] == [item * 10 for item in range(10)]
    assert batches == [list(range(10))]  # one round trip for calls spread over 18 turns


async def test_a_lone_call_goes_after_its_turns_not_a_timer():
    loop = asyncio.get_running_loop()

    async def send(items):
        return items

    turns = turn_counter(loop)
    assert await Coalescer(send)("alone") == "alone"
    taken, turns[0] = turns[0], -1
    assert GATHER_TURNS <= taken <= GATHER_TURNS + 5  # turns, each microseconds on an idle loop


async def test_calls_during_a_batch_in_flight_go_in_the_next_and_a_failure_reaches_its_callers():
    release = asyncio.Event()
    batches = []

    async def send(items):
        batches.append(items)
        if items == ["first"]:
            await release.wait()
            raise ConnectionError("gone")
        return [f"{item}!" for item in items]

    coalesce = Coalescer(send)
    first = coalesce("first")
    while not batches:
        await asyncio.sleep(0)
    later = [coalesce("a"), coalesce("b")]
    release.set()
    with pytest.raises(ConnectionError):
        await first
    assert [await answer for answer in later] == ["a!", "b!"]
    assert batches == [["first"], ["a", "b"]]
