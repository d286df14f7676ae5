"""The HTTP long-polling transport: handshake GET, long-poll GET, POST, and CORS preflight."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from channels.exceptions import StopConsumer

from ..engine import EngineServer, EngineSession, SessionError
from ..protocol.engineio import ErrorCode
from ..protocol.errors import DecodeError
from ..session import State
from .base import TransportConsumer
from .handshake import Gate, HandshakeError, header, host_of, origin_of, parse_handshake, session_headers

TEXT = b"text/plain; charset=UTF-8"
JSON = b"application/json"
NOOP = b"6"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = TEXT


def error_reply(status: int, code: ErrorCode, message: str | None = None) -> Reply:
    return Reply(status, json.dumps({"code": int(code), "message": message or code.message}).encode(), JSON)


async def serve_poll(session: EngineSession, client_gone: asyncio.Future) -> Reply | None:
    """A long-poll GET on `session`; None if the client went away first (no one to answer).

    The poll waits in the request's own task, which `client_gone` wakes: a polling client makes
    a request per message it receives, and a task of its own for each poll plus asyncio.wait
    were ~15 % of a request's CPU (tests/benchmarks --transport polling)."""
    try:
        body = await session.poll(client_gone)
    except SessionError as exc:
        if exc.close_session:
            await session.close("transport error")
        return error_reply(400, exc.code)
    finally:
        client_gone.cancel()
    return None if body is None else Reply(200, body.encode())


async def serve_push(session: EngineSession, body: bytes | None) -> Reply:
    """A POST of packets to `session`; `body` is None when it was over the size limit."""
    if body is None:
        await session.close("transport error")
        return error_reply(413, ErrorCode.BAD_REQUEST, "Payload too large")
    try:
        await session.post(body.decode("utf-8"))
    except SessionError as exc:
        if exc.close_session:
            await session.close("transport error")
        return error_reply(400, exc.code)
    except (DecodeError, UnicodeDecodeError):
        await session.close("parse error")
        return error_reply(400, ErrorCode.BAD_REQUEST)
    return Reply(200, b"ok")


class PollingTransport(TransportConsumer):
    """One HTTP request of a polling session.

    A long-poll GET must notice the client going away while it waits, which the one-message-
    at-a-time dispatch loop cannot do, so this consumer reads its request itself.
    """

    def __init__(self, engine: EngineServer, gate: Gate, forwarder=None) -> None:
        self.engine = engine
        self.gate = gate
        self.cors = gate.cors
        self.forwarder = forwarder  # realtime.forwarding.Forwarder when several nodes share Redis

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self.origin = origin_of(scope)
        method = scope["method"]
        if not self.cors.allows(self.origin, host_of(scope)):
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
            if self.forwarder is not None:
                await self.forwarder.listen()  # other nodes may send this session's requests here
            session = await self.engine.open(State.POLLING, {**scope, "headers": session_headers(scope)})
            return await self.respond(200, (await session.poll()).encode())
        session = self.engine.sessions.get(handshake.sid)
        if session is None and self.forwarder is not None and self.forwarder.owned_elsewhere(handshake.sid):
            # No sticky sessions needed: the node that owns the session answers through us.
            reply = await self.forwarder.forward(handshake.sid, method, body, receive)
        elif session is None:
            if method == "GET" and self.engine.take_client_close(handshake.sid):
                return await self.respond(200, NOOP)
            reply = error_reply(400, ErrorCode.UNKNOWN_SID)
        elif method == "GET":
            reply = await serve_poll(session, asyncio.ensure_future(receive()))
        elif method == "POST":
            reply = await serve_push(session, body)
        else:
            reply = error_reply(400, ErrorCode.BAD_REQUEST)
        if reply is not None:
            await self.respond(reply.status, reply.body, content_type=reply.content_type)

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

    async def error(self, status: int, code: ErrorCode) -> None:
        reply = error_reply(status, code)
        await self.respond(reply.status, reply.body, content_type=reply.content_type)

    async def respond(self, status, body: bytes, headers=None, *, content_type: bytes = TEXT) -> None:
        all_headers = [(b"content-type", content_type), (b"cache-control", b"no-store")]
        if status != 204:  # a length, not chunked encoding: less to frame, and what Node sends
            all_headers.append((b"content-length", b"%d" % len(body)))
        all_headers += headers if headers is not None else self.cors.headers(self.origin)
        await self.send({"type": "http.response.start", "status": status, "headers": all_headers})
        await self.send({"type": "http.response.body", "body": body})
