"""Settings come from the environment with the seed's names and defaults; production insists."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.servers import ROOT

PRINT = (
    "from django.conf import settings as s; import json; print(json.dumps({k: str(getattr(s, k)) for k in "
    "['WEBSOCKET_HOST','WEBSOCKET_PORT','NODE_ENV','HEARTBEAT_INTERVAL_MS','CONNECTION_TIMEOUT_MS',"
    "'MAX_CONNECTIONS_PER_USER','ROOM_CLEANUP_INTERVAL_MS','MAX_HTTP_BUFFER_SIZE','ALLOWED_ORIGINS',"
    "'CORS_CREDENTIALS','LOG_LEVEL','STELLAR_NETWORK','STELLAR_HORIZON_URL']} | "
    "{'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'db': s.DATABASES['default']['ENGINE']}))"
)


def load_settings(env: dict[str, str], env_file: str = "/nonexistent") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='galaxy.settings'; django.setup(); {PRINT}"],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "GALAXY_ENV_FILE": env_file, **env},
        capture_output=True, text=True, timeout=60,
    )


def test_defaults_are_the_seeds_and_the_embedded_default():
    result = load_settings({})
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "WEBSOCKET_HOST": "0.0.0.0", "WEBSOCKET_PORT": "3001", "NODE_ENV": "development",
        "HEARTBEAT_INTERVAL_MS": "30000", "CONNECTION_TIMEOUT_MS": "30000", "MAX_CONNECTIONS_PER_USER": "5",
        "ROOM_CLEANUP_INTERVAL_MS": "300000", "MAX_HTTP_BUFFER_SIZE": "1000000",
        "ALLOWED_ORIGINS": "['http://localhost:3000', 'http://localhost:3001']", "CORS_CREDENTIALS": "True",
        "LOG_LEVEL": "INFO", "STELLAR_NETWORK": "testnet", "STELLAR_HORIZON_URL": "https://horizon-testnet.stellar.org",
        "layer": "channels.layers.InMemoryChannelLayer", "db": "django.db.backends.sqlite3",
    }


def test_environment_overrides_and_redis_and_postgres(tmp_path):
    result = load_settings({
        "WEBSOCKET_PORT": "4000", "HEARTBEAT_INTERVAL": "1000", "ALLOWED_ORIGINS": "https://app.example, https://b.example",
        "LOG_LEVEL": "warn", "REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "postgres://u@127.0.0.1:5432/test",
    })
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["WEBSOCKET_PORT"] == "4000" and values["HEARTBEAT_INTERVAL_MS"] == "1000"
    assert values["ALLOWED_ORIGINS"] == "['https://app.example', 'https://b.example']"
    assert values["LOG_LEVEL"] == "WARNING"
    assert values["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert values["db"] == "django.db.backends.postgresql"


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("WEBSOCKET_PORT=5005\nNODE_ENV=staging\n")
    result = load_settings({"NODE_ENV": "test"}, env_file=str(env_file))
    values = json.loads(result.stdout)
    assert values["WEBSOCKET_PORT"] == "5005" and values["NODE_ENV"] == "test"


def test_production_refuses_to_start_without_what_it_needs():
    result = load_settings({"NODE_ENV": "production", "SUPABASE_URL": "https://x.supabase.co"})
    assert result.returncode != 0
    assert "NODE_ENV=production needs these settings: DJANGO_SECRET_KEY, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, DATABASE_URL, REDIS_URL" in result.stderr


def test_bad_values_are_named():
    assert "HEARTBEAT_INTERVAL must be an integer" in load_settings({"HEARTBEAT_INTERVAL": "soon"}).stderr
    assert "CORS_CREDENTIALS must be true or false" in load_settings({"CORS_CREDENTIALS": "maybe"}).stderr
    assert "LOG_LEVEL must be debug, info, warn or error" in load_settings({"LOG_LEVEL": "loud"}).stderr


def test_log_file_receives_the_servers_logs(tmp_path):
    log = tmp_path / "logs" / "galaxy.log"
    code = "import logging; logging.getLogger('realtime').warning('hello file')"
    result = subprocess.run(
        [sys.executable, "-c", f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='galaxy.settings'; django.setup(); {code}"],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "GALAXY_ENV_FILE": "/nonexistent", "LOG_FILE": "true",
                       "LOG_FILE_PATH": str(log), "LOG_CONSOLE": "false"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "hello file" in log.read_text() and result.stderr == ""
