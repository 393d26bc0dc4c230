"""Volumes for the browser viewer: compact, blinded .nii.gz bytes, cached on disk by content.

The cache lives under ``MEDIA_ROOT/viewer-cache/`` keyed by the stored file's sha + kind; it is never
exposed in URLs. A missing or unreadable cache file is simply rebuilt.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings

from pipeline.core.io.nifti import load_volume, viewer_nifti_bytes


def _cache_path(sha, kind):
    return Path(settings.MEDIA_ROOT) / "viewer-cache" / sha[:2] / f"{sha}.{kind}.nii.gz"


def viewer_bytes(volume_row, kind):
    """Bytes of an ``Image`` (``kind="image"``: int16 with scaling; ``"display"``: uint8 over the 0.1-99.9
    percentile range, for the reader study), a ``Label`` (``"label"``: uint8 0/1) or a ``ClusterMap``
    (``"clusters"``: ids as uint8 when they fit, else int16)."""
    key = Path(volume_row.file).name.split(".")[0]  # stored files are named by their content's sha256
    path = _cache_path(key, kind)
    try:
        return path.read_bytes()
    except OSError:
        pass
    if kind == "label":
        vol = load_volume(volume_row.path, kind="label")
        data = (vol.data > 0).astype(np.uint8)  # overlays are shown as masks: any class counts
    elif kind == "clusters":
        vol = load_volume(volume_row.path, kind="label")
        data = vol.data
        kind = "label" if int(data.max()) <= 255 else "image"
    else:
        vol = load_volume(volume_row.path)
        data = vol.data
    compresslevel = 6 if kind == "display" else None  # uint8 compresses well, and it is cached: worth it once
    blob = viewer_nifti_bytes(data, vol.affine, kind=kind, compresslevel=compresslevel)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # atomic: a concurrent request sees no file or the whole file
    return blob
