"""market:* events end to end: a real daphne server on the embedded default (in-process feed,
in-memory layer) against the local Horizon, driven by python-socketio clients."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.market.conftest import XLM_USDC, Script, create_pair, in_thread, start_embedded_server
from tests.market.inbox import Inbox

PRICE_FIELDS = {"pair", "price", "volume", "change24h", "timestamp", "sequence"}


@pytest.fixture(scope="module")
def server(horizon, database):
    srv = start_embedded_server(horizon, "market-server-memory.log", request_timeout="1")
    yield srv
    srv.stop()


script = in_thread


async def test_a_subscriber_gets_the_snapshot_then_each_trade_once_prices_and_books(server, horizon, inbox):
    xlm = Script(horizon, *XLM_USDC)
    await script(xlm.trade, "0.1100", "500")
    await script(xlm.book, [["0.1090", "1000"]], [["0.1110", "800"]])

    ack = await inbox.call("market:subscribe", {"pairs": ["XLM/USDC"]})
    assert ack == {"ok": True, "pairs": ["XLM_USDC"], "rejected": []}
    assert (await inbox.wait_for("subscribed"))["room"] == "market:XLM_USDC"
    first = await inbox.wait_for("market:price_update")  # at once, not at the next change
    assert set(first) == PRICE_FIELDS and first["pair"] == "XLM_USDC" and first["price"] == 0.11
    assert (await inbox.call("market:subscribe_orderbook", {"pair": "XLM_USDC"}))["room"] == "market:XLM_USDC:orderbook"
    book = await inbox.wait_for("market:orderbook_update")
    assert book["bids"][0] == [0.109, 1000.0] and book["asks"][0] == [0.111, 800.0]
    assert set(book) == {"pair", "bids", "asks", "timestamp", "sequence"}

    made = [await script(xlm.trade, price, "10", seller) for price, seller in (("0.1120", True), ("0.1130", False), ("0.1140", True))]
    update = await inbox.wait_for("market:price_update", lambda d: d["price"] == 0.114)
    assert update["volume"] >= 530.0 and isinstance(update["change24h"], float)
    await script(xlm.book, [["0.1135", "50"]], [["0.1145", "60"]])
    await inbox.wait_for("market:orderbook_update", lambda d: d["bids"] == [[0.1135, 50.0]])

    trades = inbox.of("market:trade")
    assert [t["id"] for t in trades] == [m["paging_token"] for m in made]  # each once, in order
    assert [(t["price"], t["volume"], t["side"]) for t in trades] == [(0.112, 10.0, "sell"), (0.113, 10.0, "buy"), (0.114, 10.0, "sell")]
    market_sequences = [d["sequence"] for name, d in inbox.events if name in ("market:trade", "market:price_update")]
    assert market_sequences == sorted(set(market_sequences))  # increasing, never repeated
    book_sequences = [d["sequence"] for d in inbox.of("market:orderbook_update")]
    assert book_sequences == list(range(book_sequences[0], book_sequences[0] + len(book_sequences)))


async def test_the_first_trades_of_a_market_without_any_are_each_sent(server, horizon, inbox):
    """A market seen with no trade at all: its first trades are news like any later one (they
    were once taken for history, and only the price said they happened)."""
    pair, pair_script = await create_pair(horizon)
    await script(pair_script.book, [["0.99", "10"]], [["1.01", "10"]])  # a price (the mid), no trade
    await inbox.call("market:subscribe", {"pairs": [pair.name]})
    await inbox.wait_for("market:price_update", lambda d: d["pair"] == pair.name)
    made = [await script(pair_script.trade, price, "1") for price in ("1.00", "1.01", "1.02")]
    await inbox.wait_for("market:price_update", lambda d: d["pair"] == pair.name and d["price"] == 1.02)
    await inbox.wait_for("market:trade", lambda d: d["id"] == made[-1]["paging_token"])
    assert [t["id"] for t in inbox.of("market:trade", pair.name)] == [m["paging_token"] for m in made]


async def test_nothing_arrives_for_pairs_not_subscribed(server, horizon, inbox):
    other, other_script = await create_pair(horizon)
    watcher = await Inbox().connect(server.url)
    try:
        await watcher.call("market:subscribe", {"pairs": [other.name]})
        await inbox.call("market:subscribe", {"pairs": ["XLM_USDC"]})
        await script(other_script.trade, "3.0", "1")
        await script(other_script.book, [["2.9", "1"]], [["3.1", "1"]])
        await watcher.wait_for("market:price_update", lambda d: d["price"] == 3.0)
        # A second change of the other pair, seen by the watcher: by then the first is long past.
        await script(other_script.trade, "3.2", "1")
        await watcher.wait_for("market:trade", lambda d: d["price"] == 3.2)
        assert not [d for _, d in inbox.events if isinstance(d, dict) and d.get("pair") == other.name]
    finally:
        await watcher.close()


async def test_get_snapshot_acks_and_emits_the_stored_snapshot(server, horizon, inbox):
    pair, pair_script = await create_pair(horizon)
    await script(pair_script.trade, "5.0", "2")
    await script(pair_script.book, [["4.9", "1"]], [["5.1", "3"]])
    ack = await inbox.call("market:get_snapshot", {"pair": pair.name})  # fetched on demand: no snapshot yet
    assert ack["ok"] is True and ack["price"] == 5.0 and ack["bids"] == [[4.9, 1.0]] and ack["asks"] == [[5.1, 3.0]]
    event = await inbox.wait_for("market:snapshot")
    assert set(event) >= {"pair", "price", "volume", "change24h", "bids", "asks", "timestamp"}
    assert event["pair"] == pair.name and event["price"] == 5.0


async def test_unknown_unconfigured_and_disabled_pairs_get_the_error_reply(server, horizon, inbox):
    disabled, _ = await create_pair(horizon, enabled=False)
    ack = await inbox.call("market:subscribe", {"pairs": ["XLM_USDC", "BTC_USDC", "NOPE_USDC", disabled.name]})
    assert ack["ok"] is True and ack["pairs"] == ["XLM_USDC"]
    assert [(r["pair"], r["code"]) for r in ack["rejected"]] == [
        ("BTC_USDC", "pair_unavailable"), ("NOPE_USDC", "not_found"), (disabled.name, "pair_unavailable")]
    assert "not configured: an operator must set its base asset issuer (BTC)" in ack["rejected"][0]["message"]

    only_bad = await inbox.call("market:get_snapshot", {"pair": "ETH/USDC"})
    assert only_bad == {"ok": False, "error": {"code": "pair_unavailable", "message": only_bad["error"]["message"]}}
    assert "ETH_USDC is not configured" in only_bad["error"]["message"]
    await inbox.client.emit("market:subscribe_orderbook", {"pair": "BTC_USDC"})  # no ack: an `error` event
    error = await inbox.wait_for("error")
    assert error["event"] == "market:subscribe_orderbook" and error["code"] == "pair_unavailable"
    bad = await inbox.call("market:subscribe", {"pairs": ["not a pair"]})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_payload"


async def test_horizon_failures_leave_the_feed_running_and_it_recovers(server, horizon, inbox):
    pair, pair_script = await create_pair(horizon)
    await script(pair_script.trade, "1.0", "1")
    await inbox.call("market:subscribe", {"pairs": [pair.name]})
    await inbox.wait_for("market:price_update", lambda d: d["price"] == 1.0)
    expected = []
    for failure in ({"status": 500}, {"mode": "malformed"}, {"status": 429, "retry_after": 1}, {"mode": "timeout", "delay": 1.5}):
        await script(pair_script.fail, 1, path="/trades", **failure)
        made = await script(pair_script.trade, str(1.1 + len(expected) / 10), "1")
        expected.append(made["paging_token"])
        await inbox.wait_for("market:trade", lambda d, token=made["paging_token"]: d["id"] == token)
    await inbox.wait_for("market:price_update", lambda d: d["pair"] == pair.name and d["price"] == 1.4)
    trades = inbox.of("market:trade", pair.name)
    assert [t["id"] for t in trades] == expected  # nothing false, nothing twice
    prices = [d["price"] for d in inbox.of("market:price_update", pair.name)]
    assert prices == sorted(prices) and prices[-1] == 1.4


async def test_feed_schedule_and_spend_are_served(server, horizon, inbox):
    await inbox.call("market:subscribe", {"pairs": ["XLM_USDC"]})  # the feed polls watched pairs
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/market/feed") as response:
            assert response.status == 200
            feed = await response.json()
    assert feed["runner"] == "in-process" and feed["requestsPerHour"] == 1_000_000
    assert "XLM_USDC" in feed["activePairs"] and feed["spentThisHour"] > 0 and feed["pollIntervalSeconds"] >= 0.2


async def test_the_feeds_subscriber_count_follows_sockets_that_leave_without_unsubscribing(server, horizon, inbox):
    """`subscribers` is the sockets in the pair's rooms now: one that disconnects (most do,
    rather than unsubscribe) stops counting (a running count only ever grew)."""
    async def subscribers() -> int:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/api/market/feed") as response:
                return (await response.json())["pairs"]["XLM_USDC"]["subscribers"]

    await inbox.call("market:subscribe", {"pairs": ["XLM_USDC"]})
    other = await Inbox().connect(server.url)
    await other.call("market:subscribe", {"pairs": ["XLM_USDC"]})
    assert await subscribers() == 2
    await other.close()
    for _ in range(50):
        if await subscribers() == 1:
            break
        await asyncio.sleep(0.1)
    assert await subscribers() == 1
