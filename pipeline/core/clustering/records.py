"""Per-epoch records and input checks of the step-1 clustering run (no Django). Re-exported by
:mod:`pipeline.core.clustering`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from pipeline.core.clustering.config import ClusteringConfig
from pipeline.core.preprocess import GridSpec, check_case_images, named_cases

__all__ = ["CaseImages", "EpochStats", "FitResult", "validate_cases", "validate_val_labels"]

CaseImages = Sequence[np.ndarray]  # one array (X, Y, Z) per modality, all on one grid


@dataclass
class EpochStats:
    """One epoch: mean losses per case, cluster ids in use on VAL, wall time, whether this epoch became the kept
    one (``best``), and with ``keep_epoch_by="val_labels"`` the VAL label agreement: mean over labelled VAL cases
    of the Dice between the expert label and the best union of whole cluster regions (None otherwise)."""

    epoch: int
    train_loss: float
    val_loss: float
    n_clusters: int
    seconds: float
    best: bool
    lr: float
    train_ce: float = math.nan
    train_continuity: float = math.nan
    val_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    """``stopped_reason``: ``"early_stopping"``, ``"max_epochs"``, ``"min_clusters"``, ``"diverged"`` (non-finite
    loss) or ``"cancelled"``. ``resumed_from``: epochs restored from ``last.pt`` (0 for a fresh run)."""

    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped_reason: str = ""
    resumed_from: int = 0

    @property
    def epochs(self) -> int:
        return len(self.history)


def validate_cases(train: Sequence[CaseImages], val: Sequence[CaseImages], config: ClusteringConfig) -> None:
    """Raise ``ValueError`` before training: no TRAIN or no VAL cases, a case without modalities or with
    differently shaped modalities, modality counts differing between cases, a case too small for the grid
    (:func:`~pipeline.core.preprocess.check_fits`), or non-finite / non-numeric voxels. Messages name the case
    as ``"TRAIN case 3"`` / ``"VAL case 0"`` (indices into the sequences given)."""
    grid = GridSpec(config.height, config.width, config.depth)
    n_mod = None
    for name, case in named_cases(train, val, "clustering"):
        if isinstance(case, np.ndarray) or len(case) == 0:
            raise ValueError(f"{name}: expected a list of modality volumes, got "
                             f"{'an array' if isinstance(case, np.ndarray) else 'no modalities'}")
        check_case_images(name, case, grid, n_mod)
        n_mod = len(case)
        for m, v in enumerate(case):
            v = np.asarray(v)
            if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
                raise ValueError(f"{name}: modality {m} has non-real dtype {v.dtype}")
            if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
                raise ValueError(f"{name}: modality {m} contains NaN or infinite values")


def validate_val_labels(val: Sequence[CaseImages], val_labels: Sequence[np.ndarray | None] | None,
                        config: ClusteringConfig) -> None:
    """With ``keep_epoch_by="val_labels"``, refuse before training: no labels given, a count differing from
    the VAL cases, a label whose shape differs from its case's, or no VAL case with a non-empty label. Labels
    given with ``keep_epoch_by="val_loss"`` are ignored."""
    if config.keep_epoch_by != "val_labels":
        return
    if val_labels is None or len(val_labels) != len(val):
        got = "none" if val_labels is None else f"{len(val_labels)} labels for {len(val)} VAL cases"
        raise ValueError(f"keep_epoch_by 'val_labels' needs an expert label (or None) per VAL case; got {got}")
    labelled = 0
    for i, (case, label) in enumerate(zip(val, val_labels, strict=True)):
        if label is None:
            continue
        if np.shape(label) != np.shape(case[0]):
            raise ValueError(f"VAL case {i}: expert label shape {np.shape(label)} differs from the images "
                             f"{np.shape(case[0])}")
        labelled += bool(np.any(label))
    if not labelled:
        raise ValueError("keep_epoch_by 'val_labels': no VAL case has an expert label; add expert labels to a "
                         "VAL case or keep the epoch by 'val_loss'")

