"""HS256 tokens of the usual shape are accepted without PyJWT (realtime/hs256.py), and nothing
PyJWT would refuse: whatever `plain_claims` accepts, PyJWT accepts with the same claims, over
tokens hypothesis makes from valid ones by changing a claim, the header, the key or a character.
Everything else is PyJWT's to decide: the verifier's refusals keep their reasons."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.auth import AUDIENCE, LEEWAY_SECONDS, AuthFailed, TokenVerifier
from realtime.hs256 import plain_claims

SECRET = "hs256-fast-path-test-secret-32-bytes!"
KEY = SECRET.encode()
ISSUER = "http://127.0.0.1:9/auth/v1"
NOW = int(time.time())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: dict, claims: object, key: bytes = KEY) -> str:
    """A token signed over exactly these header and claims (any JSON, unlike jwt.encode)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def supabase_claims(**changes) -> dict:
    claims = {"aud": AUDIENCE, "exp": NOW + 3600, "iat": NOW - 10, "iss": ISSUER, "sub": "8d0fb3a4-5b6e-4f0e-9a39-0c6f6c1b9b1a",
              "email": "ada@example.com", "phone": "", "app_metadata": {"provider": "email", "permissions": ["trade"]},
              "user_metadata": {}, "role": "authenticated", "aal": "aal1", "session_id": "c2b5", "is_anonymous": False}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not ...}


def pyjwt(token: str) -> dict | None:
    try:
        return jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY_SECONDS,
                          options={"require": ["exp", "sub", "aud", "iss"]})
    except jwt.PyJWTError:
        return None


def header_of(token: str) -> dict:
    """The header as the verifier has it: parsed once per first segment (TokenVerifier._header),
    so for a token whose first segment it has seen, nothing else of the token was looked at."""
    return jwt.get_unverified_header(token.partition(".")[0] + ".e30.")


def fast(token: str) -> dict | None:
    return plain_claims(token, header_of(token), KEY, AUDIENCE, ISSUER, LEEWAY_SECONDS)


@pytest.mark.parametrize("token", [
    signed({"alg": "HS256", "typ": "JWT"}, supabase_claims()),
    signed({"alg": "HS256", "typ": "JWT", "kid": "a1b2"}, supabase_claims()),
    jwt.encode(supabase_claims(), SECRET, algorithm="HS256"),
    jwt.encode(supabase_claims(aud=["authenticated", "other"], nbf=NOW - 5, jti="x"), SECRET, algorithm="HS256"),
])
def test_the_usual_tokens_are_accepted_without_pyjwt_with_its_claims(token):
    claims = fast(token)
    assert claims is not None
    assert claims == pyjwt(token)


@pytest.mark.parametrize("token", [
    signed({"alg": "HS256", "typ": "JWT"}, supabase_claims(), key=b"another-secret-of-thirty-two-bytes!!"),
    signed({"alg": "HS256"}, supabase_claims(exp=NOW - 3600)),  # expired
    signed({"alg": "HS256"}, supabase_claims(exp=float(NOW + 3600))),  # PyJWT converts: its call
    signed({"alg": "HS256"}, supabase_claims(exp=True)),
    signed({"alg": "HS256"}, supabase_claims(nbf=NOW + 3600)),  # an hour off: NOW is the import's
    signed({"alg": "HS256"}, supabase_claims(aud="anon")),
    signed({"alg": "HS256"}, supabase_claims(aud=["authenticated", 1])),
    signed({"alg": "HS256"}, supabase_claims(iss="https://elsewhere/auth/v1")),
    signed({"alg": "HS256"}, supabase_claims(sub="")),
    signed({"alg": "HS256"}, supabase_claims(sub=...)),
    signed({"alg": "HS256"}, supabase_claims(jti=7)),
    signed({"alg": "HS256", "crit": ["b64"], "b64": True}, supabase_claims()),
    signed({"alg": "HS256"}, [supabase_claims()]),  # not an object
    signed({"alg": "HS384"}, supabase_claims()),
])
def test_anything_else_is_left_to_pyjwt(token):
    assert fast(token) is None


def test_a_padded_or_non_canonical_signature_is_left_to_pyjwt():
    token = signed({"alg": "HS256"}, supabase_claims())
    head, _, signature = token.rpartition(".")
    assert fast(f"{head}.{signature}=") is None  # PyJWT takes padding; its call
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 32 bytes in 43 characters leave two unused bits in the last: set, they spell the same bytes
    other_last = alphabet[alphabet.index(signature[-1]) ^ 1]
    assert fast(f"{head}.{signature[:-1]}{other_last}") is None


CLAIM_CHANGES = {
    "exp": [NOW + 3600, NOW - 3600, NOW - LEEWAY_SECONDS + 5, NOW - LEEWAY_SECONDS - 5, float(NOW + 60), str(NOW + 60), True, None, ...],
    "nbf": [NOW - 60, NOW + LEEWAY_SECONDS - 5, NOW + LEEWAY_SECONDS + 5, "x", 1.5, ...],
    "iat": [NOW, NOW + LEEWAY_SECONDS + 60, False, ...],
    "aud": [AUDIENCE, "anon", [AUDIENCE], [], ["x", AUDIENCE], [AUDIENCE, 1], 1, None, ...],
    "iss": [ISSUER, ISSUER + "/", 1, None, ...],
    "sub": ["u1", "", 1, None, ...],
    "jti": ["j", 1, None, ...],
}
HEADERS = [{"alg": "HS256", "typ": "JWT"}, {"alg": "HS256"}, {"alg": "HS256", "kid": "k"}, {"alg": "HS256", "kid": 1},
           {"alg": "HS256", "typ": "at+jwt"}, {"alg": "HS256", "crit": ["exp"]}, {"alg": "HS256", "b64": False, "crit": ["b64"]},
           {"alg": "HS256", "x5u": "http://x"}, {"alg": "none"}]


@st.composite
def tokens(draw):
    changes = {name: draw(st.sampled_from(values)) for name, values in CLAIM_CHANGES.items() if draw(st.booleans())}
    claims = supabase_claims(**changes)
    key = draw(st.sampled_from([KEY, KEY, KEY, b"wrong-secret-of-thirty-two-bytes!!!!"]))
    token = signed(draw(st.sampled_from(HEADERS)), claims, key)
    position = draw(st.integers(0, len(token) - 1))
    match draw(st.sampled_from(["as is"] * 6 + ["replace", "insert", "delete", "pad"])):
        case "replace":
            token = token[:position] + draw(st.sampled_from("Aa0-_.=!")) + token[position + 1:]
        case "insert":
            token = token[:position] + draw(st.sampled_from("Aa0-_.=")) + token[position:]
        case "delete":
            token = token[:position] + token[position + 1:]
        case "pad":
            token += "="
    return token


@settings(max_examples=1500, deadline=None)
@given(token=tokens())
def test_whatever_plain_claims_accepts_pyjwt_accepts_with_the_same_claims(token):
    try:
        header = header_of(token)
    except jwt.PyJWTError:
        return  # the verifier refuses it before either is asked (TokenVerifier._header)
    claims = plain_claims(token, header, KEY, AUDIENCE, ISSUER, LEEWAY_SECONDS)
    if claims is not None:
        assert claims == pyjwt(token)


@pytest.mark.parametrize("claims, reason", [
    (supabase_claims(exp=NOW - 3600), "token expired"),
    (supabase_claims(aud="anon"), "wrong audience"),
    (supabase_claims(iss="https://elsewhere/auth/v1"), "wrong issuer"),
    (supabase_claims(sub=...), "token has no 'sub' claim"),
    (supabase_claims(exp="soon"), "malformed token"),
    (supabase_claims(exp=10**400), "token expiry out of range"),  # was an OverflowError, no answer on CONNECT
])
async def test_the_verifier_still_gives_pyjwts_reasons(claims, reason):
    verifier = TokenVerifier(supabase_url="http://127.0.0.1:9", hs256_secret=SECRET)
    assert (await verifier.verify(signed({"alg": "HS256", "typ": "JWT"}, supabase_claims()))).email == "ada@example.com"
    with pytest.raises(AuthFailed, match=reason):
        await verifier.verify(signed({"alg": "HS256", "typ": "JWT"}, claims))
    with pytest.raises(AuthFailed, match="bad signature"):
        await verifier.verify(signed({"alg": "HS256", "typ": "JWT"}, supabase_claims(), key=b"another-secret-of-thirty-two-bytes!!"))
