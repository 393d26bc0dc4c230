"""Annotation tasks: saving drawings (validated like imports), AI labels on demand, corrections, review,
finishing, the coordinator's pages and the export of corrected labels."""

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from pipeline.annotation.services import create_task
from pipeline.core.io.nifti import load_volume
from pipeline.datasets.storage import store_volume
from pipeline.models import AnnotationItem, ClusteringRun, ClusterMap, Label
from tests.factories import AFFINE, make_dataset, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
SHAPE = (32, 32, 8)


def nifti_bytes(data, affine=AFFINE, compress=True):
    img = nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine)
    raw = img.to_bytes()
    return gzip.compress(raw) if compress else raw


@pytest.fixture
def task(media):
    dataset = make_dataset(name="ann", n_cases=2, prediction_sets=())
    reader = make_user("rad1", "reader")
    task = create_task(dataset=dataset, name="strokes", input="scribbles", radiologists=[reader],
                       cases=dataset.cases.order_by("external_id"))
    return task, reader


def truth_of(case):
    return load_volume(case.labels.get(source="truth").path, kind="label").data > 0


def clustering_run(dataset):
    """A finished clustering run whose maps are 1 outside, 2 on the truth, and 3 on a slab below it."""
    run = ClusteringRun.objects.create(dataset=dataset, status="succeeded")
    for case in dataset.cases.all():
        ids = np.ones(SHAPE, np.uint16)
        ids[truth_of(case)] = 2
        relpath, _ = store_volume(ids, AFFINE, dtype=np.uint16)
        ClusterMap.objects.create(run=run, case=case, file=relpath, n_clusters=2)
    return run


def strokes_for(case):
    truth = truth_of(case)
    out = np.zeros(SHAPE, np.uint8)
    z = 4
    xs = np.flatnonzero(truth[:, :, z].any(axis=1))
    cy = int(np.flatnonzero(truth[:, :, z].any(axis=0)).mean())
    out[xs[1]:xs[-1], cy, z] = 1
    out[1:4, 1:30, z] = 2
    return out


def post_bytes(client, name, item, raw, **params):
    query = "&".join(f"{k}={v}" for k, v in {"seconds": 3, **params}.items())
    return client.post(f"{reverse(name, args=[item.pk])}?{query}", raw, content_type="application/octet-stream")


def test_drawing_is_saved_as_an_expert_label_of_its_kind(task, client_for):
    task, reader = task
    item = task.items.order_by("position").first()
    client = client_for(reader)
    assert client.get(reverse("pipeline:annotate_task_start", args=[task.pk])).url == item.get_absolute_url()
    page = client.get(item.get_absolute_url())
    assert page.status_code == 200 and b"Tumour pen" in page.content
    strokes = strokes_for(item.case)
    response = post_bytes(client, "pipeline:annotate_drawing", item, nifti_bytes(strokes))
    assert response.status_code == 200, response.content
    label = Label.objects.get(case=item.case, rater="rad1", source="expert")
    assert label.input == "scribbles" and label.created_by == reader
    assert np.array_equal(load_volume(label.path, kind="label").data, strokes)  # 2 = background kept
    item.refresh_from_db()
    assert item.drawing == label and item.seconds_spent == pytest.approx(3.0)
    # Saving again replaces the drawing (uncompressed bytes are accepted too)
    strokes[5, 5, 4] = 2
    assert post_bytes(client, "pipeline:annotate_drawing", item, nifti_bytes(strokes, compress=False)).status_code == 200
    assert Label.objects.filter(case=item.case, rater="rad1", source="expert").count() == 1


@pytest.mark.parametrize("case,expected", [
    ("wrong_grid", "different grid"),
    ("wrong_affine", "different grid"),
    ("bad_value", "found value(s) 3"),
    ("no_tumour", "at least one tumour stroke"),
    ("empty_body", "arrived empty"),
    ("not_nifti", "not a readable label volume"),
])
def test_bad_drawings_are_refused_naming_the_case_and_nothing_is_stored(task, client_for, case, expected):
    task, reader = task
    item = task.items.order_by("position").first()
    good = strokes_for(item.case)
    raw = {
        "wrong_grid": nifti_bytes(np.zeros((16, 16, 8))),
        "wrong_affine": nifti_bytes(good, affine=np.diag([2.0, 1.0, 3.0, 1.0])),
        "bad_value": nifti_bytes(np.where(good == 1, 3, good)),
        "no_tumour": nifti_bytes(np.where(good == 1, 0, good)),
        "empty_body": b"",
        "not_nifti": b"\x1f\x8b not really gzip",
    }[case]
    response = post_bytes(client_for(reader), "pipeline:annotate_drawing", item, raw)
    assert response.status_code == 400
    assert item.case.external_id in response.json()["error"] and expected in response.json()["error"]
    assert not Label.objects.filter(rater="rad1").exists()


def test_another_readers_item_is_a_404(task, client_for):
    task, _ = task
    item = task.items.first()
    intruder = client_for(make_user("rad2", "reader"))
    assert intruder.get(item.get_absolute_url()).status_code == 404
    assert post_bytes(intruder, "pipeline:annotate_drawing", item, nifti_bytes(strokes_for(item.case))).status_code == 404
    assert intruder.get(reverse("pipeline:annotate_volume", args=[item.pk, "image-0"])).status_code == 404
    assert not Label.objects.filter(rater__in=["rad1", "rad2"]).exists()


def test_ai_label_on_demand_then_correction_keeps_the_original(task, client_for, tmp_path):
    task, reader = task
    item = task.items.order_by("position").first()
    client = client_for(reader)
    post_bytes(client, "pipeline:annotate_drawing", item, nifti_bytes(strokes_for(item.case)))
    refused = post_bytes(client, "pipeline:annotate_make_ai", item, b"")
    assert refused.status_code == 400 and "no finished clustering run" in refused.json()["error"]
    clustering_run(task.dataset)
    made = post_bytes(client, "pipeline:annotate_make_ai", item, b"")
    assert made.status_code == 200, made.content
    original = Label.objects.get(case=item.case, source="ai", rater="rad1")
    ai = load_volume(original.path, kind="label").data > 0
    assert np.array_equal(ai, truth_of(item.case))  # the stroke's cluster, grown in 3D
    served = client.get(made.json()["aiUrl"])
    assert served.status_code == 200 and served["Cache-Control"].startswith("private")

    corrected = ai.copy()
    corrected[:, :, 4] = False  # the radiologist erases one slice
    response = post_bytes(client, "pipeline:annotate_correction", item, nifti_bytes(corrected))
    assert response.status_code == 200, response.content
    correction = Label.objects.get(corrected_from=original)
    assert np.array_equal(load_volume(correction.path, kind="label").data > 0, corrected)
    original.refresh_from_db()
    assert original.review == "accepted" and original.reviewed_by == reader
    item.refresh_from_db()
    assert item.ai_state == "corrected"
    # export writes the correction by default, the original on request
    call_command("export_labels", dataset="ann", source="ai", out=str(tmp_path / "c"), stdout=io.StringIO())
    call_command("export_labels", dataset="ann", source="ai", out=str(tmp_path / "o"), original=True,
                 stdout=io.StringIO())
    name = f"{item.case.external_id}_ai_rad1.nii.gz"
    assert np.array_equal(load_volume(tmp_path / "c" / name, kind="label").data > 0, corrected)
    assert np.array_equal(load_volume(tmp_path / "o" / name, kind="label").data > 0, ai)
    # the coordinator sees input kind, who, time and AI state
    coordinator = client_for(make_user("coord", "coordinator"))
    page = coordinator.get(reverse("pipeline:dataset_detail", args=[task.dataset.pk])).content.decode()
    assert "scribbles by rad1" in page and "rad1: corrected" in page
    detail = coordinator.get(reverse("pipeline:annotation_task_detail", args=[task.pk])).content.decode()
    assert "Corrected" in detail and "Strokes" in detail


def test_review_and_finish(task, client_for):
    task, reader = task
    first, second = task.items.order_by("position")
    client = client_for(reader)
    assert post_bytes(client, "pipeline:annotate_review_ai", first, b"", verdict="accepted").status_code == 400
    done = post_bytes(client, "pipeline:annotate_finish", first, b"", status="done")
    assert done.status_code == 400 and "save a drawing" in done.json()["error"]
    skip = client.post(reverse("pipeline:annotate_finish", args=[first.pk]) + "?status=skipped", {"reason": ""})
    assert skip.status_code == 400 and "say why" in skip.json()["error"]
    skip = client.post(reverse("pipeline:annotate_finish", args=[first.pk]) + "?status=skipped",
                       {"reason": "no lesion visible"})
    assert skip.json()["nextUrl"] == second.get_absolute_url()
    first.refresh_from_db()
    assert first.status == "skipped" and first.skip_reason == "no lesion visible"
    assert client.get(reverse("pipeline:annotate_task_start", args=[task.pk])).url == second.get_absolute_url()
    post_bytes(client, "pipeline:annotate_drawing", second, nifti_bytes(strokes_for(second.case)))
    clustering_run(task.dataset)
    post_bytes(client, "pipeline:annotate_make_ai", second, b"")
    assert post_bytes(client, "pipeline:annotate_review_ai", second, b"", verdict="rejected").status_code == 200
    assert Label.objects.get(case=second.case, source="ai").review == "rejected"
    assert post_bytes(client, "pipeline:annotate_finish", second, b"", status="done").status_code == 200
    mine = client.get(reverse("pipeline:my_annotation_tasks")).content.decode()
    assert "2 / 2" in mine


def test_coordinator_creates_a_task(client_for, media):
    dataset = make_dataset(name="ann2", n_cases=3, prediction_sets=())
    reader = make_user("rad3", "reader")
    client = client_for(make_user("coord2", "coordinator"))
    bad = client.post(reverse("pipeline:annotation_task_list"), {
        "name": "t", "dataset": dataset.pk, "input": "box", "cases": "case000 nope", "radiologists": [reader.pk]})
    assert bad.status_code == 400 and "has no case nope" in bad.content.decode()
    response = client.post(reverse("pipeline:annotation_task_list"), {
        "name": "boxes", "dataset": dataset.pk, "input": "box", "cases": "case002, case000",
        "radiologists": [reader.pk]})
    assert response.status_code == 302
    items = AnnotationItem.objects.filter(task__name="boxes").order_by("position")
    assert [i.case.external_id for i in items] == ["case002", "case000"]
    assert all(i.radiologist == reader for i in items)


def test_a_drawing_that_gives_an_empty_ai_label_is_refused_and_the_earlier_label_kept(task, client_for):
    """Step 2 kept no region (every grown region too large): the reader is told why and what to draw, instead
    of an empty AI label that could be accepted ("0 voxels in 1 lesion(s)")."""
    task, reader = task
    item = task.items.order_by("position").first()
    client = client_for(reader)
    post_bytes(client, "pipeline:annotate_drawing", item, nifti_bytes(strokes_for(item.case)))
    clustering_run(task.dataset)
    assert post_bytes(client, "pipeline:annotate_make_ai", item, b"").status_code == 200
    earlier = Label.objects.get(case=item.case, source="ai")
    one_cluster = ClusteringRun.objects.create(dataset=task.dataset, status="succeeded")  # the newest run
    relpath, _ = store_volume(np.ones(SHAPE, np.uint16), AFFINE, dtype=np.uint16)
    ClusterMap.objects.create(run=one_cluster, case=item.case, file=relpath, n_clusters=1)
    item.refresh_from_db()
    spent = item.seconds_spent
    refused = post_bytes(client, "pipeline:annotate_make_ai", item, b"")
    error = refused.json()["error"]
    assert refused.status_code == 400 and error.startswith(f"case {item.case.external_id}: no AI label")
    assert "larger than 2 times the lesion" in error and "nothing was stored" in error
    assert list(Label.objects.filter(case=item.case, source="ai")) == [earlier]
    item.refresh_from_db()
    assert item.ai_label_id == earlier.pk and item.ai_state == "made"
    assert item.seconds_spent == pytest.approx(spent + 3.0)  # the refused try's time is counted
