"""Run a coroutine at once, and make it a task only if it has to wait (Python 3.12's eager tasks).

The fan-out writes one frame to thousands of sockets per event. A write almost always completes
without waiting, so a task per write would cost a scheduling round per socket per message; but
awaiting each write in turn lets one socket whose send buffer is full (the ASGI server's `send`
blocks until the transport drains) stall delivery to every socket after it. Starting the write
eagerly gives both: no task when it finishes at once, and a task (so the caller moves on) when it
must wait. Python 3.11 has no eager task factory, so the first step is taken by hand here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> asyncio.Future | None:
    """Run `coro` up to its first suspension: None if it finished, else a future for the rest.

    Exceptions raised before the first suspension propagate to the caller, as awaiting would.
    """
    return result_or_future(coro)[1]


def result_or_future(coro: Coroutine[Any, Any, Any]) -> tuple[Any, asyncio.Future | None]:
    """Run `coro` up to its first suspension: (its result, None) if it finished without one,
    else (None, a future for the rest). A receive from a queue that holds something returns
    it at once; one from an empty queue is left waiting for the next item, which nothing loses."""
    try:
        waiting_on = coro.send(None)
    except StopIteration as done:
        return done.value, None
    return None, asyncio.ensure_future(_resume(coro, waiting_on))


async def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive `coro` on from where start_eagerly left it, as asyncio's Task would."""
    while True:
        try:
            if waiting_on is None:  # a bare yield: asyncio's "let others run"
                await asyncio.sleep(0)
            else:
                # An asyncio future: wait for it here instead of in a Task, clearing the flag
                # a Task clears (a future that was yielded is marked "blocking" until then).
                waiting_on._asyncio_future_blocking = False
                await waiting_on
        except asyncio.CancelledError:
            # Cancelling this task cancelled the future too: let the coroutine see that
            # (its own await raises CancelledError) and clean up as it would in a Task.
            if not (isinstance(waiting_on, asyncio.Future) and waiting_on.cancelled()):
                coro.close()
                raise
        except Exception:
            pass  # the future's exception: the coroutine reads it from the future below
        except BaseException:  # GeneratorExit (this wrapper closed unfinished), KeyboardInterrupt
            coro.close()
            raise
        try:
            waiting_on = coro.send(None)
        except StopIteration as stop:
            return stop.value
