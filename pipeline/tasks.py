"""Celery tasks: thin shells that hand a run's body to :func:`pipeline.execution.execute`.

All tasks here are routed to the ``gpu`` queue (settings.CELERY_TASK_ROUTES).
"""

import time

from celery import shared_task
from django.conf import settings

from .execution import execute


@shared_task(acks_late=True, reject_on_worker_lost=True)
def device_check(run_id):
    return execute(run_id, _device_check)


def _device_check(run, ctx):
    import torch

    from .core.device import describe_device, resolve_device

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
