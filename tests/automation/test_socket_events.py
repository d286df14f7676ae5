"""automation:enable / disable / get_status / list with a real python-socketio client against a running server."""

from __future__ import annotations

import asyncio
import uuid

from tests.auth.clients import Client
from tests.automation.api_stand import (ADMIN, ALICE, BOB, create, env, make_wallet, rest, run_django, server,  # noqa: F401
                                        signed_in, wallets)


async def test_enable_and_disable_answer_by_ack_and_reply_and_reach_the_room(server, wallets):
    made = await create(server, ALICE, wallets["alice"], status="paused")
    alice, watcher = await signed_in(server, ALICE), await signed_in(server, ALICE)
    try:
        assert (await watcher.call("automation:subscribe", {"automationIds": [made["automationId"]]}))["ok"] is True
        ack = await alice.call("automation:enable", {"automationId": made["automationId"]})
        assert ack["ok"] is True and ack["status"] == "active" and ack["automationId"] == made["automationId"]
        reply = await alice.next("automation:status")
        assert reply == {k: v for k, v in ack.items() if k != "ok"}  # the ack's fields, as REST's serializer gives them
        assert (await watcher.next("automation:status"))["status"] == "active"  # the room hears it too
        ack = await alice.call("automation:disable", {"automationId": made["automationId"]})
        assert ack["ok"] is True and ack["status"] == "paused"
        assert (await watcher.next("automation:status"))["status"] == "paused"
        status, rest_view = await rest(server, "GET", f"/api/automations/{made['automationId']}", ALICE)
        assert rest_view["status"] == "paused" and set(rest_view) == set(ack) - {"ok"}
        alice.drain("automation:status")
        ack = await alice.call("automation:get_status", {"automationId": made["automationId"]})
        assert ack["ok"] is True and ack["status"] == "paused" and ack["name"] == made["name"]
        assert (await alice.next("automation:status"))["automationId"] == made["automationId"]
    finally:
        await alice.close()
        await watcher.close()


async def test_other_users_ids_bad_payloads_and_anonymous_sockets_are_refused_and_a_bystander_is_served(server, wallets):
    bobs = await create(server, BOB, wallets["bob"])
    alices = await create(server, ALICE, wallets["alice"])
    alice, bob, anonymous = await signed_in(server, ALICE), await signed_in(server, BOB), await Client().connect(server)
    try:
        for event in ("automation:enable", "automation:disable", "automation:get_status"):
            for automation_id in (bobs["automationId"], str(uuid.uuid4()), "not-a-uuid"):
                ack = await alice.call(event, {"automationId": automation_id})
                assert ack["ok"] is False and ack["error"]["code"] == "not_found", (event, ack)
            for payload in ({}, {"automationId": 5}, {"automationId": "x" * 65}, ["a"], "id"):
                ack = await alice.call(event, payload)
                assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", (event, payload, ack)
            ack = await anonymous.call(event, {"automationId": alices["automationId"]})
            assert ack["ok"] is False and ack["error"]["code"] == "auth_required"
        await alice.emit("automation:enable", {"automationId": bobs["automationId"]})  # no ack: an `error` event
        error = await alice.next("error")
        assert error["event"] == "automation:enable" and error["code"] == "not_found"
        await alice.none("automation:status", 0.3)
        # Bob's automation was not touched, and Bob is served as ever.
        ack = await bob.call("automation:get_status", {"automationId": bobs["automationId"]})
        assert ack["ok"] is True and ack["status"] == "active"
        ack = await alice.call("automation:get_status", {"automationId": alices["automationId"]})
        assert ack["ok"] is True  # alice's own still works after all that
    finally:
        for client in (alice, bob, anonymous):
            await client.close()


async def test_subscribe_and_unsubscribe_say_subscribed_and_unsubscribed_per_room(server, wallets):
    """As every other subscription: one `subscribed` per room joined (none for one refused), one
    `unsubscribed` per room left, each {room, timestamp}: a client without acks hears them."""
    mine, bobs = await create(server, ALICE, wallets["alice"]), await create(server, BOB, wallets["bob"])
    alice = await signed_in(server, ALICE)
    try:
        room = f"automation:{mine['automationId']}"
        await alice.emit("automation:subscribe", {"automationIds": [mine["automationId"], bobs["automationId"]]})
        said = await alice.next("subscribed")
        assert said["room"] == room and isinstance(said["timestamp"], int)
        await alice.none("subscribed")  # none for Bob's
        await alice.emit("automation:unsubscribe", {"automationIds": [mine["automationId"]]})
        said = await alice.next("unsubscribed")
        assert said["room"] == room and isinstance(said["timestamp"], int)
    finally:
        await alice.close()


async def test_an_automation_that_fired_max_executions_times_is_not_enabled_again(server, env, wallets):
    """Enabled as it is, it would say active and never fire (the engine completes it at once):
    refused with automation_completed, by socket and REST alike, until maxExecutions is raised."""
    made = await create(server, ALICE, wallets["alice"], maxExecutions=1)
    run_django(env, "from automation.models import Automation\n"  # as the engine leaves it after one run
                    f"Automation.objects.filter(id={made['automationId']!r}).update(trigger_count=1, status='completed')")
    alice = await signed_in(server, ALICE)
    try:
        ack = await alice.call("automation:enable", {"automationId": made["automationId"]})
        assert ack["ok"] is False and ack["error"]["code"] == "automation_completed", ack
        status, body = await rest(server, "POST", f"/api/automations/{made['automationId']}/enable", ALICE)
        assert (status, body["code"]) == (409, "automation_completed")
        await rest(server, "PATCH", f"/api/automations/{made['automationId']}", ALICE, {"maxExecutions": 2})
        ack = await alice.call("automation:enable", {"automationId": made["automationId"]})
        assert ack["ok"] is True and ack["status"] == "active"
    finally:
        await alice.close()


async def test_admin_may_act_on_anyones_automation(server, wallets):
    bobs = await create(server, BOB, wallets["bob"])
    admin = await signed_in(server, ADMIN)
    try:
        ack = await admin.call("automation:disable", {"automationId": bobs["automationId"]})
        assert ack["ok"] is True and ack["status"] == "paused" and ack["userId"] == BOB
    finally:
        await admin.close()


async def test_list_answers_the_callers_automations_by_ack_and_reply(server, env):
    dave = str(uuid.uuid4())
    first, second = make_wallet(env, dave), make_wallet(env, dave)
    made = [await create(server, dave, first, name="one"), await create(server, dave, second, name="two")]
    other = make_wallet(env, str(uuid.uuid4()))
    client = await signed_in(server, dave)
    try:
        ack = await client.call("automation:list", {})
        assert ack["ok"] is True and ack["count"] == 2 and [a["name"] for a in ack["automations"]] == ["two", "one"]
        assert ack["walletId"] is None
        reply = await client.next("automation:list")
        assert reply["automations"] == ack["automations"]
        ack = await client.call("automation:list", {"walletId": first})
        assert ack["ok"] is True and [a["automationId"] for a in ack["automations"]] == [made[0]["automationId"]]
        assert (await client.next("automation:list"))["walletId"] == first
        for wallet_id in (other, str(uuid.uuid4())):
            ack = await client.call("automation:list", {"walletId": wallet_id})
            assert ack["ok"] is False and ack["error"]["code"] == "not_found"
        for payload in ({"walletId": 3}, {"walletId": "bad id!"}, [1]):
            ack = await client.call("automation:list", payload)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
    finally:
        await client.close()
    admin = await signed_in(server, ADMIN)
    try:
        ack = await admin.call("automation:list", {"walletId": second})  # any wallet's, for an admin
        assert ack["ok"] is True and [a["name"] for a in ack["automations"]] == ["two"]
    finally:
        await admin.close()


async def test_an_automation_moved_to_another_owner_leaves_the_old_owners_sockets(server, wallets):
    """An admin moves Bob's automation to Alice's wallet: Bob's socket in its room is told
    `unsubscribed` and hears none of Alice's events for it; Alice may subscribe."""
    moved = await create(server, BOB, wallets["bob"])
    room = f"automation:{moved['automationId']}"
    bob, alice = await signed_in(server, BOB), await signed_in(server, ALICE)
    try:
        assert (await bob.call("automation:subscribe", {"automationIds": [moved["automationId"]]}))["ok"] is True
        status, body = await rest(server, "PATCH", f"/api/automations/{moved['automationId']}", ADMIN, {"walletId": wallets["alice"]})
        assert status == 200 and body["userId"] == ALICE
        assert (await bob.next("unsubscribed"))["room"] == room
        assert (await alice.call("automation:subscribe", {"automationIds": [moved["automationId"]]}))["ok"] is True
        await asyncio.sleep(0.2)  # the move's own automation:status, to Alice's user room
        bob.drain("automation:status")
        alice.drain("automation:status")
        assert (await rest(server, "PATCH", f"/api/automations/{moved['automationId']}", ALICE, {"name": "alices now"}))[0] == 200
        assert (await alice.next("automation:status"))["name"] == "alices now"
        await bob.none("automation:status")
    finally:
        await bob.close()
        await alice.close()
