"""Settings come from the environment; production settings pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, **env):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "SECRET_KEY", "DEBUG",
                             "CACHE_URL")}
    full_env.update({"DJANGO_SETTINGS_MODULE": "labelgen_web.settings", **env})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_with_debug_off(tmp_path):
    out = manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="0", ALLOWED_HOSTS="labelgen.example.org",
                 SECRET_KEY="k" * 20 + "-production-secret-not-short-9f8e7d6c5b4a", LABELGEN_VAR_DIR=str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_plain_http_intranet_mode_is_flagged_by_check_deploy(tmp_path):
    out = manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="0", ALLOWED_HOSTS="labelgen.local",
                 LABELGEN_HTTPS="0", SECRET_KEY="k" * 60, LABELGEN_VAR_DIR=str(tmp_path))
    assert out.returncode != 0 and "SECURE_SSL_REDIRECT" in out.stderr + out.stdout


def test_bad_boolean_names_the_variable(tmp_path):
    out = manage("check", DEBUG="perhaps", LABELGEN_VAR_DIR=str(tmp_path))
    assert out.returncode != 0 and "DEBUG='perhaps' is not a boolean" in out.stderr


def test_database_and_broker_urls_come_from_env(tmp_path):
    code = ("from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']"
            "['NAME'], s.CELERY_BROKER_URL, s.MEDIA_ROOT, s.LABELGEN_DEVICE)")
    out = manage("shell", "-v", "0", "-c", code, DATABASE_URL="postgres://u@db.internal:5432/labelgen",
                 CELERY_BROKER_URL="redis://cache:6379/0", MEDIA_ROOT="/srv/media", LABELGEN_DEVICE="cuda:1",
                 SECRET_KEY="x" * 50, LABELGEN_VAR_DIR=str(tmp_path))
    assert out.stdout.split() == ["django.db.backends.postgresql", "labelgen", "redis://cache:6379/0",
                                  "/srv/media", "cuda:1"], out.stderr


def test_embedded_defaults_need_no_server(tmp_path):
    code = "from django.conf import settings as s; print(s.DATABASES['default']['NAME'], s.CELERY_BROKER_URL)"
    out = manage("shell", "-v", "0", "-c", code, DEBUG="1", LABELGEN_VAR_DIR=str(tmp_path))
    assert out.stdout.split() == [str(tmp_path / "labelgen.sqlite3"), "filesystem://"], out.stderr
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_secret_key(tmp_path):
    out = manage("check", DEBUG="0", ALLOWED_HOSTS="labelgen.example.org", LABELGEN_VAR_DIR=str(tmp_path))
    assert out.returncode != 0
    assert "SECRET_KEY is not set" in out.stderr and "shared by every web and worker machine" in out.stderr
    assert not (tmp_path / "secret_key").exists()  # no per-machine key was generated


def test_cache_url_selects_redis_and_the_default_is_the_locked_file_cache(tmp_path):
    code = "from django.conf import settings as s; print(s.CACHES['default']['BACKEND'], s.CACHES['default']['LOCATION'])"
    out = manage("shell", "-v", "0", "-c", code, DEBUG="1", CACHE_URL="redis://cache.internal:6379/2",
                 LABELGEN_VAR_DIR=str(tmp_path))
    assert out.stdout.split() == ["django.core.cache.backends.redis.RedisCache", "redis://cache.internal:6379/2"], \
        out.stderr
    out = manage("shell", "-v", "0", "-c", code, DEBUG="1", LABELGEN_VAR_DIR=str(tmp_path))
    assert out.stdout.split() == ["labelgen_web.cache.LockedFileBasedCache", str(tmp_path / "cache")], out.stderr
    out = manage("check", DEBUG="1", CACHE_URL="memcached://x", LABELGEN_VAR_DIR=str(tmp_path))
    assert out.returncode != 0 and "CACHE_URL='memcached://x' is not a Redis URL" in out.stderr
