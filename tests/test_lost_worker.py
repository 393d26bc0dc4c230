"""A worker killed with SIGKILL mid-run (as when its machine dies): another worker picks the run up within
seconds of its heartbeat going silent and finishes it from the last checkpoint. Runs on the configured
broker: the filesystem transport in pass 1, Redis in pass 2 (where the killed worker's unacknowledged
message would otherwise wait for the 48 h visibility timeout)."""

import signal

import pytest
from django.core.management import call_command

from pipeline import tasks
from pipeline.core.phantoms import write_phantom_dataset
from pipeline.models import ClusteringRun, Dataset, Run
from pipeline.runs.presets import clustering_config
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]

FAST_LIFECYCLE = {"LABELGEN_RUN_HEARTBEAT_SECONDS": "1", "LABELGEN_RUN_LOST_SECONDS": "4",
                  "LABELGEN_RUN_CHECK_SECONDS": "1", "OMP_NUM_THREADS": "1"}
TINY = {"height": 32, "width": 32, "depth": 8, "n_channels": 4, "batch_size": 2, "max_epochs": 40, "patience": 40}


def test_a_run_whose_worker_is_killed_is_finished_by_another_worker(settings, tmp_path):
    from labelgen_web.celery import app

    app.control.purge()
    settings.MEDIA_ROOT = tmp_path / "media"
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=4, size=32, depth=8, seed=5)
    call_command("import_cases", str(manifest), dataset="tiny", no_progress=True)
    run = ClusteringRun.objects.create(dataset=Dataset.objects.get(name="tiny"),
                                       config=clustering_config("fast", TINY).to_dict())
    tasks.train_clustering.apply_async(args=[run.pk], queue="gpu")

    def epochs():
        return ClusteringRun.objects.get(pk=run.pk).epochs_done or 0

    first_log, second_log = tmp_path / "worker1.log", tmp_path / "worker2.log"
    with celery_worker(log_path=first_log, extra_env=FAST_LIFECYCLE) as first:
        wait_for(lambda: epochs() >= 3, timeout=240, message="three epochs", proc=first, log_path=first_log)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    killed_at = epochs()
    run.refresh_from_db()
    assert run.status == "running" and run.attempts == 1 and killed_at < TINY["max_epochs"]

    with celery_worker(log_path=second_log, extra_env=FAST_LIFECYCLE) as second:
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=300, message="the run to finish",
                 proc=second, log_path=second_log)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.attempts == 2 and run.cluster_maps.count() == 4
    texts = [entry["text"] for entry in run.history]
    assert any(t.startswith("Re-queued: its worker") for t in texts), texts
    resumed = [t for t in texts if t.startswith("resumed from the checkpoint of epoch")]
    assert resumed and int(resumed[0].split()[-1]) >= 3, texts  # it did not start again from epoch 0
    assert sorted(run.events.values_list("step", flat=True)) == list(range(1, run.epochs_done + 1))
