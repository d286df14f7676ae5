"""`bin/serve --demo`, the README's offline demo as one command: the live page shows prices move
from the local Horizon it starts, with no network."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from playwright.async_api import expect

from tests.servers import BASE_ENV, ROOT, free_ports, fresh_sqlite, wait_for_port

from .conftest import ARTIFACTS


@pytest.fixture
def demo(tmp_path):
    """bin/serve --demo in its own process group (the script, its Horizon and daphne), stopped
    as Ctrl-C would stop it."""
    port, horizon_port = free_ports(2)
    env = {**os.environ, **BASE_ENV, "GALAXY_SKIP_SETUP": "1", "WEBSOCKET_HOST": "127.0.0.1", "WEBSOCKET_PORT": str(port),
           "DEMO_HORIZON_PORT": str(horizon_port), "DATABASE_URL": fresh_sqlite(tmp_path), "REDIS_URL": "",
           "REDIS_PREFIX": f"demo{os.getpid()}"}
    env.pop("STELLAR_HORIZON_URL", None)  # the demo must set it itself
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "web-demo.log").open("wb")
    process = subprocess.Popen(["bin/serve", "--demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, timeout=60)
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


async def test_bin_serve_demo_shows_prices_moving_from_the_local_horizon(page, demo):
    url, process = demo
    await page.goto(f"{url}/?pair=XLM_USDC")
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#price")).to_contain_text("USDC", timeout=30_000)
    # Prices move: the chart gains points and the trades tape fills without anyone scripting it.
    await expect(page.locator("#chart")).to_have_attribute("data-points", "3", timeout=60_000)
    await expect(page.locator("#trades li").first).to_be_visible()
    await expect(page.locator("#bids tbody tr").first).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "web-demo.png", full_page=True)

    log = (ARTIFACTS / "web-demo.log").read_text()
    assert "the market feed follows the local Horizon" in log
