"""MRI rendering of the limb phantom and the :class:`PhantomCase` container.

Each modality maps tissue classes to mean intensities (a lookup table), adds per-tissue texture,
partial-volume blur, a smooth multiplicative bias field and Rician noise. All modalities share one
grid and one affine (no inter-modality offsets).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pipeline.core.phantoms.anatomy import (
    BACKGROUND,
    CORE,
    CORTEX,
    FAT,
    MARROW,
    MUSCLE,
    OEDEMA,
    RIM,
    SKIN,
    make_anatomy,
    smooth_noise_field,
)
from pipeline.core.phantoms.raters import RaterStyle, default_rater_styles, draw_rater_label, stable_hash

# Mean intensity per tissue class, before texture, bias and noise (arbitrary units, max ~1000).
#   t1fsce: fat-suppressed T1 after contrast: fat and fatty marrow dark, enhancing rim bright,
#           necrotic core dark, oedema mildly bright (it enhances a little).
#   t2:     fat bright-ish, fluid-rich tissue (oedema, necrosis) bright, cortex dark.
#   t1:     plain T1 before contrast (not used by the demo; handy as a third channel).
CONTRASTS: dict[str, dict[int, float]] = {
    "t1fsce": {BACKGROUND: 0, SKIN: 350, FAT: 90, MUSCLE: 280, CORTEX: 40, MARROW: 110,
               OEDEMA: 430, RIM: 900, CORE: 150},
    "t2": {BACKGROUND: 0, SKIN: 380, FAT: 620, MUSCLE: 230, CORTEX: 35, MARROW: 560,
           OEDEMA: 780, RIM: 640, CORE: 950},
    "t1": {BACKGROUND: 0, SKIN: 500, FAT: 950, MUSCLE: 380, CORTEX: 40, MARROW: 900,
           OEDEMA: 330, RIM: 420, CORE: 300},
}
# Relative texture amplitude per tissue (tumour rim is the most heterogeneous).
TEXTURE: dict[int, float] = {BACKGROUND: 0.0, SKIN: 0.05, FAT: 0.04, MUSCLE: 0.06, CORTEX: 0.1,
                             MARROW: 0.05, OEDEMA: 0.12, RIM: 0.15, CORE: 0.08}

_NAME_RE = re.compile(r"^[A-Za-z0-9-]+$")  # no "_" : file names are "<case>_<rater>_<modality>_label"


@dataclass(frozen=True)
class PhantomConfig:
    """Imaging parameters of the phantom (defaults give a realistic-looking, moderately noisy scan).

    Attributes:
        field_of_view_mm: in-plane field of view; in-plane spacing = field_of_view_mm / size.
        slice_thickness_mm: Z spacing.
        noise_sigma: Rician noise sigma as a fraction of ``intensity_scale``.
        bias_strength: standard deviation of the log bias field (0.15 -> about +-30 % at 2 sd).
        bias_corr_mm: correlation length of the bias field.
        texture_corr_mm: correlation length of the within-tissue texture.
        blur_sigma_vox: in-plane Gaussian blur (voxels) imitating partial volume; 0 disables.
        intensity_scale: intensity of 1000 in :data:`CONTRASTS` units maps to this value.
    """

    field_of_view_mm: float = 128.0
    slice_thickness_mm: float = 4.0
    noise_sigma: float = 0.03
    bias_strength: float = 0.15
    bias_corr_mm: float = 80.0
    texture_corr_mm: float = 3.0
    blur_sigma_vox: float = 0.5
    intensity_scale: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("field_of_view_mm", "slice_thickness_mm", "bias_corr_mm", "texture_corr_mm",
                     "intensity_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PhantomConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("noise_sigma", "bias_strength", "blur_sigma_vox"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"PhantomConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class PhantomCase:
    """One synthetic case with known truth.

    Attributes:
        case_id: e.g. ``"case000"``.
        images: modality -> float32 ``(X, Y, Z)`` image.
        truth: uint8 ``(X, Y, Z)`` tumour mask (enhancing rim + necrotic core, no oedema).
        oedema: uint8 ``(X, Y, Z)`` oedema mask, disjoint from ``truth``.
        rater_labels: ``(rater, modality)`` -> uint8 ``(X, Y, Z)`` rough label drawn on that modality.
        affine: ``(4, 4)`` float64 voxel-to-world (mm) matrix shared by all arrays.
        tissue: uint8 ``(X, Y, Z)`` tissue classes (codes in ``phantoms_anatomy``), lesion included.
        anatomy: uint8 ``(X, Y, Z)`` healthy tissue classes, as if there were no lesion.
        rater_styles: rater -> the :class:`RaterStyle` used.
        seed: the seed the case was generated from.
    """

    case_id: str
    images: dict[str, np.ndarray]
    truth: np.ndarray
    oedema: np.ndarray
    rater_labels: dict[tuple[str, str], np.ndarray]
    affine: np.ndarray
    tissue: np.ndarray | None = None
    anatomy: np.ndarray | None = None
    rater_styles: dict[str, RaterStyle] = field(default_factory=dict)
    seed: int | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel sizes in mm ``(sx, sy, sz)`` (column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(X, Y, Z)``."""
        return tuple(int(v) for v in self.truth.shape)


def check_name(kind: str, name: str) -> str:
    """Validate a case/rater/modality name used in file names; returns it."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{kind} name {name!r} is invalid: use letters, digits and '-' only")
    return name


def _check_names(kind: str, names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ValueError(f"{kind}s must be a sequence of names, got the string {names!r}")
    names = tuple(check_name(kind, n) for n in names)
    if len(set(names)) != len(names):
        raise ValueError(f"{kind}s contain duplicates: {names}")
    return names


def render_modality(
    tissue: np.ndarray,
    modality: str,
    texture: np.ndarray,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    config: PhantomConfig = PhantomConfig(),  # noqa: B008 (frozen, immutable default)
) -> np.ndarray:
    """Render one MRI modality from a tissue map.

    Args:
        tissue: uint8 ``(X, Y, Z)`` tissue classes.
        modality: a key of :data:`CONTRASTS`.
        texture: float32 ``(X, Y, Z)`` unit-variance smooth field (shared between modalities: the
            same tissue heterogeneity shows on every sequence).
        spacing: voxel sizes in mm.
        rng: random generator for bias field and noise (consumed).
        config: imaging parameters.

    Returns:
        float32 ``(X, Y, Z)`` magnitude image (non-negative).
    """
    if modality not in CONTRASTS:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(CONTRASTS)}")
    n = max(CONTRASTS[modality]) + 1
    mean_lut = np.zeros(n, np.float32)
    tex_lut = np.zeros(n, np.float32)
    for code, value in CONTRASTS[modality].items():
        mean_lut[code] = value * config.intensity_scale / 1000.0
        tex_lut[code] = TEXTURE[code]
    img = mean_lut[tissue] * (1.0 + tex_lut[tissue] * texture)
    if config.blur_sigma_vox > 0:
        img = ndimage.gaussian_filter(img, sigma=(config.blur_sigma_vox, config.blur_sigma_vox, 0.0))
    if config.bias_strength > 0:
        bias = smooth_noise_field(rng, tissue.shape, spacing, config.bias_corr_mm)
        img *= np.exp(config.bias_strength * bias)
    if config.noise_sigma > 0:
        # Rician magnitude: |signal + complex Gaussian noise|.
        sigma = np.float32(config.noise_sigma * config.intensity_scale)
        real = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(img.shape, dtype=np.float32)
        img = np.hypot(real, imag)
    return img.astype(np.float32, copy=False)


def make_phantom_case(
    case_id: str = "case000",
    size: int = 128,
    depth: int = 16,
    seed: int = 0,
    modalities: Sequence[str] = ("t1fsce", "t2"),
    raters: Sequence[str] = ("r1", "r2", "r3"),
    *,
    rater_styles: Mapping[str, RaterStyle] | None = None,
    config: PhantomConfig | None = None,
) -> PhantomCase:
    """Generate one two-modality (by default) bone-tumour phantom with truth and rater labels.

    The grid is ``(size, size, depth)`` with spacing ``(fov/size, fov/size, slice_thickness)``
    (defaults 128 mm and 4 mm, i.e. 0.5*256/size mm in-plane), a diagonal positive affine and an
    origin that centres the grid in-plane plus a seed-dependent table position along Z.

    Deterministic from ``seed``; independent random streams are used for anatomy, each modality and
    each (rater, modality), so adding a modality or rater does not change the other arrays.

    Args:
        case_id: case name (letters, digits, '-').
        size: in-plane matrix size (>= 32).
        depth: number of slices (>= 5).
        seed: non-negative integer.
        modalities: names from :data:`CONTRASTS` (``"t1fsce"``, ``"t2"``, ``"t1"``).
        raters: rater names; see :func:`default_rater_styles` for their habits.
        rater_styles: optional per-rater overrides of the default styles.
        config: imaging parameters (defaults: :class:`PhantomConfig`).

    Returns:
        :class:`PhantomCase`.
    """
    check_name("case", case_id)
    modalities = _check_names("modality", modalities)
    raters = _check_names("rater", raters)
    if not modalities:
        raise ValueError("modalities is empty: need at least one modality")
    for m in modalities:
        if m not in CONTRASTS:
            raise ValueError(f"unknown modality {m!r}; known: {sorted(CONTRASTS)}")
    for name, value, low in (("size", size, 32), ("depth", depth, 5)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    config = config or PhantomConfig()
    styles = default_rater_styles(raters)
    for name, style in (rater_styles or {}).items():
        if name not in styles:
            raise ValueError(f"rater_styles names rater {name!r} which is not in raters {raters}")
        styles[name] = style

    step = config.field_of_view_mm / size
    spacing = (step, step, config.slice_thickness_mm)
    shape = (int(size), int(size), int(depth))
    anat = make_anatomy(np.random.default_rng([seed, 0]), shape, spacing)

    table_z = float(np.random.default_rng([seed, 4]).uniform(-100.0, 100.0))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(size - 1) / 2 * step, -(size - 1) / 2 * step,
                     table_z - (depth - 1) / 2 * spacing[2]]

    texture = smooth_noise_field(np.random.default_rng([seed, 3]), shape, spacing, config.texture_corr_mm)
    images = {
        m: render_modality(anat.tissue, m, texture, spacing,
                           np.random.default_rng([seed, 1, stable_hash(m)]), config)
        for m in modalities
    }
    labels = {
        (r, m): draw_rater_label(anat.truth, anat.oedema, spacing, styles[r], m,
                                 np.random.default_rng([seed, 2, stable_hash(r), stable_hash(m)]))
        for r in raters
        for m in modalities
    }
    return PhantomCase(case_id=case_id, images=images, truth=anat.truth, oedema=anat.oedema,
                       rater_labels=labels, affine=affine, tissue=anat.tissue, anatomy=anat.anatomy,
                       rater_styles=styles, seed=seed)
