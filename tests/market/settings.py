"""Django settings of the market tests' own process: the product's, on PostgreSQL and Redis.

The test process shares the database and the cache (Redis DB 4, a key prefix of its own) with
the servers and the Celery worker the tests start, so it sees the snapshots they store. Its
channel layer stays in-memory: other test packages (tests/realtime) run in this process too.
"""

import os

from galaxy.settings import *  # noqa: F403

from tests.servers import REDIS_URL as _REDIS_URL

RUN_ID = f"market-test-{os.getpid()}"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Redis DB 4 for cache (and the Redis servers' channel layer), DB 3 for the Celery broker.
TEST_CACHE_URL = _REDIS_URL.rsplit("/", 1)[0] + "/4"
TEST_BROKER_URL = _REDIS_URL.rsplit("/", 1)[0] + "/3"

DATABASES = {"default": {**dj_database_url.parse(TEST_DATABASE_URL), "TEST": {"NAME": f"test_galaxy_{RUN_ID.replace('-', '_')}"}}}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": TEST_CACHE_URL, "KEY_PREFIX": RUN_ID}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 100_000}}}
CELERY_BROKER_URL = CELERY_RESULT_BACKEND = TEST_BROKER_URL
CELERY_TASK_DEFAULT_QUEUE = RUN_ID
# Short enough that timeouts and polls are quick to observe, long enough for a loaded CI box.
HORIZON_REQUEST_TIMEOUT = 1.0
MARKET_MIN_POLL_INTERVAL = 0.2
HORIZON_REQUESTS_PER_HOUR = 3600
MARKET_FEED_IN_PROCESS = False
