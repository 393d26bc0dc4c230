"""Domain rules of reader studies: creating a study, assigning readers, recording votes, progress.

Views and the ``create_study`` command call these; they raise :class:`StudyError` with a message fit to
show a coordinator or reader.
"""

import statistics
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts.roles import GROUPS, READER
from evaluation.design import derive_seed, plan_items, plan_rereads
from evaluation.models import Arm, Assignment, Item, Study, StudyCase, Vote, VoteRevision
from pipeline.models import Case, Label


class StudyError(Exception):
    """A request the study rules refuse. ``status``: the HTTP status a view should answer with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.message, self.status = message, status


def readers_queryset():
    return get_user_model().objects.filter(groups__name=GROUPS[READER], is_active=True).order_by("username")


def shared_cases(dataset, prediction_sets):
    """Cases of ``dataset`` that every one of ``prediction_sets`` has a prediction for."""
    qs = Case.objects.filter(dataset=dataset)
    for pset in prediction_sets:
        qs = qs.filter(pk__in=Label.objects.filter(prediction_set=pset).values("case_id"))
    return qs.order_by("external_id")


def cases_of_sets():
    """``{prediction set id (str): [ids of the cases it predicts]}``, for the study form's power planner: the
    cases of a study of some sets are those in all of their lists (as :func:`shared_cases`)."""
    out = {}
    rows = Label.objects.filter(prediction_set__isnull=False).values_list("prediction_set_id", "case_id").distinct()
    for set_id, case_id in rows:
        out.setdefault(str(set_id), []).append(case_id)
    return out


@transaction.atomic
def create_study(*, dataset, prediction_sets, title, readers=(), created_by=None, seed=None, pairs=None,
                 primary=None, open_now=False, **settings):
    """Create a study with one arm per prediction set over the cases all sets cover; assign ``readers``.

    ``pairs``: optional ``[(set_a, set_b), ...]`` of prediction sets to compare (default: all pairs).
    ``primary``: ``(set_x, set_y)``: the primary endpoint is the share preferring X over Y (default with two
    sets: the first over the second; with more, every pair is analysed alike).
    ``settings``: other :class:`Study` fields (instructions, allow_tie, ask_confidence, primary_method, ...).
    """
    prediction_sets = list(prediction_sets)
    if len(prediction_sets) < 2:
        raise StudyError("A study needs at least two arms (prediction sets).")
    if len({p.pk for p in prediction_sets}) != len(prediction_sets):
        raise StudyError("The same prediction set was chosen twice.")
    for pset in prediction_sets:
        if pset.dataset_id != dataset.pk:
            raise StudyError(f"Prediction set {pset.name!r} belongs to dataset {pset.dataset.name!r}, "
                             f"not {dataset.name!r}.")
    cases = list(shared_cases(dataset, prediction_sets))
    if not cases:
        raise StudyError(f"No case of dataset {dataset.name!r} has a prediction in every chosen set.")
    study = Study(dataset=dataset, title=title, created_by=created_by, **settings)
    if seed is not None:
        study.seed = int(seed)
    study.save()
    arms = {p.pk: Arm.objects.create(study=study, name=p.name, prediction_set=p) for p in prediction_sets}
    if primary is None and len(prediction_sets) == 2:
        primary = prediction_sets
    if primary is not None:
        x, y = primary
        if x.pk == y.pk or x.pk not in arms or y.pk not in arms:
            raise StudyError("The primary endpoint must name two different prediction sets of the study.")
        study.primary_arm, study.primary_comparator = arms[x.pk], arms[y.pk]
        study.save(update_fields=["primary_arm", "primary_comparator"])
    StudyCase.objects.bulk_create([StudyCase(study=study, case=c) for c in cases])
    if pairs:
        set_pairs(study, [(arms[a.pk].pk, arms[b.pk].pk) for a, b in pairs])
    assign_readers(study, readers)
    if open_now:
        set_status(study, Study.Status.OPEN)
    return study


def set_pairs(study, arm_id_pairs):
    """Choose which arm pairs are compared (draft studies only); re-plans every assignment."""
    if study.status != Study.Status.DRAFT:
        raise StudyError("Pairs can only be changed while the study is a draft.", 409)
    ids = set(study.arms.values_list("pk", flat=True))
    clean = sorted({tuple(sorted((int(a), int(b)))) for a, b in arm_id_pairs})
    if not clean:
        raise StudyError("Choose at least one pair of arms.")
    for a, b in clean:
        if a == b or a not in ids or b not in ids:
            raise StudyError(f"Pair {a}-{b} does not name two arms of this study.")
    study.pairs = [list(p) for p in clean]
    study.save(update_fields=["pairs"])
    for assignment in study.assignments.all():
        plan_assignment(assignment, replace=True)


def plan_assignment(assignment, *, replace=False):
    """Create the items of ``assignment`` from its seed (see :mod:`evaluation.design`)."""
    study = assignment.study
    if assignment.items.exists():
        if not replace:
            return
        if Vote.objects.filter(item__assignment=assignment).exists():
            raise StudyError(f"{assignment.reader} has already voted; the plan cannot change.", 409)
        assignment.items.all().delete()
    study_cases = {sc.case.external_id: sc for sc in study.study_cases.select_related("case")}
    pairs = [(a.pk, b.pk) for a, b in study.arm_pairs()]
    plan = plan_items(sorted(study_cases), pairs, assignment.seed, every_pair=study.every_pair_each_case)
    order = plan_rereads(len(plan), study.reread_share, assignment.seed)
    position = {code: k for k, code in enumerate(order, start=1)}
    firsts = Item.objects.bulk_create([
        Item(assignment=assignment, position=position[i], study_case=study_cases[p.case], arm_left_id=p.left,
             arm_right_id=p.right) for i, p in enumerate(plan)
    ])
    # Re-reads: the same case and pair later on, sides swapped (a second insert: they point at first reads).
    Item.objects.bulk_create([
        Item(assignment=assignment, position=position[code], study_case=firsts[-code - 1].study_case,
             arm_left_id=firsts[-code - 1].arm_right_id, arm_right_id=firsts[-code - 1].arm_left_id,
             reread_of=firsts[-code - 1]) for code in order if code < 0
    ])


@transaction.atomic
def assign_readers(study, users, *, preview=False):
    """Give each user (readers only, unless ``preview``) an assignment with its own seeded plan."""
    made = []
    if study.status == Study.Status.CLOSED and not preview:
        raise StudyError("Readers cannot be added to a closed study.", 409)
    allowed = set(readers_queryset().values_list("pk", flat=True))
    for user in users:
        if not preview and user.pk not in allowed:
            raise StudyError(f"{user.username} is not in the Readers group.")
        assignment, created = Assignment.objects.get_or_create(
            study=study, reader=user, defaults={"seed": derive_seed(study.seed, user.username), "preview": preview})
        if created:
            plan_assignment(assignment)
            made.append(assignment)
    return made


def remove_reader(study, assignment):
    """Take a reader (or a coordinator's preview) off a study, with their planned items.

    Refused, with nothing changed, when the reader has answered an item (votes are study data: they stay, and
    a reader who should stop is left to the study's closing) or is the last reader of an open study.
    """
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().select_related("reader").get(pk=assignment.pk)
        name = assignment.reader.username
        answered = Vote.objects.filter(item__assignment=assignment).count()
        if answered and not assignment.preview:
            raise StudyError(f"{name} has answered {answered} item(s) and cannot be removed: the votes are kept "
                             "as study data. Close the study when enough readers have finished.", 409)
        others = study.assignments.filter(preview=False).exclude(pk=assignment.pk).exists()
        if study.status == Study.Status.OPEN and not assignment.preview and not others:
            raise StudyError(f"{name} is the only reader of this open study; assign another reader first or "
                             "close the study.", 409)
        assignment.delete()
    return name


def set_status(study, status):
    now = timezone.now()
    if status == Study.Status.OPEN:
        if not study.assignments.filter(preview=False).exists():
            raise StudyError("Assign at least one reader before opening the study.", 409)
        study.opened_at = study.opened_at or now
        study.closed_at = None
        transaction.on_commit(lambda: _queue_volumes(study.pk))  # readers' first items need no conversion
    elif status == Study.Status.CLOSED:
        study.closed_at = now
        # the mixed model of the final votes, so the closed study's report is complete when first opened
        transaction.on_commit(lambda: _queue_full_report(study.pk))
    elif status != Study.Status.DRAFT or study.status != Study.Status.DRAFT:
        raise StudyError(f"Unknown or impossible status {status!r}.")
    study.status = status
    study.save(update_fields=["status", "opened_at", "closed_at"])


def _queue_volumes(study_pk):
    from evaluation import tasks

    tasks.prepare_study_volumes.apply_async(args=[study_pk], queue="default")


def _queue_full_report(study_pk):
    from evaluation import tasks

    tasks.compute_full_report.apply_async(args=[study_pk], queue="default")


@dataclass
class VoteResult:
    vote: Vote
    outcome: str  # "created", "unchanged" (an idempotent resubmit) or "changed"
    progress: tuple[int, int] | None = None  # (done, total), when recording the vote already counted them


def _same(vote, data):
    return (vote.choice == data["choice"] and vote.confidence == data.get("confidence")
            and vote.grade == data.get("grade") and vote.comment == data.get("comment", ""))


_ANSWER_FIELDS = ("choice", "confidence", "grade", "comment")


def _insert_first_vote(item, fields):
    """The hot path, one INSERT and one SELECT: insert the vote unless one exists (ON CONFLICT DO NOTHING, no
    savepoint), then read the assignment's progress and this item's stored vote in one statement.

    Returns the :class:`VoteResult` ("created", or "unchanged" when the same answer was stored first), or None
    when a different answer to this item was stored first (a concurrent request): the caller then compares
    with it as with any existing vote."""
    vote = Vote(item=item, **fields)
    Vote.objects.bulk_create([vote], ignore_conflicts=True)
    mine = Q(pk=item.pk)
    row = Item.objects.filter(assignment_id=item.assignment_id).aggregate(
        total=Count("id"), done=Count("vote"), vote_id=Max("vote__id", filter=mine),
        created_at=Max("vote__created_at", filter=mine), **{name: Max(f"vote__{name}", filter=mine)
                                                           for name in _ANSWER_FIELDS})
    progress = (row["done"], row["total"])
    if row["created_at"] == vote.created_at:  # ours was inserted (created_at is set on the instance by the insert)
        vote.pk = row["vote_id"]
        return VoteResult(vote, "created", progress)
    if _same(Vote(**{name: row[name] for name in _ANSWER_FIELDS}), fields):
        return VoteResult(Vote.objects.get(pk=row["vote_id"]), "unchanged", progress)  # a double submit
    return None


def record_vote(item, user, data):
    """Record ``data`` (cleaned by :class:`evaluation.forms.VoteForm`) as ``user``'s answer on ``item``.

    Idempotent: the same answer sent twice is stored once. A different answer replaces the vote only if
    the study allows going back; the old answer is kept as a :class:`VoteRevision`.
    """
    assignment = item.assignment
    study = assignment.study
    if assignment.reader_id != user.pk or assignment.preview:
        raise StudyError("This item is not assigned to you.", 404)
    if not study.is_open:
        raise StudyError("This study is closed; answers are no longer accepted." if study.status == "closed"
                         else "This study is not open yet.", 409)
    if data["choice"] not in study.choices():
        raise StudyError("“No preference” is not allowed in this study.")
    fields = {"choice": data["choice"], "arm_id": item.arm_id_for(data["choice"]), "confidence": data.get("confidence"),
              "grade": data.get("grade"), "comment": data.get("comment", ""), "time_ms": data.get("time_ms") or 0}
    known = item.vote if hasattr(item, "vote") else None  # select_related("vote") tells without a query
    if known is None or known.pk is None:
        result = _insert_first_vote(item, fields)
        if result is not None:
            return result
    with transaction.atomic():
        vote = Vote.objects.select_for_update().get(item=item)
        if _same(vote, fields):
            return VoteResult(vote, "unchanged")
        if not study.allow_revisit:
            raise StudyError("You already answered this item and this study does not allow changing answers.",
                             409)
        VoteRevision.objects.create(vote=vote, revision=vote.revision, choice=vote.choice, arm_id=vote.arm_id,
                                    confidence=vote.confidence, grade=vote.grade, comment=vote.comment,
                                    time_ms=vote.time_ms,
                                    answered_at=vote.updated_at)
        fields["time_ms"] += vote.time_ms
        for k, v in fields.items():
            setattr(vote, k, v)
        vote.revision += 1
        vote.save()
        return VoteResult(vote, "changed")


def is_assigned_reader(study, user):
    """True when ``user`` reads in ``study`` (a real assignment, not a coordinator's preview)."""
    return study.assignments.filter(reader_id=user.pk, preview=False).exists()


def may_see_unblinded(study, user):
    """Unblinded answers (which arm was where, arm-level results): after closing, or once a coordinator
    unblinded the open study; never, while it is open, to a user who reads in it."""
    if study.status == Study.Status.CLOSED:
        return True
    if study.status == Study.Status.OPEN and is_assigned_reader(study, user):
        return False
    return study.status == Study.Status.DRAFT or study.unblinded_at is not None


def unblind(study, user):
    """Record that ``user`` unblinded the open ``study`` now (kept once: the first unblinding stands)."""
    if study.status != Study.Status.OPEN:
        raise StudyError("Only an open study needs unblinding; a closed study's answers are shown anyway.", 409)
    if is_assigned_reader(study, user):
        raise StudyError("You read in this study, so its answers stay blinded to you while it is open.", 403)
    if study.unblinded_at is None:
        study.unblinded_at, study.unblinded_by = timezone.now(), user
        study.save(update_fields=["unblinded_at", "unblinded_by"])


@dataclass
class ReaderProgress:
    assignment: Assignment
    done: int
    total: int
    median_time_ms: float | None
    last_activity: object

    @property
    def median_s(self):
        return None if self.median_time_ms is None else self.median_time_ms / 1000


def progress(study):
    """One :class:`ReaderProgress` per (non-preview) reader of ``study``."""
    rows = []
    qs = (study.assignments.filter(preview=False).select_related("reader")
          .annotate(total=Count("items", distinct=True), done=Count("items__vote", distinct=True),
                    last=Max("items__vote__updated_at")))
    times = {}
    for a_id, t in Vote.objects.filter(item__assignment__study=study).values_list("item__assignment_id", "time_ms"):
        times.setdefault(a_id, []).append(t)
    for a in qs:
        t = times.get(a.pk)
        rows.append(ReaderProgress(a, a.done, a.total, statistics.median(t) if t else None, a.last))
    return rows


def counts(assignment):
    total = assignment.items.count()
    done = assignment.items.filter(~Q(vote=None)).count()
    return done, total
