"""The servers the benchmark compares, how each is started, and how its producer is run.

Every server listens on a free loopback port, talks to the benchmark's own Redis, and logs to
artifacts/benchmarks/<name>.log. Galaxy runs as the full product: Redis channel layer, auth
checked (each client sends its own token), rate limits on (counted in Redis).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import BASE_ENV, PRODUCTION_HTTP, PRODUCTION_WS, ROOT, free_port

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
LOGS = ROOT / "artifacts" / "benchmarks"
ROOM = "market:XLM_USDC"
# The benchmark signs its clients' tokens with its own secret and issuer (HS256, as Supabase's
# legacy tokens); the Galaxy servers are started with the same two values.
JWT_SECRET = "galaxy-benchmark-secret-not-for-production"
SUPABASE_URL = "http://127.0.0.1:54321"
# All N clients come from 127.0.0.1: the per-address handshake limit (default 60 per minute)
# would refuse all but the first 60. The per-socket event limit stays at its default.
HANDSHAKES_ALLOWED = "1000000"
# How long a server may take to start answering (Django setup, migrations already done).
START_TIMEOUT = 60.0
# uvicorn as measured: uvloop, httptools; no access log (one line per connection is the
# logger's cost, not the server's); no lifespan (Channels' router does not speak it). `ws` is
# the WebSocket implementation, per server below.
UVICORN_FLAGS = ["--loop", "uvloop", "--lifespan", "off", "--no-access-log", "--log-level", "warning",
                 # as bin/serve-production (no compression: as Node's server too)
                 "--no-proxy-headers", "--ws-per-message-deflate", "false", "--ws-ping-interval", "0"]


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


@dataclass
class Server:
    name: str
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def wait_ready(self, workers: int) -> None:
        """Until an Engine.IO polling handshake succeeds (the port alone may be bound by us)."""
        url = f"http://127.0.0.1:{self.port}/socket.io/?EIO=4&transport=polling"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {p.returncode}; see {LOGS / self.name}.log")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        time.sleep(2.0 if workers > 1 else 0.2)  # the other workers start alike
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {START_TIMEOUT}s")

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)  # its own session: uvicorn's workers go too
        for p in self.processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _spawn(server: Server, command: list[str], env: dict[str, str], pass_fds=()) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / f"{server.name}.log").open("ab")
    server.processes.append(subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        pass_fds=pass_fds, start_new_session=True,
    ))


def _shared_listener() -> socket.socket:
    """A listening socket the harness binds and every worker process accepts on."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def galaxy_env(redis_url: str, database_url: str) -> dict[str, str]:
    return {
        **BASE_ENV, "NODE_ENV": "development", "DJANGO_DEBUG": "false", "LOG_LEVEL": "warn",
        "REDIS_URL": redis_url, "DATABASE_URL": database_url,
        "SUPABASE_URL": SUPABASE_URL, "SUPABASE_JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_HANDSHAKES": HANDSHAKES_ALLOWED,
    }


def start_galaxy_daphne(name, env, workers, cpus) -> Server:
    """daphne has no workers option: W processes accept on one socket the harness bound."""
    listener = _shared_listener()
    server = Server(name, listener.getsockname()[1])
    for _ in range(workers):
        command = [sys.executable, "-m", "daphne", "-v", "0", "--fd", str(listener.fileno()), "galaxy.asgi:application"]
        _spawn(server, pinned(command, cpus), env, pass_fds=(listener.fileno(),))
    listener.close()
    return server


def _start_uvicorn(name, app, env, workers, cpus, ws, http="httptools") -> Server:
    server = Server(name, free_port())
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(server.port),
               "--workers", str(workers), "--http", http, "--ws", ws, *UVICORN_FLAGS]
    _spawn(server, pinned(command, cpus), env)
    return server


def galaxy_uvicorn(ws: str):
    def start(name, env, workers, cpus) -> Server:
        return _start_uvicorn(name, "galaxy.asgi:application", env, workers, cpus, ws, PRODUCTION_HTTP)
    return start


def start_python_socketio(name, env, workers, cpus) -> Server:
    pysio_env = {"REDIS_URL": env["REDIS_URL"], "JWT_SECRET": env["SUPABASE_JWT_SECRET"],
                 "JWT_ISSUER": f"{env['SUPABASE_URL']}/auth/v1"}
    return _start_uvicorn(name, "tests.benchmarks.pysio_server:app", pysio_env, workers, cpus, "websockets-sansio")


def start_node(name, env, workers, cpus) -> Server:
    listener = _shared_listener()
    server = Server(name, listener.getsockname()[1])
    for _ in range(workers):
        command = ["node", str(NODE_DIR / "server.mjs"), str(listener.fileno()), env["REDIS_URL"],
                   env["SUPABASE_JWT_SECRET"], f"{env['SUPABASE_URL']}/auth/v1"]
        _spawn(server, pinned(command, cpus), {}, pass_fds=(listener.fileno(),))
    listener.close()
    return server


def producer_command(kind: str, redis_url: str, count: int, rate: float) -> list[str]:
    if kind == "node":
        return ["node", str(NODE_DIR / "producer.mjs"), redis_url, ROOM, str(count), str(rate)]
    return [sys.executable, "-m", "tests.benchmarks.producer", kind, redis_url, ROOM, str(count), str(rate)]


# name -> (how to start it, which producer feeds it)
SERVERS = {
    "galaxy-daphne": (start_galaxy_daphne, "galaxy"),
    # As bin/serve-production runs it: uvicorn's sans-I/O protocol with the shared-frame writer.
    "galaxy-uvicorn": (galaxy_uvicorn(PRODUCTION_WS), "galaxy"),
    # uvicorn's own WebSocket implementations, measured against each other (N=500, 20/s): the
    # sans-I/O websockets one cost the least CPU per message, the legacy one (deprecated) the most.
    "galaxy-uvicorn-sansio": (galaxy_uvicorn("websockets-sansio"), "galaxy"),
    "galaxy-uvicorn-legacy": (galaxy_uvicorn("websockets"), "galaxy"),
    "galaxy-uvicorn-wsproto": (galaxy_uvicorn("wsproto"), "galaxy"),
    "node": (start_node, "node"),
    "python-socketio": (start_python_socketio, "python-socketio"),
}
PEERS = ("node", "python-socketio")
