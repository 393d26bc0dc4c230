"""The reader's pages: my studies, the side-by-side item page (+ its JSON), votes, the end page, volumes.

A reader reaches items only through their own assignment (``study pk`` + ``position`` looked up with
``reader=request.user``), so another reader's items are a 404 by construction. Coordinators see the
same page through the preview URLs (``views_coordinator``), where voting is disabled.
"""

from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import can, capability_required
from evaluation.forms import VoteForm
from evaluation.models import Assignment, Item, Study
from evaluation.reader_page import item_modalities, item_payload, page_context
from evaluation.services import StudyError, counts, record_vote
from evaluation.volumes import resolve_key
from labelgen_web.json_body import BadJSON, read_json
from pipeline.datasets.viewer import viewer_bytes


def _assignment(request, pk):
    """The current reader's assignment to study ``pk`` (drafts are invisible to readers)."""
    return get_object_or_404(Assignment.objects.select_related("study"), study_id=pk, reader=request.user,
                             preview=False, study__status__in=[Study.Status.OPEN, Study.Status.CLOSED])


_ITEM_RELATED = ("study_case__case", "arm_left", "arm_right", "vote", "assignment__study")


def _item(assignment, position):
    return get_object_or_404(Item.objects.select_related(*_ITEM_RELATED), assignment=assignment, position=position)


def _my_item(request, pk, position, related=_ITEM_RELATED):
    """The current reader's item at ``position`` of study ``pk``, with its assignment and study, in one query
    (the same 404s as :func:`_assignment` followed by :func:`_item`)."""
    return get_object_or_404(
        Item.objects.select_related(*related), assignment__study_id=pk, assignment__reader=request.user,
        assignment__preview=False, assignment__study__status__in=[Study.Status.OPEN, Study.Status.CLOSED],
        position=position)


@capability_required("vote")
def my_studies(request):
    assignments = (Assignment.objects.filter(reader=request.user, preview=False)
                   .exclude(study__status=Study.Status.DRAFT).select_related("study").order_by("-study__created_at"))
    rows = [(a, *counts(a)) for a in assignments]
    return render(request, "evaluation/my_studies.html", {"rows": rows})


@capability_required("vote")
def study_start(request, pk):
    """Resume: the first unanswered item, or the end page."""
    assignment = _assignment(request, pk)
    if not assignment.study.is_open:
        return render(request, "evaluation/reader_closed.html", {"study": assignment.study})
    position = assignment.first_open_position()
    if position is None:
        return redirect("evaluation:reader_done", pk)
    return redirect("evaluation:reader_item", pk, position)


@never_cache
@capability_required("vote")
def reader_item(request, pk, position):
    item = _my_item(request, pk, position)
    study = item.assignment.study
    if not study.is_open:
        return render(request, "evaluation/reader_closed.html", {"study": study})
    if hasattr(item, "vote") and not study.allow_revisit:
        return redirect("evaluation:study_start", pk)
    return render(request, "evaluation/reader.html", page_context(request, item))


@never_cache
@require_GET
@capability_required("vote")
def reader_item_config(request, pk, position):
    item = _my_item(request, pk, position)
    if not item.assignment.study.is_open:
        return JsonResponse({"error": "This study is closed."}, status=409)
    return JsonResponse(item_payload(item))


@require_POST
@capability_required("vote")
def reader_vote(request, pk, position):
    """Record an answer (JSON body: choice, confidence, comment, time_ms). Idempotent.

    A draft study's items are a 404 here exactly as on its other reader URLs (no hint of the assignment).
    """
    item = _my_item(request, pk, position, related=("assignment__study", "vote"))  # what a vote needs
    assignment = item.assignment
    try:
        payload = read_json(request, max_bytes=16 * 1024, empty={})
    except BadJSON as exc:
        return JsonResponse({"error": f"The answer must be a JSON object: {exc}."}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "The answer must be a JSON object."}, status=400)
    form = VoteForm(payload, study=assignment.study)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return JsonResponse({"error": f"Invalid answer ({errors})."}, status=400)
    try:
        result = record_vote(item, request.user, form.cleaned_data)
    except StudyError as exc:
        return JsonResponse({"error": exc.message, "closed": not assignment.study.is_open}, status=exc.status)
    done, total = result.progress or counts(assignment)
    return JsonResponse({"ok": True, "outcome": result.outcome, "position": position,
                         "progress": {"done": done, "total": total}})


@capability_required("vote")
def reader_done(request, pk):
    assignment = _assignment(request, pk)
    done, total = counts(assignment)
    return render(request, "evaluation/reader_done.html", {
        "study": assignment.study, "done": done, "total": total,
        "next_position": assignment.first_open_position()})


@capability_required("vote")
def reader_review(request, pk):
    """The reader's items with their state; links back to them when the study allows changing answers."""
    assignment = _assignment(request, pk)
    items = assignment.items.select_related("vote").order_by("position")
    done, total = counts(assignment)
    return render(request, "evaluation/reader_review.html", {
        "study": assignment.study, "items": items, "done": done, "total": total})


@require_GET
@cache_control(private=True, max_age=24 * 3600)
def volume(request, token, key):
    """A blinded volume of an item: only its reader (open study) or a coordinator may fetch it."""
    item = Item.objects.select_related("assignment__study", "study_case__case", "arm_left", "arm_right").filter(
        token=token).first()
    if item is None:
        raise Http404
    study = item.assignment.study
    is_reader = item.assignment.reader_id == request.user.pk and can(request.user, "vote") and study.is_open
    if not (is_reader or can(request.user, "coordinate")):
        raise Http404
    what = resolve_key(item, key, item_modalities(item))
    if what is None:
        raise Http404
    if what.startswith("base:"):
        row, kind = item.study_case.case.images.get(modality=what[5:]), "display"  # 8-bit: for the eye
    else:
        row, kind = item.study_case.prediction_for(item.arm_for(what)), "label"
    return HttpResponse(viewer_bytes(row, kind), content_type="application/octet-stream")
