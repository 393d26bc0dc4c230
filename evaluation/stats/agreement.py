"""Inter-reader agreement for one arm pair: Fleiss' kappa, pairwise Cohen's kappa, percent agreement.

An *item* is a case of the pair; each reader who voted on it gives one of three categories (a, b, tie).
Readers who never voted on the pair are simply absent (they are not raters with missing data).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import fleiss_kappa as _sm_fleiss_kappa

from evaluation.stats.base import CHOICES, none_if_nan, to_jsonable


@dataclasses.dataclass(frozen=True)
class ReaderPairAgreement:
    """Agreement of two readers over the items both rated (``cohen_kappa`` None when undefined)."""

    reader_1: str
    reader_2: str
    n_items: int
    percent_agreement: float | None
    cohen_kappa: float | None


@dataclasses.dataclass(frozen=True)
class AgreementResult:
    """Agreement among readers on one pair.

    ``fleiss_kappa`` uses only items rated by every reader of the pair (``n_items_complete``), as Fleiss'
    kappa needs a constant number of raters. ``percent_agreement`` is the mean over items with two or more
    raters (``n_items_shared``) of the share of agreeing rater pairs (Fleiss' P_i). ``mean_cohen_kappa`` is
    the unweighted mean of the defined pairwise kappas (Light's kappa).
    """

    arm_a: str
    arm_b: str
    n_readers: int
    n_items_complete: int
    n_items_shared: int
    fleiss_kappa: float | None
    percent_agreement: float | None
    mean_cohen_kappa: float | None
    pairwise: tuple[ReaderPairAgreement, ...]
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _one_hot(votes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(categories, readers, items) 0/1 array of ratings, plus reader and item labels (sorted)."""
    r_codes, readers = pd.factorize(votes["reader"], sort=True)
    i_codes, items = pd.factorize(votes["case"], sort=True)
    k_codes = pd.Categorical(votes["choice"], categories=CHOICES).codes
    x = np.zeros((len(CHOICES), len(readers), len(items)))
    x[k_codes, r_codes, i_codes] = 1.0
    return x, np.asarray(readers, dtype=object), np.asarray(items, dtype=object)


def pairwise_cohen_kappa(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cohen's kappa for every pair of readers at once.

    Args:
        x: (categories, readers, items) one-hot ratings, all-zero where a reader did not rate an item.

    Returns:
        ``(kappa, agreement, n)``, each (readers, readers): over the items both readers rated, Cohen's kappa
        (NaN when undefined: no shared items, or chance agreement 1), observed agreement, and the item count.
        Equals ``sklearn.metrics.cohen_kappa_score`` on the shared items, but as a few matrix products, so
        100 readers (4,950 pairs) take milliseconds instead of seconds.
    """
    mask = x.sum(0)  # (R, I): rated or not
    n = mask @ mask.T  # shared items per pair
    observed = sum(xk @ xk.T for xk in x)  # agreeing shared items
    marg = x @ mask.T  # (K, R, R): r's count of category k on items s rated
    with np.errstate(invalid="ignore", divide="ignore"):
        po = observed / n
        pe = (marg * marg.transpose(0, 2, 1)).sum(0) / (n * n)
        kappa = (po - pe) / (1 - pe)
    kappa[(n == 0) | np.isclose(pe, 1.0)] = np.nan
    po[n == 0] = np.nan
    return kappa, po, n


def agreement(votes: pd.DataFrame, arm_a: str, arm_b: str) -> AgreementResult:
    """Fleiss' kappa, pairwise Cohen's kappa and percent agreement for one pair's normalised votes."""
    x, readers, _items = _one_hot(votes)
    n_readers = len(readers)
    counts = x.sum(1).T  # (items, categories): raters per category
    raters = counts.sum(1)
    shared = raters >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        p_i = ((counts * (counts - 1)).sum(1) / (raters * (raters - 1)))[shared]
    pct = float(p_i.mean()) if p_i.size else None
    if n_readers < 2:
        return _undefined(arm_a, arm_b, n_readers, "only one reader: agreement between readers is not defined")
    complete = raters == n_readers
    if not shared.any():
        return _undefined(arm_a, arm_b, n_readers, "no case was rated by two or more readers: agreement is not defined")
    notes = []
    fleiss = None
    if not complete.any():
        notes.append("no case was rated by every reader, so Fleiss' kappa is not defined")
    else:
        table = counts[complete]
        if np.count_nonzero(table.sum(0)) < 2:
            notes.append(
                "every rating on the complete cases is the same category: Fleiss' kappa is not defined"
            )
        else:
            fleiss = none_if_nan(_sm_fleiss_kappa(table, method="fleiss"))
    kappa, po, n = pairwise_cohen_kappa(x)
    pairs = tuple(
        ReaderPairAgreement(
            reader_1=str(readers[i]),
            reader_2=str(readers[j]),
            n_items=int(n[i, j]),
            percent_agreement=none_if_nan(po[i, j]),
            cohen_kappa=none_if_nan(kappa[i, j]),
        )
        for i, j in itertools.combinations(range(n_readers), 2)
    )
    defined = [p.cohen_kappa for p in pairs if p.cohen_kappa is not None]
    if len(defined) < len(pairs):
        notes.append(
            f"Cohen's kappa undefined for {len(pairs) - len(defined)} of {len(pairs)} reader pairs "
            "(no shared cases, or both readers used a single category)"
        )
    return AgreementResult(
        arm_a=arm_a,
        arm_b=arm_b,
        n_readers=n_readers,
        n_items_complete=int(complete.sum()),
        n_items_shared=int(shared.sum()),
        fleiss_kappa=fleiss,
        percent_agreement=pct,
        mean_cohen_kappa=float(np.mean(defined)) if defined else None,
        pairwise=pairs,
        note="; ".join(notes) or None,
    )


def _undefined(arm_a, arm_b, n_readers, note) -> AgreementResult:
    """An agreement result with nothing measurable, saying why."""
    return AgreementResult(arm_a=arm_a, arm_b=arm_b, n_readers=n_readers, n_items_complete=0, n_items_shared=0,
                           fleiss_kappa=None, percent_agreement=None, mean_cohen_kappa=None, pairwise=(), note=note)
