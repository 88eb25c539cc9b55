"""Runboard settings: one module, read from the environment, safe defaults for `make run`."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RUNBOARD_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment unless DEBUG=1")
    SECRET_KEY = "insecure-development-key-only-for-debug"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",  # serves the API docs' Swagger UI from its own static files (no CDN)
    "runs",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dashboard.site_urls"
ASGI_APPLICATION = "dashboard.asgi.application"
# Threads that serve HTTP requests in each `serve` process, each running a whole request
# (dashboard/threaded_http.py): the most requests it works on at once.
HTTP_THREADS = int(os.environ.get("HTTP_THREADS", "16"))

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The standalone site's own pages (login, logged out, admin branding); Runboard's pages
        # are app templates, so a project that mounts it needs no entry here.
        "DIRS": [Path(__file__).resolve().parent / "site_templates"],
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

# -- database -----------------------------------------------------------------------------------
# Default: a SQLite file under var/ (git-ignored). PostgreSQL: DATABASE_URL=postgres://…
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'runboard.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    DATABASES["default"]["OPTIONS"] = {
        # Writers take the lock at BEGIN, so a write never upgrades a read lock mid-transaction
        # (the usual source of "database is locked"); WAL lets readers run beside the writer.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-runboard.sqlite3")}
else:
    # Boards read the change log below the oldest open transaction of the cluster: a session
    # left idle in a transaction would hold every board back, so PostgreSQL ends it.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        "-c idle_in_transaction_session_timeout="
        + os.environ.get("IDLE_IN_TRANSACTION_TIMEOUT_MS", "60000"))
    # Under ASGI every request runs on a thread of its own, so without a pool every request
    # opened a new PostgreSQL connection (a backend fork, authentication, cold catalog caches):
    # a fifth of an API request's time (benchmarks/api_executor_cycle.py). psycopg's pool
    # hands connections back when Django closes them at the end of each request. Its size
    # bounds this process's connections; DB_POOL_MAX_SIZE=0 turns the pool off.
    # The few statements Runboard writes itself (`runs/prepared.py`) are prepared once per
    # connection: Django's client-side binding (every ORM query) never prepares, whatever the
    # threshold. Django leaves preparing off for poolers such as PgBouncer in transaction mode:
    # behind one, set DB_PREPARED_STATEMENTS=0.
    if os.environ.get("DB_PREPARED_STATEMENTS", "1") != "0":
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 1
    POOL_MAX_SIZE = int(os.environ.get("DB_POOL_MAX_SIZE", "16"))
    if POOL_MAX_SIZE:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(2, POOL_MAX_SIZE), "max_size": POOL_MAX_SIZE, "timeout": 10,
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- live updates -------------------------------------------------------------------------------
# Boards read the database's change log; Redis is optional and only carries a wake-up hint
# after each commit (a PUBLISH), which shortens commit → frame below the poll interval.
REDIS_URL = os.environ.get("REDIS_URL", "")
# Websocket consumers use no channel layer (each process's hub writes to its own sockets).
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# -- auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One time policy everywhere (README "Times"): TIME_ZONE, named, to the second.
FORMAT_MODULE_PATH = ["dashboard.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"refusals": {"()": "dashboard.log_filters.RefusalsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["refusals"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives "django" its own console handler under DEBUG, which
        # printed every 4xx twice (bare, then through root): root's handler alone.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.channels.server": {"level": "WARNING"},
        # The demo executors talk HTTP many times a second: keep the console for what matters.
        "httpx": {"level": "WARNING"},
    },
}

# -- Runboard -----------------------------------------------------------------------------------
RUNBOARD = {
    # Cards per board column (newest first); the rest is one click away in the run list.
    "BOARD_COLUMN_LIMIT": int(os.environ.get("BOARD_COLUMN_LIMIT", "50")),
    # Most runs one bulk action (run list or admin) may touch; above it, narrow the filter.
    "BULK_ACTION_CAP": int(os.environ.get("BULK_ACTION_CAP", "10000")),
    # Largest request body the HTTP API accepts (413 above it), checked before parsing.
    "API_MAX_BODY_BYTES": int(os.environ.get("API_MAX_BODY_BYTES", str(1024 * 1024))),
    # Seconds a process trusts an executor token's row it read (runs/tokens.py): how long a
    # token revoked or deleted elsewhere may still work here. 0 reads it on every API call.
    "TOKEN_CACHE_SECONDS": float(os.environ.get("TOKEN_CACHE_SECONDS", "2")),
    # Seconds between reads of the change log when no hint arrives (the most a lost hint,
    # or a change from a process that cannot hint, waits before it reaches a board).
    "LOG_POLL_INTERVAL": float(os.environ.get("LOG_POLL_INTERVAL", "1.0")),
    # Days change-log rows are kept (a client reconnecting with an older position takes a
    # snapshot). The audit trail is never pruned.
    "CHANGE_LOG_RETENTION_DAYS": float(os.environ.get("CHANGE_LOG_RETENTION_DAYS", "7")),
    # Days finished runs are kept before the clock (or `manage.py prune_runs`) deletes them
    # with their audit rows; history rollups stay. Off (None) unless set.
    # GET /metrics: a bearer token and/or client addresses allowed without one; neither: 404.
    "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),
    "METRICS_ALLOW": tuple(a for a in os.environ.get("METRICS_ALLOW", "").split(",") if a),
    "FINISHED_RUN_RETENTION": (float(os.environ["FINISHED_RUN_RETENTION_DAYS"])
                               if os.environ.get("FINISHED_RUN_RETENTION_DAYS") else None),
    # The Redis pub/sub channel of wake-up hints (processes of one deployment share it).
    "HINT_CHANNEL": os.environ.get("HINT_CHANNEL", "runboard:changes"),
}

# django.tasks: tasks enqueued with `.enqueue()` become runs; `manage.py runboard_worker`
# executes them. "tasks" is the demo's queue (runs.demo_tasks), kept apart from the queues its
# HTTP executors lease from.
TASKS = {
    "default": {
        "BACKEND": "runs.tasks.RunboardBackend",
        "QUEUES": ["default", "tasks"],
        "OPTIONS": {"max_attempts": 3},
    }
}
