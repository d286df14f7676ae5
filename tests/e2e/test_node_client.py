"""The npm socket.io-client v4, the client web apps use, against the running server.

tests/e2e/node/client.mjs runs the steps (connect, `connected`, ping with ack, subscribe, a
room emit from outside, private room refused, unknown event, binary echo on /echo, unknown
namespace, disconnect) and prints one JSON report; `npm ci` there is part of the test set-up.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from tests.servers import ROOT

NODE_DIR = ROOT / "tests" / "e2e" / "node"


@pytest.mark.parametrize("transport", ["websocket", "upgrade"])
async def test_socket_io_client_v4(server, transport):
    assert (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "run `npm ci` in tests/e2e/node"
    process = await asyncio.create_subprocess_exec(
        shutil.which("node"), "client.mjs", "--url", server.url, "--transport", transport,
        cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert report["ok"], json.dumps(report, indent=1) + stderr.decode()
    if transport == "upgrade":
        assert report["steps"]["transport"]["after"] == "websocket"
    assert set(report["steps"]) >= {
        "connect", "ping", "subscribe", "room_broadcast", "subscribe_private_refused",
        "unknown_event", "echo_binary", "unknown_namespace", "disconnect",
    }
