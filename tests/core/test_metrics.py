"""Tests for pipeline.core.metrics against hand-worked examples and MONAI."""

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage as ndi

from pipeline.core import metrics


def cube(shape, lo, hi):
    m = np.zeros(shape, dtype=np.uint8)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = 1
    return m


def test_dice_two_cubes_known_overlap():
    # 4^3 cubes offset by 2 on every axis overlap in a 2^3 cube: 2*8 / (64+64).
    a = cube((10, 10, 10), (0, 0, 0), (4, 4, 4))
    b = cube((10, 10, 10), (2, 2, 2), (6, 6, 6))
    assert metrics.dice(a, b) == pytest.approx(16 / 128)
    assert metrics.dice(a, a) == 1.0
    assert metrics.dice(a, np.zeros_like(a)) == 0.0
    assert metrics.dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_hd95_shifted_cube_hand_worked():
    # a: x 2..5, b: x 5..8 (shift 3). Distances from a's surface to b's surface are 5 - x:
    # 16 voxels at 3, 12 at 2, 12 at 1, 16 at 0; the 95th percentile (index 52.25 of 56) is 3, same both ways.
    a = cube((12, 8, 8), (2, 2, 2), (6, 6, 6))
    b = cube((12, 8, 8), (5, 2, 2), (9, 6, 6))
    d_ab, d_ba = metrics.surface_distances(a, b)
    assert sorted(np.bincount(d_ab.astype(int)).tolist()) == [12, 12, 16, 16]
    assert metrics.hd95(a, b) == pytest.approx(3.0)
    # Anisotropic spacing along the shift axis scales it; spacing across it does not matter here.
    assert metrics.hd95(a, b, spacing=(2.0, 0.5, 3.0)) == pytest.approx(6.0)
    assert metrics.hd95(a, a) == 0.0


def test_hd95_empty_is_nan():
    a = cube((8, 8, 4), (1, 1, 1), (3, 3, 3))
    z = np.zeros_like(a)
    assert math.isnan(metrics.hd95(a, z))
    assert math.isnan(metrics.hd95(z, a))
    assert math.isnan(metrics.hd95(z, z))


def test_hd95_matches_monai_on_random_blobs():
    rng = np.random.default_rng(3)
    for spacing in [(1.0, 1.0, 1.0), (0.7, 0.7, 3.0)]:
        for _ in range(3):
            a = (ndi.gaussian_filter(rng.standard_normal((24, 20, 8)), 2) > 0.05).astype(np.uint8)
            b = (ndi.gaussian_filter(rng.standard_normal((24, 20, 8)), 2) > 0.05).astype(np.uint8)
            expected = compute_hausdorff_distance(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None],
                                                  percentile=95, spacing=list(spacing)).item()
            assert metrics.hd95(a, b, spacing) == pytest.approx(expected, rel=1e-5)


def test_hd95_border_touching_mask_matches_full_volume_erosion():
    # Mask touching the volume border: the cropped computation must equal the uncropped definition.
    a = cube((10, 10, 5), (0, 0, 0), (5, 10, 5))
    b = cube((10, 10, 5), (3, 2, 1), (9, 7, 4))
    sa = a.astype(bool) ^ ndi.binary_erosion(a)
    sb = b.astype(bool) ^ ndi.binary_erosion(b)
    pa, pb = np.argwhere(sa), np.argwhere(sb)
    dist = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    expected = max(np.percentile(dist.min(1), 95), np.percentile(dist.min(0), 95))
    assert metrics.hd95(a, b) == pytest.approx(expected)


def test_volumes_and_similarity():
    a = cube((10, 10, 10), (0, 0, 0), (4, 4, 4))  # 64 voxels
    b = cube((10, 10, 10), (0, 0, 0), (2, 4, 4))  # 32 voxels
    sp = (0.5, 0.5, 2.0)  # 0.5 mm^3 per voxel
    assert metrics.volume_ml(a, sp) == pytest.approx(64 * 0.5 / 1000)
    assert metrics.volume_difference_ml(a, b, sp) == pytest.approx(32 * 0.5 / 1000)
    assert metrics.volume_difference_ml(b, a, sp) == pytest.approx(-32 * 0.5 / 1000)
    assert metrics.volume_similarity(a, b) == pytest.approx(1 - 32 / 96)
    z = np.zeros_like(a)
    assert metrics.volume_similarity(z, z) == 1.0
    assert metrics.volume_similarity(a, z) == 0.0


def test_compare_collects_everything():
    a = cube((12, 8, 8), (2, 2, 2), (6, 6, 6))
    b = cube((12, 8, 8), (5, 2, 2), (9, 6, 6))
    out = metrics.compare(a, b, (1.0, 1.0, 2.0))
    assert out == {
        "dice": pytest.approx(2 * 16 / 128),
        "hd95_mm": pytest.approx(3.0),
        "volume_pred_ml": pytest.approx(0.128),
        "volume_ref_ml": pytest.approx(0.128),
        "volume_difference_ml": pytest.approx(0.0),
        "volume_similarity": pytest.approx(1.0),
    }


def test_bad_input_messages():
    a = cube((4, 4, 4), (0, 0, 0), (2, 2, 2))
    with pytest.raises(ValueError, match="b has shape"):
        metrics.dice(a, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.dice(a, a * 2)
    with pytest.raises(ValueError, match="integer or bool"):
        metrics.dice(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="spacing must have 3"):
        metrics.hd95(a, a, (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        metrics.volume_ml(a, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="ref has shape"):
        metrics.compare(a, np.zeros((4, 4, 3), np.uint8))


def test_best_regions_keeps_regions_mostly_inside_the_truth():
    from pipeline.core.metrics import best_regions

    truth = np.zeros((12, 12, 4), np.uint8)
    truth[2:8, 2:8, 1:3] = 1  # 72 voxels
    cmap = np.zeros(truth.shape, np.int32)
    cmap[2:8, 2:6, 1:3] = 1  # inside
    cmap[2:8, 6:8, 1:3] = 2  # inside, then ...
    cmap[2:8, 8:9, 1:3] = 2  # ... a little outside: 24 in, 12 out -> kept
    cmap[8:12, 2:8, 1:3] = 3  # outside
    cmap[2:3, 2:3, 1] = 4  # one voxel inside, its big cluster mostly outside -> dropped
    cmap[0:2, :, :] = 4
    got = best_regions(cmap, truth)
    want = np.isin(cmap, (1, 2)) & (np.arange(12)[:, None, None] < 8)
    np.testing.assert_array_equal(got, want)
    assert not best_regions(cmap, np.zeros_like(truth)).any()
    with pytest.raises(ValueError, match="shape"):
        best_regions(cmap[:, :, :2], truth)
