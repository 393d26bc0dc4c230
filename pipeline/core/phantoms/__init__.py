"""Synthetic two-modality bone-tumour MRI phantoms with known truth and simulated rater labels.

Used by the demo, the tests and the benchmarks. Public API (implementation split over
``phantoms_anatomy`` (geometry), ``phantoms_raters`` (rough labels), ``phantoms_case`` (MRI
rendering, :class:`PhantomCase`) and ``phantoms_io`` (NIfTI + manifests)):

>>> case = make_phantom_case("case000", size=64, depth=8, seed=3)
>>> case.images["t1fsce"].shape, case.truth.dtype, case.spacing
((64, 64, 8), dtype('uint8'), (2.0, 2.0, 4.0))

Conventions: arrays are ``(X, Y, Z)`` in nibabel voxel order (Z = slice axis), images float32,
masks uint8 0/1, one shared 4x4 affine per case (diagonal, positive spacing, in mm).
"""

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
    TISSUE_NAMES,
    Anatomy,
    make_anatomy,
    smooth_noise_field,
)
from pipeline.core.phantoms.case import (
    CONTRASTS,
    PhantomCase,
    PhantomConfig,
    make_phantom_case,
    render_modality,
)
from pipeline.core.phantoms.io import (
    MANIFEST_COLUMNS,
    REFERENCE_COLUMNS,
    assign_splits,
    case_seed,
    save_nifti,
    write_phantom_dataset,
    write_reference_manifest,
)
from pipeline.core.phantoms.raters import RaterStyle, default_rater_styles, draw_rater_label

__all__ = [
    "BACKGROUND", "SKIN", "FAT", "MUSCLE", "CORTEX", "MARROW", "OEDEMA", "RIM", "CORE", "TISSUE_NAMES",
    "Anatomy", "make_anatomy", "smooth_noise_field",
    "CONTRASTS", "PhantomCase", "PhantomConfig", "make_phantom_case", "render_modality",
    "MANIFEST_COLUMNS", "REFERENCE_COLUMNS", "assign_splits", "case_seed", "save_nifti",
    "write_phantom_dataset", "write_reference_manifest",
    "RaterStyle", "default_rater_styles", "draw_rater_label",
]
