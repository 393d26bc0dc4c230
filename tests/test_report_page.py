"""The coordinator's report page, its JSON and CSV exports, and `study_report STUDY`."""

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation.models import Study
from evaluation.reports import votes_frame
from evaluation.services import record_vote, set_status
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def voted_study(settings, tmp_path):
    """3 readers x 4 cases; reader i prefers the `unet-ai` arm unless (i + position) % 4 == 0."""
    settings.MEDIA_ROOT = tmp_path / "media"
    readers = [make_user(f"rd{i}", "reader") for i in range(3)]
    study = make_study(readers=readers, allow_tie=True, ask_confidence=True)
    expected = {"unet-ai": 0, "unet-expert": 0}
    for i, reader in enumerate(readers):
        for item in study.assignments.get(reader=reader).items.all():
            wanted = "unet-expert" if (i + item.position) % 4 == 0 else "unet-ai"
            side = "left" if item.arm_left.name == wanted else "right"
            record_vote(item, reader, {"choice": side, "confidence": 3, "comment": "", "time_ms": 4000 + 10 * i})
            expected[wanted] += 1
    return study, expected


def test_votes_frame_maps_sides_to_arms(voted_study):
    study, expected = voted_study
    df = votes_frame(study)
    assert len(df) == 12 and set(df["left"]) == {"a"}
    preferred = [row.arm_a if row.choice == "a" else row.arm_b for row in df.itertuples()]
    assert preferred.count("unet-ai") == expected["unet-ai"]


def test_report_page_headline_charts_and_unblinding_only_when_closed(voted_study, client_for):
    study, expected = voted_study
    coord = make_user("coordx", "coordinator")
    c = client_for(coord)
    blinded = c.get(reverse("evaluation:study_report", args=[study.pk]))
    assert blinded.status_code == 409 and "progress only" in blinded.content.decode()
    assert c.get(reverse("evaluation:study_report_json", args=[study.pk])).status_code == 409
    c.post(reverse("evaluation:study_unblind", args=[study.pk]))
    page = c.get(reverse("evaluation:study_report", args=[study.pk]))
    text = page.content.decode()
    arm = study.primary_arm.name  # the pre-registered endpoint's arm (the first set, by default)
    share = 100 * expected[arm] / 12
    assert f"Arm {arm} was preferred in {share:.2f}% of 12 decisive evaluations" in text
    assert f"Unblinded while open by {coord.username}" in text
    figures = page.context["figures_json"]
    assert figures["preference"]["data"] and figures["pairs"][0]["heatmap"]["data"][0]["type"] == "heatmap"
    assert "Shown once the study is closed" in text and page.context.get("unblinding") is None
    assert c.get(reverse("evaluation:study_votes_csv", args=[study.pk])).status_code == 409
    set_status(study, Study.Status.CLOSED)
    page = c.get(reverse("evaluation:study_report", args=[study.pk]))
    assert page.context["unblinding_total"] == 12
    rows = list(csv.DictReader(io.StringIO(c.get(reverse("evaluation:study_votes_csv", args=[study.pk])).content.decode())))
    assert len(rows) == 12 and {"reader", "case", "left_arm", "right_arm", "preferred_arm", "time_ms"} <= set(rows[0])
    assert sum(r["preferred_arm"] == "unet-ai" for r in rows) == expected["unet-ai"]
    report = c.get(reverse("evaluation:study_report_json", args=[study.pk])).json()
    assert report["n_votes"] == 12 and report["pairs"][0]["preference"]["n_votes"] == 12


def test_report_is_cached_until_votes_change(voted_study, client_for, django_assert_max_num_queries):
    study, _ = voted_study
    c = client_for(make_user("coordy", "coordinator"))
    c.post(reverse("evaluation:study_unblind", args=[study.pk]))
    url = reverse("evaluation:study_report", args=[study.pk])
    c.get(url)
    with django_assert_max_num_queries(12):
        assert c.get(url).status_code == 200  # cached: no vote table, no statistics
    reader = study.assignments.first().reader
    item = study.assignments.first().items.first()
    item.vote.delete()
    record_vote(item, reader, {"choice": "none", "confidence": 1, "comment": "", "time_ms": 100})
    assert c.get(url).context["payload"]["report"]["pairs"][0]["preference"]["ties"] == 1


def test_study_report_command_for_a_study(voted_study, capsys):
    study, expected = voted_study
    call_command("study_report", str(study.pk), format="json", n_boot=100, no_mixed_model=True,
                 primary_method="bootstrap")
    assert json.loads(capsys.readouterr().out)["n_votes"] == 12
    call_command("study_report", study.title, n_boot=0)
    assert f"Arm {study.primary_arm.name} was preferred" in capsys.readouterr().out
