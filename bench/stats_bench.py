"""Benchmark of evaluation.stats at reader-study scale; prints JSON.

Simulates one arm pair read by 100 readers on 2,000 cases (200,000 votes) from a logistic model with reader
and case random intercepts, then times the parts of ``study_report`` separately:

- ``normalise_s``: validation + canonical pair order
- ``point_estimates_s``: pooled preference, per-reader and per-case breakdowns, side bias, time summary,
  confidence weighting, Dice link (what the report page needs uncached; target < 0.5 s)
- ``bootstrap_s``: two-way cluster bootstrap with ``--n-boot`` replicates (target < 20 s)
- ``mixed_model_s``: BinomialBayesMixedGLM fit_vb
- ``agreement_s``: Fleiss' kappa + 4,950 pairwise Cohen's kappas + percent agreement
- ``report_without_heavy_parts_s``: ``study_report(n_boot=0, fit_mixed_model=False)`` (page with heavy parts
  cached), plus ``to_dict_s`` / ``to_text_s`` for rendering it
- ``study_report_s``: everything together

Usage: ``OMP_NUM_THREADS=2 .venv/bin/python bench/stats_bench.py [--readers 100 --cases 2000 --n-boot 2000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.stats import (  # noqa: E402
    agreement,
    cluster_bootstrap,
    confidence_weighted,
    dice_link,
    mixed_model,
    normalise_votes,
    preference,
    preference_breakdown,
    side_bias,
    study_report,
    time_summary,
)


def simulate_votes(
    n_readers: int,
    n_cases: int,
    *,
    share: float = 0.6,
    reader_sd: float = 0.5,
    case_sd: float = 0.8,
    tie_rate: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Every reader votes on every case for one pair ("ai" vs "expert"); half the rows stored flipped."""
    rng = np.random.default_rng(seed)
    r = np.repeat(np.arange(n_readers), n_cases)
    c = np.tile(np.arange(n_cases), n_readers)
    logit = (
        np.log(share / (1 - share))
        + rng.normal(0, reader_sd, n_readers)[r]
        + rng.normal(0, case_sd, n_cases)[c]
    )
    win_ai = rng.random(r.size) < expit(logit)
    tie = rng.random(r.size) < tie_rate
    flip = rng.random(r.size) < 0.5  # stored as (expert, ai): exercises canonicalisation
    choice = np.where(tie, "tie", np.where(win_ai != flip, "a", "b"))
    dice_ai, dice_ex = rng.uniform(0.5, 0.95, r.size), rng.uniform(0.5, 0.95, r.size)
    return pd.DataFrame(
        {
            "reader": np.char.add("reader", r.astype(str)),
            "case": np.char.add("case", c.astype(str)),
            "arm_a": np.where(flip, "expert", "ai"),
            "arm_b": np.where(flip, "ai", "expert"),
            "choice": choice,
            "left": rng.choice(["a", "b"], r.size),
            "confidence": rng.integers(1, 6, r.size),
            "time_ms": rng.lognormal(8.5, 0.5, r.size).round(),
            "dice_a": np.where(flip, dice_ex, dice_ai),
            "dice_b": np.where(flip, dice_ai, dice_ex),
        }
    )


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 3)


def point_estimates(votes: pd.DataFrame):
    pairs = preference(votes)
    preference_breakdown(votes, "reader")
    preference_breakdown(votes, "case")
    side_bias(votes)
    time_summary(votes)
    for p in pairs:
        confidence_weighted(votes, p.arm_a, p.arm_b)
        dice_link(votes, p.arm_a, p.arm_b)
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=100)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--skip-mixed", action="store_true", help="skip the mixed model (slowest part)")
    args = ap.parse_args()

    raw = simulate_votes(args.readers, args.cases)
    votes, t_norm = timed(normalise_votes, raw)
    pairs, t_point = timed(point_estimates, votes)
    a, b = pairs[0].arm_a, pairs[0].arm_b
    boot, t_boot = timed(cluster_bootstrap, votes, a, b, n_boot=args.n_boot, seed=0)
    agree, t_agree = timed(agreement, votes, a, b)
    result = {
        "readers": args.readers,
        "cases": args.cases,
        "votes": len(raw),
        "n_boot": args.n_boot,
        "normalise_s": t_norm,
        "point_estimates_s": t_point,
        "bootstrap_s": t_boot,
        "agreement_s": t_agree,
        "share_a": pairs[0].share_a,
        "wilson": [pairs[0].wilson.low, pairs[0].wilson.high],
        "bootstrap_ci": [boot.interval.low, boot.interval.high],
        "fleiss_kappa": agree.fleiss_kappa,
    }
    if not args.skip_mixed:
        mm, t_mm = timed(mixed_model, votes, a, b)
        result.update(
            mixed_model_s=t_mm,
            mixed_model_probability=mm.probability_a,
            mixed_model_logit_sd=mm.log_odds_sd,
            mixed_model_logit_sd_vb=mm.log_odds_sd_vb,
            mixed_model_ci=[mm.interval.low, mm.interval.high] if mm.interval else None,
            mixed_model_note=mm.note,
        )
    light, t_light = timed(study_report, raw, n_boot=0, fit_mixed_model=False)
    _, t_dict = timed(light.to_dict)
    _, t_text = timed(light.to_text)
    _, t_all = timed(study_report, raw, n_boot=args.n_boot, fit_mixed_model=not args.skip_mixed)
    result.update(
        report_without_heavy_parts_s=t_light,
        to_dict_s=t_dict,
        to_text_s=t_text,
        study_report_s=t_all,
        threads=os.environ.get("OMP_NUM_THREADS"),
        cpus=os.cpu_count(),
        python=platform.python_version(),
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
