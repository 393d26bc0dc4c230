"""Volumes for the reader's viewer: opaque per-(item, volume) URL keys, blinded bytes, cached conversions,
and the slice to open at.

URL keys are HMACs of (item id, what) under the project secret and a per-study secret: unguessable, different
for every item and side, and nothing in them is stable per arm. The bytes come from
:func:`pipeline.datasets.viewer.viewer_bytes` (blinded, compact, cached by content; never exposed in URLs).
"""

import hmac

import numpy as np
from django.utils.crypto import salted_hmac

from pipeline.core.io.nifti import load_volume

SIDES = ("left", "right")
_SALT = "labelgen.evaluation.volume"


def volume_key(item, what):
    """The opaque URL key of volume ``what`` ("left", "right" or "base:<modality>") of ``item``."""
    study = item.assignment.study
    return salted_hmac(_SALT + study.secret, f"{item.pk}:{what}", algorithm="sha256").hexdigest()[:40]


def resolve_key(item, key, modalities):
    """The ``what`` that ``key`` stands for on ``item``, or None (constant-time comparisons)."""
    found = None
    for what in [*SIDES, *(f"base:{m}" for m in modalities)]:
        if hmac.compare_digest(volume_key(item, what), key):
            found = what
    return found


def focus_of(masks, affine):
    """Where to open the viewer: the axial (Z) slice with the largest union of ``masks`` (each (X, Y, Z)),
    at the in-plane centre of mass of that slice's union; the volume centre when all masks are empty.

    Returns ``{"voxel": [i, j, k], "mm": [x, y, z]}`` (mm via ``affine``, 4x4 voxel-to-world).
    """
    union = np.zeros(masks[0].shape, dtype=bool)
    for m in masks:
        if m.shape != union.shape:
            raise ValueError(f"overlay shapes differ: {m.shape} vs {union.shape}")
        union |= m > 0
    per_slice = union.sum(axis=(0, 1))
    if per_slice.max() == 0:
        voxel = [(n - 1) / 2 for n in union.shape]
    else:
        k = int(np.argmax(per_slice))  # first of equal maxima: deterministic
        ii, jj = np.nonzero(union[:, :, k])
        voxel = [float(ii.mean()), float(jj.mean()), float(k)]
    mm = (np.asarray(affine, dtype=np.float64) @ np.array([*voxel, 1.0]))[:3]
    return {"voxel": [round(v, 3) for v in voxel], "mm": [round(float(v), 3) for v in mm]}


def item_focus(item):
    """The cached focus of ``item`` (computed from its two overlays on first use, then stored)."""
    if item.focus is None:
        sc = item.study_case
        labels = [sc.prediction_for(item.arm_left), sc.prediction_for(item.arm_right)]
        vols = [load_volume(lab.path, kind="label") for lab in labels]
        item.focus = focus_of([v.data for v in vols], vols[0].affine)
        type(item).objects.filter(pk=item.pk).update(focus=item.focus)
    return item.focus


def prepare_study_volumes(study):
    """Convert every volume the study's readers will fetch (each case's images as 8-bit, each arm's prediction
    as a mask) into the viewer cache, so a reader's first view of an item waits for no conversion.
    Returns the number of volumes prepared."""
    from pipeline.datasets.viewer import viewer_bytes
    from pipeline.models import Image, Label

    cases = study.study_cases.values_list("case_id", flat=True)
    sets = study.arms.values_list("prediction_set_id", flat=True)
    n = 0
    for image in Image.objects.filter(case_id__in=cases):
        viewer_bytes(image, "display")
        n += 1
    for label in Label.objects.filter(case_id__in=cases, prediction_set_id__in=sets):
        viewer_bytes(label, "label")
        n += 1
    return n
