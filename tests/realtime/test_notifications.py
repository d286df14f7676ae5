"""System notifications: REST POST /api/system/notifications and the Django admin form, each
reaching a real python-socketio client subscribed to `system:notifications` on a real server."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid

import jwt
import pytest
import requests

from tests.auth.clients import Client
from tests.servers import ROOT, fresh_sqlite, manage, start_daphne

ARTIFACTS = ROOT / "artifacts"
JWT_SECRET = "notifications-tests-hs256-secret-with-more-than-32-chars"
SUPABASE_URL = "http://127.0.0.1:54321"
URL = "/api/system/notifications"
ADMIN_USER, ADMIN_PASSWORD = "operator", "operator-password-for-tests"
SERVER_ENV = {
    "SUPABASE_URL": SUPABASE_URL, "SUPABASE_JWT_SECRET": JWT_SECRET, "SUPABASE_VERIFY_USER": "false",
    "REDIS_URL": "", "REDIS_PREFIX": f"notif{os.getpid()}",
    "RATE_LIMIT_REQUESTS": "100000", "RATE_LIMIT_HANDSHAKES": "100000",
    # No domain feeds: these servers only carry notifications, and no test reaches the internet.
    "MARKET_FEED_IN_PROCESS": "false", "TRANSACTIONS_IN_PROCESS": "false",
}


def token(permissions: list[str], user: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": user or str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
              "iss": f"{SUPABASE_URL}/auth/v1", "iat": now, "exp": now + 3600, "app_metadata": {"permissions": permissions}}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**SERVER_ENV, "DATABASE_URL": fresh_sqlite(tmp_path_factory.mktemp("notif-db"))}
    manage(env, "migrate", "--noinput")
    manage({**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}, "createsuperuser", "--noinput",
           "--username", ADMIN_USER, "--email", "operator@example.com")
    srv = start_daphne("galaxy.asgi:application", env, ARTIFACTS / f"notifications-server-{os.getpid()}.log")
    yield srv
    srv.stop()


def post(server, body, bearer: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.post(server.url + URL, json=body, headers=headers, timeout=10, **kwargs)


async def listener(server) -> Client:
    client = await Client().connect(server)
    reply = await client.call("subscribe", {"room": "system:notifications"})
    assert reply["ok"] is True, reply
    return client


async def test_admin_sends_through_rest_and_a_subscribed_client_receives_it(server):
    client = await listener(server)
    bystander = await Client().connect(server)  # not in the room: must hear nothing
    try:
        response = await asyncio.to_thread(post, server, {"message": "Maintenance at 22:00 UTC", "level": "warning",
                                                          "title": "Maintenance"}, token(["admin"]))
        assert response.status_code == 201, response.text
        sent = response.json()
        assert sent["level"] == "warning" and sent["title"] == "Maintenance" and sent["message"] == "Maintenance at 22:00 UTC"
        uuid.UUID(sent["id"])
        assert abs(sent["timestamp"] - time.time() * 1000) < 60_000
        assert await client.next("system:notification") == sent
        await bystander.none("system:notification")

        untitled = await asyncio.to_thread(post, server, {"message": "hello", "level": "info"}, token(["admin"]))
        assert untitled.status_code == 201, untitled.text
        got = await client.next("system:notification")
        assert got["title"] is None and got["message"] == "hello" and got["id"] != sent["id"]
    finally:
        await client.close()
        await bystander.close()


def test_without_a_token_is_401(server):
    response = post(server, {"message": "x", "level": "info"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_401(server):
    assert post(server, {"message": "x", "level": "info"}, "not-a-token").status_code == 401


def test_a_user_without_the_admin_permission_is_403(server):
    response = post(server, {"message": "x", "level": "info"}, token([]))
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert post(server, {"message": "x", "level": "info"}, token(["read"])).status_code == 403


@pytest.mark.parametrize("body, field", [
    ({"level": "info"}, "message"),
    ({"message": "", "level": "info"}, "message"),
    ({"message": 12, "level": "info"}, "message"),
    ({"message": "x" * 1001, "level": "info"}, "message"),
    ({"message": "x"}, "level"),
    ({"message": "x", "level": "emergency"}, "level"),
    ({"message": "x", "level": "info", "title": ["t"]}, "title"),
    ({"message": "x", "level": "info", "title": "t" * 201}, "title"),
])
def test_bad_fields_are_400_with_field_errors(server, body, field):
    response = post(server, body, token(["admin"]))
    assert response.status_code == 400, response.text
    assert field in response.json()


def test_a_body_that_is_not_an_object_is_400(server):
    assert post(server, ["message"], token(["admin"])).status_code == 400
    response = requests.post(server.url + URL, data="{not json", timeout=10,
                             headers={"Authorization": f"Bearer {token(['admin'])}", "Content-Type": "application/json"})
    assert response.status_code == 400


def test_only_post(server):
    response = requests.get(server.url + URL, headers={"Authorization": f"Bearer {token(['admin'])}"}, timeout=10)
    assert response.status_code == 405


def admin_session(server) -> requests.Session:
    session = requests.Session()
    login = session.get(f"{server.url}/admin/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    done = session.post(f"{server.url}/admin/login/?next=/admin/", timeout=10, headers={"Referer": f"{server.url}/admin/login/"},
                        data={"csrfmiddlewaretoken": csrf, "username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": "/admin/"})
    assert done.status_code == 200 and "Log out" in done.text, done.text[:500]
    return session


def admin_send(session: requests.Session, server, fields: dict) -> requests.Response:
    add_url = f"{server.url}/admin/notifications/systemnotification/add/"
    form = session.get(add_url, timeout=10)
    assert form.status_code == 200
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return session.post(add_url, data={"csrfmiddlewaretoken": csrf, **fields}, headers={"Referer": add_url}, timeout=10)


async def test_staff_send_one_from_the_admin_and_a_client_receives_it(server):
    session = await asyncio.to_thread(admin_session, server)
    index = await asyncio.to_thread(session.get, f"{server.url}/admin/", timeout=10)
    assert "/admin/notifications/systemnotification/add/" in index.text  # linked from the admin index

    client = await listener(server)
    try:
        response = await asyncio.to_thread(admin_send, session, server,
                                           {"level": "critical", "title": "Incident", "message": "Horizon is degraded"})
        assert response.status_code == 200 and "Sent to system:notifications" in response.text, response.text[:2000]
        got = await client.next("system:notification")
        assert (got["level"], got["title"], got["message"]) == ("critical", "Incident", "Horizon is degraded")

        # The log records who sent what and how, and stays as sent.
        listing = await asyncio.to_thread(session.get, f"{server.url}/admin/notifications/systemnotification/", timeout=10)
        assert "Horizon is degraded" in listing.text and ADMIN_USER in listing.text and "Django admin" in listing.text
        detail = await asyncio.to_thread(session.get, f"{server.url}/admin/notifications/systemnotification/{got['id']}/change/", timeout=10)
        assert detail.status_code == 200 and 'name="message"' not in detail.text  # read-only

        # A bad form is shown again with its errors, and nothing is sent.
        bad = await asyncio.to_thread(admin_send, session, server, {"level": "info", "title": "", "message": ""})
        assert bad.status_code == 200 and "This field is required" in bad.text
        await client.none("system:notification")
    finally:
        await client.close()
