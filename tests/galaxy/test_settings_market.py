"""The market feed's settings block: defaults, Redis cache and Celery from REDIS_URL, bad values refused."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.servers import ROOT

PRINT = (
    "from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k) for k in "
    "['HORIZON_REQUESTS_PER_HOUR','MARKET_FEED_MODE','MARKET_ORDERBOOK_DEPTH','MARKET_MIN_POLL_INTERVAL',"
    "'HORIZON_REQUEST_TIMEOUT','MARKET_FEED_IN_PROCESS','CELERY_BROKER_URL','CELERY_TASK_DEFAULT_QUEUE']} | "
    "{'cache': s.CACHES['default']['BACKEND'], 'beat': sorted(s.CELERY_BEAT_SCHEDULE)}))"
)


def load(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='galaxy.settings'; django.setup(); {PRINT}"],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "GALAXY_ENV_FILE": "/nonexistent", **env}, capture_output=True, text=True, timeout=60,
    )


def test_embedded_default_feeds_in_process_with_a_local_memory_cache():
    values = json.loads(load({}).stdout)
    assert values == {
        "HORIZON_REQUESTS_PER_HOUR": 3600, "MARKET_FEED_MODE": "poll", "MARKET_ORDERBOOK_DEPTH": 20,
        "MARKET_MIN_POLL_INTERVAL": 1.0, "HORIZON_REQUEST_TIMEOUT": 10.0, "MARKET_FEED_IN_PROCESS": True,
        "CELERY_BROKER_URL": None, "CELERY_TASK_DEFAULT_QUEUE": "celery",
        "cache": "django.core.cache.backends.locmem.LocMemCache", "beat": ["automation-sweep-runs", "market-feed-tick", "transactions-watch-tick"],
    }


def test_redis_url_brings_the_redis_cache_and_celery_and_overrides_apply():
    values = json.loads(load({"REDIS_URL": "redis://127.0.0.1:6379/1", "HORIZON_REQUESTS_PER_HOUR": "7200",
                              "MARKET_ORDERBOOK_DEPTH": "5", "CELERY_BROKER_URL": "amqp://guest@127.0.0.1//"}).stdout)
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert values["MARKET_FEED_IN_PROCESS"] is False and values["CELERY_BROKER_URL"] == "amqp://guest@127.0.0.1//"
    assert values["HORIZON_REQUESTS_PER_HOUR"] == 7200 and values["MARKET_ORDERBOOK_DEPTH"] == 5


def test_unavailable_feed_mode_and_bad_numbers_are_refused_by_name():
    assert "MARKET_FEED_MODE must be poll or stream" in load({"MARKET_FEED_MODE": "sse"}).stderr
    assert "MARKET_MIN_POLL_INTERVAL must be a number of seconds" in load({"MARKET_MIN_POLL_INTERVAL": "soon"}).stderr
