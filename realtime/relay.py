"""Polling requests for another process of this host, asked over a Unix socket, not Redis.

forwarding.py sends a request for another node's session through Redis' pub/sub. The processes
of one host (uvicorn's workers) need no Redis for that: each listens on a Unix stream socket
named after its node id, in the directory handoff.py's upgrades use (only the service's user
can reach it), and a request for a session there goes straight to its owner. So polling clients
of a host with several workers keep their sessions while Redis is away (before, each request
that reached another worker was refused, and the client started over, again and again), and
the hop costs no round trip through Redis.

One connection per request, one length-prefixed msgpack frame each way: the request (as
forwarding.py sends it through Redis) and its reply. The asking side closing its end is its
client going away; the owner closing without a reply (killed, exiting) is a session gone.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgpack

from .transports.handoff import forget_the_dead, meeting_place

logger = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct("!I")
# A request carries a POST body (at most MAX_HTTP_BUFFER_SIZE, checked before it is sent) and a
# reply a poll's packets: this only stops a broken peer from having us allocate without bound.
MAX_FRAME_BYTES = 256 * 1024 * 1024
# No process of this host listens under that name: ask another way (Redis), or nobody.
NOT_HERE = object()


def _path(directory: Path, node_id: str) -> Path:
    return directory / f"{node_id}.relay"


class LocalRelay:
    def __init__(self, node_id: str, serve: Callable[[dict, asyncio.Future], Awaitable[dict | None]]) -> None:
        self.node_id = node_id
        self.serve = serve  # (request, a future done when the asker leaves) -> reply, or None
        self._directory: Path | None = None
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen under this node's name (once); without a usable directory, requests for this
        node's sessions come through Redis only."""
        if self._server is not None:
            return
        try:
            directory = meeting_place()
            forget_the_dead(directory, ".relay", socket.SOCK_STREAM)
            self._server = await asyncio.start_unix_server(self._answer, path=str(_path(directory, self.node_id)))
        except OSError as exc:
            logger.warning("polling requests from this host's other processes come through Redis only: %s", exc)
            return
        self._directory = directory

    async def stop(self) -> None:
        """Take no more requests (those in progress are answered): askers find nobody at once."""
        if self._server is None:
            return
        self._server.close()
        _path(self._directory, self.node_id).unlink(missing_ok=True)
        self._server = None

    async def ask(self, node_id: str, request: dict, gone: asyncio.Future, timeout: float):
        """The owner's reply (a dict); NOT_HERE if no process of this host is `node_id`; None if
        `gone` (our client left) came first, or the owner ended without a reply or in time."""
        try:
            directory = self._directory or meeting_place()
            reader, writer = await asyncio.open_unix_connection(str(_path(directory, node_id)))
        except OSError:  # no such name (another host's node, gone, forged), or a dead one's
            return NOT_HERE
        try:
            writer.write(_frame(request))
            reply = asyncio.ensure_future(_read_frame(reader))
            done, _ = await asyncio.wait({reply, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if reply not in done:
                reply.cancel()
                return None
            return reply.result()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            logger.info("request for node %s ended without a reply: %r", node_id, exc)
            return None
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_frame(reader)
            gone = asyncio.ensure_future(reader.read(1))  # b"": the asker closed (its client left)
            try:
                reply = await self.serve(request, gone)
            finally:
                gone.cancel()
            if reply is not None:
                writer.write(_frame(reply))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:  # a probe, or an asker gone
            logger.debug("a relayed request ended early: %r", exc)
        except Exception:
            logger.exception("a relayed request failed")
        finally:
            writer.close()


def _frame(message: dict) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return FRAME_HEADER.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> dict:
    (length,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {length} bytes")
    message = msgpack.unpackb(await reader.readexactly(length), raw=False)
    if not isinstance(message, dict):
        raise ValueError("a frame that is no map")
    return message
