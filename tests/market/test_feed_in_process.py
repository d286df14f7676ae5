"""The embedded default's in-process feed: a pair whose Horizon hangs holds up no other pair.

Its own daphne server with a long Horizon timeout, so that a poll of the hanging pair lasts the
whole test."""

from __future__ import annotations

import asyncio
import socket

import pytest

from market.models import MarketPair
from tests.market.conftest import create_pair, in_thread, start_embedded_server
from tests.market.inbox import Inbox


@pytest.fixture(scope="module")
def server(horizon, database):
    srv = start_embedded_server(horizon, "market-server-in-process-feed.log", request_timeout="120")
    yield srv
    srv.stop()


@pytest.fixture
def black_hole():
    """A Horizon that takes connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


async def test_a_pair_whose_horizon_hangs_holds_up_no_other_pair(server, horizon, black_hole):
    stuck, _ = await create_pair(horizon)
    await in_thread(MarketPair.objects.filter(pk=stuck.pk).update, horizon_url=black_hole)
    live, live_script = await create_pair(horizon)
    waiting, inbox = await Inbox().connect(server.url), await Inbox().connect(server.url)
    try:
        # A listener in its room (no snapshot asked for): the feed polls it, and hangs there.
        assert (await waiting.call("subscribe", {"room": f"market:{stuck.name}"}))["ok"] is True
        await asyncio.sleep(1)  # ticks of the feed: the stuck pair's poll has begun
        assert (await inbox.call("market:subscribe", {"pairs": [live.name]}))["ok"] is True
        made = await in_thread(live_script.trade, "2.5", "1")
        trade = await inbox.wait_for("market:trade", lambda d: d["id"] == made["paging_token"])
        assert trade["pair"] == live.name
    finally:
        await waiting.close()
        await inbox.close()
