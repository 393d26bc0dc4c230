"""Study design in the app (issue 17): the frozen primary analysis, re-reads, graded answers, the neutral
reader-facing title, unblinding, the planner (page and command) and what the report carries."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.roles import GROUPS, READER
from evaluation.design import REREAD_GAP
from evaluation.models import Study, Vote
from evaluation.services import StudyError, record_vote, set_status, unblind
from tests.factories import make_study, make_user
from tests.test_study_views import config_of, post_vote

pytestmark = pytest.mark.django_db


def test_plan_is_stored_shown_and_frozen_once_open(client_for, reader, coordinator):
    study = make_study(readers=[reader], open_now=False, primary_method="bootstrap", ties="against", alpha=0.01)
    plan = study.analysis_plan()
    assert (plan.arm, plan.comparator, plan.method, plan.ties, plan.alpha) == (
        "unet-expert", "unet-ai", "bootstrap", "against", 0.01)
    study.alpha = 0.02
    study.save()  # a draft's plan may still change
    set_status(study, Study.Status.OPEN)
    study = Study.objects.get(pk=study.pk)
    study.alpha = 0.05
    with pytest.raises(ValueError, match="frozen once the study has been opened; refused change of alpha"):
        study.save()
    study = Study.objects.get(pk=study.pk)
    study.primary_arm = study.primary_comparator
    with pytest.raises(ValueError, match="primary_arm"):
        study.save()
    page = client_for(coordinator).get(study.get_absolute_url()).content.decode()
    assert "share of votes preferring unet-expert over unet-ai" in page and "frozen since the study opened" in page


def test_rereads_repeat_items_later_with_sides_swapped(reader):
    study = make_study(n_cases=12, readers=[reader], reread_share=0.25)
    items = list(study.assignments.get().items.order_by("position"))
    rereads = [i for i in items if i.reread_of_id]
    assert len(items) == 15 and len(rereads) == 3
    for again in rereads:
        first = again.reread_of
        assert again.study_case_id == first.study_case_id
        assert (again.arm_left_id, again.arm_right_id) == (first.arm_right_id, first.arm_left_id)
        assert again.position - first.position > REREAD_GAP
    # the reader answers both; the report keeps the re-read out of every statistic but re-read agreement
    for item in items:
        record_vote(item, reader, {"choice": "left", "confidence": None, "comment": "", "time_ms": 1000})
    set_status(study, Study.Status.CLOSED)
    from evaluation.reports import cached_report

    report, _, _, _ = cached_report(study, full=True)
    assert report["n_votes"] == 12 and report["n_rereads"] == 3
    # always "left": after the swap the other arm, so no re-read keeps its arm
    assert report["rereads"]["n"] == 3 and report["rereads"]["swap_consistent"] == 0.0
    assert report["rereads"]["same_side"] == 1.0


def test_graded_answers_through_the_vote_url(client_for, reader):
    study = make_study(n_cases=3, readers=[reader], graded=True)
    c = client_for(reader)
    config = config_of(c.get(reverse("evaluation:reader_item", args=[study.pk, 1])))
    assert config["study"]["graded"] is True
    r = post_vote(c, study, 1, grade=-2)
    assert r.status_code == 200
    vote = Vote.objects.get()
    assert (vote.choice, vote.grade, vote.answer_label) == ("right", -2, "B much better")
    assert vote.arm == vote.item.arm_right
    r = post_vote(c, study, 2, choice="left", grade=-1)
    assert r.status_code == 400 and "grade -1 means right" in r.json()["error"]
    assert post_vote(c, study, 2, choice="left").status_code == 400  # a graded study needs the grade
    assert post_vote(c, study, 2, grade=0).json()["ok"] and Vote.objects.get(item__position=2).choice == "none"
    set_status(study, Study.Status.CLOSED)
    coord = client_for(make_user("gcoord", "coordinator"))
    report = coord.get(reverse("evaluation:study_report_json", args=[study.pk])).json()
    assert report["pairs"][0]["ordinal"]["n"] == 2
    rows = list(csv.DictReader(io.StringIO(coord.get(reverse("evaluation:study_votes_csv",
                                                                 args=[study.pk])).content.decode())))
    assert sorted(r["grade"] for r in rows) == ["-2", "0"]


def test_readers_see_a_neutral_title_never_the_internal_one(client_for, reader):
    study = make_study(n_cases=2, readers=[reader])
    assert study.title == "Study of demo" and study.reader_title == f"Study {study.pk}"
    c = client_for(reader)
    for url in (reverse("evaluation:my_studies"), reverse("evaluation:reader_item", args=[study.pk, 1])):
        page = c.get(url).content.decode()
        assert study.reader_title in page and study.title not in page
    study.public_title = "Liver lesions, round 2"
    study.save()
    assert "Liver lesions, round 2" in c.get(reverse("evaluation:reader_item", args=[study.pk, 1])).content.decode()


def test_a_coordinator_who_reads_never_sees_unblinded_data_while_open(client_for, reader):
    both = make_user("readcoord", "coordinator")
    from django.contrib.auth.models import Group

    both.groups.add(Group.objects.get(name=GROUPS[READER]))
    study = make_study(n_cases=2, readers=[reader, both])
    record_vote(study.assignments.get(reader=reader).items.get(position=1), reader,
                {"choice": "left", "confidence": None, "comment": "", "time_ms": 10})
    c = client_for(both)
    assert c.get(reverse("evaluation:study_report", args=[study.pk])).status_code == 403
    assert c.get(reverse("evaluation:study_report_json", args=[study.pk])).status_code == 403
    with pytest.raises(StudyError, match="You read in this study"):
        unblind(study, both)
    assert c.post(reverse("evaluation:study_unblind", args=[study.pk])).status_code == 302
    study.refresh_from_db()
    assert study.unblinded_at is None
    # another coordinator unblinds; the reading coordinator still sees nothing while the study is open
    other = make_user("coord2", "coordinator")
    unblind(study, other)
    detail = c.get(study.get_absolute_url()).content.decode()
    assert 'id="votes-table"' not in detail and "stay blinded to you" in detail
    assert c.get(reverse("evaluation:study_report", args=[study.pk])).status_code == 403
    set_status(study, Study.Status.CLOSED)
    assert c.get(reverse("evaluation:study_report", args=[study.pk])).status_code == 200


def test_closed_report_carries_primary_analysis_unblinding_and_planned_power(client_for, reader, reader2):
    study = make_study(n_cases=6, readers=[reader, reader2], planned_power={"power": 0.8, "line": "power 80%"})
    for r in (reader, reader2):
        for item in study.assignments.get(reader=r).items.all():
            record_vote(item, r, {"choice": "left" if item.position % 3 else "right", "confidence": None,
                                  "comment": "", "time_ms": 2500})
    set_status(study, Study.Status.CLOSED)
    c = client_for(make_user("coordz", "coordinator"))
    report = c.get(reverse("evaluation:study_report_json", args=[study.pk])).json()
    assert report["plan"]["method"] == "mixed" and report["primary"]["arm"] == "unet-expert"
    assert report["primary"]["method"] in ("mixed", "exact") and report["primary"]["p_value"] is not None
    assert report["headline"] == report["primary"]["headline"]
    assert report["unblinding"] == {"early": False, "by": None, "at": study.closed_at.isoformat()}
    assert report["planned_power"]["power"] == 0.8
    page = c.get(reverse("evaluation:study_report", args=[study.pk])).content.decode()
    assert "Blinded until the study closed" in page and "Planned: power 80%" in page
    assert "Secondary analyses" in page and "MRMC U-statistics" in page
    listing = c.get(reverse("evaluation:study_list")).content.decode()
    for name in ("study_report", "study_report_json", "study_votes_csv"):
        assert reverse(f"evaluation:{name}", args=[study.pk]) in listing


def test_study_form_takes_the_design_and_the_planner_answers(client_for, coordinator, reader):
    from tests.factories import make_dataset

    dataset = make_dataset(n_cases=3)
    sets = list(dataset.prediction_sets.order_by("pk"))
    c = client_for(coordinator)
    form_page = c.get(reverse("evaluation:study_create")).content.decode()
    assert 'id="planner"' in form_page and '<select name="default_modality"' in form_page
    planned = {"power": 0.71, "cases": 40, "line": "power 71.0%", "design": {}}
    r = c.post(reverse("evaluation:study_create"), {
        "title": "Expert vs AI (internal)", "dataset": dataset.pk, "prediction_sets": [s.pk for s in sets],
        "readers": [reader.pk], "primary_set": sets[1].pk, "primary_method": "bootstrap", "ties": "exclude",
        "alpha": "0.05", "reread_share": "0.2", "graded": "on", "radiological": "on",
        "planned_power": json.dumps(planned)})
    assert r.status_code == 302, r.context["form"].errors
    study = Study.objects.get()
    assert (study.primary_arm.name, study.primary_comparator.name) == (sets[1].name, sets[0].name)
    assert study.graded and study.reread_share == 0.2 and study.planned_power == planned
    assert study.public_title == ""
    r = c.post(reverse("evaluation:study_create"), {
        "title": "Bad", "dataset": dataset.pk, "prediction_sets": [s.pk for s in sets], "graded": "on",
        "ask_confidence": "on", "reread_share": "0.9", "planned_power": "{oops"})
    errors = r.context["form"].errors
    assert {"ask_confidence", "reread_share", "planned_power"} <= set(errors)
    bad = c.get(reverse("evaluation:study_plan"), {"preference": "1.5", "readers": 4, "cases": 10})
    assert bad.status_code == 400 and "preference" in bad.json()["error"]
    ok = c.get(reverse("evaluation:study_plan"), {"preference": 0.7, "readers": 4, "cases": 15, "reader_sd": 0.3,
                                                  "case_sd": 0.5, "alpha": 0.05, "method": "bootstrap"}).json()
    assert 0 <= ok["power"] <= 1 and ok["cases"] == 15 and ok["mc_se"] > 0 and "Monte Carlo" in ok["line"]


def test_plan_study_command_json_and_pilot(capsys, reader, reader2):
    call_command("plan_study", "--preference", "0.7", "--readers", "4", "--cases", "15", "--reader-sd", "0",
                 "--case-sd", "0", "--method", "exact", "--sims", "500", "--format", "json")
    out = json.loads(capsys.readouterr().out)
    assert out["cases"] == 15 and abs(out["power"] - 0.838) < 3 * out["mc_se"]
    call_command("plan_study", "--preference", "0.75", "--readers", "3", "--power", "0.8", "--method", "exact",
                 "--sims", "200", "--format", "json")
    out = json.loads(capsys.readouterr().out)
    assert out["power"] >= 0.8 and out["cases"] >= 1
    study = make_study(n_cases=8, readers=[reader, reader2])
    with pytest.raises(CommandError, match="a pilot must be closed"):
        call_command("plan_study", "--preference", "0.7", "--readers", "4", "--cases", "10",
                     "--from-study", str(study.pk))
    # a closed pilot lends its fitted reader and case SDs
    for r in (reader, reader2):
        for item in study.assignments.get(reader=r).items.all():
            choice = "left" if (item.position + (r == reader)) % 3 else "right"
            record_vote(item, r, {"choice": choice, "confidence": None, "comment": "", "time_ms": 100})
    set_status(study, Study.Status.CLOSED)
    from evaluation.planning import pilot_components

    reader_sd, case_sd = pilot_components(study)
    call_command("plan_study", "--preference", "0.7", "--readers", "4", "--cases", "10", "--method", "bootstrap",
                 "--sims", "50", "--from-study", str(study.pk), "--format", "json")
    out = json.loads(capsys.readouterr().out)
    assert out["design"]["reader_sd"] == reader_sd and out["design"]["case_sd"] == case_sd and reader_sd > 0
    with pytest.raises(CommandError, match="either --reader-sd/--case-sd or --from-study"):
        call_command("plan_study", "--preference", "0.7", "--readers", "4", "--cases", "10", "--reader-sd", "1",
                     "--from-study", str(study.pk))
