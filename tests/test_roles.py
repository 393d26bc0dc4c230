import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.roles import GROUPS, home_url_name, roles_of

pytestmark = pytest.mark.django_db


def test_groups_exist_from_data_migration():
    assert set(Group.objects.values_list("name", flat=True)) >= {"Readers", "Coordinators", "Admins"}


@pytest.mark.parametrize(
    "role,landing",
    [("reader", "evaluation:my_studies"), ("coordinator", "pipeline:dataset_list"), ("admin", "pipeline:run_list")],
)
def test_home_sends_each_role_to_its_start_page(client_for, role, landing):
    from tests.factories import make_user

    user = make_user(f"u_{role}", role)
    response = client_for(user).get(reverse("home"))
    assert response.status_code == 302
    assert response.url == reverse(landing)


def test_user_without_role_is_told_so(client_for):
    user = User.objects.create_user("nobody", password="x")
    response = client_for(user).get(reverse("home"))
    assert response.status_code == 403
    assert b"no labelgen role" in response.content


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("pipeline:run_list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_login_with_password_lands_on_role_page(client):
    from tests.factories import make_user

    make_user("c1", "coordinator")
    response = client.post(reverse("login"), {"username": "c1", "password": "c1-pass-123"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("pipeline:dataset_list")


def test_logout_needs_post(client_for, reader):
    c = client_for(reader)
    assert c.get(reverse("logout")).status_code == 405
    assert c.post(reverse("logout")).status_code == 302
    assert c.get(reverse("evaluation:my_studies")).status_code == 302  # logged out -> login


def test_create_user_command_sets_role_and_refuses_duplicates(capsys):
    call_command("create_user", "dr_who", role="reader")
    out = capsys.readouterr().out
    assert "password:" in out
    user = User.objects.get(username="dr_who")
    assert roles_of(user) == {"reader"}
    assert home_url_name(user) == "evaluation:my_studies"
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "dr_who", role="admin")
    call_command("create_user", "dr_who", role="admin", password="new-pass-456", update=True)
    user = User.objects.get(username="dr_who")
    assert roles_of(user) == {"admin"} and user.check_password("new-pass-456")
    assert user.groups.get().name == GROUPS["admin"]
