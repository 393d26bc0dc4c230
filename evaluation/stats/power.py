"""Power and sample size of a reader study by simulation of its primary analysis (pure).

Each simulated study has ``readers`` readers who each vote on every one of ``cases`` cases, with

    logit P(arm X preferred by reader r on case c) = logit(preference) + u_r + v_c,
    u_r ~ N(0, reader_sd^2),  v_c ~ N(0, case_sd^2)

(the mixed model's own assumptions; ``preference`` is the probability for a typical reader on a typical
case), and a share ``tie_rate`` of votes are ties. The planned primary analysis
(:func:`evaluation.stats.primary_analysis`, with its fallback) is run on each; power is the share of
studies where it rejects 50% at ``alpha`` in favour of the true direction. Seeded: the same arguments give
the same figures.

With both SDs 0 every vote is an independent Bernoulli(preference): the exact binomial test's power
(:func:`binomial_power`, closed form) is then the bound, and simulating the exact test (method ``"exact"``)
reproduces it (a test checks this against scipy). The mixed model and the bootstrap stay below it with few
readers: they allow for reader and case variance that the data cannot rule out (measured: 10 readers x 30
cases at 56%, mixed 0.28, bootstrap 0.10, exact binomial 0.52), which is the price of a valid interval when
the variance is there (their coverage is in ``bench/study_design_bench.py``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit, logit

from evaluation.stats.base import to_jsonable
from evaluation.stats.primary import AnalysisPlan, primary_analysis


@dataclasses.dataclass(frozen=True)
class PowerResult:
    """Simulated power of one design; ``mc_se`` = its Monte Carlo standard error, sqrt(p(1-p)/n_sim)."""

    preference: float
    readers: int
    cases: int
    reader_sd: float
    case_sd: float
    alpha: float
    method: str
    ties: str
    tie_rate: float
    n_sim: int
    seed: int
    power: float
    mc_se: float
    n_fallback: int
    binomial_power: float | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)

    def line(self) -> str:
        return (f"power {100 * self.power:.1f}% (Monte Carlo SE {100 * self.mc_se:.1f}%, {self.n_sim} simulated "
                f"studies) for {self.readers} readers x {self.cases} cases at preference "
                f"{100 * self.preference:.0f}%, reader SD {self.reader_sd:g}, case SD {self.case_sd:g} (logit), "
                f"{self.method}, alpha {self.alpha:g}"
                + (f"; independent votes would give {100 * self.binomial_power:.1f}% (exact binomial)"
                   if self.binomial_power is not None and self.method != "exact" else ""))


@dataclasses.dataclass(frozen=True)
class SampleSizeResult:
    """The fewest cases (with ``readers`` readers) whose simulated power reaches ``target``; ``cases`` is None
    when even ``max_cases`` does not (reader variance caps the power when readers are few: add readers).
    ``checked`` lists every design simulated on the way."""

    target: float
    cases: int | None
    power: PowerResult | None
    checked: tuple[PowerResult, ...]
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def simulate_votes(preference: float, readers: int, cases: int, *, reader_sd: float = 0.0, case_sd: float = 0.0,
                   tie_rate: float = 0.0, rng: np.random.Generator) -> pd.DataFrame:
    """One simulated study's normalised-style vote table (arms ``X`` and ``Y``; ``a`` = X preferred)."""
    u = rng.normal(0.0, reader_sd, readers) if reader_sd > 0 else np.zeros(readers)
    v = rng.normal(0.0, case_sd, cases) if case_sd > 0 else np.zeros(cases)
    p = expit(logit(preference) + u[:, None] + v[None, :]).ravel()
    win = rng.random(p.size) < p
    tie = rng.random(p.size) < tie_rate if tie_rate > 0 else np.zeros(p.size, dtype=bool)
    r_names = np.array([f"r{i}" for i in range(readers)], dtype=object)
    c_names = np.array([f"c{i}" for i in range(cases)], dtype=object)
    return pd.DataFrame({
        "reader": np.repeat(r_names, cases), "case": np.tile(c_names, readers), "arm_a": "X", "arm_b": "Y",
        "choice": np.where(tie, "tie", np.where(win, "a", "b")).astype(object),
    })


def binomial_power(preference: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided exact binomial test of 50% with ``n`` independent decisive votes (rejections on
    the true side), from the binomial distribution itself."""
    k = np.arange(n + 1)
    p_two = np.minimum(1.0, 2 * np.minimum(sps.binom.cdf(k, n, 0.5), sps.binom.sf(k - 1, n, 0.5)))
    side = k > n / 2 if preference > 0.5 else k < n / 2
    return float(sps.binom.pmf(k, n, preference)[(p_two < alpha) & side].sum())


def _check(preference, readers, cases, reader_sd, case_sd, tie_rate, n_sim):
    if not 0 < preference < 1:
        raise ValueError(f"preference must be between 0 and 1 (exclusive), got {preference}")
    if readers < 1 or cases < 1:
        raise ValueError(f"need at least one reader and one case, got {readers} x {cases}")
    if reader_sd < 0 or case_sd < 0:
        raise ValueError("standard deviations cannot be negative")
    if not 0 <= tie_rate < 1:
        raise ValueError(f"tie_rate must be in [0, 1), got {tie_rate}")
    if n_sim < 1:
        raise ValueError(f"n_sim must be >= 1, got {n_sim}")


def power(preference: float, readers: int, cases: int, *, reader_sd: float = 0.0, case_sd: float = 0.0,
          plan: AnalysisPlan | None = None, tie_rate: float = 0.0, n_sim: int = 200, seed: int = 0,
          n_boot: int = 500) -> PowerResult:
    """Power of ``plan``'s primary analysis (default: mixed model, ties excluded, alpha 0.05) by simulation.

    ``n_boot``: bootstrap replicates per simulated study when the plan's method is the bootstrap.
    """
    _check(preference, readers, cases, reader_sd, case_sd, tie_rate, n_sim)
    plan = AnalysisPlan(arm="X", comparator="Y", method=(plan or AnalysisPlan()).method,
                        ties=(plan or AnalysisPlan()).ties, alpha=(plan or AnalysisPlan()).alpha)
    rng = np.random.default_rng(seed)
    hits = fallback = 0
    for k in range(n_sim):
        votes = simulate_votes(preference, readers, cases, reader_sd=reader_sd, case_sd=case_sd,
                               tie_rate=tie_rate, rng=rng)
        res = primary_analysis(votes, "X", "Y", plan, n_boot=n_boot, seed=k)
        fallback += res.method != plan.method
        if res.p_value is not None and res.p_value < plan.alpha and res.estimate is not None \
                and (res.estimate - 0.5) * (preference - 0.5) > 0:
            hits += 1
    p = hits / n_sim
    bound = binomial_power(preference, readers * cases, plan.alpha) if tie_rate == 0 else None
    return PowerResult(preference=preference, readers=readers, cases=cases, reader_sd=reader_sd,
                       case_sd=case_sd, alpha=plan.alpha, method=plan.method, ties=plan.ties, tie_rate=tie_rate,
                       n_sim=n_sim, seed=seed, power=p, mc_se=math.sqrt(p * (1 - p) / n_sim), n_fallback=fallback,
                       binomial_power=bound)


def cases_for_power(preference: float, readers: int, *, target: float = 0.8, max_cases: int = 400,
                    start: int = 10, **kwargs) -> SampleSizeResult:
    """Fewest cases reaching ``target`` power: doubling from ``start``, then bisection. ``kwargs`` go to
    :func:`power` (the same seed at every size, so neighbouring sizes share their random numbers and the
    search is not thrown off by Monte Carlo noise as much)."""
    if not 0 < target < 1:
        raise ValueError(f"target power must be between 0 and 1, got {target}")
    checked: dict[int, PowerResult] = {}

    def at(c: int) -> PowerResult:
        if c not in checked:
            checked[c] = power(preference, readers, c, **kwargs)
        return checked[c]

    lo, hi = 0, max(1, min(start, max_cases))
    while at(hi).power < target:
        if hi >= max_cases:
            return SampleSizeResult(target, None, None, tuple(checked[c] for c in sorted(checked)),
                                    note=f"{target:.0%} power is not reached with {readers} readers and up to "
                                         f"{max_cases} cases; add readers (reader variance does not shrink "
                                         "with more cases)")
        lo, hi = hi, min(2 * hi, max_cases)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if at(mid).power < target else (lo, mid)
    return SampleSizeResult(target, hi, at(hi), tuple(checked[c] for c in sorted(checked)))
