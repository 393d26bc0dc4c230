"""Reader-study statistics by simulation (pure, no Django): coverage of the primary analysis' 95% CI and of
the secondary intervals, and power against the exact binomial bound. Prints JSON.

    .venv/bin/python bench/study_design_bench.py [--sims 400] [--readers 6] [--cases 40]

Studies are simulated as in :mod:`evaluation.stats.power` (every reader reads every case, logit P = logit(p)
+ reader effect + case effect). The truth for the mixed model is p itself (a typical reader on a typical case);
for the bootstrap and MRMC share it is the expected share over readers and cases, computed by integration.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.stats import (  # noqa: E402
    AnalysisPlan,
    binomial_power,
    cluster_bootstrap,
    mixed_model,
    mrmc,
    power,
    simulate_votes,
)


def marginal_share(p, reader_sd, case_sd, n=400_000, seed=123):
    rng = np.random.default_rng(seed)
    return float(expit(logit(p) + rng.normal(0, reader_sd, n) + rng.normal(0, case_sd, n)).mean())


def coverage(p, readers, cases, reader_sd, case_sd, sims, seed=0):
    rng = np.random.default_rng(seed)
    share = marginal_share(p, reader_sd, case_sd)
    hits = {"mixed": 0, "bootstrap": 0, "mrmc": 0}
    widths = {k: [] for k in hits}
    fitted = 0
    for k in range(sims):
        v = simulate_votes(p, readers, cases, reader_sd=reader_sd, case_sd=case_sd, rng=rng)
        m = mixed_model(v, "X", "Y")
        if m.fitted:
            fitted += 1
            hits["mixed"] += m.interval.low <= p <= m.interval.high
            widths["mixed"].append(m.interval.high - m.interval.low)
        b = cluster_bootstrap(v, "X", "Y", n_boot=1000, seed=k)
        hits["bootstrap"] += b.interval.low <= share <= b.interval.high
        widths["bootstrap"].append(b.interval.high - b.interval.low)
        u = mrmc(v, "X", "Y")
        if u.interval is not None:
            hits["mrmc"] += u.interval.low <= share <= u.interval.high
            widths["mrmc"].append(u.interval.high - u.interval.low)
    return {"design": {"preference": p, "readers": readers, "cases": cases, "reader_sd": reader_sd,
                       "case_sd": case_sd, "sims": sims, "seed": seed, "marginal_share": round(share, 4)},
            "coverage": {"mixed": round(hits["mixed"] / max(fitted, 1), 4), "mixed_fitted": fitted,
                         "bootstrap": round(hits["bootstrap"] / sims, 4), "mrmc": round(hits["mrmc"] / sims, 4)},
            "mc_se_at_95": round(float(np.sqrt(0.95 * 0.05 / sims)), 4),
            "mean_ci_width": {k: round(float(np.mean(w)), 4) for k, w in widths.items() if w}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=400)
    ap.add_argument("--readers", type=int, default=6)
    ap.add_argument("--cases", type=int, default=40)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = {"benchmark": "study_design", "coverage": [
        coverage(0.65, args.readers, args.cases, 0.5, 1.0, args.sims, seed=2),
        coverage(0.6, 15, 40, 0.5, 1.0, max(args.sims // 2, 50), seed=3),
    ]}
    out["power_no_variance"] = []
    for readers, cases, p in [(10, 30, 0.56), (4, 15, 0.7)]:
        row = {"readers": readers, "cases": cases, "preference": p,
               "exact_binomial_closed_form": round(binomial_power(p, readers * cases), 4)}
        for method, sims in [("exact", 2000), ("bootstrap", 400), ("mixed", max(args.sims // 2, 50))]:
            r = power(p, readers, cases, plan=AnalysisPlan(method=method), n_sim=sims, seed=1)
            row[method] = {"power": round(r.power, 4), "mc_se": round(r.mc_se, 4), "sims": sims}
        out["power_no_variance"].append(row)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
