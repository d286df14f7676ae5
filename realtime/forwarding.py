"""Long-polling without sticky sessions: a request for another node's session goes to it.

A polling session lives in the process that opened it. Behind a load balancer that does not
pin clients, its next GET or POST may reach another node; that node sends the request to the
owner through the channel layer (each node reads a channel named after its id, which every sid
starts with) and relays the answer. Socket.IO's own server cannot do this and needs sticky
sessions. Between processes of one host the request goes over a Unix socket instead (relay.py),
so it needs no Redis. A WebSocket upgrade cannot be relayed so: one that reaches another process
of the same host is handed over, connection and all (transports/handoff.py); one that reaches
another host fails its probe, and the client stays on polling, as engine.io clients do then.

An owner that is gone (crashed, restarted, or never was: a forged sid) listens on no channel:
Redis says nobody got the request, and the client hears at once that its session is unknown,
so it reconnects (and recovers) now rather than after a long-poll's wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from channels.layers import get_channel_layer

from .engine import EngineServer
from .pubsub_layer import listen, send_heard, unlisten
from .redis_client import REDIS_AWAY
from .relay import NOT_HERE, LocalRelay
from .protocol.engineio import ErrorCode
from .transports.polling import Reply, error_reply, serve_poll, serve_push

logger = logging.getLogger(__name__)

# A forwarded POST is answered at once; a GET waits at most a ping interval for data, plus
# this margin for the hop. Past it the owner is taken to be gone (HTTP 400, unknown sid).
REPLY_MARGIN_SECONDS = 10
# How long a stopping node waits for requests sent before it stopped hearing, and then for
# its answers to them (its sessions are closed: each is answered at once).
STOP_SETTLE_SECONDS = 0.2
# Said when the owner cannot be asked (Redis away): an engine.io client then opens a new session
# (and recovers it once Redis is back); the old one ends on its owner at its ping timeout.
UNREACHABLE = "Session ID unknown here: the node that owns it cannot be reached now"


def node_channel(node_id: str) -> str:
    return f"engine.{node_id}"


class Forwarder:
    def __init__(self, engine: EngineServer) -> None:
        self.engine = engine
        self.node_id = engine.node_id
        self._waiting: dict[str, asyncio.Future] = {}
        self._serving: dict[str, asyncio.Task] = {}
        self._gone: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self.relay = LocalRelay(self.node_id, self._answer)

    @property
    def layer(self):
        return get_channel_layer()

    def owned_elsewhere(self, sid: str) -> bool:
        node = len(self.node_id)
        return len(sid) > node and not sid.startswith(self.node_id)

    def start(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read())

    async def listen(self) -> None:
        """Reading this node's channel, subscribed already: call before giving out a sid, or
        a request for it sent meanwhile would find nobody listening."""
        await self.relay.start()
        try:
            await listen(self.layer, node_channel(self.node_id))
        except Exception as exc:  # Redis down: the session still works on this node (and host)
            logger.warning("not subscribed to %s, forwarded requests will miss it: %s", node_channel(self.node_id), exc)
        self.start()

    async def stop(self) -> None:
        """A draining node's last step, its sessions closed: it stops hearing requests, so the
        other nodes answer theirs at once (unknown sid: the client reconnects) instead of after a
        long poll's wait for a process that has exited; those that reached it are answered."""
        await self.relay.stop()
        try:
            await unlisten(self.layer, node_channel(self.node_id))
        except REDIS_AWAY:
            return  # nobody can forward anything to us either
        await asyncio.sleep(STOP_SETTLE_SECONDS)  # what was published before the UNSUBSCRIBE comes in
        if self._serving:
            await asyncio.wait(list(self._serving.values()), timeout=STOP_SETTLE_SECONDS)

    async def forward(self, sid: str, method: str, body: bytes | None, receive) -> Reply | None:
        """Ask the owner of `sid` to serve this request; None if our client left meanwhile."""
        self.start()
        request_id = secrets.token_urlsafe(12)
        owner_id = sid[: len(self.node_id)]
        owner = node_channel(owner_id)
        answer = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        message = {"type": "engine.request", "id": request_id, "reply_to": node_channel(self.node_id),
                   "sid": sid, "method": method, "body": body}
        gone = asyncio.ensure_future(receive())
        timeout = self.engine.config.ping_interval + REPLY_MARGIN_SECONDS
        try:
            reply = await self.relay.ask(owner_id, message, gone, timeout)
            if reply is not NOT_HERE:  # the owner is a process of this host
                if reply is None:  # our client left, or the owner ended without answering
                    return None if gone.done() else error_reply(400, ErrorCode.UNKNOWN_SID)
                return Reply(reply["status"], reply["body"], reply["content_type"])
            try:
                heard = await send_heard(self.layer, owner, message)
            except REDIS_AWAY as exc:  # the way to the owner is gone: the client must start again
                logger.warning("request for session %s not forwarded: %s", sid, exc)
                return error_reply(400, ErrorCode.UNKNOWN_SID, UNREACHABLE)
            if heard == 0:
                return error_reply(400, ErrorCode.UNKNOWN_SID)  # no such node listens
            done, _ = await asyncio.wait({answer, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if answer in done:
                reply = answer.result()
                return Reply(reply["status"], reply["body"], reply["content_type"])
            if gone in done:
                with contextlib.suppress(*REDIS_AWAY):  # the owner's poll then ends on its own
                    await self.layer.send(owner, {"type": "engine.abort", "id": request_id})
                return None
            return error_reply(400, ErrorCode.UNKNOWN_SID)  # the owner did not answer: gone
        finally:
            gone.cancel()
            self._waiting.pop(request_id, None)

    async def _read(self) -> None:
        channel = node_channel(self.node_id)
        while True:
            message = await self.layer.receive(channel)
            kind = message.get("type")
            if kind == "engine.request":
                self._serving[message["id"]] = asyncio.ensure_future(self._serve(message))
            elif kind == "engine.reply":
                future = self._waiting.get(message["id"])
                if future is not None and not future.done():
                    future.set_result(message)
            elif kind == "engine.abort":
                gone = self._gone.get(message["id"])
                if gone is not None and not gone.done():
                    gone.set_result(None)

    async def _serve(self, message: dict) -> None:
        request_id = message["id"]
        try:
            gone = self._gone[request_id] = asyncio.get_running_loop().create_future()
            reply = await self._answer(message, gone)
            if reply is not None:
                await self.layer.send(message["reply_to"], {"type": "engine.reply", "id": request_id, **reply})
        except Exception:
            logger.exception("forwarded request %s for %s failed", request_id, message.get("sid"))
        finally:
            self._serving.pop(request_id, None)
            self._gone.pop(request_id, None)

    async def _answer(self, message: dict, gone: asyncio.Future) -> dict | None:
        """Serve a request another node sent (through Redis or this host's relay); its reply, or
        None if `gone` (the asker's client left) came first."""
        session = self.engine.sessions.get(message.get("sid"))  # .get: a peer's frame, whatever it holds
        if session is None:
            reply = error_reply(400, ErrorCode.UNKNOWN_SID)
        elif message.get("method") == "GET":
            reply = await serve_poll(session, gone)
        elif message.get("method") == "POST":
            reply = await serve_push(session, message.get("body"))
        else:
            reply = error_reply(400, ErrorCode.BAD_REQUEST)
        return None if reply is None else {"status": reply.status, "body": reply.body, "content_type": reply.content_type}
