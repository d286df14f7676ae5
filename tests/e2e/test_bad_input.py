"""Bad input at every entry point gets the error the spec gives, and nobody else notices.

Each test runs beside a `bystander`: a well-behaved client subscribed to market:XLM_USDC that
must still receive a room event and answer a ping after the bad input (checked at teardown).
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import socketio

from tests.e2e.conftest import MAX_BUFFER
from tests.servers import manage

pytestmark = pytest.mark.usefixtures("bystander")


def eio_url(server, **params) -> str:
    query = {"EIO": "4", "transport": "polling", **params}
    return f"{server.url}/socket.io/?" + "&".join(f"{k}={v}" for k, v in query.items() if v is not None)


async def open_polling(http, server) -> str:
    async with http.get(eio_url(server)) as resp:
        assert resp.status == 200
        return json.loads((await resp.text())[1:])["sid"]


async def error_of(resp) -> tuple[int, dict]:
    return resp.status, json.loads(await resp.text())


async def open_ws(http, server, *, connect: bool = True):
    ws = await http.ws_connect(eio_url(server, transport="websocket").replace("http", "ws", 1))
    assert (await ws.receive_str()).startswith("0{")
    if connect:
        await ws.send_str("40")
        assert (await ws.receive_str()).startswith('40{"sid":')
        assert (await ws.receive_str()).startswith('42["connected",')
    return ws


async def closed_within(ws, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            msg = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            return False
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return True
    return False


# -- Engine.IO handshake and polling ---------------------------------------------------------


@pytest.mark.parametrize(
    "params, method, expected",
    [
        ({"EIO": "3"}, "GET", {"code": 5, "message": "Unsupported protocol version"}),
        ({"EIO": None}, "GET", {"code": 5, "message": "Unsupported protocol version"}),
        ({"transport": "carrier-pigeon"}, "GET", {"code": 0, "message": "Transport unknown"}),
        ({"transport": None}, "GET", {"code": 0, "message": "Transport unknown"}),
        ({"transport": "websocket"}, "GET", {"code": 3, "message": "Bad request"}),
        ({}, "POST", {"code": 2, "message": "Bad handshake method"}),
        ({"sid": "no-such-sid"}, "GET", {"code": 1, "message": "Session ID unknown"}),
        ({"sid": "no-such-sid"}, "POST", {"code": 1, "message": "Session ID unknown"}),
    ],
)
async def test_bad_polling_requests_get_engineio_errors(http, server, params, method, expected):
    async with http.request(method, eio_url(server, **params), data="4x") as resp:
        assert await error_of(resp) == (400, expected)


@pytest.mark.parametrize("body", [b"abc", b"4hello\x1ebnot*base64", b"\xff\xfe", b"", b"4ok\x1e"])
async def test_malformed_post_body_is_400_and_closes_that_session(http, server, body):
    sid = await open_polling(http, server)
    async with http.post(eio_url(server, sid=sid), data=body) as resp:
        assert await error_of(resp) == (400, {"code": 3, "message": "Bad request"})
    async with http.get(eio_url(server, sid=sid)) as resp:
        assert await error_of(resp) == (400, {"code": 1, "message": "Session ID unknown"})


async def test_second_concurrent_get_is_400_and_closes_the_session(http, server):
    sid = await open_polling(http, server)
    first = asyncio.ensure_future(http.get(eio_url(server, sid=sid)))
    await asyncio.sleep(0.1)
    async with http.get(eio_url(server, sid=sid)) as resp:
        assert await error_of(resp) == (400, {"code": 3, "message": "Bad request"})
    async with await first as resp:
        assert (resp.status, await resp.text()) == (200, "1")
    async with http.get(eio_url(server, sid=sid)) as resp:
        assert resp.status == 400


async def test_a_long_poll_the_client_aborts_ends_its_session_at_once(http, server):
    sid = await open_polling(http, server)
    waiting = asyncio.ensure_future(http.get(eio_url(server, sid=sid)))
    await asyncio.sleep(0.1)
    waiting.cancel()  # the client goes away: aiohttp closes the connection mid-request
    await asyncio.sleep(0.3)  # well before the first ping (1 s) would have answered the poll
    async with http.get(eio_url(server, sid=sid)) as resp:
        # Not "Bad request" (code 3, a second GET while the first still waits): the session is gone.
        assert await error_of(resp) == (400, {"code": 1, "message": "Session ID unknown"})


async def test_oversized_post_is_413_and_closes_that_session(http, server):
    sid = await open_polling(http, server)
    async with http.post(eio_url(server, sid=sid), data=b"4" + b"x" * MAX_BUFFER) as resp:
        assert resp.status == 413
    async with http.get(eio_url(server, sid=sid)) as resp:
        assert await error_of(resp) == (400, {"code": 1, "message": "Session ID unknown"})


async def test_post_at_the_size_limit_is_accepted(http, server):
    sid = await open_polling(http, server)
    async with http.post(eio_url(server, sid=sid), data=b"3" + b"x" * (MAX_BUFFER - 1)) as resp:
        assert (resp.status, await resp.text()) == (200, "ok")


async def test_get_after_upgrade_is_400_but_session_lives(http, server):
    sid = await open_polling(http, server)
    ws = await http.ws_connect(eio_url(server, transport="websocket", sid=sid).replace("http", "ws", 1))
    await ws.send_str("2probe")
    assert await ws.receive_str() == "3probe"
    await ws.send_str("5")
    await asyncio.sleep(0.05)
    async with http.get(eio_url(server, sid=sid)) as resp:
        assert await error_of(resp) == (400, {"code": 3, "message": "Bad request"})
    await ws.send_str("40")
    assert (await ws.receive_str()).startswith('40{"sid":')
    await ws.close()


async def test_websocket_with_unknown_sid_is_closed(http, server):
    ws = await http.ws_connect(eio_url(server, transport="websocket", sid="nope").replace("http", "ws", 1))
    assert await closed_within(ws, 1)


# -- WebSocket frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    ["x", "", "9", "4abc", "42{}", '42abc["x"]', "41x", "44{}", '451-["a",{"_placeholder":true,"num":5}]'],
)
async def test_malformed_frames_close_that_connection_at_once(http, server, frame):
    ws = await open_ws(http, server)
    await ws.send_str(frame)
    if frame.startswith("451-"):
        await ws.send_bytes(b"\x01")
    assert await closed_within(ws, 0.3)


async def test_binary_frame_nobody_expects_closes_the_connection(http, server):
    ws = await open_ws(http, server)
    await ws.send_bytes(b"\x01\x02")
    assert await closed_within(ws, 0.3)


async def test_binary_attachments_beyond_the_buffer_size_in_all_close_that_connection(http, server):
    """Each attachment is a message within maxHttpBufferSize; together they are bounded too, or
    a packet announcing 1,000 could hold a gigabyte. Up to the bound, the packet is handled."""
    half = MAX_BUFFER // 2
    two = '452-["ping",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    ws = await open_ws(http, server)
    await ws.send_str(two)
    await ws.send_bytes(b"x" * half)
    await ws.send_bytes(b"x" * half)
    assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith('42["pong",')
    await ws.send_str(two)
    await ws.send_bytes(b"x" * half)
    await ws.send_bytes(b"x" * (half + 1))
    assert await closed_within(ws, 1)


async def test_oversized_websocket_message_closes_that_connection(http, server):
    ws = await open_ws(http, server)
    await ws.send_str('42["ping","' + "x" * MAX_BUFFER + '"]')
    assert await closed_within(ws, 1)


async def test_a_websocket_on_a_path_nothing_serves_is_refused(http, server):
    url = f"{server.url}/custom/?EIO=4&transport=websocket".replace("http", "ws", 1)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url)
    assert refused.value.status == 403  # not a 500 (and a traceback in the log)


async def test_websocket_handshake_with_bad_query_is_refused(http, server):
    for params in ({"EIO": "3"}, {"transport": "polling"}):
        url = eio_url(server, **{"transport": "websocket", **params}).replace("http", "ws", 1)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(url)


async def test_no_socketio_connect_within_connection_timeout_closes(http, server):
    ws = await open_ws(http, server, connect=False)
    started = time.monotonic()
    # CONNECTION_TIMEOUT=2000 in these servers; answer pings so only the CONNECT deadline applies.
    while True:
        msg = await asyncio.wait_for(ws.receive(), 4)
        if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
            await ws.send_str("3")
            continue
        break
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) or msg.data == "1"
    assert 1.5 <= time.monotonic() - started <= 3.5


# -- CORS and Origin -------------------------------------------------------------------------


async def test_polling_responses_carry_their_length_not_chunked_encoding(http, server):
    async with http.get(eio_url(server)) as resp:
        body = await resp.read()
        assert resp.headers["Content-Length"] == str(len(body)) and "Transfer-Encoding" not in resp.headers


async def test_polling_from_an_allowed_origin_gets_cors_headers(http, server):
    async with http.get(eio_url(server), headers={"Origin": "http://allowed.example"}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"


async def test_polling_from_a_disallowed_origin_is_403(http, server):
    async with http.get(eio_url(server), headers={"Origin": "http://evil.example"}) as resp:
        assert await error_of(resp) == (403, {"code": 4, "message": "Forbidden"})
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_preflight(http, server):
    headers = {"Origin": "http://allowed.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type"}
    async with http.options(eio_url(server), headers=headers) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert resp.headers["Access-Control-Allow-Headers"] == "content-type"
    headers["Origin"] = "http://evil.example"
    async with http.options(eio_url(server), headers=headers) as resp:
        assert resp.status == 403


async def test_websocket_origin_is_checked_and_absent_origin_allowed(http, server):
    url = eio_url(server, transport="websocket").replace("http", "ws", 1)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(url, headers={"Origin": "http://evil.example"})
    ws = await http.ws_connect(url, headers={"Origin": "http://allowed.example"})
    assert (await ws.receive_str()).startswith("0{")
    await ws.close()
    ws = await http.ws_connect(url)  # no Origin: a non-browser client
    assert (await ws.receive_str()).startswith("0{")
    await ws.close()


# -- Socket.IO events ------------------------------------------------------------------------


@pytest.fixture
async def client(server):
    sio = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue = asyncio.Queue()
    auth_errors: asyncio.Queue = asyncio.Queue()
    sio.on("error", errors.put_nowait)
    sio.on("auth_error", auth_errors.put_nowait)
    await sio.connect(server.url, transports=["websocket"])
    sio.errors, sio.auth_errors = errors, auth_errors
    yield sio
    await sio.disconnect()


@pytest.mark.parametrize(
    "event, data, code",
    [
        ("subscribe", {"room": 123}, "invalid_payload"),
        ("subscribe", {}, "invalid_payload"),
        ("subscribe", ["market:XLM_USDC"], "invalid_payload"),
        ("subscribe", "market:XLM_USDC", "invalid_payload"),
        ("subscribe", {"room": "foo:bar"}, "invalid_room"),
        ("subscribe", {"room": "market:xlm_usdc"}, "invalid_room"),
        ("subscribe", {"room": "x" * 1000}, "invalid_payload"),
        ("subscribe", {"room": "user:someone-else"}, "auth_required"),
        ("subscribe", {"room": "wallet:w1"}, "auth_required"),
        ("unsubscribe", {"room": "nope"}, "invalid_room"),
        ("market:subscribe", {"pairs": "XLM_USDC"}, "invalid_payload"),
        ("market:subscribe", {"pairs": []}, "invalid_payload"),
        ("market:subscribe", {"pairs": ["not a pair"]}, "invalid_payload"),
        ("transaction:subscribe", {"walletId": "w1"}, "auth_required"),
        ("transaction:subscribe", {"walletId": "../../etc"}, "invalid_payload"),
        ("automation:subscribe", {"automationIds": ["a1"]}, "auth_required"),
        ("no:such_event", {}, "unknown_event"),
        ("x" * 10_000, {}, "unknown_event"),
        ("_private", {}, "unknown_event"),
        ("authenticate", {"token": "forged"}, "auth_failed"),
        ("authenticate", {"token": 42}, "invalid_payload"),
    ],
)
async def test_bad_events_are_answered_through_the_ack(client, event, data, code):
    reply = await client.call(event, data, timeout=5)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]


async def test_bad_events_without_ack_get_an_error_event(client):
    await client.emit("subscribe", {"room": "foo:bar"})
    error = await asyncio.wait_for(client.errors.get(), 5)
    assert error["event"] == "subscribe" and error["code"] == "invalid_room"
    await client.emit("no:such_event", {})
    error = await asyncio.wait_for(client.errors.get(), 5)
    assert error == {"event": "no:such_event", "code": "unknown_event", "message": "unknown event 'no:such_event'"}


async def test_authenticate_with_a_forged_token_answers_auth_error(client):
    await client.emit("authenticate", {"token": "anything"})
    assert await asyncio.wait_for(client.auth_errors.get(), 5) == {"error": "malformed token"}


async def test_events_with_odd_argument_shapes_get_answers_and_the_socket_lives(http, server):
    ws = await open_ws(http, server)
    frames = ['421["subscribe"]', '422["subscribe",null]', '423["subscribe",1,2,3]', '424["ping",[[[[]]]]]']
    for frame in frames:
        await ws.send_str(frame)
    replies = {}
    while len(replies) < len(frames):
        text = await asyncio.wait_for(ws.receive_str(), 5)
        if text.startswith("43"):
            ack_id = int(text[2])
            replies[ack_id] = json.loads(text[3:])[0]
    assert [replies[n]["ok"] for n in (1, 2, 3, 4)] == [False, False, False, True]
    assert {replies[n]["error"]["code"] for n in (1, 2, 3)} == {"invalid_payload"}
    await ws.close()


async def test_an_event_name_with_a_lone_surrogate_is_answered_on_both_transports(http, server):
    """`42["\\ud800"]` is valid JSON whose event name UTF-8 cannot carry: the `error` event that
    echoes it escapes it (as JSON.stringify does) instead of failing to send, and a packet that
    came with it is still answered."""
    def events(texts: list[str]) -> list:
        return [json.loads(p[2:]) for text in texts for p in text.split("\x1e") if p.startswith("42")]

    ws = await open_ws(http, server)
    await ws.send_str('42["\\ud800"]')
    await ws.send_str('42["ping",{}]')
    error, pong = events([await asyncio.wait_for(ws.receive_str(), 5) for _ in range(2)])
    assert error[0] == "error" and error[1]["event"] == "\ud800" and error[1]["code"] == "unknown_event"
    assert pong[0] == "pong"
    await ws.close()

    sid = await open_polling(http, server)
    async with http.post(eio_url(server, sid=sid), data='40\x1e42["\\ud800"]\x1e42["ping",{}]') as resp:
        assert resp.status == 200
    got = []
    while not any(e[0] == "pong" for e in events(got)):
        async with http.get(eio_url(server, sid=sid)) as resp:
            assert resp.status == 200
            got.append(await resp.text())
    answers = [e for e in events(got) if e[0] in ("error", "pong")]
    assert [e[0] for e in answers] == ["error", "pong"]
    assert answers[0][1]["event"] == "\ud800" and answers[0][1]["code"] == "unknown_event"


# -- REST ------------------------------------------------------------------------------------


async def bearer(server, user: str = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d") -> dict:
    # In a thread: a manage.py run takes seconds, and the bystander must answer its pings meanwhile.
    token = (await asyncio.to_thread(manage, server.env, "mint_token", "--user", user, "--ttl", "600")).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


async def test_rest_bodies_it_cannot_take_are_json_4xx_never_500_or_html(http, server):
    auth = await bearer(server)
    as_json = {**auth, "Content-Type": "application/json"}
    deep = '{"name":"x","triggerParams":' + "[" * 5000 + "]" * 5000 + "}"
    async with http.post(f"{server.url}/api/automations/", data=deep, headers=as_json) as resp:
        assert resp.status == 400 and "nested too deeply" in (await resp.json())["detail"]
    # A lone surrogate in a choice field, which DRF's error echoes.
    async with http.post(f"{server.url}/api/automations/", data='{"triggerType":"\\ud800"}', headers=as_json) as resp:
        assert resp.status == 400 and "\ud800" in (await resp.json())["triggerType"][0]
    async with http.post(f"{server.url}/api/transactions/", data=b'{"x":"' + b"y" * 3_000_000 + b'"}', headers=as_json) as resp:
        assert resp.status == 413 and (await resp.json())["detail"]
    form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
    async with http.post(f"{server.url}/api/automations/", data="&".join(f"f{i}=1" for i in range(1500)), headers=form) as resp:
        assert resp.status == 400 and "DATA_UPLOAD_MAX_NUMBER_FIELDS" in (await resp.json())["detail"]


async def test_rest_paths_and_methods_it_does_not_serve_are_json(http, server):
    for method, path in (("GET", "/api/nonexistent"), ("GET", "/api/"), ("GET", "/api/automations"), ("POST", "/api/nope")):
        async with http.request(method, f"{server.url}{path}") as resp:
            assert (resp.status, await resp.json()) == (404, {"code": "not_found", "message": "no such endpoint"}), path
    async with http.post(f"{server.url}/metrics") as resp:
        assert resp.status == 405
    for path in ("/api/schema/", "/api/docs/"):  # public: a garbled token sent along does not matter
        async with http.get(f"{server.url}{path}", headers={"Authorization": "Bearer not.a.token"}) as resp:
            assert resp.status == 200, path


async def test_a_signed_token_whose_subject_is_no_user_id_is_refused_by_rest_too(http, server):
    async with http.get(f"{server.url}/api/automations/", headers=await bearer(server, "x" * 300)) as resp:
        assert resp.status == 401 and "not a valid user id" in (await resp.json())["detail"]
