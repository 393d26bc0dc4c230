"""Scoring predictions and comparing two U-Net arms case by case (no Django).

* :func:`evaluate`: :func:`pipeline.core.metrics.compare` per case, plus mean / median of each metric;
* :func:`paired_test`: a per-case metric of arm A against arm B: Wilcoxon signed-rank
  (``scipy.stats.wilcoxon``) and paired t-test (``scipy.stats.ttest_rel``), degrading to NaN p-values (with
  a note) where a test is undefined.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from pipeline.core.metrics import compare

__all__ = ["evaluate", "paired_test"]

_METRICS = ("dice", "hd95_mm", "volume_pred_ml", "volume_ref_ml", "volume_difference_ml", "volume_similarity")


def evaluate(pred_masks: Sequence[np.ndarray], ref_masks: Sequence[np.ndarray],
             spacings: Sequence[Sequence[float]], case_ids: Sequence[str] | None = None) -> dict:
    """Metrics of each predicted mask against its reference, and their summaries.

    Args:
        pred_masks, ref_masks: 0/1 masks ``(X, Y, Z)``, one pair per case (same shape within a pair).
        spacings: voxel sizes in mm ``(sx, sy, sz)`` per case.
        case_ids: optional names (default ``"0", "1", ...``).

    Returns:
        ``{"n": int, "cases": [{"case": id, "dice": .., "hd95_mm": .., ...}], "mean": {metric: float},
        "median": {metric: float}, "n_valid": {metric: int}}``. Summaries skip NaN values (HD95 is NaN when a
        mask is empty); ``n_valid`` says how many cases entered each one (NaN summary if none).
    """
    n = len(pred_masks)
    if len(ref_masks) != n or len(spacings) != n:
        raise ValueError(f"evaluate: {n} predictions, {len(ref_masks)} references and {len(spacings)} spacings; "
                         "need one of each per case")
    ids = [str(i) for i in range(n)] if case_ids is None else [str(c) for c in case_ids]
    if len(ids) != n:
        raise ValueError(f"evaluate: {len(ids)} case_ids for {n} cases")
    cases = []
    for cid, pred, ref, sp in zip(ids, pred_masks, ref_masks, spacings, strict=True):
        try:
            cases.append({"case": cid, **compare(pred, ref, sp)})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"evaluate: case {cid}: {exc}") from None
    mean, median, n_valid = {}, {}, {}
    for m in _METRICS:
        vals = np.array([c[m] for c in cases], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        n_valid[m] = int(vals.size)
        mean[m] = float(vals.mean()) if vals.size else math.nan
        median[m] = float(np.median(vals)) if vals.size else math.nan
    return {"n": n, "cases": cases, "mean": mean, "median": median, "n_valid": n_valid}


def paired_test(a_values: Sequence[float], b_values: Sequence[float]) -> dict:
    """Paired comparison of one per-case metric between arm A and arm B (same cases, same order).

    Pairs with a NaN / inf on either side are dropped (``n_dropped``). Returns ``n``, ``mean_a``, ``mean_b``,
    ``mean_difference`` and ``median_difference`` (A minus B), ``wilcoxon_statistic`` / ``wilcoxon_p``
    (two-sided, scipy's defaults: exact for small n without ties/zeros, else normal approximation; zero
    differences dropped as in Wilcoxon's method), ``t_statistic`` / ``t_p`` (two-sided ``ttest_rel``), and
    ``note``. Degenerate cases: ``n < 2`` -> NaN p-values; all differences zero -> both p-values 1.0 (no
    evidence of a difference); constant non-zero differences -> t-test undefined (NaN), Wilcoxon still given.
    """
    a = np.asarray(a_values, dtype=np.float64).ravel()
    b = np.asarray(b_values, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test: a has {a.size} values but b has {b.size}; they must be paired per case")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    out = {"n": int(d.size), "n_dropped": int((~ok).sum()),
           "mean_a": float(a.mean()) if a.size else math.nan, "mean_b": float(b.mean()) if b.size else math.nan,
           "mean_difference": float(d.mean()) if d.size else math.nan,
           "median_difference": float(np.median(d)) if d.size else math.nan,
           "wilcoxon_statistic": math.nan, "wilcoxon_p": math.nan, "t_statistic": math.nan, "t_p": math.nan,
           "note": ""}
    if d.size < 2:
        out["note"] = f"n = {d.size} paired cases: too few for a test"
        return out
    if np.all(d == 0):
        out.update(wilcoxon_p=1.0, t_p=1.0, note="all differences are zero")
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # small-sample / ties notices; reported via note
        w = stats.wilcoxon(a, b)
        out.update(wilcoxon_statistic=float(w.statistic), wilcoxon_p=float(w.pvalue))
        if np.allclose(d, d[0], rtol=1e-9, atol=1e-12):  # float noise would give a huge, meaningless t
            out["note"] = "constant differences: the paired t-test is undefined"
        else:
            t = stats.ttest_rel(a, b)
            out.update(t_statistic=float(t.statistic), t_p=float(t.pvalue))
    return out
