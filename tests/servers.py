"""Start and stop real server processes for the tests (daphne on a free loopback port)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
BASE_ENV = {"DJANGO_SETTINGS_MODULE": "galaxy.settings", "GALAXY_ENV_FILE": "/nonexistent"}


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS` with `env` (e.g. the server's DATABASE_URL); fails loudly."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **BASE_ENV, **env},
        capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def fresh_sqlite(directory: Path) -> str:
    return f"sqlite:///{directory / f'galaxy-{secrets.token_hex(4)}.sqlite3'}"


def fresh_postgres() -> tuple[str, callable]:
    """A new empty PostgreSQL database, and the function that drops it."""
    import psycopg

    name = f"galaxy_test_{secrets.token_hex(4)}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{POSTGRES_URL}/{name}", drop


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports. Each stays bound until all are chosen: two free_port() calls
    in a row can return the same port (CI once started the demo's Horizon and server on one)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


@dataclass
class ServerProcess:
    url: str
    port: int
    process: subprocess.Popen
    log: Path
    env: dict[str, str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_daphne(app: str, env: dict[str, str], log: Path, port: int | None = None) -> ServerProcess:
    """daphne serving `app` on `port` (a free one if None: a restart passes the old one)."""
    port = port or free_port()
    return _start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app], port, env, log)


# bin/serve-production's protocols: uvicorn's sans-I/O WebSocket one with the shared-frame
# writer, and httptools' HTTP one recording its server for handed-over WebSockets.
PRODUCTION_WS = "realtime.transports.uvicorn_websocket:WebSocketProtocol"
PRODUCTION_HTTP = "realtime.transports.uvicorn_http:HttpToolsProtocol"


def start_uvicorn(app: str, env: dict[str, str], log: Path) -> ServerProcess:
    """The production server, flags as bin/serve-production (one worker)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
               "--loop", "uvloop", "--http", PRODUCTION_HTTP, "--ws", PRODUCTION_WS, "--ws-per-message-deflate", "false", "--ws-ping-interval", "0",
               "--ws-max-size", env.get("MAX_HTTP_BUFFER_SIZE", "1000000"), "--no-proxy-headers"]
    return _start(command, port, env, log)


def _start(command: list[str], port: int, env: dict[str, str], log: Path) -> ServerProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **BASE_ENV, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process)
    return ServerProcess(f"http://127.0.0.1:{port}", port, process, log, env)


# How long a Celery worker may take to answer its first ping (Django setup, broker connection).
CELERY_READY_SECONDS = 60


def start_celery_worker(env: dict[str, str], *, name: str, log: Path, beat_schedule: Path | None = None) -> subprocess.Popen:
    """A real Celery worker (`--pool=solo`, named `name@host`, on the queue CELERY_TASK_DEFAULT_QUEUE
    of `env`, with beat when `beat_schedule` is given); returns once it answers a ping."""
    from celery import Celery

    log.parent.mkdir(parents=True, exist_ok=True)
    beat = ["-B", "-s", str(beat_schedule)] if beat_schedule is not None else []
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "galaxy", "worker", *beat, "--pool=solo",
             "-Q", env["CELERY_TASK_DEFAULT_QUEUE"], "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=ROOT, env={**os.environ, **BASE_ENV, **env}, stdout=out, stderr=subprocess.STDOUT,
        )
    probe = Celery(broker=env["CELERY_BROKER_URL"])
    try:
        deadline = time.monotonic() + CELERY_READY_SECONDS
        while not probe.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5, limit=1):
            if worker.poll() is not None or time.monotonic() > deadline:
                stop_process(worker)
                raise RuntimeError(f"celery worker {name} not ready (exit code {worker.poll()}):\n{log.read_text()[-3000:]}")
    finally:
        probe.close()
    return worker


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def forget_run(*url_patterns: tuple[str, str]) -> None:
    """Delete a test run's keys from the shared Redis: (Redis URL, key pattern) pairs."""
    import redis

    for url, pattern in url_patterns:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
        client.close()
