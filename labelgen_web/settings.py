"""labelgen settings. Everything that differs between machines comes from the environment.

Embedded defaults need no server: SQLite and kombu's filesystem broker under ``var/``. Production and CI
set ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis); see README "Production".
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

from labelgen_web.env import env_bool, env_int, env_list, env_str, local_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("LABELGEN_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# Production must set SECRET_KEY, the same on every web and worker machine: a key generated per machine
# would break sessions and the signed volume URLs across a multi-machine web tier. Only DEBUG (the demo)
# keeps a generated one under var/ (never committed).
SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off labelgen refuses to guess one: set SECRET_KEY to one long "
            "random secret shared by every web and worker machine (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'). For the one-machine demo run with DEBUG=1 (make demo), which "
            "keeps a generated key in var/secret_key."
        )
    SECRET_KEY = local_secret_key(VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "accounts",
    "pipeline",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Anonymous users see only the login page: every view needs a login unless marked otherwise.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "labelgen_web.middleware.ReadableErrorsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

# --- Login throttling (django-axes): after LABELGEN_LOGIN_FAILURES failed logins for one user name, or
# from one client address, further attempts are refused (the right password included) for
# LABELGEN_LOGIN_LOCKOUT_MINUTES; a success resets the count. `manage.py axes_list_attempts` lists them,
# `manage.py axes_reset_username NAME` / `axes_reset` clear them; admins also on /accounts/lockouts/.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend, reading the user's roles in the same query as the user (accounts/backends.py)
    "accounts.backends.RoleBackend",
]
# Sessions are read from the cache (Redis in production) and written through to the database: a reader's
# request costs no session query while the cache holds it.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# 10, not fewer: the per-address count is shared by everyone behind one hospital NAT.
AXES_FAILURE_LIMIT = env_int("LABELGEN_LOGIN_FAILURES", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LABELGEN_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_address"  # the client, not the proxy, behind a proxy
LABELGEN_BEHIND_PROXY = env_bool("LABELGEN_BEHIND_PROXY", False)

ROOT_URLCONF = "labelgen_web.urls"
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
                "accounts.context_processors.roles",
            ],
        },
    },
]
WSGI_APPLICATION = "labelgen_web.wsgi.application"
ASGI_APPLICATION = "labelgen_web.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'labelgen.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file (not :memory:) test database, so a Celery worker process started by a test sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-labelgen.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # NiiVue's self-contained ESM bundle from npm (`npm ci`); never copied into the repository.
    ("niivue", BASE_DIR / "node_modules" / "@niivue" / "niivue" / "dist"),
    # plotly.js as shipped inside the pinned plotly Python package, so charts and their data agree.
    ("plotly", Path(plotly.__file__).resolve().parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or env_bool("LABELGEN_PLAIN_STATIC", False)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: volumes go through authenticated views
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR") or None
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 2000)

# --- Security. HTTPS hardening is on by default in production; LABELGEN_HTTPS=0 relaxes it for a
# plain-HTTP intranet deployment (then `check --deploy` warns about it, as it should).
HTTPS = env_bool("LABELGEN_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS and env_bool("SECURE_HSTS_PRELOAD", True)
if LABELGEN_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- Celery. The Run rows in the database are the source of truth for task state, so results are not kept.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Long GPU runs: a task is re-delivered only if its worker died (acks_late), not because it is slow.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 48 * 3600),
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery" / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "data_folder_in": str(_broker_dir),
            "data_folder_out": str(_broker_dir),
            "processed_folder": str(VAR_DIR / "celery" / "processed"),
            "control_folder": str(VAR_DIR / "celery" / "control"),
            "store_processed": False,
        }
    )
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"pipeline.tasks.*": {"queue": "gpu"}}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Study reports are cached per votes fingerprint, and cache.add() is the lock that queues the slow mixed
# model once. Production: CACHE_URL (Redis, Django's own RedisCache). Embedded default: a file cache shared
# by every web and worker process on the machine, whose add() is locked across processes.
CACHE_URL = env_str("CACHE_URL") or ""
if CACHE_URL:
    if not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} is not a Redis URL (redis://host:6379/1)")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "labelgen"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "labelgen_web.cache.LockedFileBasedCache",
            "LOCATION": env_str("LABELGEN_CACHE_DIR", str(VAR_DIR / "cache")),
            "OPTIONS": {"MAX_ENTRIES": 2000},
        }
    }

LABELGEN_DEVICE = env_str("LABELGEN_DEVICE", "auto")
# A memory budget: 64 Mi voxels is 256 MiB per volume as float32 (e.g. 512x512x256). Importing one case
# of two float32 modalities and a label at that size peaks at 1.1 GB RSS (bench/import_bench.py --at-limit), so
# several web and worker processes importing at once stay well inside a 24 GiB machine.
LABELGEN_MAX_VOXELS = env_int("LABELGEN_MAX_VOXELS", 64 * 1024 * 1024)
# The secret key of the DICOM import's `--case-name hash` rule. Keep it (with the backups) to get the same
# pseudonym for a patient on a later import; it defaults to SECRET_KEY.
LABELGEN_PSEUDONYM_KEY = env_str("LABELGEN_PSEUDONYM_KEY") or SECRET_KEY

# Runs heartbeat every LABELGEN_RUN_HEARTBEAT_SECONDS while they work. A running run whose heartbeat is
# older than LABELGEN_RUN_LOST_MINUTES is taken as lost (its worker died) and re-queued, up to
# LABELGEN_RUN_MAX_ATTEMPTS deliveries; every worker checks every LABELGEN_RUN_CHECK_SECONDS.
LABELGEN_RUN_HEARTBEAT_SECONDS = env_int("LABELGEN_RUN_HEARTBEAT_SECONDS", 30)
LABELGEN_RUN_LOST_MINUTES = env_int("LABELGEN_RUN_LOST_MINUTES", 3)
LABELGEN_RUN_LOST_SECONDS = env_int("LABELGEN_RUN_LOST_SECONDS", 60 * LABELGEN_RUN_LOST_MINUTES)
LABELGEN_RUN_MAX_ATTEMPTS = env_int("LABELGEN_RUN_MAX_ATTEMPTS", 3)
LABELGEN_RUN_CHECK_SECONDS = env_int("LABELGEN_RUN_CHECK_SECONDS", 60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes logs every login at INFO; lock-outs come at WARNING.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
