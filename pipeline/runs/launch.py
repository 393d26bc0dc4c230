"""Queueing runs: the task is sent only once the run row is committed, so a worker always finds it."""

from django.db import transaction


def launch(run, task):
    """Queue ``task(run.pk)`` on the gpu queue after the current transaction commits."""

    def send():
        result = task.apply_async(args=[run.pk], queue="gpu")
        type(run).objects.filter(pk=run.pk).update(celery_task_id=result.id or "")

    transaction.on_commit(send)
    return run
