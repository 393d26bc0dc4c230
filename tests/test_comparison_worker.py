"""A U-Net comparison on a 12-case 64x64x16 phantom dataset runs through a real Celery worker, and its
prediction sets become a blind reader study through the pre-filled study form."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluation.models import Study
from pipeline import tasks
from pipeline.core.phantoms import write_phantom_dataset
from pipeline.models import ComparisonRun, Dataset, Label
from pipeline.runs.presets import unet_config
from pipeline.unet.comparisons import create_comparison
from tests.factories import make_user
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow, pytest.mark.training]


def test_comparison_through_worker_then_study(settings, tmp_path, client_for):
    from labelgen_web.celery import app

    app.control.purge()
    settings.MEDIA_ROOT = tmp_path / "media"
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=12, size=64, depth=16, seed=21)
    call_command("import_cases", str(manifest), dataset="ph64", no_progress=True)
    dataset = Dataset.objects.get(name="ph64")
    comparison, runs = create_comparison(dataset, ["expert", "truth"], unet_config("fast", {"max_epochs": 6}), "fast")
    for run in runs:
        tasks.train_unet.apply_async(args=[run.pk], queue="gpu")
    with celery_worker() as proc:
        wait_for(lambda: ComparisonRun.objects.get().is_finished, timeout=900, proc=proc, message="comparison")
    comparison.refresh_from_db()
    assert comparison.status == "succeeded", [r.error for r in comparison.arms_runs.all()]
    arms = list(comparison.arms_runs.order_by("id"))
    n_test = dataset.cases.filter(split="TEST").count()
    for arm in arms:
        assert arm.epochs_done == 6 and Label.objects.filter(prediction_set=arm.prediction_set).count() == n_test
    assert set(comparison.summary["arms"]) == {"expert", "truth"}

    admin = make_user("cmp_admin", "admin")
    page = client_for(admin).get(comparison.get_absolute_url())
    link = page.content.decode().split('id="create-study" href="')[1].split('"')[0].replace("&amp;", "&")
    form_page = client_for(admin).get(link)
    form = form_page.context["form"]
    assert form.initial["dataset"] == dataset.pk
    assert sorted(form.initial["prediction_sets"]) == sorted(a.prediction_set_id for a in arms)
    readers = [make_user(f"cmp_r{i}", "reader") for i in range(2)]
    response = client_for(admin).post(reverse("evaluation:study_create"), {
        "title": "U-Net expert vs truth", "dataset": dataset.pk,
        "prediction_sets": [a.prediction_set_id for a in arms], "readers": [r.pk for r in readers]})
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    study = Study.objects.get(title="U-Net expert vs truth")
    assert study.study_cases.count() == n_test and study.assignments.filter(preview=False).count() == 2
