"""A real Celery worker process consumes a task from the configured broker and finishes the Run."""

import pytest

from pipeline import tasks
from pipeline.models import DeviceCheckRun, Run
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def purge_broker():
    from labelgen_web.celery import app

    app.control.purge()


def test_worker_runs_device_check_to_completion(settings):
    purge_broker()
    run = DeviceCheckRun.objects.create(size=64, config={"device": "cpu"})
    tasks.device_check.apply_async(args=[run.pk], queue="gpu")
    with celery_worker() as proc:
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=120, message="run to finish", proc=proc)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.progress == 100
    assert run.device.startswith("cpu")
    assert run.gflops > 0
    assert run.attempts == 1 and run.worker and run.started_at <= run.finished_at
    assert run.events.get(step=0).values["gflops"] == pytest.approx(run.gflops)
