"""Low-level, defensive NIfTI reading: header validation and bounded decompression.

Nothing here trusts the file. The header is parsed from bytes we read (or decompressed) ourselves, every
field that sizes an allocation is checked first, and a gzip stream is decompressed in bounded chunks that
stop as soon as the output exceeds what the header says the file holds. nibabel only ever sees bytes we
already have in memory, so it never gets the chance to decompress a bomb.

Public entry point: :func:`read_nifti` (used by :func:`pipeline.core.io.nifti.load_volume`).
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.spatialimages import HeaderDataError

__all__ = ["VolumeError", "RawNifti", "read_nifti", "label_to_uint8"]

GZIP_MAGIC = b"\x1f\x8b"
NIFTI1_MAGIC = (b"n+1\x00",)  # single-file NIfTI-1 ("ni1" = .hdr/.img pair, refused)
NIFTI2_MAGIC = b"n+2\x00\r\n\x1a\n"
#: Extra decompressed bytes tolerated past what the header implies (some writers pad; trailing junk).
GZIP_SLACK_BYTES = 1 << 20
#: Largest vox_offset accepted: leaves room for header extensions without letting a forged offset
#: inflate the gzip output budget.
MAX_VOX_OFFSET = 64 << 20
_READ_CHUNK = 1 << 20  # compressed bytes read per step
_OUT_CHUNK = 8 << 20  # max decompressed bytes produced per zlib call


class VolumeError(ValueError):
    """A volume (file or array) was refused. ``str(err)`` is ``"<filename>: <reason>"``."""

    def __init__(self, filename: str, reason: str):
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


@dataclass
class RawNifti:
    """Result of :func:`read_nifti`.

    ``data`` has shape (X, Y, Z) in nibabel voxel order, Fortran-ordered, native byte order; it is
    the on-disk dtype when the header applies no scaling, else float64 (``scl_slope``/``scl_inter``
    applied). ``affine`` is nibabel's best affine (sform if set, else qform, else pixdim-only).
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    original_dtype: str
    header: nib.Nifti1Header


class _BoundedGunzip:
    """Incremental gzip decompressor whose output can never grow past a caller-chosen target.

    Handles multi-member streams (as ``gzip`` does); bytes after the last member that are not a new gzip
    member are ignored, like trailing garbage after the image data.
    """

    def __init__(self, fileobj: BinaryIO, filename: str):
        self.f = fileobj
        self.filename = filename
        self.buf = bytearray()
        self.eof = False
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes not yet fed to zlib

    def _err(self, reason: str) -> VolumeError:
        return VolumeError(self.filename, reason)

    def fill(self, target: int) -> None:
        """Decompress until ``len(self.buf) >= target`` or the stream ends. Each zlib call may only emit
        what is still missing, so the buffer never grows past ``target``."""
        while len(self.buf) < target and not self.eof:
            if not self._pending:
                self._pending = self.f.read(_READ_CHUNK)
                if not self._pending:
                    raise self._err("gzip stream is truncated (file ends before the end-of-stream marker)")
            want = min(target - len(self.buf), _OUT_CHUNK)
            try:
                out = self._d.decompress(self._pending, want)
            except zlib.error as exc:
                raise self._err(f"corrupt gzip data ({exc})") from None
            self.buf += out
            self._pending = self._d.unconsumed_tail
            if self._d.eof:
                self._next_member()

    def _next_member(self) -> None:
        rest = self._d.unused_data
        while len(rest) < 2:
            more = self.f.read(_READ_CHUNK)
            if not more:
                break
            rest += more
        if rest[:2] == GZIP_MAGIC:
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._pending = rest
        else:
            self.eof = True  # end of data; anything after is trailing garbage, ignored


def _parse_header(head: bytes, filename: str) -> nib.Nifti1Header:
    """Identify NIfTI-1 / NIfTI-2 by sizeof_hdr and magic, then let nibabel parse the fields."""
    if len(head) < 4:
        raise VolumeError(filename, f"not a NIfTI file (only {len(head)} bytes)")
    # Endianness from sizeof_hdr (nibabel would guess it from dim[0], which a corrupt header can fool).
    little, big = int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")
    endian = "<" if little in (348, 540) else ">"
    sizes = {little, big}
    if 348 in sizes:
        klass, hdr_size = nib.Nifti1Header, 348
        if len(head) < hdr_size:
            raise VolumeError(filename, f"truncated NIfTI-1 header ({len(head)} of 348 bytes)")
        magic = bytes(head[344:348])
        if magic == b"ni1\x00":
            raise VolumeError(filename, "NIfTI .hdr/.img pair headers are not supported; use a single-file .nii")
        if magic not in NIFTI1_MAGIC:
            raise VolumeError(filename, f"not a NIfTI file (bad NIfTI-1 magic {magic!r})")
    elif 540 in sizes:
        klass, hdr_size = nib.Nifti2Header, 540
        if len(head) < hdr_size:
            raise VolumeError(filename, f"truncated NIfTI-2 header ({len(head)} of 540 bytes)")
        if bytes(head[4:12]) != NIFTI2_MAGIC:
            raise VolumeError(filename, f"not a NIfTI file (bad NIfTI-2 magic {bytes(head[4:12])!r})")
    else:
        raise VolumeError(filename, "not a NIfTI file (header size field is neither 348 nor 540)")
    try:
        return klass(binaryblock=bytes(head[:hdr_size]), endianness=endian, check=False)
    except Exception as exc:  # nibabel raises a variety of types on garbage
        raise VolumeError(filename, f"unparseable NIfTI header ({exc})") from None


@dataclass
class _Layout:
    shape3: tuple[int, int, int]
    full_shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    nbytes: int  # offset + voxel bytes: the size the header implies


def _float32_size(n_voxels: int) -> str:
    """The memory ``n_voxels`` take as float32, in a readable unit (the import limit is a memory budget)."""
    size, unit = n_voxels * 4.0, "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:,.0f} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"


def _check_header(hdr: nib.Nifti1Header, filename: str, max_voxels: int) -> _Layout:
    """Refuse absurd headers before any data is read or allocated."""
    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise VolumeError(filename, f"absurd header: dim[0] = {ndim} (number of dimensions must be 1..7)")
    shape = tuple(dim[1 : ndim + 1])
    if any(s <= 0 for s in shape):
        raise VolumeError(filename, f"absurd header: dimension sizes {shape} must all be > 0")
    if ndim < 3:
        raise VolumeError(filename, f"has {ndim} dimension(s) {shape}; a 3D volume is required")
    if any(s != 1 for s in shape[3:]):
        n_vol = math.prod(shape[3:])
        raise VolumeError(
            filename, f"has {ndim} dimensions {shape} ({n_vol} volumes); only a single 3D volume is accepted"
        )
    pixdim = [float(p) for p in hdr["pixdim"][1:4]]
    if not all(math.isfinite(p) and p > 0 for p in pixdim):
        raise VolumeError(filename, f"absurd header: voxel spacing (pixdim) {tuple(pixdim)} must be finite and > 0")
    n_vox = math.prod(shape)
    if n_vox > max_voxels:
        raise VolumeError(
            filename, f"header claims {n_vox:,} voxels (shape {shape}, {_float32_size(n_vox)} as float32), more "
            f"than the import limit of {max_voxels:,} voxels ({_float32_size(max_voxels)} as float32)"
        )
    try:
        dtype = np.dtype(hdr.get_data_dtype())
    except Exception as exc:
        raise VolumeError(filename, f"unsupported or invalid NIfTI datatype code {int(hdr['datatype'])} ({exc})") from None
    if dtype.kind not in "iuf" or dtype.fields is not None:
        raise VolumeError(filename, f"unsupported data type {dtype.newbyteorder('=').name} (need integer or float)")
    offset = float(hdr["vox_offset"])
    min_offset = hdr.sizeof_hdr + 4  # header + 4-byte extension flag
    if not math.isfinite(offset) or not min_offset <= offset <= MAX_VOX_OFFSET:
        raise VolumeError(
            filename, f"absurd header: vox_offset {offset} (must be between {min_offset} and {MAX_VOX_OFFSET})"
        )
    offset_i = int(offset)
    return _Layout(tuple(shape[:3]), shape, dtype, offset_i, offset_i + n_vox * dtype.itemsize)


def _read_plain(f: BinaryIO, filename: str, max_voxels: int) -> tuple[nib.Nifti1Header, _Layout, bytearray]:
    head = f.read(540)
    hdr = _parse_header(head, filename)
    lay = _check_header(hdr, filename, max_voxels)
    size = os.fstat(f.fileno()).st_size
    if size < lay.nbytes:
        raise VolumeError(filename, f"file is truncated: {size} bytes, header implies {lay.nbytes}")
    buf = bytearray(lay.nbytes)
    pos = min(len(head), lay.nbytes)
    buf[:pos] = head[:pos]
    view = memoryview(buf)
    while pos < lay.nbytes:
        n = f.readinto(view[pos:])
        if not n:
            raise VolumeError(filename, f"file is truncated: data ends at {pos} bytes, header implies {lay.nbytes}")
        pos += n
    return hdr, lay, buf


def _read_gzip(f: BinaryIO, filename: str, max_voxels: int) -> tuple[nib.Nifti1Header, _Layout, bytearray]:
    gz = _BoundedGunzip(f, filename)
    gz.fill(540)
    hdr = _parse_header(bytes(gz.buf[:540]), filename)
    lay = _check_header(hdr, filename, max_voxels)
    budget = lay.nbytes + GZIP_SLACK_BYTES
    gz.fill(budget + 1)  # one byte past the budget is enough to know it is too much
    if len(gz.buf) > budget:
        raise VolumeError(
            filename,
            f"gzip stream decompresses to more than {budget} bytes but the header implies {lay.nbytes} "
            "(possible gzip bomb); refused",
        )
    if len(gz.buf) < lay.nbytes:
        raise VolumeError(
            filename, f"file is truncated: decompressed data is {len(gz.buf)} bytes, header implies {lay.nbytes}"
        )
    return hdr, lay, gz.buf


def read_nifti(path: str | os.PathLike, *, max_voxels: int, filename: str) -> RawNifti:
    """Read and validate a single-file NIfTI-1/2 (plain or gzip, detected by magic bytes, not extension).

    Refuses (``VolumeError``): non-NIfTI, truncated files, corrupt/truncated gzip, decompressed size beyond the
    header's promise plus ``GZIP_SLACK_BYTES``, ``ndim`` < 3 or > 3 non-singleton dims, non-positive or
    non-finite spacing or dims, more than ``max_voxels`` voxels, non-numeric datatypes, a non-finite or
    singular affine, a non-finite scaling intercept. Non-finite voxel values are checked by the caller.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
            f.seek(0)
            reader = _read_gzip if magic == GZIP_MAGIC else _read_plain
            hdr, lay, buf = reader(f, filename, max_voxels)
    except OSError as exc:
        raise VolumeError(filename, f"cannot be read ({exc.strerror or exc})") from None

    affine = np.asarray(hdr.get_best_affine(), dtype=np.float64)
    if not np.isfinite(affine).all():
        raise VolumeError(filename, "absurd header: the affine (qform/sform) contains non-finite values")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(filename, "absurd header: the affine (qform/sform) is singular")
    try:
        slope, inter = hdr.get_slope_inter()
    except HeaderDataError as exc:
        raise VolumeError(filename, f"absurd header: {exc}") from None

    n_vox = math.prod(lay.full_shape)
    arr = np.frombuffer(buf, dtype=lay.dtype, count=n_vox, offset=lay.offset)
    arr = arr.reshape(lay.shape3, order="F")  # trailing singleton dims squeezed
    native = lay.dtype.newbyteorder("=")
    if slope is None or (slope == 1.0 and inter == 0.0):
        data = arr.astype(native, copy=True)  # own the memory, native byte order, aligned
    else:
        # float64 keeps integer-valued scaled labels exact; callers narrow images to float32.
        data = arr.astype(np.float64) * slope + inter
    spacing = tuple(float(v) for v in voxel_sizes(affine))
    return RawNifti(data, affine, spacing, native.name, hdr)


def label_to_uint8(data: np.ndarray, filename: str, *, block_voxels: int = 1 << 24) -> np.ndarray:
    """Validate label values and return them as uint8 with the same shape.

    Refuses (``VolumeError``) non-numeric arrays, non-finite values, non-integer values (e.g. 0.5),
    negative values and values above 255. Integer values 0..255 (binary masks, cluster maps) pass.
    Works block-wise over the flattened array so huge float labels need no full-size temporaries.
    """
    data = np.asarray(data)
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if data.dtype.kind not in "iuf":
        raise VolumeError(filename, f"label has non-numeric dtype {data.dtype}")
    if data.size == 0:
        return data.astype(np.uint8)
    flat = data.ravel(order="K")  # a view for contiguous arrays
    for start in range(0, flat.size, block_voxels):
        block = flat[start : start + block_voxels]
        if data.dtype.kind == "f":
            bad = ~np.isfinite(block)
            if bad.any():
                i = start + int(np.argmax(bad))
                raise VolumeError(filename, f"label contains a non-finite value ({flat[i]}) at flat index {i}")
            frac = block != np.round(block)
            if frac.any():
                i = start + int(np.argmax(frac))
                n = int(frac.sum())
                raise VolumeError(
                    filename, f"label contains non-integer values (e.g. {flat[i]:g}; at least {n} voxels); labels must be integers"
                )
        lo, hi = block.min(), block.max()
        if lo < 0:
            raise VolumeError(filename, f"label contains negative values (minimum {lo:g})")
        if hi > 255:
            raise VolumeError(filename, f"label value {hi:g} exceeds 255 (labels are stored as uint8)")
    return data.astype(np.uint8)
