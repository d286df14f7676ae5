"""Signals the market feed sends, so other apps can react to prices without market knowing them."""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent once per market:price_update, after it was emitted, by whichever runner emitted it
# (the Celery poll task, the in-process feed, the stream feed). Arguments: pair (name), price
# (float), sequence (the per-pair room sequence), timestamp (ms) and payload (the event's data).
price_updated = Signal()

PRICE_UPDATE = "market:price_update"


def price_updates(events) -> list[dict]:
    """The payloads of the market:price_update events among (room, event, data) triples."""
    return [data for _room, event, data in events or [] if event == PRICE_UPDATE]


def _arguments(data: dict) -> dict:
    return {"pair": data["pair"], "price": data["price"], "sequence": data["sequence"],
            "timestamp": data["timestamp"], "payload": data}


def _log_failures(data: dict, results) -> None:
    # A receiver's fault must not stop the feed: the price went out; the fault is logged.
    for receiver, result in results:
        if isinstance(result, Exception):
            logger.error("price_updated receiver %r failed for %s #%s: %r", receiver, data["pair"], data["sequence"], result)


def send_price_updates(events) -> None:
    """From sync code (a Celery task): one price_updated per emitted price update."""
    for data in price_updates(events):
        _log_failures(data, price_updated.send_robust(sender=PRICE_UPDATE, **_arguments(data)))


async def asend_price_updates(events) -> None:
    """From the event loop (the in-process and stream feeds)."""
    for data in price_updates(events):
        _log_failures(data, await price_updated.asend_robust(sender=PRICE_UPDATE, **_arguments(data)))
