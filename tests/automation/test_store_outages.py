"""Redis or the database goes away (a restart, a failover) while users change their automations
and open their rooms.

Redis holds the owner cache and carries the status events; the database holds the automations.
A committed change is answered as one, and its `automation:status` goes out once Redis is back;
what needs a store that is away is answered `service_unavailable`, as REST answers 503.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.automation.api_stand import ALICE, ARTIFACTS, SERVER_ENV, automation_body, make_wallet, rest, signed_in
from tests.redisproc import RedisProcess
from tests.servers import fresh_postgres, manage, start_daphne
from tests.tcpproxy import TcpProxy


@pytest.fixture
async def stand(tmp_path):
    """A server of its own on a Redis of its own, which the test stops and starts, and on its
    database through a proxy the test can cut."""
    redis = RedisProcess(tmp_path).start()
    url, drop = fresh_postgres()
    env = {**SERVER_ENV, "REDIS_URL": redis.url, "DATABASE_URL": url}
    manage(env, "migrate", "--noinput")
    database_path = await TcpProxy(urlsplit(url).port).start()
    through_proxy = url.replace(f":{urlsplit(url).port}/", f":{database_path.port}/")
    server = start_daphne("galaxy.asgi:application", {**env, "DATABASE_URL": through_proxy},
                          ARTIFACTS / f"automation-store-outages-{os.getpid()}.log")
    yield env, server, redis, database_path
    server.stop()
    await database_path.stop()
    redis.stop()
    drop()


async def test_changes_made_while_redis_is_away_are_answered_and_announced_once_it_is_back(stand):
    """Before: each change was saved and then answered 500 (the owner cache's forget, after the
    commit, raised), so a client retrying a create made a second automation; its status event
    was never sent."""
    env, server, redis, _ = stand
    wallet = make_wallet(env, ALICE)
    status, made = await rest(server, "POST", "/api/automations/", ALICE, automation_body(wallet))
    assert status == 201, made
    watcher = await signed_in(server, ALICE)  # in user:{ALICE}, where every status goes
    try:
        redis.stop()
        status, body = await rest(server, "PATCH", f"/api/automations/{made['automationId']}", ALICE, {"name": "renamed"})
        assert (status, body["name"]) == (200, "renamed")
        status, body = await rest(server, "POST", f"/api/automations/{made['automationId']}/disable", ALICE)
        assert (status, body["status"]) == (200, "paused"), body
        status, second = await rest(server, "POST", "/api/automations/", ALICE, automation_body(wallet, name="second"))
        assert status == 201, second
        redis.start()
        statuses = [await watcher.next("automation:status", timeout=30) for _ in range(3)]
        assert [(s["automationId"], s["name"], s["status"]) for s in statuses] == [
            (made["automationId"], "renamed", "active"), (made["automationId"], "renamed", "paused"),
            (second["automationId"], "second", "active"),
        ]  # each once, in the order they were made
        status, listed = await rest(server, "GET", "/api/automations/", ALICE)
        assert status == 200 and listed["count"] == 2, listed
    finally:
        await watcher.close()


async def test_own_private_rooms_open_while_redis_is_away(stand):
    """The owner cache is in Redis: while it is away the owner is read from the database.
    Before: every private room but the user's own answered `internal_error`."""
    env, server, redis, _ = stand
    wallet = make_wallet(env, ALICE)
    status, made = await rest(server, "POST", "/api/automations/", ALICE, automation_body(wallet))
    assert status == 201, made
    other = make_wallet(env, "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9")
    client = await signed_in(server, ALICE)
    try:
        redis.stop()
        assert (await client.call("transaction:subscribe", {"walletId": wallet}))["ok"] is True
        assert (await client.call("automation:subscribe", {"automationIds": [made["automationId"]]}))["ok"] is True
        refused = await client.call("transaction:subscribe", {"walletId": other})
        assert refused["error"]["code"] == "forbidden"  # the policy still holds
    finally:
        await client.close()


async def test_socket_events_that_need_the_database_while_it_is_away_say_try_again(stand):
    """Before: `internal_error`, as for a bug, where REST answers 503 `service_unavailable`."""
    env, server, _, database_path = stand
    client = await signed_in(server, ALICE)
    try:
        database_path.cut()
        ack = await client.call("automation:list", {}, timeout=30)
        assert ack["error"]["code"] == "service_unavailable", ack
        assert (await client.call("ping", {}))["ok"] is True  # the socket carries on
        database_path.restore()
        assert (await client.call("automation:list", {}, timeout=30))["ok"] is True
    finally:
        await client.close()
