"""The Supabase stand-in answers as Supabase does, as far as the product's libraries can tell."""

from __future__ import annotations

import asyncio

import aiohttp
import jwt
import pytest
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import ANON_KEY, JWT_SECRET, new_user
from tests.supabase import SupabaseStandIn


@pytest.fixture
async def project():
    stand_in = SupabaseStandIn(jwt_secret=JWT_SECRET)
    stand_in.add_key("RS256")
    stand_in.add_key("ES256")
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


async def test_jwks_lists_public_keys_like_supabase(project):
    async with aiohttp.ClientSession() as http:
        async with http.get(project.jwks_url) as resp:
            assert resp.status == 200
            document = await resp.json()
    assert project.jwks_fetches == 1
    entries = {entry["kid"]: entry for entry in document["keys"]}
    assert set(entries) == {k.kid for k in project.keys}
    for key in project.keys:
        entry = entries[key.kid]
        assert (entry["alg"], entry["use"], entry["key_ops"]) == (key.alg, "sig", ["verify"])
        assert "d" not in entry and "p" not in entry  # public halves only
        assert jwt.PyJWK(entry).algorithm_name == key.alg
        claims = jwt.decode(project.token("u1", key=key), jwt.PyJWK(entry).key, algorithms=[key.alg],
                            audience="authenticated", issuer=project.issuer)
        assert claims["sub"] == "u1" and claims["role"] == "authenticated"


async def test_rotation_publishes_the_new_key_first_and_retires_the_old(project):
    old = project.key("ES256")
    new = project.add_key("ES256")
    assert project.key("ES256") is new and old in project.keys
    project.retire_key(old.kid)
    assert old not in project.keys and old in project.retired


async def test_get_user_of_supabase_auth_parses_the_answers(project):
    user = project.add_user(email="parsed@example.test", app_metadata={"permissions": ["trader"]})
    client = AsyncGoTrueClient(url=project.issuer, headers={"apikey": ANON_KEY},
                               auto_refresh_token=False, persist_session=False)
    try:
        response = await client.get_user(project.token(user["id"]))
        assert response.user.id == user["id"] and response.user.email == "parsed@example.test"
        assert response.user.app_metadata["permissions"] == ["trader"]
        assert response.user.identities[0].provider == "email"
        assert project.user_requests[-1]["apikey"] == ANON_KEY
        response = await client.get_user(project.token(user["id"], alg="HS256"))
        assert response.user.id == user["id"]
        with pytest.raises(AuthApiError) as unknown:
            await client.get_user(project.token(new_user()))
        assert (unknown.value.status, unknown.value.code) == (403, "user_not_found")
        with pytest.raises(AuthApiError) as bad:
            await client.get_user(project.token(user["id"], iss="https://elsewhere/auth/v1"))
        assert (bad.value.status, bad.value.code) == (403, "bad_jwt")
    finally:
        await client.close()


async def test_switches_slow_and_down(project):
    project.delay = 0.3
    async with aiohttp.ClientSession() as http:
        started = asyncio.get_running_loop().time()
        async with http.get(project.jwks_url) as resp:
            assert resp.status == 200
        assert asyncio.get_running_loop().time() - started >= 0.3
        project.delay = 0
        await project.go_down()
        with pytest.raises(aiohttp.ClientConnectionError):  # a kept-alive connection is cut
            await http.get(project.jwks_url)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorError):  # a new one is refused
            await http.get(project.jwks_url)
        await project.come_back()
        async with http.get(project.jwks_url) as resp:
            assert resp.status == 200
