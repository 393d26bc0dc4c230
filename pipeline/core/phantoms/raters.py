"""Simulated rough tumour labels drawn by radiologists with different habits ("personalities").

A rater draws slice by slice, so the label is built in 2D per slice: the in-plane signed distance
to the true tumour boundary is thresholded at a systematic offset plus a smooth random displacement
(the hand's wobble). Optional habits: including nearby oedema, skipping the first/last tumour slice.
The same rater draws differently on each modality (independent wobble, modality-specific offset).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pipeline.core.phantoms.anatomy import mask_bbox, smooth_noise_field


@dataclass(frozen=True)
class RaterStyle:
    """A rater's systematic habits; all distances in mm.

    Attributes:
        margin_mm: signed boundary offset: > 0 over-segments (dilates), < 0 under-segments.
        wobble_mm: standard deviation of the smooth random boundary displacement.
        wobble_corr_mm: in-plane correlation length of that displacement.
        miss_end_prob: probability (each, independently) of skipping the first / the last
            tumour slice; never applied to tumours spanning fewer than 3 slices.
        oedema_mm: includes oedema lying within this distance of the tumour (0 = excludes oedema).
        modality_margin_mm: extra offset per modality, e.g. on t2 the bright oedema makes the
            tumour look a little larger.
    """

    margin_mm: float = 0.0
    wobble_mm: float = 1.0
    wobble_corr_mm: float = 8.0
    miss_end_prob: float = 0.0
    oedema_mm: float = 0.0
    modality_margin_mm: Mapping[str, float] = field(default_factory=lambda: {"t2": 0.5})

    def __post_init__(self) -> None:
        if self.wobble_mm < 0 or self.oedema_mm < 0:
            raise ValueError(f"RaterStyle: wobble_mm and oedema_mm must be >= 0, got {self}")
        if self.wobble_corr_mm <= 0:
            raise ValueError(f"RaterStyle: wobble_corr_mm must be > 0, got {self.wobble_corr_mm}")
        if not 0.0 <= self.miss_end_prob <= 1.0:
            raise ValueError(f"RaterStyle: miss_end_prob must be in [0, 1], got {self.miss_end_prob}")


# The first raters get contrasting, hand-picked habits so that any default panel shows real
# disagreement: a generous outliner, a tight one who often skips end slices, one who takes oedema.
_PRESET_STYLES = (
    RaterStyle(margin_mm=2.0, wobble_mm=1.5, miss_end_prob=0.15),
    RaterStyle(margin_mm=-1.8, wobble_mm=1.5, miss_end_prob=0.5, modality_margin_mm={"t2": 0.5}),
    RaterStyle(margin_mm=0.3, wobble_mm=2.0, miss_end_prob=0.25, oedema_mm=4.0,
               modality_margin_mm={"t2": 1.0}),
)


def stable_hash(text: str) -> int:
    """32-bit hash of a string that, unlike ``hash()``, is the same in every Python process."""
    return zlib.crc32(text.encode("utf-8"))


def default_rater_styles(raters: Sequence[str]) -> dict[str, RaterStyle]:
    """Styles for a rater panel: presets by position for the first three, then random per name.

    Beyond the presets a style is drawn from a generator seeded by the rater's name, so a rater keeps
    the same habits in every case and every dataset.
    """
    styles = {}
    for i, name in enumerate(raters):
        if i < len(_PRESET_STYLES):
            styles[name] = _PRESET_STYLES[i]
            continue
        rng = np.random.default_rng(stable_hash(name))
        styles[name] = RaterStyle(
            margin_mm=float(rng.uniform(-1.2, 1.5)),
            wobble_mm=float(rng.uniform(0.8, 1.6)),
            miss_end_prob=float(rng.uniform(0.0, 0.5)),
            oedema_mm=float(rng.choice([0.0, 0.0, 2.0])),
            modality_margin_mm={"t2": float(rng.uniform(0.0, 0.8))},
        )
    return styles


def _inplane_signed_distance(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Per-slice signed distance in mm to the boundary of ``mask`` (X, Y, Z): < 0 inside.

    Slices without any foreground get +inf (a rater never adds slices the tumour is absent from).
    """
    sdf = np.full(mask.shape, np.inf, dtype=np.float32)
    for k in range(mask.shape[2]):
        m = mask[..., k]
        if not m.any():
            continue
        outside = ndimage.distance_transform_edt(~m, sampling=spacing)
        inside = ndimage.distance_transform_edt(m, sampling=spacing)
        sdf[..., k] = outside - inside
    return sdf


def draw_rater_label(
    truth: np.ndarray,
    oedema: np.ndarray,
    spacing: tuple[float, float, float],
    style: RaterStyle,
    modality: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """One rater's rough label of the tumour as seen on one modality.

    Args:
        truth: 0/1 tumour mask ``(X, Y, Z)``, non-empty.
        oedema: 0/1 oedema mask ``(X, Y, Z)``.
        spacing: voxel sizes in mm.
        style: the rater's habits.
        modality: modality the label is drawn on (selects ``style.modality_margin_mm``).
        rng: random generator (consumed); seed it per (case, rater, modality).

    Returns:
        uint8 0/1 mask ``(X, Y, Z)``; only slices containing tumour can be labelled.
    """
    truth_b = truth.astype(bool)
    if not truth_b.any():
        raise ValueError("draw_rater_label: truth mask is empty")
    # A hand's error is partly counted in voxels: on grids coarser than ~3 mm all distances grow with
    # the voxel size, otherwise labels on tiny test grids would round back to the truth.
    scale = max(1.0, 0.35 * max(spacing[:2]))
    offset = scale * (style.margin_mm + style.modality_margin_mm.get(modality, 0.0))
    wobble_mm, oedema_mm = scale * style.wobble_mm, scale * style.oedema_mm
    # Crop to the lesion plus the farthest the boundary can move (4 sd of wobble) to keep EDTs small.
    reach = max(offset, 0.0) + 4 * wobble_mm + oedema_mm + 2 * max(spacing[:2])
    pad = (int(np.ceil(reach / spacing[0])), int(np.ceil(reach / spacing[1])), 0)
    box = mask_bbox(truth_b, pad)
    t = truth_b[box]
    sdf = _inplane_signed_distance(t, spacing[:2])
    corr = (style.wobble_corr_mm, style.wobble_corr_mm, spacing[2])  # slices drawn almost independently
    wobble = wobble_mm * smooth_noise_field(rng, t.shape, spacing, corr)
    label = sdf < offset + wobble
    if oedema_mm > 0:
        label |= oedema.astype(bool)[box] & (sdf < oedema_mm + wobble)
    # A hand-drawn outline is a filled contour: no holes, no specks.
    for k in range(label.shape[2]):
        label[..., k] = ndimage.binary_fill_holes(label[..., k])
    zs = np.flatnonzero(t.any(axis=(0, 1)))
    if zs.size >= 3:
        if rng.random() < style.miss_end_prob:
            label[..., zs[0]] = False
        if rng.random() < style.miss_end_prob:
            label[..., zs[-1]] = False
    if not label.any():  # a rater asked to label a visible tumour always draws something
        label = t.copy()
    out = np.zeros(truth.shape, dtype=np.uint8)
    out[box] = label
    return out
