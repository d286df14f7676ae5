"""MARKET_FEED_MODE=stream: `manage.py market_stream` follows Horizon's SSE streams.

Polls are set 60 s apart here, so a trade arriving within seconds shows the stream drove it;
killing and restarting the stream process repeats no trade and skips none.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.market.conftest import create_pair, in_thread
from tests.market.inbox import Inbox
from tests.market.test_tasks import stack_env
from tests.servers import ROOT, start_daphne


def stream_env(horizon) -> dict[str, str]:
    return {**stack_env(horizon), "MARKET_FEED_MODE": "stream", "MARKET_MIN_POLL_INTERVAL": "60",
            "MARKET_FEED_IN_PROCESS": "false", "REDIS_PREFIX": f"{settings.RUN_ID}s"}


def start_stream(horizon, n: int) -> subprocess.Popen:
    log = ROOT / "artifacts" / f"market-stream-{n}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "manage.py", "market_stream"], cwd=ROOT,
                            env={**os.environ, **stream_env(horizon)}, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def stream_server(horizon, database):
    srv = start_daphne("galaxy.asgi:application", stream_env(horizon), ROOT / "artifacts" / "market-stream-server.log")
    yield srv
    srv.stop()


async def test_trades_arrive_by_stream_and_a_restart_repeats_and_skips_nothing(stream_server, horizon):
    pair, script = await create_pair(horizon)
    await in_thread(script.trade, "3.0", "1")
    stream = start_stream(horizon, 1)
    inbox = await Inbox().connect(stream_server.url)
    try:
        await inbox.call("market:subscribe", {"pairs": [pair.name]})
        await inbox.wait_for("market:price_update", lambda d: d["price"] == 3.0)

        first = await in_thread(script.trade, "3.1", "2")
        await inbox.wait_for("market:trade", lambda d: d["id"] == first["paging_token"], timeout=10)

        stop(stream)  # the feed is down; a trade happens meanwhile
        missed = await in_thread(script.trade, "3.2", "1")
        stream = start_stream(horizon, 2)
        await inbox.wait_for("market:trade", lambda d: d["id"] == missed["paging_token"], timeout=20)
        after = await in_thread(script.trade, "3.3", "1")
        await inbox.wait_for("market:trade", lambda d: d["id"] == after["paging_token"], timeout=10)
        ids = [t["id"] for t in inbox.of("market:trade", pair.name)]
        assert ids == [first["paging_token"], missed["paging_token"], after["paging_token"]]
    finally:
        stop(stream)
        await inbox.close()


def test_the_stream_command_refuses_to_run_in_poll_mode(horizon):
    env = {**os.environ, **stream_env(horizon), "MARKET_FEED_MODE": "poll"}
    result = subprocess.run([sys.executable, "manage.py", "market_stream"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "MARKET_FEED_MODE is not 'stream'" in result.stderr
