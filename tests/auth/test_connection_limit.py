"""MAX_CONNECTIONS_PER_USER (5): the sixth authenticated connection is told "too many
connections" and stays anonymous; a closed (or expired) one frees its place. With Redis the
count is one across server processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.auth.clients import Client, connected
from tests.auth.conftest import new_user

LIMIT = 5


async def five_signed_in(servers, supabase, user: str, **claims) -> list[Client]:
    clients = []
    for n in range(LIMIT):
        client = await connected(servers[n % len(servers)], auth={"token": supabase.token(user, **claims)})
        assert (await client.next("authenticated"))["userId"] == user
        clients.append(client)
    return clients


async def eventually_signs_in(server, client: Client, token: str, within: float = 3.0) -> dict:
    """The disconnect of another socket is handled asynchronously: retry `authenticate` a little."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ack = await client.authenticate(token)
        if ack["ok"] or asyncio.get_running_loop().time() > deadline:
            return ack
        await asyncio.sleep(0.1)


async def assert_sixth_refused(server, supabase, user: str, way: str) -> Client:
    token = supabase.token(user)
    if way == "connect":
        sixth = await connected(server, auth={"token": token})
        assert await sixth.next("auth_error") == {"error": "too many connections"}
    else:
        sixth = await connected(server)
        ack = await sixth.authenticate(token)
        assert ack == {"ok": False, "error": {"code": "auth_failed", "message": "too many connections"}}
        assert await sixth.next("auth_error") == {"error": "too many connections"}
    await sixth.none("authenticated", 0.1)
    assert sixth.sio.connected
    ack = await sixth.call("subscribe", {"room": f"user:{user}"})
    assert ack["ok"] is False and ack["error"]["code"] == "auth_required"
    return sixth


async def close_all(clients) -> None:
    for client in clients:
        await client.close()


@pytest.mark.parametrize("way", ["connect", "authenticate"])
async def test_the_sixth_connection_is_refused_until_one_closes(main_server, supabase, way):
    user = new_user()
    five = await five_signed_in([main_server], supabase, user)
    sixth = await assert_sixth_refused(main_server, supabase, user, way)
    # Refused attempts are not counted: still refused, not "more" refused, after several.
    for _ in range(3):
        assert (await sixth.authenticate(supabase.token(user)))["ok"] is False
    # Re-authenticating one of the five is not a new connection.
    assert (await five[0].authenticate(supabase.token(user)))["ok"] is True
    await five.pop().close()
    ack = await eventually_signs_in(main_server, sixth, supabase.token(user))
    assert ack["ok"] is True and ack["userId"] == user
    await close_all([*five, sixth])


async def test_other_users_are_not_affected(main_server, supabase):
    user = new_user()
    five = await five_signed_in([main_server], supabase, user)
    other = await connected(main_server, auth={"token": supabase.token(new_user())})
    assert "userId" in await other.next("authenticated")
    await close_all([*five, other])


async def test_an_expired_connection_no_longer_counts(main_server, supabase):
    user = new_user()
    five = await five_signed_in([main_server], supabase, user, exp=time.time() + 1.5)
    for client in five:
        assert await client.next("auth_error", timeout=5) == {"error": "token expired"}
    sixth = await connected(main_server, auth={"token": supabase.token(user)})
    assert (await sixth.next("authenticated"))["userId"] == user
    await close_all([*five, sixth])


# -- two processes, one Redis ----------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_pair(fleet):
    return [fleet["redis-1"], fleet["redis-2"]]


@pytest.mark.parametrize("way", ["connect", "authenticate"])
async def test_one_limit_across_two_processes(redis_pair, supabase, way):
    first, second = redis_pair
    user = new_user()
    five = await five_signed_in(redis_pair, supabase, user)  # 3 on the first, 2 on the second
    sixth_on_first = await assert_sixth_refused(first, supabase, user, way)
    sixth_on_second = await assert_sixth_refused(second, supabase, user, way)
    await five[1].close()  # one of the second process's
    ack = await eventually_signs_in(first, sixth_on_first, supabase.token(user))
    assert ack["ok"] is True and ack["userId"] == user
    assert (await sixth_on_second.authenticate(supabase.token(user)))["error"]["message"] == "too many connections"
    await close_all([*five, sixth_on_first, sixth_on_second])
