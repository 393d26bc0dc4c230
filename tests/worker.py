"""Starting a real Celery worker process against the test database and the configured broker."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url():
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    if "postgresql" in s["ENGINE"]:
        auth = s["USER"] or ""
        if s.get("PASSWORD"):
            auth += f":{s['PASSWORD']}"
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    raise RuntimeError(f"unsupported test database engine {s['ENGINE']}")


@contextlib.contextmanager
def celery_worker(queues="default,gpu", log_path=None, extra_env=None):
    """A ``celery worker`` subprocess (solo pool) that sees the test database; stopped on exit."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DJANGO_SETTINGS_MODULE": "labelgen_web.settings_test",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LABELGEN_VAR_DIR": str(settings.VAR_DIR),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra_env or {})
    log_path = Path(log_path or Path(settings.VAR_DIR) / "test-worker.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "labelgen_web", "worker", "-Q", queues, "--pool", "solo",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--hostname", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(predicate, timeout=60, interval=0.25, message="condition", proc=None, log_path=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(interval)
    tail = ""
    log_path = log_path or Path(settings.VAR_DIR) / "test-worker.log"
    if Path(log_path).exists():
        tail = Path(log_path).read_text()[-3000:]
    raise AssertionError(f"timed out waiting for {message}\n--- worker log ---\n{tail}")
