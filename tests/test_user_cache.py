"""The logged-in user is kept in the cache between requests (accounts.user_cache), and every change of
account or roles still takes effect on the user's next request."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import user_cache

pytestmark = pytest.mark.django_db

MY_STUDIES = reverse("evaluation:my_studies")


def user_queries(client, url=MY_STUDIES):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return response, [q["sql"] for q in ctx.captured_queries if 'FROM "auth_user"' in q["sql"]]


def test_a_second_request_reads_the_user_from_the_cache(client_for, reader):
    c = client_for(reader)
    response, first = user_queries(c)
    assert response.status_code == 200 and len(first) == 1
    response, second = user_queries(c)
    assert response.status_code == 200 and second == []


@pytest.mark.parametrize("change", [
    lambda user, group: user.groups.remove(group),
    lambda user, group: user.groups.clear(),
    lambda user, group: group.user_set.remove(user),
    lambda user, group: group.user_set.clear(),
    lambda user, group: setattr(group, "name", "Old readers") or group.save(),
    lambda user, group: group.delete(),
], ids=["user-side remove", "user-side clear", "group-side remove", "group-side clear", "group renamed",
        "group deleted"])
def test_losing_the_reader_role_takes_effect_on_the_next_request(client_for, reader, change):
    c = client_for(reader)
    assert c.get(MY_STUDIES).status_code == 200
    change(reader, Group.objects.get(name="Readers"))
    assert c.get(MY_STUDIES).status_code == 403


@pytest.mark.parametrize("side", ["user", "group"])
def test_gaining_a_role_takes_effect_on_the_next_request(client_for, coordinator, side):
    c = client_for(coordinator)
    assert c.get(MY_STUDIES).status_code == 403
    readers = Group.objects.get(name="Readers")
    coordinator.groups.add(readers) if side == "user" else readers.user_set.add(coordinator)
    assert c.get(MY_STUDIES).status_code == 200


@pytest.mark.parametrize("change", [
    lambda user: setattr(user, "is_active", False) or user.save(),
    lambda user: user.set_password("a-new-password-77") or user.save(),
    lambda user: user.delete(),
], ids=["deactivated", "new password", "deleted"])
def test_a_changed_account_is_logged_out_on_its_next_request(client_for, reader, change):
    c = client_for(reader)
    assert c.get(MY_STUDIES).status_code == 200
    change(User.objects.get(pk=reader.pk))
    response = c.get(MY_STUDIES)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_a_copy_cached_from_the_old_row_before_the_change_committed_is_dropped_at_commit(
        client_for, reader, django_capture_on_commit_callbacks):
    """A concurrent request may read the old row while the change is not yet committed, and cache it."""
    c = client_for(reader)
    assert c.get(MY_STUDIES).status_code == 200
    stale = user_cache.get(reader.pk)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        reader.is_active = False
        reader.save()
        user_cache.put(stale)  # what the concurrent request did
    assert cache.get(user_cache.key(reader.pk)) is None
    assert c.get(MY_STUDIES).status_code == 302
