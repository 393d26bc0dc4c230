"""Preference statistics for blinded reader studies (pure numpy/scipy/statsmodels/pandas, no Django).

Public entry point. Typical use::

    from evaluation.stats import study_report
    report = study_report(votes_df, n_boot=2000, seed=0)
    print(report.headline())        # the pre-registered primary analysis (one sentence per pair without a plan)
    json.dumps(report.to_dict())    # JSON-ready, NaN -> None
    print(report.to_text())         # terminal report

``votes_df`` has one row per vote: ``reader, case, arm_a, arm_b, choice`` (``a``/``b``/``tie``; ``a`` means
arm_a preferred) and optionally ``left``, ``confidence`` (1-5), ``time_ms``, ``dice_a``, ``dice_b``.
Every function below also works on its own; the heavy ones (:func:`cluster_bootstrap`, :func:`mixed_model`)
can be skipped in :func:`study_report` (``n_boot=0``, ``fit_mixed_model=False``) and cached by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from evaluation.stats.agreement import AgreementResult, ReaderPairAgreement, agreement, pairwise_cohen_kappa
from evaluation.stats.base import (
    CHOICES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    Interval,
    VotesError,
    arm_pairs,
    clopper_pearson_interval,
    first_reads,
    fmt_p,
    normalise_votes,
    pair_votes,
    sign_test,
    to_jsonable,
    wilson_interval,
)
from evaluation.stats.bootstrap import BootstrapResult, Clustering, cluster_bootstrap, clustering
from evaluation.stats.bradley_terry import (
    ArmStrength,
    BradleyTerryResult,
    bradley_terry,
    fit_bradley_terry,
    win_matrix,
)
from evaluation.stats.mixed import MixedModelResult, mixed_model
from evaluation.stats.mrmc import MRMCResult, mrmc, mrmc_variance
from evaluation.stats.power import (
    PowerResult,
    SampleSizeResult,
    binomial_power,
    cases_for_power,
    power,
    simulate_votes,
)
from evaluation.stats.preference import (
    Breakdown,
    ConfidenceResult,
    DiceBin,
    DiceLinkResult,
    PreferenceResult,
    confidence_weighted,
    dice_link,
    preference,
    preference_breakdown,
)
from evaluation.stats.primary import (
    METHODS,
    STUDY_METHODS,
    TIES,
    AnalysisPlan,
    PrimaryResult,
    oriented_votes,
    primary_analysis,
)
from evaluation.stats.quality import (
    SideBiasResult,
    SideShare,
    TimeStats,
    TimeSummary,
    side_bias,
    time_summary,
)
from evaluation.stats.rereads import OrdinalResult, RereadResult, ordinal_analysis, reread_agreement
from evaluation.stats.results import PairReport, Secondary, StudyReport

__all__ = [
    "CHOICES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "AgreementResult",
    "ArmStrength",
    "METHODS",
    "STUDY_METHODS",
    "TIES",
    "AnalysisPlan",
    "BootstrapResult",
    "MRMCResult",
    "OrdinalResult",
    "PowerResult",
    "PrimaryResult",
    "RereadResult",
    "SampleSizeResult",
    "Secondary",
    "BradleyTerryResult",
    "Breakdown",
    "Clustering",
    "ConfidenceResult",
    "DiceBin",
    "DiceLinkResult",
    "Interval",
    "MixedModelResult",
    "PairReport",
    "PreferenceResult",
    "ReaderPairAgreement",
    "SideBiasResult",
    "SideShare",
    "StudyReport",
    "TimeStats",
    "TimeSummary",
    "VotesError",
    "agreement",
    "arm_pairs",
    "bradley_terry",
    "binomial_power",
    "cases_for_power",
    "first_reads",
    "clopper_pearson_interval",
    "cluster_bootstrap",
    "clustering",
    "confidence_weighted",
    "dice_link",
    "fit_bradley_terry",
    "fmt_p",
    "mixed_model",
    "mrmc",
    "mrmc_variance",
    "ordinal_analysis",
    "oriented_votes",
    "power",
    "primary_analysis",
    "reread_agreement",
    "simulate_votes",
    "normalise_votes",
    "pair_votes",
    "pairwise_cohen_kappa",
    "preference",
    "preference_breakdown",
    "sign_test",
    "side_bias",
    "study_report",
    "time_summary",
    "to_jsonable",
    "wilson_interval",
    "win_matrix",
]




def _orient(plan: AnalysisPlan, a: str, b: str, pref: PreferenceResult) -> tuple[str, str, bool]:
    """``(arm, comparator, is_primary)`` of a pair: the plan's arm when this is its pair; otherwise the arm
    that comes out ahead (arm_a on a 50/50 split)."""
    if plan.arm is not None and {plan.arm, plan.comparator} == {a, b}:
        return plan.arm, plan.comparator, True
    ahead_b = pref.share_a is not None and pref.share_a < 0.5
    return (b, a, plan.arm is None) if ahead_b else (a, b, plan.arm is None)


def study_report(
    df: pd.DataFrame,
    *,
    plan: AnalysisPlan | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    fit_mixed_model: bool = True,
    bt_ties: str = "exclude",
    expected_readers: Iterable[str] | None = None,
) -> StudyReport:
    """Compute every statistic of a reader study from its votes.

    Args:
        df: raw vote table (validated and canonicalised with :func:`normalise_votes`).
        plan: the pre-registered primary analysis (default: ``AnalysisPlan()``, the mixed model on every
            pair, ties excluded, alpha 0.05). Its endpoint and alpha give the headline; ``level`` is that of
            the secondary intervals.
        n_boot: cluster-bootstrap replicates per pair; 0 skips the secondary bootstrap (a bootstrap primary
            analysis then uses 2000).
        seed: seeds the bootstrap (pair k uses ``numpy.random.SeedSequence(seed).spawn`` child k) and the
            mixed-model optimiser start.
        fit_mixed_model: False skips the (slowest) mixed model: a mixed-model primary analysis is then None
            (a caller computes it in the background).
        bt_ties: ``"exclude"`` or ``"half"``: tie handling in Bradley-Terry (fitted when there are 3+ arms).
        expected_readers: optional list of assigned readers; those without votes are named in ``notes``.

    Raises:
        VotesError: empty or invalid vote table (see :func:`normalise_votes`).
        ValueError: a plan naming an arm the votes do not have.
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    plan = plan or AnalysisPlan()
    every = normalise_votes(df)
    votes = first_reads(every)
    arms = tuple(sorted(set(votes["arm_a"]) | set(votes["arm_b"])))
    if plan.arm is not None and not {plan.arm, plan.comparator} <= set(arms):
        raise ValueError(f"the plan compares {plan.arm!r} with {plan.comparator!r}, but the votes' arms are "
                         f"{', '.join(arms)}")
    prefs = preference(votes, level=level)
    by_reader = preference_breakdown(votes, "reader", level=level)
    by_case = preference_breakdown(votes, "case", level=level)
    seeds = np.random.SeedSequence(seed).spawn(len(prefs))
    pairs = []
    for k, pref in enumerate(prefs):
        a, b = pref.arm_a, pref.arm_b
        pv = pair_votes(votes, a, b)
        pair_seed = int(seeds[k].generate_state(1)[0])
        x, y, is_primary = _orient(plan, a, b, pref)
        boot = cluster_bootstrap(pv, a, b, n_boot=n_boot, seed=pair_seed, level=level) if n_boot else None
        mm = (mixed_model(oriented_votes(pv, x, y, plan.ties), x, y, level=plan.level, seed=seed)
              if fit_mixed_model else None)
        primary = None
        if plan.method != "mixed" or mm is not None:
            primary = primary_analysis(pv, x, y, plan, n_boot=n_boot or 2000, seed=pair_seed, mixed=mm)
        pairs.append(PairReport(
            arm_a=a, arm_b=b, preference=pref, per_reader=by_reader[k], per_case=by_case[k],
            clustering=clustering(pv), bootstrap=boot, mixed_model=mm, mrmc=mrmc(pv, a, b, level=level),
            primary=primary, is_primary=is_primary, agreement=agreement(pv, a, b),
            confidence=confidence_weighted(pv, a, b), dice=dice_link(pv, a, b, level=level),
            ordinal=ordinal_analysis(pv, a, b)))
    readers = tuple(sorted(votes["reader"].unique()))
    notes = []
    if expected_readers is not None:
        silent = sorted(set(map(str, expected_readers)) - set(readers))
        if silent:
            notes.append(f"readers with no votes (absent from every statistic): {', '.join(silent)}")
    if len(readers) == 1:
        notes.append("single reader: results describe this reader; inter-reader agreement is not defined")
    n_rereads = len(every) - len(votes)
    if n_rereads:
        notes.append(f"{n_rereads} planned re-read(s) are used for re-read agreement only")
    return StudyReport(
        n_votes=len(votes), readers=readers, n_cases=int(votes["case"].nunique()), arms=arms,
        pairs=tuple(pairs), side_bias=side_bias(votes, level=level), time=time_summary(votes),
        bradley_terry=bradley_terry(votes, ties=bt_ties, level=level) if len(arms) >= 3 else None,
        n_boot=n_boot, seed=seed, level=level, plan=plan, rereads=reread_agreement(every, level=level),
        n_rereads=n_rereads, notes=tuple(notes))
