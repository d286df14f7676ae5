"""The verifier parses each distinct token header once (TokenVerifier._header): a token whose
header it has seen is still checked whole, and made-up headers cannot grow the cache."""

from __future__ import annotations

import time

import jwt
import pytest

from realtime.auth import HEADERS_CACHED, AuthFailed, TokenVerifier

SECRET = "header-cache-test-secret-of-32-bytes!!"
SUPABASE = "http://127.0.0.1:9"


def token(sub: str, secret: str = SECRET, **headers) -> str:
    claims = {"sub": sub, "aud": "authenticated", "iss": f"{SUPABASE}/auth/v1", "exp": int(time.time()) + 600}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(supabase_url=SUPABASE, hs256_secret=SECRET)


async def test_a_seen_header_does_not_vouch_for_the_rest_of_the_token(verifier):
    assert (await verifier.verify(token("alice"))).user_id == "alice"
    forged = token("mallory", secret="someone-elses-secret-of-32-bytes!!!!")
    assert forged.partition(".")[0] == token("x").partition(".")[0]  # the header it has seen
    with pytest.raises(AuthFailed, match="bad signature"):
        await verifier.verify(forged)
    head = forged.partition(".")[0]
    for junk in (f"{head}.!!!.sig", f"{head}.e30", f"{head}"):
        with pytest.raises(AuthFailed, match="malformed token"):
            await verifier.verify(junk)


async def test_made_up_headers_do_not_grow_the_cache(verifier):
    for n in range(HEADERS_CACHED * 3):
        assert (await verifier.verify(token(f"user{n}", x=n))).user_id == f"user{n}"
        assert len(verifier._headers) <= HEADERS_CACHED
    with pytest.raises(AuthFailed, match="malformed token"):
        await verifier.verify("not-base64!.e30.sig")
