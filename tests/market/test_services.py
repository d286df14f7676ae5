"""The feed's services on a real database and cache, against the local Horizon through stellar-sdk."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import override_settings
from stellar_sdk import Account, Asset, Keypair, Network, Server, TransactionBuilder
from stellar_sdk.exceptions import NotFoundError

from market import selectors, services
from market.errors import PairNotFound, PairUnavailable
from market.models import MarketPair
from market.services import HorizonUnavailable
from tests.horizon.server import TEST_RATE_LIMIT
from tests.market.conftest import USDC_TESTNET, make_pair

USDC = Asset("USDC", USDC_TESTNET)


def names(events) -> list[str]:
    return [name for _, name, _ in events]


def of(events, name) -> list[dict]:
    return [data for _, event, data in events if event == name]


# -- the local Horizon speaks Horizon: stellar-sdk parses all of it ------------------------------

def test_stellar_sdk_parses_every_local_horizon_endpoint(horizon):
    pair, script = make_pair(horizon)
    base = Asset(pair.base_code, pair.base_issuer)
    script.book([["0.5", "10"]], [["0.6", "20"]])
    script.trade("0.55", "3", base_is_seller=False)
    server = Server(horizon.url)

    book = server.orderbook(base, USDC).limit(5).call()
    assert book["bids"][0]["price"] == "0.5000000" and book["bids"][0]["amount"] == "5.0000000"  # counter units
    assert book["asks"][0]["price_r"] == {"n": 3, "d": 5} and book["base"]["asset_code"] == pair.base_code
    trades = server.trades().for_asset_pair(base, USDC).order(desc=True).limit(1).call()
    record = trades["_embedded"]["records"][0]
    assert record["base_is_seller"] is False and record["price"] == {"n": "11", "d": "20"}
    assert trades["_links"]["next"]["href"].startswith(horizon.url)
    now = int(time.time() * 1000)
    aggs = server.trade_aggregations(base, USDC, 900_000, now - 86_400_000, now + 900_000).call()
    assert aggs["_embedded"]["records"][0]["base_volume"] == "3.0000000"

    source, destination = Keypair.random(), Keypair.random()
    tx = script.post("transaction", {"source": source.public_key, "destination": destination.public_key, "amount": "12.5"})
    assert server.transactions().transaction(tx["hash"]).call()["successful"] is True
    assert server.transactions().for_account(source.public_key).call()["_embedded"]["records"][0]["hash"] == tx["hash"]
    payment = server.payments().for_account(destination.public_key).call()["_embedded"]["records"][0]
    assert payment["amount"] == "12.5000000" and payment["to"] == destination.public_key
    with pytest.raises(NotFoundError):
        server.transactions().transaction("0" * 64).call()

    envelope = (TransactionBuilder(Account(source.public_key, 1), Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
                .append_payment_op(destination.public_key, Asset.native(), "1").set_timeout(30).build())
    envelope.sign(source)
    submitted = server.submit_transaction_async(envelope)
    assert submitted["tx_status"] == "PENDING" and len(submitted["hash"]) == 64


def test_stellar_sdk_streams_trades_over_sse(horizon):
    pair, script = make_pair(horizon)
    stream = Server(horizon.url).trades().for_asset_pair(Asset(pair.base_code, pair.base_issuer), USDC).cursor("now").stream()
    got: list = []
    opened = script.requests_served().get("/trades", 0)
    reader = threading.Thread(target=lambda: got.append(next(stream)), daemon=True)
    reader.start()
    for _ in range(50):  # the stream connects lazily; trade once it is open
        if script.requests_served().get("/trades", 0) > opened:
            break
        time.sleep(0.05)
    script.trade("0.25", "4")
    reader.join(10)
    assert got and got[0]["price"] == {"n": "1", "d": "4"} and got[0]["base_amount"] == "4.0000000"


# -- what a poll emits --------------------------------------------------------------------------

def test_first_poll_sends_price_and_book_but_not_history(horizon):
    pair, script = make_pair(horizon)
    script.trade("0.40", "100")
    script.trade("0.42", "50")
    script.book([["0.41", "10"], ["0.40", "5"]], [["0.43", "7"]])
    events = services.market_poll(pair=pair)
    assert names(events) == ["market:price_update", "market:orderbook_update"]
    price = of(events, "market:price_update")[0]
    assert price == {"pair": pair.name, "price": 0.42, "volume": 150.0, "change24h": pytest.approx(0.05),
                     "timestamp": price["timestamp"], "sequence": 1}
    book = of(events, "market:orderbook_update")[0]
    assert book["bids"] == [[0.41, 10.0], [0.4, 5.0]] and book["asks"] == [[0.43, 7.0]] and book["sequence"] == 1
    assert events[1][0] == f"market:{pair.name}:orderbook" and events[0][0] == f"market:{pair.name}"
    assert services.market_poll(pair=pair) == []  # nothing changed, nothing said


def test_each_new_trade_is_emitted_once_in_order_with_contiguous_sequences(horizon):
    pair, script = make_pair(horizon)
    script.trade("1.0", "1")
    services.market_poll(pair=pair)
    script.trade("1.1", "2", base_is_seller=True)
    script.trade("1.2", "3", base_is_seller=False)
    events = services.market_poll(pair=pair)
    trades = of(events, "market:trade")
    assert [(t["price"], t["volume"], t["side"]) for t in trades] == [(1.1, 2.0, "sell"), (1.2, 3.0, "buy")]
    assert [e[2]["sequence"] for e in events if e[0] == f"market:{pair.name}"] == [2, 3, 4]
    assert of(events, "market:price_update")[0]["price"] == 1.2
    assert services.market_poll(pair=pair) == []
    script.trade("1.3", "1")
    again = services.market_poll(pair=pair)
    assert [t["price"] for t in of(again, "market:trade")] == [1.3] and of(again, "market:trade")[0]["sequence"] == 5


def test_price_is_the_order_book_mid_until_a_trade_happens(horizon):
    pair, script = make_pair(horizon)
    script.book([["0.9", "1"]], [["1.1", "1"]])
    assert of(services.market_poll(pair=pair), "market:price_update")[0]["price"] == 1.0
    script.book([["0.9", "1"]], [["1.1", "2"]])
    events = services.market_poll(pair=pair)
    assert names(events) == ["market:orderbook_update"]  # the mid did not move, the book did


def test_order_book_depth_is_configurable(horizon):
    pair, script = make_pair(horizon)
    script.book([[str(1 - i / 100), "1"] for i in range(30)], [[str(1 + i / 100), "1"] for i in range(1, 31)])
    with override_settings(MARKET_ORDERBOOK_DEPTH=3):
        book = of(services.market_poll(pair=pair), "market:orderbook_update")[0]
    assert [level[0] for level in book["bids"]] == [1.0, 0.99, 0.98] and len(book["asks"]) == 3


def test_async_poll_decides_the_same_as_the_sync_one(horizon):
    import asyncio

    pair, script = make_pair(horizon)
    script.trade("2.0", "5")
    events = asyncio.run(services.market_apoll(pair=pair))
    assert of(events, "market:price_update")[0]["price"] == 2.0
    script.trade("2.5", "1")
    assert [t["price"] for t in of(services.market_poll(pair=pair), "market:trade")] == [2.5]


# -- Horizon failing -------------------------------------------------------------------------------

@pytest.mark.parametrize("failure, status", [
    ({"status": 500}, 500),
    ({"status": 503}, 503),
    ({"mode": "malformed"}, None),
    ({"mode": "timeout", "delay": 2.0}, None),
])
def test_a_failed_poll_raises_keeps_the_snapshot_and_the_next_one_catches_up(horizon, failure, status):
    pair, script = make_pair(horizon)
    script.trade("1.0", "1")
    services.market_poll(pair=pair)
    before = selectors.snapshot(pair.name)
    script.trade("1.5", "1")
    script.fail(1, path="/trades", **failure)
    with pytest.raises(HorizonUnavailable) as caught:
        services.market_poll(pair=pair)
    assert caught.value.status == status
    assert selectors.snapshot(pair.name) == before
    events = services.market_poll(pair=pair)
    assert [t["price"] for t in of(events, "market:trade")] == [1.5]


def test_429_carries_retry_after(horizon):
    pair, script = make_pair(horizon)
    script.fail(1, status=429, retry_after=7)
    with pytest.raises(HorizonUnavailable) as caught:
        services.market_poll(pair=pair)
    assert caught.value.rate_limited and caught.value.retry_after == 7.0
    assert selectors.snapshot(pair.name) is None


def test_a_pair_already_being_polled_is_skipped(horizon):
    pair, _ = make_pair(horizon)
    token = services._lock(pair.name)
    try:
        assert services.market_poll(pair=pair) is None
    finally:
        services._unlock(pair.name, token)


# -- budget and schedule ----------------------------------------------------------------------------

@override_settings(HORIZON_REQUESTS_PER_HOUR=3600, MARKET_MIN_POLL_INTERVAL=1.0)
def test_interval_fits_the_request_budget_and_the_rate_limit_headers():
    # 3 pairs x 3 requests, 80% of 3600/h: one poll per pair every 11.25 s.
    assert selectors.feed_interval(3) == pytest.approx(11.25)
    assert selectors.feed_interval(1) == pytest.approx(3.75)
    now = time.time()
    services.feed_record_response(status=200, headers={"X-RateLimit-Limit": "3600", "X-RateLimit-Remaining": "30", "X-RateLimit-Reset": "600"}, now=now)
    # 30 requests left for 600 s and 3 per poll: one poll every 60 s.
    assert selectors.feed_interval(1, now) == pytest.approx(60.0)


@pytest.fixture
def followed_wallets():
    """Active wallets (the transaction watcher follows each one a pass), removed after the test."""
    from transactions.models import Wallet

    made = []

    def make(count: int) -> None:
        made.extend(Wallet.objects.create(owner_id=f"budget-{i}", public_key=Keypair.random().public_key)
                    for i in range(count))

    yield make
    Wallet.objects.filter(pk__in=[w.pk for w in made]).delete()
    cache.delete("transactions:watcher:next-pass")


@override_settings(HORIZON_REQUESTS_PER_HOUR=3600, MARKET_MIN_POLL_INTERVAL=1.0, TRANSACTION_POLL_INTERVAL=5.0)
def test_the_transaction_watcher_shares_the_plan_and_the_feed_plans_with_what_it_leaves(followed_wallets):
    from transactions.selectors import watcher_interval

    # One wallet at 5 s: 720 requests/h of the 2,880 planned; the feed's pair gets 2,160 (5 s).
    followed_wallets(1)
    assert selectors.feed_interval(1) == pytest.approx(5.0)
    assert watcher_interval() == pytest.approx(5.0)
    # Five wallets ask for 3,600/h: the watcher gets half the plan (1,440) and waits 2.5 times
    # as long; the feed keeps the other half (7.5 s).
    followed_wallets(4)
    assert watcher_interval() == pytest.approx(12.5)
    assert selectors.feed_interval(1) == pytest.approx(7.5)
    budget = selectors.feed_budget()
    assert (budget["sharersWantedPerHour"], budget["sharersGrantedPerHour"]) == (3600.0, 1440.0)
    # 300 requests left for 600 s: the watcher's share of them (240) is not the feed's.
    now = time.time()
    services.feed_record_response(status=200, headers={"X-RateLimit-Limit": "3600", "X-RateLimit-Remaining": "300", "X-RateLimit-Reset": "600"}, now=now)
    assert selectors.feed_interval(1, now) == pytest.approx(600 * 3 / 60)


@override_settings(HORIZON_REQUESTS_PER_HOUR=3600, TRANSACTION_POLL_INTERVAL=5.0)
def test_the_beat_watcher_asks_horizon_only_once_its_stretched_interval_has_passed(followed_wallets):
    """transactions.watch_tick runs every 5 s; with its share exceeded (12.5 s a pass) it asks
    Horizon at the first tick after that: every 15 s, never more often than its share allows."""
    from transactions.services import watcher_claim_pass

    now = time.time()
    followed_wallets(1)
    assert [watcher_claim_pass(now=now + tick * 5.0 + jitter) for tick, jitter in enumerate([0, -0.2, 0.1, -0.3])] == [True] * 4
    followed_wallets(4)
    cache.delete("transactions:watcher:next-pass")
    assert [watcher_claim_pass(now=now + tick * 5.0) for tick in range(6)] == [True, False, False, True, False, False]


def test_spend_and_schedule_are_reported(horizon):
    pair, _ = make_pair(horizon)
    before = selectors.feed_budget()["spentThisHour"]
    services.market_poll(pair=pair)
    budget = selectors.feed_budget()
    assert budget["spentThisHour"] - before >= 3
    assert budget["rateLimit"]["limit"] == TEST_RATE_LIMIT and budget["requestsPerPoll"] == 3
    assert pair.name in budget["activePairs"] and budget["pollIntervalSeconds"] > 0


@override_settings(HORIZON_REQUEST_TIMEOUT=0.2)
def test_a_poll_still_sending_keeps_the_pair_from_other_polls_and_they_from_its_snapshot(horizon):
    """A poll's events go out before its snapshot is stored, and sending may wait out a Redis
    fault far longer than fetching takes: the pair stays locked for it, or another poll would
    find the old snapshot and send the same trade again. Should the lock lapse anyway, the late
    poll does not store its older snapshot over a newer one."""
    pair, script = make_pair(horizon)
    services.market_poll(pair=pair)
    script.trade("7.5", "1")
    meanwhile = []

    def slow(events):
        time.sleep(services.lock_seconds() + 0.3)
        meanwhile.append(services.market_poll(pair=pair))

    services.market_poll(pair=pair, publish=slow, publish_seconds=services.lock_seconds() + 5)
    assert meanwhile == [None]
    script.trade("8.0", "1")
    services.market_poll(pair=pair, publish=lambda events: cache.delete(services.lock_key(pair.name)))  # lapsed
    assert selectors.snapshot(pair.name)["price"] == 7.5  # not stored: the next poll sends the 8.0 trade


def test_due_pairs_are_claimed_once_per_interval_and_not_while_paused(horizon):
    pair, _ = make_pair(horizon)
    now = time.time()
    assert pair in services.feed_claim_due_pairs(now=now)
    assert pair not in services.feed_claim_due_pairs(now=now + 0.01)
    later = now + selectors.feed_interval(len(selectors.active_pairs())) + 0.1
    services.feed_pause(seconds=5, reason="429", now=later)
    assert services.feed_claim_due_pairs(now=later) == []
    assert pair in services.feed_claim_due_pairs(now=later + 6)


def test_retry_after_reads_seconds_dates_and_exhausted_rate_limits():
    assert services.retry_after_seconds({"Retry-After": "12"}) == 12.0
    assert services.retry_after_seconds({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}) == 30.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 20))
    assert 15 <= services.retry_after_seconds({"Retry-After": date}) <= 21
    assert services.retry_after_seconds({}) is None


# -- pairs as data ----------------------------------------------------------------------------------

def test_seed_pairs_on_both_networks():
    xlm = {p.network: p for p in MarketPair.objects.filter(name="XLM_USDC")}
    assert xlm["testnet"].counter_issuer == "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"
    assert xlm["public"].counter_issuer == "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN"
    assert all(p.enabled and p.is_configured for p in xlm.values())
    for name in ("BTC_USDC", "ETH_USDC"):
        for pair in MarketPair.objects.filter(name=name):
            assert not pair.enabled and pair.missing == [f"base asset issuer ({name[:3]})"]


def test_unknown_unconfigured_and_disabled_pairs_answer_clearly(horizon):
    with pytest.raises(PairNotFound, match="unknown pair NOPE_USDC"):
        selectors.pair_enabled("NOPE_USDC")
    with pytest.raises(PairUnavailable, match="BTC_USDC is not configured: an operator must set its base asset issuer"):
        selectors.pair_enabled("BTC_USDC")
    disabled, _ = make_pair(horizon, enabled=False)
    with pytest.raises(PairUnavailable, match="disabled"):
        selectors.pair_enabled(disabled.name)
    assert selectors.pair_enabled("XLM_USDC").counter_code == "USDC"


def test_a_pair_cannot_be_enabled_without_its_issuer():
    btc = MarketPair.objects.get(name="BTC_USDC", network="testnet")
    btc.enabled = True
    with pytest.raises(ValidationError, match="base asset issuer"):
        btc.full_clean()
    btc.base_issuer = "not-an-account"
    with pytest.raises(ValidationError, match="not a Stellar account id"):
        btc.full_clean()
    btc.base_issuer = Keypair.random().public_key
    btc.full_clean()


def test_only_pairs_someone_is_subscribed_to_are_polled(horizon):
    watched, _ = make_pair(horizon)
    book_only, _ = make_pair(horizon)
    idle, _ = make_pair(horizon)
    occupied = {f"market:{watched.name}", f"market:{book_only.name}:orderbook", "user:someone"}
    names = {pair.name for pair in selectors.active_pairs(occupied=occupied)}
    assert {watched.name, book_only.name} <= names and idle.name not in names
    # Occupancy unknown (no server has published it): every enabled pair, rather than miss one.
    assert idle.name in {pair.name for pair in selectors.active_pairs(occupied=None)}


def test_a_429s_retry_after_bounds_the_wait_even_when_the_window_resets_later():
    now = 1_000_000.0
    services.feed_record_response(status=429, now=now, headers={
        "X-RateLimit-Limit": "3600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3000", "Retry-After": "2"})
    assert cache.get(selectors.RATELIMIT_KEY)["resetAt"] == now + 3
    # With one pair, nothing else refreshes the headers: the interval must not stretch to 3000 s.
    stretched_until_reset = selectors.feed_interval(1, now + 4)
    cache.delete(selectors.RATELIMIT_KEY)
    assert stretched_until_reset == selectors.feed_interval(1, now + 4)
