"""Shared pieces of the reader-study statistics: vote validation, binomial intervals and tests, JSON helpers.

No Django imports: this is the numerical core, usable from a notebook. The public entry point is
:mod:`evaluation.stats`; this module holds what the other ``stats_*`` modules share.

Vote table convention (one row per vote)::

    reader, case, arm_a, arm_b, choice            required; choice in {"a", "b", "tie"}, "a" = arm_a preferred
    left                                          optional; "a" or "b": which arm was shown on the left
    confidence                                    optional; 1-5
    time_ms                                       optional; time spent on the item, >= 0
    dice_a, dice_b                                optional; each arm's Dice vs the reference label, in [0, 1]
    grade                                         optional; graded answer -2..2 from arm_a's side (+2 = arm_a
                                                  much better, 0 = equal); its sign must agree with choice
    reread                                        optional; true for a planned repeat of an item (sides
                                                  swapped); every statistic but re-read agreement skips it
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

REQUIRED_COLUMNS = ("reader", "case", "arm_a", "arm_b", "choice")
OPTIONAL_COLUMNS = ("left", "confidence", "time_ms", "dice_a", "dice_b", "grade", "reread")
CHOICES = ("a", "b", "tie")


class VotesError(ValueError):
    """The vote table is unusable (missing column, bad value, empty, duplicate vote)."""


# --------------------------------------------------------------------------------------------------
# Validation and canonical pair order
# --------------------------------------------------------------------------------------------------


def _clean(series: pd.Series, lower: bool = False) -> np.ndarray:
    """Values -> stripped (optionally lower-cased) ``str`` objects, ``""`` where missing.

    Works on the distinct values only (factorize, clean the few uniques, index back), so 200,000 rows with a
    few thousand distinct ids cost milliseconds rather than a Python call per row.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    cleaned = [str(u).strip() for u in uniques]
    if lower:
        cleaned = [u.lower() for u in cleaned]
    return np.array(cleaned + [""], dtype=object)[codes]  # code -1 (missing) picks the trailing ""


def _labels(series: pd.Series, name: str) -> np.ndarray:
    """Identifier column -> stripped strings; reject missing/empty values naming the first offending row."""
    out = _clean(series)
    bad = out == ""
    if bad.any():
        raise VotesError(f"column {name!r}: empty value in row {int(np.flatnonzero(bad)[0])}")
    return out


def _numeric(series: pd.Series, name: str, low: float, high: float) -> np.ndarray:
    """Optional numeric column -> float64 (NaN = not recorded); reject non-numbers and out-of-range values."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = _clean(series)
        values = pd.to_numeric(
            pd.Series(np.where(text == "", None, text), dtype=object), errors="coerce"
        ).to_numpy(dtype=np.float64, na_value=np.nan)
        unparsable = np.isnan(values) & (text != "")
        if unparsable.any():
            i = int(np.flatnonzero(unparsable)[0])
            raise VotesError(f"column {name!r}: {series.iloc[i]!r} in row {i} is not a number")
    out_of_range = ~np.isnan(values) & ((values < low) | (values > high))
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise VotesError(f"column {name!r}: {values[i]:g} in row {i} is outside [{low:g}, {high:g}]")
    return values


def _swap_ab(values: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Exchange "a" and "b" where ``flip`` (other values, e.g. "tie" or None, are kept)."""
    out = values.copy()
    out[flip & (values == "a")] = "b"
    out[flip & (values == "b")] = "a"
    return out


def normalise_votes(df: pd.DataFrame) -> pd.DataFrame:
    """Validate a vote table and put every arm pair in canonical order.

    Each pair is reordered so that ``arm_a < arm_b`` (string order); for flipped rows ``choice`` and ``left``
    swap ``a``/``b`` and ``dice_a``/``dice_b`` swap, so the same pair always aggregates together whichever
    side the study stored it on.

    Args:
        df: one row per vote with at least the columns in ``REQUIRED_COLUMNS``; optional columns in
            ``OPTIONAL_COLUMNS``. Extra columns are dropped. Identifiers are converted to ``str`` and
            stripped; ``choice``/``left`` are case-insensitive.

    Returns:
        A new DataFrame (fresh RangeIndex) with exactly ``REQUIRED_COLUMNS + OPTIONAL_COLUMNS``; identifier
        and choice columns hold ``str`` objects; absent optional values are ``None`` (``left``) or NaN.

    Raises:
        VotesError: not a DataFrame, no rows, a missing required column, an empty identifier, an unknown
            choice/left, a pair of an arm with itself, a numeric column out of range (confidence 1-5,
            time_ms >= 0, Dice 0-1), or two votes by the same reader on the same case and arm pair.
    """
    if not isinstance(df, pd.DataFrame):
        raise VotesError(f"votes must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise VotesError(f"vote table is missing required column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise VotesError("vote table is empty: no votes to analyse")

    reader, case = _labels(df["reader"], "reader"), _labels(df["case"], "case")
    arm_a, arm_b = _labels(df["arm_a"], "arm_a"), _labels(df["arm_b"], "arm_b")
    same = arm_a == arm_b
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise VotesError(f"row {i}: arm_a and arm_b are both {arm_a[i]!r}; a pair needs two different arms")

    choice = _clean(df["choice"], lower=True)
    bad = ~np.isin(choice, CHOICES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VotesError(f"column 'choice': {df['choice'].iloc[i]!r} in row {i} is not one of {CHOICES}")

    if "left" in df.columns:
        left = _clean(df["left"], lower=True)
        bad = (left != "") & ~np.isin(left, ("a", "b"))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise VotesError(f"column 'left': {df['left'].iloc[i]!r} in row {i} is not 'a' or 'b'")
        left[left == ""] = None
    else:
        left = np.full(len(df), None, dtype=object)

    nan = np.full(len(df), np.nan)
    confidence = _numeric(df["confidence"], "confidence", 1, 5) if "confidence" in df.columns else nan
    time_ms = _numeric(df["time_ms"], "time_ms", 0, np.inf) if "time_ms" in df.columns else nan.copy()
    dice_a = _numeric(df["dice_a"], "dice_a", 0, 1) if "dice_a" in df.columns else nan.copy()
    dice_b = _numeric(df["dice_b"], "dice_b", 0, 1) if "dice_b" in df.columns else nan.copy()
    grade = _numeric(df["grade"], "grade", -2, 2) if "grade" in df.columns else nan.copy()
    graded = ~np.isnan(grade)
    if (graded & (grade != np.round(grade))).any():
        i = int(np.flatnonzero(graded & (grade != np.round(grade)))[0])
        raise VotesError(f"column 'grade': {grade[i]:g} in row {i} is not a whole number in -2..2")
    expected = np.where(grade > 0, "a", np.where(grade < 0, "b", "tie"))
    if (graded & (expected != choice)).any():
        i = int(np.flatnonzero(graded & (expected != choice))[0])
        raise VotesError(f"row {i}: grade {grade[i]:+g} disagrees with choice {choice[i]!r} "
                         "(grade > 0 means a, < 0 means b, 0 means tie)")
    reread = _flags(df["reread"], "reread") if "reread" in df.columns else np.zeros(len(df), dtype=bool)

    # Canonical order: flip rows whose arms are out of order, swapping everything that refers to a side.
    arm_codes, arm_names = pd.factorize(np.concatenate([arm_a, arm_b]), sort=True)
    code_a, code_b = arm_codes[: len(df)], arm_codes[len(df) :]
    flip = code_a > code_b
    code_a, code_b = np.where(flip, code_b, code_a), np.where(flip, code_a, code_b)
    arm_names = np.asarray(arm_names, dtype=object)
    choice, left = _swap_ab(choice, flip), _swap_ab(left, flip)
    dice_a, dice_b = np.where(flip, dice_b, dice_a), np.where(flip, dice_a, dice_b)
    grade = np.where(flip, -grade, grade)

    keys = pd.DataFrame({"r": pd.factorize(reader)[0], "c": pd.factorize(case)[0], "a": code_a, "b": code_b,
                         "reread": reread})
    dup = keys.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise VotesError(
            f"row {i}: second vote by reader {reader[i]!r} on case {case[i]!r} for arms "
            f"{arm_names[code_a[i]]!r}/{arm_names[code_b[i]]!r}; each reader votes once per case and pair "
            "(plus at most one planned re-read)"
        )
    return pd.DataFrame(
        {
            "reader": reader,
            "case": case,
            "arm_a": arm_names[code_a],
            "arm_b": arm_names[code_b],
            "choice": choice,
            "left": left,
            "confidence": confidence,
            "time_ms": time_ms,
            "dice_a": dice_a,
            "dice_b": dice_b,
            "grade": grade,
            "reread": reread,
        }
    )


def _flags(series: pd.Series, name: str) -> np.ndarray:
    """Optional true/false column (true, 1, yes / false, 0, no, blank) -> bool array."""
    text = _clean(series, lower=True)
    true, false = np.isin(text, ("true", "1", "1.0", "yes")), np.isin(text, ("false", "0", "0.0", "no", ""))
    bad = ~(true | false)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VotesError(f"column {name!r}: {series.iloc[i]!r} in row {i} is not true/false")
    return true


def first_reads(votes: pd.DataFrame) -> pd.DataFrame:
    """The votes that count for every statistic but re-read agreement (planned re-reads dropped)."""
    return votes[~votes["reread"].to_numpy(dtype=bool)] if "reread" in votes else votes


def arm_pairs(votes: pd.DataFrame) -> list[tuple[str, str]]:
    """Sorted distinct ``(arm_a, arm_b)`` pairs of a normalised vote table."""
    pairs = votes[["arm_a", "arm_b"]].drop_duplicates().sort_values(["arm_a", "arm_b"])
    return [(str(a), str(b)) for a, b in pairs.itertuples(index=False)]


def pair_votes(votes: pd.DataFrame, arm_a: str, arm_b: str) -> pd.DataFrame:
    """Rows of a normalised vote table for one canonical pair (``arm_a < arm_b``)."""
    return votes[(votes["arm_a"].to_numpy() == arm_a) & (votes["arm_b"].to_numpy() == arm_b)]


# --------------------------------------------------------------------------------------------------
# Binomial intervals and the sign test (vectorised: breakdowns call them on thousands of groups at once)
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval on the proportion scale (NaN bounds when undefined)."""

    low: float
    high: float
    level: float = 0.95
    method: str = "wilson"

    def to_dict(self) -> dict:
        return to_jsonable(self)

    def format(self, digits: int = 1) -> str:
        """``'49.0%-72.9%'`` (percent, ``digits`` decimals)."""
        return f"{100 * self.low:.{digits}f}%-{100 * self.high:.{digits}f}%"


def wilson_interval(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``k`` successes of ``n`` (array-like, broadcast); NaN where ``n == 0``.

    Wilson rather than Wald: it stays inside [0, 1] and keeps close to nominal coverage for small n and for
    shares near 0% or 100%, which is where reader studies with few cases live.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = sps.norm.ppf(0.5 + level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 and k = n the bounds are exactly 0 and 1; pin them against rounding (0.9999999999999999).
    low = np.where(k == 0, 0.0, np.clip(centre - half, 0, 1))
    high = np.where(k == n, 1.0, np.clip(centre + half, 0, 1))
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def clopper_pearson_interval(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) interval from beta quantiles; conservative; NaN where ``n == 0``."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    alpha = 1 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, sps.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, sps.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def sign_test(k, n) -> np.ndarray:
    """Exact two-sided binomial test of ``k`` of ``n`` against 50% (the sign test); NaN where ``n == 0``.

    For p = 0.5 the binomial is symmetric, so scipy.stats.binomtest's two-sided p-value (sum of outcomes
    no more likely than the observed one) equals twice the smaller tail, capped at 1. Computing it this way
    handles thousands of groups in one call.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tail = np.minimum(sps.binom.cdf(k, n, 0.5), sps.binom.sf(k - 1, n, 0.5))
        p = np.minimum(1.0, 2 * tail)
    return np.where(n > 0, p, np.nan)


# --------------------------------------------------------------------------------------------------
# Formatting and JSON
# --------------------------------------------------------------------------------------------------


def fmt_p(p: float | None) -> str:
    """``'p = 0.092'``, ``'p < 0.001'`` or ``'p = n/a'``."""
    if p is None or not math.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def to_jsonable(obj):
    """Recursively convert results to JSON-ready builtins: dataclasses and mappings -> dict, tuples and arrays
    -> list, numpy scalars -> Python numbers, NaN/inf -> None, DataFrames -> list of row dicts."""
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:  # most leaves: skip the checks below
        return obj
    if kind is float:
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def none_if_nan(x) -> float | None:
    """Python float, or None for NaN/None (for dataclass fields that are 'undefined' rather than 'zero')."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
