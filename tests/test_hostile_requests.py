"""Hostile bodies and URLs get a 4xx, never a 500; error pages are the site's own and readable."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from evaluation.models import Study, Vote
from labelgen_web.json_body import nesting_depth
from pipeline.models import Dataset
from tests.factories import make_study

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
DEEP = "[" * 100_000



def without_csrf(html):
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", html)


def no_raise(client):
    client.raise_request_exception = False
    return client


def test_nesting_depth_ignores_brackets_inside_strings():
    assert nesting_depth(b'{"a": [1, [2]], "s": "[[[[{{{"}') == 3
    assert nesting_depth(b'"\\"[[["') == 0
    assert nesting_depth(DEEP.encode()) == 100_000


@pytest.mark.parametrize("body", [DEEP, '{"choice": ' + DEEP, "x" * 20_000, "[1, 2", '"just a string"'])
def test_vote_endpoint_answers_400_to_hostile_bodies(client_for, reader, body):
    study = make_study(readers=[reader])
    c = no_raise(client_for(reader))
    response = c.post(reverse("evaluation:reader_vote", args=[study.pk, 1]), body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "JSON object" in response.json()["error"]
    assert not Vote.objects.exists()


@pytest.mark.parametrize("body", [DEEP, '{"names": ' + DEEP + "}", "[]", "7", '{"names": [1]}'])
def test_upload_guess_answers_400_to_hostile_bodies(client_for, coordinator, body):
    ds = Dataset.objects.create(name="d")
    c = no_raise(client_for(coordinator))
    response = c.post(reverse("pipeline:dataset_upload_guess", args=[ds.pk]), body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]


@pytest.mark.parametrize("path", [
    "/studies/100000000000000000000/read/1/",
    "/studies/1/read/99999999999999999999999/",
    "/studies/100000000000000000000/",
    "/datasets/100000000000000000000/",
    "/runs/9223372036854775808/",
    "/volumes/image/100000000000000000000.nii.gz",
])
def test_integers_too_large_for_the_database_are_a_404(client_for, admin_user, reader, path):
    for user in (admin_user, reader):
        response = no_raise(client_for(user)).get(path)
        assert response.status_code == 404, (path, response.status_code)


def test_voting_on_a_draft_study_answers_like_its_other_reader_urls(client_for, reader, reader2):
    study = make_study(readers=[reader])
    study.status = Study.Status.DRAFT
    study.save()
    c = client_for(reader)
    vote = c.post(reverse("evaluation:reader_vote", args=[study.pk, 1]), json.dumps({"choice": "left"}),
                  content_type="application/json")
    page = c.get(reverse("evaluation:reader_item", args=[study.pk, 1]))
    nowhere = c.post(reverse("evaluation:reader_vote", args=[study.pk + 1000, 1]), json.dumps({"choice": "left"}),
                     content_type="application/json")
    stranger = client_for(reader2).post(reverse("evaluation:reader_vote", args=[study.pk, 1]),
                                        json.dumps({"choice": "left"}), content_type="application/json")
    assert vote.status_code == page.status_code == stranger.status_code == nowhere.status_code == 404
    # The same answer as for a study that does not exist (the logout form's CSRF token aside).
    assert without_csrf(vote.content) == without_csrf(nowhere.content)
    assert not Vote.objects.exists()


def test_404_and_403_pages_are_in_the_site_layout(client_for, reader):
    c = client_for(reader)
    missing = c.get("/datasets/424242/")
    assert missing.status_code == 403  # a reader may not see datasets at all
    assert b"Not allowed" in missing.content and b'class="topbar"' in missing.content
    not_found = c.get("/no/such/page/")
    assert not_found.status_code == 404
    assert b"Not found" in not_found.content and b'class="topbar"' in not_found.content
    assert b"My studies" in not_found.content  # the reader's own navigation


def test_get_on_a_post_only_url_says_to_use_the_button(client_for, admin_user):
    c = client_for(admin_user)
    response = c.get(reverse("logout"))
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert b"button" in response.content and b'class="topbar"' in response.content
    api = Client().get(reverse("pipeline:api_import", args=["x"]))
    assert api.status_code == 405 and "POST" in api.json()["error"]


def test_server_error_page_without_debug(client_for, admin_user, monkeypatch, settings):
    settings.DEBUG = False

    def explode(*args, **kwargs):
        raise RuntimeError("boom: internal detail")

    monkeypatch.setattr("pipeline.runs.views.render", explode)
    c = no_raise(client_for(admin_user))
    response = c.get(reverse("pipeline:run_list"))
    assert response.status_code == 500
    assert b"Something went wrong on the server" in response.content and b'class="topbar"' in response.content
    assert b"boom" not in response.content and b"Traceback" not in response.content


def test_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response.url.endswith("favicon.svg")
    assert client.get(response.url).status_code == 200
    assert b'rel="icon"' in client.get(reverse("login")).content
