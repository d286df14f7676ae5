"""The live page shows a system notification an operator sent through the REST API."""

from __future__ import annotations

import asyncio

import aiohttp
from playwright.async_api import expect

from tests.servers import manage

from .test_live_page import open_live_page


async def test_a_notification_sent_through_rest_appears_on_the_page(page, live_server):
    await open_live_page(page, live_server)
    admin = (await asyncio.to_thread(manage, live_server.env, "mint_token", "--user", "00000000-0000-0000-0000-0000000000ad",
                                     "--permissions", "admin")).stdout.strip()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{live_server.url}/api/system/notifications", headers={"Authorization": f"Bearer {admin}"},
                                json={"level": "critical", "title": "Incident", "message": "Horizon answers slowly"}) as response:
            assert response.status == 201, await response.text()
            sent = await response.json()

    item = page.locator("#notifications li").first
    await expect(item).to_have_attribute("data-id", sent["id"])
    # Readable without colour: the level is a word; and it is announced (role=status, polite).
    await expect(item).to_contain_text("CRITICAL")
    await expect(item).to_contain_text("Incident: Horizon answers slowly")
    await expect(page.locator("#notifications")).to_have_attribute("role", "status")
