"""Celery tasks: thin shells that hand a run's body to :func:`pipeline.runs.execution.execute`.

All tasks here are routed to the ``gpu`` queue (settings.CELERY_TASK_ROUTES).
"""

import time

from celery import shared_task
from django.conf import settings

from pipeline.runs.execution import execute


@shared_task(acks_late=True, reject_on_worker_lost=True)
def device_check(run_id):
    return execute(run_id, _device_check)


def _device_check(run, ctx):
    import torch

    from pipeline.core.device import describe_device, resolve_device

    device = resolve_device(run.config.get("device") or settings.LABELGEN_DEVICE)
    run.update_fields(device=describe_device(device))
    n = run.size
    a = torch.randn(n, n, device=device)
    repeats = 10
    start = time.perf_counter()
    for i in range(repeats):
        ctx.check_cancel()
        a = torch.tanh(a @ a / n)
        ctx.progress(100 * (i + 1) / repeats, f"matmul {i + 1}/{repeats}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    gflops = 2 * n**3 * repeats / seconds / 1e9
    run.gflops = gflops
    run.save(update_fields=["gflops"])
    ctx.event(0, {"gflops": gflops, "seconds": seconds, "torch": torch.__version__})
    ctx.progress(100, f"{gflops:.1f} GFLOP/s on {run.device}")


@shared_task(acks_late=True, reject_on_worker_lost=True)
def train_clustering(run_id):
    from pipeline.labelgen.runs import run_clustering

    status = execute(run_id, run_clustering)
    _queue_follow_up(run_id, status)
    return status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def refine_labels(run_id):
    from pipeline.labelgen.runs import run_refinement

    return execute(run_id, run_refinement)


def _queue_follow_up(run_id, status):
    """A clustering run launched as "generate labels" queues its refinement run when it succeeds."""
    from pipeline.models import RefinementRun

    if status != "succeeded":
        return
    for follow in RefinementRun.objects.filter(clustering_run_id=run_id, status="queued", celery_task_id=""):
        result = refine_labels.apply_async(args=[follow.pk], queue="gpu")
        RefinementRun.objects.filter(pk=follow.pk).update(celery_task_id=result.id or "")


@shared_task(acks_late=True, reject_on_worker_lost=True)
def train_unet(run_id):
    from pipeline.models import TrainingRun
    from pipeline.unet.runs import finalize_comparison, run_training

    status = execute(run_id, run_training)
    comparison_id = TrainingRun.objects.filter(pk=run_id).values_list("comparison_id", flat=True).first()
    if comparison_id:
        finalize_comparison(comparison_id)
    return status


def task_for_kind():
    """``{run kind: task}`` for the runs a worker executes (a comparison is finished by its arms' tasks)."""
    return {"device_check": device_check, "clustering": train_clustering, "refinement": refine_labels,
            "training": train_unet}
