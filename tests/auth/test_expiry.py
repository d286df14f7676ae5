"""A token that runs out mid-connection: `auth_error {error: "token expired"}`, private rooms
left (room emits no longer arrive), public rooms kept, and a fresh token signs in again."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest
import redis

from tests.auth.clients import connected, emit_from_server, receives_room_emit
from tests.auth.conftest import AUTH_REDIS_URL, create_rows, new_user

TTL = 1.5  # seconds: short enough to wait for, long enough to subscribe first


def expiring_token(supabase, user: str, ttl: float = TTL) -> str:
    # exp as a fraction of a second from now (JWT NumericDates may be fractional): the expiry
    # comes exactly `ttl` after, not up to a second earlier as a rounded one would.
    return supabase.token(user, exp=time.time() + ttl)


@pytest.fixture(scope="module")
def owner(owned):
    return owned["carol"]["user"], owned["carol"]


async def test_expiry_leaves_private_rooms_and_allows_signing_in_again(main_server, supabase, owner):
    # Both transports at once: the wait for the expiry is the slow part.
    await asyncio.gather(*(expiry_scenario(main_server, supabase, owner, t) for t in ("websocket", "polling")))


async def expiry_scenario(main_server, supabase, owner, transport):
    user, rows = owner
    private = [f"user:{user}", f"wallet:{rows['wallet']}", f"automation:{rows['automation']}"]
    client = await connected(main_server, transport, auth={"token": expiring_token(supabase, user)})
    signed_in_at = time.time()
    assert (await client.next("authenticated"))["userId"] == user
    assert (await client.call("transaction:subscribe", {"walletId": rows["wallet"]}))["ok"] is True
    assert (await client.call("automation:subscribe", {"automationIds": [rows["automation"]]}))["ok"] is True
    assert (await client.call("subscribe", {"room": "market:XLM_USDC"}))["ok"] is True
    for room in private:
        assert await receives_room_emit(main_server, client, room)

    assert await client.next("auth_error", timeout=TTL + 3) == {"error": "token expired"}
    assert time.time() - signed_in_at <= TTL + 1
    assert client.sio.connected
    for room in private:
        assert not await receives_room_emit(main_server, client, room, within=0.3), room
    assert await receives_room_emit(main_server, client, "market:XLM_USDC")
    ack = await client.call("subscribe", {"room": f"wallet:{rows['wallet']}"})
    assert ack["ok"] is False and ack["error"]["code"] == "auth_required"

    ack = await client.authenticate(supabase.token(user))
    assert ack["ok"] is True and ack["userId"] == user
    assert await receives_room_emit(main_server, client, f"user:{user}")
    assert (await client.call("transaction:subscribe", {"walletId": rows["wallet"]}))["ok"] is True
    await client.none("auth_error", 0.2)
    await client.close()


async def test_a_later_token_replaces_the_expiry_of_the_first(main_server, supabase):
    user = new_user()
    client = await connected(main_server, auth={"token": expiring_token(supabase, user, 1.0)})
    await client.next("authenticated")
    assert (await client.authenticate(supabase.token(user, ttl=3600)))["ok"] is True
    await client.none("auth_error", 1.5)
    assert await receives_room_emit(main_server, client, f"user:{user}")
    await client.close()


async def test_subscriptions_in_flight_when_the_token_expires_are_left_too(main_server, supabase):
    """Joins pending across the expiry (automation:subscribe, each an owner lookup that awaits):
    the sign-out leaves the rooms the socket is in at that moment; one whose check passed just
    before must not be joined after it, for an anonymous socket to hear."""
    user, ids = new_user(), [str(uuid.uuid4()) for _ in range(300)]
    create_rows(main_server, "\n".join([
        "from stellar_sdk import Keypair", "from transactions.models import Wallet", "from automation.models import Automation",
        f"w = Wallet.objects.create(owner_id={user!r}, public_key=Keypair.random().public_key, label='race')",
        f"Automation.objects.bulk_create([Automation(id=i, owner_id={user!r}, wallet=w, name='race') for i in {ids!r}])",
    ]))
    expires = time.time() + TTL
    client = await connected(main_server, auth={"token": supabase.token(user, exp=expires)})
    await client.next("authenticated")
    await asyncio.sleep(expires - 0.3 - time.time())
    sent = 0
    while sent < len(ids) and time.time() < expires + 0.4:  # no acks: they pile up, handled in turn
        await client.emit("automation:subscribe", {"automationIds": ids[sent:sent + 3]})
        sent += 3
        await asyncio.sleep(0.002)
    assert await client.next("auth_error", timeout=5) == {"error": "token expired"}
    assert (await client.call("ping", timeout=30))["ok"] is True  # every subscribe before it handled
    client.drain("probe")
    await asyncio.gather(*(emit_from_server(main_server, f"automation:{i}", "probe", {"id": i}) for i in ids[:sent]))
    await client.none("probe", 1.0)
    await client.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_token_inside_the_leeway_expires_during_its_sign_in_and_keeps_no_room(fleet, supabase, transport):
    """A token whose exp passed less than the 30 s leeway ago is accepted and runs out at once
    (on a server on Redis, where joining user:{id} awaits a SUBSCRIBE): no room is kept."""
    server, user = fleet["redis-1"], new_user()
    client = await connected(server, transport, auth={"token": supabase.token(user, exp=time.time() - 5)})
    assert await client.next("auth_error", timeout=5) == {"error": "token expired"}
    assert not await receives_room_emit(server, client, f"user:{user}", within=0.5)
    assert client.sio.connected
    await client.close()


RACE_ROUNDS = 40


@pytest.mark.parametrize("expiry", ["leeway", "natural"])
async def test_an_old_tokens_expiry_does_not_sign_out_a_fresh_sign_in(fleet, supabase, expiry):
    """The same user's fresh token, sent as the old one runs out: whichever the server handles
    first, the socket ends signed in, its connection slot held and user:{id} delivering. The old
    token's sign-out once signed out the fresh sign-in after it, or took the slot from under it
    (the socket still acted as the user, but the per-user limit no longer counted it)."""
    server = fleet["redis-1"]
    slots = redis.Redis.from_url(AUTH_REDIS_URL)

    async def round_() -> None:
        user = new_user()
        if expiry == "leeway":  # inside the verifier's leeway: accepted, and expires during its sign-in
            client = await connected(server)
            await client.emit("authenticate", {"token": supabase.token(user, exp=time.time() - 5)})
        else:  # the fresh token arrives within a few milliseconds of the first one's exp
            expires = time.time() + TTL
            client = await connected(server, auth={"token": supabase.token(user, exp=expires)})
            await asyncio.sleep(expires + random.uniform(-0.01, 0.01) - time.time())
        try:
            sid = (await client.next("connected"))["socketId"]
            ack = await client.authenticate(supabase.token(user))
            assert ack["ok"] is True and ack["userId"] == user, ack
            await asyncio.sleep(0.3)  # the old token's sign-out, if any, has run
            auth_events = [e for e in client.order if e in ("authenticated", "auth_error")]
            assert auth_events[-1] == "authenticated", f"signed out at the end: {auth_events}"
            assert (await client.call("subscribe", {"room": f"user:{user}"}))["ok"] is True, "not signed in"
            key = f"{server.env['REDIS_PREFIX']}:conns:{user}"
            assert await asyncio.to_thread(slots.zscore, key, sid) is not None, "signed in, but holds no connection slot"
            assert await receives_room_emit(server, client, f"user:{user}"), "user:{id} does not deliver"
        finally:
            await client.close()

    # Signed in once first, so the burst does not find the server's JWKS still unfetched.
    await (await connected(server, auth={"token": supabase.token(new_user())})).close()
    try:
        results = await asyncio.gather(*(round_() for _ in range(RACE_ROUNDS)), return_exceptions=True)
    finally:
        slots.close()
    failures = [str(r).splitlines()[0] for r in results if r is not None]
    assert not failures, f"{len(failures)} of {RACE_ROUNDS} rounds: {sorted(set(failures))}"
