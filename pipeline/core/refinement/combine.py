"""Combine several binary labels of one case (raters and/or modalities) into a single mask.

Methods (``combine_labels(labels, method)``):

- ``"union"``: a voxel is in the mask if any label has it (the published step-2 procedure).
- ``"intersection"``: every label has it.
- ``"majority"``: strictly more than half of the labels have it (2 of 3, 2 of 2, 3 of 4, ...).
- ``"staple"``: binary STAPLE (Warfield, Zou & Wells 2004, IEEE TMI 23(7)): EM estimate of each rater's
  sensitivity and specificity and of the hidden true segmentation; consensus is ``P(true = 1) >= 0.5``.

``combine_raters(labels, raters, method)`` first unites each rater's labels (one outline drawn on several
modalities, as published), then combines the raters with ``method``.

All labels are ``(X, Y, Z)`` (any shape, all equal) arrays of 0/1 (uint8 or bool); results are uint8 0/1.
No Django imports: usable from a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COMBINE_METHODS = ("union", "intersection", "majority", "staple")

# STAPLE groups voxels by their rating pattern (one bit per rater); with up to this many raters the pattern
# table is a dense bincount (2**20 entries), beyond it np.unique is used; 62 keeps codes inside int64.
_DENSE_PATTERN_RATERS = 20
_MAX_STAPLE_RATERS = 62


def as_label_stack(labels: Sequence[np.ndarray], name: str = "labels") -> np.ndarray:
    """Validate a sequence of binary masks and stack them as a bool array ``(R, *shape)``.

    Raises TypeError/ValueError naming the offending element: not a sequence of arrays, empty, shapes differ,
    non-integer dtype, or values other than 0 and 1.
    """
    if isinstance(labels, np.ndarray):
        # A bare (X, Y, Z) array would silently iterate over X slices; make the caller say what is meant.
        raise TypeError(f"{name} must be a sequence of arrays (one per rater or modality), got a single "
                        f"ndarray of shape {labels.shape}; wrap it in a list")
    if len(labels) == 0:
        raise ValueError(f"{name} is empty: at least one label is needed")
    shape = None
    for i, lab in enumerate(labels):
        if not isinstance(lab, np.ndarray):
            raise TypeError(f"{name}[{i}] must be a numpy array, got {type(lab).__name__}")
        if shape is None:
            shape = lab.shape
        elif lab.shape != shape:
            raise ValueError(f"{name}[{i}] has shape {lab.shape}, but {name}[0] has shape {shape}")
        if lab.dtype != bool:
            if not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"{name}[{i}] must be a 0/1 mask of integer or bool dtype, got {lab.dtype}")
            if lab.size and (lab.min() < 0 or lab.max() > 1):
                bad = np.unique(lab[(lab < 0) | (lab > 1)])[:5].tolist()
                raise ValueError(f"{name}[{i}] must contain only 0 and 1, found values {bad}")
    return np.stack([np.asarray(lab, dtype=bool) for lab in labels])


@dataclass(frozen=True)
class StapleResult:
    """Output of :func:`staple`.

    consensus: uint8 ``(X, Y, Z)``, ``probability >= threshold``.
    probability: float32 ``(X, Y, Z)``, posterior ``P(true label = 1)`` per voxel.
    sensitivity, specificity: float64 ``(R,)``, per rater, in the order of the input labels
        (NaN when the problem is degenerate: no rater or every rater labels every voxel).
    prior: the prior foreground probability used.
    n_iter: EM iterations run; converged: whether the parameter change fell below ``tol``.
    """

    consensus: np.ndarray
    probability: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    prior: float
    n_iter: int
    converged: bool


def staple(
    labels: Sequence[np.ndarray],
    prior: float | None = None,
    init: float = 0.99,
    max_iter: int = 200,
    tol: float = 1e-8,
    threshold: float = 0.5,
) -> StapleResult:
    """Binary STAPLE (Warfield et al. 2004) by expectation-maximisation.

    Args:
        labels: R binary masks of equal shape.
        prior: prior probability that a voxel is foreground; default (None) is Warfield's global estimate,
            the mean foreground fraction over all raters.
        init: initial sensitivity and specificity of every rater (Warfield suggests values near 1).
        max_iter: EM iteration cap. tol: stop when no sensitivity/specificity changes by more than this.
        threshold: consensus is ``probability >= threshold``.

    Voxels are grouped by their rating pattern (which raters say 1), so one EM step costs O(2**R), not
    O(voxels); the result is identical to the per-voxel formulation.
    """
    stack = as_label_stack(labels)
    n_raters = stack.shape[0]
    if n_raters > _MAX_STAPLE_RATERS:
        raise ValueError(f"staple supports at most {_MAX_STAPLE_RATERS} raters, got {n_raters}")
    if prior is not None and not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
    if not 0.0 < init < 1.0:
        raise ValueError(f"init must be strictly between 0 and 1, got {init}")
    shape = stack.shape[1:]
    flat = stack.reshape(n_raters, -1)

    # One integer code per voxel: bit j set when rater j says foreground.
    codes = np.zeros(flat.shape[1], dtype=np.int64)
    for j in range(n_raters):
        codes |= flat[j].astype(np.int64) << j
    if n_raters <= _DENSE_PATTERN_RATERS:
        counts_all = np.bincount(codes, minlength=1 << n_raters)
        pattern_codes = np.flatnonzero(counts_all)
        counts = counts_all[pattern_codes].astype(np.float64)
        inverse = None
    else:
        pattern_codes, inverse, counts_int = np.unique(codes, return_inverse=True, return_counts=True)
        counts = counts_int.astype(np.float64)
    # patterns: (K, R) 0/1 matrix of the distinct rating patterns present.
    patterns = ((pattern_codes[:, None] >> np.arange(n_raters)) & 1).astype(np.float64)

    f = float(flat.mean()) if prior is None else float(prior)
    nan = np.full(n_raters, np.nan)
    if f <= 0.0 or f >= 1.0:
        # Nobody labels anything, or everybody labels everything: the consensus is that, with no EM.
        value = np.float32(1.0 if f >= 1.0 else 0.0)
        prob = np.full(shape, value, dtype=np.float32)
        return StapleResult((prob >= threshold).astype(np.uint8), prob, nan, nan.copy(), f, 0, True)

    eps = 1e-10
    sens = np.full(n_raters, init)
    spec = np.full(n_raters, init)
    log_f, log_1f = np.log(f), np.log1p(-f)
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        # E-step: posterior of "true = 1" for each pattern, in log space (many raters would underflow).
        log_fg = log_f + patterns @ np.log(sens) + (1 - patterns) @ np.log1p(-sens)
        log_bg = log_1f + (1 - patterns) @ np.log(spec) + patterns @ np.log1p(-spec)
        weights = 1.0 / (1.0 + np.exp(np.clip(log_bg - log_fg, -700, 700)))
        # M-step: expected true positives / expected positives, and likewise for negatives.
        w_fg = weights * counts
        w_bg = (1.0 - weights) * counts
        new_sens = (w_fg @ patterns) / max(w_fg.sum(), eps)
        new_spec = (w_bg @ (1 - patterns)) / max(w_bg.sum(), eps)
        new_sens = np.clip(new_sens, eps, 1 - eps)
        new_spec = np.clip(new_spec, eps, 1 - eps)
        change = max(np.abs(new_sens - sens).max(), np.abs(new_spec - spec).max())
        sens, spec = new_sens, new_spec
        if change < tol:
            converged = True
            break
    # Posterior with the final parameters (the loop's weights belong to the previous ones).
    log_fg = log_f + patterns @ np.log(sens) + (1 - patterns) @ np.log1p(-sens)
    log_bg = log_1f + (1 - patterns) @ np.log(spec) + patterns @ np.log1p(-spec)
    weights = 1.0 / (1.0 + np.exp(np.clip(log_bg - log_fg, -700, 700)))

    if inverse is None:
        table = np.zeros(1 << n_raters, dtype=np.float32)
        table[pattern_codes] = weights
        prob = table[codes].reshape(shape)
    else:
        prob = weights.astype(np.float32)[inverse].reshape(shape)
    return StapleResult((prob >= threshold).astype(np.uint8), prob, sens, spec, f, n_iter, converged)


def combine_labels(labels: Sequence[np.ndarray], method: str = "union") -> np.ndarray:
    """Combine R binary masks of equal shape into one uint8 0/1 mask of that shape.

    method: ``"union"`` | ``"intersection"`` | ``"majority"`` (strictly more than R/2) | ``"staple"``
    (binary EM STAPLE with default settings, consensus at posterior >= 0.5; see :func:`staple`).
    """
    if method not in COMBINE_METHODS:
        raise ValueError(f"method must be one of {COMBINE_METHODS}, got {method!r}")
    if method == "staple":
        return staple(labels).consensus
    stack = as_label_stack(labels)
    if method == "union":
        out = stack.any(axis=0)
    elif method == "intersection":
        out = stack.all(axis=0)
    else:  # majority: 2 * votes > R keeps it in integers (no float rounding at exactly half)
        out = 2 * stack.sum(axis=0, dtype=np.int32) > stack.shape[0]
    return out.astype(np.uint8)


def combine_raters(labels: Sequence[np.ndarray], raters: Sequence[str] | None, method: str = "union") -> np.ndarray:
    """Combine labels drawn by several raters, each possibly on several modalities, into one uint8 0/1 mask.

    A rater's labels are united first: they are one rater's outline of the lesion, seen on each modality (the
    published procedure unites the modalities). ``method`` then combines the raters (see
    :func:`combine_labels`); with a single rater the result is that rater's union whatever ``method`` is.
    ``raters=None`` treats every label as a separate rater (``combine_labels(labels, method)``).

    Why not combine the modality labels with the raters: a consensus method such as STAPLE or majority then
    reads one rater's t1 and t2 outlines as two raters who disagree, and with a single rater keeps only their
    intersection.
    """
    if raters is None:
        return combine_labels(labels, method)
    if len(raters) != len(labels):
        raise ValueError(f"raters names {len(raters)} raters for {len(labels)} labels; give one name per label")
    if method not in COMBINE_METHODS:
        raise ValueError(f"method must be one of {COMBINE_METHODS}, got {method!r}")
    stack = as_label_stack(labels)
    names = list(dict.fromkeys(raters))
    per_rater = [stack[[i for i, r in enumerate(raters) if r == name]].any(axis=0) for name in names]
    if len(per_rater) == 1:
        return per_rater[0].astype(np.uint8)
    return combine_labels(per_rater, method)

