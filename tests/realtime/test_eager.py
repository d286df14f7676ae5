"""start_eagerly: a coroutine that need not wait costs no task; one that must wait becomes one."""

import asyncio

import pytest

from realtime.eager import start_eagerly


async def test_a_coroutine_that_does_not_wait_finishes_before_start_eagerly_returns():
    done = []

    async def write():
        done.append(1)

    assert start_eagerly(write()) is None
    assert done == [1]


async def test_a_coroutine_that_waits_continues_in_a_task_and_returns_its_value():
    gate = asyncio.Event()
    steps = []

    async def write():
        steps.append("before")
        await gate.wait()
        steps.append("after")
        return 42

    pending = start_eagerly(write())
    assert steps == ["before"] and not pending.done()
    gate.set()
    assert await pending == 42
    assert steps == ["before", "after"]


async def test_a_bare_yield_and_several_waits_are_followed():
    first, second = asyncio.Event(), asyncio.Event()

    async def write():
        await asyncio.sleep(0)
        await first.wait()
        await second.wait()
        return "ok"

    pending = start_eagerly(write())
    first.set()
    await asyncio.sleep(0.01)
    assert not pending.done()
    second.set()
    assert await pending == "ok"


async def test_errors_before_the_first_wait_reach_the_caller_and_after_it_the_future():
    async def fails_at_once():
        raise ValueError("now")

    with pytest.raises(ValueError, match="now"):
        start_eagerly(fails_at_once())

    loop = asyncio.get_running_loop()
    later = loop.create_future()

    async def fails_later():
        await later
        return "unreachable"

    pending = start_eagerly(fails_later())
    later.set_exception(KeyError("later"))
    with pytest.raises(KeyError):
        await pending


async def test_cancelling_the_task_cancels_the_wait_and_runs_the_coroutines_cleanup():
    cleaned = []

    async def write():
        try:
            await asyncio.Event().wait()  # never set: a client that stopped reading
        finally:
            cleaned.append(True)

    pending = start_eagerly(write())
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert cleaned == [True]
