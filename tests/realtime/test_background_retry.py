"""Sends retried in background threads (realtime.background_retry): in order, each within its own time."""

from __future__ import annotations

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        REDIS_URL=None, REDIS_PREFIX="test", EVENT_QUEUE_MAX=10, RECOVERY_MAX_DISCONNECTION_MS=1000,
    )
    django.setup()

from realtime import background_retry  # noqa: E402
from realtime.emit import EmitFailed  # noqa: E402


def test_sends_go_in_order_and_each_gives_up_on_its_own_deadline_however_long_it_waited(monkeypatch):
    """Redis away: three sends asked for at once. The first retries until its time is up; the
    others, whose time ran out while they waited their turn, try once or twice. Before, each got
    its full time after the one before it: the third gave up after three times as long."""
    monkeypatch.setattr(background_retry, "CALLER_WAIT_SECONDS", 0.01)
    tries: list[str] = []

    def failing(name: str):
        def attempt(timeout):
            tries.append(name)
            raise EmitFailed("Redis is away")
        return attempt

    threads = [background_retry.retry_in_background(failing(name), retry_for=1.5, what=name, gave_up="lost")
               for name in ("first", "second", "third")]
    for thread in threads:
        thread.join(15)
    assert tries == sorted(tries, key=["first", "second", "third"].index)  # one after the other
    assert tries.count("first") > 2  # its 1.5 s of backoff: 0.1, 0.2, 0.4, 0.8 s
    assert tries.count("second") <= 2 and tries.count("third") <= 2  # what was left of theirs
