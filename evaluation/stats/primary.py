"""The pre-registered primary analysis of a reader study: one endpoint, one method, one alpha, fixed before
the study opens. The report's headline is this analysis alone: its estimate, interval and p-value all come
from the same method; every other analysis is secondary.

Endpoint: the share of votes preferring arm X over arm Y, ties either excluded (share of decisive votes) or
counted against X (share of all votes: a conservative reading of "X is better").

Methods (the fallback is part of the plan, and the result names it whenever it is used):

* ``mixed`` (default): logistic mixed model with crossed random intercepts for reader and case
  (:func:`evaluation.stats.mixed_model`); estimate = P(X preferred) for a typical reader on a typical case,
  Wald p-value and interval on the same SD.
* ``bootstrap``: two-way cluster bootstrap of the share (:func:`evaluation.stats.cluster_bootstrap`):
  percentile interval and the p-value read off the same replicates.
* fallback for both: the exact binomial test with the Clopper-Pearson interval, when the method cannot be
  used (too few votes, all votes one way, or no reader or case with two votes, which makes votes independent).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from evaluation.stats.base import Interval, clopper_pearson_interval, fmt_p, sign_test, to_jsonable
from evaluation.stats.bootstrap import bootstrap_method, cluster_bootstrap
from evaluation.stats.mixed import MixedModelResult, mixed_model

METHODS = {
    "mixed": "logistic mixed model with crossed random intercepts for reader and case",
    "bootstrap": "two-way cluster bootstrap over readers and cases",
    # Not offered as a study's primary method (it ignores that readers and cases recur); the planner uses it
    # as the independence bound and to check its simulation against scipy.
    "exact": "exact binomial test with Clopper-Pearson interval (assumes independent votes)",
}
STUDY_METHODS = ("mixed", "bootstrap")
TIES = {
    "exclude": "ties excluded (share of decisive votes)",
    "against": "ties count against the arm (share of all votes)",
}
FALLBACK = "exact binomial test with Clopper-Pearson interval"


@dataclasses.dataclass(frozen=True)
class AnalysisPlan:
    """What the coordinator fixes before a study opens.

    ``arm``/``comparator``: the endpoint's arms (None: every pair, stated for the arm that comes out ahead,
    as for a vote CSV without a plan); ``method``: a key of ``METHODS``; ``ties``: a key of ``TIES``.
    """

    arm: str | None = None
    comparator: str | None = None
    method: str = "mixed"
    ties: str = "exclude"
    alpha: float = 0.05

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.ties not in TIES:
            raise ValueError(f"ties must be one of {sorted(TIES)}, got {self.ties!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be between 0 and 0.5, got {self.alpha!r}")
        if (self.arm is None) != (self.comparator is None) or (self.arm is not None and self.arm == self.comparator):
            raise ValueError("name both arms of the primary endpoint (two different arms), or neither")

    @property
    def level(self) -> float:
        return 1 - self.alpha

    def describe(self) -> str:
        what = f"share of votes preferring {self.arm} over {self.comparator}" if self.arm else \
            "share of votes preferring one arm of each pair"
        return (f"{what}; {TIES[self.ties]}; {METHODS[self.method]}; two-sided alpha {self.alpha:g} "
                f"(fallback: {FALLBACK}, when the method cannot be used)")

    def to_dict(self) -> dict:
        return {**to_jsonable(self), "description": self.describe()}


@dataclasses.dataclass(frozen=True)
class PrimaryResult:
    """The primary analysis of one pair, oriented to ``arm`` (estimate = ``arm``'s preference).

    ``method`` is the method actually used (``"mixed"``, ``"bootstrap"`` or ``"exact"`` for the fallback, with
    ``fallback_reason``); ``estimate``, ``interval`` and ``p_value`` all come from it. ``wins``/``losses``/
    ``ties`` are raw counts from ``arm``'s side; ``share`` = wins / (votes counted under the tie rule).
    """

    arm: str
    comparator: str
    planned_method: str
    method: str
    method_name: str
    ties_rule: str
    alpha: float
    n_votes: int
    wins: int
    losses: int
    ties: int
    share: float | None
    estimate: float | None
    estimand: str
    interval: Interval | None
    p_value: float | None
    fallback_reason: str | None = None
    reader_sd: float | None = None
    case_sd: float | None = None

    @property
    def n_counted(self) -> int:
        return self.wins + self.losses + (self.ties if self.ties_rule == "against" else 0)

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else bool(self.p_value < self.alpha)

    def headline(self) -> str:
        """One sentence: the counts, then the estimate, interval and p-value of the method used."""
        if self.share is None:
            return (f"Arms {self.arm} and {self.comparator}: no decisive votes ({self.ties} ties); "
                    "no preference can be estimated.")
        counted = "evaluations" if self.ties_rule == "against" else "decisive evaluations"
        ties = "" if not self.ties else (
            f"; {self.ties} tie{'s' if self.ties != 1 else ''} "
            + ("counted against it" if self.ties_rule == "against" else "excluded"))
        lead = f"Arm {self.arm} was preferred in {100 * self.share:.2f}% of {self.n_counted} {counted}{ties}"
        if self.estimate is None:
            return f"{lead}. Primary analysis ({self.method_name}): not estimable ({self.fallback_reason})."
        iv = self.interval
        ci = f"{100 * (1 - self.alpha):g}% CI {100 * iv.low:.1f}%-{100 * iv.high:.1f}%" if iv else "no CI"
        verdict = "significant" if self.significant else "not significant"
        why = f"; {self.fallback_reason}" if self.fallback_reason else ""
        return (f"{lead}. Primary analysis ({self.method_name}{why}): {self.estimand} "
                f"{100 * self.estimate:.1f}% ({ci}; {fmt_p(self.p_value)}; {verdict} at alpha {self.alpha:g}).")

    def to_dict(self) -> dict:
        d = to_jsonable(self)
        d.update(n_counted=self.n_counted, significant=self.significant, headline=self.headline())
        return d


def oriented_votes(votes: pd.DataFrame, arm: str, comparator: str, ties: str) -> pd.DataFrame:
    """The pair's votes as ``arm_a = arm``, ``arm_b = comparator`` with the tie rule applied (``"against"``:
    a tie becomes a vote for the comparator; ``"exclude"``: ties are kept and every method skips them)."""
    flip = votes["arm_a"].to_numpy() != arm
    choice = votes["choice"].to_numpy().copy()
    a, b = choice == "a", choice == "b"
    choice[flip & a], choice[flip & b] = "b", "a"
    if ties == "against":
        choice[choice == "tie"] = "b"
    return votes.assign(arm_a=arm, arm_b=comparator, choice=choice)


def primary_analysis(
    votes: pd.DataFrame,
    arm: str,
    comparator: str,
    plan: AnalysisPlan,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    mixed: MixedModelResult | None = None,
) -> PrimaryResult:
    """Run ``plan``'s method on one pair's first-read votes (normalised), oriented to ``arm``.

    ``mixed``: a mixed model already fitted on the same oriented votes (e.g. by a background task); fitted
    here otherwise. ``n_boot``/``seed``: the bootstrap's replicates and seed.
    """
    raw = votes["choice"].to_numpy()
    flip = votes["arm_a"].to_numpy() != arm
    wins = int(((raw == "a") & ~flip).sum() + ((raw == "b") & flip).sum())
    losses = int(((raw == "b") & ~flip).sum() + ((raw == "a") & flip).sum())
    ties = int((raw == "tie").sum())
    d = oriented_votes(votes, arm, comparator, plan.ties)
    n = wins + losses + (ties if plan.ties == "against" else 0)
    share = wins / n if n else None
    common = dict(arm=arm, comparator=comparator, planned_method=plan.method, ties_rule=plan.ties,
                  alpha=plan.alpha, n_votes=len(votes), wins=wins, losses=losses, ties=ties, share=share)
    if share is None:
        return PrimaryResult(**common, method=plan.method, method_name=METHODS[plan.method], estimate=None,
                             estimand="", interval=None, p_value=None, fallback_reason="no decisive votes")
    reason = None
    if plan.method == "exact":
        reason = "the plan asks for it"
    elif plan.method == "mixed":
        m = mixed if mixed is not None else mixed_model(d, arm, comparator, level=plan.level, seed=seed)
        if m.fitted:
            return PrimaryResult(
                **common, method="mixed", method_name=METHODS["mixed"], estimate=m.probability_a,
                estimand=f"P({arm} preferred) for a typical reader on a typical case", interval=m.interval,
                p_value=m.p_value, fallback_reason=m.note, reader_sd=m.reader_sd, case_sd=m.case_sd)
        reason = m.note
    else:
        b = cluster_bootstrap(d, arm, comparator, n_boot=max(n_boot, 1), seed=seed, level=plan.level)
        if b.interval is not None and share not in (0.0, 1.0):
            return PrimaryResult(
                **common, method="bootstrap", method_name=bootstrap_method(b.resampled), estimate=share,
                estimand=f"share preferring {arm}", interval=b.interval, p_value=b.p_value,
                fallback_reason=b.note)
        reason = b.note or "all votes went one way, so every replicate gives the same share"
    low, high = clopper_pearson_interval(np.array([wins]), np.array([n]), plan.level)
    return PrimaryResult(
        **common, method="exact", estimate=share,
        method_name=FALLBACK if plan.method == "exact" else f"{FALLBACK}, the planned fallback",
        estimand=f"share preferring {arm}", p_value=float(sign_test(np.array([wins]), np.array([n]))[0]),
        interval=Interval(float(low[0]), float(high[0]), plan.level, "clopper-pearson"),
        fallback_reason=None if plan.method == "exact" else
        f"the {'mixed model' if plan.method == 'mixed' else 'bootstrap'} was not used: {reason}")
