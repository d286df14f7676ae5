"""ES256/RS256 through the project's JWKS: one fetch, a 10-minute cache, one refetch for a new kid.

The first tests run a server of their own (a fresh JWKS cache) against a stand-in of their own
(its own fetch counter). The rest drive TokenVerifier in this process with a fake monotonic
clock, to cross the cache's time limits without waiting for them.
"""

from __future__ import annotations

import types

import pytest

import realtime.auth
from realtime.auth import AuthFailed, TokenVerifier
from tests.auth.clients import connected
from tests.auth.conftest import JWT_SECRET, new_user
from tests.supabase import SupabaseStandIn


async def signed_in(server, token: str) -> dict:
    """The ack of `authenticate` with `token` on a new socket."""
    client = await connected(server)
    try:
        return await client.authenticate(token)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def project(projects):
    return projects["jwks"]


@pytest.fixture(scope="module")
def jwks_server(fleet):
    return fleet["jwks"]


# -- end to end: a fresh server ------------------------------------------------------------------


async def test_es256_and_rs256_share_one_cached_jwks_fetch(jwks_server, project):
    assert project.jwks_fetches == 0
    for alg in ("ES256", "RS256", "ES256", "RS256"):
        user = new_user()
        ack = await signed_in(jwks_server, project.token(user, alg=alg))
        assert ack["ok"] is True and ack["userId"] == user
    assert project.jwks_fetches == 1


async def test_a_rotated_in_key_is_fetched_once_and_accepted(jwks_server, project):
    """Supabase rotates: a new signing key appears in the JWKS (the old one stays listed).
    The first token signed with it has an unknown kid: one refetch, and it is accepted."""
    await signed_in(jwks_server, project.token(new_user()))  # the cache is warm
    before = project.jwks_fetches
    rotated = project.add_key("ES256")
    user = new_user()
    ack = await signed_in(jwks_server, project.token(user, key=rotated))
    assert ack == {"ok": True, "userId": user, "userEmail": f"{user[:8]}@example.test", "permissions": []}
    assert project.jwks_fetches == before + 1


async def test_made_up_kids_cause_at_most_one_refetch(jwks_server, project):
    before = project.jwks_fetches
    for n in range(6):
        ack = await signed_in(jwks_server, project.token(new_user(), headers={"kid": f"made-up-{n}"}))
        assert ack["error"]["message"] == f"unknown signing key 'made-up-{n}'"
    assert project.jwks_fetches - before <= 1


# -- in process: TokenVerifier with a fake clock -----------------------------------------------


class FakeClock:
    """Stands in for the `time` module inside realtime.auth: monotonic() is ours to move."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        import time

        return time.time()


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(100_000.0)  # a host up for a day
    monkeypatch.setattr(realtime.auth, "time", types.SimpleNamespace(monotonic=fake.monotonic, time=fake.time))
    return fake


@pytest.fixture
async def standin():
    stand_in = SupabaseStandIn(jwt_secret=JWT_SECRET)
    stand_in.add_key("RS256")
    stand_in.add_key("ES256")
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def verifier_for(stand_in: SupabaseStandIn) -> TokenVerifier:
    return TokenVerifier(supabase_url=stand_in.url, hs256_secret=JWT_SECRET)


async def reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthFailed) as failed:
        await verifier.verify(token)
    return failed.value.message


async def test_the_cache_lasts_ten_minutes_then_is_refetched(clock, standin):
    verifier = verifier_for(standin)
    old = standin.key("ES256")
    assert (await verifier.verify(standin.token("u1"))).user_id == "u1"
    clock.now += 599
    assert (await verifier.verify(standin.token("u2", alg="RS256"))).user_id == "u2"
    assert standin.jwks_fetches == 1
    standin.add_key("ES256")
    standin.retire_key(old.kid)  # the end of a rotation: the old key is gone from the JWKS
    clock.now += 2  # 601 s after the first fetch
    assert (await verifier.verify(standin.token("u3"))).user_id == "u3"
    assert standin.jwks_fetches == 2
    assert await reason(verifier, standin.token("u4", key=old)) == f"unknown signing key {old.kid!r}"


async def test_an_unknown_kid_refetches_once_after_the_minimum_interval(clock, standin):
    verifier = verifier_for(standin)
    await verifier.verify(standin.token("u1"))
    clock.now += 31
    new = standin.add_key("RS256")
    assert (await verifier.verify(standin.token("u2", key=new))).user_id == "u2"
    assert standin.jwks_fetches == 2
    for n in range(5):
        assert await reason(verifier, standin.token("u3", headers={"kid": f"x{n}"})) == f"unknown signing key 'x{n}'"
    assert standin.jwks_fetches == 2


async def test_tokens_that_come_while_the_keys_are_fetched_wait_for_them(clock, standin):
    """A burst of tokens on a fresh process (a deploy's reconnect storm), then a burst signed with
    a key just rotated in: every one is accepted, each burst on one fetch. Before: only the token
    that started a fetch waited for it; the others found no key ("unknown signing key")."""
    import asyncio

    verifier = verifier_for(standin)
    users = [f"u{n}" for n in range(20)]
    principals = await asyncio.gather(*(verifier.verify(standin.token(user)) for user in users))
    assert [p.user_id for p in principals] == users and standin.jwks_fetches == 1
    clock.now += 31
    new = standin.add_key("ES256")
    principals = await asyncio.gather(*(verifier.verify(standin.token(user, key=new)) for user in users))
    assert [p.user_id for p in principals] == users and standin.jwks_fetches == 2


async def test_the_first_fetch_does_not_depend_on_how_long_the_host_has_been_up(clock, standin):
    """time.monotonic() counts from boot: on a host (VM, container sandbox) up for 5 s the
    empty cache must still be fetched on first use."""
    clock.now = 5.0
    verifier = verifier_for(standin)
    assert (await verifier.verify(standin.token("u1"))).user_id == "u1"
    assert standin.jwks_fetches == 1


async def test_unreachable_jwks_is_said_so_on_every_try(clock, standin):
    verifier = verifier_for(standin)
    await standin.go_down()
    token = standin.token("u1")
    assert await reason(verifier, token) == "could not fetch the project's signing keys"
    clock.now += 1
    # Still unreachable (and not refetched yet): the reason must not turn into "unknown key".
    assert await reason(verifier, token) == "could not fetch the project's signing keys"


async def test_unreachable_jwks_keeps_serving_the_cached_keys(clock, standin):
    verifier = verifier_for(standin)
    await verifier.verify(standin.token("u1"))
    await standin.go_down()
    clock.now += 601
    assert (await verifier.verify(standin.token("u2", alg="RS256"))).user_id == "u2"
    await standin.come_back()
    clock.now += 31
    assert (await verifier.verify(standin.token("u3"))).user_id == "u3"


async def test_hs256_is_refused_without_a_configured_secret(standin):
    verifier = TokenVerifier(supabase_url=standin.url, hs256_secret=None)
    assert await reason(verifier, standin.token("u1", alg="HS256")) == (
        "HS256 tokens are not accepted here: no SUPABASE_JWT_SECRET is configured"
    )
    assert (await verifier.verify(standin.token("u1"))).user_id == "u1"
    assert standin.jwks_fetches == 1  # an HS256 token never costs a JWKS fetch
