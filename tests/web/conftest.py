"""Browser-test fixtures: a real server fed by the local Horizon, and headless Chromium (Playwright)."""

from __future__ import annotations

import asyncio
import os
import shutil

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from tests.horizon.server import HorizonThread
from tests.horizon.world import USDC_TESTNET
from tests.servers import ROOT, fresh_sqlite, manage, start_daphne

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As root, in a closed network: no sandbox, and no background calls home that the machine
# refuses by the dozen (python-svc.md); Playwright's own browser download cannot work here.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
# Polling the feed every 0.2 s (not 1 s) so a change made in the local Horizon shows within a second;
# a budget high enough that the 0.2 s floor, not the hourly budget, sets the interval.
WEB_ENV = {
    "MARKET_MIN_POLL_INTERVAL": "0.2",
    "HORIZON_REQUESTS_PER_HOUR": "10000000",
}
XLM_USDC = ("native", f"USDC:{USDC_TESTNET}")  # the seeded pair, as the local Horizon names its assets
# Page loads under a busy 2-core machine (the other suites may run beside) can take seconds.
expect.set_options(timeout=20_000)


class LiveServer:
    """The product (plus the e2e test hooks) under daphne; restartable on the same port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.starts = 0
        self.process = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        port = self.process.port if self.process else None
        log = ARTIFACTS / f"web-server-{self.starts}.log"
        self.process = start_daphne("tests.e2e.testapp:application", self.env, log, port=port)

    def stop(self) -> None:
        self.process.stop()

    @property
    def url(self) -> str:
        return self.process.url


class Horizon:
    """The local Horizon, scripted for XLM/USDC through its control API."""

    def __init__(self, thread: HorizonThread) -> None:
        self.thread = thread
        self.url = thread.url

    async def post(self, path: str, body: dict) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/_control/{path}", json=body) as response:
                assert response.status == 200, await response.text()
                return await response.json()

    async def trade_looks(self) -> int:
        """How many times the feed has asked for trades so far."""
        return (await asyncio.to_thread(self.thread.requests_served)).get("/trades", 0)

    async def looked_again(self, since: int, timeout: float = 30) -> None:
        """Until the feed has asked for trades after `since` looks: a restarted server's first
        look takes the latest trade as history, not news, so a trade made before it would change
        the price but never reach the tape."""
        await self.thread.served("/trades", more_than=since, timeout=timeout)

    async def trade(self, price: str, amount: str, base_is_seller: bool = True) -> dict:
        base, counter = XLM_USDC
        return await self.post("trade", {"base": base, "counter": counter, "price": price, "amount": amount, "base_is_seller": base_is_seller})

    async def book(self, bids: list, asks: list) -> None:
        base, counter = XLM_USDC
        await self.post("orderbook", {"base": base, "counter": counter, "bids": bids, "asks": asks})


@pytest.fixture(scope="session")
def web_horizon():
    thread = HorizonThread().start()
    yield Horizon(thread)
    thread.stop()


@pytest.fixture(scope="session")
async def web_horizon_ready(web_horizon):
    # Horizon's real 3600/h would slow the feed (it honours X-RateLimit-Remaining) within a run.
    await web_horizon.post("ratelimit", {"limit": 10_000_000})
    # A market with history, as real ones have: the feed's first look takes the latest trade as
    # its cursor (history is not news) and reports trades after it.
    await web_horizon.trade("0.1000", "1")
    return web_horizon


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, web_horizon_ready):
    """The embedded default a newcomer runs (daphne, in-memory layer, SQLite, in-process feed)."""
    env = {**WEB_ENV, "STELLAR_HORIZON_URL": web_horizon_ready.url,
           "DATABASE_URL": fresh_sqlite(tmp_path_factory.mktemp("web-db"))}
    manage(env, "migrate", "--noinput")
    server = LiveServer(env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser):
    """A fresh page (own context: own sessionStorage); any script error fails the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], f"script errors on the page: {errors}"
