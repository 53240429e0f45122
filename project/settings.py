"""Django settings for Parley.

Every value comes from `project.env` (the only module that reads the environment); see
`.env.example` for the meaning and default of each variable. With nothing set, Parley runs on
the embedded defaults: SQLite in WAL mode, the in-memory channel layer, the local-memory cache
and the offline local assistant.
"""

from __future__ import annotations

import warnings
import zoneinfo

from csp.constants import NONE as _CSP_NONE
from csp.constants import SELF as _CSP_SELF
from django.core.exceptions import ImproperlyConfigured

from project import env, hours
from project.origins import parse_origin as _parse_origin

BASE_DIR = env.BASE_DIR

PARLEY_ENV = env.choice("PARLEY_ENV", "development", ("development", "production", "test"))
DEVELOPMENT = PARLEY_ENV in {"development", "test"}
_DEV_SECRET_KEY = "parley-development-only-secret-key-do-not-use-in-production"
SECRET_KEY = env.string("SECRET_KEY", _DEV_SECRET_KEY)
DEBUG = env.boolean("DEBUG", PARLEY_ENV == "development")

if not DEVELOPMENT and SECRET_KEY == _DEV_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when PARLEY_ENV is production")
if not DEVELOPMENT and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when PARLEY_ENV is production")

HOST = env.string("HOST", "127.0.0.1")
PORT = env.integer("PORT", 8000, minimum=1, maximum=65535)
ALLOWED_HOSTS = env.string_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEVELOPMENT else [])
CSRF_TRUSTED_ORIGINS = env.string_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "assistant",
    "analytics",
    "desk",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webhooks",
    "alerts",
    "api",
]

MIDDLEWARE = [
    "project.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.csp.StaffCSPMiddleware",  # the staff pages' Content-Security-Policy (see "Staff pages")
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
# Postgres uses psycopg 3's connection pool; persistent connections (CONN_MAX_AGE) are wrong
# under ASGI because each sync_to_async thread would pin its own connection.
_postgres = env.database_url("DATABASE_URL")
if _postgres is not None:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            **_postgres,
            "CONN_MAX_AGE": 0,
            "OPTIONS": {
                # No JIT: the chat's and the desk's queries are small and many; Postgres's cost
                # estimates over tiny tables with joins (the desk's list of agents) crossed
                # jit_above_cost and spent 550 ms compiling a 1 ms query (bench/desk.py).
                "options": "-c jit=off",
                "pool": {
                    "min_size": env.integer("DATABASE_POOL_MIN_SIZE", 2, minimum=0),
                    "max_size": env.integer("DATABASE_POOL_MAX_SIZE", 10, minimum=1),
                    "timeout": env.decimal("DATABASE_POOL_TIMEOUT_S", 10.0, minimum=0.1),
                },
            },
        }
    }
else:
    # SQLite tuned for many concurrent async writers: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN (so no deadlock-prone lock upgrade), and the busy
    # timeout makes writers queue instead of failing with "database is locked".
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.path("SQLITE_PATH", BASE_DIR / "db.sqlite3"),
            # Every database_sync_to_async call of a daphne process runs on one thread, so one
            # persistent connection serves them all; reopening it (and re-running the PRAGMAs)
            # per call cost ~1.3 ms each (docs/benchmarks.md).
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"),
            },
            "TEST": {"NAME": env.path("SQLITE_TEST_PATH", BASE_DIR / ".test-db.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer and cache ----------------------------------------------------------------
REDIS_URL = env.redis_url("REDIS_URL")
if REDIS_URL is not None:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's default 5 s socket timeout races channels_redis's 5 s BZPOPMIN and
                # kills idle consumers with 1011; give the socket more time than the pop.
                # redis-py 8 caps a pool at 100 connections and refuses the 101st at once
                # (MaxConnectionsError): 200 visitors saying hello together each borrow one
                # for their group_add. REDIS_MAX_CONNECTIONS is per server process.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "socket_connect_timeout": 5,
                        "max_connections": env.integer("REDIS_MAX_CONNECTIONS", 1000, minimum=10, maximum=100_000),
                    }
                ],
                "prefix": env.string("CHANNEL_LAYER_PREFIX", "parley"),
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.string("CACHE_KEY_PREFIX", "parley"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "parley"}}

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
# Day boundaries of analytics rollups and reports, and the hours of the peak-hours chart.
TIME_ZONE = env.string("TIME_ZONE", "UTC")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE {TIME_ZONE!r} is not a known time zone (e.g. Europe/Paris)") from None
USE_I18N = True
USE_TZ = True
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 default, opted into now

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", BASE_DIR / ".staticfiles")
WHITENOISE_USE_FINDERS = True  # serve straight from static/ so `make run` needs no collectstatic
WHITENOISE_AUTOREFRESH = DEBUG
# STATIC_ROOT exists only after collectstatic (the Docker image); finders serve static/ before that.
warnings.filterwarnings("ignore", message="No directory at: ")

if not DEVELOPMENT:
    SESSION_COOKIE_SECURE = env.boolean("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # No SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from anyone. The proxy
    # middleware (project/proxy.py) sets the scheme from it only for a trusted proxy.

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"bm25s": {"level": "WARNING"}},
    "root": {
        "handlers": ["console"],
        "level": env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
    },
}

# --- Parley: assistant and chat -------------------------------------------------------------
KNOWLEDGE_DIR = env.path("KNOWLEDGE_DIR", BASE_DIR / "docs" / "knowledge")
KNOWLEDGE_MIN_SCORE = env.decimal("KNOWLEDGE_MIN_SCORE", 1.5, minimum=0)
KNOWLEDGE_MAX_SECTIONS = env.integer("KNOWLEDGE_MAX_SECTIONS", 3, minimum=1, maximum=10)
KNOWLEDGE_RELOAD_CHECK_S = env.decimal("KNOWLEDGE_RELOAD_CHECK_S", 2.0, minimum=0)
LOCAL_TOKEN_DELAY_MS = env.integer("LOCAL_TOKEN_DELAY_MS", 20, minimum=0, maximum=5000)
LOCAL_CHUNK_WORDS = env.integer("LOCAL_CHUNK_WORDS", 1, minimum=0)
ASSISTANT_GREETING = env.string(
    "ASSISTANT_GREETING", "Hi! I'm Parley's assistant. Ask me anything about installing or running Parley."
)
ASSISTANT_QUICK_REPLIES = env.string_list(
    "ASSISTANT_QUICK_REPLIES",
    ["How do I embed the widget?", "Which AI providers are supported?", "How do I scale Parley?"],
    separator="|",
)

# --- Parley: AI providers (docs/knowledge/ai-providers.md) ---------------------------------
PROVIDER_NAMES = ("gemini", "openai", "anthropic", "local")
OPENAI_API_KEY = env.optional_string("OPENAI_API_KEY")
OPENAI_BASE_URL = env.optional_string("OPENAI_BASE_URL")
OPENAI_MODEL = env.string("OPENAI_MODEL", "gpt-4.1-mini")
OPENAI_TEMPERATURE = env.decimal("OPENAI_TEMPERATURE", 0.3, minimum=0, maximum=2)
OPENAI_MAX_TOKENS = env.integer("OPENAI_MAX_TOKENS", 800, minimum=1)
ANTHROPIC_API_KEY = env.optional_string("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env.optional_string("ANTHROPIC_BASE_URL")
ANTHROPIC_MODEL = env.string("ANTHROPIC_MODEL", "claude-haiku-4-5")
ANTHROPIC_MAX_TOKENS = env.integer("ANTHROPIC_MAX_TOKENS", 800, minimum=1)
GEMINI_API_KEY = env.optional_string("GEMINI_API_KEY")
GEMINI_BASE_URL = env.optional_string("GEMINI_BASE_URL")
GEMINI_MODEL = env.string("GEMINI_MODEL", "gemini-2.5-flash")
GEMINI_TEMPERATURE = env.decimal("GEMINI_TEMPERATURE", 0.3, minimum=0, maximum=2)
GEMINI_MAX_TOKENS = env.integer("GEMINI_MAX_TOKENS", 800, minimum=1)
_KEYED = {"gemini": GEMINI_API_KEY, "openai": OPENAI_API_KEY, "anthropic": ANTHROPIC_API_KEY}
# Default chain: every cloud provider whose key is set, then the offline assistant as last resort.
AI_PROVIDERS = [
    name.lower() for name in env.string_list("AI_PROVIDERS", [*(n for n, k in _KEYED.items() if k), "local"])
]
_unknown = [name for name in AI_PROVIDERS if name not in PROVIDER_NAMES]
if _unknown or not AI_PROVIDERS or len(set(AI_PROVIDERS)) != len(AI_PROVIDERS):
    raise ImproperlyConfigured(
        f"AI_PROVIDERS must list distinct names among {', '.join(PROVIDER_NAMES)}; "
        f"got {', '.join(AI_PROVIDERS) or 'nothing'}"
    )
_prompt_file = env.optional_string("ASSISTANT_SYSTEM_PROMPT_FILE")
if _prompt_file is not None:
    _prompt_path = env.path("ASSISTANT_SYSTEM_PROMPT_FILE", BASE_DIR)
    try:
        _prompt_from_file: str | None = _prompt_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"ASSISTANT_SYSTEM_PROMPT_FILE cannot be read: {exc}") from None
else:
    _prompt_from_file = None
ASSISTANT_SYSTEM_PROMPT = _prompt_from_file or env.string(
    "ASSISTANT_SYSTEM_PROMPT",
    "You are the support assistant of this website. Answer the visitor's question briefly and "
    "accurately, using the knowledge base excerpts provided. If they do not contain the answer, "
    "say so plainly and do not invent facts, links or prices. Answer in the visitor's language.",
)
PROMPT_HISTORY_TOKENS = env.integer("PROMPT_HISTORY_TOKENS", 2000, minimum=0)
PROVIDER_CONNECT_TIMEOUT_S = env.decimal("PROVIDER_CONNECT_TIMEOUT_S", 5.0, minimum=0.05)
PROVIDER_FIRST_TOKEN_TIMEOUT_S = env.decimal("PROVIDER_FIRST_TOKEN_TIMEOUT_S", 15.0, minimum=0.05)
PROVIDER_IDLE_TIMEOUT_S = env.decimal("PROVIDER_IDLE_TIMEOUT_S", 20.0, minimum=0.05)
PROVIDER_MAX_RETRIES = env.integer("PROVIDER_MAX_RETRIES", 2, minimum=0, maximum=5)
PROVIDER_BACKOFF_BASE_S = env.decimal("PROVIDER_BACKOFF_BASE_S", 0.25, minimum=0)
PROVIDER_RETRY_AFTER_CAP_S = env.decimal("PROVIDER_RETRY_AFTER_CAP_S", 5.0, minimum=0)
PROVIDER_BREAKER_THRESHOLD = env.integer("PROVIDER_BREAKER_THRESHOLD", 5, minimum=1)
PROVIDER_BREAKER_COOLDOWN_S = env.decimal("PROVIDER_BREAKER_COOLDOWN_S", 30.0, minimum=0.1)
# Cached answers to a session's first question: on for the local assistant, opt-in (a TTL) for cloud.
RESPONSE_CACHE_LOCAL_TTL_S = env.integer("RESPONSE_CACHE_LOCAL_TTL_S", 86400, minimum=0)
RESPONSE_CACHE_TTL_S = env.integer("RESPONSE_CACHE_TTL_S", 0, minimum=0)
# Session titles from a short provider call (when a cloud provider is configured).
TITLE_FROM_PROVIDER = env.boolean("TITLE_FROM_PROVIDER", True)

CHAT_MAX_MESSAGE_CHARS = env.integer("CHAT_MAX_MESSAGE_CHARS", 1000, minimum=1, maximum=100_000)
CHAT_MAX_FRAME_BYTES = env.integer("CHAT_MAX_FRAME_BYTES", 64 * 1024, minimum=1024)
CHAT_REPLY_TIMEOUT_S = env.decimal("CHAT_REPLY_TIMEOUT_S", 120.0, minimum=1)
CHAT_HISTORY_LIMIT = env.integer("CHAT_HISTORY_LIMIT", 200, minimum=1)
CHAT_DELTA_INTERVAL_MS = env.integer("CHAT_DELTA_INTERVAL_MS", 50, minimum=0, maximum=1000)
CHAT_CHECKPOINT_INTERVAL_S = env.decimal("CHAT_CHECKPOINT_INTERVAL_S", 2.0, minimum=0.1)
# Process liveness (docs/security.md, "Crashes and restarts"): each server process writes a
# heartbeat; replies and sessions of a process silent this long (or stopped) are ended at once.
PROCESS_HEARTBEAT_S = env.decimal("PROCESS_HEARTBEAT_S", 5.0, minimum=0.5, maximum=300)
PROCESS_DEAD_AFTER_S = env.decimal("PROCESS_DEAD_AFTER_S", 30.0, minimum=2)
if PROCESS_DEAD_AFTER_S < 3 * PROCESS_HEARTBEAT_S:
    raise ImproperlyConfigured("PROCESS_DEAD_AFTER_S must be at least 3 x PROCESS_HEARTBEAT_S")
# Graceful shutdown (docs/security.md, "Graceful shutdown and rolling restarts"): on SIGTERM,
# `manage.py serve` lets replies in flight run this long, then interrupts the rest.
SHUTDOWN_GRACE_S = env.decimal("SHUTDOWN_GRACE_S", 20.0, minimum=0)
# Human handoff (docs/desk.md): an agent who switched "available" on counts as available while
# their desk was heard from within this many seconds (a closed laptop stops counting).
BUSINESS_HOURS_TZ = env.string("BUSINESS_HOURS_TZ", TIME_ZONE)
try:
    BUSINESS_HOURS = hours.parse(env.string("BUSINESS_HOURS", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"BUSINESS_HOURS: {exc}") from None
try:
    zoneinfo.ZoneInfo(BUSINESS_HOURS_TZ)
except (ValueError, zoneinfo.ZoneInfoNotFoundError):
    raise ImproperlyConfigured(f"BUSINESS_HOURS_TZ {BUSINESS_HOURS_TZ!r} is not a known time zone") from None
DESK_FRAME_RATE_LIMIT_PER_MINUTE = env.integer("DESK_FRAME_RATE_LIMIT_PER_MINUTE", 600, minimum=10, maximum=60000)
CHAT_TYPING_RATE_LIMIT_PER_MINUTE = env.integer("CHAT_TYPING_RATE_LIMIT_PER_MINUTE", 30, minimum=1, maximum=600)
DESK_PRESENCE_TTL_S = env.decimal("DESK_PRESENCE_TTL_S", 90.0, minimum=5, maximum=3600)
# A visitor waiting this long for a person with nobody claiming them: the agents get one email
# (0 = never). DESK_URL (the desk's public address) makes it a link.
HANDOFF_NOTIFY_AFTER_S = env.integer("HANDOFF_NOTIFY_AFTER_S", 120, minimum=0, maximum=7 * 86400)
DESK_URL = env.string("DESK_URL", "")
# A visitor whose every connection closed while waiting for a person, and who has not come back
# within this many seconds, leaves the queue (the request ends `abandoned`; 0 = never).
HANDOFF_ABANDON_AFTER_S = env.integer("HANDOFF_ABANDON_AFTER_S", 120, minimum=0, maximum=86400)
CHAT_RATE_LIMIT_PER_MINUTE = env.integer("CHAT_RATE_LIMIT_PER_MINUTE", 20, minimum=1)
CHAT_RATE_LIMIT_BURST = env.integer("CHAT_RATE_LIMIT_BURST", 5, minimum=1)
CHAT_IP_RATE_LIMIT_PER_MINUTE = env.integer("CHAT_IP_RATE_LIMIT_PER_MINUTE", 60, minimum=1)
CHAT_FRAME_RATE_LIMIT_PER_MINUTE = env.integer("CHAT_FRAME_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
MAX_CONNECTIONS_PER_IP = env.integer("MAX_CONNECTIONS_PER_IP", 20, minimum=1)
# --- Hostile traffic (docs/security.md) ---
# Frames a connection may send at once beyond its steady rate; past it the connection is closed (1008).
CHAT_FRAME_BURST = env.integer("CHAT_FRAME_BURST", 60, minimum=1)
# Bytes sent to a client and not yet taken by it; past this the connection is dropped.
CHAT_SEND_BUFFER_MAX_BYTES = env.integer("CHAT_SEND_BUFFER_MAX_BYTES", 1024 * 1024, minimum=64 * 1024)
# Seconds a client has to send a complete HTTP request head (also a websocket handshake).
HTTP_HEADER_TIMEOUT_S = env.decimal("HTTP_HEADER_TIMEOUT_S", 10.0, minimum=0.5)
# New conversations written per client IP per hour (shared by every process on Redis).
CHAT_SESSIONS_PER_IP_PER_HOUR = env.integer("CHAT_SESSIONS_PER_IP_PER_HOUR", 100, minimum=1)
# Widget events stored per conversation, and per connection per minute.
CHAT_EVENTS_PER_SESSION = env.integer("CHAT_EVENTS_PER_SESSION", 200, minimum=1)
CHAT_EVENT_RATE_LIMIT_PER_MINUTE = env.integer("CHAT_EVENT_RATE_LIMIT_PER_MINUTE", 30, minimum=1)

WIDGET_ALLOWED_ORIGINS = env.string_list("WIDGET_ALLOWED_ORIGINS", [])
WIDGET_IDENTITY_SECRET = env.optional_string("WIDGET_IDENTITY_SECRET")
WIDGET_IDENTITY_REQUIRED = env.boolean("WIDGET_IDENTITY_REQUIRED", False)
# Signed identities expire: a day covers a tab left open through a working day (the widget re-sends
# the page's identity on every reconnect) and ends a copied signature's use the next day.
WIDGET_IDENTITY_MAX_AGE_S = env.integer("WIDGET_IDENTITY_MAX_AGE_S", 86400, minimum=60)
if WIDGET_IDENTITY_REQUIRED and not WIDGET_IDENTITY_SECRET:
    raise ImproperlyConfigured("WIDGET_IDENTITY_REQUIRED needs WIDGET_IDENTITY_SECRET")
# The widget's pre-chat contact form: off, optional (the visitor may skip it), or required
# (no chatting until it is sent). Sent to the widget in `welcome.config.ask_contact`.
WIDGET_ASK_CONTACT = env.choice("WIDGET_ASK_CONTACT", "off", ("off", "optional", "required"))

# --- Analytics ------------------------------------------------------------------------------
ANALYTICS_TRACKER = env.boolean("ANALYTICS_TRACKER", True)
ANALYTICS_CHECKPOINT_SECONDS = env.decimal("ANALYTICS_CHECKPOINT_SECONDS", 5.0, minimum=0.1)
ANALYTICS_CHECKPOINT_MESSAGES = env.integer("ANALYTICS_CHECKPOINT_MESSAGES", 10, minimum=1)
ANALYTICS_RECOVERY_INTERVAL_S = env.integer("ANALYTICS_RECOVERY_INTERVAL_S", 60, minimum=0)
ANALYTICS_RECOVERY_GRACE_S = env.integer("ANALYTICS_RECOVERY_GRACE_S", 30, minimum=0)
RESOLUTION_IDLE_MINUTES = env.integer("RESOLUTION_IDLE_MINUTES", 30, minimum=1)
LIVE_SESSION_WINDOW_S = env.integer("LIVE_SESSION_WINDOW_S", 300, minimum=10)
# First-contact resolution: a resolved session counts only if the same identified visitor starts no
# new session within this many days (docs/analytics.md, "Human support").
FCR_WINDOW_DAYS = env.integer("FCR_WINDOW_DAYS", 7, minimum=1, maximum=365)
ANALYTICS_TOPICS_FILE = env.path("ANALYTICS_TOPICS_FILE", BASE_DIR / "analytics" / "data" / "topics.toml")
ANALYTICS_PRICES_FILE = (
    env.path("ANALYTICS_PRICES_FILE", BASE_DIR) if env.optional_string("ANALYTICS_PRICES_FILE") else None
)

# --- Staff pages and sockets (docs/security.md, section staff) ------------------------------
# Origins, besides the site's own, whose pages may open staff websockets (/ws/analytics/ and any
# later staff socket); exact scheme://host[:port]. Refused: every other origin, null, none.
STAFF_ALLOWED_ORIGINS = env.string_list("STAFF_ALLOWED_ORIGINS", [])
if _bad_staff_origins := [item for item in STAFF_ALLOWED_ORIGINS if not _parse_origin(item)]:
    raise ImproperlyConfigured(f"STAFF_ALLOWED_ORIGINS: not an origin (scheme://host[:port]): {_bad_staff_origins[0]}")
# django-csp 4 (project.csp.StaffCSPMiddleware applies it under /admin/ only): no inline script
# or style; the dashboard's websocket is same-origin ('self', plus ws:/wss: of the host).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [_CSP_SELF],
        "script-src": [_CSP_SELF],
        "style-src": [_CSP_SELF],
        "img-src": [_CSP_SELF],
        "font-src": [_CSP_SELF],
        "connect-src": [_CSP_SELF],
        "object-src": [_CSP_NONE],
        "base-uri": [_CSP_NONE],
        "form-action": [_CSP_SELF],
        "frame-ancestors": [_CSP_NONE],
    }
}

# --- Email (weekly reports) -----------------------------------------------------------------
EMAIL_BACKEND = env.string("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.string("EMAIL_HOST", "localhost")
EMAIL_PORT = env.integer("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.string("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.string("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.boolean("EMAIL_USE_TLS", False)
# Seconds an SMTP server may take to answer before the send fails (no limit by default in Django:
# a mail server that never answers would hold the desk's notifications for good).
EMAIL_TIMEOUT = env.integer("EMAIL_TIMEOUT", 30, minimum=1, maximum=600)
DEFAULT_FROM_EMAIL = env.string("DEFAULT_FROM_EMAIL", "Parley <parley@localhost>")

# --- Server ---------------------------------------------------------------------------------
# daphne refuses bigger websocket frames from their header, before buffering them (close 1009).
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = CHAT_MAX_FRAME_BYTES
DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = CHAT_MAX_FRAME_BYTES

# --- Client addresses behind a reverse proxy (project/proxy.py, docs/security.md) -------------
# X-Forwarded-For / -Proto are believed only when on AND the direct peer is a trusted proxy.
TRUST_PROXY_HEADERS = env.boolean("TRUST_PROXY_HEADERS", False)
# Addresses/networks of the proxies: X-Forwarded-For is read from the right, skipping these.
TRUSTED_PROXIES = env.ip_networks("TRUSTED_PROXIES", ["127.0.0.0/8", "::1"])
# Instead of skipping by network: the client is the N-th X-Forwarded-For entry from the right.
TRUSTED_PROXY_HOPS = env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=20)

# --- Public REST API (/api/v1/, api/; docs/api.md) ---------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    # JSON only: no browsable API (the interactive docs are /api/v1/docs/).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Every view names its own authentication and permissions (api/visitor, api/staff).
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Parley's public REST API: chat as a visitor, read analytics and exports as staff (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the drf-spectacular-sidecar package: no CDN, works offline and under the staff CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema and its docs page are public (the API is documented in the open; every
    # operation still checks its own credentials).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema_hooks.close_request_bodies",
    ],
}
# (api helper: more settings here)
# Staff side (api/staff/, docs/api.md "Staff API"): requests a minute per API key, counted in the
# cache (shared through Redis when REDIS_URL is set); over it, 429 `rate_limited` with Retry-After.
# 0 turns the limit off. Staff sessions are not limited.
API_KEY_RATE_LIMIT_PER_MINUTE = env.integer("API_KEY_RATE_LIMIT_PER_MINUTE", 600, minimum=0, maximum=1_000_000)
# Two `status` enums in the schema (a session's, a message's): named, not numbered.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "SessionStatusEnum": ["active", "closed"],
        "MessageStatusEnum": ["complete", "streaming", "stopped", "interrupted", "failed"],
    }
)
# Visitor side (api/visitor; docs/api.md, "Visitor side"). The chat's own limits apply as on the
# websocket: CHAT_SESSIONS_PER_IP_PER_HOUR for new conversations, CHAT_IP_RATE_LIMIT_PER_MINUTE per
# address and CHAT_RATE_LIMIT_PER_MINUTE per conversation for messages, CHAT_EVENT_RATE_LIMIT_PER_MINUTE
# per conversation for feedback, ratings, handoffs and ends, CHAT_MAX_MESSAGE_CHARS, CHAT_REPLY_TIMEOUT_S.
# Requests per client address per minute to any visitor endpoint (the API's counterpart of the
# websocket's frame limit; shared by every process through Redis when REDIS_URL is set).
API_REQUESTS_PER_IP_PER_MINUTE = env.integer("API_REQUESTS_PER_IP_PER_MINUTE", 600, minimum=1)
# Turns (POST .../messages/) a server process runs at once for the API; beyond it: 503 with Retry-After.
# Each holds a request open until its reply ends, so this bounds what slow replies can pile up.
API_MAX_TURNS_IN_FLIGHT = env.integer("API_MAX_TURNS_IN_FLIGHT", 200, minimum=1, maximum=100_000)
# Seconds between keep-alive comments on an idle event stream (proxies drop silent connections).
API_SSE_KEEPALIVE_S = env.decimal("API_SSE_KEEPALIVE_S", 15.0, minimum=0.5, maximum=300.0)
# Seconds an API conversation stays "connected" in a single-process server (in-memory channel layer)
# after its last request, so that analytics does not reload the conversation's numbers for every
# request (with several processes it never lingers: see api/visitor/presence.py). 0: never.
API_PRESENCE_LINGER_S = env.decimal("API_PRESENCE_LINGER_S", 30.0, minimum=0.0, maximum=3600.0)
# Names of the visitor side's choice sets in the OpenAPI schema (several fields share a name).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),
    "VisitorRatingInputEnum": ["up", "down", "positive", "negative"],
    "VisitorThumbEnum": ["up", "down"],
    "VisitorIdentityUserTypeEnum": ["client", "provider"],
    "VisitorUserTypeEnum": ["anonymous", "client", "provider"],
}
# The visitor side's ids are parsed by its views (a malformed one gets a JSON answer); they are UUIDs.
SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("PATH_CONVERTER_OVERRIDES", {}),
    "visitor_id": {"type": "string", "format": "uuid"},
}

# --- Webhooks (webhooks/; docs/api.md, "Webhooks") --------------------------------------------
# Private, loopback, link-local and other non-public targets are refused (SSRF), when an endpoint
# is saved and again at each send, unless this is on (development, tests, a private receiver).
WEBHOOK_ALLOW_PRIVATE = env.boolean("WEBHOOK_ALLOW_PRIVATE", False)
# Seconds one delivery may take, connection to the last byte read; then it counts as failed.
WEBHOOK_TIMEOUT_S = env.decimal("WEBHOOK_TIMEOUT_S", 10.0, minimum=0.5, maximum=120.0)
# Whether this process delivers (every `manage.py serve` does by default). Off: it only writes
# the outbox, and other processes (`manage.py deliver_webhooks`, other servers) deliver.
WEBHOOK_DELIVER = env.boolean("WEBHOOK_DELIVER", True)
# While the chat keeps a server's event loop busy, its deliveries wait (one trickles out every
# 0.2 s), at most this many seconds; then they go at full speed. 0: never wait for the chat.
WEBHOOK_DEFER_MAX_S = env.decimal("WEBHOOK_DEFER_MAX_S", 30.0, minimum=0.0, maximum=3600.0)
# Deliveries in flight at once per server process.
WEBHOOK_MAX_CONCURRENCY = env.integer("WEBHOOK_MAX_CONCURRENCY", 16, minimum=1, maximum=512)
# Seconds between two looks at the outbox for rows other processes wrote or retries come due
# (rows written by this process wake its dispatcher at once).
WEBHOOK_POLL_INTERVAL_S = env.decimal("WEBHOOK_POLL_INTERVAL_S", 2.0, minimum=0.05, maximum=300.0)
# Seconds before each retry after a failed attempt (each with ±20 % jitter); after the last, the
# delivery is given up. The default is Standard Webhooks' (Svix's): about 27 h in all.
_WEBHOOK_RETRY_SCHEDULE = env.string_list(
    "WEBHOOK_RETRY_SCHEDULE_S", ["5", "300", "1800", "7200", "18000", "36000", "36000"]
)
try:
    WEBHOOK_RETRY_SCHEDULE_S = tuple(float(item) for item in _WEBHOOK_RETRY_SCHEDULE)
except ValueError:
    raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE_S: a comma-separated list of seconds, e.g. 5,300,1800") from None
if not all(0 <= delay <= 7 * 86400 for delay in WEBHOOK_RETRY_SCHEDULE_S) or len(WEBHOOK_RETRY_SCHEDULE_S) > 50:
    raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE_S: at most 50 delays, each 0 to 604800 seconds")
# An endpoint whose attempts have all failed for this many hours, and at least
# WEBHOOK_DISABLE_AFTER_FAILURES of them in a row, is disabled and its owner emailed.
WEBHOOK_DISABLE_AFTER_H = env.decimal("WEBHOOK_DISABLE_AFTER_H", 24.0, minimum=0.0, maximum=24.0 * 90)
WEBHOOK_DISABLE_AFTER_FAILURES = env.integer("WEBHOOK_DISABLE_AFTER_FAILURES", 10, minimum=1, maximum=100_000)
# Days delivered and given-up deliveries (with their attempt log) are kept for the admin's log.
WEBHOOK_RETENTION_DAYS = env.integer("WEBHOOK_RETENTION_DAYS", 14, minimum=1, maximum=3650)
# Seconds a process trusts its list of active endpoints before reading it again (a change made
# in this process applies at once; other processes see it within this delay).
WEBHOOK_ROUTES_TTL_S = env.decimal("WEBHOOK_ROUTES_TTL_S", 5.0, minimum=0.0, maximum=300.0)
# httpx2 logs every request at INFO: one line per webhook delivery. Failures are logged by the
# dispatcher (and every attempt is in the admin's delivery log) instead.
LOGGING["loggers"]["httpx2"] = {"level": "WARNING"}

# --- Alerts (alerts/; docs/api.md, "Alerts") --------------------------------------------------
# (alerts helper: settings here)
# Seconds between two evaluations of the alert rules in each server process (0: no sweep; run
# `manage.py evaluate_alerts` from cron instead).
ALERTS_INTERVAL_S = env.integer("ALERTS_INTERVAL_S", 60, minimum=0, maximum=86_400)
# Sender of alert emails (empty: DEFAULT_FROM_EMAIL).
ALERT_EMAIL_FROM = env.string("ALERT_EMAIL_FROM", "")
# Seconds a Slack-compatible incoming webhook may take to answer.
ALERT_SLACK_TIMEOUT_S = env.decimal("ALERT_SLACK_TIMEOUT_S", 5.0, minimum=0.5, maximum=60)
# The site's public address (https://support.example.com): alert emails and Slack messages link
# to the alert history with it. Empty: the link is a path.
ALERTS_SITE_URL = env.string("ALERTS_SITE_URL", "").rstrip("/")
if ALERTS_SITE_URL and not _parse_origin(ALERTS_SITE_URL):
    raise ImproperlyConfigured(f"ALERTS_SITE_URL: not an address like https://host[:port]: {ALERTS_SITE_URL[:80]}")

# --- Conversation analysis (analytics/intelligence/; docs/intelligence.md) ---------------------
# Analyse each live session once it closes: auto = only when a cloud provider (a non-local
# provider with its key) is in AI_PROVIDERS; true/false force it.
ANALYSIS_ON_CLOSE = env.choice("ANALYSIS_ON_CLOSE", "auto", ("auto", "true", "false"))
# Conversations analysed at once (by `analyze_conversations`, and by each server process's close hook).
ANALYSIS_CONCURRENCY = env.integer("ANALYSIS_CONCURRENCY", 4, minimum=1, maximum=64)
# Seconds one conversation's analysis call may take, retries and Retry-After waits included.
ANALYSIS_TIMEOUT_S = env.decimal("ANALYSIS_TIMEOUT_S", 60.0, minimum=1.0, maximum=600.0)
# Characters of transcript sent to the model; a longer one keeps its start and its end.
ANALYSIS_MAX_CHARS = env.integer("ANALYSIS_MAX_CHARS", 12_000, minimum=500, maximum=200_000)

# --- Conversation import (analytics/imports/; docs/import.md) ----------------------------------
# Company messages whose text matches one of these (case-insensitive; a `re:` prefix makes the
# rest a regular expression, anything else is a plain substring) are automated replies: dropped
# before the metrics and counted in the import's summary. PowerPulse's USSD hint `*977#` by default.
# One pattern per line; in a one-line value a literal backslash-n separates them (project/env.py).
IMPORT_AUTORESPONSE_PATTERNS = env.text_patterns("IMPORT_AUTORESPONSE_PATTERNS", ["*977#"])
# Hours of silence that end a conversation inside one fb-grouped chat id (one customer's whole thread).
IMPORT_CONVERSATION_GAP_HOURS = env.decimal("IMPORT_CONVERSATION_GAP_HOURS", 24.0, minimum=0.01, maximum=24.0 * 365)
# Largest file the upload page and POST /api/v1/imports/ accept, in bytes (the command has no limit).
MAX_IMPORT_BYTES = env.integer("MAX_IMPORT_BYTES", 100 * 1024 * 1024, minimum=1024, maximum=64 * 1024**3)
