"""Admin pages for runs: list, detail with live progress, status JSON, cancel, device check."""

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import capability_required
from pipeline import tasks
from pipeline.models import DeviceCheckRun, Run
from pipeline.runs.launch import launch


@capability_required("run")
def run_list(request):
    runs = Run.objects.select_related("created_by")[:200]
    return render(request, "pipeline/run_list.html", {"runs": runs})


def detail_context(run):
    """Extra context of a run kind's page (its template is ``pipeline/run_<kind>.html``)."""
    from pipeline.labelgen import views as views_labelgen
    from pipeline.unet import views as views_training

    builders = {"clustering": views_labelgen.clustering_context, "refinement": views_labelgen.refinement_context,
                "comparison": views_training.comparison_context, "training": views_training.training_context}
    return builders[run.kind](run) if run.kind in builders else {}


@capability_required("run")
def run_detail(request, pk):
    run = get_object_or_404(Run, pk=pk).specific()
    template = f"pipeline/run_{run.kind}.html"
    return render(request, [template, "pipeline/run_detail.html"], {"run": run, **detail_context(run)})


def run_state(run):
    """The JSON the run page polls: status, progress and every recorded event, per series.

    A comparison shows its arms' events (one series per arm) and their mean progress.
    """
    from pipeline.models import RunEvent

    runs = [run]
    if run.kind == "comparison":
        runs += list(Run.objects.filter(trainingrun__comparison_id=run.pk))
        if not run.is_finished and len(runs) > 1:
            run.progress = sum(r.progress for r in runs[1:]) / (len(runs) - 1)
    series = {}
    for event in RunEvent.objects.filter(run__in=runs).order_by("series", "step"):
        series.setdefault(event.series, []).append({"step": event.step, **event.values})
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "finished": run.is_finished,
        "progress": run.progress,
        "message": run.message,
        "error": run.error.strip().splitlines()[-1] if run.error.strip() else "",
        "device": run.device,
        "attempts": run.attempts,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration.total_seconds() if run.duration else None,
        "series": series,
    }


@capability_required("run")
def run_status(request, pk):
    run = get_object_or_404(Run, pk=pk)
    return JsonResponse(run_state(run))


@require_POST
@capability_required("run")
def run_cancel(request, pk):
    run = get_object_or_404(Run, pk=pk)
    if run.request_cancel():
        messages.info(request, f"Cancel requested for {run}.")
    else:
        messages.warning(request, f"{run} has already finished.")
    return redirect(run)


@require_POST
@capability_required("run")
def device_check_launch(request):
    run = DeviceCheckRun.objects.create(created_by=request.user, config={"device": request.POST.get("device", "")})
    launch(run, tasks.device_check)
    messages.success(request, f"{run} queued on the gpu queue.")
    return redirect(run)
