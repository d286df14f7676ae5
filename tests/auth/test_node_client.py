"""The npm socket.io-client v4 signs in every way, and hears a bad token as the spec says.

tests/auth/node_auth.mjs drives the client; it uses the socket.io-client that `npm ci`
installs in tests/e2e/node (the e2e suite's driver shares it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.auth.conftest import new_user
from tests.servers import ROOT

SCRIPT = ROOT / "tests" / "auth" / "node_auth.mjs"
# Where socket.io-client is installed (a directory with node_modules/); AUTH_NODE_MODULES overrides.
MODULES = Path(os.environ.get("AUTH_NODE_MODULES", ROOT / "tests" / "e2e" / "node"))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socket_io_client_v4_authentication(main_server, supabase, transport):
    assert (MODULES / "node_modules" / "socket.io-client").is_dir(), "run `npm ci` in tests/e2e/node"
    user = new_user()
    good = supabase.token(user, email="node@example.test", app_metadata={"permissions": ["trader"]})
    bad = supabase.token(user, ttl=-120)
    process = await asyncio.create_subprocess_exec(
        shutil.which("node"), str(SCRIPT), "--url", main_server.url, "--transport", transport,
        "--good", good, "--bad", bad, "--modules", str(MODULES),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    results = json.loads(stdout.decode().strip().splitlines()[-1])["results"]
    signed_in = {"userId": user, "userEmail": "node@example.test", "permissions": ["trader"]}

    assert results["connect_auth"]["authenticated"] == signed_in
    assert results["connect_auth"]["subscribed"]["ok"] is True
    assert results["connect_error"] == {"message": "token expired", "data": {"code": "auth_failed"}, "connected": False}
    assert results["authenticate_event"] == {"ack": {"ok": True, **signed_in}, "authenticated": signed_in}
    assert results["auth_error"] == {
        "ack": {"ok": False, "error": {"code": "auth_failed", "message": "token expired"}},
        "auth_error": {"error": "token expired"},
        "connected": True,
    }
    # Browsers cannot set headers on a WebSocket; Node's client can, on both transports.
    assert results["bearer_header"] == {"authenticated": signed_in}
