"""WebSocket upgrades without sticky sessions, between server processes on one host.

A polling session lives in the process that opened it; another process relays its requests
(forwarding.py). Its upgrade cannot be relayed so: engine.io clients probe the new WebSocket,
and a probe answered by a process that does not own the session fails, after which the client
stays on polling for good. uvicorn's workers share one listening socket, so with two of them
about half of the clients that start on polling (socket.io-client's default) never upgraded.

So the process an upgrade request reaches hands the connection itself to the owner: the
socket's descriptor and the request's bytes, in one datagram on a Unix socket named after the
owner's node id (SCM_RIGHTS), in a directory only the service's user can use. The owner serves
it as if it had accepted it. A sender never waits: an owner whose queue is full is refused, and
the client's probe fails as it would have. Processes on other hosts have no socket here: their
clients' upgrades still need sticky sessions; a TLS connection ended by uvicorn itself stays.

Loaded by uvicorn's protocol classes, before Django: no settings here.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import socket
import stat
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

# An upgrade request as uvicorn rebuilds it: a request line and headers, well under this.
MAX_REQUEST_BYTES = 65536
# A name younger than this is never taken for a dead process's (forget_the_dead).
NEWBORN_SECONDS = 10

# This worker's uvicorn Config, ServerState and app state (uvicorn_http.HttpToolsProtocol
# records them): what a WebSocket protocol for an adopted connection is made with.
_server: tuple | None = None
_node_id: str | None = None  # set once this process takes handed-over connections
_directory: Path | None = None
_receiver: socket.socket | None = None


def meeting_place() -> Path:
    """Where this host's processes of this user take connections: a directory of the user's
    only (0700), so no other user can bind a node's name (and be handed its clients, their
    tokens with them) or send a process descriptors."""
    path = Path(tempfile.gettempdir()) / f"galaxy-handoff-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise OSError(f"{path} is not a directory of this user's only")
    return path


def remember_server(config, server_state, app_state) -> None:
    global _server
    if _server is None:
        _server = (config, server_state, app_state)


def start_receiving(node_id: str) -> None:
    """Take the connections other processes hand to this one (in the running loop, once)."""
    global _receiver, _node_id, _directory
    if _receiver is not None:
        return
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        directory = meeting_place()
        forget_the_dead(directory, ".sock", socket.SOCK_DGRAM)
        path = directory / f"{node_id}.sock"
        receiver.bind(str(path))
    except OSError as exc:  # upgrades must then reach their owner
        receiver.close()
        logger.warning("WebSocket upgrades are not handed between processes here: %s", exc)
        return
    receiver.setblocking(False)
    asyncio.get_running_loop().add_reader(receiver, _receive, receiver)
    atexit.register(path.unlink, missing_ok=True)
    _receiver, _node_id, _directory = receiver, node_id, directory


def forget_the_dead(directory: Path, suffix: str, kind: socket.SocketKind) -> None:
    """Remove the names (`*{suffix}`, sockets of `kind`) of processes that died without removing
    their own (SIGKILL). Not a stream socket made in the last seconds: a process starting beside
    us may have bound it and not yet listen on it (a datagram socket hears once bound)."""
    for path in directory.glob(f"*{suffix}"):
        with socket.socket(socket.AF_UNIX, kind) as probe, contextlib.suppress(OSError):
            probe.setblocking(False)  # a live one's full backlog is no reason to wait here
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                if kind == socket.SOCK_DGRAM or path.lstat().st_mtime < time.time() - NEWBORN_SECONDS:
                    path.unlink(missing_ok=True)


def hand_over(transport: asyncio.Transport, target: str, request: bytes) -> bool:
    """Send this connection to the process on this host that owns the session the upgrade
    request for `target` names; True if sent (the caller lets go of it, unread and unclosed)."""
    if _directory is None or "sid=" not in target:  # a new session's upgrade: ours
        return False
    sid = parse_qs(target.partition("?")[2]).get("sid", [""])[0]
    if len(sid) <= len(_node_id) or sid.startswith(_node_id) or len(request) > MAX_REQUEST_BYTES:
        return False
    # TLS ended here stays here: the owner would answer in the clear inside it.
    connection = transport.get_extra_info("socket") if transport.get_extra_info("sslcontext") is None else None
    if connection is None:
        return False
    descriptor = os.dup(connection.fileno())
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as out:
            out.setblocking(False)  # never wait in the event loop: a full queue is a refusal
            out.connect(str(_directory / f"{sid[: len(_node_id)]}.sock"))  # send_fds ignores an address (3.11)
            socket.send_fds(out, [request], [descriptor])
    except OSError:  # no such process on this host (another host's, gone, forged), or it is swamped
        return False
    finally:
        os.close(descriptor)  # the owner has its own now; closing ours sends nothing
    return True


def _receive(receiver: socket.socket) -> None:
    while True:
        try:
            request, descriptors, _, _ = socket.recv_fds(receiver, MAX_REQUEST_BYTES, 1)
        except (BlockingIOError, InterruptedError):
            return
        for descriptor in descriptors:
            connection = _stream_socket(descriptor)
            if connection is None:
                continue
            if _server is None:  # no request served here yet, so no session to upgrade either
                connection.close()
                continue
            asyncio.ensure_future(_adopt(connection, request))


def _stream_socket(descriptor: int) -> socket.socket | None:
    """The TCP connection a descriptor is, or None (closed): only this user's processes can
    send here, but a descriptor of anything else must not stay open."""
    try:
        connection = socket.socket(fileno=descriptor)
    except OSError:
        os.close(descriptor)
        return None
    if connection.family not in (socket.AF_INET, socket.AF_INET6) or connection.type != socket.SOCK_STREAM:
        connection.close()
        return None
    return connection


async def _adopt(connection: socket.socket, request: bytes) -> None:
    """Serve the connection as uvicorn serves an upgrade it read itself (handle_websocket_upgrade)."""
    config, server_state, app_state = _server
    protocol = config.ws_protocol_class(config=config, server_state=server_state, app_state=app_state)
    try:
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, connection)
    except OSError as exc:  # the client went away meanwhile
        logger.info("a handed-over WebSocket was gone before it could be served: %s", exc)
        connection.close()
        return
    protocol.data_received(request)
