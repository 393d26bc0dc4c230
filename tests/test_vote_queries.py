"""The reader's hot path in SQL statements: a new vote and the item JSON (issue 19). Counted, not timed."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluation.models import Vote
from tests.factories import make_study

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def post_vote(client, study, position, **body):
    return client.post(reverse("evaluation:reader_vote", args=[study.pk, position]), json.dumps(body),
                       content_type="application/json")


def queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        response = fn()
    return response, [q["sql"] for q in ctx.captured_queries]


def test_new_vote_costs_at_most_5_statements_and_a_repeat_is_idempotent(client_for, reader):
    study = make_study(n_cases=3, readers=[reader])
    c = client_for(reader)
    c.get(reverse("evaluation:reader_item_config", args=[study.pk, 1]))  # session and user warm, as in use
    response, sql = queries(lambda: post_vote(c, study, 1, choice="left", time_ms=900))
    assert response.status_code == 200 and response.json()["progress"] == {"done": 1, "total": 3}
    assert len(sql) <= 5, "\n".join(sql)
    assert sum(q.startswith("INSERT") for q in sql) == 1 and not any("SAVEPOINT" in q for q in sql)
    assert not any('"auth_user"' in q for q in sql), "the logged-in user comes from the cache (accounts.user_cache)"
    response, sql_again = queries(lambda: post_vote(c, study, 1, choice="left", time_ms=900))
    assert response.json()["outcome"] == "unchanged" and Vote.objects.count() == 1
    assert response.json()["progress"] == {"done": 1, "total": 3}


def test_item_json_costs_at_most_8_statements(client_for, reader):
    study = make_study(n_cases=3, readers=[reader])
    c = client_for(reader)
    url = reverse("evaluation:reader_item_config", args=[study.pk, 2])
    c.get(url)
    response, sql = queries(lambda: c.get(url))
    body = response.json()
    assert response.status_code == 200 and body["position"] == 2 and body["total"] == 3 and body["next"]["position"] == 3
    assert len(sql) <= 8, "\n".join(sql)


@pytest.mark.parametrize("allow_revisit", [False, True])
def test_a_concurrent_answer_stored_first_is_never_overwritten_silently(reader, allow_revisit):
    """The race the one-statement insert must survive: between loading the item (no vote yet) and inserting,
    another request stored a different answer. The insert is ignored and the answer is compared with it."""
    from evaluation.models import Item
    from evaluation.services import StudyError, record_vote

    study = make_study(n_cases=2, readers=[reader], allow_revisit=allow_revisit)
    item = Item.objects.select_related("vote", "assignment__study").get(assignment__reader=reader, position=1)
    Vote.objects.create(item=item, choice="right", arm=item.arm_right, time_ms=500)  # the other request's
    answer = {"choice": "left", "confidence": None, "grade": None, "comment": "", "time_ms": 700}
    if allow_revisit:
        result = record_vote(item, reader, answer)
        assert result.outcome == "changed" and result.vote.revision == 2
        assert Vote.objects.get().revisions.get().choice == "right"
    else:
        with pytest.raises(StudyError, match="already answered"):
            record_vote(item, reader, answer)
    stored = Vote.objects.get()
    assert stored.choice == ("left" if allow_revisit else "right") and Vote.objects.count() == 1
    assert study.assignments.get(reader=reader).items.filter(vote__isnull=False).count() == 1


def test_a_study_s_volumes_are_prepared_before_its_readers_ask(reader, media, client_for, monkeypatch):
    """The task queued when a study opens fills the viewer cache; the reader's first fetch converts nothing."""
    from pathlib import Path

    from evaluation.volumes import prepare_study_volumes
    from pipeline.datasets import viewer

    study = make_study(n_cases=2, readers=[reader])
    assert prepare_study_volumes(study) == 2 * 2 + 2 * 2  # two modalities and two arms' predictions per case
    assert len(list((Path(media) / "viewer-cache").rglob("*.nii.gz"))) == 8

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted on request")

    monkeypatch.setattr(viewer, "viewer_nifti_bytes", no_conversion)
    c = client_for(reader)
    cfg = c.get(reverse("evaluation:reader_item_config", args=[study.pk, 1])).json()["viewer"]
    for url in [cfg["base"]["url"], *(o["url"] for o in cfg["overlays"])]:
        assert c.get(url).status_code == 200
