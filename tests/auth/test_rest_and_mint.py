"""The same verifier behind DRF (GET /api/auth/me), and `manage.py mint_token`'s tokens."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
import jwt
import pytest

from tests.auth.clients import connected
from tests.auth.conftest import JWT_SECRET, new_user
from tests.servers import BASE_ENV, ROOT

BEARER_CHALLENGE = 'Bearer realm="galaxy"'


async def me(server, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/auth/me", headers=headers or {}) as resp:
            return resp.status, await resp.json(), dict(resp.headers)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
async def test_me_with_a_good_token(main_server, supabase, alg):
    user = new_user()
    token = supabase.token(user, alg=alg, email="me@example.test", app_metadata={"permissions": ["admin"]},
                           user_metadata={"permissions": ["ignored"]})
    status, body, _ = await me(main_server, {"Authorization": f"Bearer {token}"})
    assert (status, body) == (200, {"userId": user, "userEmail": "me@example.test", "permissions": ["admin"]})


async def test_me_without_a_token_is_401_with_a_bearer_challenge(main_server):
    status, body, headers = await me(main_server)
    assert status == 401
    assert body == {"detail": "Authentication credentials were not provided."}
    assert headers["WWW-Authenticate"] == BEARER_CHALLENGE


async def test_me_with_another_scheme_is_not_authenticated(main_server):
    status, _, _ = await me(main_server, {"Authorization": "Basic dXNlcjpwdw=="})
    assert status == 401


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda s: s.token(new_user(), ttl=-120), "token expired"),
        (lambda s: s.token(new_user(), aud="anon"), "wrong audience: expected 'authenticated'"),
        (lambda s: s.token(new_user(), headers={"kid": "nope"}), "unknown signing key 'nope'"),
        (lambda s: "not-a-jwt", "malformed token"),
        (lambda s: jwt.encode(s.claims(new_user()), "wrong-secret-with-at-least-32-characters", algorithm="HS256"),
         "bad signature"),
    ],
)
async def test_me_with_a_bad_token_is_401_with_the_reason(main_server, supabase, make, reason):
    status, body, headers = await me(main_server, {"Authorization": f"Bearer {make(supabase)}"})
    assert (status, body) == (401, {"detail": reason})
    assert headers["WWW-Authenticate"] == BEARER_CHALLENGE


# -- mint_token ------------------------------------------------------------------------------------

DEV_USER, PLAIN_USER = new_user(), new_user()
# Only production has no embedded default secret; it insists on the rest of its settings.
NO_SECRET = {"NODE_ENV": "production", "DJANGO_SECRET_KEY": "x" * 50, "SUPABASE_SERVICE_ROLE_KEY": "service",
             "REDIS_URL": "redis://127.0.0.1:6379/7", "SUPABASE_JWT_SECRET": ""}


async def mint(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`python manage.py mint_token ARGS` with the server's settings: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "mint_token", *args, cwd=ROOT, env={**os.environ, **BASE_ENV, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode().strip(), stderr.decode()


@pytest.fixture(scope="module")
async def minted(main_server):
    """The command's runs, side by side (each is a Django start-up)."""
    runs = await asyncio.gather(
        mint(main_server.env, "--user", DEV_USER, "--email", "dev@example.test", "--permissions", "admin,trader",
             "--ttl", "120"),
        mint(main_server.env, "--user", PLAIN_USER, "--ttl", "-120"),
        mint({**main_server.env, **NO_SECRET}, "--user", "u"),
    )
    return dict(zip(["dev", "plain", "no_secret"], runs))


async def test_minted_token_signs_in_over_sockets_and_rest(main_server, supabase, minted):
    code, token, _ = minted["dev"]
    assert code == 0
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="authenticated", issuer=supabase.issuer)
    assert claims["sub"] == DEV_USER and claims["exp"] - claims["iat"] == 120
    assert jwt.get_unverified_header(token)["alg"] == "HS256"

    client = await connected(main_server, auth={"token": token})
    assert await client.next("authenticated") == {
        "userId": DEV_USER, "userEmail": "dev@example.test", "permissions": ["admin", "trader"],
    }
    await client.close()
    status, body, _ = await me(main_server, {"Authorization": f"Bearer {token}"})
    assert (status, body["userId"]) == (200, DEV_USER)


async def test_minted_token_without_options_and_with_a_negative_ttl(main_server, supabase, minted):
    code, token, _ = minted["plain"]
    assert code == 0
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="authenticated", issuer=supabase.issuer,
                        options={"verify_exp": False})
    assert "email" not in claims and claims["app_metadata"]["permissions"] == []
    assert claims["sub"] == PLAIN_USER and claims["exp"] - claims["iat"] == -120
    client = await connected(main_server)
    assert (await client.authenticate(token))["error"]["message"] == "token expired"
    await client.close()


async def test_mint_token_without_a_secret_refuses(minted):
    code, stdout, stderr = minted["no_secret"]
    assert code != 0 and stdout == ""
    assert "SUPABASE_JWT_SECRET is not set: there is nothing to sign with" in stderr
