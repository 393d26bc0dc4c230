import os
from pathlib import Path

import pytest

from tests.factories import make_user

TESTS = Path(__file__).resolve().parent
# Tiers (pyproject markers), set here from where a test lives and what it marks, so none is forgotten:
# unit = tests/core (no database), db = touches the database, e2e = a worker, a browser or training.
E2E = ("browser", "worker", "slow", "training")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TESTS / "core" in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.unit)
        if item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.db)
        if any(item.get_closest_marker(name) for name in E2E):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _empty_cache():
    """The test settings' cache lives as long as the process. A test's rows are rolled back without a signal,
    and SQLite gives the next test's rows the same ids: a user cached under an id by one test
    (accounts.user_cache) must not answer for another test's user."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def media(settings, tmp_path):
    """A fresh MEDIA_ROOT for the test (volumes, runs, uploads)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def reader(db):
    return make_user("reader1", "reader")


@pytest.fixture
def reader2(db):
    return make_user("reader2", "reader")


@pytest.fixture
def coordinator(db):
    return make_user("coord", "coordinator")


@pytest.fixture
def admin_user(db):
    return make_user("boss", "admin")


@pytest.fixture
def client_for(client):
    """``client_for(user)`` -> a test client logged in as ``user`` (None = anonymous)."""
    from django.test import Client

    def login(user):
        c = Client()
        if user is not None:
            c.force_login(user)
        return c

    return login
