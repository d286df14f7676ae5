"""A bare Engine.IO test client (HTTP long-polling and WebSocket) for the conformance tests.

It speaks raw frames only: the tests write and read the exact wire strings the official suites do.
"""

import asyncio
import json
import time

import aiohttp

# The conformance server's settings (tests/conformance/asgi.py), in milliseconds as on the wire.
PING_INTERVAL_MS = 300
PING_TIMEOUT_MS = 200
MAX_PAYLOAD = 1_000_000
HEARTBEAT_DEADLINE = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000
# The server's ping-timeout close lands a few ms after HEARTBEAT_DEADLINE (two chained timers, then
# a scheduled task), and a poll sent at exactly the deadline, as the official suite does, still
# gets 200 "2" about 4 times in 5 with this fast client. Polling this much later tests the same rule.
CLOSE_SLACK = 0.05
# Invalid input must close the socket at once: well inside HEARTBEAT_DEADLINE, so a close by the
# heartbeat cannot pass for one.
PROMPT_CLOSE = 0.25

# Longest a test waits for one frame or a close before failing, not a protocol value.
WAIT = 2.0

HANDSHAKE_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
CLOSED_TYPES = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


class Ws:
    """One WebSocket: frames arrive in order as `str` (text) or `bytes` (binary)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def recv(self, timeout: float = WAIT) -> str | bytes:
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        assert msg.type not in CLOSED_TYPES, f"closed while waiting for a frame: {msg}"
        return msg.data

    async def recv_packets(self, count: int) -> list[str | bytes]:
        """The next `count` frames, skipping Engine.IO pings ("2")."""
        packets: list[str | bytes] = []
        while len(packets) < count:
            data = await self.recv()
            if data != "2":
                packets.append(data)
        return packets

    async def wait_closed(self, timeout: float = WAIT) -> float:
        """Seconds until the server closes this socket; frames meanwhile are dropped."""
        start = time.monotonic()
        async with asyncio.timeout(timeout):
            while (await self.ws.receive()).type not in CLOSED_TYPES:
                pass
        return time.monotonic() - start

    async def close(self) -> None:
        await self.ws.close()


class Endpoint:
    """One Engine.IO endpoint (`/engine.io/` or `/socket.io/`) reached over HTTP and WebSocket."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, path: str):
        self.http = http
        self.url = base_url + path
        self.ws_url = self.url.replace("http", "ws", 1)
        self.sockets: list[Ws] = []

    async def fetch(self, query: str, method: str = "GET", body: str | None = None) -> tuple[int, str]:
        async with self.http.request(method, f"{self.url}?{query}", data=body) as response:
            return response.status, await response.text()

    async def open_session(self) -> str:
        """A new long-polling session's sid."""
        status, content = await self.fetch("EIO=4&transport=polling")
        assert status == 200 and content.startswith("0"), (status, content)
        return parse_open(content)["sid"]

    async def poll(self, sid: str, extra: str = "") -> tuple[int, str]:
        return await self.fetch(f"EIO=4&transport=polling&sid={sid}{extra}")

    async def post(self, sid: str, body: str) -> tuple[int, str]:
        return await self.fetch(f"EIO=4&transport=polling&sid={sid}", "POST", body)

    async def open_ws(self, query: str = "EIO=4&transport=websocket") -> Ws:
        socket = Ws(await self.http.ws_connect(f"{self.ws_url}?{query}", autoclose=True))
        self.sockets.append(socket)
        return socket

    async def ws_closes(self, query: str) -> None:
        """The WebSocket is refused at the handshake or closed right after it (a browser's "close")."""
        try:
            socket = await self.open_ws(query)
        except aiohttp.WSServerHandshakeError:
            return
        await socket.wait_closed()

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.close()


def parse_open(content: str) -> dict:
    """The OPEN packet's JSON, checked for exactly the handshake's keys."""
    value = json.loads(content[1:])
    assert set(value) == HANDSHAKE_KEYS, value
    assert isinstance(value["sid"], str)
    return value
