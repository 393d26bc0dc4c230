"""The embedded cache backend: Django's file cache with an ``add`` that is atomic across processes.

Django's FileBasedCache.add checks for the key and then writes it, so two processes (web workers, a
Celery worker) can both "win" the same ``add``; the report uses ``add`` as a lock that queues the slow
mixed model once. Here ``add`` holds an exclusive ``flock`` on a per-key lock file around the check and
the write. Production uses Redis (``CACHE_URL``), whose ``add`` is atomic already.
"""

import fcntl
import os

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache


class LockedFileBasedCache(FileBasedCache):
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        name = os.path.basename(self._key_to_file(key, version))
        lock_dir = os.path.join(self._dir, "locks")
        os.makedirs(lock_dir, exist_ok=True)
        with open(os.path.join(lock_dir, name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return super().add(key, value, timeout, version)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
