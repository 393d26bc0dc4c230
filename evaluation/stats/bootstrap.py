"""Inference that respects clustering by reader and case: the cluster bootstrap, the alternative primary
method of a study (the default, the logistic mixed model, is in :mod:`evaluation.stats.mixed`).

In a reader study the same readers judge many cases and the same cases are judged by many readers, so votes
are not independent and the Wilson / exact binomial intervals (which assume they are) are too narrow. The
functions here take a normalised vote table restricted to one pair (``arm_a < arm_b``) and work on arm_a's
share of the decisive votes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import sparse

from evaluation.stats.base import Interval, to_jsonable

# Below this many readers the reader half of the bootstrap sees very few distinct resamples.
FEW_READERS = 5
# Below this many decisive votes a resampling interval is mostly a handful of repeated values (with 2 votes
# that went one way it is the point 0-0): no interval is reported, the result says "too few votes".
MIN_BOOT_VOTES = 10


@dataclasses.dataclass(frozen=True)
class Clustering:
    """How a pair's decisive votes are spread over readers and cases.

    A factor *recurs* when it has at least two levels and some level carries two or more decisive votes: only
    then do its votes share something that independent-vote intervals ignore.
    """

    n_decisive: int
    n_readers: int
    n_cases: int
    reader_recurs: bool
    case_recurs: bool


def clustering(votes: pd.DataFrame) -> Clustering:
    d = votes[votes["choice"].to_numpy() != "tie"]
    r = d["reader"].value_counts()
    c = d["case"].value_counts()
    return Clustering(
        n_decisive=len(d),
        n_readers=len(r),
        n_cases=len(c),
        reader_recurs=bool(len(r) >= 2 and r.max() >= 2),
        case_recurs=bool(len(c) >= 2 and c.max() >= 2),
    )


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Cluster bootstrap of arm_a's decisive-vote share, percentile interval.

    ``resampled`` names the factors drawn with replacement: ``("reader", "case")`` for the two-way bootstrap,
    one factor when only that one recurs, ``()`` (votes resampled) when neither does.

    ``p_value`` tests a share of 50% with the same replicates as the interval: twice the smaller share of
    replicates on either side of 0.5 (capped at 1), so the level-``L`` interval excludes 50% exactly when
    ``p_value < 1 - L`` (up to replicates that land on 0.5). None with fewer than ``MIN_BOOT_VOTES`` decisive
    votes, when no interval is given either.
    """

    arm_a: str
    arm_b: str
    share_a: float | None
    interval: Interval | None
    se: float | None
    n_boot: int
    n_valid: int
    seed: int
    n_readers: int
    n_cases: int
    resampled: tuple[str, ...] = ()
    note: str | None = None
    p_value: float | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def bootstrap_method(resampled: tuple[str, ...]) -> str:
    """Human name of a bootstrap scheme, as quoted in headlines."""
    if len(resampled) == 2:
        return "two-way cluster bootstrap"
    return f"cluster bootstrap over {resampled[0]}s" if resampled else "bootstrap over votes"


def _resample_counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n) float matrix: how often each of n clusters is drawn in each resample (with replacement)."""
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def cluster_bootstrap(
    votes: pd.DataFrame,
    arm_a: str,
    arm_b: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "auto",
    max_block_bytes: int = 128 * 2**20,
) -> BootstrapResult:
    """Cluster bootstrap (two-way "pigeonhole" by default) of arm_a's share among decisive votes.

    Each replicate draws readers and cases independently with replacement; a vote by reader r on case c then
    counts ``W[r] * V[c]`` times (W, V = how often r and c were drawn). With per-cell totals ``Mw`` (wins of
    arm_a) and ``Mn`` (decisive votes), shape (readers, cases), replicate b's share is
    ``(W_b @ Mw @ V_b) / (W_b @ Mn @ V_b)``, computed for a block of replicates with one matrix product.
    The two-way variance estimate is mildly conservative (Owen 2007) and makes no distributional assumption.

    Args:
        votes: normalised votes of this pair only.
        n_boot: number of replicates (>= 1). seed: seeds ``numpy.random.default_rng``.
        resample: ``"auto"`` (default) resamples each factor that recurs (see :class:`Clustering`) and holds
            the other fixed (W or V = 1): when every case has a single vote, cases are nested in readers and
            resampling them as well would count the vote-level noise twice (in a 7-reader study with one vote
            per case, that doubled the variance). ``"both"``, ``"reader"`` or ``"case"`` force a scheme.
        max_block_bytes: memory cap for one block of replicates (trades memory for Python-loop overhead).

    Replicates that draw no decisive vote (possible with very few readers/cases) are dropped and counted.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    choices = {"auto": None, "both": ("reader", "case"), "reader": ("reader",), "case": ("case",)}
    if resample not in choices:
        raise ValueError(f"resample must be one of {list(choices)}, got {resample!r}")
    d = votes[votes["choice"].to_numpy() != "tie"]
    r_codes, readers = pd.factorize(d["reader"], sort=True)
    c_codes, cases = pd.factorize(d["case"], sort=True)
    n_r, n_c = len(readers), len(cases)
    if len(d) == 0:
        return BootstrapResult(
            arm_a=arm_a,
            arm_b=arm_b,
            share_a=None,
            interval=None,
            se=None,
            n_boot=n_boot,
            n_valid=0,
            seed=seed,
            n_readers=0,
            n_cases=0,
            resampled=(),
            note="no decisive votes (ties only); nothing to resample",
        )
    if len(d) < MIN_BOOT_VOTES:
        return BootstrapResult(
            arm_a=arm_a, arm_b=arm_b, share_a=float((d["choice"].to_numpy() == "a").mean()), interval=None,
            se=None, n_boot=n_boot, n_valid=0, seed=seed, n_readers=n_r, n_cases=n_c, resampled=(),
            note=f"too few votes ({len(d)} decisive, fewer than {MIN_BOOT_VOTES}) for a bootstrap interval",
        )
    cl = clustering(votes)
    resampled = choices[resample] or tuple(
        f for f, on in (("reader", cl.reader_recurs), ("case", cl.case_recurs)) if on
    )
    resample_cases = "case" in resampled or not resampled
    if not resampled:  # neither factor recurs: each vote is its own cluster, so resample votes
        c_codes, n_c = np.arange(len(d)), len(d)
    win = (d["choice"].to_numpy() == "a").astype(np.float64)
    share = float(win.mean())
    shape = (n_r, n_c)
    m_w = sparse.csr_array((win, (r_codes, c_codes)), shape=shape)
    m_n = sparse.csr_array((np.ones_like(win), (r_codes, c_codes)), shape=shape)
    if n_r * n_c <= 4_000_000:  # dense matmul (BLAS) beats sparse when the reader x case grid is small
        m_w, m_n = m_w.toarray(), m_n.toarray()
    rng = np.random.default_rng(seed)
    block = int(max(1, min(n_boot, max_block_bytes // (8 * 4 * max(n_r, n_c)))))
    num, den = [], []
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        w = _resample_counts(rng, b, n_r) if "reader" in resampled else np.ones((b, n_r))
        v = _resample_counts(rng, b, n_c) if resample_cases else np.ones((b, n_c))
        num.append(np.einsum("bc,bc->b", np.asarray(w @ m_w), v))
        den.append(np.einsum("bc,bc->b", np.asarray(w @ m_n), v))
    num, den = np.concatenate(num), np.concatenate(den)
    ok = den > 0
    shares = num[ok] / den[ok]
    alpha = 1 - level
    lo, hi = np.quantile(shares, [alpha / 2, 1 - alpha / 2]) if shares.size else (np.nan, np.nan)
    p_value = min(1.0, 2 * min(float((shares <= 0.5).mean()), float((shares >= 0.5).mean()))) if shares.size \
        else None
    notes = []
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} of {n_boot} replicates drew no decisive vote and were dropped")
    if share in (0.0, 1.0):
        notes.append(
            "all decisive votes went one way, so every replicate gives the same share "
            "and the bootstrap interval collapses to a point"
        )
    if n_r == 1:
        notes.append("single reader: only cases are resampled (inference is about this reader)")
    elif "reader" in resampled and n_r < FEW_READERS:
        notes.append(f"only {n_r} readers: the reader resampling is coarse, read the interval as approximate")
    method = bootstrap_method(resampled)
    return BootstrapResult(
        arm_a=arm_a,
        arm_b=arm_b,
        share_a=share,
        interval=Interval(float(lo), float(hi), level, method),
        se=float(shares.std(ddof=1)) if shares.size > 1 else None,
        n_boot=n_boot,
        n_valid=int(ok.sum()),
        seed=seed,
        n_readers=n_r,
        n_cases=len(cases),
        resampled=resampled,
        note="; ".join(notes) or None,
        p_value=p_value,
    )
