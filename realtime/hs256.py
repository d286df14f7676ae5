"""HS256 tokens of the usual shape, accepted without PyJWT's general machinery.

PyJWT spends ~40 us on a token (its base64 alphabet check runs per character, the key is vetted
again on every call, options are merged per call): the largest single part of a sign-in's CPU
(tests/benchmarks). `plain_claims` takes the shape Supabase issues (three unpadded segments; a
header of alg, typ and kid only; exp, nbf and iat integers; aud a string or a list of strings;
sub and jti strings) and returns its claims only if the token passes every check TokenVerifier
asks PyJWT for. Anything else, a bad signature or an expired token included, gets None, and
PyJWT decides it with its own error. So it accepts nothing PyJWT would refuse
(tests/auth/test_hs256.py holds it to that against PyJWT) and refuses nothing itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")  # base64url, unpadded
_HEADER_NAMES = frozenset({"alg", "typ", "kid"})


def plain_claims(token: str, header: dict, key: bytes, audience: str, issuer: str, leeway: float) -> dict | None:
    """The claims of `token` (its `header` already parsed) if it is a valid HS256 token of the
    usual shape for `key`, `audience` and `issuer`; None to leave it to PyJWT."""
    if header.get("alg") != "HS256" or not header.keys() <= _HEADER_NAMES or not isinstance(header.get("kid", ""), str):
        return None
    segments = token.split(".")
    if len(segments) != 3:
        return None
    payload, signature = _decoded(segments[1]), _decoded(segments[2])
    if payload is None or signature is None:
        return None
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")  # the header segment was vetted with the header
    if not hmac.compare_digest(signature, hmac.new(key, signing_input, hashlib.sha256).digest()):
        return None
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(claims, dict):
        return None
    now = time.time()
    aud = claims.get("aud")
    if not (
        _integer(claims.get("exp")) and claims["exp"] > now - leeway
        and all(_integer(claims[name]) and claims[name] <= now + leeway for name in ("nbf", "iat") if name in claims)
        and (aud == audience or (isinstance(aud, list) and audience in aud and all(isinstance(a, str) for a in aud)))
        and claims.get("iss") == issuer
        and isinstance(claims.get("sub"), str) and claims["sub"]
        and isinstance(claims.get("jti", ""), str)
    ):
        return None
    return claims


def _integer(value: object) -> bool:
    # PyJWT takes int(value): a float, a bool or a numeric string it converts; those go its way.
    return type(value) is int


def _decoded(segment: str) -> bytes | None:
    """The bytes of an unpadded base64url segment in its one canonical spelling, else None."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return None
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        return None  # unused low bits set in the last character: PyJWT refuses it
    return decoded
