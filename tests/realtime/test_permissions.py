"""The room-access policy's owner cache against owner changes, on real PostgreSQL and Redis.

The paths into rooms and the re-check of a room's sockets on every node are in
tests/auth/test_permissions.py; here, what happens around the commit of an owner change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.servers import BASE_ENV, REDIS_URL, ROOT, fresh_postgres, manage


@pytest.fixture(scope="module")
def database():
    url, drop = fresh_postgres()
    try:
        manage({"DATABASE_URL": url}, "migrate", "--noinput")
        yield url
    finally:
        drop()


def run_driver(module: str, env: dict[str, str], timeout: float = 60) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **BASE_ENV, **env},
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("cache", ["redis", "local-memory"])
def test_a_lookup_that_read_the_old_owner_before_the_change_committed_does_not_cache_it(database, cache):
    """The lookup reads the old owner, the change commits (and forgets the cached owner), then
    the lookup writes what it read: the next lookup, and the policy, must see the new owner
    (they saw the old one for OWNER_CACHE_SECONDS: the re-check let the old owner stay)."""
    env = {"DATABASE_URL": database, "REDIS_URL": REDIS_URL if cache == "redis" else "",
           "REDIS_PREFIX": f"perm{os.getpid()}", "CACHE_KEY_PREFIX": f"perm{os.getpid()}"}
    seen = run_driver("tests.realtime.owner_race_driver", env)
    assert seen["during"] == seen["old"]  # it did read before the commit: the race happened
    after = {seen["old"]: "old owner", seen["new"]: "new owner"}.get(seen["after"], seen["after"])
    assert (after, seen["old_owner_let_in"]) == ("new owner", False)
