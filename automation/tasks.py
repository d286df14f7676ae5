"""The engine's interfaces: Celery tasks, and the same work in-process for the embedded default.

Each calls a service (engine, execution, recovery), then announces the runs it fired or ended:
after the service's database transaction committed, it claims what they owe
(automation.announcements), emits it and marks it announced; triggered before the execution is
queued (which is queued even if that emit failed). Retries live here: an execution that failed
for a passing reason is tried again after EXECUTION_BACKOFF_SECONDS, doubling, until
execution.EXECUTION_ATTEMPTS; then the run ends in automation:error. An emit through a Redis
fault is retried for emit_retry_seconds() and otherwise given back. The sweep (beat
`automation.sweep_runs`, or a loop in the server on the embedded default) takes back the runs
whose worker or message was lost (automation.recovery), queues their next attempt, and emits
the events a fault left owed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from celery import shared_task
from channels.db import database_sync_to_async
from django.conf import settings

from realtime.api import RealtimeError, emit, emit_sync, room_members

from . import announcements, engine, execution, recovery

logger = logging.getLogger(__name__)

# Four retries after the first attempt, 1 s doubling (1, 2, 4, 8: 15 s in all): a Horizon
# restart or a brief 5xx burst passes within that; a longer outage is reported to the owner
# rather than paying much later than the trigger asked.
EXECUTION_RETRIES = execution.EXECUTION_ATTEMPTS - 1
EXECUTION_BACKOFF_SECONDS = 1.0
# A server process starts with no socket: those of the one before it (killed, or restarted)
# dropped with it and come back over the next seconds (socket.io-client retries at most 7.5 s
# apart: reconnectionDelayMax 5 s, +-50 %; a phone waking takes longer). For this long after the
# engine starts, a run's events go out only once someone is in one of its rooms; the others stay
# owed, and the sweep sends them as their owner is back, or when the window ends (then to
# whoever listens: nobody may come). Emitted at once, the events a dead process owed went to
# empty rooms: the first request after a restart (a health check, another user) started the
# sweep before any owner could sign in again.
RECONNECT_WINDOW_SECONDS = 30.0


def emit_retry_seconds() -> float:
    """How long a task keeps retrying an emit through a channel-layer (Redis) fault before it
    gives the claim back (the sweep emits it once Redis is back): within a third of the claim's
    lease, so no other worker claims the event while this one may still send it."""
    return min(30.0, settings.AUTOMATION_ANNOUNCE_LEASE_SECONDS / 3)


def backoff_seconds(retries: int) -> float:
    return EXECUTION_BACKOFF_SECONDS * 2 ** retries


def audience() -> set[str] | None:
    """The rooms with someone in them within RECONNECT_WINDOW_SECONDS of the engine's start
    (only runs heard there are announced); None past it, or when unknown (announce them all)."""
    if InProcessSweeper.window_ends is None or time.monotonic() >= InProcessSweeper.window_ends:
        return None
    members = room_members()
    return None if members is None else set(members)


def emit_all_sync(events) -> None:
    """Events that are not a run's (an unreadable trigger's error): best effort, not owed."""
    for rooms, event, data in events:
        emit_sync(rooms, event, data, retry_for=emit_retry_seconds())


def _announce_sync(claimed) -> list[str]:
    """Emit claimed events in order, marking each; on a failed emit give back its claim and every
    claim after it (Redis is away: they would wait out their retries one by one); the names sent."""
    sent: list[str] = []
    for index, (claim, stage, (rooms, event, data)) in enumerate(claimed):
        try:
            emit_sync(rooms, event, data, retry_for=emit_retry_seconds(), event_id=announcements.event_id_of(claim, stage, rooms))
        except Exception:
            logger.exception("automation: %s of run %s not emitted; the sweep emits it", event, claim.pk)
            for left in dict.fromkeys(later for later, _, _ in claimed[index:]):
                announcements.announcement_release(left)
            break
        announcements.announcement_done(claim, stage)
        sent.append(event)
    return sent


def announce_runs_sync(run_ids) -> list[str]:
    """Emit what these runs owe, at once (the task that fired or ended them, or a settlement's
    receiver: in the server process on the embedded default, within its reconnect window)."""
    return _announce_sync(announcements.runs_announce_now(run_ids=run_ids, audience=audience()))


def announce_owed_sync() -> list[str]:
    """Emit every owed event (the sweep's pass)."""
    return _announce_sync(announcements.announcements_claim())


@shared_task(name="automation.evaluate_price")
def evaluate_price(pair: str, price: float, sequence: int, timestamp: int) -> dict:
    result = engine.automation_evaluate_price(pair=pair, price=price, sequence=sequence, timestamp=timestamp)
    try:
        emit_all_sync(result.events)
    except RealtimeError:  # EmitFailed: the runs are committed and must run all the same
        logger.warning("automation: the events of %s #%s not emitted: the channel layer is unreachable", pair, sequence)
    announce_runs_sync(result.runs)  # triggered; one not sent is owed, and the sweep sends it
    for run_id in result.runs:
        execute_run.delay(run_id)  # the broker down too: the sweep takes the run once it is back
    return {"pair": pair, "sequence": sequence, "fired": result.runs}


@shared_task(name="automation.execute_run")
def execute_run(run_id: str, attempts: int = 0) -> dict:
    """Attempt `attempts + 1` of the run (a redelivered or superseded one does nothing)."""
    try:
        ended = execution.run_execute(run_id=run_id, attempts=attempts)
    except execution.Retryable as exc:
        if exc.attempts >= execution.EXECUTION_ATTEMPTS:
            ended = execution.run_give_up(run_id=run_id, error=str(exc))
        else:
            countdown = backoff_seconds(exc.attempts - 1)
            logger.warning("automation run %s: %s; retry %d in %.0f s", run_id, exc, exc.attempts, countdown)
            execution.run_defer(run_id=run_id, attempts=exc.attempts, seconds=countdown)
            execute_run.apply_async((run_id, exc.attempts), countdown=countdown)
            return {"run": run_id, "retry": exc.attempts}
    return {"run": run_id, "events": announce_runs_sync(ended)}


@shared_task(name="automation.sweep_runs", ignore_result=True)
def sweep_runs() -> None:
    """Beat: queue the next attempt of each run nobody holds; end submitted runs that missed
    their settlement; emit what runs owe (their emit failed, or its worker died)."""
    for run_id, attempts in recovery.runs_stale_take():
        logger.warning("automation run %s: not held since its attempt %d (a worker or message was lost); queued again", run_id, attempts)
        execute_run.delay(run_id, attempts)
    recovery.runs_settle_missed()
    announce_owed_sync()


# -- in-process (no Celery): the server's event loop, sync work in threads ------------------------

_running: set[asyncio.Task] = set()  # strong references: a bare ensure_future may be collected


async def emit_all(events) -> None:
    for rooms, event, data in events:
        await emit(rooms, event, data)


async def _announce(claimed) -> None:
    """As _announce_sync, with the async emit (a layer fault waits in the process's event queue)."""
    for index, (claim, stage, (rooms, event, data)) in enumerate(claimed):
        try:
            await emit(rooms, event, data, event_id=announcements.event_id_of(claim, stage, rooms))
        except Exception:
            logger.exception("automation: %s of run %s not emitted; the sweep emits it", event, claim.pk)
            for left in dict.fromkeys(later for later, _, _ in claimed[index:]):
                await database_sync_to_async(announcements.announcement_release)(left)
            return
        await database_sync_to_async(announcements.announcement_done)(claim, stage)


async def announce_runs(run_ids) -> None:
    if run_ids:
        heard = audience()  # here, in the event loop whose sockets and rooms it reads
        await _announce(await database_sync_to_async(announcements.runs_announce_now)(run_ids=run_ids, audience=heard))


async def announce_owed() -> None:
    heard = audience()
    await _announce(await database_sync_to_async(announcements.announcements_claim)(audience=heard))


async def evaluate_in_process(*, pair: str, price: float, sequence: int, timestamp: int) -> None:
    result = await database_sync_to_async(engine.automation_evaluate_price)(pair=pair, price=price, sequence=sequence, timestamp=timestamp)
    try:
        await emit_all(result.events)
    except RealtimeError:
        logger.warning("automation: the events of %s #%s not emitted", pair, sequence)
    try:
        await announce_runs(result.runs)
    except Exception:  # the database: the runs are committed and must run all the same (the sweep announces)
        logger.exception("automation: the triggered events of %s #%s not announced", pair, sequence)
    for run_id in result.runs:
        _start(execute_in_process(run_id))


def _start(coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _running.add(task)
    task.add_done_callback(_running.discard)


async def execute_in_process(run_id: str, attempts: int = 0) -> None:
    while True:
        try:
            ended = await database_sync_to_async(execution.run_execute)(run_id=run_id, attempts=attempts)
            break
        except execution.Retryable as exc:
            if exc.attempts >= execution.EXECUTION_ATTEMPTS:
                ended = await database_sync_to_async(execution.run_give_up)(run_id=run_id, error=str(exc))
                break
            attempts, countdown = exc.attempts, backoff_seconds(exc.attempts - 1)
            logger.warning("automation run %s: %s; retry %d in %.0f s", run_id, exc, attempts, countdown)
            await database_sync_to_async(execution.run_defer)(run_id=run_id, attempts=attempts, seconds=countdown)
            await asyncio.sleep(countdown)
        except Exception:  # the sweep takes the run back once its hold ends
            logger.exception("automation run %s: execution failed", run_id)
            return
    await announce_runs(ended)


class InProcessSweeper:
    """The sweep inside the server process (no Celery): after a restart it takes back the runs
    the previous process left open, and any whose in-process execution failed, and emits what
    runs owe (the previous process died between a commit and its emit) once their owners can
    hear it (RECONNECT_WINDOW_SECONDS)."""

    _task: asyncio.Task | None = None
    window_ends: float | None = None  # monotonic: the end of the reconnect window after the start

    @classmethod
    def ensure_running(cls) -> None:
        if cls.window_ends is None:
            cls.window_ends = time.monotonic() + RECONNECT_WINDOW_SECONDS
        if cls._task is None or cls._task.done():
            cls._task = asyncio.ensure_future(cls().run())

    async def run(self) -> None:
        while True:
            try:
                for run_id, attempts in await database_sync_to_async(recovery.runs_stale_take)():
                    logger.warning("automation run %s: not held since its attempt %d; executed again", run_id, attempts)
                    _start(execute_in_process(run_id, attempts))
                await database_sync_to_async(recovery.runs_settle_missed)()
                await announce_owed()
            except Exception:  # a database hiccup must not end the sweeper
                logger.exception("automation sweep failed")
            await asyncio.sleep(settings.AUTOMATION_SWEEP_INTERVAL)


def ensure_engine_running() -> None:
    """On the embedded default, start the in-process sweep and market feed with the server, so
    automations get prices whoever subscribes, including ones enabled later, and runs a previous
    process left open end. It costs nothing idle: the feed polls only pairs someone here
    subscribed to or an active automation watches; the sweep is one indexed query."""
    from market.tasks import ensure_feed_running

    if settings.AUTOMATION_IN_PROCESS:
        InProcessSweeper.ensure_running()
        if settings.MARKET_FEED_IN_PROCESS:
            ensure_feed_running()
