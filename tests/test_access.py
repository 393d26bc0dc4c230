"""Every URL of the project, requested as anonymous, reader, coordinator and admin."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.access_table import ACCESS, LANDS_ON_LOGIN, PUBLIC, PUBLIC_REDIRECTS, SELF_AUTHENTICATED
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def all_url_names(patterns=None, namespace=""):
    names = set()
    for p in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            names |= all_url_names(p.url_patterns, ns)
        elif isinstance(p, URLPattern) and p.name:
            names.add(namespace + p.name)
    return names


def test_every_url_is_in_the_table():
    assert all_url_names() == {row[0] for row in ACCESS}


@pytest.fixture
def access_objects(db, settings, tmp_path):
    from pipeline.models import DeviceCheckRun
    from tests.access_table import row_modules

    settings.MEDIA_ROOT = tmp_path
    objects = {"run": DeviceCheckRun.objects.create(status="running")}
    for module in row_modules():
        if hasattr(module, "make_objects"):
            module.make_objects(objects)
    return objects


# Expectations that name the exact answer an allowed user gets for the table's bare request.
EXACT = {"bad_input": 400, "not_found": 404, "conflict": 409}


def request(client, method, url):
    return getattr(client, method)(url)


@pytest.mark.parametrize("name,method,args,expect", ACCESS, ids=[r[0] for r in ACCESS])
@pytest.mark.parametrize("role", ["anonymous", "reader", "coordinator", "admin"])
def test_access(client_for, access_objects, monkeypatch, name, method, args, expect, role):
    monkeypatch.setattr("pipeline.runs.launch.transaction.on_commit", lambda fn: None)  # no broker needed here
    url = reverse(name, args=[getattr(access_objects[a], "pk", access_objects[a]) for a in args])
    user = None if role == "anonymous" else make_user(f"access_{role}", role)
    response = request(client_for(user), method, url)
    login = reverse("login")
    if name in SELF_AUTHENTICATED:
        assert response.status_code == 401, (url, role, response.status_code)
        return
    if role == "anonymous":
        if name in PUBLIC:
            assert response.status_code == 200
        elif name in PUBLIC_REDIRECTS:
            assert response.status_code == 301 and not response.url.startswith(login), (url, response.status_code)
        else:
            assert response.status_code == 302 and response.url.startswith(login), (url, response.status_code)
        return
    if expect[role] in EXACT:
        assert response.status_code == EXACT[expect[role]], (url, role, response.status_code)
    elif expect[role] == "allow":
        assert response.status_code < 400, (url, role, response.status_code)
        if name not in LANDS_ON_LOGIN:
            assert not (response.status_code == 302 and response.url.startswith(login)), (url, role)
    else:
        assert response.status_code in (403, 404), (url, role, response.status_code)
