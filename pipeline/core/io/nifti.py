"""Safe NIfTI I/O and validation for uploaded MRI volumes and labels (no Django).

Everything a coordinator uploads goes through :func:`load_volume` before it is stored; it refuses anything
malformed or dangerous with a :class:`VolumeError` whose message names the file and the reason.

Conventions: volumes are numpy arrays in nibabel voxel order ``(X, Y, Z)`` (Z = slice axis, last), the
affine is nibabel's 4x4 float64 voxel-to-world (RAS+, mm) matrix, spacing is ``(sx, sy, sz)`` in mm.

Example::

    img = load_volume("t1fsce.nii.gz")                      # float32 (X, Y, Z)
    t2 = resample_to(load_volume("t2.nii.gz"), img)         # onto the T1 grid
    lab = check_label(resample_to(load_volume("lab.nii.gz", kind="label"), img, order=0))  # uint8
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from pipeline.core.io.nifti_read import GZIP_SLACK_BYTES, VolumeError, label_to_uint8, read_nifti
from pipeline.core.io.nifti_write import save_nifti_atomic, viewer_nifti_bytes

__all__ = [
    "VolumeError",
    "Volume",
    "load_volume",
    "sha256_file",
    "same_grid",
    "resample_to",
    "check_label",
    "save_nifti_atomic",
    "viewer_nifti_bytes",
    "DEFAULT_MAX_VOXELS",
    "GZIP_SLACK_BYTES",
]

#: 512 Mi voxels (e.g. 1024 x 1024 x 512); about 2 GiB as float32.
DEFAULT_MAX_VOXELS = 1024 * 1024 * 512


@dataclass
class Volume:
    """A validated 3D volume.

    ``data``: (X, Y, Z) array, squeezed to 3D. float32 for ``kind="image"``; for ``kind="label"`` the
    on-disk dtype (native byte order), or float64 if the header applies scaling.
    ``affine``: (4, 4) float64 voxel-to-world. ``spacing``: voxel sizes in mm from the affine's columns.
    ``filename``: the name used in messages. ``original_dtype``: on-disk dtype name, e.g. ``"int16"``.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    filename: str
    original_dtype: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def intensity_range(self) -> tuple[float, float]:
        """(min, max) of ``data`` as Python floats."""
        return float(self.data.min()), float(self.data.max())


def load_volume(
    path: str | os.PathLike,
    *,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    name: str | None = None,
    kind: Literal["image", "label"] = "image",
) -> Volume:
    """Load and validate one single-file NIfTI-1/NIfTI-2 volume (.nii or .nii.gz; gzip is detected from
    the content, not the extension).

    Parameters
    ----------
    path : file to read.
    max_voxels : refuse headers claiming more voxels than this (checked before any data is read).
    name : name used in error messages and stored in ``Volume.filename`` (uploads arrive as temp files);
        default ``str(path)``.
    kind : ``"image"`` converts to float32; ``"label"`` keeps the stored integer dtype so that
        :func:`check_label` can judge the values.

    Raises
    ------
    VolumeError : not NIfTI / unparseable, truncated file, corrupt or truncated gzip, decompressed size over
        what the header implies + ``GZIP_SLACK_BYTES`` (gzip bomb), fewer than 3 or more than 3 non-singleton
        dimensions (a 4D file with one volume is squeezed), any dim <= 0, zero/negative/non-finite spacing,
        more than ``max_voxels`` voxels, non-finite or singular affine, non-numeric datatype,
        NaN/inf voxel values.
    """
    filename = str(name) if name is not None else os.fspath(path)
    if kind not in ("image", "label"):
        raise VolumeError(filename, f"kind must be 'image' or 'label', got {kind!r}")
    raw = read_nifti(path, max_voxels=max_voxels, filename=filename)
    data = raw.data
    if data.dtype.kind == "f":
        # min/max propagate NaN and expose +-inf without a full-size boolean temporary.
        lo, hi = (data.min(), data.max()) if data.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise VolumeError(filename, "contains non-finite voxel values (NaN or inf)")
    if kind == "image" and data.dtype != np.float32:
        data = data.astype(np.float32)
        if data.size and not (np.isfinite(data.min()) and np.isfinite(data.max())):
            raise VolumeError(filename, "voxel values exceed the float32 range")
    return Volume(data, raw.affine, raw.spacing, filename, raw.original_dtype)


def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def same_grid(a: Volume, b: Volume, atol: float = 1e-3) -> bool:
    """True when ``a`` and ``b`` have the same shape and element-wise close affines (``atol`` in mm)."""
    return a.shape == b.shape and bool(np.allclose(a.affine, b.affine, rtol=0.0, atol=atol))


def resample_to(vol: Volume, ref: Volume, *, order: int = 1, atol: float = 1e-3) -> Volume:
    """Resample ``vol`` onto ``ref``'s grid (shape and affine) in world coordinates.

    ``order``: spline order, 1 (trilinear) for intensities, 0 (nearest) for labels so values stay in the
    label set. Points outside ``vol`` become 0. Output dtype equals ``vol.data.dtype``. When the grids
    already match (:func:`same_grid` with ``atol``) the data is copied unchanged and ``ref``'s affine taken.
    """
    if not 0 <= order <= 5:
        raise VolumeError(vol.filename, f"resampling order must be 0..5, got {order}")
    if same_grid(vol, ref, atol=atol):
        data = vol.data.copy()
    else:
        src = vol.data
        if src.dtype.kind in "iu" and src.dtype.itemsize == 8:
            src = src.astype(np.int32 if src.dtype.kind == "i" else np.uint32)  # nibabel refuses int64
        header = nib.Nifti1Header()
        header.set_data_dtype(src.dtype)
        img = nib.Nifti1Image(src, vol.affine, header=header)
        out = resample_from_to(img, (ref.shape, ref.affine), order=order, mode="constant", cval=0.0)
        data = np.asarray(out.dataobj).astype(vol.data.dtype, copy=False)
    return Volume(data, ref.affine.copy(), ref.spacing, vol.filename, vol.original_dtype)


def check_label(vol: Volume) -> np.ndarray:
    """Return ``vol.data`` as a uint8 (X, Y, Z) label map.

    Integer values 0..255 are accepted (binary masks and multi-class/cluster maps; value 2 is fine).
    Refuses (``VolumeError`` naming the file) non-integer values such as 0.5, negative values, values
    above 255 and non-finite values.
    """
    return label_to_uint8(vol.data, vol.filename)
