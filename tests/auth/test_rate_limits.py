"""Rate limits: events per connection (ping exempt) with a block and a flood cut-off, and new
connections per client address (429 on polling, refused WebSocket), X-Forwarded-For believed
only from TRUSTED_PROXIES.

The `limited` server allows 5 events per 1 s window, then blocks 1.5 s; 3 handshakes per
address per window; it trusts 127.0.0.1 as a proxy, so each test picks its own client address
with X-Forwarded-For. The `untrusted` server has the same limits and trusts no proxy.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import aiohttp
import pytest
import socketio

from tests.auth.clients import Client, connected

from tests.auth.conftest import RATE_LIMITS

REQUESTS, WINDOW_MS, BLOCK_MS, HANDSHAKES = (int(RATE_LIMITS[f"RATE_LIMIT_{name}"])
                                             for name in ("REQUESTS", "WINDOW_MS", "BLOCK_MS", "HANDSHAKES"))
ROOM = {"room": "market:XLM_USDC"}
RATE_LIMITED = "too many requests: try again in 2 s"  # 1500 ms, rounded up to whole seconds
FLOOD_DISCONNECT_AFTER = 20
_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


def new_address() -> str:
    return next(_addresses)


@pytest.fixture(scope="module")
def limited(fleet):
    return fleet["rate-limited"]


@pytest.fixture(scope="module")
def untrusted(fleet):
    return fleet["rate-limited-untrusted"]


async def client_from_new_address(server) -> Client:
    return await connected(server, "websocket", headers={"X-Forwarded-For": new_address()})


async def use_up_the_window(client: Client) -> None:
    for _ in range(REQUESTS):
        assert (await client.call("subscribe", ROOM))["ok"] is True


# -- events ------------------------------------------------------------------------------------


async def test_the_event_after_the_limit_is_refused_until_the_block_ends(limited):
    client = await client_from_new_address(limited)
    await use_up_the_window(client)
    blocked_at = asyncio.get_running_loop().time()
    assert await client.call("subscribe", ROOM) == {
        "ok": False, "error": {"code": "rate_limited", "message": RATE_LIMITED, "retryAfter": BLOCK_MS},
    }
    # Every event with an ack hears it, with the time left.
    again = await client.call("subscribe", ROOM)
    assert again["ok"] is False and again["error"]["code"] == "rate_limited"
    assert 0 < again["error"]["retryAfter"] <= BLOCK_MS
    await asyncio.sleep(BLOCK_MS / 1000 - (asyncio.get_running_loop().time() - blocked_at) + 0.1)
    await use_up_the_window(client)  # a whole new window after the block
    assert (await client.call("subscribe", ROOM))["error"]["code"] == "rate_limited"
    await client.close()


async def test_without_acks_one_error_event_then_the_rest_is_dropped(limited):
    client = await client_from_new_address(limited)
    for _ in range(REQUESTS):
        await client.emit("subscribe", ROOM)
    for _ in range(REQUESTS):
        await client.next("subscribed")
    for _ in range(3):
        await client.emit("subscribe", ROOM)
    assert await client.next("error") == {
        "event": "subscribe", "code": "rate_limited", "message": RATE_LIMITED, "retryAfter": BLOCK_MS,
    }
    await client.none("error", 0.3)
    await client.none("subscribed", 0.01)
    assert client.sio.connected
    await client.close()


async def test_ping_is_never_limited(limited):
    client = await client_from_new_address(limited)
    for _ in range(4 * REQUESTS):
        assert (await client.call("ping"))["ok"] is True
    await use_up_the_window(client)  # the pings did not count
    assert (await client.call("subscribe", ROOM))["error"]["code"] == "rate_limited"
    assert (await client.call("ping"))["ok"] is True  # not even while blocked
    assert "timestamp" in await client.next("pong")
    await client.close()


async def test_flooding_while_blocked_disconnects(limited):
    client = await client_from_new_address(limited)
    await use_up_the_window(client)
    for _ in range(FLOOD_DISCONNECT_AFTER):
        await client.emit("subscribe", ROOM)
    assert (await client.call("ping"))["ok"] is True  # 20 dropped: still here
    assert client.sio.connected
    await client.emit("subscribe", ROOM)  # the 21st
    await asyncio.wait_for(client.disconnected.wait(), 3)
    assert not client.sio.connected


async def test_sockets_are_limited_separately(limited):
    noisy, quiet = await client_from_new_address(limited), await client_from_new_address(limited)
    await use_up_the_window(noisy)
    assert (await noisy.call("subscribe", ROOM))["ok"] is False
    assert (await quiet.call("subscribe", ROOM))["ok"] is True
    await noisy.close()
    await quiet.close()


async def test_connecting_again_on_the_same_connection_lifts_no_block(limited):
    """A client may send CONNECT again on its WebSocket (a new socket, a new sid): the limit is
    the connection's, so the block stays, and dropped events keep counting to the cut-off."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(websocket_url(limited), headers={"X-Forwarded-For": new_address()}) as ws:
            assert (await ws.receive_str()).startswith("0")

            async def reply_to(ack_id: int) -> list:
                while not (frame := await ws.receive_str()).startswith(f"43{ack_id}["):
                    pass
                return json.loads(frame[len(f"43{ack_id}"):])

            async def connect_again() -> None:
                await ws.send_str("40")
                while not (await ws.receive_str()).startswith("40{"):
                    pass

            await connect_again()
            for ack_id in range(REQUESTS):
                await ws.send_str(f'42{ack_id}["subscribe",{json.dumps(ROOM)}]')
                assert (await reply_to(ack_id))[0]["ok"] is True
            await connect_again()
            await ws.send_str(f'42100["subscribe",{json.dumps(ROOM)}]')
            assert (await reply_to(100))[0]["error"]["code"] == "rate_limited"
            for _ in range(FLOOD_DISCONNECT_AFTER // 2):
                await ws.send_str(f'42["subscribe",{json.dumps(ROOM)}]')
            await connect_again()
            for _ in range(FLOOD_DISCONNECT_AFTER // 2):
                await ws.send_str(f'42["subscribe",{json.dumps(ROOM)}]')
            # 21 dropped in all: the connection is cut off, as one that never re-connected
            while (await asyncio.wait_for(ws.receive(), 3)).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass


# -- handshakes per client address -------------------------------------------------------------


def polling_url(server) -> str:
    return f"{server.url}/socket.io/?EIO=4&transport=polling"


def websocket_url(server, sid: str | None = None) -> str:
    url = f"{server.url}/socket.io/?EIO=4&transport=websocket".replace("http", "ws", 1)
    return url + (f"&sid={sid}" if sid else "")


async def polling_handshake(http, server, address: str | None) -> tuple[int, str, dict]:
    headers = {"X-Forwarded-For": address} if address else {}
    async with http.get(polling_url(server), headers=headers) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def assert_refused(http, server, address: str | None) -> None:
    status, body, headers = await polling_handshake(http, server, address)
    assert status == 429
    assert headers["Content-Type"].startswith("application/json")
    reply = json.loads(body)
    assert reply["code"] == 4 and reply["message"] == "Too many connections from this address"
    assert 0 < reply["retryAfter"] <= BLOCK_MS
    assert headers["Retry-After"] == str(reply["retryAfter"] // 1000 + 1)


async def test_polling_handshakes_per_address(limited):
    address = new_address()
    async with aiohttp.ClientSession() as http:
        for _ in range(HANDSHAKES):
            status, body, _ = await polling_handshake(http, limited, address)
            assert status == 200 and body.startswith("0{")
        await assert_refused(http, limited, address)
        status, body, _ = await polling_handshake(http, limited, address)
        assert json.loads(body)["retryAfter"] <= BLOCK_MS
        # Another address behind the same trusted proxy is not affected...
        assert (await polling_handshake(http, limited, new_address()))[0] == 200
        # ...and a client cannot pick a fresh address by prepending one itself.
        await assert_refused(http, limited, f"198.51.100.99, {address}")
        await asyncio.sleep(BLOCK_MS / 1000 + 0.1)
        assert (await polling_handshake(http, limited, address))[0] == 200


async def test_websocket_handshakes_per_address(limited):
    address = new_address()
    headers = {"X-Forwarded-For": address}
    async with aiohttp.ClientSession() as http:
        opened = []
        for _ in range(HANDSHAKES):
            ws = await http.ws_connect(websocket_url(limited), headers=headers)
            assert (await ws.receive_str()).startswith("0{")
            opened.append(ws)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(websocket_url(limited), headers=headers)
        assert refused.value.status == 403
        for ws in opened:
            await ws.close()
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(limited, "websocket", headers=headers)


async def test_an_upgrade_is_not_a_new_handshake(limited):
    address = new_address()
    headers = {"X-Forwarded-For": address}
    async with aiohttp.ClientSession() as http:
        for _ in range(HANDSHAKES):
            status, body, _ = await polling_handshake(http, limited, address)
        sid = json.loads(body[1:])["sid"]
        ws = await http.ws_connect(websocket_url(limited, sid), headers=headers)
        await ws.send_str("2probe")
        assert await ws.receive_str() == "3probe"
        await ws.close()


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(untrusted):
    async with aiohttp.ClientSession() as http:
        for _ in range(HANDSHAKES):
            assert (await polling_handshake(http, untrusted, new_address()))[0] == 200
        # Each request claimed a new address; all came from 127.0.0.1, which is what counts.
        await assert_refused(http, untrusted, new_address())
        await assert_refused(http, untrusted, None)
