"""The README's first command runs ``setup_demo``: every part of the demo is built, once."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.roles import can
from evaluation.models import Study, Vote
from pipeline.management.commands.setup_demo import (
    ANNOTATION_TASK,
    DEMO_DATASET,
    DICOM_DATASET,
    OPEN_STUDY,
    SIMULATED_STUDY,
)
from pipeline.models import AnnotationTask, ComparisonRun, Dataset, Image, Label, RefinementRun

pytestmark = pytest.mark.django_db


def _counts():
    return (Dataset.objects.count(), RefinementRun.objects.count(), ComparisonRun.objects.count(),
            Study.objects.count(), Vote.objects.count(), Label.objects.filter(source="ai").count(),
            AnnotationTask.objects.count())


def test_setup_demo_builds_users_data_runs_and_studies_once(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("setup_demo", cases=6, clustering_epochs=2, unet_epochs=1, stdout=out)
    users = {u.username: u for u in get_user_model().objects.all()}
    assert can(users["admin"], "run") and can(users["coordinator"], "coordinate") and can(users["reader1"], "vote")
    assert not can(users["reader1"], "coordinate")
    assert "reader1-demo-pass" in out.getvalue()  # the logins are printed

    dataset = Dataset.objects.get(name=DEMO_DATASET)
    assert dataset.cases.count() == 6
    refinement = RefinementRun.objects.get(dataset=dataset)
    assert refinement.status == "succeeded" and refinement.config["min_inside"] == 0.5
    assert Label.objects.filter(case__dataset=dataset, source="ai", run=refinement).count() == 6
    sparse = dict(Label.objects.filter(case__dataset=dataset, rater="quick").values_list("case__external_id", "input"))
    assert sorted(sparse.values()) == ["box", "scribbles", "slices", "slices"]  # 6 cases: two left to draw on
    task = AnnotationTask.objects.get(name=ANNOTATION_TASK)
    assert {i.radiologist.username for i in task.items.all()} == {"reader1"} and task.items.count() == 2
    assert not set(task.items.values_list("case__external_id", flat=True)) & set(sparse)
    comparison = ComparisonRun.objects.get(dataset=dataset)
    assert comparison.status == "succeeded" and comparison.arms_runs.count() == 2

    open_study = Study.objects.get(title=OPEN_STUDY)
    assert open_study.status == Study.Status.OPEN
    readers = {a.reader.username for a in open_study.assignments.filter(preview=False)}
    assert readers == {"reader1", "reader2"}
    assert all(a.items.exists() for a in open_study.assignments.all())
    closed = Study.objects.get(title=SIMULATED_STUDY)
    assert closed.status == Study.Status.CLOSED
    items = sum(a.items.count() for a in closed.assignments.filter(preview=False))
    assert items > 0 and Vote.objects.filter(item__assignment__study=closed).count() == items
    # Issue 17: readers see a neutral title; the closed study has re-reads, a primary analysis and a plan.
    assert open_study.public_title == "" and open_study.reader_title == f"Study {open_study.pk}"
    assert open_study.primary_arm.name.startswith("unet-ai-")
    from evaluation.reports import cached_report

    report, _, _, _ = cached_report(closed, full=True)
    from evaluation.models import Item

    rereads = Item.objects.filter(assignment__study=closed, reread_of__isnull=False).count()
    assert closed.reread_share > 0 and report["n_rereads"] == rereads
    assert (report["rereads"] or {}).get("n", 0) == rereads and report["primary"]["p_value"] is not None
    assert report["headline"].startswith(f"Arm {closed.primary_arm.name} was preferred")
    assert 0 <= closed.planned_power["power"] <= 1 and "Monte Carlo" in closed.planned_power["line"]
    # Issue 18: a PACS-style DICOM export, imported under pseudonyms, its SEG outline in and out again.
    dicom = Dataset.objects.get(name=DICOM_DATASET)
    names = sorted(dicom.cases.values_list("external_id", flat=True))
    assert len(names) == 4 and all(n.startswith("case-") for n in names)
    assert Image.objects.filter(case__dataset=dicom).exclude(dicom_series="").count() == 8
    outline = Label.objects.get(case__dataset=dicom, source="expert")
    assert (outline.rater, outline.modality) == ("pacs", "t2") and outline.voxel_count > 0
    assert [p.suffix for p in (tmp_path / "demo-dicom" / "seg-export").iterdir()] == [".dcm"]
    assert "identifying tags (PatientBirthDate, PatientName)" in out.getvalue()

    before = _counts()
    call_command("setup_demo", cases=6, clustering_epochs=2, unet_epochs=1, stdout=io.StringIO())
    assert _counts() == before  # idempotent: nothing is made twice
