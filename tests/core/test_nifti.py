"""Tests for pipeline.core.io.nifti: safe loading, validation, resampling, atomic save and viewer bytes.

Bad files are built on the fly with nibabel (independent of our writer) and then damaged byte by byte.
"""

import gzip
import struct
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from pipeline.core.io.nifti import (
    GZIP_SLACK_BYTES,
    VolumeError,
    check_label,
    load_volume,
    save_nifti_atomic,
)

SHAPE = (32, 32, 8)
AFFINE = np.array([[0.9, 0, 0, -10.0], [0, 0.9, 0, 5.0], [0, 0, 2.5, 3.0], [0, 0, 0, 1]])
# Byte offsets of NIfTI-1 header fields (little endian), from the NIfTI-1 standard.
OFF_DIM, OFF_PIXDIM, OFF_VOX_OFFSET = 40, 76, 108


def _image(seed=0, shape=SHAPE):
    return (np.random.default_rng(seed).normal(300, 80, size=shape)).astype(np.float32)


def _nifti_bytes(data, affine=AFFINE, **hdr_fields):
    """Uncompressed single-file NIfTI-1 bytes written by nibabel itself."""
    img = nib.Nifti1Image(data, affine)
    for k, v in hdr_fields.items():
        img.header[k] = v
    return img.to_bytes()


def _write(tmp_path, name, payload: bytes):
    p = tmp_path / name
    p.write_bytes(payload)
    return p


def _patch(raw: bytes, offset: int, fmt: str, *values) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


def _refused(path, *words, **kw):
    """Load must fail; the message names the file and contains every word of the reason."""
    with pytest.raises(VolumeError) as ei:
        load_volume(path, **kw)
    err = ei.value
    fname = kw.get("name", str(path))
    assert err.filename == fname and str(err).startswith(f"{fname}: ")
    for w in words:
        assert w in err.reason, (w, err.reason)
    return err


# ---------------------------------------------------------------- round trips and good files


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_image_and_label(tmp_path, suffix):
    img = _image()
    p = tmp_path / f"t1fsce{suffix}"
    save_nifti_atomic(p, img, AFFINE)
    v = load_volume(p)
    assert v.data.dtype == np.float32 and v.shape == SHAPE and v.original_dtype == "float32"
    np.testing.assert_array_equal(v.data, img)
    np.testing.assert_allclose(v.affine, AFFINE, atol=1e-6)
    np.testing.assert_allclose(v.spacing, (0.9, 0.9, 2.5), rtol=1e-6)
    assert v.intensity_range == (float(img.min()), float(img.max()))
    assert v.filename == str(p)
    # Another reader agrees on what we wrote.
    np.testing.assert_array_equal(nib.load(p).get_fdata(dtype=np.float32), img)

    lab = (img > 320).astype(np.uint8)
    lp = tmp_path / f"label{suffix}"
    save_nifti_atomic(lp, lab, AFFINE)
    lv = load_volume(lp, kind="label")
    assert lv.data.dtype == np.uint8 and lv.original_dtype == "uint8"
    np.testing.assert_array_equal(check_label(lv), lab)


def test_int16_on_disk_becomes_float32_and_keeps_original_dtype(tmp_path):
    ints = np.random.default_rng(1).integers(-2000, 3000, size=SHAPE).astype(np.int16)
    p = _write(tmp_path, "a.nii", _nifti_bytes(ints))
    v = load_volume(p)
    assert v.original_dtype == "int16" and v.data.dtype == np.float32
    np.testing.assert_array_equal(v.data, ints.astype(np.float32))


def test_scaled_int16_applies_slope_and_intercept(tmp_path):
    ints = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE) % 100
    img = nib.Nifti1Image(ints, AFFINE)
    img.header.set_slope_inter(0.5, 10.0)
    raw = img.to_bytes()
    # nibabel may rewrite scaling on save; force our own values in the header bytes.
    raw = _patch(raw, 112, "<ff", 0.5, 10.0)
    v = load_volume(_write(tmp_path, "s.nii", raw))
    np.testing.assert_allclose(v.data, ints * 0.5 + 10.0)


def test_big_endian_file(tmp_path):
    img = _image()
    hdr = nib.Nifti1Header(endianness=">")
    nimg = nib.Nifti1Image(img, AFFINE, header=hdr)
    raw = nimg.to_bytes()
    assert raw[:4] == struct.pack(">i", 348)
    v = load_volume(_write(tmp_path, "be.nii", raw))
    np.testing.assert_array_equal(v.data, img)


def test_nifti2_file(tmp_path):
    img = _image()
    raw = nib.Nifti2Image(img, AFFINE).to_bytes()
    v = load_volume(_write(tmp_path, "n2.nii.gz", gzip.compress(raw)))
    np.testing.assert_array_equal(v.data, img)


def test_4d_single_volume_squeezed(tmp_path):
    img = _image()[..., None]
    v = load_volume(_write(tmp_path, "one.nii.gz", gzip.compress(_nifti_bytes(img))))
    assert v.shape == SHAPE
    np.testing.assert_array_equal(v.data, img[..., 0])


@pytest.mark.parametrize("compress", [False, True])
def test_small_trailing_garbage_accepted(tmp_path, compress):
    img = _image()
    raw = _nifti_bytes(img) + b"\x00junk" * 100
    p = _write(tmp_path, "tail.nii", gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(load_volume(p).data, img)


def test_multi_member_gzip(tmp_path):
    raw = _nifti_bytes(_image())
    p = _write(tmp_path, "mm.nii.gz", gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(load_volume(p).data, _image())


# ---------------------------------------------------------------- refusals


def test_not_nifti_random_bytes(tmp_path):
    p = _write(tmp_path, "rand.nii", np.random.default_rng(0).bytes(5000))
    _refused(p, "not a NIfTI file")
    _refused(_write(tmp_path, "empty.nii", b""), "not a NIfTI file")
    _refused(_write(tmp_path, "rand.nii.gz", gzip.compress(b"hello" * 200)), "not a NIfTI file")


def test_bad_magic(tmp_path):
    raw = bytearray(_nifti_bytes(_image()))
    raw[344:348] = b"abc\x00"
    _refused(_write(tmp_path, "magic.nii", bytes(raw)), "not a NIfTI file", "magic")
    raw[344:348] = b"ni1\x00"
    _refused(_write(tmp_path, "pair.hdr", bytes(raw)), ".hdr/.img pair")


def test_name_override_used_in_message(tmp_path):
    p = _write(tmp_path, "tmpXYZ123", b"garbage" * 100)
    err = _refused(p, "not a NIfTI file", name="patient_t2.nii.gz")
    assert "tmpXYZ123" not in str(err)


@pytest.mark.parametrize("cut", [200, 352 + 1000])
def test_truncated_plain(tmp_path, cut):
    raw = _nifti_bytes(_image())
    _refused(_write(tmp_path, "cut.nii", raw[:cut]), "truncated")


def test_truncated_gzip(tmp_path):
    gz = gzip.compress(_nifti_bytes(_image()))
    _refused(_write(tmp_path, "cut.nii.gz", gz[: len(gz) // 2]), "gzip", "truncated")
    # Complete gzip stream, but the NIfTI inside is short.
    short = gzip.compress(_nifti_bytes(_image())[:5000])
    _refused(_write(tmp_path, "short.nii.gz", short), "truncated", "header implies")


def test_corrupt_gzip(tmp_path):
    gz = bytearray(gzip.compress(_nifti_bytes(_image())))
    mid = len(gz) // 2
    gz[mid : mid + 64] = b"\xff" * 64
    _refused(_write(tmp_path, "bad.nii.gz", bytes(gz)), "corrupt gzip")


def test_gzip_bomb_stops_early(tmp_path):
    """Header claims 4x4x4 uint8 (=416 bytes of file), followed by 50 MB of zeros, gzipped (~50 kB)."""
    small = _nifti_bytes(np.zeros((4, 4, 4), np.uint8))
    path = tmp_path / "bomb.nii.gz"
    with gzip.open(path, "wb") as f:
        f.write(small)
        zeros = bytes(1 << 20)
        for _ in range(50):
            f.write(zeros)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        err = _refused(path, "gzip bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(len(small)) in err.reason  # names what the header implies
    # Decompression stopped around the budget (header size + slack), far below the 50 MB inside.
    assert peak < 4 * GZIP_SLACK_BYTES + 1_000_000, peak


def test_4d_two_volumes_refused(tmp_path):
    img = np.stack([_image(0), _image(1)], axis=-1)
    _refused(_write(tmp_path, "two.nii", _nifti_bytes(img)), "2 volumes", "single 3D volume")


def test_2d_refused(tmp_path):
    _refused(_write(tmp_path, "flat.nii", _nifti_bytes(_image()[:, :, 0])), "2 dimension", "3D volume is required")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_refused(tmp_path, bad):
    img = _image()
    img[3, 4, 5] = bad
    _refused(_write(tmp_path, "nan.nii.gz", gzip.compress(_nifti_bytes(img))), "non-finite")


@pytest.mark.parametrize("pix", [-1.0, 0.0, np.nan, np.inf])
def test_absurd_spacing_refused(tmp_path, pix):
    raw = _nifti_bytes(_image(), affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    raw = _patch(raw, OFF_PIXDIM + 4 * 2, "<f", pix)  # pixdim[2] = y spacing
    _refused(_write(tmp_path, "pix.nii", raw), "spacing", "finite and > 0")


@pytest.mark.parametrize(
    "dims, why",
    [((3, 32, 0, 8), "(32, 0, 8) must all be > 0"), ((3, 32, -5, 8), "(32, -5, 8) must all be > 0"),
     ((0, 32, 32, 8), "dim[0] = 0"), ((9, 32, 32, 8), "dim[0] = 9")],
)
def test_absurd_dims_refused(tmp_path, dims, why):
    raw = _patch(_nifti_bytes(_image()), OFF_DIM, "<4h", *dims)
    _refused(_write(tmp_path, "dims.nii", raw), "absurd header", why)


def test_max_voxels_checked_from_header_before_reading(tmp_path):
    # A 400-byte file whose header claims 30000^3 voxels: must be refused for size, not for truncation.
    raw = _patch(_nifti_bytes(np.zeros((2, 2, 2), np.uint8)), OFF_DIM, "<4h", 3, 30000, 30000, 30000)
    _refused(_write(tmp_path, "huge.nii", raw), "27,000,000,000,000 voxels", "98.2 TiB as float32", "limit")
    p = _write(tmp_path, "ok.nii", _nifti_bytes(_image()))
    _refused(p, "more than the import limit of 1,000 voxels (3.9 KiB as float32)", max_voxels=1000)
    assert load_volume(p, max_voxels=int(np.prod(SHAPE))).shape == SHAPE


def test_absurd_vox_offset_refused(tmp_path):
    raw = _patch(_nifti_bytes(_image()), OFF_VOX_OFFSET, "<f", 10.0)
    _refused(_write(tmp_path, "off.nii", raw), "vox_offset")


def test_complex_dtype_refused(tmp_path):
    raw = _nifti_bytes(_image().astype(np.complex64))
    _refused(_write(tmp_path, "c.nii", raw), "unsupported data type")


def test_missing_file_and_bad_kind(tmp_path):
    _refused(tmp_path / "nope.nii", "cannot be read")
    _refused(_write(tmp_path, "x.nii", _nifti_bytes(_image())), "kind", kind="mask")
