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


def test_a_worker_imports_torch_and_monai_when_it_starts_not_in_its_first_run(tmp_path):
    """Imported inside the first run they took 4-5 s on a busy 2-core machine without a heartbeat, and another
    worker took the run for lost (tests/test_lost_worker.py)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; import labelgen_web.celery; from celery.signals import worker_init;"
            "before = [m in sys.modules for m in ('torch', 'monai')]; worker_init.send(sender=None);"
            "print(before, [m in sys.modules for m in ('torch', 'monai')])")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, text=True,
                          capture_output=True, timeout=120, env={**os.environ, "LABELGEN_VAR_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[False, False] [True, True]"
