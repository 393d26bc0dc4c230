"""Step 2 from every input kind (outline, slices, scribbles, box) on hand-made cluster maps."""

import numpy as np
import pytest

from pipeline.core.phantoms.sparse import box_input, effort, scribble_input, slices_input
from pipeline.core.refinement import InvalidInput, RefineParams, check_input, refine_label

pytestmark = pytest.mark.unit


def blob_map():
    """32x32x8: background cluster 0, a tumour block of cluster 1 at x 10-19, y 10-19, z 1-6 (600 voxels)."""
    cmap = np.zeros((32, 32, 8), dtype=np.int32)
    cmap[10:20, 10:20, 1:7] = 1
    return cmap


def test_check_input_names_the_reason():
    ok = np.zeros((4, 4, 2), np.uint8)
    check_input(ok, "outline")  # an empty outline is allowed: no lesion
    with pytest.raises(InvalidInput, match="marks no voxel"):
        check_input(ok, "box")
    with pytest.raises(InvalidInput, match="marks no voxel"):
        check_input(ok, "slices")
    bad = ok.copy()
    bad[0, 0, 0] = 3
    with pytest.raises(InvalidInput, match=r"0 unmarked, 1 tumour, 2 background.*value\(s\) 3"):
        check_input(bad, "scribbles")
    bg_only = ok.copy()
    bg_only[0, 0, 0] = 2
    with pytest.raises(InvalidInput, match="at least one tumour stroke"):
        check_input(bg_only, "scribbles")
    with pytest.raises(InvalidInput, match="found value"):
        check_input(bg_only, "outline")
    with pytest.raises(InvalidInput, match="input must be one of"):
        check_input(ok, "lasso")


def test_outline_kind_is_the_published_input():
    cmap = blob_map()
    outline = (cmap == 1).astype(np.uint8)
    outline[10, 10, 1] = 0
    a = refine_label(cmap, [outline])
    b = refine_label(cmap, [outline], kinds=["outline"])
    assert np.array_equal(a.label, b.label) and np.array_equal(a.label, cmap == 1)
    assert b.kinds == ("outline",)


def test_slices_grow_across_unannotated_slices():
    cmap = blob_map()
    marks = np.zeros_like(cmap, dtype=np.uint8)
    marks[11:19, 11:19, 2] = 1
    marks[11:19, 11:19, 5] = 1
    res = refine_label(cmap, [marks], kinds=["slices"])
    assert np.array_equal(res.label, cmap == 1)  # slices 1, 3, 4 and 6 were never marked
    assert res.n_lesions == 1  # the two marked slices are one lesion (filled between them)
    # extent: slices 1-6, each a copy of the nearest marked slice (one slice beyond each end: half the gap)
    assert res.lesions[0].n_voxels == 64 * 6


def test_slices_judge_regions_only_on_marked_slices():
    """A region that lies mostly outside the marks on the marked slices is dropped; unmarked slices do not
    count against it (with outline they would: there a slice without marks is background)."""
    cmap = blob_map()
    cmap[:, :, 0] = 2  # a cluster 2 sheet on slice 0 only, touching the marks' slice? no: slice 0 is unmarked
    cmap[12:18, 12:18, 3] = 2  # a piece of cluster 2 inside the lesion on slice 3, joined to nothing
    marks = np.zeros_like(cmap, dtype=np.uint8)
    marks[10:20, 10:20, 3] = 1
    res = refine_label(cmap, [marks], kinds=["slices"], params=RefineParams(max_ratio=100))
    assert res.label[12:18, 12:18, 3].all()  # cluster 2's piece lies wholly inside the marks
    assert not res.label[:, :, 0].any()


def test_one_stroke_in_one_slice_makes_the_3d_label():
    cmap = blob_map()
    strokes = np.zeros_like(cmap, dtype=np.uint8)
    strokes[10:20, 15, 3] = 1  # across the lesion: a ball of diameter 10 (523 voxels) is its extent
    res = refine_label(cmap, [strokes], kinds=["scribbles"], spacing=(1.0, 1.0, 1.0))
    assert np.array_equal(res.label, cmap == 1)
    assert res.lesions[0].candidates == (1,)


def test_stroke_limit_comes_from_the_marked_extent():
    """A stroke 10 mm long sets a ball of diameter 10 mm; with 4 mm slices that ball is a quarter of the voxels
    it has with 1 mm ones, and the 600-voxel block is over twice it."""
    cmap = blob_map()
    strokes = np.zeros_like(cmap, dtype=np.uint8)
    strokes[10:20, 15, 3] = 1
    res = refine_label(cmap, [strokes], kinds=["scribbles"], spacing=(1.0, 1.0, 4.0))
    # 4 mm slices: the 6 mm ball spans 1.5 slices, so its voxel count (and the limit) shrinks
    assert res.lesions[0].n_voxels < 300 and not res.label.any()
    assert res.lesions[0].regions[0].reason == "too_large"


def test_background_strokes_cut_a_region_off():
    """The tumour (cluster 1, x 10-19) touches a healthy structure of the same cluster (x 20-29) through a
    bridge; without background strokes the region is one and too large; a stroke across the join cuts it."""
    cmap = blob_map()
    cmap[20:32, 8:24, 1:7] = 1
    strokes = np.zeros_like(cmap, dtype=np.uint8)
    strokes[10:20, 15, 3] = 1
    plain = refine_label(cmap, [strokes], kinds=["scribbles"])
    assert plain.lesions[0].regions[0].reason == "too_large" and not plain.label.any()
    with_bg = strokes.copy()
    with_bg[20, :, :] = 2  # a background wall where the healthy structure starts
    res = refine_label(cmap, [with_bg], kinds=["scribbles"])
    assert res.label[10:20, 10:20, 1:7].all()
    assert not res.label[20:, :, :].any()


def test_cluster_more_common_under_background_strokes_is_vetoed():
    cmap = blob_map()
    cmap[10:20, 10:20, 3] = 3  # cluster 3: a slice of the lesion that goes on outside it
    cmap[10:20, 20:28, 3] = 3
    strokes = np.zeros_like(cmap, dtype=np.uint8)
    strokes[10:20, 15, 2:5] = 1  # cluster 3 is 10 of the 30 tumour stroke voxels (a third)
    strokes[0:32, 22, 3] = 2  # and 10 of 32 background stroke voxels: a smaller share, so not vetoed
    kept = refine_label(cmap, [strokes], kinds=["scribbles"], params=RefineParams(max_ratio=50, min_inside=0))
    assert 3 in kept.lesions[0].candidates
    strokes[0:32, 22, 3] = 0
    strokes[5:25, 22, 3] = 2  # now 10 of 20: half the background strokes against a third of the tumour ones
    vetoed = refine_label(cmap, [strokes], kinds=["scribbles"], params=RefineParams(max_ratio=50, min_inside=0))
    assert 3 not in vetoed.lesions[0].candidates and 1 in vetoed.lesions[0].candidates


def test_box_around_two_lesions_keeps_both_and_stays_in_the_box():
    cmap = np.zeros((40, 32, 8), dtype=np.int32)
    cmap[8:16, 10:20, 2:6] = 1  # lesion A
    cmap[22:30, 10:20, 2:6] = 1  # lesion B, same tissue, separate
    cmap[:, 24:, :] = 2  # a large healthy cluster reaching into the box's corner
    box = np.zeros_like(cmap, dtype=np.uint8)
    box[7:31, 9:26, 1:7] = 1
    res = refine_label(cmap, [box], kinds=["box"])
    assert res.label[8:16, 10:20, 2:6].all() and res.label[22:30, 10:20, 2:6].all()
    assert not res.label[:, 24:, :].any()  # the healthy cluster leaves the box: rejected
    assert not res.label[box == 0].any()
    assert int(res.label.sum()) == 2 * 8 * 10 * 4


def test_mixed_raters_and_kinds_combine():
    cmap = blob_map()
    cmap[2:6, 2:6, 2:5] = 1  # a second lesion only rater r2 marked, with a box
    outline = np.zeros_like(cmap, dtype=np.uint8)
    outline[11:19, 11:19, 1:7] = 1
    box = np.zeros_like(cmap, dtype=np.uint8)
    box[1:7, 1:7, 1:6] = 1
    res = refine_label(cmap, [outline, box], raters=["r1", "r2"], kinds=["outline", "box"])
    assert res.label[10:20, 10:20, 1:7].all() and res.label[2:6, 2:6, 2:5].all()
    assert res.n_lesions == 2


def test_wrong_input_is_refused_with_its_index():
    cmap = blob_map()
    scribble = np.zeros_like(cmap, dtype=np.uint8)
    scribble[0, 0, 0] = 5
    with pytest.raises(InvalidInput, match=r"expert_labels\[1\]"):
        refine_label(cmap, [np.zeros_like(scribble), scribble], kinds=["outline", "scribbles"])
    with pytest.raises(ValueError, match="kinds names 1 kinds for 2 labels"):
        refine_label(cmap, [scribble, scribble], kinds=["box"])


def test_simulated_inputs_and_effort():
    outline = np.zeros((32, 32, 9), np.uint8)
    outline[8:24, 8:24, 1:8] = 1  # seven lesion slices, middle z = 4
    sl = slices_input(outline, every=3)
    assert sorted(np.flatnonzero(sl.any(axis=(0, 1)))) == [1, 4, 7]
    assert np.array_equal(slices_input(outline, every=1), outline)
    sc = scribble_input(outline, n_slices=2)
    assert set(np.unique(sc)) == {0, 1, 2}
    assert list(np.flatnonzero(sc.any(axis=(0, 1)))) == [3, 4]
    assert not (outline[sc == 2]).any() and outline[sc == 1].all()
    bx = box_input(outline)
    assert np.array_equal(bx, outline)  # the outline is a box already
    assert effort(sl, "slices").slices == 3 and effort(outline, "outline").slices == 7
    assert effort(sl, "slices").seconds < effort(outline, "outline").seconds
    assert effort(bx, "box").seconds == 10.0
