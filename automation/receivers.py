"""What the engine hears from other apps: the market's price updates and settled transactions.

Connected in AutomationConfig.ready(). A price update is evaluated by the Celery task
`automation.evaluate_price`, or, on the embedded default (AUTOMATION_IN_PROCESS), in the
server's event loop with the sync work in a thread.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings

from . import execution, tasks


async def on_price_updated(sender, *, pair: str, price: float, sequence: int, timestamp: int, **kwargs) -> None:
    if settings.AUTOMATION_IN_PROCESS:
        await tasks.evaluate_in_process(pair=pair, price=price, sequence=sequence, timestamp=timestamp)
    else:
        # The broker call blocks: off the event loop (the stream feed sends from one).
        await sync_to_async(tasks.evaluate_price.delay, thread_sensitive=False)(pair, price, sequence, timestamp)


def on_transaction_settled(sender, *, tracked, **kwargs) -> None:
    """Runs in the settling code's thread, after its commit: end the runs that submitted it and
    announce them (what is not sent stays owed: the sweep sends it)."""
    tasks.announce_runs_sync(execution.run_settle(tracked=tracked))
