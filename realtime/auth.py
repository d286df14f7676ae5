"""Supabase access-token verification, local and strict, shared by sockets and DRF.

Asymmetric tokens (ES256, RS256) are checked against the project's JWKS, legacy HS256 tokens
against SUPABASE_JWT_SECRET; every token's signature, algorithm, exp/nbf, aud, iss and sub are
checked. Permissions come from `app_metadata` (set by the server), never `user_metadata`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field

import httpx
import jwt
from asgiref.sync import async_to_sync
from django.conf import settings
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from . import hs256
from .errors import RealtimeError
from .rooms import ID

# A user id as user:{id} rooms take it (Supabase's are UUIDs).
USER_ID = re.compile(ID)

logger = logging.getLogger(__name__)

# Supabase access tokens are ~1 KB; 8 KB leaves room for large app_metadata and refuses junk
# before any parsing or key lookup.
MAX_TOKEN_BYTES = 8192
# Clock skew allowed on exp/nbf between Supabase and us.
LEEWAY_SECONDS = 30
# Supabase rotates keys with overlap; 10 minutes (the bound) keeps a revoked key
# usable no longer than that while sparing the JWKS endpoint.
JWKS_TTL_SECONDS = 600
# An unknown kid triggers a refetch at once (a key rotated in is accepted immediately), but
# such refetches are this far apart, so tokens with made-up kids cannot flood Supabase with
# requests; the periodic TTL refresh is not counted. Rotations are hours apart, not seconds.
JWKS_REFETCH_MIN_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 5
# Distinct token headers remembered parsed (a project has one per signing key in use).
HEADERS_CACHED = 64
ASYMMETRIC = ("ES256", "RS256")
AUDIENCE = "authenticated"


class AuthFailed(RealtimeError):
    code = "auth_failed"
    default_message = "authentication failed"


@dataclass(frozen=True)
class Principal:
    """A verified user. The token itself is not kept (seed: not stored longer than necessary)."""

    user_id: str
    # "" when the token has none: Supabase's own tokens always carry the claim, "" for a user
    # without an address (a phone sign-in), and the seed types `userEmail` as a string.
    email: str
    permissions: tuple[str, ...]
    expires_at: float  # epoch seconds

    is_authenticated = True  # for DRF, which treats request.user as a Django-like user

    @property
    def is_admin(self) -> bool:
        return "admin" in self.permissions


@dataclass
class _KeySet:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = float("-inf")  # never: monotonic time may be small after boot
    refetched_at: float = float("-inf")  # the last refetch for an unknown kid
    failed: bool = False  # the last fetch failed
    fetching: asyncio.Future | None = None  # the fetch under way, which every verify waits for


def _plain_hs256_key(secret: str | None) -> bytes | None:
    """The secret as hs256.plain_claims takes it; None where PyJWT would refuse it as an HMAC
    key (an empty one, or one shaped like a public key), which leaves every token to PyJWT."""
    if not secret:
        return None
    try:
        return jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).prepare_key(secret)
    except jwt.InvalidKeyError:
        return None


class TokenVerifier:
    def __init__(
        self,
        *,
        supabase_url: str,
        hs256_secret: str | None,
        anon_key: str | None = None,
        verify_user: bool = False,
    ) -> None:
        base = supabase_url.rstrip("/")
        self.issuer = f"{base}/auth/v1"
        self.jwks_url = f"{self.issuer}/.well-known/jwks.json"
        self.hs256_secret = hs256_secret
        self._hs256_key = _plain_hs256_key(hs256_secret)
        self.anon_key = anon_key
        self.verify_user = verify_user
        self._keysets: dict[str, _KeySet] = {}  # by issuer
        self._headers: dict[str, dict] = {}  # a token's first segment -> its header, parsed

    async def verify(self, token: object) -> Principal:
        """The token's user, or AuthFailed with a reason a person can act on."""
        if token is None or token == "":
            raise AuthFailed("token missing")
        if not isinstance(token, str):
            raise AuthFailed("token must be a string")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthFailed("token too large")
        header = self._header(token)
        alg = header.get("alg")
        if alg == "HS256":
            if not self.hs256_secret:
                raise AuthFailed("HS256 tokens are not accepted here: no SUPABASE_JWT_SECRET is configured")
            key: object = self.hs256_secret
        elif alg in ASYMMETRIC:
            key = await self._public_key(header.get("kid"), alg)
        else:
            raise AuthFailed(f"unsupported algorithm {str(alg)[:20]!r}")
        claims = self._decode(token, key, alg, header)
        principal = self._principal(claims)
        if self.verify_user:
            await self._confirm_user(token)
        return principal

    def _header(self, token: str) -> dict:
        """The token's header, unverified: it only picks the key that `_decode` checks the whole
        token with. A project's tokens share a few headers (alg, typ, kid), so each is parsed
        once (~18 us of a connect's CPU); a full cache is emptied, so made-up ones cost no memory."""
        segment = token.partition(".")[0]
        header = self._headers.get(segment)
        if header is None:
            try:
                header = jwt.get_unverified_header(token)
            except jwt.PyJWTError:
                raise AuthFailed("malformed token") from None
            if len(self._headers) >= HEADERS_CACHED:
                self._headers.clear()
            self._headers[segment] = header
        return header

    def verify_sync(self, token: object) -> Principal:
        return async_to_sync(self.verify)(token)

    def _decode(self, token: str, key: object, alg: str, header: dict) -> dict:
        if alg == "HS256" and self._hs256_key is not None:
            claims = hs256.plain_claims(token, header, self._hs256_key, AUDIENCE, self.issuer, LEEWAY_SECONDS)
            if claims is not None:
                return claims
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],  # exactly the one this key is for: no HS256 with a public key
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailed("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthFailed(f"wrong audience: expected {AUDIENCE!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthFailed(f"wrong issuer: expected {self.issuer}") from None
        except jwt.InvalidSignatureError:
            raise AuthFailed("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailed(f"token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise AuthFailed("malformed token") from None

    @staticmethod
    def _principal(claims: dict) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthFailed("token has no subject")
        if not USER_ID.fullmatch(sub):  # it names the user's room and rows: an id, nothing else
            raise AuthFailed("token subject is not a valid user id")
        app_metadata = claims.get("app_metadata")
        permissions = app_metadata.get("permissions", []) if isinstance(app_metadata, dict) else []
        if not isinstance(permissions, list):
            permissions = []
        email = claims.get("email")
        try:
            expires_at = float(claims["exp"])
        except OverflowError:  # signed, and an integer PyJWT compares happily, but past any date
            raise AuthFailed("token expiry out of range") from None
        return Principal(
            user_id=sub,
            email=email if isinstance(email, str) else "",
            permissions=tuple(p for p in permissions if isinstance(p, str)),
            expires_at=expires_at,
        )

    # -- JWKS ------------------------------------------------------------------------------

    async def _public_key(self, kid: object, alg: str) -> object:
        if not isinstance(kid, str) or not kid:
            raise AuthFailed("token has no key id (kid)")
        keyset = self._keysets.setdefault(self.issuer, _KeySet())
        now = time.monotonic()
        fetching = keyset.fetching
        if fetching is not None and fetching.get_loop() is asyncio.get_running_loop():
            # One fetch at a time: the tokens that come while it runs (a reconnect storm on a
            # fresh process, a new key's first tokens) wait for its keys. Before, only the token
            # that started it did; the others found no key ("unknown signing key").
            await asyncio.shield(fetching)
        elif now - keyset.fetched_at > JWKS_TTL_SECONDS:
            await self._refresh(keyset)
        elif kid not in keyset.keys and now - keyset.refetched_at > JWKS_REFETCH_MIN_SECONDS:
            keyset.refetched_at = now
            await self._refresh(keyset)
        jwk = keyset.keys.get(kid)
        if jwk is None:
            if keyset.failed:
                raise AuthFailed("could not fetch the project's signing keys")
            raise AuthFailed(f"unknown signing key {kid[:64]!r}")
        if jwk.algorithm_name != alg:
            raise AuthFailed(f"key {kid[:64]!r} is not a {alg} key")
        return jwk.key

    async def _refresh(self, keyset: _KeySet) -> None:
        keyset.fetched_at = time.monotonic()  # a failed fetch also waits before the next
        keyset.fetching = fetching = asyncio.ensure_future(self._fetch(keyset))
        try:
            await asyncio.shield(fetching)
        finally:
            if keyset.fetching is fetching:
                keyset.fetching = None

    async def _fetch(self, keyset: _KeySet) -> None:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
                response = await client.get(self.jwks_url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("JWKS fetch from %s failed: %s", self.jwks_url, exc)
            keyset.failed = True
            if keyset.keys:
                return  # keep serving the keys we have
            raise AuthFailed("could not fetch the project's signing keys") from None
        keyset.failed = False
        keys = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                jwk = jwt.PyJWK(entry)
            except (jwt.PyJWTError, TypeError, ValueError):
                continue
            if isinstance(entry.get("kid"), str) and jwk.algorithm_name in ASYMMETRIC:
                keys[entry["kid"]] = jwk
        keyset.keys = keys

    # -- optional confirmation with Supabase -----------------------------------------------

    async def _confirm_user(self, token: str) -> None:
        # supabase_auth, not `supabase`: that package's top-level `realtime` module is shadowed
        # by our app of the same name (requirements.txt says more).
        from supabase_auth import AsyncGoTrueClient
        from supabase_auth.errors import AuthApiError, AuthError

        client = AsyncGoTrueClient(
            url=self.issuer,
            headers={"apikey": self.anon_key or ""},
            auto_refresh_token=False,
            persist_session=False,
        )
        try:
            response = await asyncio.wait_for(client.get_user(token), HTTP_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            raise AuthFailed("could not reach Supabase to confirm the user (timeout)") from None
        except AuthApiError as exc:
            if exc.status in (401, 403, 404):
                raise AuthFailed("user not found") from None
            raise AuthFailed(f"could not confirm the user with Supabase ({exc.status})") from None
        except AuthError:
            raise AuthFailed("could not reach Supabase to confirm the user") from None
        if response is None or response.user is None:
            raise AuthFailed("user not found")


_verifier: TokenVerifier | None = None


def verifier_from_settings() -> TokenVerifier:
    """This process's verifier (its JWKS cache is shared by every socket and request)."""
    global _verifier
    if _verifier is None:
        _verifier = TokenVerifier(
            supabase_url=settings.SUPABASE_URL,
            hs256_secret=settings.SUPABASE_JWT_SECRET,
            anon_key=settings.SUPABASE_ANON_KEY,
            verify_user=settings.SUPABASE_VERIFY_USER,
        )
    return _verifier


def bearer_token(value: bytes | str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class SupabaseJWTAuthentication(BaseAuthentication):
    """DRF authentication with the same verifier: `Authorization: Bearer <access token>`."""

    def authenticate(self, request):
        token = bearer_token(get_authorization_header(request) or None)
        if token is None:
            return None
        try:
            return verifier_from_settings().verify_sync(token), None
        except AuthFailed as exc:
            raise AuthenticationFailed(exc.message, code=exc.code) from None

    def authenticate_header(self, request):
        return 'Bearer realm="galaxy"'


class HasAdminPermission(BasePermission):
    """DRF: the verified token carries the `admin` permission (as admins' sockets may join any room)."""

    message = "the admin permission is required"

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_admin", False))
