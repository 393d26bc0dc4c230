import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def make_user(username, role):
    from django.contrib.auth.models import Group, User

    from accounts.roles import GROUPS

    user = User.objects.create_user(username=username, password=f"{username}-pass-123")
    if role:
        user.groups.add(Group.objects.get_or_create(name=GROUPS[role])[0])
    return user


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
