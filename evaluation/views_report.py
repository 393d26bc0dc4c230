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
from evaluation.reports import cached_report, votes_frame
from evaluation.services import is_assigned_reader, may_see_unblinded

UNBLINDING_ROWS = 500


def report_payload(study, *, full=False):
    """``(payload, is_full)``: the report and its figures, cached together per votes fingerprint. Without the
    full report (mixed models) in the cache, its computation is queued and the quick report comes back."""
    report, votes, fingerprint, is_full = cached_report(study, full=full)
    if report is None:
        return None, is_full
    if not is_full:
        queue_full_report(study, fingerprint)
    key = f"study-figures:{study.pk}:{fingerprint}:{int(is_full)}"
    payload = cache.get(key)
    if payload is None:
        if votes is None:  # the statistics were cached but not the figures: read the votes once here
            votes = votes_frame(study, with_dice=False)
        payload = {"report": report, "figures": all_figures(report, votes)}
        cache.set(key, payload, timeout=None)
    return payload, is_full


def queue_full_report(study, fingerprint):
    lock = f"study-report-full:{study.pk}:{fingerprint}:queued"
    if cache.add(lock, 1, timeout=3600):
        tasks.compute_full_report.apply_async(args=[study.pk, fingerprint], queue="default")


def blinded_response(request, study, as_json=False):
    """None when ``request.user`` may see the study's unblinded results; else the refusal to send."""
    if may_see_unblinded(study, request.user):
        return None
    if is_assigned_reader(study, request.user):
        message = "You read in this study, so its results stay blinded to you until it is closed."
        status = 403
    else:
        message = ("The study is open: its page shows reading progress only. Unblind it from the study page "
                   "(recorded in the report) or close it to see the results.")
        status = 409
    if as_json:
        return JsonResponse({"error": message}, status=status)
    return render(request, "evaluation/report_blinded.html", {"study": study, "message": message}, status=status)


@capability_required("coordinate")
def study_report(request, pk):
    study = get_object_or_404(Study.objects.select_related("unblinded_by", "primary_arm", "primary_comparator"),
                              pk=pk)
    refused = blinded_response(request, study)
    if refused:
        return refused
    payload, is_full = report_payload(study)
    context = {"study": study, "payload": payload, "closed": study.status == Study.Status.CLOSED,
               "full": is_full, "plan": study.analysis_plan().describe()}
    if payload:
        context["figures_json"] = payload["figures"]
        overall = payload["report"]["time"].get("overall") or {}
        context["time_s"] = {k: overall[k] / 1000 for k in ("median", "q25", "q75") if overall.get(k) is not None}
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
    refused = blinded_response(request, study, as_json=True)
    if refused:
        return refused
    payload, _ = report_payload(study, full=True)
    if payload is None:
        return JsonResponse({"error": f"study {study.title!r} has no votes yet"}, status=404)
    return JsonResponse({"study": study.title, "status": study.status, "unblinding": unblinding_record(study),
                         "planned_power": study.planned_power, **payload["report"]}, json_dumps_params={"indent": 2})


def unblinding_record(study):
    """How the study was unblinded, as printed in the report."""
    if study.unblinded_at:
        return {"early": True, "by": study.unblinded_by.username if study.unblinded_by else None,
                "at": study.unblinded_at.isoformat()}
    return {"early": False, "by": None, "at": study.closed_at.isoformat() if study.closed_at else None}


VOTE_COLUMNS = ["study", "reader", "case", "position", "left_arm", "right_arm", "choice", "preferred_arm",
                "grade", "confidence", "comment", "time_ms", "reread_of_position", "revision", "created_at",
                "updated_at"]


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
                             "item__arm_right", "item__reread_of", "arm")
             .order_by("item__assignment__reader__username", "item__position"))
    for vote in votes.iterator(chunk_size=2000):
        item = vote.item
        writer.writerow([study.title, item.assignment.reader.username, item.study_case.case.external_id, item.position,
                         item.arm_left.name, item.arm_right.name, vote.choice, vote.arm.name if vote.arm else "",
                         "" if vote.grade is None else vote.grade, vote.confidence or "", vote.comment,
                         vote.time_ms, item.reread_of.position if item.reread_of else "", vote.revision,
                         vote.created_at.isoformat(), vote.updated_at.isoformat()])
    return response


