"""The engine's interfaces: Celery tasks, and the same work in-process for the embedded default.

Each calls a service (engine, execution), then emits what it returned: after the service's
database transaction committed, triggered before its execution is queued. Retries live here:
an execution that failed for a passing reason is tried again after EXECUTION_BACKOFF_SECONDS,
doubling, EXECUTION_RETRIES times; then the run ends in automation:error.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from celery import shared_task

from realtime.api import emit, emit_sync

from . import engine, execution

logger = logging.getLogger(__name__)

# Four retries after the first attempt, 1 s doubling (1, 2, 4, 8: 15 s in all): a Horizon
# restart or a brief 5xx burst passes within that; a longer outage is reported to the owner
# rather than paying much later than the trigger asked.
EXECUTION_RETRIES = 4
EXECUTION_BACKOFF_SECONDS = 1.0
# How long a task keeps retrying an emit through a channel-layer (Redis) fault.
EMIT_RETRY_SECONDS = 30.0


def backoff_seconds(retries: int) -> float:
    return EXECUTION_BACKOFF_SECONDS * 2 ** retries


def emit_all_sync(events) -> None:
    for rooms, event, data in events:
        emit_sync(rooms, event, data, retry_for=EMIT_RETRY_SECONDS)


@shared_task(name="automation.evaluate_price")
def evaluate_price(pair: str, price: float, sequence: int, timestamp: int) -> dict:
    result = engine.automation_evaluate_price(pair=pair, price=price, sequence=sequence, timestamp=timestamp)
    emit_all_sync(result.events)
    for run_id in result.runs:
        execute_run.delay(run_id)
    return {"pair": pair, "sequence": sequence, "fired": result.runs}


@shared_task(name="automation.execute_run", bind=True, max_retries=EXECUTION_RETRIES)
def execute_run(self, run_id: str) -> dict:
    try:
        events = execution.run_execute(run_id=run_id)
    except execution.Retryable as exc:
        if self.request.retries >= EXECUTION_RETRIES:
            events = execution.run_give_up(run_id=run_id, error=str(exc))
        else:
            logger.warning("automation run %s: %s; retry %d in %.0f s", run_id, exc, self.request.retries + 1,
                           backoff_seconds(self.request.retries))
            raise self.retry(countdown=backoff_seconds(self.request.retries)) from None
    emit_all_sync(events)
    return {"run": run_id, "events": [event for _, event, _ in events]}


# -- in-process (no Celery): the server's event loop, sync work in threads ------------------------

_running: set[asyncio.Task] = set()  # strong references: a bare ensure_future may be collected


async def emit_all(events) -> None:
    for rooms, event, data in events:
        await emit(rooms, event, data)


async def evaluate_in_process(*, pair: str, price: float, sequence: int, timestamp: int) -> None:
    result = await sync_to_async(engine.automation_evaluate_price)(pair=pair, price=price, sequence=sequence, timestamp=timestamp)
    await emit_all(result.events)
    for run_id in result.runs:
        task = asyncio.ensure_future(execute_in_process(run_id))
        _running.add(task)
        task.add_done_callback(_running.discard)


async def execute_in_process(run_id: str) -> None:
    for retries in range(EXECUTION_RETRIES + 1):
        try:
            events = await sync_to_async(execution.run_execute)(run_id=run_id)
            break
        except execution.Retryable as exc:
            if retries >= EXECUTION_RETRIES:
                events = await sync_to_async(execution.run_give_up)(run_id=run_id, error=str(exc))
                break
            logger.warning("automation run %s: %s; retry %d in %.0f s", run_id, exc, retries + 1, backoff_seconds(retries))
            await asyncio.sleep(backoff_seconds(retries))
        except Exception:
            logger.exception("automation run %s: execution failed", run_id)
            return
    await emit_all(events)


def ensure_engine_running() -> None:
    """On the embedded default, start the in-process market feed with the server, so automations
    get prices whoever subscribes, including ones enabled later. It costs nothing idle: the feed
    polls only pairs someone here subscribed to or an active automation watches."""
    from django.conf import settings

    from market.tasks import ensure_feed_running

    if settings.AUTOMATION_IN_PROCESS and settings.MARKET_FEED_IN_PROCESS:
        ensure_feed_running()
