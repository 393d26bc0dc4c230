"""One DICOM image series -> one validated :class:`~pipeline.core.io.nifti.Volume` (no Django).

highdicom builds the volume (pixel decoding through pydicom's plugins, the modality rescale, the affine from
ImagePositionPatient/ImageOrientationPatient/PixelSpacing); labelgen first checks the series itself, so that a
refusal names what is wrong and where (a missing slice between two positions, a duplicated one, mixed sizes),
where highdicom would only say the series is not a regular volume.

Conventions (as everywhere in labelgen): ``data`` is ``(X, Y, Z)`` = (column, row, slice), the affine maps
those indices to RAS+ mm. DICOM's patient coordinates are LPS+, so the affine is ``diag(-1, -1, 1) @ LPS``.
Slices are ordered along the slice normal ``row x column`` (ascending), the order the scanner stacked them in;
voxels are never resampled or reoriented, so an oblique series keeps its oblique affine.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from pipeline.core.io.dicom_files import IMAGE_SOP_CLASSES, DicomSeries
from pipeline.core.io.nifti import DEFAULT_MAX_VOXELS, Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SeriesError(ValueError):
    """A series that cannot become a volume; ``str()`` is the reason (the caller names patient and series)."""


def read_series(series: DicomSeries, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> Volume:
    """Validate ``series`` and return its voxels as float32 ``(X, Y, Z)`` with rescale applied and a RAS affine."""
    import highdicom as hd

    if series.kind != "image":
        raise SeriesError(f"is {series.sop_class_name} ({series.modality or 'no modality'}), not MR or CT image "
                          "storage")
    sop_classes = {str(h.get("SOPClassUID", "")) for h in series.headers}
    if len(sop_classes) > 1:
        raise SeriesError(f"mixes SOP classes ({', '.join(sorted(IMAGE_SOP_CLASSES.get(c, c) for c in sop_classes))})")
    _check_decodable(series)
    frames = [int(h.get("NumberOfFrames", 1) or 1) for h in series.headers]
    if max(frames) > 1 or "Enhanced" in series.sop_class_name:
        if len(series.files) > 1:
            raise SeriesError(f"holds {len(series.files)} multi-frame instances; labelgen reads one multi-frame "
                              "instance per series")
        header = series.headers[0]
        _check_size((frames[0], int(header.Rows), int(header.Columns)), max_voxels)
        try:
            volume = hd.imread(series.files[0]).get_volume(dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - highdicom's geometry checks raise ValueError/RuntimeError
            raise SeriesError(f"multi-frame instance is not a regular 3D volume ({exc})") from None
    else:
        _check_stack(series)
        _check_size((len(series.files), int(series.headers[0].Rows), int(series.headers[0].Columns)), max_voxels)
        datasets = []
        for path in series.files:
            try:
                datasets.append(pydicom.dcmread(path))
            except Exception as exc:  # noqa: BLE001
                raise SeriesError(f"file {path.name} is unreadable ({type(exc).__name__}: {exc})") from None
        try:
            volume = hd.get_volume_from_series(datasets, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001
            raise SeriesError(f"cannot be read as a volume ({type(exc).__name__}: {exc})") from None
    return to_labelgen(volume, name=series.label, original_dtype=_stored_dtype(series.headers[0]))


def to_labelgen(volume, *, name: str, original_dtype: str = "float32") -> Volume:
    """A highdicom ``Volume`` (array ``(slice, row, column)``, LPS affine) as a labelgen ``Volume``."""
    array, affine = np.asarray(volume.array), np.asarray(volume.affine, dtype=np.float64)
    if array.ndim != 3:
        raise SeriesError(f"has {array.ndim - 3} channel dimension(s); labelgen stores one 3D volume per series")
    normal = np.cross(affine[:3, 2], affine[:3, 1])  # row direction (columns axis) x column direction (rows axis)
    if array.shape[0] > 1 and np.dot(affine[:3, 0], normal) < 0:  # stack ascending along the slice normal
        array = array[::-1]
        affine = affine @ _flip_first_axis(array.shape[0])
    data = np.ascontiguousarray(np.transpose(array, (2, 1, 0)), dtype=np.float32)
    permute = np.zeros((4, 4))
    permute[0, 2] = permute[1, 1] = permute[2, 0] = permute[3, 3] = 1.0  # (X, Y, Z) -> (slice, row, column)
    ras = LPS_TO_RAS @ affine @ permute
    spacing = tuple(float(s) for s in np.linalg.norm(ras[:3, :3], axis=0))
    return Volume(data=data, affine=ras, spacing=spacing, filename=name, original_dtype=original_dtype)


def from_labelgen(data: np.ndarray, affine: np.ndarray, frame_of_reference_uid: str | None = None):
    """A labelgen ``(X, Y, Z)`` array with its RAS affine as a highdicom ``Volume`` (the inverse of
    :func:`to_labelgen`)."""
    import highdicom as hd

    permute = np.zeros((4, 4))
    permute[0, 2] = permute[1, 1] = permute[2, 0] = permute[3, 3] = 1.0
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64) @ permute
    return hd.Volume(np.ascontiguousarray(np.transpose(data, (2, 1, 0))), lps, "PATIENT",
                     frame_of_reference_uid=frame_of_reference_uid)


def _flip_first_axis(n):
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, n - 1
    return flip


def _check_decodable(series):
    transfer_syntaxes = {str(h.file_meta.get("TransferSyntaxUID", "")) for h in series.headers if h.file_meta}
    for ts in sorted(transfer_syntaxes - {""}):
        uid = UID(ts)
        if not uid.is_compressed:
            continue
        try:
            available = get_decoder(uid).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise SeriesError(f"is compressed with {uid.name or ts} ({ts}), which no installed decoder reads; "
                              "convert it (e.g. to Explicit VR Little Endian) before importing")


def _check_size(shape, max_voxels):
    voxels = int(np.prod(shape))
    if voxels > max_voxels:
        raise SeriesError(f"has {voxels:,} voxels (at most {max_voxels:,})")
    return voxels


def _stored_dtype(header) -> str:
    bits = int(header.get("BitsAllocated", 16) or 16)
    signed = int(header.get("PixelRepresentation", 0) or 0) == 1
    return f"{'int' if signed else 'uint'}{bits}"


def _check_stack(series):
    """Refuse a single-frame series that is not one regular stack of equal, parallel slices."""
    headers, files = series.headers, series.files
    if len(headers) < 2:
        raise SeriesError("has a single slice; a volume needs at least two")
    for attr in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        missing = [f.name for f, h in zip(files, headers, strict=True) if attr not in h]
        if missing:
            raise SeriesError(f"file(s) {', '.join(missing[:3])} have no {attr}")
    sizes = {}
    for f, h in zip(files, headers, strict=True):
        sizes.setdefault((int(h.Rows), int(h.Columns)), []).append(f.name)
    if len(sizes) > 1:
        raise SeriesError("mixes slice sizes (" + ", ".join(f"{r}x{c} in {len(n)} file(s)" for (r, c), n in sizes.items())
                          + ")")
    orientations = np.array([[float(v) for v in h.ImageOrientationPatient] for h in headers])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        odd = int(np.argmax(np.abs(orientations - orientations[0]).max(axis=1)))
        raise SeriesError(f"mixes slice orientations ({files[0].name}: {_fmt(orientations[0])}, "
                          f"{files[odd].name}: {_fmt(orientations[odd])})")
    spacings = np.array([[float(v) for v in h.PixelSpacing] for h in headers])
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        raise SeriesError(f"mixes pixel spacings ({_fmt(spacings.min(axis=0))} to {_fmt(spacings.max(axis=0))} mm)")
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    steps = np.diff(along[order])
    tol = max(0.01, 0.01 * float(np.median(np.abs(steps))) if len(steps) else 0.01)
    for i in np.flatnonzero(steps < tol):
        a, b = order[i], order[i + 1]
        raise SeriesError(f"has a duplicated slice at {_fmt(positions[a])} mm (files {files[a].name} and "
                          f"{files[b].name})")
    spacing = float(np.median(steps))
    for i in np.flatnonzero(steps > 1.5 * spacing):
        missing = int(round(steps[i] / spacing)) - 1
        raise SeriesError(f"is missing {missing} slice(s) between {_fmt(positions[order[i]])} and "
                          f"{_fmt(positions[order[i + 1]])} mm (gap {steps[i]:.3g} mm, slice spacing {spacing:.3g} mm)")
    if steps.max() - steps.min() > tol:
        raise SeriesError(f"has uneven slice spacing ({steps.min():.3g} to {steps.max():.3g} mm)")
    offsets = positions[order] - positions[order[0]] - np.outer(along[order] - along[order[0]], normal)
    if np.abs(offsets).max() > max(tol, 0.01 * spacing):
        raise SeriesError("slices are not stacked along their normal (sheared, e.g. a gantry tilt); "
                          "labelgen does not resample on import")


def _fmt(values):
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
