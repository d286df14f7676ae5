"""`python -m tests.supabase [PORT] [--secret S]`: run the stand-in alone, for manual tries.

Publishes one ES256 and one RS256 key, registers a demo user, prints the settings to point the
server at it and a token for that user, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio

from .server import SupabaseStandIn

DEFAULT_SECRET = "stand-in-jwt-secret-with-at-least-32-characters"


async def serve(port: int, secret: str) -> None:
    stand_in = SupabaseStandIn(jwt_secret=secret, port=port)
    stand_in.add_key("RS256")
    stand_in.add_key("ES256")
    user = stand_in.add_user(email="demo@example.test")
    await stand_in.start()
    print(f"SUPABASE_URL={stand_in.url}")
    print(f"SUPABASE_JWT_SECRET={secret}")
    print(f"JWKS: {stand_in.jwks_url} (kids: {', '.join(k.kid for k in stand_in.keys)})")
    print(f"demo user {user['id']}, ES256 token valid 1 h:")
    print(stand_in.token(user["id"], email=user["email"]), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await stand_in.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.supabase")
    parser.add_argument("port", type=int, nargs="?", default=54321)
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.secret))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
