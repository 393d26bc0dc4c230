"""Configuration of the step-1 clustering run (no Django). Re-exported by :mod:`pipeline.core.clustering`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core.training.config_dict import TrainerConfig, preset_values

__all__ = ["ClusteringConfig"]

KEEP_EPOCH_BY = ("val_loss", "val_labels")


@dataclass
class ClusteringConfig(TrainerConfig):
    """Every parameter of a clustering run, defaulting to the paper.

    Attributes:
        height, width, depth: model grid (X, Y in-plane; Z slices). Paper: 512 x 512 x 32.
        n_channels: feature channels per modality (the response has ``M * n_channels`` channels, hence at
            most that many clusters). Paper: 30.
        n_conv: number of 3x3x3 conv -> ReLU -> BatchNorm blocks. Paper: 2.
        slice_kernel: the blocks' kernel size along Z: 3 (paper, 3x3x3) or 1 (3x3x1, for thick slices; see
            :class:`~pipeline.core.clustering.model.ClusterNet`).
        mu: weight of the continuity loss against the self-labelling cross-entropy. Paper: 1.
        lr, momentum: SGD. Paper: 1e-3, 0.9.
        batch_size: cases per step. Paper: 4.
        max_epochs: upper bound on epochs. Paper: 700.
        patience: epochs without a validation-loss improvement before stopping. Paper: 10.
        min_clusters: stop once an epoch's cluster count (on VAL) is ``<= min_clusters`` (Kanezaki's
            ``minLabels``); such a collapsed epoch is never the kept checkpoint (unless no epoch had more
            clusters, when the last one is kept, as Kanezaki does). 0 switches it off. Useful because the VAL
            loss keeps falling as clusters merge, so early stopping alone does not catch a collapse.
        seed: seeds weights, case order and augmentation (reproducible on CPU).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: mixed precision (float16 autocast + GradScaler); used on CUDA only.
        cpu_bf16: bfloat16 autocast on the CPU (convolutions in bfloat16, no scaler needed): at the paper's
            settings about 0.7x the time and 0.92x the peak memory of float32 on an Intel Xeon with AVX-512 and
            AMX (4.5-5.0 s per epoch and 1,243-1,253 MiB peak, against 6.2-6.9 s and 1,346-1,361 MiB), 0.74-0.94x
            on an AMD EPYC with AVX-512 bfloat16 instructions and no AMX; clusters close but not equal (ARI 0.97),
            so off by default (``bench/clustering_bench.py --paper-cpu`` and ``bench/label_quality.py --set``
            measure it). Whether it pays is measured as the trainer starts, on one training step of the run's own
            settings (:func:`~pipeline.core.clustering.bfloat16.bfloat16_why_not`); it is ignored, with a note,
            where that step is not at least 10% faster (an Intel Xeon with AVX-512 bfloat16 instructions and no
            AMX: 1.2-1.4x per epoch) and, unmeasured, without native bfloat16 (AVX2 only, about 100x).
        augment: random flip + affine augmentation of training cases.
        keep_epoch_by: which epoch's weights are kept, and what early stopping watches. ``"val_loss"`` (paper):
            the lowest VAL loss. ``"val_labels"``: the epoch whose VAL cluster maps best reproduce the VAL
            cases' expert labels from whole regions (Dice of :func:`~pipeline.core.metrics.best_regions` against
            the raters' consensus on the case; needs expert labels on VAL cases). Training itself stays
            unsupervised; only the choice of checkpoint looks at labels, the ones step 2 uses anyway.
            Why: the self-labelling loss keeps falling as clusters merge, and from one epoch to the next the
            clustering can jump between a separate tumour cluster and none, so the lowest VAL loss is often a
            clustering in which the tumour has merged into healthy tissue.
    """

    WHAT = "clustering"  # in messages (not a field: no annotation)

    height: int = 512
    width: int = 512
    depth: int = 32
    n_channels: int = 30
    n_conv: int = 2
    slice_kernel: int = 3
    mu: float = 1.0
    lr: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 4
    max_epochs: int = 700
    patience: int = 10
    min_clusters: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    cpu_bf16: bool = False
    augment: bool = True
    keep_epoch_by: str = "val_loss"

    def __post_init__(self) -> None:
        problems = self._check_ints({"height": 1, "width": 1, "depth": 1, "n_channels": 1, "n_conv": 1, "batch_size": 1,
                                     "max_epochs": 1, "patience": 1, "min_clusters": 0, "seed": 0})
        problems += self._check_numbers((
            ("mu", lambda v: v >= 0, ">= 0"),
            ("lr", lambda v: v > 0, "> 0"),
            ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
        ))
        problems += self._check_switches(("amp", "cpu_bf16", "augment"))
        if isinstance(self.slice_kernel, bool) or self.slice_kernel not in (1, 3):
            problems.append(f"slice_kernel must be 1 or 3, got {self.slice_kernel!r}")
        else:
            self.slice_kernel = int(self.slice_kernel)
        if self.keep_epoch_by not in KEEP_EPOCH_BY:
            problems.append(f"keep_epoch_by must be one of {', '.join(KEEP_EPOCH_BY)}, got {self.keep_epoch_by!r}")
        problems += self._check_device()
        if problems:
            raise ValueError("invalid clustering config: " + "; ".join(problems))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ClusteringConfig:
        """``"paper"``: the published settings. ``"fast"``: CPU-friendly (see below), same method.

        "fast": CPU-friendly, measured on 10 two-modality 128x128x16 phantoms (6 TRAIN / 2 VAL): ~1.8 s per
        epoch on an idle 2-core CPU, so 60 epochs train in about 2 minutes (well under 5).

        * grid 128x128x16: phantoms and small studies are already this size, so nothing is resampled and
          clusters keep full-resolution boundaries, which step-2 region growing needs (64x64 phantoms gave
          far worse clusters: the tumour is then only a few voxels across);
        * n_channels 12: the cost per voxel is dominated by the C x C 3x3x3 convolution (~27 C^2 MACs), so
          12 instead of 30 is ~6x cheaper; 20 channels was slower and no better (more ids, fragmented);
        * batch_size 1: the same compute per epoch buys 6 SGD steps instead of 2 (BatchNorm still sees
          M x 262k voxels per step);
        * lr 0.05, max_epochs 60: with so few steps the paper's 1e-3 barely moves the weights; at 0.05 the
          tumour clusters form within a few epochs, but the clustering is unstable: from one epoch to the
          next the tumour can get its own cluster or merge into oedema or muscle, and it collapses for good
          sooner or later (the loss keeps falling as clusters merge). Hence the next two;
        * keep_epoch_by "val_labels", patience 25: keep the epoch whose VAL clusters best rebuild the VAL
          cases' rough labels, and stop 25 epochs after the last improvement. With the paper's rule (lowest
          VAL loss, patience 10) the kept epoch was often a merged one;
        * slice_kernel 1: with 4 mm slices a 3x3x3 kernel pulls the oedema a slice above and below the
          tumour into the rim's cluster (200-460 voxels per case).
          Measured (``bench/label_quality.py`` phantoms, three training seeds): Dice of the regions lying mostly
          inside the truth (``best_regions``) 0.73-0.75 with the old settings (3x3x3, kept by VAL loss), 0.79-0.85
          with these (kept epochs 60, 5 and 2: the run can still collapse later; the kept epoch is before).
        """
        presets = {
            "paper": {},
            "fast": {"height": 128, "width": 128, "depth": 16, "n_channels": 12, "lr": 0.05,
                     "batch_size": 1, "max_epochs": 60, "patience": 25, "slice_kernel": 1,
                     "keep_epoch_by": "val_labels"},
        }
        return cls.from_dict({**preset_values(presets, name, cls.WHAT), **overrides})

