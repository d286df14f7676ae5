"""`python -m tests.benchmarks.paired REV`: server CPU per connect of this checkout against REV.

Run one after the other, two builds' connect costs differ by the machine's mood as much as by
their code: on this kind of machine runs of one build ten minutes apart spread ±20 %. Here both
are served at the same time, on the same core, each with its own Redis and generator, and their
clients connect at once; whatever slows the machine slows both, and the ratio of their CPU per
connect holds to about ±2 % (the same build against itself: 0.99-1.02). Galaxy only, the full
product as in the main benchmark (tokens checked, Redis for everything), connect phase only.

    python -m tests.benchmarks.paired REV [--n 5000] [--rounds 4] [--anonymous]

REV is checked out into a temporary git worktree (removed at the end); this checkout, with its
uncommitted changes, is the other side. Each round prints both builds' server CPU per connect
and their ratio (this checkout's over REV's: below 1 is cheaper); the last line, the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from tests.benchmarks import procstat
from tests.benchmarks.__main__ import CONNECT_TIMEOUT_PER_CONN_S, CONNECT_TIMEOUT_S, Generator, cpu_plan, mint_tokens, raise_fd_limit, start_redis
from tests.benchmarks.servers import LOGS, ROOM, UVICORN_FLAGS, Server, galaxy_env, pinned
from tests.servers import PRODUCTION_HTTP, PRODUCTION_WS, ROOT, fresh_sqlite, free_port


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.paired", description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare this checkout with")
    parser.add_argument("--n", type=int, default=5000, help="connections per build and round (default 5000)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    parser.add_argument("--anonymous", action="store_true", help="clients send no token")
    return parser.parse_args(argv)


def migrated_sqlite(tree: Path, folder: Path) -> str:
    """A fresh SQLite with `tree`'s own migrations applied."""
    folder.mkdir()
    url = fresh_sqlite(folder)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=tree, check=True, capture_output=True,
                   env={**os.environ, **galaxy_env("", url), "REDIS_URL": ""})
    return url


def start_server(name: str, tree: Path, env: dict[str, str], cpus: str | None) -> Server:
    """production's uvicorn command on `tree`'s code."""
    server = Server(name, free_port())
    command = [sys.executable, "-m", "uvicorn", "galaxy.asgi:application", "--host", "127.0.0.1", "--port", str(server.port),
               "--workers", "1", "--http", PRODUCTION_HTTP, "--ws", PRODUCTION_WS, *UVICORN_FLAGS]
    LOGS.mkdir(parents=True, exist_ok=True)
    server.processes.append(subprocess.Popen(
        pinned(command, cpus), cwd=tree, env={**os.environ, **env, "PYTHONPATH": str(tree)},
        stdout=(LOGS / f"{name}.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    ))
    return server


def one_round(trees: list[Path], redis_urls: list[str], databases: list[str], tokens, n: int) -> list[float]:
    """Both builds connect N clients at the same time: each one's server CPU per connect (us)."""
    load_cpus, server_cpus = cpu_plan(1)
    with ExitStack() as stack:
        servers = []
        for side, tree in enumerate(trees):
            server = start_server(f"paired-{side}", tree, galaxy_env(redis_urls[side], databases[side]), server_cpus)
            stack.callback(server.stop)
            servers.append(server)
        for server in servers:
            server.wait_ready(1)
        before = [procstat.cpu_seconds(server.pids) for server in servers]
        generators = []
        for server in servers:
            url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
            generator = Generator(server.name, load_cpus, {"url": url, "n": n, "room": ROOM, "tokens": tokens, "transport": "websocket"})
            stack.callback(generator.stop)
            generators.append(generator)
        results: list[float | BaseException] = [0.0, 0.0]

        def wait(side: int) -> None:
            try:
                ready = generators[side].expect("ready", CONNECT_TIMEOUT_S + 2 * CONNECT_TIMEOUT_PER_CONN_S * n)
                if ready["subscribed"] != n:
                    raise RuntimeError(f"{servers[side].name}: {ready['subscribed']} of {n} subscribed")
                results[side] = (procstat.cpu_seconds(servers[side].pids) - before[side]) * 1e6 / n
            except BaseException as exc:  # noqa: BLE001  (reported below, in the main thread)
                results[side] = exc

        threads = [threading.Thread(target=wait, args=(side,)) for side in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    raise_fd_limit(2 * args.n)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="galaxy-paired-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.rev], cwd=ROOT, check=True)
        stack.callback(subprocess.run, ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
        trees = [base, ROOT]
        load_cpus, _ = cpu_plan(1)
        redis_urls = [start_redis(stack, load_cpus) for _ in trees]
        databases = [migrated_sqlite(tree, Path(tmp) / f"db{side}") for side, tree in enumerate(trees)]
        tokens = None if args.anonymous else mint_tokens(args.n)
        ratios = []
        for number in range(1, args.rounds + 1):
            then, now = one_round(trees, redis_urls, databases, tokens, args.n)
            ratios.append(now / then)
            print(f"round {number}: {args.rev} {then:.0f} us, this checkout {now:.0f} us per connect: ratio {now / then:.3f}", flush=True)
    print(f"median ratio (this checkout / {args.rev}) over {args.rounds} rounds of {args.n} "
          f"{'anonymous' if args.anonymous else 'signed-in'} connects each: {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
