"""Segmentation metrics between two binary masks ``(X, Y, Z)`` (nibabel voxel order), spacing in mm.

- :func:`dice`: 2|A∩B| / (|A| + |B|); 1.0 when both are empty.
- :func:`hd95`: 95th-percentile symmetric Hausdorff distance (mm) between the surfaces, defined as in MONAI
  (``compute_hausdorff_distance(percentile=95, directed=False)``): surface voxels are the mask minus its
  6-connected erosion (voxels on the volume border count as surface); for each surface voxel of A the distance
  to the nearest surface voxel of B, and vice versa; the result is the larger of the two 95th percentiles
  (linear interpolation). NaN when either mask is empty (the distance is undefined; MONAI gives inf/NaN too).
- :func:`volume_ml`, :func:`volume_difference_ml` (A minus B), :func:`volume_similarity`
  (1 - |Va - Vb| / (Va + Vb); 1.0 when both are empty).
- :func:`compare`: all of the above in one dict.
- :func:`best_regions`: the best label step 2 could build from a cluster map when the truth is known (a
  diagnostic of step 1 on phantoms: if its Dice is low, no refinement rule can do well).

No Django imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

__all__ = ["best_regions", "compare", "dice", "hd95", "surface_distances", "volume_difference_ml", "volume_ml",
           "volume_similarity"]


def _mask(a: Any, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != bool:
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be a 0/1 mask of integer or bool dtype, got {a.dtype}")
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f"{name} must contain only 0 and 1 (got min {a.min()}, max {a.max()})")
    return a.astype(bool, copy=False)


def _pair(a: Any, b: Any, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    ma, mb = _mask(a, names[0]), _mask(b, names[1])
    if ma.shape != mb.shape:
        raise ValueError(f"{names[0]} has shape {ma.shape} but {names[1]} has shape {mb.shape}")
    return ma, mb


def _spacing(spacing: Sequence[float], ndim: int) -> np.ndarray:
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    if sp.size != ndim:
        raise ValueError(f"spacing must have {ndim} values (one per axis), got {list(sp)}")
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing values must be positive finite mm, got {list(sp)}")
    return sp


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two 0/1 masks of equal shape; 1.0 when both are empty (perfect agreement)."""
    ma, mb = _pair(a, b)
    total = int(ma.sum()) + int(mb.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(ma, mb).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    # XOR with the 6-connected erosion (scipy's default element), border_value 0 as in MONAI.
    return mask ^ ndi.binary_erosion(mask)


def surface_distances(a: np.ndarray, b: np.ndarray,
                      spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of ``a`` to the nearest of ``b``, and from ``b`` to ``a``.

    Returns two float64 1-D arrays (empty arrays when a mask is empty).
    """
    ma, mb = _pair(a, b)
    sp = _spacing(spacing, ma.ndim)
    union = ma | mb
    if not union.any():
        return np.zeros(0), np.zeros(0)
    # Work inside the union's bounding box (+1): every surface voxel is inside it and erosion there equals
    # erosion in the full volume, since outside the box both masks are 0 anyway.
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in ndi.find_objects(union.astype(np.uint8))[0])
    pa = np.argwhere(_surface(ma[box])) * sp
    pb = np.argwhere(_surface(mb[box])) * sp
    if len(pa) == 0 or len(pb) == 0:
        return np.full(len(pa), np.inf), np.full(len(pb), np.inf)  # no surface to reach: infinitely far
    d_ab = cKDTree(pb, leafsize=32).query(pa, k=1)[0]
    d_ba = cKDTree(pa, leafsize=32).query(pb, k=1)[0]
    return d_ab, d_ba


def hd95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """95th-percentile symmetric surface Hausdorff distance in mm (MONAI's definition, see module docstring).

    Returns NaN if either mask is empty.
    """
    ma, mb = _pair(a, b)
    _spacing(spacing, ma.ndim)
    if not ma.any() or not mb.any():
        return float("nan")
    d_ab, d_ba = surface_distances(ma, mb, spacing)
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a 0/1 mask in millilitres: voxel count x voxel volume (mm^3) / 1000."""
    m = _mask(mask, "mask")
    return int(m.sum()) * float(np.prod(_spacing(spacing, m.ndim))) / 1000.0


def volume_difference_ml(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> float:
    """Signed volume difference ``V(a) - V(b)`` in ml (positive: a is larger)."""
    ma, mb = _pair(a, b)
    return volume_ml(ma, spacing) - volume_ml(mb, spacing)


def volume_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - |Va - Vb| / (Va + Vb)`` in [0, 1] (independent of spacing); 1.0 when both are empty."""
    ma, mb = _pair(a, b)
    va, vb = int(ma.sum()), int(mb.sum())
    if va + vb == 0:
        return 1.0
    return 1.0 - abs(va - vb) / (va + vb)


def compare(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """All metrics of ``pred`` against ``ref`` as a JSON-ready dict.

    Keys: ``dice``, ``hd95_mm`` (NaN if either is empty), ``volume_pred_ml``, ``volume_ref_ml``,
    ``volume_difference_ml`` (pred minus ref), ``volume_similarity``.
    """
    mp, mr = _pair(pred, ref, ("pred", "ref"))
    vp, vr = volume_ml(mp, spacing), volume_ml(mr, spacing)
    return {
        "dice": dice(mp, mr),
        "hd95_mm": hd95(mp, mr, spacing),
        "volume_pred_ml": vp,
        "volume_ref_ml": vr,
        "volume_difference_ml": vp - vr,
        "volume_similarity": volume_similarity(mp, mr),
    }


def best_regions(cluster_map: np.ndarray, truth: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Union of every region (connected component of one cluster id) lying more than half inside ``truth``.

    Step 2 builds labels from whole regions; this is the label a rule "keep what lies mostly inside" would make
    of ``cluster_map`` knowing the truth. It is a reference, not an upper bound: a region with a share inside
    between Dice/2 and 1/2 would still raise Dice, so a label from whole regions can score higher (step 2's
    own labels sometimes do).

    Args: ``cluster_map`` integer (X, Y, Z); ``truth`` 0/1 (X, Y, Z); ``connectivity`` as in
    ``generate_binary_structure`` (1 = 6 neighbours). Returns a bool mask (X, Y, Z).
    """
    cmap = np.asarray(cluster_map)
    t = _mask(truth, "truth")
    if cmap.shape != t.shape:
        raise ValueError(f"cluster_map has shape {cmap.shape}, truth has shape {t.shape}")
    structure = ndi.generate_binary_structure(cmap.ndim, connectivity)
    out = np.zeros(t.shape, dtype=bool)
    for c in np.unique(cmap[t]):
        comp, n = ndi.label(cmap == c, structure)
        inside = np.bincount(comp[t], minlength=n + 1)
        size = np.bincount(comp.ravel(), minlength=n + 1)
        keep = 2 * inside > size
        keep[0] = False
        out |= keep[comp]
    return out
