"""Admin pages for label generation: launch, the clustering run's cluster maps, the refinement QA."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.roles import capability_required
from pipeline import tasks
from pipeline.datasets.viewer import viewer_bytes
from pipeline.labelgen.forms import ClusteringLaunchForm
from pipeline.models import ClusteringRun, ClusterMap, RefinementRun
from pipeline.runs.launch import launch


@capability_required("run")
def clustering_launch(request):
    form = ClusteringLaunchForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        run = ClusteringRun.objects.create(dataset=data["dataset"], created_by=request.user,
                                           config={**form.clustering_config.to_dict(), "preset": data["preset"]})
        if data["refine"]:
            RefinementRun.objects.create(dataset=data["dataset"], clustering_run=run, created_by=request.user,
                                         config=form.refine_config)
        launch(run, tasks.train_clustering)
        messages.success(request, f"{run} queued" + (" (refinement follows)" if data["refine"] else ""))
        return redirect(run)
    return render(request, "pipeline/clustering_launch.html", {"form": form}, status=400 if form.errors else 200)


@capability_required("run")
def cluster_volume(request, pk):
    cluster_map = get_object_or_404(ClusterMap, pk=pk)
    response = HttpResponse(viewer_bytes(cluster_map, "clusters"), content_type="application/gzip")
    response["Cache-Control"] = "private, max-age=86400"
    return response
