"""The live page in headless Chromium against a real server fed by the local Horizon."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import aiohttp
from playwright.async_api import expect

from tests.servers import manage

from .conftest import ARTIFACTS


async def open_live_page(page, server) -> None:
    await page.goto(f"{server.url}/?pair=XLM_USDC")
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    # Polling first, then the upgrade: the page shows the transport in use.
    await expect(page.locator("#transport")).to_have_text("websocket")


async def chart_points(page) -> int:
    return int(await page.locator("#chart").get_attribute("data-points"))


async def test_price_trade_and_book_from_horizon_appear_and_the_chart_grows(page, live_server, web_horizon):
    await open_live_page(page, live_server)

    await web_horizon.book(bids=[["0.1101", "120"], ["0.1100", "300"]], asks=[["0.1203", "80"], ["0.1210", "45"]])
    await expect(page.locator("#bids")).to_have_attribute("data-best", "0.1101")
    await expect(page.locator("#asks")).to_have_attribute("data-best", "0.1203")
    await expect(page.locator("#bids tbody tr")).to_have_count(2)
    await expect(page.locator("#asks tbody tr").first).to_contain_text("80")

    await web_horizon.trade("0.1150", "42.5", base_is_seller=True)
    trade = page.locator("#trades li").first
    await expect(trade).to_contain_text("SELL")
    await expect(trade).to_contain_text("42.5 at 0.115")
    await expect(page.locator("#price")).to_have_text("0.115 USDC")
    await expect(page.locator("#volume")).not_to_have_text("none yet")
    await expect(page.locator("#chart")).not_to_have_attribute("data-points", "0")
    before = await chart_points(page)

    await web_horizon.trade("0.1172", "10", base_is_seller=False)
    await expect(page.locator("#price")).to_have_text("0.1172 USDC")
    await expect(page.locator("#trades li").first).to_contain_text("BUY")
    await expect(page.locator("#chart")).to_have_attribute("data-points", str(before + 1))
    assert "up" in await page.locator("#change").text_content() or "down" in await page.locator("#change").text_content() \
        or "flat" in await page.locator("#change").text_content()

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "web-live-page.png", full_page=True)


async def test_page_reconnects_by_itself_after_the_server_restarts(page, live_server, web_horizon):
    await open_live_page(page, live_server)
    await web_horizon.trade("0.1180", "7", base_is_seller=True)
    await expect(page.locator("#price")).to_have_text("0.118 USDC")

    await asyncio.to_thread(live_server.stop)
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#transport")).to_have_text("none")
    looks = await web_horizon.trade_looks()
    await asyncio.to_thread(live_server.start)  # the same port

    # The in-memory server kept no session to recover: a new one, rooms joined again by the page.
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected", timeout=30_000)
    await expect(page.locator("#transport")).to_have_text("websocket")
    await web_horizon.looked_again(looks)  # the restarted feed has its cursor: the next trade is news
    await web_horizon.trade("0.1191", "3", base_is_seller=False)
    await expect(page.locator("#price")).to_have_text("0.1191 USDC")
    await expect(page.locator("#trades li").first).to_contain_text("3 at 0.1191")
    await page.screenshot(path=ARTIFACTS / "web-live-page-after-restart.png", full_page=True)


async def test_a_dropped_connection_is_recovered_with_the_events_it_missed(page, live_server, web_horizon):
    await open_live_page(page, live_server)
    await web_horizon.trade("0.1183", "5", base_is_seller=True)
    await expect(page.locator("#price")).to_have_text("0.1183 USDC")
    # The network drops (not a server restart): the session is saved for recovery.
    await page.evaluate("galaxySocket.io.engine.close()")
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "recovered")
    await web_horizon.trade("0.1187", "6", base_is_seller=False)
    await expect(page.locator("#price")).to_have_text("0.1187 USDC")  # rooms came back without rejoining


async def test_signed_in_user_sees_wallet_transactions_and_automation_events(page, live_server):
    user = str(uuid.uuid4())
    token = (await asyncio.to_thread(manage, live_server.env, "mint_token", "--user", user, "--email", "ada@example.com")).stdout.strip()
    await open_live_page(page, live_server)

    await page.fill("#token", token)
    await page.click("#token-form button")
    await expect(page.locator("#auth-state")).to_have_attribute("data-state", "authenticated")
    await expect(page.locator("#auth-state")).to_contain_text("ada@example.com")

    tx_hash = secrets.token_hex(32)
    await emit(live_server, f"user:{user}", "transaction:pending", {
        "hash": tx_hash, "userId": user, "walletId": "w1", "fromAddress": "GABC" + "A" * 52,
        "toAddress": "GXYZ" + "B" * 52, "amount": 12.5, "asset": "XLM", "network": "testnet"})
    await emit(live_server, f"user:{user}", "automation:executed", {
        "automationId": "auto-1", "userId": user, "walletId": "w1", "result": "success", "executedAt": 1})
    await expect(page.locator('#activity li[data-event="transaction:pending"]')).to_contain_text("12.5 XLM")
    await expect(page.locator('#activity li[data-event="transaction:pending"]')).to_contain_text(tx_hash[:6])
    await expect(page.locator('#activity li[data-event="automation:executed"]')).to_contain_text("auto-1: success")

    # Another user's events never reach this page.
    await emit(live_server, f"user:{uuid.uuid4()}", "transaction:failed", {"hash": "x", "error": "no"})
    await emit(live_server, f"user:{user}", "automation:error", {"automationId": "auto-2", "error": "slippage", "errorCode": "E1"})
    await expect(page.locator('#activity li[data-event="automation:error"]')).to_have_count(1)
    await expect(page.locator('#activity li[data-event="transaction:failed"]')).to_have_count(0)


async def test_a_bad_token_is_reported_and_market_data_keeps_flowing(page, live_server, web_horizon):
    await open_live_page(page, live_server)
    await page.fill("#token", "not-a-token")
    await page.click("#token-form button")
    await expect(page.locator("#auth-state")).to_have_attribute("data-state", "error")
    await web_horizon.trade("0.1205", "1", base_is_seller=True)
    await expect(page.locator("#price")).to_have_text("0.1205 USDC")


async def test_phone_width_needs_no_sideways_scrolling(browser, live_server, web_horizon):
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = await context.new_page()
    try:
        await open_live_page(page, live_server)
        await web_horizon.book(bids=[["0.1201", "123456.78"]], asks=[["0.1299", "98765.43"]])
        await expect(page.locator("#bids")).to_have_attribute("data-best", "0.1201")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=ARTIFACTS / "web-live-page-phone.png", full_page=True)
    finally:
        await context.close()


async def emit(server, room: str, event: str, data: dict) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/__test__/emit", json={"room": room, "event": event, "data": data}) as resp:
            assert resp.status == 200
