"""Settings for the test suite: production settings with plain HTTP, plain static storage, fast hashing."""

import os

# Production settings refuse to start without SECRET_KEY when DEBUG is off; the tests (and the workers
# they start) run with DEBUG off, so they bring a key of their own.
os.environ.setdefault("SECRET_KEY", "labelgen-test-suite-only-secret-key-never-used-in-production-3b1f")

from labelgen_web.settings import *  # noqa: E402, F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
