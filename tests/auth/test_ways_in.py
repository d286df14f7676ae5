"""The three ways in (authenticate event, CONNECT auth, Authorization header), on both transports.

Success is `authenticated {userId, userEmail, permissions}` plus membership of user:{id}; a bad
token in CONNECT is CONNECT_ERROR, a bad one in `authenticate` is auth_error with the socket
staying connected and anonymous.
"""

from __future__ import annotations

import jwt
import pytest

from tests.auth.clients import Client, connected, receives_room_emit, refused
from tests.auth.conftest import new_user


@pytest.fixture(params=["websocket", "polling"])
def transport(request):
    return request.param


def expected_reply(user: str, email: str, permissions=()) -> dict:
    return {"userId": user, "userEmail": email, "permissions": list(permissions)}


async def assert_signed_in(server, client: Client, user: str, email: str, permissions=()) -> None:
    assert await client.next("authenticated") == expected_reply(user, email, permissions)
    assert await receives_room_emit(server, client, f"user:{user}")
    ack = await client.call("subscribe", {"room": f"user:{user}"})
    assert ack["ok"] is True and ack["room"] == f"user:{user}"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
async def test_authenticate_event(main_server, supabase, transport, alg):
    user = new_user()
    client = await connected(main_server, transport)
    token = supabase.token(user, alg=alg, email="ada@example.test", app_metadata={"permissions": ["trader"]})
    ack = await client.authenticate(token)
    assert ack == {"ok": True, **expected_reply(user, "ada@example.test", ["trader"])}
    await assert_signed_in(main_server, client, user, "ada@example.test", ["trader"])
    await client.close()


async def test_connect_auth_payload(main_server, supabase, transport):
    user = new_user()
    client = await connected(main_server, transport, auth={"token": supabase.token(user, email="bo@example.test")})
    connected_event = await client.next("connected")
    assert connected_event["socketId"] == client.sio.get_sid()
    await assert_signed_in(main_server, client, user, "bo@example.test")
    await client.close()


async def test_authorization_bearer_header(main_server, supabase, transport):
    user = new_user()
    token = supabase.token(user, alg="RS256", email="cy@example.test")
    client = await connected(main_server, transport, headers={"Authorization": f"Bearer {token}"})
    await assert_signed_in(main_server, client, user, "cy@example.test")
    await client.close()


async def test_a_token_without_an_email_gives_an_empty_user_email(main_server, supabase):
    """The seed types userEmail as a string: a token with no email claim (not Supabase's own,
    which always has one, "" for a phone sign-in) is "" too, never null."""
    user = new_user()
    claims = {k: v for k, v in supabase.claims(user).items() if k != "email"}
    client = await connected(main_server, "websocket")
    ack = await client.authenticate(jwt.encode(claims, supabase.jwt_secret, algorithm="HS256"))
    assert ack == {"ok": True, **expected_reply(user, "")}
    await assert_signed_in(main_server, client, user, "")
    await client.close()


async def test_connect_auth_wins_over_the_header(main_server, supabase):
    header_user, auth_user = new_user(), new_user()
    client = await connected(
        main_server, auth={"token": supabase.token(auth_user)},
        headers={"Authorization": f"Bearer {supabase.token(header_user)}"},
    )
    assert (await client.next("authenticated"))["userId"] == auth_user
    await client.close()


async def test_no_token_is_an_anonymous_connection(main_server):
    client = await connected(main_server, auth={"other": 1}, headers={"Authorization": "Basic dXNlcjpwdw=="})
    await client.next("connected")
    await client.none("authenticated")
    await client.none("auth_error", 0.1)
    ack = await client.call("subscribe", {"room": "market:XLM_USDC"})
    assert ack["ok"] is True
    await client.close()


async def test_bad_connect_auth_token_gets_connect_error(main_server, supabase, transport):
    token = supabase.token(new_user(), ttl=-120)
    assert await refused(main_server, transport, auth={"token": token}) == {
        "message": "token expired", "data": {"code": "auth_failed"},
    }


async def test_bad_bearer_header_gets_connect_error(main_server, supabase, transport):
    token = supabase.token(new_user(), aud="anon")
    assert await refused(main_server, transport, headers={"Authorization": f"Bearer {token}"}) == {
        "message": "wrong audience: expected 'authenticated'", "data": {"code": "auth_failed"},
    }


async def test_failed_authenticate_leaves_the_socket_connected_and_anonymous(main_server, supabase, transport):
    user = new_user()
    client = await connected(main_server, transport)
    ack = await client.authenticate(supabase.token(user, iss="https://evil.example/auth/v1"))
    reason = f"wrong issuer: expected {supabase.issuer}"
    assert ack == {"ok": False, "error": {"code": "auth_failed", "message": reason}}
    assert await client.next("auth_error") == {"error": reason}
    assert client.sio.connected
    ack = await client.call("subscribe", {"room": f"user:{user}"})
    assert ack["ok"] is False and ack["error"]["code"] == "auth_required"
    assert (await client.call("ping"))["ok"] is True
    # ...and may try again.
    assert (await client.authenticate(supabase.token(user)))["ok"] is True
    await client.close()


async def test_authenticate_without_ack_reports_auth_error_and_error_event(main_server, supabase):
    client = await connected(main_server)
    await client.emit("authenticate", {"token": supabase.token(new_user(), ttl=-120)})
    assert await client.next("auth_error") == {"error": "token expired"}
    assert await client.next("error") == {"event": "authenticate", "code": "auth_failed", "message": "token expired"}
    await client.close()


async def test_signing_in_as_another_user_leaves_the_first_users_rooms(main_server, supabase):
    first, second = new_user(), new_user()
    client = await connected(main_server, auth={"token": supabase.token(first)})
    await client.next("authenticated")
    assert (await client.call("subscribe", {"room": "market:XLM_USDC"}))["ok"] is True
    assert (await client.authenticate(supabase.token(second)))["userId"] == second
    assert not await receives_room_emit(main_server, client, f"user:{first}", within=0.5)
    assert await receives_room_emit(main_server, client, f"user:{second}")
    assert await receives_room_emit(main_server, client, "market:XLM_USDC")
    await client.close()


async def test_a_failed_reauthentication_keeps_the_current_user(main_server, supabase):
    user = new_user()
    client = await connected(main_server, auth={"token": supabase.token(user)})
    await client.next("authenticated")
    ack = await client.authenticate("not-a-jwt")
    assert ack == {"ok": False, "error": {"code": "auth_failed", "message": "malformed token"}}
    assert await receives_room_emit(main_server, client, f"user:{user}")
    await client.close()
