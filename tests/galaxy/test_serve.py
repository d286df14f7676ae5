"""`manage.py serve`, the embedded default's server: the process starts its own work (the
in-process transaction watcher, market feed, automation engine and sweeps) as soon as it runs,
not at its first request (daphne sends no ASGI lifespan events)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.horizon.server import HorizonThread
from tests.servers import BASE_ENV, ROOT, fresh_sqlite, free_port, manage, wait_for_port
from tests.transactions.conftest import SERVER_ENV, make_wallets

ARTIFACTS = ROOT / "artifacts"


async def test_the_embedded_server_follows_wallets_before_anyone_reaches_it(tmp_path):
    horizon = HorizonThread().start()
    port = free_port()
    env = {**SERVER_ENV, "STELLAR_HORIZON_URL": horizon.url, "DATABASE_URL": fresh_sqlite(tmp_path),
           "WEBSOCKET_HOST": "127.0.0.1", "WEBSOCKET_PORT": str(port)}
    process = None
    try:
        manage(env, "migrate", "--noinput")
        wallet = make_wallets(env, {"alice": "7a1c2e3f-4b5d-4c6e-8f70-a1b2c3d4e5f6"})["alice"]
        log = ARTIFACTS / f"serve-{os.getpid()}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=ROOT, env={**os.environ, **BASE_ENV, **env},
                                   stdout=log.open("wb"), stderr=subprocess.STDOUT)
        wait_for_port(port, process)  # a TCP connect: no request reaches the application
        # The watcher's first pass asks Horizon for the wallet's transactions.
        await horizon.served(f"/accounts/{wallet['key']}/transactions", timeout=20)
    finally:
        if process is not None:
            process.terminate()
            process.wait(15)
        horizon.stop()
