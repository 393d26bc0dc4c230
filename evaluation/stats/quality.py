"""Study-quality checks pooled over arm pairs: side bias (left/right randomisation) and time per item.

Both are properties of readers and of the reading interface, not of a pair, so they pool all votes of a
normalised vote table (:func:`evaluation.stats.base.normalise_votes`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from evaluation.stats.base import Interval, none_if_nan, sign_test, to_jsonable, wilson_interval


@dataclasses.dataclass(frozen=True)
class SideShare:
    """How often the arm shown on the left was chosen, among decisive votes with a known side."""

    n: int
    left_chosen: int
    share_left: float | None
    wilson: Interval
    p_value: float | None
    reader: str | None = None


@dataclasses.dataclass(frozen=True)
class SideBiasResult:
    """Side-bias check: ``overall`` tests "left chosen 50% of the time"; ``per_reader`` does so per reader.

    ``arm_a_left_share`` / ``arm_a_left_p`` check the randomisation itself: over all votes with a known side,
    how often the (canonical) arm_a was the one shown on the left; a small p flags a broken left/right draw.
    """

    overall: SideShare | None
    per_reader: tuple[SideShare, ...]
    n_missing_side: int
    arm_a_left_share: float | None
    arm_a_left_p: float | None
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _side_shares(chose_left: np.ndarray, n: np.ndarray, level: float, readers) -> list[SideShare]:
    lo, hi = wilson_interval(chose_left, n, level)
    p = sign_test(chose_left, n)
    return [
        SideShare(
            n=int(n[i]),
            left_chosen=int(chose_left[i]),
            share_left=none_if_nan(chose_left[i] / n[i]) if n[i] else None,
            wilson=Interval(float(lo[i]), float(hi[i]), level),
            p_value=none_if_nan(p[i]),
            reader=None if readers is None else str(readers[i]),
        )
        for i in range(len(n))
    ]


def side_bias(votes: pd.DataFrame, *, level: float = 0.95) -> SideBiasResult:
    """Side-bias check over all pairs of a normalised vote table (ties and unknown sides excluded)."""
    left = votes["left"].to_numpy(dtype=object)
    choice = votes["choice"].to_numpy()
    known = pd.notna(left)
    if not known.any():
        return SideBiasResult(
            overall=None,
            per_reader=(),
            n_missing_side=len(votes),
            arm_a_left_share=None,
            arm_a_left_p=None,
            note="no left/right side recorded",
        )
    a_left = int((left[known] == "a").sum())
    balance_p = none_if_nan(sign_test(a_left, int(known.sum())))
    use = known & (choice != "tie")
    if not use.any():
        return SideBiasResult(
            overall=None,
            per_reader=(),
            n_missing_side=int((~known).sum()),
            arm_a_left_share=a_left / int(known.sum()),
            arm_a_left_p=balance_p,
            note="no decisive votes with a known side",
        )
    chose_left = choice[use] == left[use]
    overall = _side_shares(np.array([chose_left.sum()]), np.array([use.sum()]), level, None)[0]
    codes, readers = pd.factorize(votes["reader"].to_numpy()[use], sort=True)
    k = np.bincount(codes, weights=chose_left, minlength=len(readers))
    n = np.bincount(codes, minlength=len(readers))
    return SideBiasResult(
        overall=overall,
        per_reader=tuple(_side_shares(k, n, level, readers)),
        n_missing_side=int((~known).sum()),
        arm_a_left_share=a_left / int(known.sum()),
        arm_a_left_p=balance_p,
    )


@dataclasses.dataclass(frozen=True)
class TimeStats:
    """Distribution of time per item in milliseconds (``iqr = q75 - q25``)."""

    n: int
    median: float | None
    q25: float | None
    q75: float | None
    iqr: float | None
    mean: float | None
    reader: str | None = None


@dataclasses.dataclass(frozen=True)
class TimeSummary:
    """Time per item pooled over all votes and per reader (votes without ``time_ms`` are skipped)."""

    overall: TimeStats | None
    per_reader: tuple[TimeStats, ...]
    n_missing: int
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _time_stats(t: np.ndarray, reader: str | None = None) -> TimeStats:
    q25, med, q75 = np.percentile(t, [25, 50, 75])
    return TimeStats(
        n=int(t.size),
        median=float(med),
        q25=float(q25),
        q75=float(q75),
        iqr=float(q75 - q25),
        mean=float(t.mean()),
        reader=reader,
    )


def time_summary(votes: pd.DataFrame) -> TimeSummary:
    """Median, IQR and mean of ``time_ms`` overall and per reader for a normalised vote table."""
    t = votes["time_ms"].to_numpy(np.float64)
    known = ~np.isnan(t)
    if not known.any():
        return TimeSummary(overall=None, per_reader=(), n_missing=len(t), note="no time per item recorded")
    readers = votes["reader"].to_numpy()[known]
    order = np.argsort(readers, kind="stable")
    readers, tk = readers[order], t[known][order]
    names, starts = np.unique(readers, return_index=True)
    per_reader = tuple(
        _time_stats(chunk, str(name)) for name, chunk in zip(names, np.split(tk, starts[1:]), strict=True)
    )
    return TimeSummary(_time_stats(tk), per_reader, int((~known).sum()))
