"""Tests for pipeline.core.preprocess: model-grid mapping and its exact inverse."""

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from pipeline.core.preprocess import (
    GridRecord,
    GridSpec,
    check_fits,
    from_model_grid,
    grid_transforms,
    label_to_model_grid,
    plan_grid,
    to_model_grid,
)

G16 = GridSpec(16, 16, 8)


def _blocks(shape, boxes, block=2):
    """uint8 mask made of ``block`` x ``block`` in-plane blocks aligned to even indices (exact under 2x)."""
    lab = np.zeros(shape, np.uint8)
    for (x0, x1), (y0, y1), (z0, z1) in boxes:
        lab[x0 * block:x1 * block, y0 * block:y1 * block, z0:z1] = 1
    return lab


def _dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def test_gridspec_rejects_bad_sizes():
    with pytest.raises(ValueError, match="height"):
        GridSpec(0, 16, 8)
    with pytest.raises(ValueError, match="depth"):
        GridSpec(16, 16, 2.5)


def test_integral_downsample_matches_independent_nearest_and_round_trip_is_exact():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 5, size=(32, 32, 8)).astype(np.int16)
    record = plan_grid(lab.shape, G16)
    down = label_to_model_grid(lab, record)
    # nearest-exact 2x: model voxel i takes source voxel 2i + 1 (pixel centres aligned)
    np.testing.assert_array_equal(down, lab[1::2, 1::2, :])
    assert down.dtype == lab.dtype
    # model grid -> original is block replication, and back again is the identity
    up = from_model_grid(down, record)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(down, 2, axis=0), 2, axis=1))
    np.testing.assert_array_equal(label_to_model_grid(up, record), down)
    # a block-aligned blob survives original -> model -> original exactly
    blob = _blocks((32, 32, 8), [((3, 9), (4, 7), (2, 6))])
    np.testing.assert_array_equal(from_model_grid(label_to_model_grid(blob, record), record), blob)


def test_non_square_in_plane_is_padded_to_square_and_inverted_exactly():
    shape = (24, 32, 8)  # X padded by 4 + 4 to the 32 x 32 square, then halved
    record = plan_grid(shape, G16)
    assert record.pad == ((4, 4), (0, 0), (0, 0)) and record.padded_shape == (32, 32, 8)
    blob = _blocks(shape, [((1, 5), (2, 9), (1, 7)), ((8, 11), (12, 15), (3, 4))])
    back = from_model_grid(label_to_model_grid(blob, record), record)
    assert back.shape == shape
    np.testing.assert_array_equal(back, blob)
    # the padded in-plane band holds the background (the image minimum) after normalisation
    img = np.random.default_rng(1).uniform(10, 20, size=shape).astype(np.float32)
    arr, rec = to_model_grid([img], G16)
    norm_min = (img.min() - rec.means[0]) / rec.stds[0]
    np.testing.assert_allclose(arr[0, 0], norm_min, rtol=1e-5)  # model row 0 sees only padded rows 0-3
    assert arr[0, 2:14].min() > norm_min + 0.1


@pytest.mark.parametrize("shape", [(33, 21, 11), (30, 31, 5), (45, 40, 8)])
def test_non_integral_odd_shapes_round_trip_closely(shape):
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    c = np.array(shape) / 2
    blob = (((x - c[0]) / 7) ** 2 + ((y - c[1]) / 6) ** 2 + ((z - c[2]) / 2.5) ** 2 <= 1).astype(np.uint8)
    record = plan_grid(shape, G16)
    back = from_model_grid(label_to_model_grid(blob, record), record)
    assert back.shape == shape and back.dtype == np.uint8
    kept = blob.copy()
    if shape[2] > G16.depth:  # slices cropped away cannot come back
        kept[..., :record.crop[2][0]] = 0
        kept[..., record.crop[2][1]:] = 0
    assert _dice(back, kept) > 0.85
    com = lambda m: np.array(np.nonzero(m)).mean(axis=1)  # noqa: E731
    assert np.abs(com(back) - com(kept)).max() < 1.0


def test_depth_smaller_than_grid_is_padded_and_inverted():
    shape = (32, 32, 5)
    record = plan_grid(shape, G16)
    assert record.pad[2] == (1, 2) and record.crop[2] == (0, 5)
    lab = _blocks(shape, [((2, 6), (3, 8), (0, 5))])
    down = label_to_model_grid(lab, record)
    # original slice k is model slice k + 1; padded slices are empty
    np.testing.assert_array_equal(down[..., 1:6], lab[1::2, 1::2, :])
    assert down[..., [0, 6, 7]].sum() == 0
    np.testing.assert_array_equal(from_model_grid(down, record), lab)


def test_depth_larger_than_grid_is_centre_cropped_and_refilled():
    shape = (32, 32, 12)
    record = plan_grid(shape, G16)
    assert record.crop[2] == (2, 10) and record.pad[2] == (0, 0)
    ids = np.random.default_rng(2).integers(0, 7, size=G16.shape).astype(np.int32)
    back = from_model_grid(ids, record, fill=-1)
    assert back.shape == shape
    assert (back[..., :2] == -1).all() and (back[..., 10:] == -1).all()
    np.testing.assert_array_equal(back[1::2, 1::2, 2:10], ids)
    with pytest.raises(ValueError, match="fill"):
        from_model_grid(ids.astype(np.uint8), record, fill=-1)


def test_to_model_grid_normalises_each_modality_and_is_scale_invariant():
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 50.0, size=(32, 32, 8)).astype(np.float32)
    b = rng.normal(5, 2, size=(32, 32, 8)).astype(np.float32)
    arr, record = to_model_grid([a, b, 3 * a + 7], G16)
    assert arr.shape == (3, 16, 16, 8) and arr.dtype == np.float32
    np.testing.assert_allclose(arr.reshape(3, -1).mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(arr.reshape(3, -1).std(axis=1), 1, rtol=1e-4)
    np.testing.assert_allclose(arr[2], arr[0], atol=1e-4)  # z-normalisation removes scale and offset
    assert record.means[2] == pytest.approx(3 * record.means[0] + 7, rel=1e-5)
    # constant image: no division by zero
    flat, _ = to_model_grid([np.full((32, 32, 8), 4.0, np.float32)], G16)
    assert np.isfinite(flat).all() and np.abs(flat).max() < 1e-5


def test_from_model_grid_agrees_with_monai_compose_inverse():
    shape = (27, 35, 11)
    record = plan_grid(shape, G16)
    rng = np.random.default_rng(4)
    lab = (rng.random(shape) > 0.7).astype(np.float32)
    xform = grid_transforms(record, ("label",), "nearest")
    fwd = xform({"label": MetaTensor(torch.from_numpy(lab[None]))})
    model_out = torch.from_numpy(rng.integers(0, 9, size=G16.shape).astype(np.float32))[None]
    fwd["label"] = MetaTensor(model_out, applied_operations=fwd["label"].applied_operations)
    monai_back = xform.inverse(fwd)["label"][0].numpy()
    ours = from_model_grid(model_out[0].numpy().astype(np.int32), record, fill=0)
    assert monai_back.shape == shape
    np.testing.assert_array_equal(ours, monai_back.astype(np.int32))


def test_linear_mode_maps_score_channels_back():
    record = plan_grid((30, 30, 8), G16)
    scores = np.stack([np.full(G16.shape, 0.25, np.float32), np.full(G16.shape, 0.75, np.float32)])
    back = from_model_grid(scores, record, mode="linear")
    assert back.shape == (2, 30, 30, 8) and back.dtype == np.float32
    np.testing.assert_allclose(back[0], 0.25, atol=1e-6)
    np.testing.assert_allclose(back[1], 0.75, atol=1e-6)


def test_grid_record_round_trips_through_json():
    _, record = to_model_grid([np.arange(30 * 20 * 6, dtype=np.float32).reshape(30, 20, 6)], G16)
    again = GridRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record


def test_check_fits_rules_name_the_problem():
    check_fits((32, 32, 8), G16)
    with pytest.raises(ValueError, match="in-plane size 6 < 8"):
        check_fits((6, 32, 8), G16)
    with pytest.raises(ValueError, match="upsampled more than 8x"):
        check_fits((40, 40, 32), GridSpec(512, 512, 32))
    with pytest.raises(ValueError, match="2 slices is too few"):
        check_fits((32, 32, 2), G16)
    with pytest.raises(ValueError, match="too few for grid depth 32"):
        check_fits((512, 512, 7), GridSpec(512, 512, 32))
    with pytest.raises(ValueError, match="3 positive sizes"):
        check_fits((32, 32), G16)


def test_bad_inputs_raise_clear_errors():
    img = np.zeros((32, 32, 8), np.float32)
    with pytest.raises(ValueError, match="non-empty sequence"):
        to_model_grid([], G16)
    with pytest.raises(ValueError, match="modality 1 has shape"):
        to_model_grid([img, np.zeros((32, 30, 8), np.float32)], G16)
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="modality 0 contains NaN"):
        to_model_grid([bad], G16)
    with pytest.raises(ValueError, match="expected 3D"):
        to_model_grid([img[..., 0]], G16)
    record = plan_grid(img.shape, G16)
    with pytest.raises(ValueError, match="label shape"):
        label_to_model_grid(np.zeros((32, 32, 7), np.uint8), record)
    with pytest.raises(ValueError, match="does not match the model grid"):
        from_model_grid(np.zeros((8, 8, 8), np.uint8), record)
    with pytest.raises(ValueError, match="unknown mode"):
        from_model_grid(np.zeros(G16.shape, np.uint8), record, mode="cubic")
