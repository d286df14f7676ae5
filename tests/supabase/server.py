"""A stand-in for one Supabase project's Auth (GoTrue) on loopback: JWKS, /user, and its tokens.

It serves what the product asks Supabase for, shaped as Supabase answers it:
- GET /auth/v1/.well-known/jwks.json: the public halves of the signing keys the test made
  (EC P-256 for ES256, RSA-2048 for RS256) with kid, alg, use, key_ops and ext, as Supabase
  lists them; keys can be added and retired (rotation), and fetches are counted.
- GET /auth/v1/user: GoTrue's get_user. The bearer token is verified with this project's keys
  (or HS256 secret); a known user's `sub` gets 200 with the user object supabase_auth parses,
  anyone else 403 {"code", "error_code": "user_not_found", "msg"}; a bad token 401 bad_jwt.
It also mints the project's access tokens (`token`), so a test has what a Supabase login gives.

Switches for failure tests: `delay` (seconds before any answer), `go_down()` / `come_back()`
(the port stops listening: connection refused), `user_status` (answer /user with that status
and an HTML error page, like a proxy in front of a sick GoTrue, or GoTrue's own JSON error
with `user_status_json`), `user_not_found_status`.

Runs inside the caller's event loop (aiohttp AppRunner), or alone: `python -m tests.supabase PORT`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ASYMMETRIC_ALGS = ("ES256", "RS256")
# What GoTrue says for a token whose user is gone (supabase/auth: internal/api/errorcodes.go).
USER_NOT_FOUND_MSG = "User from sub claim in JWT does not exist"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class SigningKey:
    """One asymmetric signing key of a project: the private half signs, the JWK is published."""

    kid: str
    alg: str
    private_key: Any

    @classmethod
    def generate(cls, alg: str, kid: str | None = None) -> SigningKey:
        if alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported alg {alg!r}: ES256 or RS256")
        return cls(kid=kid or str(uuid.uuid4()), alg=alg, private_key=private)

    @property
    def public_key(self):
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg == "ES256" else RSAAlgorithm
        jwk = algorithm.to_jwk(self.public_key, as_dict=True)
        # Supabase's JWKS entries carry these besides the key material.
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"], "ext": True}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


@dataclass
class SupabaseStandIn:
    """One Supabase project's Auth on 127.0.0.1. `await start()` before use, `await stop()` after."""

    jwt_secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port, fixed at start and kept by come_back()
    delay: float = 0.0
    user_status: int | None = None
    user_status_json: bool = False  # answer user_status with GoTrue's JSON error, not an HTML page
    user_not_found_status: int = 403
    keys: list[SigningKey] = field(default_factory=list)  # published, newest first
    retired: list[SigningKey] = field(default_factory=list)  # no longer published
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    jwks_fetches: int = 0
    user_requests: list[dict[str, str]] = field(default_factory=list)  # headers of each /user call

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> SupabaseStandIn:
        app = web.Application(middlewares=[self._refuse_when_down])
        app.router.add_get("/auth/v1/.well-known/jwks.json", self._jwks)
        app.router.add_get("/auth/v1/user", self._user)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await self.come_back()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None

    async def go_down(self) -> None:
        """Stop listening: new connections are refused, and a request on a connection kept
        alive from before is cut off unanswered, until come_back()."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    @web.middleware
    async def _refuse_when_down(self, request: web.Request, handler):
        if self._site is None:
            request.transport.abort()
            raise web.HTTPServiceUnavailable()  # never sent: the connection is gone
        return await handler(request)

    async def come_back(self) -> None:
        if self._site is not None:
            return
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            self.port = self._site._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """What the product's SUPABASE_URL is set to."""
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    # -- keys and users --------------------------------------------------------------------

    def add_key(self, alg: str, kid: str | None = None) -> SigningKey:
        """Generate and publish a key (first in the JWKS, as the current one is)."""
        key = SigningKey.generate(alg, kid)
        self.keys.insert(0, key)
        return key

    def retire_key(self, kid: str) -> None:
        """Unpublish a key (end of a rotation); tokens it signed still verify at /user here."""
        for key in [k for k in self.keys if k.kid == kid]:
            self.keys.remove(key)
            self.retired.append(key)

    def key(self, alg: str) -> SigningKey:
        """The current (newest published) key for `alg`."""
        return next(k for k in self.keys if k.alg == alg)

    def add_user(self, user_id: str | None = None, *, email: str | None = None,
                 app_metadata: dict | None = None, user_metadata: dict | None = None) -> dict[str, Any]:
        """Register a user, as GoTrue's get_user would return it."""
        user_id = user_id or str(uuid.uuid4())
        email = email or f"{user_id[:8]}@example.test"
        now = time.time()
        created = _iso(now - 86400)
        self.users[user_id] = {
            "id": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": email,
            "email_confirmed_at": created,
            "phone": "",
            "confirmed_at": created,
            "last_sign_in_at": _iso(now),
            "app_metadata": {"provider": "email", "providers": ["email"], **(app_metadata or {})},
            "user_metadata": {"email": email, "email_verified": True, "phone_verified": False,
                              "sub": user_id, **(user_metadata or {})},
            "identities": [
                {
                    "identity_id": str(uuid.uuid4()),
                    "id": user_id,
                    "user_id": user_id,
                    "identity_data": {"email": email, "email_verified": True, "phone_verified": False, "sub": user_id},
                    "provider": "email",
                    "last_sign_in_at": created,
                    "created_at": created,
                    "updated_at": created,
                    "email": email,
                }
            ],
            "created_at": created,
            "updated_at": _iso(now),
            "is_anonymous": False,
        }
        return self.users[user_id]

    # -- tokens ----------------------------------------------------------------------------

    def claims(self, sub: str | None, *, ttl: float = 3600, email: str | None = None,
               app_metadata: dict | None = None, user_metadata: dict | None = None, **overrides) -> dict[str, Any]:
        """An access token's claims as Supabase issues them; `overrides` replace any of them,
        and an override of None removes that claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": "authenticated",
            "exp": int(now + ttl),
            "iat": now,
            "email": email if email is not None else (f"{str(sub)[:8]}@example.test" if sub else ""),
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"], **(app_metadata or {})},
            "user_metadata": user_metadata or {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, sub: str | None, *, alg: str = "ES256", key: SigningKey | None = None,
              headers: dict | None = None, **claim_options) -> str:
        """A token for `sub` signed as this project signs: by `key`, the current `alg` key, or
        the HS256 secret."""
        claims = self.claims(sub, **claim_options)
        if key is None and alg == "HS256":
            return jwt.encode(claims, self.jwt_secret, algorithm="HS256", headers=headers)
        return (key or self.key(alg)).sign(claims, headers)

    # -- handlers --------------------------------------------------------------------------

    async def _pause(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        await self._pause()
        return web.json_response({"keys": [k.public_jwk() for k in self.keys]},
                                 headers={"Cache-Control": "public, max-age=600"})

    async def _user(self, request: web.Request) -> web.Response:
        self.user_requests.append(dict(request.headers))
        await self._pause()
        if self.user_status is not None and self.user_status_json:
            return self._error(self.user_status, "unexpected_failure", "Unexpected failure, please check server logs")
        if self.user_status is not None:
            return web.Response(status=self.user_status, content_type="text/html",
                                text=f"<html><body><h1>{self.user_status}</h1>upstream trouble</body></html>")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._error(401, "no_authorization", "This endpoint requires a Bearer token")
        try:
            claims = self._verify(token)
        except jwt.PyJWTError as exc:
            return self._error(403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc}")
        user = self.users.get(claims.get("sub"))
        if user is None:
            return self._error(self.user_not_found_status, "user_not_found", USER_NOT_FOUND_MSG)
        return web.json_response(user)

    def _verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg == "HS256" and self.jwt_secret:
            key: Any = self.jwt_secret
        else:
            key = next((k.public_key for k in [*self.keys, *self.retired]
                        if k.kid == header.get("kid") and k.alg == alg), None)
            if key is None:
                raise jwt.InvalidKeyError(f"unknown key {header.get('kid')!r}")
        return jwt.decode(token, key, algorithms=[alg], audience="authenticated", issuer=self.issuer)

    @staticmethod
    def _error(status: int, error_code: str, msg: str) -> web.Response:
        return web.json_response({"code": status, "error_code": error_code, "msg": msg}, status=status)


def hs256_with_raw_key(claims: dict[str, Any], key: bytes, headers: dict | None = None) -> str:
    """An HS256 token MACed with arbitrary bytes (e.g. a public key's PEM): the algorithm
    confusion attack. PyJWT refuses to make one, so it is put together by hand."""
    import hashlib
    import hmac

    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", **(headers or {})}).encode())
    body = _b64url(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(mac)}"


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    """A token with `alg: none` and no signature."""
    head = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{head}.{_b64url(json.dumps(claims).encode())}."


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """`token` with its payload replaced and its header and signature kept (tampering)."""
    head, _, rest = token.partition(".")
    signature = rest.rpartition(".")[2]
    return f"{head}.{_b64url(json.dumps(claims).encode())}.{signature}"
