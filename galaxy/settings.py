"""Every setting, read once from the environment (and a `.env` file) with the seed's names.

The embedded default needs no variable at all: SQLite, the in-memory channel layer, no Redis.
NODE_ENV=production refuses to start until the settings production needs are set.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
# The real environment wins over .env, as with every dotenv loader.
load_dotenv(os.environ.get("GALAXY_ENV_FILE", BASE_DIR / ".env"), override=False)


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = env(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_seconds(name: str, default: float) -> float:
    value = env(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


GALAXY_VERSION = "1.0.0"

# -- server (seed: Server Configuration) -------------------------------------------------------
NODE_ENV = env("NODE_ENV", "development")
PRODUCTION = NODE_ENV == "production"
WEBSOCKET_HOST = env("WEBSOCKET_HOST", "0.0.0.0")
WEBSOCKET_PORT = env_int("WEBSOCKET_PORT", 3001)

# -- connections (seed: Connection Configuration) ----------------------------------------------
MAX_CONNECTIONS_PER_USER = env_int("MAX_CONNECTIONS_PER_USER", 5)
# CONNECTION_TIMEOUT is both Engine.IO's pingTimeout and the time a client has to send its
# Socket.IO CONNECT; HEARTBEAT_INTERVAL is both pingInterval and the seed's `ping` event period.
CONNECTION_TIMEOUT_MS = env_int("CONNECTION_TIMEOUT", 30000)
HEARTBEAT_INTERVAL_MS = env_int("HEARTBEAT_INTERVAL", 30000)
ROOM_CLEANUP_INTERVAL_MS = env_int("ROOM_CLEANUP_INTERVAL", 300000)
# Socket.IO's maxHttpBufferSize: the largest message or polling body, in bytes (Node's 1 MB).
MAX_HTTP_BUFFER_SIZE = env_int("MAX_HTTP_BUFFER_SIZE", 1_000_000)
# Frames a client may fall behind before it is disconnected as a slow consumer (why 1,000:
# realtime/engine.py, EngineConfig.max_backlog).
MAX_SEND_BACKLOG = env_int("MAX_SEND_BACKLOG", 1000)

# -- CORS (seed: CORS Configuration) -----------------------------------------------------------
ALLOWED_ORIGINS = env_list("ALLOWED_ORIGINS", "http://localhost:3000,http://localhost:3001")
CORS_CREDENTIALS = env_bool("CORS_CREDENTIALS", True)

# -- Supabase and Stellar ----------------------------------------------------------------------
# Development defaults are those of a local Supabase (`supabase start`), so `mint_token` tokens
# work on the embedded default; production has no defaults (see the check below).
_LOCAL_SUPABASE_URL = "http://127.0.0.1:54321"
_LOCAL_SUPABASE_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
SUPABASE_URL = env("SUPABASE_URL", None if PRODUCTION else _LOCAL_SUPABASE_URL)
SUPABASE_ANON_KEY = env("SUPABASE_ANON_KEY")
SUPABASE_SERVICE_ROLE_KEY = env("SUPABASE_SERVICE_ROLE_KEY")
# Legacy HS256 signing secret (Supabase dashboard: JWT settings); asymmetric keys need none.
SUPABASE_JWT_SECRET = env("SUPABASE_JWT_SECRET", None if PRODUCTION else _LOCAL_SUPABASE_JWT_SECRET)
# Confirm each connection's user with Supabase (auth.get_user) once: the seed's "ensure user exists".
SUPABASE_VERIFY_USER = env_bool("SUPABASE_VERIFY_USER", False)
STELLAR_NETWORK = env("STELLAR_NETWORK", "testnet")
STELLAR_HORIZON_URL = env("STELLAR_HORIZON_URL", "https://horizon-testnet.stellar.org")

# -- storage and channel layer -----------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
# Every Redis key and pub/sub channel of this deployment starts with it, so deployments (or
# test runs) sharing one Redis never see each other's events, sessions or limits.
REDIS_PREFIX = env("REDIS_PREFIX", "galaxy")
DATABASE_URL = env("DATABASE_URL")

# -- delivery (seed: Event Queuing) -------------------------------------------------------------
# How long a disconnected client can come back and recover its rooms, user and missed events.
RECOVERY_MAX_DISCONNECTION_MS = env_int("RECOVERY_MAX_DISCONNECTION_MS", 120000)
# Events a process holds while the channel layer / Redis is unreachable (oldest dropped beyond).
EVENT_QUEUE_MAX = env_int("EVENT_QUEUE_MAX", 1000)

# -- rate limits (seed: Security) ---------------------------------------------------------------
# The seed's "10 requests per minute per client, 5-minute block": per socket, heartbeats exempt.
RATE_LIMIT_REQUESTS = env_int("RATE_LIMIT_REQUESTS", 10)
RATE_LIMIT_WINDOW_MS = env_int("RATE_LIMIT_WINDOW_MS", 60000)
RATE_LIMIT_BLOCK_MS = env_int("RATE_LIMIT_BLOCK_MS", 300000)
# New connections (Engine.IO handshakes) per client IP per window: a page load is one, and a
# whole office behind one NAT address must fit, hence well above the per-socket figure.
RATE_LIMIT_HANDSHAKES = env_int("RATE_LIMIT_HANDSHAKES", 60)
# Proxies whose X-Forwarded-For is believed (addresses or CIDRs); nobody else's is.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")

if PRODUCTION:
    missing = [
        name
        for name in ("DJANGO_SECRET_KEY", "SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "DATABASE_URL", "REDIS_URL")
        if not env(name)
    ]
    if missing:
        raise ImproperlyConfigured("NODE_ENV=production needs these settings: " + ", ".join(missing))

SECRET_KEY = env("DJANGO_SECRET_KEY", "galaxy-development-only-not-secret")
DEBUG = env_bool("DJANGO_DEBUG", NODE_ENV == "development")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "*")

# Every connection is closed when its request ends (CONN_MAX_AGE 0), as Django's docs ask under
# ASGI. A sync view runs in a thread of its request's own, and each thread has its own connection:
# one kept for reuse outlives its thread until a full garbage collection (rare here on purpose,
# galaxy/asgi.py), so 400 PATCHes filled PostgreSQL's 100 connections and held them idle (272
# answered 503). `database_sync_to_async` and Django's request end close a connection at 0 s of
# age; Celery's Django fixup closes its worker's after every task whatever the age. No
# in-process pool (psycopg_pool, Django 5.1+): Celery's fixup closes a prefork child's pool
# after every task, so it would only serve the web processes; pool across processes with the
# database's own pooler (Supabase's Supavisor, PgBouncer) instead.
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that stops answering without closing (a network cut, a failover) must fail
    # a call, not hang it: sync calls share one thread per process (thread-sensitive), so one
    # hung connect or query would stall every database call there. A connect gives up after
    # 5 s; TCP keepalives find a dead established connection in ~25 s. DATABASE_URL's own
    # options (?connect_timeout=...) win.
    for option, value in {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                          "keepalives_count": 3}.items():
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(option, value)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads of one server write (requests, the in-process watcher, feed and engine).
    # SQLite's default deferred transactions take the write lock only at their first write, so
    # two that read then write deadlock and one fails at once with "database is locked";
    # IMMEDIATE takes it at BEGIN, and the others wait up to the timeout instead.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})

if REDIS_URL:
    # The pub/sub layer: a group send is one PUBLISH that every subscribed process receives,
    # with no per-channel capacity to overflow (the list layer drops group sends silently when
    # a channel is full, DESIGN.md decision 3).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": REDIS_PREFIX},
        }
    }
else:
    # One fan-out channel per process reads every room message; 100 (the default) would drop
    # bursts, and this layer only ever has that one reader.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 100_000}}
    }

# Domain consumers of `prefix:` events, found as Channels finds routes (realtime imports none).
REALTIME_EVENT_CONSUMERS = [
    "market.consumers.MarketConsumer",
    "transactions.consumers.TransactionConsumer",
    "automation.consumers.AutomationConsumer",
]

# Owner of a private room's id, by room kind: "module.function" taking the id, returning the
# owner's Supabase user id or None. realtime finds them here, as it finds event consumers.
REALTIME_ROOM_OWNERS = {
    "wallet": "transactions.selectors.wallet_owner",
    "automation": "automation.selectors.automation_owner",
}

# Extra /health checks ("ok" or "failed: why"; a failure makes the node degraded) and extra
# /metrics blocks, from the domain apps: realtime finds them here.
HEALTH_CHECKS = {"market_feed": "market.selectors.feed_health"}
REALTIME_METRICS = {"market": "market.selectors.feed_budget"}

# -- Django ------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "realtime",
    "realtime.notifications",
    "market",
    "transactions",
    "automation",
    "web",
]
MIDDLEWARE = [
    # First: a CORS preflight is answered before anything else may redirect or refuse it.
    "realtime.http_cors.cors_middleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "galaxy.urls"
ASGI_APPLICATION = "galaxy.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
USE_TZ = True
TIME_ZONE = "UTC"
APPEND_SLASH = False

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["realtime.rest.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["realtime.rest.JSONParser", "rest_framework.parsers.FormParser", "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "realtime.rest.rest_exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": ["realtime.auth.SupabaseJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Galaxy WebSocket API: REST",
    "DESCRIPTION": "Health, metrics, market, transactions and automations. Authenticate with a Supabase JWT "
    "(Authorization: Bearer ...); the Socket.IO API is described in README's event catalogue.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Public documents: a stale or garbled bearer token sent along is not a 401 here.
    "SERVE_AUTHENTICATION": [],
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN (works offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # /metrics is an async Django view, outside DRF: described by this hook instead.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "realtime.schema.add_metrics_paths"],
}

# -- logging (seed: Logging Configuration) -----------------------------------------------------
_LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING", "error": "ERROR"}
LOG_LEVEL = _LOG_LEVELS.get(env("LOG_LEVEL", "info").lower())
LOG_CONSOLE = env_bool("LOG_CONSOLE", True)
LOG_FILE = env_bool("LOG_FILE", False)
LOG_FILE_PATH = env("LOG_FILE_PATH", str(BASE_DIR / "logs" / "galaxy.log"))
if LOG_LEVEL is None:
    raise ImproperlyConfigured(f"LOG_LEVEL must be debug, info, warn or error, not {env('LOG_LEVEL')!r}")

_handlers: dict = {}
if LOG_CONSOLE:
    _handlers["console"] = {"class": "logging.StreamHandler", "formatter": "plain"}
if LOG_FILE:
    Path(LOG_FILE_PATH).parent.mkdir(parents=True, exist_ok=True)
    _handlers["file"] = {"class": "logging.handlers.WatchedFileHandler", "filename": LOG_FILE_PATH, "formatter": "plain"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": _handlers or {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": list(_handlers) or ["null"], "level": LOG_LEVEL},
    "filters": {"redis_away": {"()": "realtime.redis_client.RedisAwayOneLine"}},
    "loggers": {"channels_redis.pubsub": {"filters": ["redis_away"]}},
}

# -- market feed -------------------------------------------------------------------------------
# Horizon allows 3600 requests per hour per IP by default; the poll schedule is derived from it.
HORIZON_REQUESTS_PER_HOUR = env_int("HORIZON_REQUESTS_PER_HOUR", 3600)
# poll: Celery beat (or, without Redis, a loop in the server process) polls Horizon on a budget.
# stream: `manage.py market_stream` follows Horizon's SSE streams (for operators with their own
# Horizon: every streamed update counts against a public Horizon's rate limit).
MARKET_FEED_MODE = env("MARKET_FEED_MODE", "poll")
if MARKET_FEED_MODE not in ("poll", "stream"):
    raise ImproperlyConfigured(f"MARKET_FEED_MODE must be poll or stream, not {MARKET_FEED_MODE!r}")
MARKET_ORDERBOOK_DEPTH = env_int("MARKET_ORDERBOOK_DEPTH", 20)


# Ledgers close every 5-6 s, so polling a pair more often than once a second only spends budget;
# tests lower it to see changes sooner. Also the Celery beat tick.
MARKET_MIN_POLL_INTERVAL = env_seconds("MARKET_MIN_POLL_INTERVAL", 1.0)
# Per Horizon request; stellar-sdk's default (11 s: two ledgers + 1 s) would hold a worker that long.
HORIZON_REQUEST_TIMEOUT = env_seconds("HORIZON_REQUEST_TIMEOUT", 10.0)
# Without Redis there is no Celery: the server process runs the same feed in its event loop.
MARKET_FEED_IN_PROCESS = env_bool("MARKET_FEED_IN_PROCESS", not REDIS_URL)
# Pairs fed even with no subscriber: "module.function"s returning pair names (market imports no
# other app). Active automations need their pair's prices whether or not anyone watches it.
MARKET_FEED_PAIR_SOURCES = ["automation.engine.watched_pairs"]
# Other pollers of Horizon, sharing HORIZON_REQUESTS_PER_HOUR with the feed: "module.function"s
# returning the requests per hour each asks for (market.selectors plans the shares).
HORIZON_BUDGET_SHARERS = ["transactions.selectors.horizon_demand"]

# Snapshots, cursors and the feed's schedule are shared by the server and Celery through the
# cache, and room owners' invalidations must reach every process: Redis when it is there.
CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", "galaxy")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": CACHE_KEY_PREFIX}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": CACHE_KEY_PREFIX}
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
# Deployments (or test runs) sharing one broker keep their tasks apart with their own queue.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A result nobody reads should not pile up in Redis.
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The one place periodic schedules are declared. The tick is cheap (cache reads); it polls only
# the pairs whose budget-derived interval has elapsed (market.services.feed_claim_due_pairs).
CELERY_BEAT_SCHEDULE = {
    "market-feed-tick": {"task": "market.feed_tick", "schedule": MARKET_MIN_POLL_INTERVAL, "options": {"expires": MARKET_MIN_POLL_INTERVAL * 5}},
}

# -- transactions ------------------------------------------------------------------------------
# One watcher pass (pending hashes, then every active wallet's history) this often: a ledger
# closes every 5-6 s, so more often finds nothing new; tests lower it.
TRANSACTION_POLL_INTERVAL = env_seconds("TRANSACTION_POLL_INTERVAL", 5.0)
# A tracked transaction still in no ledger this long after it was registered is failed with
# errorCode tx_timeout (sooner when its own time bounds end). Stellar drops a transaction from
# its queue after a few ledgers; five minutes covers slow submitters and network congestion.
TRANSACTION_DEADLINE_SECONDS = env_seconds("TRANSACTION_DEADLINE_SECONDS", 300.0)
# An owed transaction event a worker claimed and then died before emitting (a SIGKILL during
# its emit's retries) is emitted by the first pass after this: longer than any worker's retries.
TRANSACTION_ANNOUNCE_LEASE_SECONDS = env_seconds("TRANSACTION_ANNOUNCE_LEASE_SECONDS", 90.0)
# Without Redis there is no Celery: the server process runs the same watcher in its event loop.
TRANSACTIONS_IN_PROCESS = env_bool("TRANSACTIONS_IN_PROCESS", not REDIS_URL)
CELERY_BEAT_SCHEDULE["transactions-watch-tick"] = {
    "task": "transactions.watch_tick", "schedule": TRANSACTION_POLL_INTERVAL,
    # A tick not run within two intervals is superseded by the next one.
    "options": {"expires": TRANSACTION_POLL_INTERVAL * 2},
}

# -- automations -------------------------------------------------------------------------------
# Without Redis there is no Celery: the server process evaluates price updates and executes
# automations itself (in threads off its event loop); with Redis, Celery tasks do.
AUTOMATION_IN_PROCESS = env_bool("AUTOMATION_IN_PROCESS", not REDIS_URL)
# A fired run is held by whatever will touch it next (its queued execution, its attempt, its
# retry's countdown) for that long plus this grace; past it the sweep takes it back (a worker or
# message was lost). 10 s: far above a queued task's usual wait, well inside the 60 s a run may
# take (automation.execution.EXECUTION_WINDOW_SECONDS). Tests lower it.
AUTOMATION_STALE_GRACE = env_seconds("AUTOMATION_STALE_GRACE", 10.0)
# The sweep (one indexed query) this often: a stranded run ends within a grace plus this.
AUTOMATION_SWEEP_INTERVAL = env_seconds("AUTOMATION_SWEEP_INTERVAL", 5.0)
# A run's owed events (triggered, executed, error) claimed by a worker that then died before
# marking them announced (a SIGKILL during its emit's retries, which take a third of this) are
# emitted by the first sweep after this: longer than any worker's retries. Tests lower it.
AUTOMATION_ANNOUNCE_LEASE_SECONDS = env_seconds("AUTOMATION_ANNOUNCE_LEASE_SECONDS", 90.0)
CELERY_BEAT_SCHEDULE["automation-sweep-runs"] = {
    "task": "automation.sweep_runs", "schedule": AUTOMATION_SWEEP_INTERVAL,
    # A sweep not run within two intervals is superseded by the next one.
    "options": {"expires": AUTOMATION_SWEEP_INTERVAL * 2},
}
# A Fernet key (urlsafe base64 of 32 bytes: `python -c "from cryptography.fernet import Fernet;
# print(Fernet.generate_key().decode())"`) encrypting custodial wallet secrets. Empty: no
# custodial signing, and payment automations end in automation:error custody_unavailable.
WALLET_ENCRYPTION_KEY = env("WALLET_ENCRYPTION_KEY", "")
