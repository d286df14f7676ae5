"""WebSocket upgrades without sticky sessions, between server processes on one host.

A polling session lives in the process that opened it; another process relays its requests
(forwarding.py). Its upgrade cannot be relayed so: engine.io clients probe the new WebSocket,
and a probe answered by a process that does not own the session fails, after which the client
stays on polling for good. uvicorn's workers share one listening socket, so with two of them
about half of the clients that start on polling (socket.io-client's default) never upgraded.

So the process an upgrade request reaches hands the connection itself to the owner: the
socket's descriptor and the request's bytes, in one datagram on a Unix socket named after the
owner's node id (SCM_RIGHTS). The owner serves it as if it had accepted it. Processes on other
hosts have no such socket here: their clients' upgrades still need sticky sessions.

Loaded by uvicorn's protocol classes, before Django: no settings here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

# An upgrade request as uvicorn rebuilds it: a request line and headers, well under this.
MAX_REQUEST_BYTES = 65536

# This worker's uvicorn Config, ServerState and app state (uvicorn_http.HttpToolsProtocol
# records them): what a WebSocket protocol for an adopted connection is made with.
_server: tuple | None = None
_node_id: str | None = None  # set once this process takes handed-over connections
_receiver: socket.socket | None = None


def address(node_id: str) -> str:
    """A Linux abstract socket: nothing on disk to clean up, gone with its process."""
    return f"\0galaxy-websocket-{node_id}"


def remember_server(config, server_state, app_state) -> None:
    global _server
    if _server is None:
        _server = (config, server_state, app_state)


def start_receiving(node_id: str) -> None:
    """Take the connections other processes hand to this one (in the running loop, once)."""
    global _receiver, _node_id
    if _receiver is not None:
        return
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.bind(address(node_id))
    except OSError as exc:  # not Linux, or the name is taken: upgrades must reach their owner
        receiver.close()
        logger.warning("WebSocket upgrades are not handed between processes here: %s", exc)
        return
    receiver.setblocking(False)
    asyncio.get_running_loop().add_reader(receiver, _receive, receiver)
    _receiver, _node_id = receiver, node_id


def hand_over(transport: asyncio.Transport, target: str, request: bytes) -> bool:
    """Send this connection to the process on this host that owns the session the upgrade
    request for `target` names; True if sent (the caller lets go of it, unread and unclosed)."""
    if _node_id is None or "sid=" not in target:  # a new session's upgrade: ours
        return False
    sid = parse_qs(target.partition("?")[2]).get("sid", [""])[0]
    if len(sid) <= len(_node_id) or sid.startswith(_node_id) or len(request) > MAX_REQUEST_BYTES:
        return False
    connection = transport.get_extra_info("socket")
    if connection is None:
        return False
    descriptor = os.dup(connection.fileno())
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as out:
            out.connect(address(sid[: len(_node_id)]))  # send_fds ignores an address (3.11)
            socket.send_fds(out, [request], [descriptor])
    except OSError:  # no such process on this host (another host's, gone, or forged)
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
        if not descriptors:
            continue
        connection = socket.socket(fileno=descriptors[0])
        if _server is None:  # no request served here yet, so no session to upgrade either
            connection.close()
            continue
        asyncio.ensure_future(_adopt(connection, request))


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
