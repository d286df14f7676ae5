"""A loopback stand-in for Supabase Auth (JWKS, get_user) and its access tokens, for the tests."""

from .server import SigningKey, SupabaseStandIn, hs256_with_raw_key, unsigned, with_payload

__all__ = ["SigningKey", "SupabaseStandIn", "hs256_with_raw_key", "unsigned", "with_payload"]
