"""Sync sends retried in a background thread, so the thread that asked for one waits a moment at most.

An owner change's room re-check (permissions.room_access_changed), or an automation's status
event, is sent after the commit, in the request or task that saved the row: it must not be lost
to a passing Redis outage, nor hold an admin's save or a REST call for as long as the outage
lasts. So it runs in a thread of its own, with emit_sync's backoff and deadline
(emit.call_with_retries); the caller waits for it only briefly. A process's sends go out in the
order they were asked for: each starts once the one before it is done (sent or given up on), so
two status events of one automation sent by one process never arrive swapped. Each gives up
`retry_for` after it was asked for, however long it waited for those before it.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401  (registers its exit hook before ours: see below)
import logging
import threading
import time
from typing import Callable

from .emit import EmitFailed, RoomEvent, _emit_sync_once, _rooms, call_with_retries

logger = logging.getLogger(__name__)

# How long the caller waits for the send: a healthy Redis answers in milliseconds, so in the
# usual case the send is done when the caller goes on (as when it was made inline); during an
# outage the caller is slowed by this much, not by the outage.
CALLER_WAIT_SECONDS = 1.0

_pending: set[threading.Thread] = set()
_last: threading.Thread | None = None  # the send asked for last: the next one waits for it
_order = threading.Lock()


def retry_in_background(attempt: Callable[[float | None], None], *, retry_for: float, what: str, gave_up: str) -> threading.Thread:
    """Run `attempt(timeout)` in a new thread, after the sends asked for before it, until it does
    not raise EmitFailed, for up to `retry_for` seconds (then log `what` and `gave_up`, the
    consequence, at ERROR); return once it is done or after CALLER_WAIT_SECONDS, whichever is first."""
    global _last
    with _order:
        deadline = time.monotonic() + retry_for
        thread = threading.Thread(target=_retry, args=(_last, attempt, deadline, retry_for, what, gave_up), name=f"retry {what}", daemon=True)
        _last = thread
        _pending.add(thread)
    thread.start()
    thread.join(CALLER_WAIT_SECONDS)
    return thread


def emit_in_background(room: str | list[str], event: str, data, *, retry_for: float) -> threading.Thread:
    """emit_sync, retried in the background (above) for up to `retry_for` seconds. Each retry
    sends it under the offset its first try logged, as emit_sync's do."""
    item = RoomEvent(_rooms(room), event, data, "/")
    return retry_in_background(lambda timeout: _emit_sync_once(item, timeout), retry_for=retry_for,
                               what=f"emit of {event} to {', '.join(item.rooms)}", gave_up="it is not sent")


def _retry(before: threading.Thread | None, attempt: Callable[[float | None], None], deadline: float, retry_for: float,
           what: str, gave_up: str) -> None:
    try:
        if before is not None:
            before.join()
        # Past its deadline after waiting its turn: one try (of MIN_TRY_SECONDS), no retries.
        call_with_retries(attempt, max(0.001, deadline - time.monotonic()), what)
    except EmitFailed as exc:
        logger.error("%s failed for %.0f s, given up: %s (%s)", what, retry_for, gave_up, exc)
    except Exception:  # not a layer fault: nothing a retry would mend
        logger.exception("%s failed: %s", what, gave_up)
    finally:
        _pending.discard(threading.current_thread())


def _finish_pending() -> None:
    """A process that ends meanwhile (a shell, a management command, a worker shutting down)
    waits for its sends, at most their `retry_for`, rather than dropping them. Not an atexit
    hook nor a non-daemon thread: both wait only after concurrent.futures has refused new work,
    and async_to_sync needs it. Threading's exit hooks run last registered first, so this one,
    registered after concurrent.futures' (imported above), runs before it."""
    for thread in list(_pending):
        thread.join()


threading._register_atexit(_finish_pending)
