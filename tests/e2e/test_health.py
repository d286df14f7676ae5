"""GET /health answers as the seed shows, with its checks; /metrics as the seed shows, safely."""

import asyncio
import time

import aiohttp
import socketio

from tests.e2e.conftest import emit_via_server
from tests.servers import manage


async def test_health(http, server):
    async with http.get(f"{server.url}/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert set(body) == {"status", "timestamp", "uptime", "version", "environment", "checks"}
    assert body["version"] == "1.0.0" and body["environment"] == "development"
    assert abs(body["timestamp"] - time.time() * 1000) < 5000 and body["uptime"] >= 0
    if server.layer == "redis":
        # With Redis the market feed is Celery's, and no beat runs beside these servers.
        assert body["checks"] == {"database": "ok", "redis": "ok", "market_feed": "failed: no Celery beat tick seen yet"}
        assert body["status"] == "degraded"
    else:  # the embedded default runs the feed in the server process
        assert body["checks"] == {"database": "ok", "market_feed": "ok"}
        assert body["status"] == "healthy"


async def test_health_is_unhealthy_503_when_the_database_is_gone(tmp_path):
    from tests.e2e.conftest import ARTIFACTS, E2E_ENV
    from tests.servers import start_daphne

    env = {**E2E_ENV, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/no_such_database_here"}
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "e2e-no-database.log")
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/health") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["status"] == "unhealthy" and body["checks"]["database"].startswith("failed")
    finally:
        server.stop()


async def metrics(http, server, token=None, accept="application/json"):
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.get(f"{server.url}/metrics", headers=headers) as resp:
        assert resp.status == 200
        return await (resp.json() if accept == "application/json" else resp.text())


async def test_metrics_count_connections_and_rooms_and_hide_private_rooms(http, server):
    user = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    token = manage(server.env, "mint_token", "--user", user).stdout.strip()
    admin = manage(server.env, "mint_token", "--user", "admin-1", "--permissions", "admin").stdout.strip()
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"], auth={"token": token})
    await client.call("subscribe", {"room": "market:ETH_USDC"}, timeout=5)
    await asyncio.sleep(0.2)

    body = await metrics(http, server)
    assert set(body) >= {"server", "connections", "rooms", "events"}
    assert body["connections"]["total"] >= 1 and body["connections"]["authenticated"] >= 1
    assert set(body["server"]) >= {"uptime", "memory", "cpu", "environment", "version"}
    assert set(body["events"]) >= {"queueSize", "maxQueueSize", "oldestItem"}
    rooms = {entry["room"]: entry["members"] for entry in body["rooms"]["stats"]}
    assert rooms.get("market:ETH_USDC", 0) >= 1
    assert f"user:{user}" not in rooms and rooms.get("user:*", 0) >= 1  # no private names

    admin_rooms = {e["room"] for e in (await metrics(http, server, token=admin))["rooms"]["stats"]}
    assert f"user:{user}" in admin_rooms

    assert set(body) >= {"recovery", "rateLimits", "latency", "market"}
    assert body["market"]["requestsPerHour"] == 3600  # the feed's budget, from the market app
    await emit_via_server(server, "market:ETH_USDC", "market:price_update", {"n": 1})
    for _ in range(100):  # the fan-out records it when the layer hands it over: soon, not at once
        latency = (await metrics(http, server))["latency"]
        if any(node["count"] >= 1 and node["p99Ms"] is not None for node in latency.values()):
            break
        await asyncio.sleep(0.1)
    assert any(node["count"] >= 1 and node["p99Ms"] is not None for node in latency.values())

    text = await metrics(http, server, accept="text/plain")
    for name in ("galaxy_connections", "galaxy_event_queue_size", "galaxy_recovered_total",
                 "galaxy_rate_limited_events_total", "galaxy_fanout_latency_p99_seconds", "galaxy_horizon_requests_budget"):
        assert f"# TYPE {name} " in text, name
    await client.disconnect()


async def test_the_http_api_answers_allowed_origins_with_cors_headers_as_socketio_does(http, server):
    """ALLOWED_ORIGINS is the server's, not only /socket.io/'s: a dashboard on an allowed origin
    reads /health and /metrics and may call /api/ with its bearer token (a preflight first)."""
    # /api/auth/me without a token: its 401 readable by the page too
    # The client bundles too: a page imports the ES module one with a CORS request.
    for path, status in (("/health", 200), ("/metrics", 200), ("/metrics/prometheus", 200), ("/api/market/feed", 200),
                         ("/api/auth/me", 401), ("/socket.io/socket.io.esm.min.js", 200)):
        async with http.get(f"{server.url}{path}", headers={"Origin": "http://allowed.example"}) as resp:
            assert resp.status == status, path
            assert resp.headers["Access-Control-Allow-Origin"] == "http://allowed.example", path
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        async with http.get(f"{server.url}{path}", headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == status and "Access-Control-Allow-Origin" not in resp.headers, path
    preflight = {"Origin": "http://allowed.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    async with http.options(f"{server.url}/api/auth/me", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
        assert {"GET", "POST", "PATCH", "DELETE"} <= {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
        assert resp.headers["Access-Control-Allow-Headers"] == "authorization"
        assert resp.headers["Vary"] == "Origin, Access-Control-Request-Headers"  # both shape the answer
    async with http.options(f"{server.url}/api/auth/me", headers={**preflight, "Origin": "http://evil.example"}) as resp:
        assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    # The admin's cookie sessions stay same-origin only.
    async with http.get(f"{server.url}/admin/login/", headers={"Origin": "http://allowed.example"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
