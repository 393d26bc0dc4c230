"""Radiologists' rough input of every kind, turned into what step 2 needs (see :mod:`~.refine`).

Kinds and the encoding of their NIfTI label (``INPUT_KINDS``):

==========  ===============================================  ============================================
kind        values                                           meaning
==========  ===============================================  ============================================
outline     0/1                                              a rough outline on every slice (published)
slices      0/1                                              outlines on some slices; a slice without a
                                                             marked voxel is *unknown*, not background
scribbles   0 unmarked, 1 tumour strokes, 2 background       a few strokes inside and outside the lesion
box         0/1 (the bounding box of each component is used) the lesion's extent
==========  ===============================================  ============================================

Every input says four things about a case (:class:`Evidence`), which several inputs (raters, kinds) combine:

- ``extent``: an estimate of the lesions. Its connected components are the lesions, and their voxel counts
  set the size limit. Outline: the mask. Slices: each unknown slice between marked ones copies the nearest
  marked slice, and the first and last marked slices are copied outwards over half the mean gap (a reader who
  marks every third slice may leave one unmarked at each end); a single marked slice counts as strokes.
  Scribbles: a ball around each group of tumour strokes, as wide as the group's largest extent
  (in mm) and a quarter more (strokes stop short of the edge). Box: the ellipsoid inscribed in the box (pi/6 of its volume).
- ``seeds``: voxels surely tumour; candidate clusters are read here. Outline and slices: the marked voxels;
  scribbles: the tumour strokes; box: the inscribed ellipsoid (the box's corners are mostly background).
- ``inside`` / ``known``: for the ``min_inside`` rule a region's share is ``|region & inside| / |region &
  known|``. Outline: the mask / everywhere (the published share); slices: the marks / the marked slices;
  scribbles: tumour strokes / all strokes; box: the box / everywhere.
- ``barrier``: background strokes; no region enters them (so a stroke can cut a region off), and a cluster
  met more often under background strokes than under tumour strokes is not a candidate. ``clip``: the label
  of a lesion known only from boxes stays inside the boxes.

Arrays are ``(X, Y, Z)``, Z the slice axis. No Django imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pipeline.core.refinement.combine import combine_raters

__all__ = ["INPUT_KINDS", "SPARSE_KINDS", "Evidence", "InvalidInput", "check_input", "gather_evidence"]

INPUT_KINDS = ("outline", "slices", "scribbles", "box")
SPARSE_KINDS = ("slices", "scribbles", "box")
TUMOUR, BACKGROUND = 1, 2  # scribble values


class InvalidInput(ValueError):
    """A rough input that does not fit its kind's encoding; the message says why."""


def check_input(array: np.ndarray, kind: str) -> None:
    """Raise :class:`InvalidInput` when ``array`` (X, Y, Z) is not a valid input of ``kind``.

    Outline: values 0/1 (may be empty: no lesion). Slices and box: values 0/1 with at least one marked voxel.
    Scribbles: values 0, 1, 2 with at least one tumour (1) stroke voxel.
    """
    if kind not in INPUT_KINDS:
        raise InvalidInput(f"input must be one of {', '.join(INPUT_KINDS)}; got {kind!r}")
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise InvalidInput(f"a {kind} input must be a 3D volume, got shape {arr.shape}")
    allowed = (0, 1, 2) if kind == "scribbles" else (0, 1)
    values = np.unique(arr)
    bad = [v for v in values.tolist() if v not in allowed]
    if bad:
        encoding = "0 unmarked, 1 tumour, 2 background" if kind == "scribbles" else "0 and 1"
        raise InvalidInput(f"a {kind} input holds only {encoding}; found value(s) "
                           f"{', '.join(f'{v:g}' for v in bad[:5])}")
    if kind == "scribbles" and TUMOUR not in values:
        raise InvalidInput("scribbles need at least one tumour stroke (value 1); this drawing has none")
    if kind in ("slices", "box") and 1 not in values:
        raise InvalidInput(f"this {kind} input marks no voxel")


@dataclass(frozen=True)
class Evidence:
    """What the inputs of one case say, combined (all bool ``(X, Y, Z)``; ``clip`` may be None)."""

    extent: np.ndarray
    seeds: np.ndarray
    inside: np.ndarray
    known: np.ndarray
    barrier: np.ndarray
    clip: np.ndarray | None  # the boxes: a lesion known only from boxes stays inside them
    free: np.ndarray  # the extents from inputs other than boxes
    outlined: np.ndarray  # the combined outlines (empty without outline input)
    combined: np.ndarray  # uint8: the combined outlines, or the extent when no input is an outline
    kinds: tuple[str, ...]


def gather_evidence(labels: Sequence[np.ndarray], kinds: Sequence[str], raters: Sequence[str] | None,
                    combine: str, structure: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                    link_slices: int = 3) -> Evidence:
    """Combine inputs into :class:`Evidence`. Outlines are combined per rater with ``combine`` (as published);
    sparse inputs add their marks, extents and vetoes to that. ``link_slices``: strokes up to this many slices
    apart whose dilated footprints touch belong to one lesion."""
    shape = labels[0].shape
    raters = list(raters) if raters is not None else [str(i) for i in range(len(labels))]
    outlines = [(np.asarray(lab) > 0, r) for lab, k, r in zip(labels, kinds, raters, strict=True) if k == "outline"]
    none = np.zeros(shape, dtype=bool)
    extent, seeds, inside, barrier, clip_boxes = none.copy(), none.copy(), none.copy(), none.copy(), none.copy()
    known, free = none.copy(), none.copy()
    combined = None
    if outlines:
        combined = combine_raters([m for m, _ in outlines], [r for _, r in outlines], combine).astype(bool)
        extent |= combined
        free |= combined
        seeds |= combined
        inside |= combined
        known[:] = True
    for lab, kind in zip(labels, kinds, strict=True):
        arr = np.asarray(lab)
        if kind == "slices":
            marks = arr > 0
            marked_z = marks.any(axis=(0, 1))
            if marked_z.sum() >= 2:
                extent |= _fill_unknown_slices(marks, marked_z)
                free |= _fill_unknown_slices(marks, marked_z)
            else:  # one slice says nothing about the depth: a ball as wide as the marks, as for strokes
                extent |= _stroke_balls(marks, spacing, link_slices) | marks
                free |= extent
            seeds |= marks
            inside |= marks
            known[:, :, marked_z] = True
        elif kind == "scribbles":
            fg, bg = arr == TUMOUR, arr == BACKGROUND
            balls = _stroke_balls(fg, spacing, link_slices)
            extent |= balls
            free |= balls
            seeds |= fg
            inside |= fg
            known |= fg | bg
            barrier |= bg
        elif kind == "box":
            boxes, ellipsoids = _boxes(arr > 0, structure)
            extent |= ellipsoids
            seeds |= ellipsoids
            inside |= boxes
            known[:] = True
            clip_boxes |= boxes
        elif kind != "outline":
            raise InvalidInput(f"input must be one of {', '.join(INPUT_KINDS)}; got {kind!r}")
    barrier &= ~seeds
    extent &= ~barrier
    outlined = none if combined is None else combined
    if combined is None:
        combined = extent
    return Evidence(extent, seeds, inside, known, barrier, clip_boxes if clip_boxes.any() else None,
                    free & ~barrier, outlined, combined.astype(np.uint8), tuple(kinds))


def _fill_unknown_slices(marks: np.ndarray, marked_z: np.ndarray) -> np.ndarray:
    """Each unmarked slice takes the nearest marked slice's marks (the lower one on a tie), between the first
    and last marked slice and ``ceil((mean gap - 1) / 2)`` beyond them: a step-wise interpolation that keeps
    the drawn shapes."""
    out = marks.copy()
    zs = np.flatnonzero(marked_z)
    beyond = int(np.ceil((np.diff(zs).mean() - 1) / 2))
    for z in range(max(zs[0] - beyond, 0), min(zs[-1] + beyond + 1, marks.shape[2])):
        if not marked_z[z]:
            i = int(np.clip(np.searchsorted(zs, z), 1, len(zs) - 1))
            lower, upper = zs[i - 1], zs[i]
            out[:, :, z] = marks[:, :, lower if abs(z - lower) <= abs(upper - z) else upper]
    return out


def _stroke_balls(fg: np.ndarray, spacing: Sequence[float], link_slices: int, scale: float = 1.25) -> np.ndarray:
    """A ball per group of tumour strokes: centred on the group's bounding box, its diameter ``scale`` times
    the box's largest side in mm (strokes drawn across a lesion stop short of its edge)."""
    out = np.zeros(fg.shape, dtype=bool)
    if not fg.any():
        return out
    link = np.ones((5, 5, 2 * link_slices + 1), dtype=bool)
    groups, _ = ndi.label(ndi.binary_dilation(fg, link))
    spacing = np.asarray(spacing, dtype=float)
    for box in ndi.find_objects(np.where(fg, groups, 0)):
        if box is None:
            continue
        lo = np.array([s.start for s in box], dtype=float)
        hi = np.array([s.stop for s in box], dtype=float)
        diameter_mm = scale * float(((hi - lo) * spacing).max())
        radius_vox = np.maximum(diameter_mm / 2 / spacing, 0.5)
        centre = (lo + hi - 1) / 2
        reach = np.ceil(radius_vox).astype(int)
        a = np.maximum(np.floor(centre - reach).astype(int), 0)
        b = np.minimum(np.ceil(centre + reach).astype(int) + 1, fg.shape)
        grid = np.ogrid[tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))]
        dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius_vox, strict=True))
        out[tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))] |= dist <= 1.0
    return out


def _boxes(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The filled bounding box of each connected component of ``mask``, and the ellipsoid inscribed in each."""
    boxes = np.zeros(mask.shape, dtype=bool)
    comps, _ = ndi.label(mask, structure)
    for box in ndi.find_objects(comps):
        if box is not None:
            boxes[box] = True
    return boxes, _ellipsoids_of(boxes, structure)


def _ellipsoids_of(boxes: np.ndarray, structure: np.ndarray) -> np.ndarray:
    out = np.zeros(boxes.shape, dtype=bool)
    comps, _ = ndi.label(boxes, structure)
    for box in ndi.find_objects(comps):
        if box is None:
            continue
        lo = np.array([s.start for s in box], dtype=float)
        hi = np.array([s.stop for s in box], dtype=float)
        centre, radius = (lo + hi - 1) / 2, np.maximum((hi - lo) / 2, 0.5)
        grid = np.ogrid[box]
        dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius, strict=True))
        out[box] |= dist <= 1.0
    return out
