"""The production WebSocket protocol: uvicorn's sans-I/O one plus a writer for shared frames.

A real uvicorn server in this process, real WebSocket clients: a connection without compression
gets the direct writer in its scope and receives exactly what was written through it; one that
negotiated permessage-deflate does not get it (its frames are its own), and ASGI `send` serves it.
"""

from __future__ import annotations

import asyncio
import collections
import logging

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.frames import Frame as WsFrame, Opcode

from realtime.transports.uvicorn_websocket import RAW_WRITER, Flag, FrameCache, Inbox, WebSocketProtocol
from tests.servers import free_port

FRAMES = ["4hello", b"\x01\x02\x03"]  # a text frame and a binary one, in one write


class App:
    """Writes FRAMES to each connection, directly when the scope offers the writer."""

    def __init__(self) -> None:
        self.had_writer: list[bool] = []

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        raw = scope["extensions"].get(RAW_WRITER)
        self.had_writer.append(raw is not None)
        if raw is not None:
            assert raw.write_now(FRAMES) is True
        else:
            await send({"type": "websocket.send", "text": FRAMES[0]})
            await send({"type": "websocket.send", "bytes": FRAMES[1]})
        while (await receive())["type"] != "websocket.disconnect":
            pass


async def serve(app: App, deflate: bool):
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws=WebSocketProtocol, lifespan="off",
                            ws_per_message_deflate=deflate, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"ws://127.0.0.1:{port}/"


@pytest.mark.parametrize("deflate", [False, True])
async def test_frames_arrive_whole_and_in_order_with_the_writer_only_without_compression(deflate):
    app = App()
    server, task, url = await serve(app, deflate)
    try:
        async with connect(url, compression="deflate") as ws:  # offered; the server decides
            received = [await asyncio.wait_for(ws.recv(), 5) for _ in FRAMES]
        assert received == FRAMES
        assert app.had_writer == [not deflate]
    finally:
        server.should_exit = True
        await task


def test_a_shared_frame_list_is_framed_once():
    cache = FrameCache()
    shared = ["42[\"market:price_update\",{}]"]
    first = cache.wire(shared)
    assert cache.wire(shared) is first  # every socket after the first reuses the bytes
    assert first == bytes([0x81, len(shared[0])]) + shared[0].encode()  # FIN + text, unmasked
    assert cache.wire(list(shared)) is not first  # an equal but different list: its own entry
    for n in range(FrameCache.SIZE):
        cache.wire([f"4{n}"])
    assert cache.wire(shared) == first and cache.wire(shared) is not first  # evicted, re-framed


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frames_are_framed_as_websockets_frames_them(size):
    """Every payload length form (7-bit, 16-bit, 64-bit), text (UTF-8 of any width) and binary."""
    text = ("\u00e9\u4e16\U0001f600x" * size)[:size]
    binary = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert FrameCache().wire([text]) == WsFrame(Opcode.TEXT, text.encode()).serialize(mask=False)
    assert FrameCache().wire([binary]) == WsFrame(Opcode.BINARY, binary).serialize(mask=False)


async def test_the_connection_keeps_no_handshake_headers_once_open():
    app = App()
    server, task, url = await serve(app, deflate=False)
    try:
        async with connect(url) as ws:
            await asyncio.wait_for(ws.recv(), 5)
            [protocol] = server.server_state.connections
            assert protocol.response is None and protocol.request is None
            values = [*vars(protocol).values(), *(getattr(protocol, name) for name in WebSocketProtocol.__slots__)]
            assert not any(isinstance(v, collections.deque) for v in values)
            # Few enough attributes in the instance dict for CPython to share its keys (30 at most).
            assert len(vars(protocol)) <= 30
    finally:
        server.should_exit = True
        await task


async def test_inbox_hands_messages_over_in_order():
    inbox = Inbox(asyncio.get_running_loop())
    waiting = inbox.get()
    inbox.put_nowait(1)  # straight to the waiting receive
    inbox.put_nowait(2)
    inbox.put_nowait(3)
    assert await waiting == 1
    assert not inbox.empty()
    assert [await inbox.get(), await inbox.get()] == [2, 3]
    assert inbox.empty()
    cancelled, waiting = inbox.get(), inbox.get()
    cancelled.cancel()  # a receive that gave up does not swallow the next message
    inbox.put_nowait(4)
    assert await waiting == 4 and inbox.empty()


async def test_flag_wakes_every_waiter_and_forgets_cancelled_ones():
    flag = Flag()
    assert not flag.is_set()
    first, second = asyncio.ensure_future(flag.wait()), asyncio.ensure_future(flag.wait())
    gone = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert len(flag._waiters) == 2  # the cancelled wait took itself off
    flag.set()
    assert await first is True and await second is True
    assert await flag.wait() is True  # set: no wait at all
    flag.clear()
    assert not flag.is_set()


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("fragments", [[b"42[\"a\",\"\xff\"]"], [b"42[\"a\",\"\xe2\x82", b"\"]"]])
async def test_a_text_message_that_is_not_utf8_closes_with_1007_and_logs_no_error(fragments):
    """The parent logs it at ERROR with a traceback: one per connection any client opens.
    Split across frames too (the second case: a character cut short, then the message ends)."""
    server, task, url = await serve(App(), deflate=False)
    handler = ListHandler()  # after uvicorn's logging configuration, which replaces handlers
    watched = [logging.getLogger("uvicorn.error"), logging.getLogger("realtime")]
    for log in watched:
        log.addHandler(handler)
    try:
        async with connect(url) as ws:
            await ws.recv()
            await ws.recv()  # FRAMES, written at once
            await ws.send(fragments if len(fragments) > 1 else fragments[0], text=True)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1007
        async with connect(url) as other:  # and the server serves the next one as before
            assert await other.recv() == FRAMES[0]
    finally:
        server.should_exit = True
        await task
        for log in watched:
            log.removeHandler(handler)
    assert not [r for r in handler.records if r.levelno >= logging.WARNING], [r.getMessage() for r in handler.records]
