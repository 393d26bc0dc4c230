"""Login throttling (django-axes): repeated failures for a user name or from one address lock logging in
for a while, the right password included; a success resets the count; coordinators clear lock-outs."""

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.factories import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "reader1-pass-123"  # make_user's


@pytest.fixture(autouse=True)
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


def login(client, username, password, addr="10.1.1.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr)


def logged_in(client):
    return "_auth_user_id" in client.session


def test_repeated_failures_lock_the_user_name_even_with_the_right_password():
    make_user("reader1", "reader")
    c = Client()
    for _ in range(2):
        assert login(c, "reader1", "wrong").status_code == 200
    assert login(c, "reader1", "wrong").status_code == 429  # the failure that reaches the limit
    response = login(c, "reader1", PASSWORD)
    assert response.status_code == 429 and not logged_in(c)
    assert b"Too many failed logins" in response.content and b"15 minutes" in response.content
    # From another address too: the lock is on the user name.
    other = Client()
    assert login(other, "reader1", PASSWORD, addr="10.9.9.9").status_code == 429 and not logged_in(other)


def test_a_success_resets_the_count():
    make_user("reader1", "reader")
    for _ in range(3):
        c = Client()
        assert login(c, "reader1", "wrong").status_code == 200
        assert login(c, "reader1", "wrong").status_code == 200
        assert login(c, "reader1", PASSWORD).status_code == 302 and logged_in(c)


def test_failures_from_one_address_lock_that_address():
    make_user("reader1", "reader")
    c = Client()
    for name in ("alice", "bob", "carol"):
        login(c, name, "guess", addr="10.6.6.6")
    assert login(Client(), "reader1", PASSWORD, addr="10.6.6.6").status_code == 429
    elsewhere = Client()
    assert login(elsewhere, "reader1", PASSWORD, addr="10.7.7.7").status_code == 302 and logged_in(elsewhere)


def test_coordinators_see_and_clear_lock_outs(client_for, coordinator):
    make_user("reader1", "reader")
    for _ in range(3):
        login(Client(), "reader1", "wrong")
    page = client_for(coordinator).get(reverse("lockouts"))
    assert page.status_code == 200 and b"reader1" in page.content and b"locked out" in page.content
    cleared = client_for(coordinator).post(reverse("lockouts"), {"username": "reader1", "ip": "10.1.1.1"})
    assert cleared.status_code == 302
    c = Client()
    assert login(c, "reader1", PASSWORD).status_code == 302 and logged_in(c)
    assert b"No failed logins" in client_for(coordinator).get(reverse("lockouts")).content


def test_the_command_clears_a_lock_out():
    make_user("reader1", "reader")
    for _ in range(3):
        login(Client(), "reader1", "wrong", addr="10.2.2.2")
    assert login(Client(), "reader1", PASSWORD, addr="10.3.3.3").status_code == 429
    call_command("axes_reset_username", "reader1")
    assert login(Client(), "reader1", PASSWORD, addr="10.3.3.3").status_code == 302


def test_behind_a_proxy_each_client_is_counted_not_the_proxy(settings):
    settings.LABELGEN_BEHIND_PROXY = True
    make_user("reader1", "reader")
    proxy = "10.0.0.1"
    for name in ("alice", "bob", "carol"):  # one client guessing, through the proxy
        Client().post(reverse("login"), {"username": name, "password": "guess"}, REMOTE_ADDR=proxy,
                      HTTP_X_FORWARDED_FOR="203.0.113.9")
    other = Client()
    response = other.post(reverse("login"), {"username": "reader1", "password": PASSWORD}, REMOTE_ADDR=proxy,
                          HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 302 and logged_in(other)  # another client behind the same proxy logs in
    forged = Client().post(reverse("login"), {"username": "reader1", "password": PASSWORD}, REMOTE_ADDR=proxy,
                           HTTP_X_FORWARDED_FOR="198.51.100.4, 203.0.113.9")
    assert forged.status_code == 429  # a forged first entry does not hide the guessing client
