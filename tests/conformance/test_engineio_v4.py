"""Engine.IO v4 conformance, after the official test suite's 25 tests, against `/engine.io/` (an echo server).

Classes mirror the suite's describe blocks and method names its test titles.
"""

import asyncio

import aiohttp

from tests.conformance.client import (
    CLOSE_SLACK,
    HEARTBEAT_DEADLINE,
    MAX_PAYLOAD,
    PING_INTERVAL_MS,
    PING_TIMEOUT_MS,
    PROMPT_CLOSE,
    WAIT,
    parse_open,
)


class TestHandshakeHttpLongPolling:
    async def test_successfully_opens_a_session(self, eio):
        status, content = await eio.fetch("EIO=4&transport=polling")

        assert status == 200
        assert content.startswith("0")
        value = parse_open(content)
        assert value["upgrades"] == ["websocket"]
        assert value["pingInterval"] == PING_INTERVAL_MS
        assert value["pingTimeout"] == PING_TIMEOUT_MS
        assert value["maxPayload"] == MAX_PAYLOAD

    async def test_fails_with_an_invalid_eio_query_parameter(self, eio):
        assert (await eio.fetch("transport=polling"))[0] == 400
        assert (await eio.fetch("EIO=abc&transport=polling"))[0] == 400

    async def test_fails_with_an_invalid_transport_query_parameter(self, eio):
        assert (await eio.fetch("EIO=4"))[0] == 400
        assert (await eio.fetch("EIO=4&transport=abc"))[0] == 400

    async def test_fails_with_an_invalid_request_method(self, eio):
        assert (await eio.fetch("EIO=4&transport=polling", "POST"))[0] == 400
        assert (await eio.fetch("EIO=4&transport=polling", "PUT"))[0] == 400


class TestHandshakeWebSocket:
    async def test_successfully_opens_a_session(self, eio):
        socket = await eio.open_ws()

        data = await socket.recv()

        assert data.startswith("0")
        value = parse_open(data)
        assert value["upgrades"] == []
        assert value["pingInterval"] == PING_INTERVAL_MS
        assert value["pingTimeout"] == PING_TIMEOUT_MS
        assert value["maxPayload"] == MAX_PAYLOAD

    async def test_fails_with_an_invalid_eio_query_parameter(self, eio):
        await eio.ws_closes("transport=websocket")
        await eio.ws_closes("EIO=abc&transport=websocket")

    async def test_fails_with_an_invalid_transport_query_parameter(self, eio):
        await eio.ws_closes("EIO=4")
        await eio.ws_closes("EIO=4&transport=abc")


class TestMessageHttpLongPolling:
    async def test_sends_and_receives_a_payload_containing_one_plain_text_packet(self, eio):
        sid = await eio.open_session()

        assert await eio.post(sid, "4hello") == (200, "ok")
        assert await eio.poll(sid) == (200, "4hello")

    async def test_sends_and_receives_a_payload_containing_several_plain_text_packets(self, eio):
        sid = await eio.open_session()

        assert await eio.post(sid, "4test1\x1e4test2\x1e4test3") == (200, "ok")
        assert await eio.poll(sid) == (200, "4test1\x1e4test2\x1e4test3")

    async def test_sends_and_receives_a_payload_containing_plain_text_and_binary_packets(self, eio):
        sid = await eio.open_session()

        assert await eio.post(sid, "4hello\x1ebAQIDBA==") == (200, "ok")
        assert await eio.poll(sid) == (200, "4hello\x1ebAQIDBA==")

    async def test_closes_the_session_upon_invalid_packet_format(self, eio):
        sid = await eio.open_session()

        try:
            assert (await eio.post(sid, "abc"))[0] == 400
        except aiohttp.ClientError:
            pass  # the server may drop the request instead of answering it

        assert (await eio.poll(sid))[0] == 400

    async def test_closes_the_session_upon_duplicate_poll_requests(self, eio):
        sid = await eio.open_session()

        async def second_poll():
            await asyncio.sleep(0.005)
            return await eio.poll(sid, "&t=burst")

        first, second = await asyncio.gather(eio.poll(sid), second_poll())

        assert first == (200, "1")
        assert second[0] in (400, 500)
        assert (await eio.poll(sid))[0] == 400

    async def test_closes_the_session_upon_cancelled_polling_request(self, eio):
        sid = await eio.open_session()

        pending = asyncio.create_task(eio.poll(sid))
        await asyncio.sleep(0.005)
        pending.cancel()

        assert (await eio.poll(sid))[0] == 400


class TestMessageWebSocket:
    async def test_sends_and_receives_a_plain_text_packet(self, eio):
        socket = await eio.open_ws()
        await socket.recv()  # handshake

        await socket.send("4hello")

        assert await socket.recv() == "4hello"

    async def test_sends_and_receives_a_binary_packet(self, eio):
        socket = await eio.open_ws()
        await socket.recv()  # handshake

        await socket.send(bytes([1, 2, 3, 4]))

        assert await socket.recv() == bytes([1, 2, 3, 4])

    async def test_closes_the_session_upon_invalid_packet_format(self, eio):
        socket = await eio.open_ws()
        await socket.recv()  # handshake

        await socket.send("abc")

        assert await socket.wait_closed() < PROMPT_CLOSE


class TestHeartbeatHttpLongPolling:
    async def test_sends_ping_pong_packets(self, eio):
        sid = await eio.open_session()

        for _ in range(3):
            assert await eio.poll(sid) == (200, "2")
            assert (await eio.post(sid, "3"))[0] == 200

    async def test_closes_the_session_upon_ping_timeout(self, eio):
        sid = await eio.open_session()

        await asyncio.sleep(HEARTBEAT_DEADLINE + CLOSE_SLACK)

        assert (await eio.poll(sid))[0] == 400


class TestHeartbeatWebSocket:
    async def test_sends_ping_pong_packets(self, eio):
        socket = await eio.open_ws()
        await socket.recv()  # handshake

        for _ in range(3):
            assert await socket.recv() == "2"
            await socket.send("3")

    async def test_closes_the_session_upon_ping_timeout(self, eio):
        socket = await eio.open_ws()

        # Closed by the heartbeat: not before a ping went unanswered for pingTimeout.
        assert HEARTBEAT_DEADLINE - 0.1 < await socket.wait_closed() < WAIT


class TestCloseHttpLongPolling:
    async def test_forcefully_closes_the_session(self, eio):
        sid = await eio.open_session()

        poll, _ = await asyncio.gather(eio.poll(sid), eio.post(sid, "1"))

        assert poll == (200, "6")
        assert (await eio.poll(sid))[0] == 400


class TestCloseWebSocket:
    async def test_forcefully_closes_the_session(self, eio):
        socket = await eio.open_ws()
        await socket.recv()  # handshake

        await socket.send("1")

        await socket.wait_closed()


class TestUpgrade:
    async def test_successfully_upgrades_from_http_long_polling_to_websocket(self, eio):
        sid = await eio.open_session()
        socket = await eio.open_ws(f"EIO=4&transport=websocket&sid={sid}")

        await socket.send("2probe")
        assert await socket.recv() == "3probe"

        # a "noop" packet cleanly ends the HTTP long-polling request
        assert await eio.poll(sid) == (200, "6")

        await socket.send("5")
        await socket.send("4hello")
        assert await socket.recv() == "4hello"

    async def test_ignores_http_requests_with_same_sid_after_upgrade(self, eio):
        sid = await eio.open_session()
        socket = await eio.open_ws(f"EIO=4&transport=websocket&sid={sid}")
        await socket.send("2probe")
        await socket.recv()  # "3probe"
        await socket.send("5")

        assert (await eio.poll(sid))[0] == 400

        await socket.send("4hello")
        assert await socket.recv() == "4hello"

    async def test_ignores_websocket_connection_with_same_sid_after_upgrade(self, eio):
        sid = await eio.open_session()
        socket = await eio.open_ws(f"EIO=4&transport=websocket&sid={sid}")
        await socket.send("2probe")
        await socket.recv()  # "3probe"
        await socket.send("5")

        await eio.ws_closes(f"EIO=4&transport=websocket&sid={sid}")

        await socket.send("4hello")
        assert await socket.recv() == "4hello"
