"""NIfTI labels, hashing and grids, atomic writing and the viewer bytes."""

import gzip
import hashlib
import os
import struct

import nibabel as nib
import numpy as np
import pytest

from pipeline.core.io import nifti_write
from pipeline.core.io.nifti import (
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
from tests.core.test_nifti import AFFINE, SHAPE, _image, _nifti_bytes, _write

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


def test_viewer_display_uint8_quarter_of_float32_within_half_a_grey_level():
    img = _image()
    img[0, 0, 0] = img.max() * 50  # one hot voxel must not flatten the rest into a few grey levels
    b = viewer_nifti_bytes(img, AFFINE, kind="display", compresslevel=6)
    n = _decode_viewer(b)
    assert n.get_data_dtype() == np.uint8 and n.header["descrip"].item() == b""
    assert len(gzip.decompress(b)) == 352 + img.size  # header + one byte per voxel: a quarter of float32
    lo, hi = np.percentile(img, [0.1, 99.9])
    slope = n.dataobj.slope
    assert slope == pytest.approx((hi - lo) / 255, rel=1e-3)
    inside = (img >= lo) & (img <= hi)
    assert inside.mean() > 0.99
    np.testing.assert_allclose(n.get_fdata()[inside], img[inside], atol=slope / 2 + 1e-3 * slope)
    assert n.get_fdata()[0, 0, 0] == pytest.approx(lo + 255 * slope, rel=1e-4)  # clipped, not wrapped
    np.testing.assert_allclose(n.affine, AFFINE, atol=1e-5)
    flat = np.full(SHAPE, 7.0, np.float32)
    np.testing.assert_allclose(_decode_viewer(viewer_nifti_bytes(flat, AFFINE, kind="display")).get_fdata(), 7.0)


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
