"""Tests for pipeline.core.io.nifti: safe loading, validation, resampling, atomic save and viewer bytes.

Bad files are built on the fly with nibabel (independent of our writer) and then damaged byte by byte.
"""

import gzip
import hashlib
import os
import struct
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from pipeline.core.io import nifti_write
from pipeline.core.io.nifti import (
    GZIP_SLACK_BYTES,
    Volume,
    VolumeError,
    check_label,
    load_volume,
    resample_to,
    same_grid,
    save_nifti_atomic,
    sha256_file,
    viewer_nifti_bytes,
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


# ---------------------------------------------------------------- labels


def _label_volume(tmp_path, arr, name="lab.nii.gz"):
    p = _write(tmp_path, name, gzip.compress(_nifti_bytes(arr)))
    return load_volume(p, kind="label")


def test_check_label_semantics(tmp_path):
    lab = np.zeros(SHAPE, np.float32)
    lab[5:10, 5:10, 2:4] = 1.0
    lab[20:25, 20:25, 5:7] = 2.0  # integer multi-class / cluster value: allowed
    out = check_label(_label_volume(tmp_path, lab))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, lab.astype(np.uint8))
    assert set(np.unique(out)) == {0, 1, 2}

    frac = lab.copy()
    frac[1, 1, 1] = 0.5
    v = _label_volume(tmp_path, frac, "frac.nii.gz")
    with pytest.raises(VolumeError, match=r"frac\.nii\.gz: .*non-integer.*0\.5"):
        check_label(v)

    neg = lab.astype(np.int16)
    neg[0, 0, 0] = -1
    with pytest.raises(VolumeError, match=r"neg\.nii\.gz: .*negative"):
        check_label(_label_volume(tmp_path, neg, "neg.nii.gz"))

    big = lab.astype(np.int16)
    big[0, 0, 0] = 300
    with pytest.raises(VolumeError, match=r"big\.nii\.gz: .*300.*exceeds 255"):
        check_label(_label_volume(tmp_path, big, "big.nii.gz"))


def test_check_label_blockwise_finds_late_bad_voxel():
    data = np.zeros((8, 8, 8), np.float64)
    data[7, 7, 7] = 1.25
    from pipeline.core.io.nifti_read import label_to_uint8

    with pytest.raises(VolumeError, match="non-integer"):
        label_to_uint8(data, "x", block_voxels=10)  # last block only


# ---------------------------------------------------------------- hashing, grids, resampling


def test_sha256_file(tmp_path):
    payload = np.random.default_rng(3).bytes(3_000_000)
    p = _write(tmp_path, "blob.bin", payload)
    assert sha256_file(p, chunk_size=65536) == hashlib.sha256(payload).hexdigest()


def _vol(data, affine, name="v"):
    return Volume(data, affine, tuple(np.linalg.norm(affine[:3, :3], axis=0)), name, str(data.dtype))


def test_same_grid():
    a = _vol(np.zeros(SHAPE, np.float32), AFFINE)
    b = _vol(np.ones(SHAPE, np.float32), AFFINE + 1e-5)
    assert same_grid(a, b)
    moved = AFFINE.copy()
    moved[0, 3] += 0.5
    assert not same_grid(a, _vol(np.zeros(SHAPE, np.float32), moved))
    assert not same_grid(a, _vol(np.zeros((32, 32, 9), np.float32), AFFINE))


def _world_grid(shape, affine):
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def test_resample_shifted_rescaled_grid_blob_lands_in_place():
    """A ball defined in world mm is drawn on a finer, shifted grid and resampled onto the reference grid;
    it must land where it should: exactly the nearest-neighbour prediction and close to the ball drawn on
    the reference grid directly. A world-linear ramp must survive trilinear resampling exactly."""
    centre, radius = np.array([4.0, 18.0, 7.0]), 5.0  # fully inside both grids
    ref_aff = np.array([[1.0, 0, 0, -10.0], [0, 1.0, 0, 3.0], [0, 0, 2.0, 0.0], [0, 0, 0, 1]])
    mov_aff = np.array([[0.5, 0, 0, -12.3], [0, 0.5, 0, 1.7], [0, 0, 1.0, -2.0], [0, 0, 0, 1]])
    ref_shape, mov_shape = SHAPE, (72, 72, 30)

    def ball(shape, aff):
        return (np.linalg.norm(_world_grid(shape, aff) - centre, axis=-1) <= radius).astype(np.uint8)

    truth = ball(ref_shape, ref_aff)
    world = _world_grid(ref_shape, ref_aff)
    np.testing.assert_allclose(world[truth.astype(bool)].mean(axis=0), centre)  # the set-up is symmetric
    ref = _vol(np.zeros(ref_shape, np.float32), ref_aff, "t1")
    mov_lab = _vol(ball(mov_shape, mov_aff), mov_aff, "t2_label")
    out = resample_to(mov_lab, ref, order=0)
    assert out.shape == ref_shape and out.data.dtype == np.uint8
    assert set(np.unique(out.data)) <= {0, 1}
    np.testing.assert_array_equal(out.affine, ref_aff)
    dice = 2 * np.sum(out.data & truth) / (out.data.sum() + truth.sum())
    assert dice > 0.9, dice
    centroid = world[out.data.astype(bool)].mean(axis=0)
    assert np.all(np.abs(centroid - centre) < 0.5), centroid
    # Exact check: nearest neighbour = the ball evaluated at the world position of the nearest moving voxel.
    mov_ijk = (world - mov_aff[:3, 3]) @ np.linalg.inv(mov_aff[:3, :3]).T
    nearest_world = np.rint(mov_ijk) @ mov_aff[:3, :3].T + mov_aff[:3, 3]
    expected = (np.linalg.norm(nearest_world - centre, axis=-1) <= radius).astype(np.uint8)
    np.testing.assert_array_equal(out.data, expected)

    # Linear interpolation of a smooth intensity ramp (linear in world x) is exact inside the volume.
    mov_img = _vol(_world_grid(mov_shape, mov_aff)[..., 0].astype(np.float32), mov_aff, "t2")
    lin = resample_to(mov_img, ref, order=1)
    inside = np.all((mov_ijk >= 0) & (mov_ijk <= np.array(mov_shape) - 1), axis=-1)
    assert inside.sum() > 1000
    np.testing.assert_allclose(lin.data[inside], world[..., 0][inside], atol=1e-3)


def test_resample_same_grid_is_copy():
    v = _vol(_image(), AFFINE)
    out = resample_to(v, _vol(np.zeros(SHAPE, np.float32), AFFINE))
    np.testing.assert_array_equal(out.data, v.data)
    assert out.data is not v.data


# ---------------------------------------------------------------- atomic save


def test_atomic_save_no_temp_left_and_old_file_intact_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "out.nii.gz"
    save_nifti_atomic(p, _image(0), AFFINE)
    assert os.listdir(tmp_path) == ["out.nii.gz"]
    old = p.read_bytes()

    # Failure while writing: the last slice cannot be stored as int16 (NaN).
    bad = np.rint(_image(1))
    bad[..., -1] = np.nan
    with pytest.raises(VolumeError, match=r"out\.nii\.gz: .*non-finite"):
        save_nifti_atomic(p, bad, AFFINE, dtype=np.int16)
    assert p.read_bytes() == old and os.listdir(tmp_path) == ["out.nii.gz"]

    # Failure at the rename itself.
    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(nifti_write.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        save_nifti_atomic(p, _image(2), AFFINE)
    assert p.read_bytes() == old and os.listdir(tmp_path) == ["out.nii.gz"]


def test_save_refuses_lossy_casts(tmp_path):
    with pytest.raises(VolumeError, match="non-integer"):
        save_nifti_atomic(tmp_path / "a.nii", _image(), AFFINE, dtype=np.int16)
    with pytest.raises(VolumeError, match="does not fit dtype uint8"):
        save_nifti_atomic(tmp_path / "b.nii", np.full(SHAPE, 300, np.int16), AFFINE, dtype=np.uint8)
    assert os.listdir(tmp_path) == []


def test_save_bool_and_int64_and_deterministic_gzip(tmp_path):
    mask = _image() > 300
    save_nifti_atomic(tmp_path / "m.nii.gz", mask, AFFINE)
    v = load_volume(tmp_path / "m.nii.gz", kind="label")
    assert v.original_dtype == "uint8"
    np.testing.assert_array_equal(v.data, mask)
    clusters = np.random.default_rng(0).integers(0, 7, SHAPE)  # int64
    save_nifti_atomic(tmp_path / "c.nii.gz", clusters, AFFINE)
    assert load_volume(tmp_path / "c.nii.gz", kind="label").original_dtype == "uint8"
    save_nifti_atomic(tmp_path / "c2.nii.gz", clusters, AFFINE)
    assert (tmp_path / "c.nii.gz").read_bytes() == (tmp_path / "c2.nii.gz").read_bytes()


# ---------------------------------------------------------------- viewer bytes


def _decode_viewer(b: bytes):
    assert b[:2] == b"\x1f\x8b"
    flags, mtime = b[3], struct.unpack("<I", b[4:8])[0]
    assert flags & 0x08 == 0 and mtime == 0  # no FNAME field, mtime 0
    raw = gzip.decompress(b)
    assert raw[348:352] == b"\x00\x00\x00\x00"  # extension flag: none
    return nib.Nifti1Image.from_bytes(raw)


def test_viewer_image_int16_blinded_deterministic(tmp_path):
    img = _image()
    b = viewer_nifti_bytes(img, AFFINE)
    assert b == viewer_nifti_bytes(img.copy(), AFFINE)
    n = _decode_viewer(b)
    for field in ("descrip", "aux_file", "intent_name", "db_name"):
        assert n.header[field].item() == b"", field
    assert len(n.header.extensions) == 0
    assert n.get_data_dtype() == np.int16
    slope = n.dataobj.slope
    assert slope > 0 and slope <= (img.max() - img.min()) / 65534 * 1.001
    np.testing.assert_allclose(n.get_fdata(), img, atol=slope / 2 + 1e-3)
    np.testing.assert_allclose(n.affine, AFFINE, atol=1e-5)
    # nibabel can also load it from disk under a .nii.gz name.
    p = _write(tmp_path, "view.nii.gz", b)
    np.testing.assert_allclose(nib.load(p).get_fdata(), img, atol=slope / 2 + 1e-3)


def test_viewer_integer_image_lossless_and_outliers_fall_back_to_float32():
    ints = np.random.default_rng(5).integers(0, 4000, SHAPE).astype(np.float32)
    n = _decode_viewer(viewer_nifti_bytes(ints, AFFINE))
    assert n.get_data_dtype() == np.int16
    np.testing.assert_array_equal(n.get_fdata(), ints)

    spiky = _image()
    spiky[0, 0, 0] = 1e9  # one outlier would flatten the whole image into a few int16 levels
    n = _decode_viewer(viewer_nifti_bytes(spiky, AFFINE))
    assert n.get_data_dtype() == np.float32
    np.testing.assert_array_equal(n.get_fdata(dtype=np.float32), spiky)


def test_viewer_label_uint8():
    lab = np.zeros(SHAPE, np.int64)
    lab[3:9, 3:9, 2:5] = 1
    lab[12:15, 12:15, 1:3] = 2
    n = _decode_viewer(viewer_nifti_bytes(lab, AFFINE, kind="label"))
    assert n.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(n.dataobj), lab)
    with pytest.raises(VolumeError, match="viewer label: .*non-integer"):
        viewer_nifti_bytes(lab * 0.5, AFFINE, kind="label")
    with pytest.raises(VolumeError, match="non-finite"):
        viewer_nifti_bytes(np.full(SHAPE, np.nan, np.float32), AFFINE)
