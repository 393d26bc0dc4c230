"""The coordinator's study report: headline, charts, tables, exports; unblinding only after closing."""

import csv

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.text import slugify

from accounts.roles import capability_required
from evaluation import tasks
from evaluation.models import Item, Study, Vote
from evaluation.report_charts import all_figures
from evaluation.reports import cached_report, mixed_model_key, votes_frame

UNBLINDING_ROWS = 500


def report_payload(study):
    """The report and its figures, cached together per votes fingerprint."""
    report, votes, fingerprint = cached_report(study)
    if report is None:
        return None, fingerprint
    key = f"study-figures:{study.pk}:{fingerprint}"
    payload = cache.get(key)
    if payload is None:
        if votes is None:  # the statistics were cached but not the figures: read the votes once here
            votes = votes_frame(study, with_dice=False)
        payload = {"report": report, "figures": all_figures(report, votes)}
        cache.set(key, payload, timeout=None)
    return payload, fingerprint


def mixed_models(study, fingerprint):
    """Cached mixed-model results, or None after queueing their computation."""
    results = cache.get(mixed_model_key(study, fingerprint))
    if results is None:
        lock = f"{mixed_model_key(study, fingerprint)}:queued"
        if cache.add(lock, 1, timeout=3600):
            tasks.compute_mixed_models.apply_async(args=[study.pk, fingerprint], queue="default")
    return results


@capability_required("coordinate")
def study_report(request, pk):
    study = get_object_or_404(Study, pk=pk)
    payload, fingerprint = report_payload(study)
    context = {"study": study, "payload": payload, "closed": study.status == Study.Status.CLOSED}
    if payload:
        context["mixed"] = mixed_models(study, fingerprint)
        context["figures_json"] = payload["figures"]
    if study.status == Study.Status.CLOSED:
        items = (Item.objects.filter(assignment__study=study, assignment__preview=False)
                 .select_related("assignment__reader", "study_case__case", "arm_left", "arm_right", "vote")
                 .order_by("assignment__reader__username", "position"))
        context["unblinding"] = items[:UNBLINDING_ROWS]
        context["unblinding_total"] = items.count()
    return render(request, "evaluation/report.html", context)


@capability_required("coordinate")
def study_report_json(request, pk):
    study = get_object_or_404(Study, pk=pk)
    payload, _ = report_payload(study)
    if payload is None:
        return JsonResponse({"error": f"study {study.title!r} has no votes yet"}, status=404)
    return JsonResponse({"study": study.title, "status": study.status, **payload["report"]},
                        json_dumps_params={"indent": 2})


VOTE_COLUMNS = ["study", "reader", "case", "position", "left_arm", "right_arm", "choice", "preferred_arm",
                "confidence", "comment", "time_ms", "revision", "created_at", "updated_at"]


@capability_required("coordinate")
def study_votes_csv(request, pk):
    """Every vote with human-readable columns. It names the arm on each side, so only once closed."""
    study = get_object_or_404(Study, pk=pk)
    if study.status != Study.Status.CLOSED:
        return HttpResponse("The votes CSV names the arm shown on each side (it unblinds the study); "
                            "close the study first.", status=409, content_type="text/plain")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(study.title) or "study"}-votes.csv"'
    writer = csv.writer(response)
    writer.writerow(VOTE_COLUMNS)
    votes = (Vote.objects.filter(item__assignment__study=study, item__assignment__preview=False)
             .select_related("item__assignment__reader", "item__study_case__case", "item__arm_left",
                             "item__arm_right", "arm").order_by("item__assignment__reader__username", "item__position"))
    for vote in votes.iterator(chunk_size=2000):
        item = vote.item
        writer.writerow([study.title, item.assignment.reader.username, item.study_case.case.external_id, item.position,
                         item.arm_left.name, item.arm_right.name, vote.choice, vote.arm.name if vote.arm else "",
                         vote.confidence or "", vote.comment, vote.time_ms, vote.revision,
                         vote.created_at.isoformat(), vote.updated_at.isoformat()])
    return response


