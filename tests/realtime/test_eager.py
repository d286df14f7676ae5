"""start_eagerly: a coroutine that need not wait costs no task; one that must wait becomes one."""

import asyncio

import pytest

from realtime.eager import result_or_future, start_eagerly


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


async def test_result_or_future_takes_what_is_ready_and_leaves_a_wait_for_the_next():
    queue: asyncio.Queue = asyncio.Queue()
    queue.put_nowait("ready")
    assert result_or_future(queue.get()) == ("ready", None)
    value, pending = result_or_future(queue.get())  # empty: this get waits for the next put
    assert value is None and not pending.done()
    queue.put_nowait("next")
    assert await pending == "next" and queue.empty()


def test_a_wait_left_unfinished_closes_its_coroutine_when_it_is_closed():
    """A loop that ends with a wait pending closes it: the inner coroutine's cleanup runs,
    and closing raises nothing (it used to resume the finished coroutine and fail)."""
    loop = asyncio.new_event_loop()
    cleaned = []

    async def receive():
        try:
            await loop.create_future()
        finally:
            cleaned.append(True)

    async def start():
        return result_or_future(receive())[1]

    pending = loop.run_until_complete(start())
    pending.get_coro().close()
    assert cleaned == [True]
    loop.close()
