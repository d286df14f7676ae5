"""The socket.io-client bundle at /socket.io/..., as Socket.IO's own server serves it, beside Engine.IO."""

from __future__ import annotations

import json

import aiohttp

from tests.servers import fresh_sqlite, manage, start_daphne
from tests.web.conftest import ARTIFACTS, WEB_ENV
from web.socketio_client import PACKAGE_DIR


def installed_version() -> str:
    return json.loads((PACKAGE_DIR / "package.json").read_text())["version"]


async def test_min_bundle_is_served_with_its_version_as_etag(live_server):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{live_server.url}/socket.io/socket.io.min.js") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/javascript; charset=utf-8"
            assert resp.headers["Cache-Control"] == "public, max-age=0"
            etag = resp.headers["ETag"]
            assert etag == f'"{installed_version()}"'
            body = await resp.read()
        assert body == (PACKAGE_DIR / "dist" / "socket.io.min.js").read_bytes()
        for sent in (etag, "W/" + etag):
            async with session.get(f"{live_server.url}/socket.io/socket.io.min.js", headers={"If-None-Match": sent}) as resp:
                assert resp.status == 304
                assert resp.headers["ETag"] == etag


async def test_other_client_files_and_unknown_names(live_server):
    async with aiohttp.ClientSession() as session:
        for name, status, kind in [("socket.io.js", 200, "application/javascript"), ("socket.io.min.js.map", 200, "application/json"),
                                   ("socket.io.esm.min.js", 200, "application/javascript"),
                                   ("socket.io.msgpack.min.js", 404, None), ("socket.io.nope.js", 404, None)]:
            async with session.get(f"{live_server.url}/socket.io/{name}") as resp:
                assert resp.status == status, name
                if kind:
                    assert resp.headers["Content-Type"].startswith(kind), name
        async with session.post(f"{live_server.url}/socket.io/socket.io.min.js") as resp:
            assert resp.status in (403, 405)  # CSRF refuses it before require_safe would


async def test_engineio_still_owns_socketio_path_and_same_origin_pages_pass(live_server):
    host = f"127.0.0.1:{live_server.process.port}"
    async with aiohttp.ClientSession() as session:
        handshake = f"{live_server.url}/socket.io/?EIO=4&transport=polling"
        async with session.get(handshake, headers={"Origin": f"http://{host}"}) as resp:
            assert resp.status == 200
            assert (await resp.text()).startswith('0{"sid"')
        async with session.get(handshake, headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == 403


async def test_live_page_lists_the_pairs_and_loads_its_parts(live_server):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{live_server.url}/?pair=xlm/usdc") as resp:
            assert resp.status == 200
            page = await resp.text()
        assert 'data-pair="XLM_USDC"' in page
        assert '<script src="/socket.io/socket.io.min.js"></script>' in page
        for path in ("/static/web/live.js", "/static/web/live.css"):
            async with session.get(f"{live_server.url}{path}") as resp:
                assert resp.status == 200, path


async def test_live_page_offers_every_enabled_pair_watched_or_not(tmp_path, web_horizon_ready):
    """The picker lists the pairs a visitor may watch, not only those someone already watches
    (before: the feed's active pairs, so a second enabled pair nobody watched was neither listed
    nor openable: `?pair=` fell back to XLM_USDC)."""
    env = {**WEB_ENV, "STELLAR_HORIZON_URL": web_horizon_ready.url, "DATABASE_URL": fresh_sqlite(tmp_path)}
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", "from stellar_sdk import Keypair; from django.conf import settings; from market.models import MarketPair; "
           "MarketPair.objects.filter(name='ETH_USDC', network=settings.STELLAR_NETWORK)"  # seeded, its anchor unchosen
           ".update(enabled=True, base_issuer=Keypair.random().public_key)")
    server = start_daphne("tests.e2e.testapp:application", env, ARTIFACTS / "web-two-pairs.log")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/?pair=eth/usdc") as resp:
                assert resp.status == 200
                page = await resp.text()
        assert 'data-pair="ETH_USDC"' in page
        assert '<option value="ETH_USDC" selected>' in page and '<option value="XLM_USDC">' in page
    finally:
        server.stop()
