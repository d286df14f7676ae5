"""SUPABASE_VERIFY_USER=true: each sign-in is confirmed with Supabase (supabase_auth's get_user).

A known user signs in; a user Supabase does not know is "user not found"; a Supabase that is
down, slow or broken gives a clear auth_error, and the server keeps serving other sockets.
The server allows one connection per user, so a connection slot that is never given back shows.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.auth.clients import connected, refused
from tests.auth.conftest import ANON_KEY, new_user

UNREACHABLE = "could not reach Supabase to confirm the user"
TIMEOUT = "could not reach Supabase to confirm the user (timeout)"
SUPABASE_TIMEOUT = 5  # realtime.auth.HTTP_TIMEOUT_SECONDS


@pytest.fixture(scope="module")
def project(projects):
    return projects["verify"]


@pytest.fixture(autouse=True)
async def healthy(project):
    """Each test starts with a healthy Supabase and leaves it so."""
    yield
    project.delay, project.user_status, project.user_status_json, project.user_not_found_status = 0.0, None, False, 403
    await project.come_back()


@pytest.fixture(scope="module")
def verifying(fleet):
    return fleet["verify-user"]


async def refusal(server, token: str, timeout: float = 5) -> str:
    """The reason `authenticate` with `token` is refused (checked to be the same in ack and auth_error)."""
    client = await connected(server)
    try:
        ack = await client.call("authenticate", {"token": token}, timeout=timeout)
        assert ack["ok"] is False, ack
        assert await client.next("auth_error") == {"error": ack["error"]["message"]}
        assert ack["error"]["code"] == "auth_failed"
        assert client.sio.connected
        return ack["error"]["message"]
    finally:
        await client.close()


@pytest.mark.parametrize("alg", ["HS256", "ES256"])
async def test_a_known_user_signs_in(verifying, project, alg):
    user = project.add_user(email="known@example.test")["id"]
    token = project.token(user, alg=alg, email="known@example.test")
    calls = len(project.user_requests)
    client = await connected(verifying)
    ack = await client.authenticate(token)
    assert ack == {"ok": True, "userId": user, "userEmail": "known@example.test", "permissions": []}
    request = project.user_requests[calls]
    assert request["Authorization"] == f"Bearer {token}"
    assert request["apikey"] == ANON_KEY
    await client.close()


async def test_a_known_user_signs_in_through_connect(verifying, project):
    user = project.add_user()["id"]
    client = await connected(verifying, "polling", auth={"token": project.token(user)})
    assert (await client.next("authenticated"))["userId"] == user
    await client.close()


async def test_a_user_supabase_does_not_know(verifying, project):
    token = project.token(new_user())
    assert await refusal(verifying, token) == "user not found"
    assert await refused(verifying, auth={"token": token}) == {"message": "user not found", "data": {"code": "auth_failed"}}


async def test_a_user_not_found_answered_with_404(verifying, project):
    project.user_not_found_status = 404
    assert await refusal(verifying, project.token(new_user(), alg="HS256")) == "user not found"


async def test_supabase_down(verifying, project):
    user = project.add_user()["id"]
    await project.go_down()
    assert await refusal(verifying, project.token(user, alg="HS256")) == UNREACHABLE
    await project.come_back()
    client = await connected(verifying)
    assert (await client.authenticate(project.token(user, alg="HS256")))["ok"] is True
    await client.close()


async def test_supabase_behind_a_failing_gateway(verifying, project):
    project.user_status = 503
    assert await refusal(verifying, project.token(project.add_user()["id"], alg="HS256")) == UNREACHABLE


async def test_supabase_answering_500_with_an_html_page(verifying, project):
    # supabase_auth cannot parse the page (AuthUnknownError): the code words it as unreachable.
    project.user_status = 500
    assert await refusal(verifying, project.token(project.add_user()["id"], alg="HS256")) == UNREACHABLE


async def test_supabase_answering_500_with_its_json_error(verifying, project):
    project.user_status, project.user_status_json = 500, True
    assert await refusal(verifying, project.token(project.add_user()["id"], alg="HS256")) == (
        "could not confirm the user with Supabase (500)"
    )


async def test_supabase_too_slow_times_out_and_others_are_still_served(verifying, project):
    project.delay = SUPABASE_TIMEOUT + 2
    bystander = await connected(verifying)
    token = project.token(project.add_user()["id"], alg="HS256")
    waiting = asyncio.ensure_future(refusal(verifying, token, timeout=SUPABASE_TIMEOUT + 3))
    await asyncio.sleep(0.5)
    started = asyncio.get_running_loop().time()
    assert (await bystander.call("ping"))["ok"] is True
    assert asyncio.get_running_loop().time() - started < 1
    assert await asyncio.wait_for(waiting, SUPABASE_TIMEOUT + 3) == TIMEOUT
    await bystander.close()


# -- a socket that leaves while its sign-in is being confirmed -----------------------------------

CONFIRM_DELAY = 0.6  # Supabase takes this long; the client leaves before it answers
LEAVE_AFTER = 0.2


async def signs_in_later(server, project, user: str) -> dict:
    # Long enough for the check to finish and, for a polling client that vanished between two
    # polls (nothing on the wire says it left), for the 1 s + 1 s heartbeat to notice.
    await asyncio.sleep(CONFIRM_DELAY + 2.5)
    project.delay = 0.0
    client = await connected(server)
    try:
        return await client.authenticate(project.token(user, alg="HS256"))
    finally:
        await client.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_leaving_during_authenticate_gives_the_connection_slot_back(verifying, project, transport):
    user = project.add_user()["id"]
    project.delay = CONFIRM_DELAY
    client = await connected(verifying, transport)
    await client.emit("authenticate", {"token": project.token(user, alg="HS256")})
    await asyncio.sleep(LEAVE_AFTER)
    await client.close()
    ack = await signs_in_later(verifying, project, user)
    assert ack["ok"] is True, f"the departed socket still holds the user's only slot: {ack}"


async def test_leaving_during_connect_auth_gives_the_connection_slot_back_websocket(verifying, project):
    user = project.add_user()["id"]
    project.delay = CONFIRM_DELAY
    url = f"{verifying.url}/socket.io/?EIO=4&transport=websocket".replace("http", "ws", 1)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        assert (await ws.receive_str()).startswith("0{")
        await ws.send_str('40{"token":"%s"}' % project.token(user, alg="HS256"))
        await asyncio.sleep(LEAVE_AFTER)
        await ws.close()
    ack = await signs_in_later(verifying, project, user)
    assert ack["ok"] is True, f"the departed socket still holds the user's only slot: {ack}"


async def test_leaving_during_connect_auth_gives_the_connection_slot_back_polling(verifying, project):
    """Long-polling: CONNECT {token} is POSTed; the client goes away (its pending GET is
    aborted, which ends the session) before Supabase confirms the user."""
    user = project.add_user()["id"]
    project.delay = CONFIRM_DELAY
    url = f"{verifying.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        post = asyncio.ensure_future(http.post(f"{url}&sid={sid}", data='40{"token":"%s"}' % project.token(user, alg="HS256")))
        poll = asyncio.ensure_future(http.get(f"{url}&sid={sid}"))
        await asyncio.sleep(LEAVE_AFTER)
        poll.cancel()
        await asyncio.sleep(0.1)
        async with http.get(f"{url}&sid={sid}") as resp:
            assert resp.status == 400  # the session is over
        (await post).close()
    ack = await signs_in_later(verifying, project, user)
    assert ack["ok"] is True, f"the departed socket still holds the user's only slot: {ack}"
