"""Combining raters (union, majority, STAPLE) and refinement parameters and input checks."""

import numpy as np
import pytest

from pipeline.core.refinement import RefineParams, combine_labels, combine_raters, refine_label, staple
from tests.core.test_refine import SHAPE, box

# ---------------------------------------------------------------- combining expert labels


def test_combine_modes_by_hand():
    a = np.array([1, 1, 1, 0, 0, 0], np.uint8).reshape(6, 1, 1)
    b = np.array([1, 1, 0, 1, 0, 0], np.uint8).reshape(6, 1, 1)
    c = np.array([1, 0, 0, 0, 1, 0], np.uint8).reshape(6, 1, 1)
    assert combine_labels([a, b, c], "union").ravel().tolist() == [1, 1, 1, 1, 1, 0]
    assert combine_labels([a, b, c], "intersection").ravel().tolist() == [1, 0, 0, 0, 0, 0]
    assert combine_labels([a, b, c], "majority").ravel().tolist() == [1, 1, 0, 0, 0, 0]
    # 2 raters: a tie (1 of 2) is not a strict majority.
    assert combine_labels([a, b], "majority").ravel().tolist() == [1, 1, 0, 0, 0, 0]
    assert combine_labels([a], "union").dtype == np.uint8


def naive_staple(stack, n_iter):
    """Per-voxel EM (no pattern grouping), same initialisation and prior."""
    d = stack.reshape(len(stack), -1).astype(float)
    f = d.mean()
    p = np.full(len(d), 0.99)
    q = np.full(len(d), 0.99)
    for _ in range(n_iter):
        a = f * np.prod(np.where(d == 1, p[:, None], 1 - p[:, None]), axis=0)
        b = (1 - f) * np.prod(np.where(d == 0, q[:, None], 1 - q[:, None]), axis=0)
        w = a / (a + b)
        p = (d * w).sum(1) / w.sum()
        q = ((1 - d) * (1 - w)).sum(1) / (1 - w).sum()
    a = f * np.prod(np.where(d == 1, p[:, None], 1 - p[:, None]), axis=0)
    b = (1 - f) * np.prod(np.where(d == 0, q[:, None], 1 - q[:, None]), axis=0)
    return a / (a + b), p, q


def test_staple_hand_example_and_naive_em():
    shape = (12, 12, 4)
    core = box(shape, (3, 3, 1), (8, 8, 3))
    over = box(shape, (2, 2, 0), (10, 10, 4))  # over-segmenting rater
    under = box(shape, (4, 3, 1), (8, 8, 3))  # misses one row
    res = staple([core, core, over, under])
    # The over-segmenter's extra shell is outvoted and it gets the lowest specificity; the consensus is core.
    np.testing.assert_array_equal(res.consensus, core)
    assert res.specificity[2] == min(res.specificity) < 1.0
    assert res.sensitivity[3] == min(res.sensitivity) < 1.0
    assert res.converged
    prob, p, q = naive_staple(np.stack([core, core, over, under]), res.n_iter)
    np.testing.assert_allclose(res.probability.ravel(), prob, atol=1e-6)
    np.testing.assert_allclose(res.sensitivity, p, atol=1e-8)
    np.testing.assert_allclose(res.specificity, q, atol=1e-8)
    np.testing.assert_array_equal(combine_labels([core, core, over, under], "staple"), core)


def test_staple_identical_and_empty_raters():
    m = box((6, 6, 3), (1, 1, 1), (4, 4, 2))
    res = staple([m, m, m])
    np.testing.assert_array_equal(res.consensus, m)
    np.testing.assert_allclose(res.sensitivity, 1.0, atol=1e-6)
    z = np.zeros_like(m)
    empty = staple([z, z])
    assert not empty.consensus.any() and np.isnan(empty.sensitivity).all()


def test_refine_with_staple_combination():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[10:14, 10:14, 3] = 2
    core = box(SHAPE, (10, 10, 3), (14, 14, 4))
    stray = box(SHAPE, (25, 25, 6), (27, 27, 7))
    with_stray = np.maximum(core, stray)
    res = refine_label(cmap, [core, core, with_stray], RefineParams(combine="staple"))
    np.testing.assert_array_equal(res.combined, core)
    np.testing.assert_array_equal(res.label, core)
    union = refine_label(cmap, [core, core, with_stray])
    assert union.n_lesions == 2


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, field", [
    ({"combine": "vote"}, "combine"), ({"min_coverage": 1.5}, "min_coverage"), ({"max_ratio": 0}, "max_ratio"),
    ({"max_ratio": float("nan")}, "max_ratio"), ({"connectivity": 4}, "connectivity"),
    ({"closing_iterations": -1}, "closing_iterations"), ({"seed": -3}, "seed"), ({"mode": "2d"}, "mode"),
    ({"seeds_per_cluster": "all"}, "seeds_per_cluster"), ({"fill_holes": 1}, "fill_holes"),
    ({"ignore_clusters": ("a",)}, "ignore_clusters"),
])
def test_params_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RefineParams(**kwargs)


def test_params_from_dict_round_trip():
    p = RefineParams.from_dict({"max_ratio": 3.0, "ignore_clusters": [0, 9], "mode": "per_slice_2d"})
    assert p.ignore_clusters == (0, 9) and RefineParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="max_ration"):
        RefineParams.from_dict({"max_ration": 3})


def test_bad_inputs_have_clear_messages():
    cmap = np.zeros(SHAPE, np.int32)
    lab = box(SHAPE, (1, 1, 1), (3, 3, 2))
    with pytest.raises(ValueError, match="integer dtype"):
        refine_label(cmap.astype(np.float32), [lab])
    with pytest.raises(ValueError, match="3D"):
        refine_label(cmap[:, :, 0], [lab[:, :, 0]])
    with pytest.raises(ValueError, match=r"expert_labels\[1\] has shape"):
        refine_label(cmap, [lab, lab[:, :, :4]])
    with pytest.raises(ValueError, match="cluster_map has shape"):
        refine_label(cmap[:, :, :4], [lab])
    with pytest.raises(ValueError, match=r"expert_labels\[0\] must contain only 0 and 1"):
        refine_label(cmap, [lab * 255])
    with pytest.raises(TypeError, match="wrap it in a list"):
        refine_label(cmap, lab)
    with pytest.raises(ValueError, match="empty"):
        refine_label(cmap, [])


def test_combine_raters_unites_each_raters_modalities_first():
    inner = box(SHAPE, (10, 10, 3), (14, 14, 5))
    t1_r1, t2_r1 = box(SHAPE, (10, 10, 3), (14, 16, 5)), box(SHAPE, (10, 8, 3), (14, 14, 5))  # r1: 2 outlines
    r2, r3 = inner, box(SHAPE, (9, 9, 3), (15, 15, 6))
    r1 = np.maximum(t1_r1, t2_r1)
    labels, raters = [t1_r1, t2_r1, r2, r3], ["r1", "r1", "r2", "r3"]
    for method in ("majority", "staple", "union", "intersection"):
        np.testing.assert_array_equal(combine_raters(labels, raters, method), combine_labels([r1, r2, r3], method))
    # one rater: their union whatever the method (a consensus of t1 vs t2 would keep only the overlap)
    for method in ("majority", "staple", "intersection"):
        np.testing.assert_array_equal(combine_raters([t1_r1, t2_r1], ["r1", "r1"], method), r1)
    assert combine_labels([t1_r1, t2_r1], "intersection").sum() < r1.sum()
    np.testing.assert_array_equal(combine_raters(labels, None, "majority"), combine_labels(labels, "majority"))
    with pytest.raises(ValueError, match="raters names 2 raters for 4 labels"):
        combine_raters(labels, ["r1", "r2"], "union")
    with pytest.raises(ValueError, match="method must be one of"):
        combine_raters(labels, raters, "vote")


def test_refine_label_with_rater_names():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[10:14, 10:14, 3:5] = 2
    core = box(SHAPE, (10, 10, 3), (14, 14, 5))
    stray = box(SHAPE, (25, 25, 6), (27, 27, 7))
    # r3 drew a stray blob on its t2 only; STAPLE across raters drops it, r1's two outlines are kept united
    labels = [core, core, core, np.maximum(core, stray)]
    res = refine_label(cmap, labels, RefineParams(combine="staple"), raters=["r1", "r1", "r2", "r3"])
    np.testing.assert_array_equal(res.combined, core)
    assert res.n_lesions == 1 and res.label.sum() == core.sum()
