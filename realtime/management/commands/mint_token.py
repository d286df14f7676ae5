"""`manage.py mint_token --user ID`: a Supabase-shaped HS256 access token, for development.

Signed with SUPABASE_JWT_SECRET (on the embedded default, the local Supabase secret), with the
issuer and audience the verifier checks, so private rooms can be tried without a Supabase.
"""

import time

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Print an HS256 access token for a user, signed with SUPABASE_JWT_SECRET."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the user id (sub), e.g. a UUID")
        parser.add_argument("--email", default=None)
        parser.add_argument("--permissions", default="", help="comma-separated, e.g. admin")
        parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")

    def handle(self, user, email, permissions, ttl, **options):
        if not settings.SUPABASE_JWT_SECRET:
            raise CommandError("SUPABASE_JWT_SECRET is not set: there is nothing to sign with")
        now = int(time.time())
        claims = {
            "sub": user,
            "aud": "authenticated",
            "role": "authenticated",
            "iss": f"{settings.SUPABASE_URL.rstrip('/')}/auth/v1",
            "iat": now,
            "exp": now + ttl,
            "app_metadata": {"provider": "email", "permissions": [p for p in permissions.split(",") if p]},
            "user_metadata": {},
        }
        if email:
            claims["email"] = email
        self.stdout.write(jwt.encode(claims, settings.SUPABASE_JWT_SECRET, algorithm="HS256"))
