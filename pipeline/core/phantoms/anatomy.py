"""Geometry of the limb phantom: healthy tissue classes plus a bone tumour with oedema.

Everything here works on a voxel grid in nibabel order ``(X, Y, Z)`` (Z = slice axis, last) with
physical sizes in mm, so the anatomy looks the same at every matrix size: the field of view is fixed
and only the sampling changes. Public entry points: :func:`smooth_noise_field` (reused for bias
fields, texture and rater wobble) and :func:`make_anatomy`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue class codes of the integer tissue maps (uint8).
BACKGROUND, SKIN, FAT, MUSCLE, CORTEX, MARROW, OEDEMA, RIM, CORE = range(9)
TISSUE_NAMES: dict[int, str] = {
    BACKGROUND: "background", SKIN: "skin", FAT: "fat", MUSCLE: "muscle", CORTEX: "cortex",
    MARROW: "marrow", OEDEMA: "oedema", RIM: "rim", CORE: "core",
}


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps of one phantom, all ``(X, Y, Z)``.

    Attributes:
        anatomy: uint8 healthy tissue classes (SKIN..MARROW) as if there were no lesion.
        tissue: uint8 final classes: ``anatomy`` with OEDEMA, RIM and CORE painted on top.
        truth: uint8 0/1 tumour mask (rim + core, oedema excluded).
        oedema: uint8 0/1 peritumoural oedema, disjoint from ``truth``.
        tumour_slices: ``(first, last)`` Z indices (inclusive) that contain tumour.
    """

    anatomy: np.ndarray
    tissue: np.ndarray
    truth: np.ndarray
    oedema: np.ndarray
    tumour_slices: tuple[int, int]


def _axis_weights(n: int, step: float, corr_mm: float) -> np.ndarray:
    """Gaussian RBF weights ``(n, n_nodes)`` from coarse nodes spaced ``corr_mm`` to ``n`` samples."""
    pos = np.arange(n) * step
    # Nodes overhang both ends by two correlation lengths so the field has no edge effects.
    nodes = np.arange(-2 * corr_mm, pos[-1] + 2 * corr_mm + 1e-9, corr_mm)
    return np.exp(-0.5 * ((pos[:, None] - nodes[None, :]) / (0.7 * corr_mm)) ** 2)


def smooth_noise_field(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    corr_mm: float | tuple[float, float, float],
) -> np.ndarray:
    """Smooth Gaussian random field with zero mean and unit variance at every voxel.

    Built separably: i.i.d. normal values on a coarse node grid (one node per correlation length)
    are blended with Gaussian RBF weights along each axis. That is three small matrix products
    instead of a full-volume convolution, so a 256x256x32 field costs a few tens of ms, and the
    exact per-voxel variance (a separable product) is divided out.

    Args:
        rng: random generator (consumed).
        shape: output ``(X, Y, Z)``.
        spacing: voxel size in mm per axis.
        corr_mm: correlation length in mm (scalar or per axis); must be > 0.

    Returns:
        float32 array of ``shape``.
    """
    corr = np.broadcast_to(np.asarray(corr_mm, dtype=float), (3,))
    if np.any(corr <= 0):
        raise ValueError(f"corr_mm must be > 0, got {corr_mm!r}")
    weights = [_axis_weights(n, s, c) for n, s, c in zip(shape, spacing, corr, strict=True)]
    coarse = rng.standard_normal(tuple(w.shape[1] for w in weights))
    field = coarse
    for w in weights:
        # Contract the leading coarse axis and append the fine axis at the end: after three passes
        # the axes are back in (X, Y, Z) order.
        field = np.tensordot(field, w, axes=([0], [1]))
    norms = [np.sqrt((w**2).sum(axis=1)) for w in weights]
    field /= norms[0][:, None, None] * norms[1][None, :, None] * norms[2][None, None, :]
    return field.astype(np.float32)


def mask_bbox(mask: np.ndarray, pad: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """Bounding box of a non-empty mask, padded and clipped to the array."""
    out = []
    for axis, p in enumerate(pad):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(idx[0]) - p, 0), min(int(idx[-1]) + p + 1, mask.shape[axis])))
    return tuple(out)


def make_anatomy(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> Anatomy:
    """Draw a limb cross-section extruded along Z with a bone tumour breaking through the cortex.

    Layout (all sizes in mm, drawn from ``rng``): limb outline = ellipse-like curve of radius
    40-50 with 2nd/3rd angular harmonics, slowly tapering, drifting and twisting along Z; skin
    (>= 1.5), subcutaneous fat (4-8, thicker on one side), muscle with 3-5 radial fat septa; an
    off-centre long bone (outer radius 10-14) with a cortical ring (2.5-4, at least 1.5 voxels so
    it survives coarse grids) around fatty marrow. The tumour is an ellipsoid (in-plane semi-axes
    11-20) centred inside the cortex, roughened by a smooth noise field, limited to muscle and bone,
    covering 35-65 % of the slices with at least one clean slice at each end; its necrotic core is
    an inner noisy level set and oedema is a noisy halo in muscle and marrow.

    Args:
        rng: random generator (consumed).
        shape: ``(X, Y, Z)``; X, Y >= 32 and Z >= 5.
        spacing: voxel sizes in mm.

    Returns:
        :class:`Anatomy`.
    """
    nx, ny, nz = shape
    sx, sy, sz = spacing
    if nx < 32 or ny < 32 or nz < 5:
        raise ValueError(f"phantom shape {shape} too small: need X, Y >= 32 and Z >= 5")

    # Physical coordinates centred on the grid; t in [-1, 1] runs along Z.
    x = ((np.arange(nx) - (nx - 1) / 2) * sx)[:, None, None]
    y = ((np.arange(ny) - (ny - 1) / 2) * sy)[None, :, None]
    t = np.linspace(-1.0, 1.0, nz)[None, None, :]

    # --- limb outline ---------------------------------------------------------------------------
    r0 = rng.uniform(40, 50)
    taper, twist = rng.uniform(-0.05, 0.05), rng.uniform(-0.2, 0.2)
    cx = rng.uniform(-3, 3) + rng.uniform(-2, 2) * t
    cy = rng.uniform(-3, 3) + rng.uniform(-2, 2) * t
    dx, dy = x - cx, y - cy
    r = np.sqrt(dx**2 + dy**2)
    theta = np.arctan2(dy, dx)
    harm = np.ones_like(theta)
    for k, amp in ((2, rng.uniform(0.03, 0.08)), (3, rng.uniform(0.0, 0.03))):
        harm = harm + amp * np.cos(k * (theta - twist * t) + rng.uniform(0, 2 * np.pi))
    depth_mm = r0 * (1 + taper * t) * harm - r  # distance inward from the skin surface (approx.)

    skin = max(1.5, 0.9 * sx)
    fat = rng.uniform(4, 8) * (1 + 0.4 * np.cos(theta - rng.uniform(0, 2 * np.pi)))
    anatomy = np.zeros(shape, dtype=np.uint8)
    anatomy[depth_mm >= 0] = SKIN
    anatomy[depth_mm >= skin] = FAT
    muscle_zone = depth_mm >= skin + fat
    anatomy[muscle_zone] = MUSCLE
    # Intermuscular fat septa: thin radial lines (at least ~one voxel wide so they do not alias away).
    half_w = max(0.75, 0.45 * sx)
    for ang in rng.uniform(0, 2 * np.pi, size=rng.integers(3, 6)):
        along = dx * np.cos(ang) + dy * np.sin(ang)
        across = -dx * np.sin(ang) + dy * np.cos(ang)
        anatomy[muscle_zone & (np.abs(across) < half_w) & (along > 0.45 * r0)] = FAT

    # --- bone -------------------------------------------------------------------------------------
    off_r, off_a = rng.uniform(0, 0.12) * r0, rng.uniform(0, 2 * np.pi)
    bx, by = cx + off_r * np.cos(off_a), cy + off_r * np.sin(off_a)
    rb = rng.uniform(10, 14)
    aspect, b_ang = rng.uniform(0.88, 1.0), rng.uniform(0, np.pi)
    u = (x - bx) * np.cos(b_ang) + (y - by) * np.sin(b_ang)
    v = -(x - bx) * np.sin(b_ang) + (y - by) * np.cos(b_ang)
    rho_b = np.sqrt(u**2 + (v / aspect) ** 2)  # ~mm from bone axis
    cortex_t = max(rng.uniform(2.5, 4.0), 1.5 * sx)
    anatomy[rho_b <= rb] = CORTEX
    anatomy[rho_b <= rb - cortex_t] = MARROW

    # --- tumour -----------------------------------------------------------------------------------
    span = int(rng.integers(max(3, round(0.35 * nz)), max(4, round(0.65 * nz)) + 1))
    span = min(span, nz - 2)
    z0 = int(rng.integers(1, nz - span))  # first tumour slice; >= 1 clean slice at both ends
    zc = z0 + (span - 1) / 2
    kc = int(round(zc))
    tc_dir = rng.uniform(0, 2 * np.pi)
    # Centre inside the cortical ring: the tumour arises in bone and breaks through into muscle.
    dist = rb - cortex_t * rng.uniform(0.3, 0.7)
    tcx = float(bx[0, 0, kc]) + dist * np.cos(tc_dir)  # bx, by have shape (1, 1, Z)
    tcy = float(by[0, 0, kc]) + dist * np.sin(tc_dir)
    a = rng.uniform(11, 20)
    b = a * rng.uniform(0.6, 1.0)
    c = span / 2 * sz
    rot = rng.uniform(0, np.pi)

    # Work inside the box that can hold tumour + oedema (q < 1.6) to keep the noise fields small.
    ext = 1.6 * max(a, b)
    ix = np.flatnonzero(np.abs(x[:, 0, 0] - tcx) <= ext)
    iy = np.flatnonzero(np.abs(y[0, :, 0] - tcy) <= ext)
    if ix.size == 0 or iy.size == 0:  # cannot happen with the ranges above; guard anyway
        raise RuntimeError("tumour centre fell outside the field of view")
    zlo, zhi = max(z0 - 1, 0), min(z0 + span + 1, nz)
    box = (slice(ix[0], ix[-1] + 1), slice(iy[0], iy[-1] + 1), slice(zlo, zhi))
    xb, yb = x[box[0]] - tcx, y[:, box[1]] - tcy
    zb = ((np.arange(zlo, zhi) - zc) * sz)[None, None, :]
    ub = xb * np.cos(rot) + yb * np.sin(rot)
    vb = -xb * np.sin(rot) + yb * np.cos(rot)
    q = np.sqrt((ub / a) ** 2 + (vb / b) ** 2 + (zb / c) ** 2)
    bshape = q.shape
    base = anatomy[box]
    # Lesions displace septa, so allow the whole subfascial compartment, not only MUSCLE voxels.
    inner = muscle_zone[box]
    allowed = inner | (base == CORTEX) | (base == MARROW)
    zidx = np.arange(zlo, zhi)[None, None, :]
    in_span = (zidx >= z0) & (zidx < z0 + span)
    q_t = q + 0.18 * smooth_noise_field(rng, bshape, spacing, (6.0, 6.0, 2 * sz))
    # The noise only roughens the border: the inner half of the ellipsoid is always tumour.
    tum = ((q_t < 1.0) | (q < 0.5)) & allowed & in_span
    # Guarantee every span slice has tumour: fall back to the plain ellipsoid (and at least the
    # centre column) where the noise erased a slice.
    centre = (np.abs(xb) <= max(a, sx) / 2) & (np.abs(yb) <= max(b, sy) / 2) & in_span & allowed
    for k in range(bshape[2]):
        if in_span[0, 0, k] and not tum[..., k].any():
            tum[..., k] = ((q[..., k] < 1.0) | centre[..., k]) & allowed[..., k]
    # The tumour must involve marrow, cortex and muscle (it breaks through the cortex). On coarse
    # grids the rough shape can miss a thin layer: then add that layer's voxels of the plain
    # ellipsoid, or failing that its voxel nearest the tumour centre on the central slice.
    r2 = (xb**2 + yb**2) * np.ones_like(q)
    mid = kc - zlo
    for region in (base == MARROW, base == CORTEX, inner & (base != CORTEX) & (base != MARROW)):
        if (tum & region).any():
            continue
        tum |= (q < 1.0) & region & in_span
        if not (tum & region).any() and region[..., mid].any():
            i, j = np.unravel_index(np.argmin(np.where(region[..., mid], r2[..., mid], np.inf)), bshape[:2])
            tum[i, j, mid] = True
    q_core = q + 0.12 * smooth_noise_field(rng, bshape, spacing, (5.0, 5.0, 2 * sz))
    core = tum & (q_core < rng.uniform(0.45, 0.65))
    if not core.any() or core.sum() == tum.sum():  # tiny grids: keep both a core and a rim
        core[:] = False
        core.flat[np.argmin(np.where(tum, q, np.inf))] = True
    q_oed = q + 0.25 * smooth_noise_field(rng, bshape, spacing, (8.0, 8.0, 2 * sz))
    oed = (q_oed < rng.uniform(1.25, 1.45)) & (inner | (base == MARROW)) & (base != CORTEX) & ~tum

    truth = np.zeros(shape, dtype=np.uint8)
    oedema = np.zeros(shape, dtype=np.uint8)
    truth[box] = tum
    oedema[box] = oed
    tissue = anatomy.copy()
    tb = tissue[box]  # view: paint lesion classes into the box
    tb[oed] = OEDEMA
    tb[tum] = RIM
    tb[core] = CORE
    zs = np.flatnonzero(truth.any(axis=(0, 1)))
    return Anatomy(anatomy=anatomy, tissue=tissue, truth=truth, oedema=oedema,
                   tumour_slices=(int(zs[0]), int(zs[-1])))
