"""Admin pages for runs: list, detail with live progress, status JSON, cancel, device check."""

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import capability_required
from pipeline import tasks
from pipeline.labelgen import pages as labelgen_pages
from pipeline.models import DeviceCheckRun, Run
from pipeline.runs.launch import launch
from pipeline.unet import pages as unet_pages


@capability_required("run")
def run_list(request):
    runs = Run.objects.select_related("created_by")[:200]
    return render(request, "pipeline/run_list.html", {"runs": runs})


def detail_context(run):
    """Extra context of a run kind's page (its template is ``pipeline/run_<kind>.html``)."""
    builders = {"clustering": labelgen_pages.clustering_context, "refinement": labelgen_pages.refinement_context,
                "comparison": unet_pages.comparison_context, "training": unet_pages.training_context}
    return builders[run.kind](run) if run.kind in builders else {}


@capability_required("run")
def run_detail(request, pk):
    run = get_object_or_404(Run, pk=pk).specific()
    template = f"pipeline/run_{run.kind}.html"
    return render(request, [template, "pipeline/run_detail.html"], {"run": run, **detail_context(run)})


@capability_required("run")
def run_status(request, pk):
    run = get_object_or_404(Run, pk=pk)
    return JsonResponse(run.state())


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
