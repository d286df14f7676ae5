"""The production protocol answers plain upgrade requests itself (uvicorn_websocket.plain_upgrade),
and can send its 101 with the first frames (accept_with).

Checked against websockets, which answers every other request: whatever plain_upgrade accepts,
websockets accepts too, with the same Sec-WebSocket-Accept and nothing negotiated, and the
application sees the same path and headers. Real servers and clients: a refusal before accept
is still HTTP 403, and a request websockets must read (a subprotocol offered) still opens.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from uvicorn.server import ServerState
from websockets.server import ServerProtocol

from realtime.transports.uvicorn_websocket import RAW_WRITER, WebSocketProtocol, plain_upgrade
from tests.realtime.test_uvicorn_websocket import App, serve

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example: its accept value is given there
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def rebuilt(headers: list[tuple[str, str]], target: str = "/socket.io/?EIO=4&transport=websocket",
            request_line: str | None = None) -> bytes:
    """A request as uvicorn hands it to the WebSocket protocol: names lower-cased, `: `."""
    lines = [request_line or f"GET {target} HTTP/1.1", *(f"{name.lower()}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# What real clients send (names as uvicorn lower-cases them).
CLIENTS = {
    "socket.io-client (Node, ws)": [("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", KEY), ("Connection", "Upgrade"),
                                    ("Upgrade", "websocket"), ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
                                    ("Host", "127.0.0.1:3001")],
    "Chromium": [("Host", "localhost:3001"), ("Connection", "Upgrade"), ("Pragma", "no-cache"), ("Cache-Control", "no-cache"),
                 ("User-Agent", "Mozilla/5.0"), ("Upgrade", "websocket"), ("Origin", "http://localhost:3001"),
                 ("Sec-WebSocket-Version", "13"), ("Accept-Encoding", "gzip, deflate, br"), ("Sec-WebSocket-Key", KEY),
                 ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")],
    "Firefox": [("Host", "localhost:3001"), ("User-Agent", "Mozilla/5.0"), ("Sec-WebSocket-Version", "13"),
                ("Origin", "http://localhost:3001"), ("Sec-WebSocket-Key", KEY), ("Connection", "keep-alive, Upgrade"),
                ("Upgrade", "websocket")],
    "python websockets": [("Host", "127.0.0.1:3001"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                          ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13"), ("User-Agent", "Python/3.11 websockets/15.0.1")],
}


def websockets_answer(data: bytes, compression: bool):
    """(request, response) as websockets reads and answers `data`; response None if unreadable."""
    conn = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()] if compression else [])
    conn.receive_data(data)
    events = conn.events_received()
    if not events:
        return None, None
    return events[0], conn.accept(events[0])


@pytest.mark.parametrize("client", CLIENTS)
def test_what_real_clients_send_is_answered_without_websockets_parser(client):
    data = rebuilt(CLIENTS[client])
    upgrade = plain_upgrade(data, compression=False)
    assert upgrade is not None
    target, headers, accept = upgrade
    assert accept == ACCEPT
    assert target == "/socket.io/?EIO=4&transport=websocket"
    assert headers == [(name.lower().encode(), value.encode()) for name, value in CLIENTS[client]]


BASE = CLIENTS["python websockets"]


def _with(**changes) -> list[tuple[str, str]]:
    headers = [(name, value) for name, value in BASE if name.lower().replace("-", "_") not in changes]
    for name, value in changes.items():
        headers += [(name.replace("_", "-"), v) for v in (value if isinstance(value, list) else [value])]
    return headers


@pytest.mark.parametrize("data, compression", [
    (rebuilt(_with(sec_websocket_protocol="chat")), False),  # a subprotocol to choose
    (rebuilt(_with(sec_websocket_extensions="permessage-deflate")), True),  # compression to negotiate
    (rebuilt(_with(connection=["Upgrade", "Upgrade"])), False),  # repeated
    (rebuilt(_with(origin=["http://a", "http://b"])), False),  # websockets refuses two Origins
    (rebuilt(_with(sec_websocket_key=[KEY, KEY])), False),
    (rebuilt(_with(sec_websocket_version="8")), False),
    (rebuilt(_with(sec_websocket_key="not base64!")), False),
    (rebuilt(_with(sec_websocket_key=base64.b64encode(b"x" * 15).decode())), False),
    (rebuilt(_with(upgrade="h2c")), False),
    (rebuilt(_with(connection="keep-alive")), False),
    (rebuilt(_with(connection="Upgrade,,")), False),  # not a token list
    (rebuilt([name_value for name_value in BASE if name_value[0] != "Sec-WebSocket-Key"]), False),
    (rebuilt(BASE, request_line="POST /socket.io/ HTTP/1.1"), False),
    (rebuilt(BASE, request_line="GET /socket.io/ HTTP/1.0"), False),
    (rebuilt(BASE, target="/caf\u00e9"), False),  # not ASCII
    (rebuilt(BASE) + b"\x81\x01x", False),  # more than the request
    (rebuilt(BASE)[:-2], False),  # not the whole request
])
def test_anything_else_is_left_to_websockets(data, compression):
    assert plain_upgrade(data, compression) is None


# Per header: its values, the first the usual one; how many times it may appear.
HEADER_CHOICES = {
    "Host": (["127.0.0.1:3001", ""], [1, 1, 1, 0, 2]),
    "Connection": (["Upgrade", "upgrade", "keep-alive, Upgrade", "Upgrade,,", "close", "keep-alive,Upgrade", "Upgrade, HTTP2-Settings"],
                   [1, 1, 1, 1, 1, 0, 2]),
    "Upgrade": (["websocket", "WebSocket", "h2c", "websocket, h2c", "websocket/13", ""], [1, 1, 1, 1, 1, 0, 2]),
    "Sec-WebSocket-Key": ([KEY, base64.b64encode(b"k" * 15).decode(), "not base64!", "", KEY + " "], [1, 1, 1, 1, 1, 0, 2]),
    "Sec-WebSocket-Version": (["13", "8", "13, 8", ""], [1, 1, 1, 1, 1, 0, 2]),
    "Origin": (["http://localhost:3001", "null", ""], [0, 1, 1, 2]),
    "Sec-WebSocket-Protocol": (["chat"], [0, 0, 0, 1]),
    "Sec-WebSocket-Extensions": (["permessage-deflate; client_max_window_bits", "x-unknown"], [0, 1]),
    "X-Other": (["1"], [0, 1, 2]),
}


@st.composite
def requests(draw):
    """Mostly near-plain requests: each header usually once with its usual value."""
    headers = []
    for name, (values, counts) in HEADER_CHOICES.items():
        for _ in range(draw(st.sampled_from(counts))):
            usual = draw(st.sampled_from([True, True, True, False]))
            headers.append((name, values[0] if usual else draw(st.sampled_from(values))))
    headers = draw(st.permutations(headers))
    request_line = draw(st.sampled_from(["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1"] * 4
                                        + ["GET / HTTP/1.1", "POST / HTTP/1.1", "GET / HTTP/1.0"]))
    return rebuilt(headers, request_line=request_line)


@settings(max_examples=1000, deadline=None)
@given(data=requests(), compression=st.booleans())
def test_what_plain_upgrade_accepts_websockets_accepts_the_same_way(data, compression):
    upgrade = plain_upgrade(data, compression)
    if upgrade is None:
        return
    target, headers, accept = upgrade
    request, response = websockets_answer(data, compression)
    assert response is not None and response.status_code == 101
    assert response.headers["Sec-WebSocket-Accept"] == accept.decode()
    assert "Sec-WebSocket-Extensions" not in response.headers and "Sec-WebSocket-Protocol" not in response.headers
    assert target == request.path
    assert headers == [(name.encode(), value.encode("latin-1")) for name, value in request.headers.raw_items()]


class Refusing(App):
    """Refuses /refuse before accepting (as the handshake limit and CORS do)."""

    async def __call__(self, scope, receive, send):
        if scope["path"] == "/refuse":
            await receive()
            await send({"type": "websocket.close"})
            return
        self.scopes = getattr(self, "scopes", []) + [scope]
        await super().__call__(scope, receive, send)


async def test_a_refusal_before_accept_is_still_http_403():
    app = Refusing()
    server, task, url = await serve(app, deflate=False)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url + "refuse")
        assert refused.value.response.status_code == 403
        async with connect(url) as ws:  # and the server goes on
            await asyncio.wait_for(ws.recv(), 5)
    finally:
        server.should_exit = True
        await task


async def test_a_request_for_websockets_to_read_still_opens():
    app = Refusing()
    server, task, url = await serve(app, deflate=False)
    try:
        async with connect(url + "?x=1", subprotocols=["chat"]) as ws:  # a subprotocol offered: websockets reads it
            await asyncio.wait_for(ws.recv(), 5)
            assert ws.subprotocol is None  # the application chose none
        async with connect(url + "?x=2") as ws:  # plain
            await asyncio.wait_for(ws.recv(), 5)
        offered, plain = app.scopes
        assert offered["subprotocols"] == ["chat"] and plain["subprotocols"] == []
        assert [s["query_string"] for s in (offered, plain)] == [b"x=1", b"x=2"]
        assert all(RAW_WRITER in s["extensions"] for s in (offered, plain))
    finally:
        server.should_exit = True
        await task


class Recording(asyncio.Transport):
    """A transport that keeps what is written to it, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 3001), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


async def test_accept_with_sends_the_101_and_the_first_frames_in_one_write():
    async def app(scope, receive, send):  # accepts nothing itself: accept_with does
        await receive()
        await asyncio.Event().wait()

    state = ServerState()
    protocol = WebSocketProtocol(config=uvicorn.Config(app, ws_per_message_deflate=False, log_level="warning"),
                                 server_state=state, app_state={})
    transport = Recording()
    protocol.connection_made(transport)
    protocol.data_received(rebuilt(BASE))
    try:
        assert protocol.accepts_with_frames()
        protocol.accept_with(['0{"sid":"s"}'])
        [write] = transport.writes
        head, _, frames = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and b"Sec-WebSocket-Accept: " + ACCEPT in head
        assert frames == bytes([0x81, 12]) + b'0{"sid":"s"}'
        assert protocol.handshake_complete and not protocol.accepts_with_frames()
        protocol.write_now(["2"])  # and the writer goes on as after an ASGI accept
        assert transport.writes[1:] == [bytes([0x81, 1]) + b"2"]
    finally:
        for task in state.tasks:
            task.cancel()
