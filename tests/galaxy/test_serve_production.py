"""bin/serve-production takes its settings from .env as every other entry point does (seed:
"Create a `.env` file with the following variables")."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

from tests.servers import REDIS_URL, ROOT, fresh_sqlite, free_port, wait_for_port


def test_port_host_and_redis_url_come_from_the_env_file(tmp_path):
    port = free_port()
    env_file = tmp_path / "production.env"
    env_file.write_text(
        f"WEBSOCKET_HOST=127.0.0.1\nWEBSOCKET_PORT={port}\nREDIS_URL={REDIS_URL}\n"
        f"DATABASE_URL={fresh_sqlite(tmp_path)}\nWEB_CONCURRENCY=1\nREDIS_PREFIX=serve-production-{port}\n"
        "# a comment, and a value the shell must not read as code\nAPP_NOTE=\"it's a \\\"note\\\"; exit 3\"\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("WEBSOCKET_HOST", "WEBSOCKET_PORT", "REDIS_URL", "DATABASE_URL", "WEB_CONCURRENCY")}
    env.update(GALAXY_ENV_FILE=str(env_file), DJANGO_SETTINGS_MODULE="galaxy.settings")
    (ROOT / "artifacts").mkdir(exist_ok=True)
    log = (ROOT / "artifacts" / "serve-production.log").open("wb")
    process = subprocess.Popen([str(ROOT / "bin" / "serve-production")], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, timeout=90)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
