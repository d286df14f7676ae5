"""The Django admin of automations through Django's test client, logged in as staff (in a process of
its own, on the server's database and Redis), with a real socket hearing the actions' status events."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from stellar_sdk import Keypair

from tests.automation.api_stand import (ALICE, admin_requests, create, env, rest, run_django, server,  # noqa: F401
                                        signed_in, wallets)

CHANGELIST = "/admin/automation/automation/"


async def admin(env, steps: list[dict]) -> list[dict]:
    return await asyncio.to_thread(admin_requests, env, steps)


def action(name: str, ids: list[str]) -> dict:
    return {"method": "post", "path": CHANGELIST, "data": {"action": name, "_selected_action": ids, "index": 0}}


async def test_pages_render_for_staff_with_every_filter_runs_inline_and_no_secret(server, env, wallets):
    made = await create(server, ALICE, wallets["alice"], name="admin-visible", actionType="payment",
                        actionParams={"destination": Keypair.random().public_key, "amount": "2", "asset": "XLM"})
    secret = Keypair.random().secret
    run_django(env, "from automation.models import Automation, AutomationRun, CustodialKey\n"
                    f"a = Automation.objects.get(pk={made['automationId']!r})\n"
                    f"CustodialKey.objects.update_or_create(wallet=a.wallet, defaults={{'ciphertext': b'cipher-' + {secret!r}.encode()}})\n"
                    "AutomationRun.objects.create(automation=a, sequence=41, trigger_condition='price above 0.12 (0.13)', "
                    "status='failed', error='Horizon down', error_code='horizon_unavailable')")
    pages = [f"{CHANGELIST}?status__exact=active", f"{CHANGELIST}?trigger_type__exact=price_above",
             f"{CHANGELIST}?pair=XLM_USDC", f"{CHANGELIST}?owner_id={ALICE}", f"{CHANGELIST}?action_type__exact=payment",
             f"{CHANGELIST}?q=admin-visible", f"{CHANGELIST}{made['automationId']}/change/",
             "/admin/automation/automationrun/?status__exact=failed", "/admin/automation/automationrun/", CHANGELIST,
             f"{CHANGELIST}add/"]
    answers = await admin(env, [{"method": "get", "path": page} for page in pages])
    for page, answer in zip(pages, answers):
        assert answer["status"] == 200, (page, answer["body"][:500])
        assert secret not in answer["body"] and "cipher-" not in answer["body"], page
    for answer in answers[:6]:
        assert "admin-visible" in answer["body"]
    change_page = answers[6]["body"]
    assert "Horizon down" in change_page and "horizon_unavailable" in change_page  # the runs, inline
    assert 'name="runs-0-status"' not in change_page  # ... read-only
    assert 'name="condition_met"' not in change_page and 'name="status"' not in change_page  # engine state, status: read-only
    assert "horizon_unavailable" in answers[7]["body"]


async def test_enable_and_disable_actions_announce_the_status_to_subscribed_sockets(server, env, wallets):
    first = await create(server, ALICE, wallets["alice"], status="paused", name="first")
    second = await create(server, ALICE, wallets["alice"], status="paused", name="second")
    alice = await signed_in(server, ALICE)
    try:
        ids = [first["automationId"], second["automationId"]]
        assert (await alice.call("automation:subscribe", {"automationIds": ids}))["ok"] is True
        [answer] = await admin(env, [action("enable_selected", ids)])
        assert answer["status"] == 302, answer["body"][:500]
        events = [await alice.next("automation:status"), await alice.next("automation:status")]
        assert sorted(e["automationId"] for e in events) == sorted(ids) and {e["status"] for e in events} == {"active"}
        await alice.none("automation:status", 0.5)
        for automation_id in ids:
            assert (await rest(server, "GET", f"/api/automations/{automation_id}", ALICE))[1]["status"] == "active"
        [answer] = await admin(env, [action("disable_selected", [first["automationId"]])])
        assert answer["status"] == 302
        event = await alice.next("automation:status")
        assert event["automationId"] == first["automationId"] and event["status"] == "paused"
    finally:
        await alice.close()


async def test_the_enable_action_leaves_an_automation_that_fired_max_executions_times_and_says_why(server, env, wallets):
    done = await create(server, ALICE, wallets["alice"], name="done-already", maxExecutions=1)
    run_django(env, "from automation.models import Automation\n"  # as the engine leaves it after one run
                    f"Automation.objects.filter(id={done['automationId']!r}).update(trigger_count=1, status='completed')")
    paused = await create(server, ALICE, wallets["alice"], status="paused", name="paused-one")
    action_answer, page = await admin(env, [action("enable_selected", [done["automationId"], paused["automationId"]]),
                                            {"method": "get", "path": CHANGELIST}])
    assert action_answer["status"] == 302
    assert "1 automation(s) enabled." in page["body"] and "Done-already: it has fired maxExecutions times" in page["body"]  # capitalised by the admin
    assert (await rest(server, "GET", f"/api/automations/{done['automationId']}", ALICE))[1]["status"] == "completed"
    assert (await rest(server, "GET", f"/api/automations/{paused['automationId']}", ALICE))[1]["status"] == "active"


async def test_add_edit_and_delete_through_the_admin_go_through_the_services(server, env, wallets):
    alice = await signed_in(server, ALICE)
    try:
        form = {"name": "from-admin", "wallet": wallets["alice"], "status": "active", "pair": "xlm/usdc",
                "trigger_type": "price_below", "trigger_params": '{"threshold": "0.0900"}', "action_type": "notify",
                "action_params": "{}", "cooldown_seconds": "0", "max_executions": "",
                "runs-TOTAL_FORMS": "0", "runs-INITIAL_FORMS": "0", "runs-MIN_NUM_FORMS": "0", "runs-MAX_NUM_FORMS": "0"}
        bad = {**form, "trigger_params": '{"threshold": "-3"}', "pair": "BTC_USDC"}
        answers = await admin(env, [{"method": "post", "path": f"{CHANGELIST}add/", "data": bad},
                                    {"method": "post", "path": f"{CHANGELIST}add/", "data": form}])
        fields = re.findall(r'class="errorlist" id="id_(\w+)_error"', answers[0]["body"])
        assert answers[0]["status"] == 200 and fields == ["pair", "trigger_params"], answers[0]["body"][:2000]
        assert "threshold must be greater than 0" in answers[0]["body"]
        assert answers[1]["status"] == 302, answers[1]["body"][:2000]
        created = await alice.next("automation:status")  # alice's user room: the wallet's owner owns it
        assert created["name"] == "from-admin" and created["userId"] == ALICE and created["pair"] == "XLM_USDC"
        assert created["triggerParams"] == {"threshold": "0.09"}
        automation_id = created["automationId"]
        assert re.search(automation_id, answers[1]["location"] or "") or answers[1]["location"] == CHANGELIST
        edit = {**form, "pair": "XLM_USDC", "name": "renamed-in-admin", "wallet": wallets["alice2"]}
        edit.pop("status")
        [answer] = await admin(env, [{"method": "post", "path": f"{CHANGELIST}{automation_id}/change/", "data": edit}])
        assert answer["status"] == 302, answer["body"][:2000]
        edited = await alice.next("automation:status")
        assert edited["name"] == "renamed-in-admin" and edited["walletId"] == wallets["alice2"]
        [answer] = await admin(env, [{"method": "post", "path": f"{CHANGELIST}{automation_id}/delete/", "data": {"post": "yes"}}])
        assert answer["status"] == 302
        assert (await alice.next("automation:status"))["status"] == "deleted"
        assert (await rest(server, "GET", f"/api/automations/{automation_id}", ALICE))[0] == 404
    finally:
        await alice.close()


async def test_admin_pages_are_staff_only(server):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}{CHANGELIST}", allow_redirects=False) as response:
            assert response.status == 302 and "/admin/login/" in response.headers["Location"]
