"""The live page in headless Chromium against production's server: uvicorn with our WebSocket
protocol (bin/serve-production's flags), which answers a browser's upgrade request itself."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.servers import fresh_sqlite, manage, start_uvicorn

from .conftest import ARTIFACTS, WEB_ENV
from .test_live_page import open_live_page


@pytest.fixture(scope="module")
def production_server(tmp_path_factory, web_horizon_ready):
    env = {**WEB_ENV, "STELLAR_HORIZON_URL": web_horizon_ready.url,
           "DATABASE_URL": fresh_sqlite(tmp_path_factory.mktemp("web-uvicorn-db"))}
    manage(env, "migrate", "--noinput")
    server = start_uvicorn("tests.e2e.testapp:application", env, ARTIFACTS / "web-uvicorn-server.log")
    yield server
    server.stop()


async def test_the_page_upgrades_to_websocket_and_gets_trades_on_production_uvicorn(page, production_server, web_horizon):
    await open_live_page(page, production_server)
    # This server's feed takes its first look's latest trade as the price and its cursor (history,
    # not news): once that price shows, the next trade is news and reaches the tape too.
    await web_horizon.trade("0.1177", "4", base_is_seller=True)
    await expect(page.locator("#price")).to_have_text("0.1177 USDC")
    await web_horizon.trade("0.1179", "9", base_is_seller=False)
    await expect(page.locator("#price")).to_have_text("0.1179 USDC")
    await expect(page.locator("#trades li").first).to_contain_text("9 at 0.1179")
