"""The watcher's interfaces: Celery beat tasks, and the same passes in-process for the embedded default.

Each pass asks Horizon about every pending transaction (settled, failed, or timed out) and
follows every active wallet's account history from its stored cursor; then the events the
database says are owed go out, once each, to `wallet:{id}` and `user:{owner}` together.
Retries live here: a Horizon failure waits for the next pass (one TRANSACTION_POLL_INTERVAL),
an emit through a Redis fault is retried for emit_retry_seconds() (a view's for VIEW_EMIT_RETRY_SECONDS) and
otherwise given back.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from celery import shared_task
from django.conf import settings

from realtime.api import emit, emit_sync

from . import selectors, services
from .horizon import HorizonUnavailable

logger = logging.getLogger(__name__)

# How long a view's request waits for its event's emit through a Redis fault (announce_now_sync).
VIEW_EMIT_RETRY_SECONDS = 1.0


def emit_retry_seconds() -> float:
    """How long a task keeps retrying an emit through a channel-layer (Redis) fault before it
    gives the claim back: within a third of the claim's lease, so no other worker claims the
    event while this one may still send it."""
    return min(30.0, settings.TRANSACTION_ANNOUNCE_LEASE_SECONDS / 3)


def _announce_sync(claims, retry_for: float | None = None) -> list[str]:
    sent = []
    for claim, (rooms, event, data) in claims:
        try:
            emit_sync(rooms, event, data, retry_for=emit_retry_seconds() if retry_for is None else retry_for, event_id=claim.event_id)
        except Exception:
            services.announcement_release(claim)
            logger.exception("transactions: %s for %s not emitted; the next pass retries", event, data["hash"])
            continue
        services.announcement_done(claim)
        sent.append(event)
    return sent


def announce_owed_sync() -> list[str]:
    """Emit every owed event from sync code (a task, a view); the names emitted."""
    return _announce_sync(services.announcements_claim())


def announce_now_sync(tracked) -> None:
    """A view's change, emitted at once (the next pass would, a poll interval later). Through a
    Redis fault it is tried for a second only: the request answers, and the next pass sends it."""
    _announce_sync(services.tracked_announce_now(tracked), retry_for=VIEW_EMIT_RETRY_SECONDS)


@shared_task(name="transactions.watch_tick", ignore_result=True)
def watch_tick() -> None:
    """Beat: one check per pending hash, one follow per active wallet, then what is owed (no
    Horizon work while it rate-limits us, nor before the watcher's interval has passed)."""
    if selectors.watcher_paused() or not services.watcher_claim_pass():
        announce_owed.delay()
        return
    for tx_hash in selectors.pending_hashes():
        check_pending.delay(tx_hash)
    for wallet_id in selectors.followed_wallet_ids():
        follow_wallet.delay(wallet_id)
    announce_owed.delay()


@shared_task(name="transactions.check_pending")
def check_pending(tx_hash: str) -> dict:
    if selectors.watcher_paused():  # queued before Horizon's 429
        return {"hash": tx_hash, "ok": True, "skipped": "Horizon rate-limited the watcher"}
    try:
        changed = async_to_sync(services.pending_acheck)(tx_hash=tx_hash)
    except HorizonUnavailable as exc:
        if exc.rate_limited:
            services.watcher_pause(exc=exc)
        logger.warning("transactions: %s not checked (%s); the next pass retries", tx_hash, exc)
        return {"hash": tx_hash, "ok": False, "error": str(exc)}
    return {"hash": tx_hash, "ok": True, "changed": changed, "events": announce_owed_sync() if changed else []}


@shared_task(name="transactions.follow_wallet")
def follow_wallet(wallet_id: str) -> dict:
    if selectors.watcher_paused():  # queued before Horizon's 429
        return {"wallet": wallet_id, "ok": True, "skipped": "Horizon rate-limited the watcher"}
    try:
        recorded = async_to_sync(services.wallet_afollow)(wallet_id=wallet_id)
    except HorizonUnavailable as exc:
        if exc.rate_limited:
            services.watcher_pause(exc=exc)
        logger.warning("transactions: wallet %s not followed (%s); the next pass retries", wallet_id, exc)
        return {"wallet": wallet_id, "ok": False, "error": str(exc)}
    if recorded is None:
        return {"wallet": wallet_id, "ok": True, "skipped": "another process is following this wallet"}
    return {"wallet": wallet_id, "ok": True, "recorded": recorded, "events": announce_owed_sync() if recorded else []}


@shared_task(name="transactions.announce_owed")
def announce_owed() -> list[str]:
    return announce_owed_sync()


class InProcessWatcher:
    """The watcher inside the server process (no Redis, so no Celery): the same passes, emitted
    with the async emit in the server's own event loop."""

    _task: asyncio.Task | None = None

    @classmethod
    def ensure_running(cls) -> None:
        if cls._task is None or cls._task.done():
            cls._task = asyncio.ensure_future(cls().run())

    async def run(self) -> None:
        logger.info("transaction watcher running in-process against %s", settings.STELLAR_HORIZON_URL)
        while True:
            interval = settings.TRANSACTION_POLL_INTERVAL
            try:
                await self.one_pass()
                interval = await database_sync_to_async(selectors.watcher_interval)()  # its share of Horizon's budget
            except Exception:  # a bug or a database hiccup must not end the watcher
                logger.exception("transaction watcher pass failed")
            await asyncio.sleep(interval)

    async def one_pass(self) -> None:
        if not await database_sync_to_async(selectors.watcher_paused)():
            await self.ask_horizon()
        await announce_owed_async()

    async def ask_horizon(self) -> None:
        """Each pending hash, then each followed wallet; a 429 pauses the watcher and ends the pass."""
        for tx_hash in await database_sync_to_async(selectors.pending_hashes)():
            try:
                await services.pending_acheck(tx_hash=tx_hash)
            except HorizonUnavailable as exc:
                logger.warning("transactions: %s not checked (%s); the next pass retries", tx_hash, exc)
                if exc.rate_limited:
                    await database_sync_to_async(services.watcher_pause)(exc=exc)
                    return
        for wallet_id in await database_sync_to_async(selectors.followed_wallet_ids)():
            try:
                await services.wallet_afollow(wallet_id=wallet_id)
            except HorizonUnavailable as exc:
                logger.warning("transactions: wallet %s not followed (%s); the next pass retries", wallet_id, exc)
                if exc.rate_limited:
                    await database_sync_to_async(services.watcher_pause)(exc=exc)
                    return


async def announce_owed_async() -> None:
    for claim, (rooms, event, data) in await database_sync_to_async(services.announcements_claim)():
        try:
            await emit(rooms, event, data, event_id=claim.event_id)  # a layer fault waits in the process's event queue
        except Exception:
            await database_sync_to_async(services.announcement_release)(claim)
            logger.exception("transactions: %s for %s not emitted; the next pass retries", event, data["hash"])
            continue
        await database_sync_to_async(services.announcement_done)(claim)


def ensure_watcher_running() -> None:
    """Start the in-process watcher on the embedded default (from the server's first request)."""
    if settings.TRANSACTIONS_IN_PROCESS:
        InProcessWatcher.ensure_running()
