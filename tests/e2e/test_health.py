"""GET /health answers as the seed shows."""

import time


async def test_health(http, server):
    async with http.get(f"{server.url}/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert set(body) == {"status", "timestamp", "uptime", "version", "environment"}
    assert body["status"] == "healthy" and body["version"] == "1.0.0" and body["environment"] == "development"
    assert abs(body["timestamp"] - time.time() * 1000) < 5000 and body["uptime"] >= 0
