"""`python -m tests.benchmarks`: Galaxy against Socket.IO's Node server and python-socketio.

For each server in turn: start it (and nothing else of its kind) on a free loopback port; have
the load generator (tests/benchmarks/generator.c) open N WebSocket clients, each sending
its own token and subscribing to market:XLM_USDC; once every subscription is acknowledged, have
a producer in another process emit K = rate x duration price updates at `rate` per second
through that server's own emit path (Galaxy: realtime.emit.emit); collect what the clients got;
stop everything. One table compares them, with ratios against each peer.

    python -m tests.benchmarks [--n 1000] [--rate 20] [--duration 10]
        [--servers galaxy-daphne,galaxy-uvicorn,node,python-socketio] [--workers 1]

The benchmark starts its own Redis on a free loopback port (the shared one at 6379 carries
other runs' pub/sub traffic, which is global across database numbers); --redis-url overrides.
With two or more cores the generator, producer and Redis share the first core and the server
gets the others (taskset); with --workers > 1 the servers are not pinned.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import jwt

from tests.benchmarks import procstat
from tests.benchmarks.servers import (
    HANDSHAKES_ALLOWED, JWT_SECRET, LOGS, NODE_DIR, PEERS, ROOM, SERVERS, SUPABASE_URL, galaxy_env, pinned, producer_command,
)
from tests.servers import fresh_sqlite, free_port, manage, wait_for_port

# Time for the connect phase: a floor, plus what a slow server may take per connection.
CONNECT_TIMEOUT_S, CONNECT_TIMEOUT_PER_CONN_S = 30.0, 0.01
# The producer's own start-up (Django setup) on top of its schedule.
PRODUCER_GRACE_S = 30.0
# The generator drains for up to 5 s after the last update; then it must report.
REPORT_TIMEOUT_S = 20.0
# Time the server gets to handle N disconnects at once before its log is read again.
DISCONNECT_SETTLE_S = 3.0
# Pause after the last subscription before RSS is read: let the server finish its replies.
SETTLE_S = 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="connections (default 1000)")
    parser.add_argument("--rate", type=float, default=20, help="updates per second (default 20)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of updates (default 10)")
    parser.add_argument("--servers", default="galaxy-daphne,galaxy-uvicorn,node,python-socketio",
                        help=f"comma-separated, from: {', '.join(SERVERS)}")
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port (default 1)")
    parser.add_argument("--anonymous", action="store_true",
                        help="clients send no token (to see what auth costs; not the issue's scenario)")
    parser.add_argument("--transport", choices=["websocket", "polling"], default="websocket",
                        help="how the clients connect (default websocket; polling: HTTP long-polling only)")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown servers {unknown}; known: {', '.join(SERVERS)}")
    return args


def cpu_plan(workers: int) -> tuple[str | None, str | None]:
    """(cores for generator, producer and Redis; cores for the server), or no pinning."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return None, None
    load, rest = str(cores[0]), ",".join(map(str, cores[1:]))
    return load, (rest if workers == 1 else None)


def mint_tokens(n: int) -> list[str]:
    """One user per connection (MAX_CONNECTIONS_PER_USER is per user), signed as Supabase does."""
    now = int(time.time())
    claims = {"aud": "authenticated", "role": "authenticated", "iss": f"{SUPABASE_URL}/auth/v1",
              "iat": now, "exp": now + 3600, "app_metadata": {"permissions": []}}
    return [jwt.encode({**claims, "sub": str(uuid.UUID(int=i + 1))}, JWT_SECRET, algorithm="HS256") for i in range(n)]


def start_redis(stack: ExitStack, cpus: str | None) -> str:
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    LOGS.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(pinned(command, cpus), stdout=(LOGS / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    stack.callback(lambda: (process.terminate(), process.wait(10)))
    wait_for_port(port, process)
    return f"redis://127.0.0.1:{port}/0"


def raise_fd_limit(n: int) -> None:
    """Each process holds one descriptor per connection: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < n + 1000:
        print(f"warning: at most {hard} open files per process; {n} connections may fail", file=sys.stderr)


def ensure_node_modules() -> None:
    """npm ci when node_modules is missing or older than the lock file (a dependency added)."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (NODE_DIR / "package-lock.json").stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


class Generator:
    """The load generator, driven over its stdin/stdout lines: generator.c for WebSocket clients,
    node/generator.mjs for long-polling ones."""

    def __init__(self, name: str, cpus: str | None, config: dict) -> None:
        websocket = config["transport"] == "websocket"
        command = [str(build_generator())] if websocket else ["node", str(NODE_DIR / "generator.mjs")]
        self.process = subprocess.Popen(
            pinned(command, cpus), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=(LOGS / f"generator-{name}.log").open("wb"), text=True, start_new_session=True,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if websocket:
            url = urllib.parse.urlsplit(config["url"])
            tokens = config["tokens"]
            self.send(f"{url.hostname} {url.port} {url.path}?{url.query} {config['room']} {config['n']} {int(tokens is None)}")
            if tokens:
                self.send("\n".join(tokens))
        else:
            self.send(json.dumps(config))

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict:
        try:
            message = json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise TimeoutError(f"the generator sent no {event!r} within {timeout:.0f}s") from None
        assert message["event"] == event, message
        return message

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def build_generator() -> Path:
    """generator.c compiled into artifacts/ (again when the source is newer)."""
    source, binary = Path(__file__).with_name("generator.c"), LOGS / "generator"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        LOGS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def run_one(name: str, args, redis_url: str, database_url: str | None, tokens: list[str]) -> dict:
    start, producer_kind = SERVERS[name]
    load_cpus, server_cpus = cpu_plan(args.workers)
    count = round(args.rate * args.duration)
    log = LOGS / f"{name}.log"
    log_start = log.stat().st_size if log.exists() else 0
    with ExitStack() as stack:
        server = start(name, galaxy_env(redis_url, database_url or ""), args.workers, server_cpus)
        stack.callback(server.stop)
        server.wait_ready(args.workers)
        rss_before, connect_cpu_before = procstat.rss_kib(server.pids), procstat.cpu_seconds(server.pids)

        scheme = "ws" if args.transport == "websocket" else "http"
        url = f"{scheme}://127.0.0.1:{server.port}/socket.io/?EIO=4&transport={args.transport}"
        config = {"url": url, "n": args.n, "room": ROOM, "tokens": tokens, "transport": args.transport}
        generator = Generator(name, load_cpus, config)
        stack.callback(generator.stop)
        ready = generator.expect("ready", CONNECT_TIMEOUT_S + CONNECT_TIMEOUT_PER_CONN_S * args.n)
        connect_cpu = procstat.cpu_seconds(server.pids) - connect_cpu_before
        generator_connect_cpu = procstat.cpu_seconds([generator.process.pid])  # its whole life so far
        time.sleep(SETTLE_S)
        rss_after = procstat.rss_kib(server.pids)

        cpu_before = procstat.cpu_seconds(server.pids)
        generator_cpu_before = procstat.cpu_seconds([generator.process.pid])
        producer = subprocess.Popen(pinned(producer_command(producer_kind, redis_url, count, args.rate), load_cpus),
                                    cwd=Path(__file__).resolve().parents[2], start_new_session=True)
        stack.callback(lambda: producer.poll() is None and os.killpg(producer.pid, signal.SIGKILL))
        producer.wait(args.duration + PRODUCER_GRACE_S)
        if producer.returncode != 0:
            raise RuntimeError(f"the {producer_kind} producer failed ({producer.returncode})")
        generator.send(f"stop {count}")
        report = generator.expect("report", REPORT_TIMEOUT_S)
        errors = count_errors(log, log_start)  # before the clients go: only the run's own
        cpu_used = procstat.cpu_seconds(server.pids) - cpu_before
        generator_cpu_used = procstat.cpu_seconds([generator.process.pid]) - generator_cpu_before
        generator.stop()  # every client drops at once, as after a network cut
        time.sleep(DISCONNECT_SETTLE_S)
        disconnect_errors = count_errors(log, log_start) - errors
    delivered = report["delivered"]
    window_s = ((report["last_rx_ms"] - report["first_ts_ms"]) / 1000 + 1 / args.rate) if delivered else None
    return {
        "subscribed": ready["subscribed"],
        "authenticated": report["authenticated"],
        "connect_per_s": ready["subscribed"] / ready["connect_s"] if ready["connect_s"] else None,
        "connect_cpu_us": connect_cpu * 1e6 / ready["subscribed"] if ready["subscribed"] else None,
        "connect_cpu_percent": 100 * connect_cpu / ready["connect_s"] if ready["connect_s"] else None,
        "generator_connect_cpu_percent": 100 * generator_connect_cpu / ready["connect_s"] if ready["connect_s"] else None,
        "offered_per_s": args.n * args.rate,
        "delivered_per_s": delivered / window_s if window_s else 0.0,
        "lost": count * args.n - delivered,
        "duplicates": report["duplicates"],
        "p50_ms": report["p50_ms"], "p95_ms": report["p95_ms"], "p99_ms": report["p99_ms"], "max_ms": report["max_ms"],
        "cpu_us_per_msg": cpu_used * 1e6 / delivered if delivered else None,
        "cpu_percent": 100 * cpu_used / window_s if window_s else None,
        "generator_cpu_percent": 100 * generator_cpu_used / window_s if window_s else None,
        "rss_kib_per_conn": (rss_after - rss_before) / args.n,
        "errors_logged": errors,
        "disconnect_errors": disconnect_errors,
    }


def count_errors(log: Path, start: int) -> int:
    """Error lines the server logged since `start` (Python's ERROR/Traceback, Node's Error:)."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    return sum(1 for line in text.splitlines() if "ERROR" in line or "Traceback" in line or "Error:" in line)


# (key, label, format, True if a higher value is better, None if neither) in table order
ROWS = [
    ("subscribed", "connected + subscribed", "{:.0f}", True),
    ("authenticated", "authenticated (token checked)", "{:.0f}", True),
    ("connect_per_s", "connect rate (conn/s)", "{:.0f}", True),
    ("connect_cpu_us", "server CPU per connect (us)", "{:.0f}", False),
    ("connect_cpu_percent", "server CPU (% of a core, connect phase)", "{:.0f}", None),
    ("generator_connect_cpu_percent", "generator CPU (% of a core, connect phase)", "{:.0f}", None),
    ("offered_per_s", "offered (msg/s)", "{:.0f}", None),
    ("delivered_per_s", "delivered (msg/s)", "{:.0f}", True),
    ("lost", "lost (msgs)", "{:.0f}", False),
    ("duplicates", "duplicates (msgs)", "{:.0f}", False),
    ("p50_ms", "latency p50 (ms)", "{:.1f}", False),
    ("p95_ms", "latency p95 (ms)", "{:.1f}", False),
    ("p99_ms", "latency p99 (ms)", "{:.1f}", False),
    ("max_ms", "latency max (ms)", "{:.1f}", False),
    ("cpu_us_per_msg", "server CPU (us/msg)", "{:.1f}", False),
    ("cpu_percent", "server CPU (% of a core, emit phase)", "{:.0f}", False),
    # Near 100 %, the run measures the generator's limit, not the server's.
    ("generator_cpu_percent", "generator CPU (% of a core, emit phase)", "{:.0f}", None),
    ("rss_kib_per_conn", "server RSS (KiB/conn)", "{:.1f}", False),
    ("errors_logged", "server errors logged", "{:.0f}", False),
    ("disconnect_errors", "  then when all clients drop", "{:.0f}", False),
]


def render_table(results: dict[str, dict | str]) -> str:
    """Rows: metrics; columns: servers, then each Galaxy server / each peer (x: the ratio)."""
    names = list(results)
    ok = {n: r for n, r in results.items() if isinstance(r, dict)}
    ratios = [(s, p) for s in names if s not in PEERS and s in ok for p in PEERS if p in ok]
    header = ["metric", *names, *(f"{s.removeprefix('galaxy-')}/{p.replace('python-socketio', 'pysio')}" for s, p in ratios)]
    lines = []
    for key, label, fmt, higher_better in ROWS:
        row = [label + (" ^" if higher_better else "")]
        for n in names:
            value = ok[n].get(key) if n in ok else None
            row.append(fmt.format(value) if value is not None else ("FAILED" if n not in ok else "-"))
        for s, p in ratios:
            a, b = ok[s].get(key), ok[p].get(key)
            row.append(f"{a / b:.2f}x" if a is not None and b else "-")
        lines.append(row)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt_row = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [fmt_row(header), fmt_row(["-" * w for w in widths]), *map(fmt_row, lines)]
    out.append("^ higher is better (other rows: lower is better); a/b columns are that server's value / the peer's.")
    for n, r in results.items():
        if not isinstance(r, dict):
            out.append(f"{n} failed: {r}")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    load_cpus, server_cpus = cpu_plan(args.workers)
    raise_fd_limit(args.n)
    ensure_node_modules()
    results: dict[str, dict | str] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="galaxy-bench-") as tmp:
        redis_url = args.redis_url or start_redis(stack, load_cpus)
        database_url = None
        if any(SERVERS[s][1] == "galaxy" for s in args.servers):
            database_url = fresh_sqlite(Path(tmp))
            manage({"DATABASE_URL": database_url}, "migrate", "--noinput")
        tokens = None if args.anonymous else mint_tokens(args.n)
        for name in args.servers:
            print(f"-- {name}: {args.n} connections, {args.rate:g} updates/s for {args.duration:g}s", file=sys.stderr, flush=True)
            try:
                results[name] = run_one(name, args, redis_url, database_url, tokens)
            except (RuntimeError, TimeoutError, AssertionError, subprocess.TimeoutExpired) as exc:
                results[name] = f"{type(exc).__name__}: {exc}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{when}  python -m tests.benchmarks {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"N={args.n} {args.transport} connections, {args.rate:g} updates/s x {args.duration:g}s = {round(args.rate * args.duration)} "
          f"updates each; workers={args.workers}; {os.cpu_count()} cores; generator+producer+Redis on cpu "
          f"{load_cpus or 'any'}, server on cpu {server_cpus or 'any'}")
    auth = "clients anonymous" if args.anonymous else "token checked per connection"
    print(f"Galaxy: full product (Redis layer, {auth}, rate limits on; "
          f"RATE_LIMIT_HANDSHAKES={HANDSHAKES_ALLOWED} "
          "because every client comes from 127.0.0.1). Peers: equivalent handlers, the same token checked, "
          "no per-user or per-connection counts.\n")
    print(render_table(results))
    if args.json:
        args.json.write_text(json.dumps({"date": when, "args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2))
    return 0 if all(isinstance(r, dict) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
