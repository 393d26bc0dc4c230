"""Region growing for step 2 (used by :mod:`pipeline.core.refinement`): the connected component of
``cluster_map == cluster`` around seed voxels, found in boxes around the lesion instead of the whole volume.

Exactness: ``scipy.ndimage.label`` of the cluster inside a box; a component that does not touch an inner face of
the box (one not on the volume border) is the whole component; one that already has more voxels than the limit
is rejected whatever lies outside. Only the others are looked at again, in a larger box around them.

Arrays: ``(X, Y, Z)``; coordinates are (x, y, z) voxel indices. No Django imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

_MIN_MARGIN = 4  # least voxels added around a lesion's box on the first try (then doubled)
_MARGIN_DIV = 4  # first margin: a quarter of the lesion's extent (at least _MIN_MARGIN)
_FEW = 8  # up to this many components: per-component counts/writes; beyond: one histogram/lookup pass


@dataclass(frozen=True)
class RegionReport:
    """One grown region: ``cluster`` id, the ``seed`` (x, y, z) it was grown from, its size ``n_voxels``, whether
    it was ``kept``, and whether the size is ``exact`` (False only for rejected regions, whose growth stops once
    they are known to exceed the limit: n_voxels is then a lower bound). ``inside``: the share of the region's
    voxels inside the combined expert label, or None when it was rejected for its size before that was measured.
    """

    cluster: int
    seed: tuple[int, int, int]
    n_voxels: int
    kept: bool
    exact: bool
    inside: float | None = None

    @property
    def reason(self) -> str:
        """``"kept"`` | ``"too_large"`` (over ``max_ratio`` x lesion) | ``"mostly_outside"`` (under ``min_inside``)."""
        if self.kept:
            return "kept"
        return "too_large" if self.inside is None else "mostly_outside"


def _one_per_label(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``ids`` (1-D): one uniformly random position per distinct value, in increasing value order."""
    order = np.argsort(ids, kind="stable")  # positions grouped by value
    _, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
    picks = starts + np.minimum((rng.random(len(counts)) * counts).astype(np.int64), counts - 1)
    return order[picks]


def grow_regions(cmap: np.ndarray, cluster: int, voxels: np.ndarray, box: tuple[slice, ...], limit: float,
                 structure: np.ndarray, reach: np.ndarray, out: np.ndarray, rng: np.random.Generator,
                 one_seed: bool, inside: np.ndarray | None = None, min_inside: float = 0.0,
                 known: np.ndarray | None = None) -> list[RegionReport]:
    """Grow regions of ``cmap == cluster`` from the cluster's voxels inside one lesion and write the kept ones
    (at most ``limit`` voxels, and at least ``min_inside`` of them inside ``inside``) into ``out``.

    Args: ``cmap`` (X, Y, Z) integer cluster map; ``voxels`` (P, 3) int coordinates of the cluster's voxels in
    the lesion; ``box`` the lesion's bounding box (slices); ``structure`` 3x3x3 bool element; ``reach`` (3,)
    bool, axes the element connects (Z is False in per-slice mode, so boxes never grow along it); ``out``
    (X, Y, Z) bool, updated in place; ``rng`` picks the seed voxels; ``inside`` (X, Y, Z) bool combined expert
    label, for each region's ``inside`` share (None: not measured, ``min_inside`` must then be 0); ``known``
    (X, Y, Z) bool, where the input says what the voxel is: the share is ``|region & inside| / |region & known|``
    (None: everywhere; a region with no known voxel counts as inside).

    ``one_seed``: a single random voxel is the seed. Otherwise one random voxel of each component met in the
    first box is a seed; that reaches every piece of the cluster in the lesion with one seed per region.
    A seed's component in the box is final if it does not touch an inner face; if it already has more than
    ``limit`` voxels it is rejected (size then a lower bound); else it is looked at again in a box around its
    known part with a margin that doubles each time (the known part grows every round, so this ends).
    A rejected region met again from another piece is merged into its report when its seed is in the box.
    """
    shape = np.array(cmap.shape)
    lo = np.array([s.start for s in box])
    hi = np.array([s.stop for s in box])
    # First box: the lesion's box plus a margin on each axis that has neighbours (not Z in per_slice_2d).
    step = np.where(reach, np.maximum(_MIN_MARGIN, (hi - lo) // _MARGIN_DIV), 0)
    lo, hi = np.maximum(lo - step, 0), np.minimum(hi + step, shape)
    pending = voxels[[int(rng.integers(len(voxels)))]] if one_seed else None
    reports: list[RegionReport] = []
    bounded: dict[tuple[int, ...], int] = {}  # seed -> index in reports, for rejects whose size is a bound
    while pending is None or len(pending):
        crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        mask = cmap[crop] == cluster
        comp, n_comp = ndi.label(mask, structure)
        if pending is None:
            pending = voxels[_one_per_label(comp[tuple((voxels - lo).T)], rng)]
        pending_labs = comp[tuple((pending - lo).T)]
        wanted = np.unique(pending_labs)
        sizes = _sizes(comp, mask, n_comp, wanted)
        inside_counts = None if inside is None else _sizes(comp, mask & inside[crop], n_comp, wanted)
        known_counts = sizes if known is None or inside is None else _sizes(comp, mask & known[crop], n_comp, wanted)
        touching = _touching(comp, n_comp, lo, hi, shape, reach)
        groups: dict[int, list[tuple[int, ...]]] = {}
        for s, lab in zip(pending.tolist(), pending_labs.tolist(), strict=True):
            groups.setdefault(lab, []).append(tuple(s))
        # A reject from a smaller box (size only a bound) may turn out to be a pending seed's region.
        bounded_at = {int(comp[tuple(np.array(s) - lo)]): i for s, i in bounded.items()
                      if np.all(np.array(s) >= lo) and np.all(np.array(s) < hi)}
        kept: list[int] = []
        still: list[tuple[int, ...]] = []
        for lab, group in groups.items():
            n_vox, exact = int(sizes[lab]), not touching[lab]
            seed = (group[0][0], group[0][1], group[0][2])
            if lab in bounded_at:
                i = bounded_at[lab]
                reports[i] = RegionReport(cluster, reports[i].seed, max(n_vox, reports[i].n_voxels), False, exact)
            elif n_vox > limit:
                if not exact:
                    bounded[seed] = len(reports)
                reports.append(RegionReport(cluster, seed, n_vox, False, exact))
            elif not exact:
                still.extend(group)  # may go on outside the box and still be small enough: look further
            else:
                share = None if inside_counts is None else (
                    float(inside_counts[lab] / known_counts[lab]) if known_counts[lab] else 1.0)
                keep = share is None or share >= min_inside
                if keep:
                    kept.append(lab)
                reports.append(RegionReport(cluster, seed, n_vox, keep, True, share))
        view = out[crop]
        if len(kept) <= _FEW:
            for lab in kept:
                np.logical_or(view, comp == lab, out=view)
        else:
            keep = np.zeros(n_comp + 1, dtype=bool)
            keep[kept] = True
            np.logical_or(view, keep[comp], out=view)
        pending = np.array(still, dtype=np.int64).reshape(-1, 3)
        if len(pending):
            # Next box: around what is known of the pending regions, with a margin doubling each time.
            first, last = _extent(np.isin(comp, np.unique(comp[tuple((pending - lo).T)])))
            step = step * 2
            lo, hi = np.maximum(lo + first - step, 0), np.minimum(lo + last + step, shape)
    return reports


def _sizes(comp: np.ndarray, mask: np.ndarray, n_comp: int, wanted: np.ndarray) -> np.ndarray:
    """Voxel counts of ``mask`` per component label (int64, length n_comp + 1); only ``wanted`` labels are filled
    when there are few of them (a count per component is cheaper than a histogram of the whole box)."""
    if len(wanted) > _FEW:
        return np.bincount(comp[mask], minlength=n_comp + 1)
    sizes = np.zeros(n_comp + 1, dtype=np.int64)
    for lab in wanted:
        sizes[lab] = np.count_nonzero((comp == lab) & mask)
    return sizes


def _touching(comp: np.ndarray, n_comp: int, lo: np.ndarray, hi: np.ndarray, shape: np.ndarray,
              reach: np.ndarray) -> np.ndarray:
    """Bool per component label: does it touch an inner face of the box (one not on the volume border)?"""
    touching = np.zeros(n_comp + 1, dtype=bool)
    for ax in np.flatnonzero(reach):
        if lo[ax] > 0:
            touching[np.take(comp, 0, axis=ax)] = True
        if hi[ax] < shape[ax]:
            touching[np.take(comp, -1, axis=ax)] = True
    touching[0] = False
    return touching


def _extent(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-open bounding box ``(first, last)`` per axis of the True voxels of a non-empty 3D bool array."""
    first, last = np.zeros(3, np.int64), np.zeros(3, np.int64)
    for ax in range(3):
        hit = part.any(axis=tuple(a for a in range(3) if a != ax))
        first[ax] = np.argmax(hit)
        last[ax] = len(hit) - np.argmax(hit[::-1])
    return first, last
