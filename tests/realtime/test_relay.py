"""This host's processes asking each other over Unix sockets (realtime.relay.LocalRelay): a
request and its reply; an asker that leaves; a name nobody holds; a peer that sends garbage."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time

import pytest

from realtime.relay import NOT_HERE, LocalRelay
from realtime.transports.handoff import meeting_place


@pytest.fixture
async def owner():
    seen: list[dict] = []

    async def serve(request: dict, gone: asyncio.Future) -> dict | None:
        seen.append(request)
        if request["method"] == "GET":  # a long-poll: until the asker leaves
            await gone
            seen.append({"gone": True})
            return None
        return {"status": 200, "body": request["body"], "content_type": b"text/plain"}

    relay = LocalRelay(f"own{secrets.token_hex(3)}", serve)
    await relay.start()
    relay.seen = seen
    yield relay
    await relay.stop()


async def test_a_request_gets_its_owners_reply(owner):
    asker = LocalRelay("asker000", None)
    gone = asyncio.get_running_loop().create_future()
    reply = await asker.ask(owner.node_id, {"method": "POST", "body": b"\x00data"}, gone, timeout=5)
    assert reply == {"status": 200, "body": b"\x00data", "content_type": b"text/plain"}


async def test_an_asker_that_leaves_ends_the_owners_wait(owner):
    asker = LocalRelay("asker000", None)
    gone = asyncio.get_running_loop().create_future()
    asking = asyncio.ensure_future(asker.ask(owner.node_id, {"method": "GET"}, gone, timeout=5))
    await asyncio.sleep(0.2)
    gone.set_result(None)  # our client went away
    assert await asking is None
    for _ in range(50):
        if {"gone": True} in owner.seen:
            break
        await asyncio.sleep(0.05)
    assert owner.seen[-1] == {"gone": True}


async def test_a_node_no_process_of_this_host_is_is_not_here():
    gone = asyncio.get_running_loop().create_future()
    assert await LocalRelay("asker000", None).ask("nobody00", {"method": "GET"}, gone, timeout=5) is NOT_HERE


async def test_a_stopped_owner_is_not_here_at_once(owner):
    await owner.stop()
    gone = asyncio.get_running_loop().create_future()
    assert await LocalRelay("asker000", None).ask(owner.node_id, {"method": "GET"}, gone, timeout=5) is NOT_HERE


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x00\x00\x00\x03\xc1\xc1\xc1", b"\x00\x00\x00\x01\x07", b"\x00\x00"])
async def test_a_peer_that_sends_garbage_is_cut_off_and_the_owner_serves_on(owner, garbage):
    """A frame too long to be one, bytes that are no msgpack, msgpack that is no map, a frame cut short."""
    reader, writer = await asyncio.open_unix_connection(str(meeting_place() / f"{owner.node_id}.relay"))
    writer.write(garbage)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no reply
    writer.close()
    await test_a_request_gets_its_owners_reply(owner)
    assert all(isinstance(request, dict) and "method" in request for request in owner.seen)


async def test_a_dead_processs_name_is_forgotten_by_the_next_to_start(owner):
    """SIGKILL leaves a node's name behind; a process starting removes it (nobody answers there)."""
    stale = meeting_place() / "dead0000.relay"
    newborn = meeting_place() / "born0000.relay"
    for path in (stale, newborn):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unheard:
            unheard.bind(str(path))  # bound, not listening: what a killed process leaves
    os.utime(stale, (time.time() - 60, time.time() - 60), follow_symlinks=False)  # it died a minute ago
    starting = LocalRelay(f"new{os.getpid() % 100000:05d}", None)
    await starting.start()
    try:
        assert not stale.exists()
        assert newborn.exists()  # bound a moment ago: maybe a process starting beside this one
        assert (meeting_place() / f"{owner.node_id}.relay").exists()  # a live one's name stays
    finally:
        await starting.stop()
        newborn.unlink()
