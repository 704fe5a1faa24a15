"""opsconsole settings: everything comes from the environment (see .env.example)."""

import re
import shlex
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from opsconsole.env import env_bool, env_int, env_list, env_rules, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off"
        )
    SECRET_KEY = "dev-only-insecure-key-opsconsole-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "apps.core",
    "apps.live",
    "apps.components",
    "apps.flags",
    "apps.metrics",
    "apps.breakers",
    "apps.healing",
]

MIDDLEWARE = [
    "apps.core.trace.TraceContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "opsconsole.urls"
ASGI_APPLICATION = "opsconsole.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql"))
if DATABASE_URL is None:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: run through `make run` / `make test` (they start "
        "embedded servers) or export DATABASE_URL=postgresql://user@host:port/db"
    )
# Django's native psycopg pool serves the web process. Celery's prefork children
# run one task at a time and Celery closes the pool after every task (STACK-NOTES
# pitfall 9), so the worker turns the pool off and keeps persistent connections.
DB_POOL = env_bool("OPSCONSOLE_DB_POOL", True)
DB_POOL_MAX = env_int("OPSCONSOLE_DB_POOL_MAX", 10, minimum=1, maximum=200)
_database = dj_database_url.parse(DATABASE_URL)
_database["OPTIONS"] = {"connect_timeout": 5}
if DB_POOL:
    _database["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX,
        "timeout": 10,
    }
else:
    _database["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60)
    _database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis ------------------------------------------------------------------
_redis_url = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if _redis_url is None:
    raise ImproperlyConfigured(
        "REDIS_URL is not set: run through `make run` / `make test` (they start an "
        "embedded Valkey) or export REDIS_URL=redis://host:port/0"
    )
REDIS_URL: str = _redis_url
# Every key the console writes itself starts with this prefix.
OPSCONSOLE_REDIS_PREFIX = env_str("OPSCONSOLE_REDIS_PREFIX", "ops:") or "ops:"

# One pool per process for the cache (and so the sessions), shared by every thread
# and live socket; past the bound a caller waits up to 2 s for a free connection.
CACHE_MAX_CONNECTIONS = env_int(
    "OPSCONSOLE_CACHE_MAX_CONNECTIONS", 20, minimum=1, maximum=1000
)
CACHES = {
    "default": {
        "BACKEND": "apps.core.cache.SharedPoolRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": OPSCONSOLE_REDIS_PREFIX + "cache",
        "OPTIONS": {
            "socket_connect_timeout": 2,
            "socket_timeout": 2,
            "pool_class": "redis.BlockingConnectionPool",
            "max_connections": CACHE_MAX_CONNECTIONS,
            "timeout": 2,
        },
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": OPSCONSOLE_REDIS_PREFIX + "asgi"},
    }
}

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("OPSCONSOLE_TASK_SOFT_TIME_LIMIT", 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("OPSCONSOLE_TASK_TIME_LIMIT", 90, minimum=1)
# A task not acknowledged within this time is redelivered; it must exceed the hard
# time limit so a slow task is never run twice while it is still running.
# Celery's own keys carry the console's prefix too, so a shared Redis stays tidy.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 600,
    "global_keyprefix": OPSCONSOLE_REDIS_PREFIX + "celery:",
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "global_keyprefix": OPSCONSOLE_REDIS_PREFIX + "celery:",
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's task events (sent, received, started, succeeded: four broadcasts per
# task) are for an external monitor such as Flower; the console reads none of them
# (worker reports and task signals feed the dashboard), so they are off unless asked.
_task_events = env_bool("OPSCONSOLE_CELERY_TASK_EVENTS", False)
CELERY_WORKER_SEND_TASK_EVENTS = _task_events
CELERY_TASK_SEND_SENT_EVENT = _task_events
# Healing's Celery action restarts worker pools through Celery control.
CELERY_WORKER_POOL_RESTARTS = env_bool("OPSCONSOLE_WORKER_POOL_RESTARTS", True)
CELERY_BEAT_SCHEDULER = "opsconsole.beat:LockedScheduler"
# Celery's Django fixup closes every database connection before and after each task
# unless this is set: a new PostgreSQL backend per task (an idle worker opened 1.5 a
# second; under load, one per batch of checks). Connections are reused instead, and
# opsconsole.celery closes the unusable or obsolete ones around each task the way
# Django does around a request (errors, CONN_MAX_AGE, health checks).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_BEAT_SCHEDULE_FILENAME = str(
    Path(env_str("OPSCONSOLE_VAR_DIR", str(BASE_DIR / "var")) or "var")
    / "celerybeat-schedule"
)

# --- Auth, sessions, security -----------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# The probes answer plain HTTP from the orchestrator inside the network.
SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^readyz$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In development WhiteNoise serves straight from the finders, so no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- opsconsole -------------------------------------------------------------
OPSCONSOLE_PROBE_TIMEOUT = (
    env_int("OPSCONSOLE_PROBE_TIMEOUT_MS", 1000, minimum=50) / 1000
)
OPSCONSOLE_TOKEN_TOUCH_SECONDS = 60
OPSCONSOLE_LIVE_QUEUE_MAX = env_int("OPSCONSOLE_LIVE_QUEUE_MAX", 256, minimum=4)
# Workers record each task run's outcome and runtime through metrics.record.
OPSCONSOLE_LIVE_TASK_OUTCOMES = env_bool("OPSCONSOLE_LIVE_TASK_OUTCOMES", True)
# Health checks, breaker calls and flag evaluations are recorded as metrics too.
OPSCONSOLE_METRICS_CONSOLE_SERIES = env_bool("OPSCONSOLE_METRICS_CONSOLE_SERIES", True)
# The only argv lists healing's command action may run (each split like a shell
# line, but never run through one).
OPSCONSOLE_HEALING_COMMANDS = [
    shlex.split(line) for line in env_list("OPSCONSOLE_HEALING_COMMANDS", [])
]

# --- Metrics (flow 5) --------------------------------------------------------
# The in-process buffer's bound; past it (with PostgreSQL away) samples spill to disk.
OPSCONSOLE_METRICS_BUFFER_MAX = env_int(
    "OPSCONSOLE_METRICS_BUFFER_MAX", 100_000, minimum=100
)
# The persister flushes every N ms, or sooner once M samples are waiting.
OPSCONSOLE_METRICS_FLUSH_INTERVAL_MS = env_int(
    "OPSCONSOLE_METRICS_FLUSH_INTERVAL_MS", 1000, minimum=10
)
OPSCONSOLE_METRICS_FLUSH_BATCH = env_int(
    "OPSCONSOLE_METRICS_FLUSH_BATCH", 10_000, minimum=1
)
OPSCONSOLE_METRICS_SPILL_DIR = Path(
    env_str("OPSCONSOLE_METRICS_SPILL_DIR", str(BASE_DIR / "var" / "metrics-spill"))
    or "var/metrics-spill"
)
OPSCONSOLE_METRICS_SPILL_MAX_MB = env_int(
    "OPSCONSOLE_METRICS_SPILL_MAX_MB", 256, minimum=1
)
# Tag keys whose values get their own rollups (every series of a name carrying
# key=value merged), so a query filtered by one such tag reads one sketch per
# bucket. For low-cardinality keys that group many series; a key with one value
# per series (host, component) would only copy the series' own rollups.
OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = env_list(
    "OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS", ["env", "group", "service", "region", "queue"]
)
if bad_keys := [  # the rule of apps.metrics.validation.TAG_KEY_RE
    key
    for key in OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]{0,63}", key)
]:
    raise ImproperlyConfigured(
        f"OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS: not tag keys: {', '.join(bad_keys)}"
    )
# Raw samples (whole day partitions), then minute, hour and day rollups.
OPSCONSOLE_METRICS_RAW_RETENTION_DAYS = env_int(
    "OPSCONSOLE_METRICS_RAW_RETENTION_DAYS", 7, minimum=1
)
OPSCONSOLE_METRICS_MINUTE_RETENTION_DAYS = env_int(
    "OPSCONSOLE_METRICS_MINUTE_RETENTION_DAYS", 30, minimum=1
)
OPSCONSOLE_METRICS_HOUR_RETENTION_DAYS = env_int(
    "OPSCONSOLE_METRICS_HOUR_RETENTION_DAYS", 400, minimum=1
)
OPSCONSOLE_METRICS_DAY_RETENTION_DAYS = env_int(
    "OPSCONSOLE_METRICS_DAY_RETENTION_DAYS", 1825, minimum=1
)
# Per metric name, first matching glob wins, days for some resolutions (the
# settings above for the rest and for names no rule matches). The console's own
# per-component and per-breaker series add a minute rollup per series a minute
# (30,000+ a minute at 10,000 components): minutes kept two days and hours 35
# are enough to roll hours and days, which keep uptime and latency for a year.
OPSCONSOLE_METRICS_RETENTION_RULES = env_rules(
    "OPSCONSOLE_METRICS_RETENTION_RULES",
    "component.check.*=minute:2,hour:35; breaker.calls=minute:2,hour:35",
    keys=("minute", "hour", "day"),
)
# /metrics answers without a token when true.
OPSCONSOLE_METRICS_PUBLIC = env_bool("OPSCONSOLE_METRICS_PUBLIC", False)
# The DB query monitor lists queries at least this slow as slow.
OPSCONSOLE_DB_SLOW_QUERY_MS = env_int("OPSCONSOLE_DB_SLOW_QUERY_MS", 200, minimum=1)

# --- Email: notification channels of kind "email" ------------------------------
# Development prints mail to the log; production sends through SMTP.
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost") or "localhost"
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = (
    env_str("DJANGO_DEFAULT_FROM_EMAIL", "opsconsole@localhost")
    or "opsconsole@localhost"
)

# --- Logging: JSON lines in production, readable in development --------------
LOG_LEVEL = env_str("OPSCONSOLE_LOG_LEVEL", "INFO") or "INFO"
LOG_FORMAT = env_str("OPSCONSOLE_LOG_FORMAT", "console" if DEBUG else "json")
if LOG_FORMAT not in ("console", "json"):
    raise ImproperlyConfigured(
        f"OPSCONSOLE_LOG_FORMAT={LOG_FORMAT!r} must be console or json"
    )
LOGGING_CONFIG = None
from apps.core.logging import configure_logging  # noqa: E402

configure_logging(level=LOG_LEVEL, json=LOG_FORMAT == "json")
