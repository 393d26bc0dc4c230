"""From a study's votes to the coordinator's report: the vote table, the cached statistics, the charts.

The statistics are pure (:mod:`evaluation.stats`); this module feeds them and caches the result under a
fingerprint of the votes (count, last change, revisions), so the report is recomputed only when votes
change. The mixed model (minutes on very large studies) is computed by a background task and cached on
its own; the page shows the rest meanwhile.
"""

import hashlib

import pandas as pd
from django.core.cache import cache
from django.db.models import Count, Max

from evaluation.models import Item, Study, Vote

REPORT_VERSION = 1
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


def votes_fingerprint(study):
    agg = Vote.objects.filter(item__in=real_items(study)).aggregate(
        n=Count("id"), last=Max("updated_at"), revisions=Max("revision"))
    raw = f"{study.pk}:{agg['n']}:{agg['last']}:{agg['revisions']}:{study.status}:{REPORT_VERSION}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def votes_frame(study, with_dice=True):
    """One row per vote in the statistics' format: arm_a = the arm shown on the left (so ``left`` is "a")."""
    # ids from the vote's own joins, names from small lookups: joining users, cases and arms per vote row
    # made this query a third of the report's time on large studies
    rows = list(Vote.objects.filter(item__in=real_items(study)).values_list(
        "item__assignment__reader_id", "item__study_case__case_id", "item__arm_left_id", "item__arm_right_id",
        "choice", "confidence", "time_ms"))
    df = pd.DataFrame(rows, columns=["reader", "case_id", "arm_a", "arm_b", "choice", "confidence", "time_ms"])
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


def cached_report(study, *, n_boot=2000):
    """``(report dict, votes frame or None, fingerprint)``; the statistics are computed once per fingerprint.
    The votes frame comes back when it was read here (the report was not cached), so callers need not read
    the votes a second time."""
    from evaluation.stats import study_report

    fingerprint = votes_fingerprint(study)
    key = f"study-report:{study.pk}:{fingerprint}:{n_boot}"
    report = cache.get(key)
    if report is None:
        df = votes_frame(study)
        if df.empty:
            return None, df, fingerprint
        report = study_report(df, n_boot=n_boot, fit_mixed_model=False).to_dict()
        cache.set(key, report, timeout=None)
        return report, df, fingerprint
    return report, None, fingerprint


def mixed_model_key(study, fingerprint):
    return f"study-mixed:{study.pk}:{fingerprint}"


def compute_mixed_models(study_pk, fingerprint):
    """The mixed model of each arm pair (slow on big studies): run by a background task, cached."""
    from evaluation.stats import VotesError, mixed_model, normalise_votes

    study = Study.objects.get(pk=study_pk)
    df = normalise_votes(votes_frame(study, with_dice=False))
    results = {}
    for (a, b), pair in df.groupby(["arm_a", "arm_b"]):
        try:
            results[f"{a} vs {b}"] = mixed_model(pair, a, b).to_dict()
        except VotesError as exc:
            results[f"{a} vs {b}"] = {"fitted": False, "note": str(exc)}
    cache.set(mixed_model_key(study, fingerprint), results, timeout=None)
    return results
