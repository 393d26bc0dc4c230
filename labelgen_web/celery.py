"""The Celery app. Queues: ``default`` (light work) and ``gpu`` (label generation and training runs)."""

import os

from celery import Celery
from celery.signals import worker_init, worker_ready
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelgen_web.settings")

app = Celery("labelgen")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()


@app.on_after_configure.connect
def make_broker_folders(sender, **kwargs):
    """kombu's filesystem transport (the embedded default) needs its folders to exist."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)


@worker_ready.connect
def watch_for_lost_runs(sender, **kwargs):
    """Every worker re-queues runs whose worker died (pipeline.runs.execution): no beat server needed."""
    from pipeline.runs.execution import start_lost_run_watch

    start_lost_run_watch()


@worker_init.connect
def import_the_numerical_core(sender=None, **kwargs):
    """Import torch and MONAI when the worker starts (before its pool forks), not inside the first run: that took
    4-5 s on a busy 2-core machine, long enough without a heartbeat for the run to be taken for lost."""
    import pipeline.core.clustering.trainer  # noqa: F401 - torch and MONAI
    import pipeline.core.unet.trainer  # noqa: F401
