"""Preference statistics for blinded reader studies (pure numpy/scipy/statsmodels/pandas, no Django).

Public entry point. Typical use::

    from evaluation.stats import study_report
    report = study_report(votes_df, n_boot=2000, seed=0)
    print(report.headline())        # one sentence per arm pair
    json.dumps(report.to_dict())    # JSON-ready, NaN -> None
    print(report.to_text())         # terminal report

``votes_df`` has one row per vote: ``reader, case, arm_a, arm_b, choice`` (``a``/``b``/``tie``; ``a`` means
arm_a preferred) and optionally ``left``, ``confidence`` (1-5), ``time_ms``, ``dice_a``, ``dice_b``.
Every function below also works on its own; the heavy ones (:func:`cluster_bootstrap`, :func:`mixed_model`)
can be skipped in :func:`study_report` (``n_boot=0``, ``fit_mixed_model=False``) and cached by the caller.
"""

from __future__ import annotations

import dataclasses
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
    fmt_p,
    normalise_votes,
    pair_votes,
    sign_test,
    to_jsonable,
    wilson_interval,
)
from evaluation.stats.bootstrap import (
    BootstrapResult,
    Clustering,
    HeadlineInterval,
    choose_headline_interval,
    cluster_bootstrap,
    clustering,
)
from evaluation.stats.bradley_terry import (
    ArmStrength,
    BradleyTerryResult,
    bradley_terry,
    fit_bradley_terry,
    win_matrix,
)
from evaluation.stats.mixed import MixedModelResult, mixed_model
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
from evaluation.stats.quality import (
    SideBiasResult,
    SideShare,
    TimeStats,
    TimeSummary,
    side_bias,
    time_summary,
)
from evaluation.stats.text import report_text

__all__ = [
    "CHOICES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "AgreementResult",
    "ArmStrength",
    "BootstrapResult",
    "BradleyTerryResult",
    "Breakdown",
    "Clustering",
    "ConfidenceResult",
    "DiceBin",
    "DiceLinkResult",
    "HeadlineInterval",
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
    "choose_headline_interval",
    "clopper_pearson_interval",
    "cluster_bootstrap",
    "clustering",
    "confidence_weighted",
    "dice_link",
    "fit_bradley_terry",
    "fmt_p",
    "mixed_model",
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


@dataclasses.dataclass(frozen=True)
class PairReport:
    """Everything computed for one arm pair (``arm_a < arm_b``; shares are arm_a's)."""

    arm_a: str
    arm_b: str
    preference: PreferenceResult
    per_reader: Breakdown
    per_case: Breakdown
    clustering: Clustering
    bootstrap: BootstrapResult | None
    mixed_model: MixedModelResult | None
    headline_interval: HeadlineInterval
    agreement: AgreementResult
    confidence: ConfidenceResult
    dice: DiceLinkResult | None

    def headline(self) -> str:
        """One sentence with the headline interval (see ``headline_interval.reason`` for the choice)."""
        return self.preference.headline(self.headline_interval.interval)

    def to_dict(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # PreferenceResult/Breakdown add derived fields (n_decisive, tie_rate, preferred) in to_dict.
            d[f.name] = (
                value.to_dict() if isinstance(value, PreferenceResult | Breakdown) else to_jsonable(value)
            )
        d["headline"] = self.headline()
        return d

    def summary_row(self) -> dict:
        """Flat one-row summary (for CSV export / a results table); bounds are arm_a's share."""
        pr, b, m, ag = self.preference, self.bootstrap, self.mixed_model, self.agreement
        iv = self.headline_interval.interval
        return {
            "arm_a": self.arm_a,
            "arm_b": self.arm_b,
            "n_votes": pr.n_votes,
            "wins_a": pr.wins_a,
            "wins_b": pr.wins_b,
            "ties": pr.ties,
            "share_a": pr.share_a,
            "wilson_low": pr.wilson.low,
            "wilson_high": pr.wilson.high,
            "cp_low": pr.clopper_pearson.low,
            "cp_high": pr.clopper_pearson.high,
            "p_value": pr.p_value,
            "headline_method": self.headline_interval.method,
            "headline_low": iv.low if iv else None,
            "headline_high": iv.high if iv else None,
            "bootstrap_low": b.interval.low if b and b.interval else None,
            "bootstrap_high": b.interval.high if b and b.interval else None,
            "mixed_probability_a": m.probability_a if m else None,
            "mixed_low": m.interval.low if m and m.interval else None,
            "mixed_high": m.interval.high if m and m.interval else None,
            "fleiss_kappa": ag.fleiss_kappa,
            "mean_cohen_kappa": ag.mean_cohen_kappa,
            "percent_agreement": ag.percent_agreement,
            "headline": self.headline(),
        }


@dataclasses.dataclass(frozen=True)
class StudyReport:
    """All statistics of a study.

    ``pairs`` is sorted by (arm_a, arm_b); ``bradley_terry`` is set only for studies with 3+ arms.
    """

    n_votes: int
    readers: tuple[str, ...]
    n_cases: int
    arms: tuple[str, ...]
    pairs: tuple[PairReport, ...]
    side_bias: SideBiasResult
    time: TimeSummary
    bradley_terry: BradleyTerryResult | None
    n_boot: int
    seed: int
    level: float
    notes: tuple[str, ...] = ()

    def pair(self, arm_1: str, arm_2: str) -> PairReport:
        """The report for a pair, in either order."""
        a, b = sorted((arm_1, arm_2))
        for p in self.pairs:
            if (p.arm_a, p.arm_b) == (a, b):
                return p
        raise KeyError(
            f"no votes compare arms {arm_1!r} and {arm_2!r}; pairs: "
            f"{[(p.arm_a, p.arm_b) for p in self.pairs]}"
        )

    def summary_frame(self) -> pd.DataFrame:
        """One row per pair (see :meth:`PairReport.summary_row`), e.g. for ``--format csv``."""
        return pd.DataFrame([p.summary_row() for p in self.pairs])

    def headline(self) -> str:
        """One sentence per arm pair, newline-separated."""
        return "\n".join(p.headline() for p in self.pairs)

    def to_dict(self) -> dict:
        """JSON-ready dict (builtins only; NaN -> None)."""
        d = {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name not in ("pairs", "bradley_terry")}  # converted by their own to_dict below
        d["pairs"] = [p.to_dict() for p in self.pairs]
        d["bradley_terry"] = self.bradley_terry.to_dict() if self.bradley_terry else None
        d["headline"] = self.headline()
        return d

    def to_text(self) -> str:
        """Plain-text report for the terminal."""
        return report_text(self)


def study_report(
    df: pd.DataFrame,
    *,
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
        n_boot: cluster-bootstrap replicates per pair; 0 skips the bootstrap (headline falls back to Wilson).
        seed: seeds the bootstrap (pair k uses ``numpy.random.SeedSequence(seed).spawn`` child k) and the
            mixed-model optimiser start.
        level: confidence level of every interval.
        fit_mixed_model: False skips the (slowest) mixed model.
        bt_ties: ``"exclude"`` or ``"half"``: tie handling in Bradley-Terry (fitted when there are 3+ arms).
        expected_readers: optional list of assigned readers; those without votes are named in ``notes``
            (they are absent from every statistic, never counted as raters with missing data).

    Raises:
        VotesError: empty or invalid vote table (see :func:`normalise_votes`).
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    votes = normalise_votes(df)
    prefs = preference(votes, level=level)
    by_reader = preference_breakdown(votes, "reader", level=level)
    by_case = preference_breakdown(votes, "case", level=level)
    seeds = np.random.SeedSequence(seed).spawn(len(prefs))
    pairs = []
    for k, pref in enumerate(prefs):
        a, b = pref.arm_a, pref.arm_b
        pv = pair_votes(votes, a, b)
        cl = clustering(pv)
        pair_seed = int(seeds[k].generate_state(1)[0])
        boot = cluster_bootstrap(pv, a, b, n_boot=n_boot, seed=pair_seed, level=level) if n_boot else None
        mm = mixed_model(pv, a, b, level=level, seed=seed) if fit_mixed_model else None
        pairs.append(
            PairReport(
                arm_a=a,
                arm_b=b,
                preference=pref,
                per_reader=by_reader[k],
                per_case=by_case[k],
                clustering=cl,
                bootstrap=boot,
                mixed_model=mm,
                headline_interval=choose_headline_interval(pref.wilson, pref.share_a, cl, boot),
                agreement=agreement(pv, a, b),
                confidence=confidence_weighted(pv, a, b),
                dice=dice_link(pv, a, b, level=level),
            )
        )
    readers = tuple(sorted(votes["reader"].unique()))
    arms = tuple(sorted(set(votes["arm_a"]) | set(votes["arm_b"])))
    notes = []
    if expected_readers is not None:
        silent = sorted(set(map(str, expected_readers)) - set(readers))
        if silent:
            notes.append(f"readers with no votes (absent from every statistic): {', '.join(silent)}")
    if len(readers) == 1:
        notes.append("single reader: results describe this reader; inter-reader agreement is not defined")
    bt = bradley_terry(votes, ties=bt_ties, level=level) if len(arms) >= 3 else None
    return StudyReport(
        n_votes=len(votes),
        readers=readers,
        n_cases=int(votes["case"].nunique()),
        arms=arms,
        pairs=tuple(pairs),
        side_bias=side_bias(votes, level=level),
        time=time_summary(votes),
        bradley_terry=bt,
        n_boot=n_boot,
        seed=seed,
        level=level,
        notes=tuple(notes),
    )
