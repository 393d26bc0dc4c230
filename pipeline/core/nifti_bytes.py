"""Serialising a volume to gzip-compressed NIfTI-1 bytes in memory (no Django)."""

import gzip
import io

import nibabel as nib
import numpy as np


def nifti_gz_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    """``data`` (X, Y, Z) + 4x4 ``affine`` -> deterministic .nii.gz bytes (no file name, mtime 0 in gzip)."""
    image = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    raw = image.to_bytes()
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
        gz.write(raw)
    return buffer.getvalue()
