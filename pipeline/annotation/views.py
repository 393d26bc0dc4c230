"""The radiologist's side of annotation tasks: my tasks, the drawing page, and the POSTs it makes.

Items are looked up with ``radiologist=request.user``, so another reader's item (or a case outside the
user's tasks) is a 404 by construction. Drawings arrive as the NIfTI bytes NiiVue's ``saveImage`` returns
(gzipped by the page); every answer is JSON with ``error`` naming the case and the reason on refusal.
"""

from django.db.models import Count, Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.roles import capability_required
from pipeline.annotation import services
from pipeline.annotation.services import AnnotationError
from pipeline.datasets.viewer import viewer_bytes
from pipeline.datasets.viewer_config import viewer_config
from pipeline.models import AnnotationItem, AnnotationTask, Label


def _item(request, pk):
    return get_object_or_404(AnnotationItem.objects.select_related("task", "case__dataset", "drawing", "ai_label"),
                             pk=pk, radiologist=request.user)


def _seconds(request):
    try:
        return float(request.GET.get("seconds", 0))
    except ValueError:
        return 0.0


def _body(request):
    """The raw POST body, read at most one byte past the limit (the view refuses what is larger)."""
    return request.read(services.MAX_DRAWING_BYTES + 1)


@capability_required("annotate")
def my_tasks(request):
    tasks = (AnnotationTask.objects.filter(items__radiologist=request.user).distinct()
             .select_related("dataset")
             .annotate(n=Count("items", filter=Q(items__radiologist=request.user)),
                       done=Count("items", filter=Q(items__radiologist=request.user) & ~Q(items__status="todo"))))
    return render(request, "pipeline/annotation/my_tasks.html", {"tasks": tasks})


@capability_required("annotate")
def task_start(request, pk):
    """Resume: the first case still to do, else the task's first case."""
    items = AnnotationItem.objects.filter(task_id=pk, radiologist=request.user).order_by("position")
    item = items.filter(status=AnnotationItem.Status.TODO).first() or get_object_or_404(items[:1])
    return redirect(item)


def _volume_url(item, key):
    return reverse("pipeline:annotate_volume", args=[item.pk, key])


def page_config(item):
    """What ``static/js/annotate.js`` needs (plain JSON)."""
    images = list(item.case.images.order_by("id"))
    base_urls = {img.modality: _volume_url(item, f"image-{i}") for i, img in enumerate(images)}
    correction = Label.objects.filter(corrected_from_id=item.ai_label_id).first() if item.ai_label_id else None
    siblings = list(AnnotationItem.objects.filter(task=item.task, radiologist=item.radiologist)
                    .order_by("position").values_list("pk", "position"))
    later = [pk for pk, pos in siblings if pos > item.position]
    url = lambda name: reverse(f"pipeline:annotate_{name}", args=[item.pk])  # noqa: E731
    return {
        "viewer": viewer_config(base_urls=base_urls, slice_type="multiplanar"),
        "images": [{"name": m, "url": u} for m, u in base_urls.items()],
        "input": item.task.input,
        "case": item.case.external_id,
        "drawingUrl": _volume_url(item, "drawing") if item.drawing_id else None,
        "aiUrl": _volume_url(item, "ai") if item.ai_label_id else None,
        "correctionUrl": _volume_url(item, "correction") if correction else None,
        "aiState": item.ai_state,
        "post": {name: url(name) for name in ("drawing", "make_ai", "review_ai", "correction", "finish", "time")},
        "nextUrl": reverse("pipeline:annotate_item", args=[later[0]]) if later else
        reverse("pipeline:my_annotation_tasks"),
    }


@never_cache
@capability_required("annotate")
def item_page(request, pk):
    item = _item(request, pk)
    items = list(AnnotationItem.objects.filter(task=item.task, radiologist=request.user)
                 .select_related("case").order_by("position"))
    history = Label.objects.filter(case=item.case, rater=item.rater, prediction_set=None).order_by("created_at")
    return render(request, "pipeline/annotation/item.html", {
        "item": item, "task": item.task, "items": items, "config": page_config(item), "history": history,
        "done": sum(i.status != AnnotationItem.Status.TODO for i in items),
        "has_clustering": services.clustering_run_for(item.case.dataset) is not None,
    })


def _refused(exc):
    return JsonResponse({"error": str(exc)}, status=400)


@require_POST
@capability_required("annotate")
def save_drawing(request, pk):
    item = _item(request, pk)
    try:
        label = services.save_drawing(item, _body(request), request.user, _seconds(request))
    except AnnotationError as exc:
        return _refused(exc)
    return JsonResponse({"saved": True, "voxels": label.voxel_count, "input": label.input,
                         "seconds": round(item.seconds_spent, 1), "drawingUrl": _volume_url(item, "drawing")})


@require_POST
@capability_required("annotate")
def make_ai(request, pk):
    item = _item(request, pk)
    try:
        label, result, seconds = services.make_ai_label(item, _seconds(request))
    except AnnotationError as exc:
        return _refused(exc)
    return JsonResponse({"aiUrl": _volume_url(item, "ai"), "voxels": label.voxel_count,
                         "lesions": result.n_lesions, "serverSeconds": round(seconds, 3), "aiState": item.ai_state})


@require_POST
@capability_required("annotate")
def review_ai(request, pk):
    item = _item(request, pk)
    try:
        services.review_ai_label(item, request.GET.get("verdict", ""), request.user, _seconds(request))
    except AnnotationError as exc:
        return _refused(exc)
    return JsonResponse({"aiState": item.ai_state})


@require_POST
@capability_required("annotate")
def save_correction(request, pk):
    item = _item(request, pk)
    try:
        label = services.save_correction(item, _body(request), request.user, _seconds(request))
    except AnnotationError as exc:
        return _refused(exc)
    return JsonResponse({"aiState": item.ai_state, "voxels": label.voxel_count,
                         "correctionUrl": _volume_url(item, "correction")})


@require_POST
@capability_required("annotate")
def finish(request, pk):
    item = _item(request, pk)
    status = request.GET.get("status", "")
    if status not in (AnnotationItem.Status.DONE, AnnotationItem.Status.SKIPPED):
        return _refused(f"status must be done or skipped, not {status!r}")
    try:
        services.finish(item, status, request.POST.get("reason", ""), _seconds(request))
    except AnnotationError as exc:
        return _refused(exc)
    return JsonResponse({"status": item.status, "nextUrl": page_config(item)["nextUrl"]})


@require_POST
@capability_required("annotate")
def add_time(request, pk):
    """The page reports time spent when it is hidden or left (``navigator.sendBeacon``)."""
    item = _item(request, pk)
    item.add_seconds(_seconds(request))
    return JsonResponse({"seconds": round(item.seconds_spent, 1)})


@capability_required("annotate")
def volume(request, pk, key):
    """The case's images (``image-<n>``), the saved drawing (values kept: scribbles are 1 and 2), the AI label
    and its correction, for this radiologist's item only."""
    item = _item(request, pk)
    if key.startswith("image-") and key[6:].isdigit():
        images = list(item.case.images.order_by("id"))
        index = int(key[6:])
        if index >= len(images):
            return HttpResponse(status=404)
        blob = viewer_bytes(images[index], "image")
    elif key == "drawing" and item.drawing_id:
        blob = viewer_bytes(item.drawing, "clusters")
    elif key == "ai" and item.ai_label_id:
        blob = viewer_bytes(item.ai_label, "label")
    elif key == "correction" and item.ai_label_id:
        correction = get_object_or_404(Label, corrected_from_id=item.ai_label_id)
        blob = viewer_bytes(correction, "label")
    else:
        return HttpResponse(status=404)
    response = HttpResponse(blob, content_type="application/gzip")
    response["Cache-Control"] = "private, no-cache"  # drawings change under the same URL
    response["X-Content-Type-Options"] = "nosniff"
    return response
