"""The conformance server (`python -m tests.conformance PORT`) as a session fixture, on a free port."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conformance.client import Endpoint
from tests.servers import start_uvicorn

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Django and daphne start in about a second here; the rest is headroom for a loaded CI machine.
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"conformance server exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"conformance server did not answer on port {port}:\n{log.read_text()}")


@pytest.fixture(scope="session", params=["daphne", "uvicorn"])
def server_url(request, tmp_path_factory):
    """The suites run against daphne (manage.py runserver's server) and against production's
    uvicorn with our WebSocket protocol, which answers plain upgrades itself."""
    if request.param == "uvicorn":
        server = start_uvicorn("tests.conformance.asgi:application", {"DJANGO_SETTINGS_MODULE": "tests.conformance.settings"},
                               tmp_path_factory.mktemp("conformance") / "uvicorn.log")
        yield server.url
        server.stop()
        return
    port = free_port()
    log = tmp_path_factory.mktemp("conformance") / "server.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.conformance.settings"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.conformance", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(process, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def eio(http, server_url):
    """The bare Engine.IO echo endpoint."""
    endpoint = Endpoint(http, server_url, "/engine.io/")
    yield endpoint
    await endpoint.close()


@pytest.fixture
async def sio(http, server_url):
    """The Socket.IO endpoint."""
    endpoint = Endpoint(http, server_url, "/socket.io/")
    yield endpoint
    await endpoint.close()
