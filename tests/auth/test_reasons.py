"""Every way a token is refused, with the exact reason the client is told.

Each case is tried through the `authenticate` event (ack error + auth_error, over WebSocket)
and through CONNECT's `auth` (CONNECT_ERROR, over long-polling); the socket of a refused
`authenticate` stays connected and anonymous.
"""

from __future__ import annotations

import time

import jwt
import pytest

from tests.auth.clients import connected, refused
from tests.auth.conftest import new_user
from tests.supabase import SigningKey, hs256_with_raw_key, unsigned, with_payload

OTHER_ISSUER = "https://someone-else.supabase.co/auth/v1"


def _no_kid(s):
    key = s.key("ES256")
    return jwt.encode(s.claims(new_user()), key.private_key, algorithm="ES256")


def _kid_of_other_alg(s):
    es_kid = s.key("ES256").kid
    rsa = SigningKey.generate("RS256", kid=es_kid)
    return rsa.sign(s.claims(new_user())), f"key {es_kid!r} is not a RS256 key"


def _other_project_same_kid(s):
    """Another project's token (its own key and issuer) that happens to use our kid."""
    impostor = SigningKey.generate("ES256", kid=s.key("ES256").kid)
    return impostor.sign(s.claims(new_user(), iss=OTHER_ISSUER))


def _our_key_other_issuer(s):
    return s.token(new_user(), iss=OTHER_ISSUER)


def _tampered(s, alg):
    user = new_user()
    token = s.token(user, alg=alg)
    return with_payload(token, s.claims(user, app_metadata={"permissions": ["admin"]}))


def _hs256_with_public_key(s, alg):
    key = s.key(alg)
    return hs256_with_raw_key(s.claims(new_user()), key.public_pem(), headers={"kid": key.kid})


def _huge_signed(s):
    return s.token(new_user(), app_metadata={"blob": "x" * 9000})


# name -> (supabase -> token, or (token, reason)), reason (None: given by the builder)
CASES = {
    "expired": (lambda s: s.token(new_user(), ttl=-120), "token expired"),
    "expired_hs256": (lambda s: s.token(new_user(), alg="HS256", ttl=-120), "token expired"),
    "not_yet_valid_nbf": (lambda s: s.token(new_user(), nbf=int(time.time()) + 300), "token not valid yet"),
    "issued_in_the_future": (lambda s: s.token(new_user(), iat=int(time.time()) + 300), "token not valid yet"),
    "bad_signature_hs256": (
        lambda s: jwt.encode(s.claims(new_user()), "another-secret-of-at-least-32-characters!", algorithm="HS256"),
        "bad signature",
    ),
    "other_project_token_with_a_known_kid": (_other_project_same_kid, "bad signature"),
    "our_key_but_another_issuer": (_our_key_other_issuer, None),
    "wrong_issuer_hs256": (lambda s: s.token(new_user(), alg="HS256", iss=OTHER_ISSUER), None),
    "wrong_audience": (lambda s: s.token(new_user(), aud="anon"), "wrong audience: expected 'authenticated'"),
    "no_audience": (lambda s: s.token(new_user(), aud=None), "token has no 'aud' claim"),
    "no_issuer": (lambda s: s.token(new_user(), iss=None), "token has no 'iss' claim"),
    "no_expiry": (lambda s: s.token(new_user(), exp=None), "token has no 'exp' claim"),
    "missing_sub": (lambda s: s.token(None), "token has no 'sub' claim"),
    "empty_sub": (lambda s: s.token(""), "token has no subject"),
    "numeric_sub": (lambda s: s.token(12345, email="n@example.test"), "malformed token"),
    "unknown_kid": (lambda s: s.token(new_user(), headers={"kid": "no-such-key"}), "unknown signing key 'no-such-key'"),
    "no_kid": (_no_kid, "token has no key id (kid)"),
    "kid_of_a_key_for_another_alg": (_kid_of_other_alg, None),
    "alg_none": (lambda s: unsigned(s.claims(new_user())), "unsupported algorithm 'none'"),
    "alg_none_capitalised": (lambda s: unsigned(s.claims(new_user()), alg="None"), "unsupported algorithm 'None'"),
    "alg_hs512": (lambda s: jwt.encode(s.claims(new_user()), s.jwt_secret * 2, algorithm="HS512"), "unsupported algorithm 'HS512'"),
    "hs256_signed_with_the_ec_public_key": (lambda s: _hs256_with_public_key(s, "ES256"), "bad signature"),
    "hs256_signed_with_the_rsa_public_key": (lambda s: _hs256_with_public_key(s, "RS256"), "bad signature"),
    "tampered_payload_es256": (lambda s: _tampered(s, "ES256"), "bad signature"),
    "tampered_payload_rs256": (lambda s: _tampered(s, "RS256"), "bad signature"),
    "tampered_payload_hs256": (lambda s: _tampered(s, "HS256"), "bad signature"),
    "huge_junk": (lambda s: "x" * 9000, "token too large"),
    "huge_signed_token": (_huge_signed, "token too large"),
    "not_a_jwt": (lambda s: "not-a-jwt", "malformed token"),
    "three_junk_segments": (lambda s: "a.b.c", "malformed token"),
    "garbage_signature": (lambda s: s.token(new_user()).rpartition(".")[0] + ".!!!", "malformed token"),
}


def build(case: str, supabase) -> tuple[str, str]:
    make, reason = CASES[case]
    made = make(supabase)
    if isinstance(made, tuple):
        return made
    if reason is None:
        reason = f"wrong issuer: expected {supabase.issuer}"
    return made, reason


@pytest.mark.parametrize("case", list(CASES))
async def test_authenticate_event_refuses(main_server, supabase, case):
    token, reason = build(case, supabase)
    client = await connected(main_server, "websocket")
    ack = await client.authenticate(token)
    assert ack == {"ok": False, "error": {"code": "auth_failed", "message": reason}}
    assert await client.next("auth_error") == {"error": reason}
    await client.none("authenticated", 0.05)
    assert client.sio.connected
    await client.close()


@pytest.mark.parametrize("case", list(CASES))
async def test_connect_auth_refuses(main_server, supabase, case):
    token, reason = build(case, supabase)
    assert await refused(main_server, "polling", auth={"token": token}) == {
        "message": reason, "data": {"code": "auth_failed"},
    }


# -- tokens that are not strings, or not there ---------------------------------------------------


@pytest.mark.parametrize("token", [12345, {"token": "x"}, ["x"], True, ""])
async def test_authenticate_event_with_a_non_string_or_empty_token_is_invalid_payload(main_server, token):
    client = await connected(main_server)
    ack = await client.authenticate(token)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_payload" and ack["error"]["message"] == "Invalid payload"
    assert list(ack["error"]["details"]) == ["token"]
    assert await client.next("auth_error") == {"error": "Invalid payload"}
    assert client.sio.connected
    await client.close()


async def test_authenticate_event_without_a_token_is_invalid_payload(main_server):
    client = await connected(main_server)
    ack = await client.call("authenticate", {})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
    assert ack["error"]["details"] == {"token": ["This field is required."]}
    await client.close()


@pytest.mark.parametrize(
    "token, reason",
    [(12345, "token must be a string"), ({"token": "x"}, "token must be a string"),
     (["x"], "token must be a string"), ("", "token missing")],
)
async def test_connect_auth_with_a_non_string_or_empty_token_is_refused(main_server, token, reason):
    assert await refused(main_server, auth={"token": token}) == {"message": reason, "data": {"code": "auth_failed"}}


async def test_a_subject_that_cannot_be_a_user_room_is_refused(main_server, supabase):
    client = await connected(main_server)
    ack = await client.authenticate(supabase.token("not a uuid/with spaces"))
    reason = "token subject is not a valid user id"
    assert ack == {"ok": False, "error": {"code": "auth_failed", "message": reason}}
    assert await client.next("auth_error") == {"error": reason}
    await client.close()
