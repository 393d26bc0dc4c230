"""Coordinator pages: study list, creation, detail (arms, readers, progress; answers only once unblinded),
status, unblinding, reader assignment, pair choice and the preview of exactly what a reader sees. Arm names
appear only here and in the report."""

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.roles import capability_required
from evaluation.forms import AssignReadersForm, PairsForm, PlanForm, StudyForm
from evaluation.models import Assignment, Item, Study, Vote
from evaluation.planning import WEB_SEARCH_SIMS, WEB_SIMS, plan_design
from evaluation.reader_page import item_payload, page_context
from evaluation.services import (
    StudyError,
    assign_readers,
    cases_of_sets,
    create_study,
    is_assigned_reader,
    may_see_unblinded,
    progress,
    remove_reader,
    set_pairs,
    set_status,
    unblind,
)


@capability_required("coordinate")
def study_list(request):
    studies = Study.objects.select_related("dataset").prefetch_related("arms")
    return render(request, "evaluation/study_list.html", {"studies": studies})


@capability_required("coordinate")
def study_create(request):
    form = StudyForm(request.POST or None, initial=prefill(request.GET))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        settings = {k: data[k] for k in StudyForm.SETTINGS}
        try:
            study = create_study(dataset=data["dataset"], prediction_sets=data["prediction_sets"],
                                 title=data["title"], readers=data["readers"], created_by=request.user,
                                 seed=data["seed"], primary=form.primary_sets(), **settings)
        except StudyError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Study “{study.title}” created as a draft with "
                                      f"{study.study_cases.count()} cases.")
            return redirect(study)
    return render(request, "evaluation/study_form.html", {"form": form, "cases_of_set": cases_of_sets()})


def prefill(params):
    """Initial values from the query string: ``?dataset=<id>&sets=<id>,<id>&title=...`` (e.g. from a U-Net
    comparison's "Create a blind reader study" button)."""
    initial = {}
    if params.get("dataset", "").isdigit():
        initial["dataset"] = int(params["dataset"])
    sets = [int(s) for s in params.get("sets", "").split(",") if s.strip().isdigit()]
    if sets:
        initial["prediction_sets"] = sets
    if params.get("title"):
        initial["title"] = params["title"][:200]
    return initial


@capability_required("coordinate")
def study_detail(request, pk):
    study = get_object_or_404(Study.objects.select_related("dataset", "unblinded_by", "primary_arm",
                                                           "primary_comparator"), pk=pk)
    votes = (Vote.objects.filter(item__assignment__study=study, item__assignment__preview=False)
             .select_related("item__assignment__reader", "item__study_case__case", "item__arm_left",
                             "item__arm_right", "arm").order_by("item__assignment__reader__username",
                                                                "item__position"))
    unblinded = may_see_unblinded(study, request.user)
    return render(request, "evaluation/study_detail.html", {
        "study": study, "arms": study.arms.select_related("prediction_set"),
        "pairs": study.arm_pairs(), "n_cases": study.study_cases.count(), "plan": study.analysis_plan(),
        "progress": progress(study), "votes": votes[:500] if unblinded else None, "n_votes": votes.count(),
        "unblinded": unblinded, "reads_here": is_assigned_reader(study, request.user),
        "assign_form": AssignReadersForm(study=study),
        "pairs_form": PairsForm(study=study) if study.arms.count() > 2 else None,
        "Status": Study.Status,
    })


def _change(request, study, change, success):
    """Run ``change()`` (a study service) and report on the study page: ``success(result)`` or the refusal."""
    try:
        result = change()
    except StudyError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success(result))
    return redirect(study)


@require_POST
@capability_required("coordinate")
def study_status(request, pk):
    study = get_object_or_404(Study, pk=pk)
    return _change(request, study, lambda: set_status(study, request.POST.get("status", "")),
                   lambda _: f"The study is now {study.get_status_display().lower()}.")


@require_POST
@capability_required("coordinate")
def study_unblind(request, pk):
    """Show an open study's answers now; who and when is recorded and printed in the report."""
    study = get_object_or_404(Study, pk=pk)
    return _change(request, study, lambda: unblind(study, request.user),
                   lambda _: "Unblinded: the answers are shown below; the report records who unblinded and when.")


@require_POST
@capability_required("coordinate")
def study_readers(request, pk):
    study = get_object_or_404(Study, pk=pk)
    form = AssignReadersForm(request.POST, study=study)
    if not form.is_valid():
        messages.error(request, "Choose at least one reader who is not assigned yet.")
        return redirect(study)
    return _change(request, study, lambda: assign_readers(study, form.cleaned_data["readers"]),
                   lambda made: f"Assigned {len(made)} reader(s).")


@require_POST
@capability_required("coordinate")
def study_reader_remove(request, pk, assignment_pk):
    study = get_object_or_404(Study, pk=pk)
    assignment = get_object_or_404(Assignment, pk=assignment_pk, study=study)
    return _change(request, study, lambda: remove_reader(study, assignment),
                   lambda name: f"{name} was removed from the study.")


@require_POST
@capability_required("coordinate")
def study_pairs(request, pk):
    study = get_object_or_404(Study, pk=pk)
    form = PairsForm(request.POST, study=study)
    if not form.is_valid():
        messages.error(request, "Choose at least one pair.")
        return redirect(study)
    return _change(request, study, lambda: set_pairs(study, form.arm_id_pairs()),
                   lambda _: "Pairs saved; every reader's items were planned again.")


@capability_required("coordinate")
def study_preview(request, pk):
    """Preview a reader's first item, or (no readers yet) the coordinator's own preview assignment."""
    study = get_object_or_404(Study, pk=pk)
    assignment = (study.assignments.filter(preview=False).order_by("reader__username").first()
                  or study.assignments.filter(reader=request.user).first())
    if assignment is None:
        assignment = assign_readers(study, [request.user], preview=True)[0]
    return redirect("evaluation:preview_item", study.pk, assignment.pk, 1)


def _preview_item(pk, assignment_pk, position):
    assignment = get_object_or_404(Assignment, pk=assignment_pk, study_id=pk)
    return get_object_or_404(Item.objects.select_related("assignment__study", "study_case__case"),
                             assignment=assignment, position=position)


@never_cache
@capability_required("coordinate")
def preview_item(request, pk, assignment_pk, position):
    item = _preview_item(pk, assignment_pk, position)
    ctx = page_context(request, item, preview=True)
    ctx["assignments"] = item.assignment.study.assignments.select_related("reader")
    return render(request, "evaluation/reader.html", ctx)


@never_cache
@capability_required("coordinate")
def preview_item_config(request, pk, assignment_pk, position):
    return JsonResponse(item_payload(_preview_item(pk, assignment_pk, position), preview=True))


@never_cache
@capability_required("coordinate")
def study_plan(request):
    """The planner panel's JSON: power of the primary analysis by simulation (and, with ``target``, the cases
    for that power), with fewer simulated studies than ``manage.py plan_study`` so it answers in seconds."""
    form = PlanForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return JsonResponse({"error": f"Invalid planning request ({errors})."}, status=400)
    d = form.cleaned_data
    want_cases = request.GET.get("solve") == "cases"
    result = plan_design(preference=d["preference"], readers=d["readers"], cases=None if want_cases else d["cases"],
                         target=(d["target"] or 0.8) if want_cases else None, reader_sd=d["reader_sd"],
                         case_sd=d["case_sd"], alpha=d["alpha"], method=d["method"], ties=d["ties"] or "exclude",
                         tie_rate=d["tie_rate"] or 0.0, n_sim=WEB_SIMS[d["method"]],
                         search_sims=WEB_SEARCH_SIMS[d["method"]], max_cases=200)
    return JsonResponse(result)
