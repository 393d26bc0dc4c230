"""Secondary analyses of the study's options: planned re-reads (intra-reader agreement, side-swap
consistency) and graded answers (an ordinal analysis clustered by reader). Pure; normalised vote tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

from evaluation.stats.base import Interval, to_jsonable, wilson_interval

KEYS = ["reader", "case", "arm_a", "arm_b"]


@dataclasses.dataclass(frozen=True)
class ReaderRereads:
    reader: str
    n: int
    agree: int
    kappa: float | None


@dataclasses.dataclass(frozen=True)
class RereadResult:
    """First read vs planned re-read (sides swapped) of the same item by the same reader.

    ``kappa``: Cohen's kappa of the answers (arm X / arm Y / tie) over all re-read items, pooled over readers;
    ``agreement``: share of re-reads giving the same answer. ``swap_consistent``: among re-reads where both
    answers were decisive, the share picking the same *arm* again (its overlay had moved to the other side);
    ``same_side`` = picking the same side again, i.e. the other arm (1 - swap_consistent): a reader who
    follows a side rather than a segmentation scores high there.
    """

    n: int
    agree: int
    agreement: float | None
    kappa: float | None
    n_decisive: int
    swap_consistent: float | None
    swap_interval: Interval | None
    same_side: float | None
    per_reader: tuple[ReaderRereads, ...]
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _kappa(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or len(set(x) | set(y)) < 2:
        return None
    k = cohen_kappa_score(x, y, labels=["a", "b", "tie"])
    return None if np.isnan(k) else float(k)


def reread_agreement(votes: pd.DataFrame, *, level: float = 0.95) -> RereadResult | None:
    """Pair each re-read with its first read; None when the table has no re-reads."""
    if "reread" not in votes or not votes["reread"].any():
        return None
    flags = votes["reread"].to_numpy(dtype=bool)
    merged = votes[flags][KEYS + ["choice"]].merge(votes[~flags][KEYS + ["choice"]], on=KEYS,
                                                   suffixes=("_re", "_first"))
    if merged.empty:
        return RereadResult(0, 0, None, None, 0, None, None, None, (),
                            note="no re-read has a first read to compare with")
    first, again = merged["choice_first"].to_numpy(), merged["choice_re"].to_numpy()
    same = first == again
    decisive = (first != "tie") & (again != "tie")
    n_dec, consistent = int(decisive.sum()), int((same & decisive).sum())
    lo, hi = wilson_interval(np.array([consistent]), np.array([n_dec]), level) if n_dec else (None, None)
    per_reader = tuple(
        ReaderRereads(str(r), len(g), int((g["choice_first"] == g["choice_re"]).sum()),
                      _kappa(g["choice_first"].to_numpy(), g["choice_re"].to_numpy()))
        for r, g in merged.groupby("reader", sort=True)
    )
    return RereadResult(
        n=len(merged), agree=int(same.sum()), agreement=float(same.mean()), kappa=_kappa(first, again),
        n_decisive=n_dec, swap_consistent=consistent / n_dec if n_dec else None,
        swap_interval=Interval(float(lo[0]), float(hi[0]), level, "wilson") if n_dec else None,
        same_side=(n_dec - consistent) / n_dec if n_dec else None, per_reader=per_reader)


@dataclasses.dataclass(frozen=True)
class OrdinalResult:
    """Graded answers of one pair from arm_a's side (-2 = arm_b much better ... +2 = arm_a much better).

    ``counts``: votes per grade -2..2; ``reader_means``: each reader's mean grade; the Wilcoxon signed-rank
    test compares the reader means with 0, so each reader counts once (clustered by reader: a reader's grades
    are not independent). With fewer than 6 readers the exact test cannot reach p < 0.05 (two-sided).
    """

    arm_a: str
    arm_b: str
    n: int
    counts: tuple[int, int, int, int, int]
    mean_grade: float | None
    reader_means: tuple[tuple[str, float], ...]
    wilcoxon_statistic: float | None
    p_value: float | None
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def ordinal_analysis(votes: pd.DataFrame, arm_a: str, arm_b: str) -> OrdinalResult | None:
    """None when the pair has no graded votes."""
    if "grade" not in votes:
        return None
    g = votes[~np.isnan(votes["grade"].to_numpy(dtype=float))]
    if g.empty:
        return None
    grades = g["grade"].to_numpy(dtype=float).astype(int)
    counts = tuple(int((grades == k).sum()) for k in range(-2, 3))
    means = g.groupby("reader", sort=True)["grade"].mean()
    stat = p = None
    note = None
    nonzero = means[means != 0]
    if len(nonzero) >= 2:
        res = sps.wilcoxon(means.to_numpy(), zero_method="wilcox")
        stat, p = float(res.statistic), float(res.pvalue)
    else:
        note = "fewer than two readers with a non-zero mean grade: no signed-rank test"
    if len(means) < 6 and note is None:
        note = f"only {len(means)} readers: the signed-rank test cannot reach p < 0.05"
    return OrdinalResult(arm_a=arm_a, arm_b=arm_b, n=len(g), counts=counts, mean_grade=float(grades.mean()),
                         reader_means=tuple((str(r), float(m)) for r, m in means.items()),
                         wilcoxon_statistic=stat, p_value=p, note=note)
