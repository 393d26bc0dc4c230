"""From a study's votes to the coordinator's report: the vote table, the cached statistics, the charts.

The statistics are pure (:mod:`evaluation.stats`); this module feeds them and caches the result under a
fingerprint of the votes (count, last change, revisions), so the report is recomputed only when votes
change. Two versions are cached: the quick one (no mixed model) and the full one (with it; minutes on very
large studies), computed by a background task while a study is open and when it closes. The page shows
the full one when it is there, the quick one meanwhile (a mixed-model primary analysis then says it is being
computed); the report JSON always carries the full one.
"""

import hashlib

import pandas as pd
from django.core.cache import cache
from django.db.models import Count, Max

from evaluation.models import Item, Study, Vote

REPORT_VERSION = 2
CHOICE_CODE = {"left": "a", "right": "b", "none": "tie"}


def find_study(key):
    key = str(key)
    if key.isdigit():
        found = Study.objects.filter(pk=int(key)).first()
        if found:
            return found
    return Study.objects.filter(title=key).order_by("-id").first()


def real_items(study):
    """Items of real readers (a coordinator's preview assignment records nothing)."""
    return Item.objects.filter(assignment__study=study, assignment__preview=False)


#: Up to this many votes the mixed model takes well under a second: the page fits it inline.
INLINE_MIXED_MAX_VOTES = 3000


def votes_fingerprint(study, with_count=False):
    agg = Vote.objects.filter(item__in=real_items(study)).aggregate(
        n=Count("id"), last=Max("updated_at"), revisions=Max("revision"))
    raw = f"{study.pk}:{agg['n']}:{agg['last']}:{agg['revisions']}:{study.status}:{REPORT_VERSION}"
    fingerprint = hashlib.sha1(raw.encode()).hexdigest()[:16]
    return (fingerprint, agg["n"]) if with_count else fingerprint


def votes_frame(study, with_dice=True):
    """One row per vote in the statistics' format: arm_a = the arm shown on the left (so ``left`` is "a")."""
    # ids from the vote's own joins, names from small lookups: joining users, cases and arms per vote row
    # made this query a third of the report's time on large studies
    rows = list(Vote.objects.filter(item__in=real_items(study)).values_list(
        "item__assignment__reader_id", "item__study_case__case_id", "item__arm_left_id", "item__arm_right_id",
        "choice", "confidence", "time_ms", "grade", "item__reread_of_id"))
    df = pd.DataFrame(rows, columns=["reader", "case_id", "arm_a", "arm_b", "choice", "confidence", "time_ms",
                                     "grade", "reread"])
    if df.empty:
        return pd.DataFrame(columns=["reader", "case", "arm_a", "arm_b", "choice"])
    arm_name = dict(study.arms.values_list("pk", "name"))
    arm_set = dict(study.arms.values_list("pk", "prediction_set_id"))
    readers = dict(study.assignments.values_list("reader_id", "reader__username"))
    cases = dict(study.study_cases.values_list("case_id", "case__external_id"))
    df["set_a"], df["set_b"] = df["arm_a"].map(arm_set), df["arm_b"].map(arm_set)
    df["arm_a"], df["arm_b"] = df["arm_a"].map(arm_name), df["arm_b"].map(arm_name)
    df["reader"] = df["reader"].map(readers)
    df.insert(1, "case", df["case_id"].map(cases))
    df["choice"] = df["choice"].map(CHOICE_CODE)
    df["left"] = "a"
    df["reread"] = df["reread"].notna()
    if df["grade"].isna().all():
        df = df.drop(columns="grade")
    else:
        df["grade"] = df["grade"].astype("float")  # left = arm_a, so the stored left-positive grade is arm_a's
    if df["confidence"].isna().all():
        df = df.drop(columns="confidence")
    else:
        df["confidence"] = df["confidence"].astype("float")
    if with_dice:
        dice = prediction_dice(study)
        if dice:
            df["dice_a"] = [dice.get((c, s)) for c, s in zip(df["case_id"], df["set_a"], strict=True)]
            df["dice_b"] = [dice.get((c, s)) for c, s in zip(df["case_id"], df["set_b"], strict=True)]
            if df["dice_a"].isna().any() or df["dice_b"].isna().any():
                df = df.drop(columns=["dice_a", "dice_b"])
    return df.drop(columns=["case_id", "set_a", "set_b"])


def prediction_dice(study):
    """{(case id, prediction set id): Dice vs truth (else vs expert)} for arms that come from U-Net runs."""
    from pipeline.models import CaseMetric

    sets = list(study.arms.values_list("prediction_set_id", flat=True))
    found = {}
    for case_id, set_id, reference, metrics in CaseMetric.objects.filter(
            run__prediction_set_id__in=sets).values_list("case_id", "run__prediction_set_id", "reference", "metrics"):
        if reference == "truth" or (case_id, set_id) not in found:
            found[(case_id, set_id)] = metrics.get("dice")
    return found


def build_report(study, votes, *, full, n_boot=2000):
    from evaluation.stats import study_report

    expected = study.assignments.filter(preview=False).values_list("reader__username", flat=True)
    return study_report(votes, plan=study.analysis_plan(), n_boot=n_boot, fit_mixed_model=full,
                        expected_readers=list(expected), seed=study.seed % 2**32).to_dict()


def report_key(study, fingerprint, full, n_boot=2000):
    return f"study-report:{study.pk}:{fingerprint}:{n_boot}:{'full' if full else 'quick'}"


def cached_report(study, *, n_boot=2000, full=False):
    """``(report dict, votes frame or None, fingerprint, is_full)``. The full report (with the mixed model) when
    it is cached, when ``full`` asks for it or the study is small enough (then computed here); otherwise the
    quick one. The votes frame comes back when it was read here, so callers need not read the votes twice."""
    fingerprint, n_votes = votes_fingerprint(study, with_count=True)
    full = full or n_votes <= INLINE_MIXED_MAX_VOTES
    report = cache.get(report_key(study, fingerprint, True, n_boot))
    if report is not None:
        return report, None, fingerprint, True
    if not full:
        report = cache.get(report_key(study, fingerprint, False, n_boot))
        if report is not None:
            return report, None, fingerprint, False
    df = votes_frame(study)
    if df.empty:
        return None, df, fingerprint, full
    report = build_report(study, df, full=full, n_boot=n_boot)
    cache.set(report_key(study, fingerprint, full, n_boot), report, timeout=None)
    return report, df, fingerprint, full


def compute_full_report(study_pk, fingerprint=None):
    """The report with its mixed models (slow on big studies): run by a background task, cached."""
    study = Study.objects.get(pk=study_pk)
    if fingerprint is not None and fingerprint != votes_fingerprint(study):
        return None  # votes changed since this was queued: a newer request queues its own
    report, _, _, _ = cached_report(study, full=True)
    return report
