"""Preference counts, shares, binomial intervals and sign tests, overall and per reader / per case.

All functions take a vote table already passed through :func:`evaluation.stats.base.normalise_votes`
(canonical pairs, ``arm_a < arm_b``). The share is always arm_a's share of the *decisive* (non-tie) votes;
ties are counted and reported separately, never split, so the sign test and the share agree.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from evaluation.stats.base import (
    Interval,
    clopper_pearson_interval,
    fmt_p,
    none_if_nan,
    sign_test,
    to_jsonable,
    wilson_interval,
)


@dataclasses.dataclass(frozen=True)
class PreferenceResult:
    """Counts, share, intervals and sign test for one arm pair (optionally within one reader or case).

    ``share_a = wins_a / (wins_a + wins_b)``; ``p_value`` is the exact two-sided binomial test of that share
    against 50% with ties excluded. Undefined values (no decisive votes) are None.
    """

    arm_a: str
    arm_b: str
    n_votes: int
    wins_a: int
    wins_b: int
    ties: int
    share_a: float | None
    wilson: Interval
    clopper_pearson: Interval
    p_value: float | None
    group: str | None = None  # the reader or case id in a breakdown; None for the pooled result

    @property
    def n_decisive(self) -> int:
        return self.wins_a + self.wins_b

    @property
    def tie_rate(self) -> float | None:
        return self.ties / self.n_votes if self.n_votes else None

    @property
    def preferred(self) -> str | None:
        """The arm with the larger share, or None on an exact 50/50 split or without decisive votes."""
        if self.share_a is None or self.share_a == 0.5:
            return None
        return self.arm_a if self.share_a > 0.5 else self.arm_b

    def headline(self, interval: Interval | None = None) -> str:
        """One sentence, stated for the preferred arm (share and interval flipped when that is arm_b).

        ``interval`` is the arm_a-scale interval to quote; default Wilson. Its method is named unless Wilson.
        """
        if self.share_a is None:
            return (
                f"Arms {self.arm_a} and {self.arm_b}: all {self.ties} evaluations were ties; "
                "no preference can be estimated."
            )
        iv = self.wilson if interval is None else interval
        share, low, high, arm = self.share_a, iv.low, iv.high, self.arm_a
        if share < 0.5:
            share, low, high, arm = 1 - share, 1 - iv.high, 1 - iv.low, self.arm_b
        named = "" if iv.method == "wilson" else f", {iv.method}"
        ties = f"; {self.ties} tie{'s' if self.ties != 1 else ''} excluded" if self.ties else ""
        subject = (
            f"Arms {self.arm_a} and {self.arm_b} were each preferred in"
            if self.share_a == 0.5
            else f"Arm {arm} was preferred in"
        )
        return (
            f"{subject} {100 * share:.2f}% of {self.n_decisive} evaluations "
            f"({100 * iv.level:g}% CI {100 * low:.1f}%-{100 * high:.1f}%{named}; "
            f"exact binomial {fmt_p(self.p_value)}{ties})."
        )

    def to_dict(self) -> dict:
        d = to_jsonable(self)
        d.update(n_decisive=self.n_decisive, tie_rate=self.tie_rate, preferred=self.preferred)
        return d


@dataclasses.dataclass(frozen=True)
class Breakdown:
    """Per-reader or per-case preference results for one pair (``by`` is ``"reader"`` or ``"case"``)."""

    by: str
    arm_a: str
    arm_b: str
    rows: tuple[PreferenceResult, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    self.by: r.group,
                    "n_votes": r.n_votes,
                    "wins_a": r.wins_a,
                    "wins_b": r.wins_b,
                    "ties": r.ties,
                    "share_a": r.share_a,
                    "wilson_low": r.wilson.low,
                    "wilson_high": r.wilson.high,
                    "p_value": r.p_value,
                }
                for r in self.rows
            ]
        )

    def to_dict(self) -> dict:
        return {
            "by": self.by,
            "arm_a": self.arm_a,
            "arm_b": self.arm_b,
            "rows": [r.to_dict() for r in self.rows],
        }


def _count_table(votes: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """wins_a / wins_b / ties per group of ``keys``, sorted by the keys (only groups that have votes).

    factorize + bincount rather than groupby: a few times faster on 200,000 string-keyed rows, which keeps
    the uncached report page quick.
    """
    codes, uniques = zip(*(pd.factorize(votes[k], sort=True) for k in keys), strict=True)
    shape = tuple(len(u) for u in uniques)
    present, inverse = np.unique(np.ravel_multi_index(codes, shape), return_inverse=True)
    choice = votes["choice"].to_numpy()
    table = {
        k: np.asarray(u, dtype=object)[i]
        for k, u, i in zip(keys, uniques, np.unravel_index(present, shape), strict=True)
    }
    for name, c in (("wins_a", "a"), ("wins_b", "b"), ("ties", "tie")):
        table[name] = np.bincount(inverse, weights=choice == c, minlength=len(present)).astype(np.int64)
    return pd.DataFrame(table)


def _results_from_counts(table: pd.DataFrame, level: float, group_key: str | None) -> list[PreferenceResult]:
    """Vectorised intervals/tests for every row of a count table, then one dataclass per row."""
    wa, wb, ties = (table[c].to_numpy() for c in ("wins_a", "wins_b", "ties"))
    n = wa + wb
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, wa / np.maximum(n, 1), np.nan)
    wl, wh = wilson_interval(wa, n, level)
    cl, ch = clopper_pearson_interval(wa, n, level)
    p = sign_test(wa, n)
    groups = table[group_key].to_numpy() if group_key else [None] * len(table)
    return [
        PreferenceResult(
            arm_a=str(a),
            arm_b=str(b),
            n_votes=int(wa[i] + wb[i] + ties[i]),
            wins_a=int(wa[i]),
            wins_b=int(wb[i]),
            ties=int(ties[i]),
            share_a=none_if_nan(share[i]),
            wilson=Interval(low=float(wl[i]), high=float(wh[i]), level=level, method="wilson"),
            clopper_pearson=Interval(
                low=float(cl[i]), high=float(ch[i]), level=level, method="clopper-pearson"
            ),
            p_value=none_if_nan(p[i]),
            group=None if g is None else str(g),
        )
        for i, (a, b, g) in enumerate(zip(table["arm_a"], table["arm_b"], groups, strict=True))
    ]


def preference(votes: pd.DataFrame, *, level: float = 0.95) -> list[PreferenceResult]:
    """Pooled preference result for every arm pair in a normalised vote table, sorted by pair."""
    return _results_from_counts(_count_table(votes, ["arm_a", "arm_b"]), level, None)


def preference_breakdown(votes: pd.DataFrame, by: str, *, level: float = 0.95) -> list[Breakdown]:
    """Per-reader (``by="reader"``) or per-case (``by="case"``) results, one :class:`Breakdown` per pair.

    Groups without votes for a pair are absent (a reader who never voted has no row), not zero rows.
    """
    if by not in ("reader", "case"):
        raise ValueError(f"by must be 'reader' or 'case', got {by!r}")
    results = _results_from_counts(_count_table(votes, ["arm_a", "arm_b", by]), level, by)
    grouped: dict[tuple[str, str], list[PreferenceResult]] = {}
    for r in results:  # already sorted by (arm_a, arm_b, group)
        grouped.setdefault((r.arm_a, r.arm_b), []).append(r)
    return [Breakdown(by=by, arm_a=a, arm_b=b, rows=tuple(rows)) for (a, b), rows in grouped.items()]


# --------------------------------------------------------------------------------------------------
# Secondary analyses on the same votes: confidence weighting, link to Dice
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConfidenceResult:
    """Confidence-weighted share of arm_a among decisive votes that carry a confidence (1-5).

    ``weighted_share_a = sum(conf * [choice == a]) / sum(conf)``; ``share_a`` is the unweighted share on the
    same votes, so the two are directly comparable. ``mean_confidence`` is keyed by choice (a, b, tie).
    """

    arm_a: str
    arm_b: str
    n: int
    weighted_share_a: float | None
    share_a: float | None
    mean_confidence: dict[str, float | None]
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def confidence_weighted(votes: pd.DataFrame, arm_a: str, arm_b: str) -> ConfidenceResult:
    """Confidence-weighted preference for one pair (``votes`` = that pair's rows of a normalised table)."""
    conf = votes["confidence"].to_numpy(dtype=np.float64)
    choice = votes["choice"].to_numpy()
    known = ~np.isnan(conf)
    mean_conf = {
        c: none_if_nan(conf[known & (choice == c)].mean()) if (known & (choice == c)).any() else None
        for c in ("a", "b", "tie")
    }
    decisive = known & (choice != "tie")
    if not decisive.any():
        note = "no confidence recorded" if not known.any() else "no decisive votes with a confidence"
        return ConfidenceResult(
            arm_a=arm_a,
            arm_b=arm_b,
            n=0,
            weighted_share_a=None,
            share_a=None,
            mean_confidence=mean_conf,
            note=note,
        )
    w, win = conf[decisive], (choice[decisive] == "a")
    return ConfidenceResult(
        arm_a=arm_a,
        arm_b=arm_b,
        n=int(decisive.sum()),
        weighted_share_a=float((w * win).sum() / w.sum()),
        share_a=float(win.mean()),
        mean_confidence=mean_conf,
    )


@dataclasses.dataclass(frozen=True)
class DiceBin:
    """Decisive votes whose Dice gap ``dice_a - dice_b`` lies in ``[gap_low, gap_high)`` (last bin closed)."""

    gap_low: float
    gap_high: float
    n: int
    share_a: float | None
    wilson: Interval


@dataclasses.dataclass(frozen=True)
class DiceLinkResult:
    """Do readers prefer the arm with the higher Dice? (one pair)

    ``share_agree`` = share of decisive votes with both Dice known and unequal where the preferred arm also
    has the higher Dice; tested against 50% (chance). ``bins`` give arm_a's share against the Dice gap, for a
    plot.
    """

    arm_a: str
    arm_b: str
    n: int
    n_equal_dice: int
    agree: int
    share_agree: float | None
    wilson: Interval
    p_value: float | None
    bins: tuple[DiceBin, ...]
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def dice_link(
    votes: pd.DataFrame, arm_a: str, arm_b: str, *, n_bins: int = 10, level: float = 0.95
) -> DiceLinkResult | None:
    """Agreement between preference and Dice for one pair; None when the pair has no Dice values at all.

    Bins are ``n_bins`` equal-width bins over a range symmetric about 0 (so an even ``n_bins`` puts a bin
    edge at "equal Dice" and the plot reads left = arm_b better, right = arm_a better).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    da, db = votes["dice_a"].to_numpy(np.float64), votes["dice_b"].to_numpy(np.float64)
    if np.isnan(da).all() and np.isnan(db).all():
        return None
    choice = votes["choice"].to_numpy()
    usable = ~np.isnan(da) & ~np.isnan(db) & (choice != "tie")
    gap = (da - db)[usable]
    win_a = choice[usable] == "a"
    unequal = gap != 0
    agree = int(((gap > 0) == win_a)[unequal].sum())
    n = int(unequal.sum())
    lo, hi = wilson_interval(agree, n, level)
    empty = Interval(low=float("nan"), high=float("nan"), level=level, method="wilson")
    if gap.size == 0:
        return DiceLinkResult(
            arm_a=arm_a,
            arm_b=arm_b,
            n=0,
            n_equal_dice=0,
            agree=0,
            share_agree=None,
            wilson=empty,
            p_value=None,
            bins=(),
            note="no decisive votes with both Dice values",
        )
    half = float(np.abs(gap).max()) or 1e-9
    edges = np.linspace(-half, half, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, gap, side="right") - 1, 0, n_bins - 1)
    n_bin = np.bincount(idx, minlength=n_bins)
    w_bin = np.bincount(idx, weights=win_a, minlength=n_bins)
    bl, bh = wilson_interval(w_bin, n_bin, level)
    bins = tuple(
        DiceBin(
            gap_low=float(edges[i]),
            gap_high=float(edges[i + 1]),
            n=int(n_bin[i]),
            share_a=none_if_nan(w_bin[i] / n_bin[i]) if n_bin[i] else None,
            wilson=Interval(float(bl[i]), float(bh[i]), level),
        )
        for i in range(n_bins)
    )
    note = None if n else "all usable votes have equal Dice for both arms"
    return DiceLinkResult(
        arm_a=arm_a,
        arm_b=arm_b,
        n=n,
        n_equal_dice=int((~unequal).sum()),
        agree=agree,
        share_agree=none_if_nan(agree / n) if n else None,
        wilson=Interval(float(lo), float(hi), level),
        p_value=none_if_nan(sign_test(agree, n)),
        bins=bins,
        note=note,
    )
