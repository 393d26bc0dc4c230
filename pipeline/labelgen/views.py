"""Admin pages for label generation: launch, the clustering run's cluster maps, the refinement QA."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.roles import capability_required
from pipeline import tasks
from pipeline.datasets.viewer import viewer_bytes
from pipeline.models import ClusteringRun, ClusterMap, RefinementRun
from pipeline.runs.forms import ClusteringLaunchForm
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


def clustering_context(run):
    maps = run.cluster_maps.select_related("case").order_by("case__external_id")
    return {"cluster_maps": [{"case": m.case.external_id, "split": m.case.split, "n_clusters": m.n_clusters,
                              "cluster_url": reverse("pipeline:cluster_volume", args=[m.pk]),
                              "images": [{"name": img.modality, "url": reverse("pipeline:image_volume", args=[img.pk])}
                                         for img in m.case.images.order_by("id")]}
                             for m in maps]}


@capability_required("run")
def cluster_volume(request, pk):
    cluster_map = get_object_or_404(ClusterMap, pk=pk)
    response = HttpResponse(viewer_bytes(cluster_map, "clusters"), content_type="application/gzip")
    response["Cache-Control"] = "private, max-age=86400"
    return response


def refinement_context(run):
    import plotly.graph_objects as go

    rows = []
    for qa in run.qa.select_related("case", "label").order_by("case__external_id"):
        m = qa.metrics
        rows.append({"case": qa.case, "label": qa.label, "n_lesions": qa.n_lesions,
                     "vs_expert": m.get("expert (combined)", {}), "vs_truth": m.get("truth"),
                     "expert_vs_truth": m.get("truth vs expert (combined)"),
                     "per_rater": {k: v for k, v in m.items() if k.startswith("expert ") and k != "expert (combined)"}})
    cases = [r["case"].external_id for r in rows]
    series = [("AI vs expert (combined)", [r["vs_expert"].get("dice") for r in rows]),
              ("AI vs truth", [(r["vs_truth"] or {}).get("dice") for r in rows]),
              ("expert (combined) vs truth", [(r["expert_vs_truth"] or {}).get("dice") for r in rows])]
    fig = go.Figure([go.Bar(name=name, x=cases, y=values) for name, values in series
                     if any(v is not None for v in values)])
    fig.update_layout(barmode="group", yaxis={"title": {"text": "Dice"}, "range": [0, 1]}, height=340,
                      margin={"t": 30, "r": 10, "b": 40, "l": 50}, legend={"orientation": "h"})

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    return {"qa_rows": rows, "qa_figure": fig.to_json(), "qa_means": [(n, mean(v)) for n, v in series]}
