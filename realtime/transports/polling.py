"""The HTTP long-polling transport: handshake GET, long-poll GET, POST, and CORS preflight."""

from __future__ import annotations

import asyncio
import json

from channels.exceptions import StopConsumer

from ..engine import EngineServer, SessionError
from ..protocol.engineio import ErrorCode
from ..protocol.errors import DecodeError
from ..session import State
from .base import TransportConsumer
from .handshake import Gate, HandshakeError, header, origin_of, parse_handshake

TEXT = b"text/plain; charset=UTF-8"
NOOP = b"6"


class PollingTransport(TransportConsumer):
    """One HTTP request of a polling session.

    A long-poll GET must notice the client going away while it waits, which the one-message-
    at-a-time dispatch loop cannot do, so this consumer reads its request itself.
    """

    def __init__(self, engine: EngineServer, gate: Gate) -> None:
        self.engine = engine
        self.gate = gate
        self.cors = gate.cors

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self.origin = origin_of(scope)
        method = scope["method"]
        if not self.cors.allows(self.origin):
            return await self.error(403, ErrorCode.FORBIDDEN)
        if method == "OPTIONS":
            headers = self.cors.preflight_headers(
                self.origin, header(scope, b"access-control-request-headers")
            )
            return await self.respond(204, b"", headers)
        try:
            handshake = parse_handshake(scope, "polling")
        except HandshakeError as exc:
            return await self.error(exc.status, exc.code)
        try:
            body = await self.read_body(receive, self.engine.config.max_payload)
        except StopConsumer:
            return  # the client went away before its request was whole
        if handshake.sid is None:
            if method != "GET":
                return await self.error(400, ErrorCode.BAD_HANDSHAKE_METHOD)
            retry_after = await self.gate.admit_new_session(scope)
            if retry_after is not None:
                return await self.too_many(retry_after)
            session = await self.engine.open(State.POLLING, scope)
            return await self.respond(200, (await session.poll()).encode())
        session = self.engine.sessions.get(handshake.sid)
        if session is None:
            if method == "GET" and self.engine.take_client_close(handshake.sid):
                return await self.respond(200, NOOP)
            return await self.error(400, ErrorCode.UNKNOWN_SID)
        if method == "GET":
            return await self.long_poll(session, receive)
        if method == "POST":
            return await self.push(session, body)
        return await self.error(400, ErrorCode.BAD_REQUEST)

    async def long_poll(self, session, receive) -> None:
        poll = asyncio.ensure_future(session.poll())
        gone = asyncio.ensure_future(receive())
        done, _ = await asyncio.wait({poll, gone}, return_when=asyncio.FIRST_COMPLETED)
        if poll not in done:
            # The client aborted its GET: as in Node, that ends the session.
            poll.cancel()
            await session.close("transport close", notify_client=False)
            return
        gone.cancel()
        try:
            body = poll.result()
        except SessionError as exc:
            if exc.close_session:
                await session.close("transport error")
            return await self.error(400, exc.code)
        await self.respond(200, body.encode())

    async def push(self, session, body: bytes | None) -> None:
        if body is None:
            await session.close("transport error")
            return await self.error(413, ErrorCode.BAD_REQUEST, message="Payload too large")
        try:
            await session.post(body.decode("utf-8"))
        except SessionError as exc:
            if exc.close_session:
                await session.close("transport error")
            return await self.error(400, exc.code)
        except (DecodeError, UnicodeDecodeError):
            await session.close("parse error")
            return await self.error(400, ErrorCode.BAD_REQUEST)
        await self.respond(200, b"ok")

    async def read_body(self, receive, limit: int) -> bytes | None:
        """The request body, or None once it passes `limit` bytes (the rest is not read)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise StopConsumer()
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def too_many(self, retry_after_ms: int) -> None:
        body = json.dumps({"code": int(ErrorCode.FORBIDDEN), "message": "Too many connections from this address", "retryAfter": retry_after_ms})
        headers = [*self.cors.headers(self.origin), (b"retry-after", str(retry_after_ms // 1000 + 1).encode())]
        await self.respond(429, body.encode(), headers, content_type=b"application/json")

    async def error(self, status: int, code: ErrorCode, *, message: str | None = None) -> None:
        body = json.dumps({"code": int(code), "message": message or code.message}).encode()
        await self.respond(status, body, content_type=b"application/json")

    async def respond(self, status, body: bytes, headers=None, *, content_type: bytes = TEXT) -> None:
        all_headers = [(b"content-type", content_type), (b"cache-control", b"no-store")]
        all_headers += headers if headers is not None else self.cors.headers(self.origin)
        await self.send({"type": "http.response.start", "status": status, "headers": all_headers})
        await self.send({"type": "http.response.body", "body": body})
