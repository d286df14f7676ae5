"""Socket.IO v5 conformance, after the official test suite's 32 tests, against `/socket.io/`.

Classes mirror the suite's describe blocks (its Engine.IO part, then its Socket.IO part) and method
names its test titles. The server's namespaces "/" and "/custom" emit `auth` with the CONNECT payload,
answer `message` with `message-back` and ack `message-with-ack` with its arguments.
"""

import asyncio
import json

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


async def connect_main_namespace(sio):
    """A WebSocket connected to "/", past the Engine.IO and Socket.IO handshakes and `auth`."""
    socket = await sio.open_ws()
    await socket.recv()  # Engine.IO handshake
    await socket.send("40")
    await socket.recv()  # Socket.IO handshake
    await socket.recv()  # "auth" packet
    return socket


async def upgrade(sio, sid):
    """A WebSocket that probed and completed the upgrade of polling session `sid`."""
    socket = await sio.open_ws(f"EIO=4&transport=websocket&sid={sid}")
    await socket.send("2probe")
    assert await socket.recv() == "3probe"
    await socket.send("5")
    return socket


def parse_connect(data: str, prefix: str) -> None:
    assert data.startswith(prefix)
    handshake = json.loads(data[len(prefix):])
    assert set(handshake) == {"sid"}
    assert isinstance(handshake["sid"], str)


# -- Engine.IO protocol -------------------------------------------------------------------------


class TestEngineIOHandshakeHttpLongPolling:
    async def test_should_successfully_open_a_session(self, sio):
        status, content = await sio.fetch("EIO=4&transport=polling")

        assert status == 200
        assert content.startswith("0")
        value = parse_open(content)
        assert value["upgrades"] == ["websocket"]
        assert value["pingInterval"] == PING_INTERVAL_MS
        assert value["pingTimeout"] == PING_TIMEOUT_MS
        assert value["maxPayload"] == MAX_PAYLOAD

    async def test_should_fail_with_an_invalid_eio_query_parameter(self, sio):
        assert (await sio.fetch("transport=polling"))[0] == 400
        assert (await sio.fetch("EIO=abc&transport=polling"))[0] == 400

    async def test_should_fail_with_an_invalid_transport_query_parameter(self, sio):
        assert (await sio.fetch("EIO=4"))[0] == 400
        assert (await sio.fetch("EIO=4&transport=abc"))[0] == 400

    async def test_should_fail_with_an_invalid_request_method(self, sio):
        assert (await sio.fetch("EIO=4&transport=polling", "POST"))[0] == 400
        assert (await sio.fetch("EIO=4&transport=polling", "PUT"))[0] == 400


class TestEngineIOHandshakeWebSocket:
    async def test_should_successfully_open_a_session(self, sio):
        socket = await sio.open_ws()

        data = await socket.recv()

        assert data.startswith("0")
        value = parse_open(data)
        assert value["upgrades"] == []
        assert value["pingInterval"] == PING_INTERVAL_MS
        assert value["pingTimeout"] == PING_TIMEOUT_MS
        assert value["maxPayload"] == MAX_PAYLOAD

    async def test_should_fail_with_an_invalid_eio_query_parameter(self, sio):
        await sio.ws_closes("transport=websocket")
        await sio.ws_closes("EIO=abc&transport=websocket")

    async def test_should_fail_with_an_invalid_transport_query_parameter(self, sio):
        await sio.ws_closes("EIO=4")
        await sio.ws_closes("EIO=4&transport=abc")


class TestEngineIOHeartbeatHttpLongPolling:
    async def test_should_send_ping_pong_packets(self, sio):
        sid = await sio.open_session()

        for _ in range(3):
            assert await sio.poll(sid) == (200, "2")
            assert (await sio.post(sid, "3"))[0] == 200

    async def test_should_close_the_session_upon_ping_timeout(self, sio):
        sid = await sio.open_session()

        await asyncio.sleep(HEARTBEAT_DEADLINE + CLOSE_SLACK)

        assert (await sio.poll(sid))[0] == 400


class TestEngineIOHeartbeatWebSocket:
    async def test_should_send_ping_pong_packets(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # handshake

        for _ in range(3):
            assert await socket.recv() == "2"
            await socket.send("3")

    async def test_should_close_the_session_upon_ping_timeout(self, sio):
        socket = await sio.open_ws()

        # Closed by the heartbeat: not before a ping went unanswered for pingTimeout.
        assert HEARTBEAT_DEADLINE - 0.1 < await socket.wait_closed() < WAIT


class TestEngineIOCloseHttpLongPolling:
    async def test_should_forcefully_close_the_session(self, sio):
        sid = await sio.open_session()

        poll, _ = await asyncio.gather(sio.poll(sid), sio.post(sid, "1"))

        assert poll == (200, "6")
        assert (await sio.poll(sid))[0] == 400


class TestEngineIOCloseWebSocket:
    async def test_should_forcefully_close_the_session(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # handshake

        await socket.send("1")

        await socket.wait_closed()


class TestEngineIOUpgrade:
    async def test_should_successfully_upgrade_from_http_long_polling_to_websocket(self, sio):
        sid = await sio.open_session()
        socket = await sio.open_ws(f"EIO=4&transport=websocket&sid={sid}")

        await socket.send("2probe")
        assert await socket.recv() == "3probe"

        await socket.send("5")  # complete upgrade

    async def test_should_ignore_http_requests_with_same_sid_after_upgrade(self, sio):
        sid = await sio.open_session()
        await upgrade(sio, sid)

        assert (await sio.poll(sid))[0] == 400

    async def test_should_ignore_websocket_connection_with_same_sid_after_upgrade(self, sio):
        sid = await sio.open_session()
        await upgrade(sio, sid)

        await sio.ws_closes(f"EIO=4&transport=websocket&sid={sid}")


# -- Socket.IO protocol -------------------------------------------------------------------------


class TestSocketIOConnect:
    async def test_should_allow_connection_to_the_main_namespace(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # Engine.IO handshake

        await socket.send("40")

        parse_connect(await socket.recv(), "40")
        assert await socket.recv() == '42["auth",{}]'

    async def test_should_allow_connection_to_the_main_namespace_with_a_payload(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # Engine.IO handshake

        await socket.send('40{"token":"123"}')

        parse_connect(await socket.recv(), "40")
        assert await socket.recv() == '42["auth",{"token":"123"}]'

    async def test_should_allow_connection_to_a_custom_namespace(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # Engine.IO handshake

        await socket.send("40/custom,")

        parse_connect(await socket.recv(), "40/custom,")
        assert await socket.recv() == '42/custom,["auth",{}]'

    async def test_should_allow_connection_to_a_custom_namespace_with_a_payload(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # Engine.IO handshake

        await socket.send('40/custom,{"token":"abc"}')

        parse_connect(await socket.recv(), "40/custom,")
        assert await socket.recv() == '42/custom,["auth",{"token":"abc"}]'

    async def test_should_disallow_connection_to_an_unknown_namespace(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # Engine.IO handshake

        await socket.send("40/random")

        assert await socket.recv() == '44/random,{"message":"Invalid namespace"}'

    async def test_should_disallow_connection_with_an_invalid_handshake(self, sio):
        socket = await sio.open_ws()
        await socket.recv()  # Engine.IO handshake

        await socket.send("4abc")

        assert await socket.wait_closed() < PROMPT_CLOSE

    async def test_should_close_the_connection_if_no_handshake_is_received(self, sio):
        socket = await sio.open_ws()

        # By the heartbeat (0.5 s) or the connect timeout (1 s), whichever comes first.
        assert HEARTBEAT_DEADLINE - 0.1 < await socket.wait_closed() < WAIT


class TestSocketIODisconnect:
    async def test_should_disconnect_from_the_main_namespace(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send("41")

        assert await socket.recv() == "2"

    async def test_should_connect_then_disconnect_from_a_custom_namespace(self, sio):
        socket = await connect_main_namespace(sio)
        await socket.recv()  # ping

        await socket.send("40/custom")
        await socket.recv()  # Socket.IO handshake
        await socket.recv()  # auth packet

        await socket.send("41/custom")
        await socket.send('42["message","message to main namespace"]')

        assert await socket.recv() == '42["message-back","message to main namespace"]'


class TestSocketIOMessage:
    async def test_should_send_a_plain_text_packet(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send('42["message",1,"2",{"3":[true]}]')

        assert await socket.recv() == '42["message-back",1,"2",{"3":[true]}]'

    async def test_should_send_a_packet_with_binary_attachments(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
        await socket.send(bytes([1, 2, 3]))
        await socket.send(bytes([4, 5, 6]))

        assert await socket.recv_packets(3) == [
            '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            bytes([1, 2, 3]),
            bytes([4, 5, 6]),
        ]

    async def test_should_send_a_plain_text_packet_with_an_ack(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send('42456["message-with-ack",1,"2",{"3":[false]}]')

        assert await socket.recv() == '43456[1,"2",{"3":[false]}]'

    async def test_should_send_a_packet_with_binary_attachments_and_an_ack(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send(
            '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
        )
        await socket.send(bytes([1, 2, 3]))
        await socket.send(bytes([4, 5, 6]))

        assert await socket.recv_packets(3) == [
            '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            bytes([1, 2, 3]),
            bytes([4, 5, 6]),
        ]

    async def test_should_close_the_connection_upon_invalid_format_unknown_packet_type(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send("4abc")

        assert await socket.wait_closed() < PROMPT_CLOSE

    async def test_should_close_the_connection_upon_invalid_format_invalid_payload_format(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send("42{}")

        assert await socket.wait_closed() < PROMPT_CLOSE

    async def test_should_close_the_connection_upon_invalid_format_invalid_ack_id(self, sio):
        socket = await connect_main_namespace(sio)

        await socket.send('42abc["message-with-ack",1,"2",{"3":[false]}]')

        assert await socket.wait_closed() < PROMPT_CLOSE
