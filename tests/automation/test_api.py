"""REST /api/automations/ against a real server: CRUD, ownership, admin, pagination, filters, validation, auth."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from stellar_sdk import Keypair

from tests.automation.api_stand import (ADMIN, ALICE, BOB, automation_body, create, env, make_wallet, rest,  # noqa: F401
                                        run_django, server, signed_in, token, wallets)

OUTPUT_FIELDS = {"automationId", "userId", "walletId", "name", "status", "pair", "triggerType", "triggerParams",
                 "actionType", "actionParams", "cooldownSeconds", "maxExecutions", "triggerCount", "executionCount",
                 "failureCount", "lastTriggeredAt", "lastExecutedAt", "createdAt", "updatedAt"}


async def test_no_token_and_a_forged_token_are_401(server):
    assert (await rest(server, "GET", "/api/automations/", None))[0] == 401
    forged = {"Authorization": f"Bearer {token(ALICE, ['admin'], secret='not-the-servers-secret-but-as-long-as-it')}"}
    status, body = await rest(server, "GET", "/api/automations/", None, headers=forged)
    assert status == 401, body
    assert (await rest(server, "POST", "/api/automations/", None, {}, headers=forged))[0] == 401


async def test_create_returns_the_owners_automation_with_normalised_parameters(server, wallets):
    destination = Keypair.random().public_key
    body = await create(server, ALICE, wallets["alice"], triggerParams={"threshold": "0.1200"}, actionType="payment",
                        actionParams={"destination": destination, "amount": "10.50", "asset": "xlm"},
                        cooldownSeconds=60, maxExecutions=3)
    assert set(body) == OUTPUT_FIELDS
    assert body["userId"] == ALICE and body["walletId"] == wallets["alice"] and body["status"] == "active"
    assert body["triggerParams"] == {"threshold": "0.12"}
    assert body["actionParams"] == {"destination": destination, "amount": "10.5", "asset": "XLM"}
    assert body["cooldownSeconds"] == 60 and body["maxExecutions"] == 3 and body["triggerCount"] == 0
    assert isinstance(body["createdAt"], int) and body["lastTriggeredAt"] is None
    status, fetched = await rest(server, "GET", f"/api/automations/{body['automationId']}", ALICE)
    assert status == 200 and fetched == body
    paused = await create(server, ALICE, wallets["alice"], status="paused", triggerType="price_change",
                          triggerParams={"percent": "5", "windowSeconds": 3600})
    assert paused["status"] == "paused" and paused["triggerParams"] == {"percent": "5", "windowSeconds": 3600}


@pytest.mark.parametrize("overrides, field", [
    ({"triggerParams": {"threshold": "-1"}}, "triggerParams"),
    ({"triggerParams": {"threshold": "abc"}}, "triggerParams"),
    ({"triggerParams": {}}, "triggerParams"),
    ({"triggerParams": {"threshold": "1", "extra": 1}}, "triggerParams"),
    ({"triggerParams": "0.12"}, "triggerParams"),
    ({"triggerType": "price_change", "triggerParams": {"percent": "5", "windowSeconds": 10}}, "triggerParams"),
    ({"triggerType": "moon_phase"}, "triggerType"),
    ({"actionType": "payment", "actionParams": {"destination": "GNOPE", "amount": "1", "asset": "XLM"}}, "actionParams"),
    ({"actionType": "payment", "actionParams": {"destination": Keypair.random().public_key, "amount": "0.12345678", "asset": "XLM"}}, "actionParams"),
    ({"actionType": "payment", "actionParams": {}}, "actionParams"),
    ({"actionType": "teleport"}, "actionType"),
    ({"pair": "BTC_USDC"}, "pair"),  # exists, not enabled
    ({"pair": "DOGE_MOON"}, "pair"),
    ({"pair": 7}, "pair"),
    ({"cooldownSeconds": "5"}, "cooldownSeconds"),
    ({"cooldownSeconds": -1}, "cooldownSeconds"),
    ({"maxExecutions": 0}, "maxExecutions"),
    ({"maxExecutions": 2**31}, "maxExecutions"),  # was a 500 on PostgreSQL (integer out of range)
    ({"name": "x" * 101}, "name"),
    ({"name": 12}, "name"),
    ({"walletId": str(uuid.uuid4())}, "walletId"),
    ({"walletId": "not a uuid!"}, "walletId"),
    ({"status": "completed"}, "status"),
])
async def test_invalid_bodies_are_field_errors(server, wallets, overrides, field):
    status, body = await rest(server, "POST", "/api/automations/", ALICE, automation_body(wallets["alice"], **overrides))
    assert status == 400 and field in body, body


async def test_missing_fields_and_non_objects_are_refused(server, wallets):
    status, body = await rest(server, "POST", "/api/automations/", ALICE, {})
    assert status == 400 and {"name", "walletId", "pair", "triggerType", "triggerParams"} <= set(body), body
    assert (await rest(server, "POST", "/api/automations/", ALICE, ["not", "an", "object"]))[0] == 400
    status, body = await rest(server, "POST", "/api/automations/", ALICE, automation_body(wallets["alice"], name="y" * 3_000_000))
    assert status == 413 and body["detail"], body  # oversized: refused (as JSON), never stored


async def test_another_users_wallet_is_refused_and_admin_may_use_any(server, wallets):
    status, body = await rest(server, "POST", "/api/automations/", ALICE, automation_body(wallets["bob"]))
    assert status == 400 and "walletId" in body
    made = await create(server, ADMIN, wallets["bob"])
    assert made["userId"] == BOB  # the wallet's owner owns it


async def test_another_users_automation_is_404_everywhere_and_admin_sees_it(server, wallets):
    bobs = await create(server, BOB, wallets["bob"])
    path = f"/api/automations/{bobs['automationId']}"
    for method, suffix, body in (("GET", "", None), ("PATCH", "", {"name": "mine"}), ("PUT", "", automation_body(wallets["alice"])),
                                 ("DELETE", "", None), ("POST", "/enable", None), ("POST", "/disable", None), ("GET", "/runs", None)):
        status, answer = await rest(server, method, path + suffix, ALICE, body)
        assert status == 404 and answer["code"] == "not_found", (method, suffix, answer)
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await rest(server, "GET", f"/api/automations/{missing}", ALICE))[0] == 404
    status, seen = await rest(server, "GET", path, ADMIN)
    assert status == 200 and seen["userId"] == BOB
    assert (await rest(server, "GET", path, BOB))[1]["name"] == bobs["name"]  # untouched


async def test_list_is_paginated_filtered_and_per_user(server, env, wallets):
    carol = str(uuid.uuid4())
    carol_wallet, carol_other = make_wallet(env, carol), make_wallet(env, carol)
    made = [await create(server, carol, carol_wallet, name=f"n{i}") for i in range(5)]
    made.append(await create(server, carol, carol_other, name="below", triggerType="price_below", status="paused"))
    status, page = await rest(server, "GET", "/api/automations/?pageSize=4", carol)
    assert status == 200 and page["count"] == 6 and len(page["results"]) == 4 and page["next"]
    assert [a["name"] for a in page["results"]] == ["below", "n4", "n3", "n2"]  # newest first
    status, second = await rest(server, "GET", "/api/automations/?pageSize=4&page=2", carol)
    assert [a["name"] for a in second["results"]] == ["n1", "n0"] and second["next"] is None
    filters = {"status=paused": ["below"], "triggerType=price_below": ["below"], f"walletId={carol_other}": ["below"],
               "pair=XLM_USDC": [m["name"] for m in reversed(made)], "status=active&triggerType=price_below": []}
    for query, names in filters.items():
        status, page = await rest(server, "GET", f"/api/automations/?{query}", carol)
        assert status == 200 and [a["name"] for a in page["results"]] == names, query
    # Another user sees none of them; a userId filter is the admin's only.
    status, alices = await rest(server, "GET", f"/api/automations/?userId={carol}", ALICE)
    assert status == 200 and all(a["userId"] == ALICE for a in alices["results"])
    status, carols = await rest(server, "GET", f"/api/automations/?userId={carol}", ADMIN)
    assert carols["count"] == 6 and {a["userId"] for a in carols["results"]} == {carol}
    for bad, field in (("status=bogus", "status"), ("triggerType=x", "triggerType"), ("pageSize=abc", "pageSize"),
                       ("pageSize=1000", "pageSize"), ("page=0", "page"), ("pair=%20", "pair")):
        status, body = await rest(server, "GET", f"/api/automations/?{bad}", carol)
        assert status == 400 and field in body, (bad, body)
    assert (await rest(server, "GET", "/api/automations/?page=99", carol))[0] == 404


async def test_update_validates_against_the_stored_type_and_resets_the_condition(server, env, wallets):
    made = await create(server, ALICE, wallets["alice"])
    path = f"/api/automations/{made['automationId']}"
    run_django(env, f"from automation.models import Automation; Automation.objects.filter(pk={made['automationId']!r}).update(condition_met=True)")
    status, body = await rest(server, "PATCH", path, ALICE, {"name": "renamed", "cooldownSeconds": 30})
    assert status == 200 and body["name"] == "renamed" and body["cooldownSeconds"] == 30
    condition = "from automation.models import Automation; print(Automation.objects.get(pk=%r).condition_met)" % made["automationId"]
    assert run_django(env, condition).strip() == "True"  # a rename keeps the engine's state
    status, body = await rest(server, "PATCH", path, ALICE, {"triggerParams": {"threshold": "0.15000"}})
    assert status == 200 and body["triggerParams"] == {"threshold": "0.15"}
    assert run_django(env, condition).strip() == "None"  # a new threshold: re-established by the engine
    status, body = await rest(server, "PATCH", path, ALICE, {"triggerType": "price_change"})
    assert status == 400 and "triggerParams" in body  # {"threshold"} is no price_change
    status, body = await rest(server, "PATCH", path, ALICE, {"walletId": wallets["bob"]})
    assert status == 400 and "walletId" in body
    status, body = await rest(server, "PUT", path, ALICE, {"name": "only a name"})
    assert status == 400 and "pair" in body  # PUT replaces: every field
    status, body = await rest(server, "PUT", path, ALICE, automation_body(wallets["alice2"], name="moved", triggerType="price_below"))
    assert status == 200 and body["walletId"] == wallets["alice2"] and body["triggerType"] == "price_below"
    assert (await rest(server, "GET", path, ALICE))[1]["name"] == "moved"


async def test_enable_disable_delete_announce_the_status_to_the_automations_room(server, wallets):
    made = await create(server, ALICE, wallets["alice"], status="paused")
    path = f"/api/automations/{made['automationId']}"
    alice = await signed_in(server, ALICE)
    try:
        assert (await alice.call("automation:subscribe", {"automationIds": [made["automationId"]]}))["ok"] is True
        alice.drain("automation:status")
        status, body = await rest(server, "POST", f"{path}/enable", ALICE)
        assert status == 200 and body["status"] == "active"
        event = await alice.next("automation:status")
        assert event["automationId"] == made["automationId"] and event["status"] == "active" and event["userId"] == ALICE
        await alice.none("automation:status", 0.5)  # once, though the socket is in user: and automation:
        status, body = await rest(server, "POST", f"{path}/disable", ALICE)
        assert status == 200 and body["status"] == "paused"
        assert (await alice.next("automation:status"))["status"] == "paused"
        assert (await rest(server, "PATCH", path, ALICE, {"name": "edited"}))[0] == 200
        assert (await alice.next("automation:status"))["name"] == "edited"
        status, body = await rest(server, "DELETE", path, ALICE)
        assert status == 204 and body is None
        assert (await alice.next("automation:status"))["status"] == "deleted"
        assert (await rest(server, "GET", path, ALICE))[0] == 404
    finally:
        await alice.close()


async def test_runs_are_paginated_newest_first(server, env, wallets):
    made = await create(server, ALICE, wallets["alice"])
    run_django(env, "from automation.models import Automation, AutomationRun\n"
                    f"a = Automation.objects.get(pk={made['automationId']!r})\n"
                    "for s in range(1, 4): AutomationRun.objects.create(automation=a, sequence=s, trigger_condition=f'price > 0.12 #{s}', "
                    "trigger_data={'price': '0.13'}, status='executed', transaction_hash='ab' * 32)")
    status, page = await rest(server, "GET", f"/api/automations/{made['automationId']}/runs?pageSize=2", ALICE)
    assert status == 200 and page["count"] == 3 and [r["sequence"] for r in page["results"]] == [3, 2]
    run = page["results"][0]
    assert run["automationId"] == made["automationId"] and run["triggerData"] == {"price": "0.13"}
    assert run["transactionHash"] == "ab" * 32 and isinstance(run["triggeredAt"], int)


async def test_no_response_carries_a_custodial_key(server, env, wallets):
    secret = Keypair.random().secret
    run_django(env, "from automation.models import CustodialKey; from transactions.models import Wallet\n"
                    f"CustodialKey.objects.create(wallet=Wallet.objects.get(pk={wallets['alice']!r}), ciphertext=b'cipher-' + {secret!r}.encode())")
    made = await create(server, ALICE, wallets["alice"], actionType="payment",
                        actionParams={"destination": Keypair.random().public_key, "amount": "1", "asset": "XLM"})
    for path in ("/api/automations/", f"/api/automations/{made['automationId']}", f"/api/automations/{made['automationId']}/runs"):
        status, body = await rest(server, "GET", path, ALICE)
        text = str(body)
        assert status == 200 and secret not in text and "cipher" not in text.lower() and "custodial" not in text.lower()


async def test_the_schema_describes_the_automation_endpoints(server):
    status, schema = await rest(server, "GET", "/api/schema/?format=json", None)
    assert status == 200, schema
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/automations/"])
    assert {"get", "put", "patch", "delete"} <= set(paths["/api/automations/{automation_id}"])
    assert "post" in paths["/api/automations/{automation_id}/enable"] and "get" in paths["/api/automations/{automation_id}/runs"]
    assert "AutomationCreate" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["supabaseBearer"]["scheme"] == "bearer"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/api/docs/") as response:
            assert response.status == 200 and "swagger" in (await response.text()).lower()
