"""Sparse rough input simulated from a rater's full outline: a few slices, a few strokes, a box.

These stand in for what a radiologist draws in the annotation page, so that the benchmark and the demo can
measure and show step 2 from each input kind (:mod:`pipeline.core.refinement.inputs` gives the encodings).
Each function takes a 0/1 outline ``(X, Y, Z)`` and returns the input in its kind's encoding, plus nothing
else: the effort figures come from :func:`effort`. No Django imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Effort", "box_input", "effort", "scribble_input", "slices_input"]


def _lesion_slices(outline: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(outline).any(axis=(0, 1)))


def _lesions(mask: np.ndarray, min_share: float = 0.2) -> tuple[np.ndarray, list[int]]:
    """Connected components of ``mask`` and the ids of those a reader would mark: at least ``min_share`` of
    the largest (a rough outline's wobble leaves specks no one strokes or boxes)."""
    comps, n = ndi.label(mask)
    if not n:
        return comps, []
    sizes = np.bincount(comps.ravel())[1:]
    return comps, [i + 1 for i, size in enumerate(sizes) if size >= min_share * sizes.max()]


def slices_input(outline: np.ndarray, every: int = 3) -> np.ndarray:
    """The outline kept on every ``every``-th slice that has some of it, centred so the middle slice is kept
    (uint8 0/1). ``every=1`` keeps every slice (the full outline)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    out = np.zeros(np.shape(outline), dtype=np.uint8)
    zs = _lesion_slices(outline)
    if not len(zs):
        return out
    mid = zs[len(zs) // 2]
    for z in zs[(zs - mid) % every == 0]:
        out[:, :, z] = np.asarray(outline)[:, :, z] > 0
    return out


def _central_slices(zs: np.ndarray, n: int) -> np.ndarray:
    mid = len(zs) // 2
    order = sorted(range(len(zs)), key=lambda i: (abs(i - mid), i))
    return np.sort(zs[order[:n]])


def scribble_input(outline: np.ndarray, n_slices: int = 1, gap_px: int = 3, width_px: int = 1) -> np.ndarray:
    """Strokes on the ``n_slices`` central slices of each lesion (uint8: 1 tumour, 2 background).

    Tumour: a cross through the lesion's centre along X and Y, kept ``width_px`` inside its outline (what a
    reader draws across a lesion). Background: a ring ``gap_px`` outside the outline on the same slices.
    """
    mask = np.asarray(outline) > 0
    out = np.zeros(mask.shape, dtype=np.uint8)
    comps, indices = _lesions(mask)
    for index in indices:
        lesion = comps == index
        for z in _central_slices(_lesion_slices(lesion), n_slices):
            plane = lesion[:, :, z]
            inner = ndi.binary_erosion(plane, iterations=width_px) if plane.sum() > 20 else plane
            if not inner.any():
                inner = plane
            cx, cy = (int(round(c)) for c in ndi.center_of_mass(inner))
            cross = np.zeros_like(plane)
            cross[:, cy] = True
            cross[cx, :] = True
            out[:, :, z][cross & inner] = 1
            ring = ndi.binary_dilation(plane, iterations=gap_px + 1) & ~ndi.binary_dilation(plane, iterations=gap_px)
            out[:, :, z][ring & (out[:, :, z] == 0)] = 2
    return out


def box_input(outline: np.ndarray) -> np.ndarray:
    """The filled bounding box of each lesion of the outline (uint8 0/1; specks under a fifth of the largest
    component get no box)."""
    mask = np.asarray(outline) > 0
    out = np.zeros(mask.shape, dtype=np.uint8)
    comps, indices = _lesions(mask)
    for index, box in enumerate(ndi.find_objects(comps), start=1):
        if box is not None and index in indices:
            out[box] = 1
    return out


@dataclass(frozen=True)
class Effort:
    """How much a reader did: ``slices`` touched, ``voxels`` marked, ``seconds`` at the rates given."""

    slices: int
    voxels: int
    seconds: float


# Rates for a reader with a mouse, as assumptions (state them next to any figure): outlining one lesion slice
# 12 s, a stroke slice (cross + ring) 5 s, a box 8 s (two corners on two views), plus 2 s to reach a slice.
SECONDS_PER = {"outline": 12.0, "slices": 12.0, "scribbles": 5.0, "box": 8.0}
SECONDS_TO_REACH_SLICE = 2.0


def effort(input_mask: np.ndarray, kind: str) -> Effort:
    """Effort of one input: slices touched and voxels marked, and the seconds at :data:`SECONDS_PER`."""
    arr = np.asarray(input_mask)
    touched = int(arr.any(axis=(0, 1)).sum())
    if kind == "box":
        n_boxes = int(ndi.label(arr > 0)[1])
        return Effort(touched, int((arr > 0).sum()), n_boxes * (SECONDS_PER["box"] + SECONDS_TO_REACH_SLICE))
    return Effort(touched, int((arr > 0).sum()), touched * (SECONDS_PER[kind] + SECONDS_TO_REACH_SLICE))
