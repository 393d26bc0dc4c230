"""Tests for pipeline.core.refinement (step 2) and pipeline.core.refinement.combine, on hand-made volumes."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pipeline.core.refinement import RefineParams, refine_label

SHAPE = (32, 32, 8)


def box(shape, lo, hi, dtype=np.uint8):
    m = np.zeros(shape, dtype=dtype)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = 1
    return m


def reference_refine(cmap, lesion_mask, max_ratio, connectivity=1, per_slice=False, min_inside=0.0):
    """Slow, independent version of the rules (every component of a candidate cluster touching the lesion, kept
    when at most max_ratio x the lesion and at least min_inside of it inside the expert label)."""
    if per_slice:
        out = np.zeros(cmap.shape, bool)
        for z in range(cmap.shape[2]):
            out[:, :, z] = reference_refine(cmap[:, :, z], lesion_mask[:, :, z], max_ratio, min(connectivity, 2),
                                            min_inside=min_inside)
        return out
    st = ndi.generate_binary_structure(cmap.ndim, connectivity)
    out = np.zeros(cmap.shape, bool)
    les, n = ndi.label(lesion_mask, st)
    for k in range(1, n + 1):
        lesion = les == k
        for c in np.unique(cmap[lesion]):
            comp, _ = ndi.label(cmap == c, st)
            for lab in np.unique(comp[lesion]):
                region = comp == lab
                share = (region & lesion_mask.astype(bool)).sum() / region.sum()
                if region.sum() <= max_ratio * lesion.sum() and share >= min_inside:
                    out |= region
    return out


def random_case(rng, shape=(24, 24, 6), n_clusters=6):
    """Quantised smooth noise as cluster map, and blobs (~16 % of voxels) as expert label: gives several
    lesions with a mix of kept and rejected regions in both modes."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape), (1.5, 1.5, 0.7))
    cmap = np.digitize(noise, np.quantile(noise, np.linspace(0, 1, n_clusters + 1)[1:-1])).astype(np.int16)
    blobs = ndi.gaussian_filter(rng.standard_normal(shape), (2.5, 2.5, 1))
    return cmap, (blobs > blobs.mean() + blobs.std()).astype(np.uint8)


# ---------------------------------------------------------------- the rule itself


@pytest.mark.parametrize("mode", ["3d", "per_slice_2d"])
@pytest.mark.parametrize("connectivity", [1, 3])
@pytest.mark.parametrize("min_inside", [0.0, 0.5])
def test_matches_slow_reference_on_random_cases(mode, connectivity, min_inside):
    rng = np.random.default_rng(11)
    reasons = set()
    for _ in range(4):
        cmap, lesion = random_case(rng)
        params = RefineParams(mode=mode, connectivity=connectivity, max_ratio=2.0, min_inside=min_inside)
        res = refine_label(cmap, [lesion], params)
        want = reference_refine(cmap, lesion, 2.0, connectivity, per_slice=mode == "per_slice_2d",
                                min_inside=min_inside)
        np.testing.assert_array_equal(res.label, want.astype(np.uint8))
        assert res.n_kept_regions > 0 and res.n_rejected_regions > 0  # both branches exercised
        reasons |= {r.reason for les in res.lesions for r in les.regions}
        # The published one-seed-per-cluster variant grows a subset of those regions.
        one = refine_label(cmap, [lesion], RefineParams(mode=mode, connectivity=connectivity, min_inside=min_inside,
                                                        seeds_per_cluster="one")).label
        assert not (one.astype(bool) & ~want).any()
    assert reasons == ({"kept", "too_large", "mostly_outside"} if min_inside else {"kept", "too_large"})


def test_region_grows_outside_lesion_and_reports_sizes():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[8:14, 8:14, 2:5] = 1  # 108 voxels, cluster 1
    lesion = box(SHAPE, (8, 8, 2), (12, 14, 5))  # 72 voxels, all cluster 1: limit 144
    res = refine_label(cmap, [lesion])
    np.testing.assert_array_equal(res.label, (cmap == 1).astype(np.uint8))
    (les,) = res.lesions
    assert (les.n_voxels, les.candidates, les.kept_sizes, les.rejected_sizes) == (72, (1,), [108], [])
    assert les.status == "ok" and res.n_lesions == 1


def test_oversize_rejection_is_at_max_ratio_times_lesion():
    lesion = box(SHAPE, (4, 4, 2), (8, 8, 3))  # 16 voxels
    # A 6-connected snake of cluster 1 leaving the lesion: along y=4 to the border, back along y=5.
    snake = [(x, 4, 2) for x in range(8, 32)] + [(x, 5, 2) for x in range(31, 7, -1)]
    for extra, kept in [(32, True), (33, False)]:  # region sizes; the limit is 2 * 16 = 32
        region = lesion.astype(bool)
        for p in snake[: extra - 16]:
            region[p] = True
        cmap = region.astype(np.int32)
        assert region.sum() == extra
        res = refine_label(cmap, [lesion], RefineParams(max_ratio=2.0))
        (les,) = res.lesions
        assert (les.limit, les.candidates, les.regions[0].kept) == (32.0, (1,), kept)
        if kept:
            np.testing.assert_array_equal(res.label, region.astype(np.uint8))
        else:
            assert les.status == "all_rejected" and not res.label.any()


def test_min_coverage_selects_candidates():
    cmap = np.zeros(SHAPE, np.int32)
    lesion = box(SHAPE, (4, 4, 3), (8, 8, 4))  # 16 voxels
    cmap[4:8, 4:7, 3] = 1  # 12 voxels (75 %)
    cmap[4:8, 7, 3] = 2  # 4 voxels (25 %); cluster 0 is absent from the lesion
    any_voxel = refine_label(cmap, [lesion], RefineParams(min_coverage=0.0))
    assert any_voxel.lesions[0].candidates == (1, 2)
    np.testing.assert_array_equal(any_voxel.label, lesion)
    strict = refine_label(cmap, [lesion], RefineParams(min_coverage=0.3))
    assert strict.lesions[0].candidates == (1,)
    assert strict.lesions[0].cluster_voxels == {1: 12, 2: 4}
    np.testing.assert_array_equal(strict.label, (cmap == 1).astype(np.uint8))
    exactly = refine_label(cmap, [lesion], RefineParams(min_coverage=0.25))
    assert exactly.lesions[0].candidates == (1, 2)


def two_piece_case():
    """Cluster 1 appears in the lesion as two pieces that belong to two different components."""
    cmap = np.zeros(SHAPE, np.int32)
    lesion = box(SHAPE, (4, 4, 3), (12, 8, 4))  # 32 voxels
    cmap[4:6, 4:8, 3] = 1  # piece A (8 voxels)
    cmap[10:12, 4:8, 3] = 1  # piece B (8 voxels), separated by cluster 0
    return cmap, lesion


def test_seed_reproducible_and_one_vs_each_component():
    cmap, lesion = two_piece_case()
    piece_a = (cmap == 1) & (np.arange(SHAPE[0])[:, None, None] < 8)
    one = [refine_label(cmap, [lesion], RefineParams(seeds_per_cluster="one", seed=s, max_ratio=10)).label
           for s in range(12)]
    again = refine_label(cmap, [lesion], RefineParams(seeds_per_cluster="one", seed=5, max_ratio=10)).label
    np.testing.assert_array_equal(one[5], again)
    # With one seed per cluster, which piece of cluster 1 is grown depends on the seed: both happen.
    has_a = {bool((lab.astype(bool) & piece_a).any()) for lab in one}
    assert has_a == {True, False}
    # One seed per piece reaches both pieces, whatever the seed.
    each = [refine_label(cmap, [lesion], RefineParams(seed=s, max_ratio=10)) for s in range(4)]
    for res in each:
        # both pieces of cluster 1; cluster 0 (the rest of the volume) is rejected
        np.testing.assert_array_equal(res.label, (cmap == 1).astype(np.uint8))
        assert sorted(r.n_voxels for r in res.lesions[0].regions if r.cluster == 1) == [8, 8]


def test_pieces_joined_far_outside_the_lesion_are_one_region():
    cmap = np.zeros((40, 40, 3), np.int32)
    lesion = np.zeros(cmap.shape, np.uint8)
    lesion[20:24, 10:30, 1] = 1  # 80 voxels: limit 160
    cmap[20:22, 10:13, 1] = 1  # piece A
    cmap[20:22, 27:30, 1] = 1  # piece B
    cmap[2:20, 11, 1] = 1  # A goes up to x = 2 (far outside the first box) ...
    cmap[2, 11:29, 1] = 1  # ... across ...
    cmap[2:20, 28, 1] = 1  # ... and down into B
    res = refine_label(cmap, [lesion], RefineParams(min_inside=0))
    regions = [r for r in res.lesions[0].regions if r.cluster == 1]
    assert len(regions) == 1 and regions[0].kept and regions[0].n_voxels == int((cmap == 1).sum())
    np.testing.assert_array_equal(res.label, (cmap == 1).astype(np.uint8))


def test_connectivity_6_vs_26():
    cmap = np.zeros(SHAPE, np.int32)
    lesion = box(SHAPE, (4, 4, 2), (8, 8, 3))  # 16 voxels
    cmap[4:8, 4:8, 2] = 1
    cmap[8:20, 8:20, 3] = 1  # 144 voxels touching the lesion's cluster only at a corner (7,7,2)-(8,8,3)
    six = refine_label(cmap, [lesion], RefineParams(connectivity=1))
    np.testing.assert_array_equal(six.label, lesion)
    twenty_six = refine_label(cmap, [lesion], RefineParams(connectivity=3, min_inside=0))
    assert not twenty_six.label[4:8, 4:8, 2].any()  # region = 160 voxels > 2 * 16, rejected
    assert twenty_six.lesions[0].rejected_sizes[0] >= 33
    big = refine_label(cmap, [lesion], RefineParams(connectivity=3, max_ratio=10, min_inside=0))
    np.testing.assert_array_equal(big.label, (cmap == 1).astype(np.uint8))


def test_region_mostly_outside_the_expert_label_is_dropped():
    """The marrow case: a healthy cluster touching the lesion runs along outside it, under max_ratio x lesion."""
    cmap = np.zeros(SHAPE, np.int32)
    lesion = box(SHAPE, (10, 10, 2), (16, 16, 5))  # 108 voxels, limit 216
    cmap[10:16, 10:16, 2:5] = 1  # tumour cluster: the lesion itself
    cmap[11:13, 11:13, 2:5] = 2  # healthy cluster: 12 voxels inside the lesion ...
    cmap[11:13, 13:32, 2:5] = 2  # ... running on outside it: 2 x 21 x 3 = 126 voxels, 30 of them inside
    res = refine_label(cmap, [lesion])  # default min_inside 0.5
    by_cluster = {r.cluster: r for r in res.lesions[0].regions}
    assert by_cluster[2].n_voxels == 126 and by_cluster[2].inside == pytest.approx(30 / 126)
    assert (by_cluster[2].kept, by_cluster[2].reason) == (False, "mostly_outside")
    assert (by_cluster[1].kept, by_cluster[1].inside) == (True, 1.0)
    np.testing.assert_array_equal(res.label, (cmap == 1).astype(np.uint8))
    published = refine_label(cmap, [lesion], RefineParams(min_inside=0))
    np.testing.assert_array_equal(published.label, (cmap > 0).astype(np.uint8))  # 126 <= 216: kept
    # The threshold is inclusive: a region with exactly min_inside of it inside is kept.
    exactly = refine_label(cmap, [lesion], RefineParams(min_inside=30 / 126))
    assert exactly.lesions[0].status == "ok" and exactly.n_kept_regions == 2


def test_empty_expert_label_gives_empty_label():
    cmap = np.random.default_rng(0).integers(0, 5, SHAPE).astype(np.uint8)
    res = refine_label(cmap, [np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, bool)])
    assert res.label.dtype == np.uint8 and res.label.shape == SHAPE and not res.label.any()
    assert res.n_lesions == 0 and res.lesions == []


def test_lesion_touching_the_border():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[0:5, 0:5, 0:2] = 7  # region in the corner, touching three faces of the volume
    cmap[:, 20:, :] = 3
    lesion = box(SHAPE, (0, 0, 0), (5, 3, 2))  # 30 voxels: the 50-voxel region is within 2x
    res = refine_label(cmap, [lesion])
    np.testing.assert_array_equal(res.label, (cmap == 7).astype(np.uint8))
    assert res.lesions[0].regions[0].exact and res.lesions[0].bbox == ((0, 5), (0, 3), (0, 2))
    # The far corner, a large cluster: rejected, and the border does not break growth.
    lesion2 = box(SHAPE, (28, 28, 6), (32, 32, 8))
    res2 = refine_label(cmap, [lesion2])
    assert not res2.label.any() and res2.lesions[0].status == "all_rejected"


def test_no_candidate_cluster_is_reported():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[2:6, 2:6, 2] = 1
    cmap[2:6, 4:6, 2] = 2
    cmap[20:24, 20:24, 4] = 5
    lesion_a = box(SHAPE, (2, 2, 2), (6, 6, 3))  # clusters 1 and 2, each 50 %
    lesion_b = box(SHAPE, (20, 20, 4), (24, 24, 5))  # cluster 5 only
    res = refine_label(cmap, [lesion_a, lesion_b], RefineParams(min_coverage=0.6))
    assert [les.status for les in res.lesions] == ["no_candidate", "ok"]
    np.testing.assert_array_equal(res.label, lesion_b)
    ignored = refine_label(cmap, [lesion_b], RefineParams(ignore_clusters=(5,)))
    assert ignored.lesions[0].status == "no_candidate" and not ignored.label.any()


def test_several_lesions_each_with_own_limit():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[2:10, 2:10, 1:5] = 4  # 256 voxels of cluster 4
    small = box(SHAPE, (2, 2, 1), (4, 4, 2))  # 4 voxels of it: 256 > 2 * 4, rejected for this lesion
    large = box(SHAPE, (2, 5, 1), (10, 10, 5))  # 160 voxels of it: 256 <= 320, kept
    far = box(SHAPE, (20, 20, 6), (22, 22, 7))  # in cluster 0, which fills the rest: rejected
    res = refine_label(cmap, [small, large, far])
    assert res.n_lesions == 3
    assert sorted((les.n_voxels, les.status) for les in res.lesions) == [
        (4, "all_rejected"), (4, "all_rejected"), (160, "ok")]
    np.testing.assert_array_equal(res.label, (cmap == 4).astype(np.uint8))
    assert res.n_kept_regions == 1 and res.n_rejected_regions == 2


def test_per_slice_2d_differs_from_3d():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[4:8, 4:8, 2] = 1  # 16 voxels in slice 2 ...
    cmap[4:16, 4:16, 3:7] = 1  # ... sitting on a 576-voxel block of the same cluster in slices 3-6
    lesion = box(SHAPE, (4, 4, 2), (8, 8, 4))  # 32 voxels over slices 2 and 3
    three_d = refine_label(cmap, [lesion])
    assert three_d.n_lesions == 1 and not three_d.label.any()  # 592 > 64: leaked, rejected
    per_slice = refine_label(cmap, [lesion], RefineParams(mode="per_slice_2d"))
    assert per_slice.n_lesions == 2  # one 2D lesion per slice
    # slice 2: the 16-voxel square is kept; slice 3: the 144-voxel square > 2 * 16 is rejected.
    np.testing.assert_array_equal(per_slice.label, box(SHAPE, (4, 4, 2), (8, 8, 3)))
    assert sorted(les.bbox[2] for les in per_slice.lesions) == [(2, 3), (3, 4)]


def test_property_no_kept_region_exceeds_max_ratio_of_a_lesion():
    rng = np.random.default_rng(5)
    n_kept = 0
    for max_ratio in [0.5, 1.0, 2.0, 4.0, 8.0]:
        cmap, lesion = random_case(rng, n_clusters=8)
        cmap = (cmap.astype(np.uint16) * 1000 + 7)  # large, sparse ids work
        res = refine_label(cmap, [lesion], RefineParams(max_ratio=max_ratio, connectivity=2, min_inside=0))
        st = ndi.generate_binary_structure(3, 2)
        les_ids, _ = ndi.label(lesion, st)
        les_sizes = np.bincount(les_ids.ravel())
        out = res.label.astype(bool)
        n_kept += res.n_kept_regions
        # Every region in the output (component of one cluster) must fit the limit of a lesion it touches.
        for c in np.unique(cmap[out]):
            comp, n = ndi.label(out & (cmap == c), st)
            for k in range(1, n + 1):
                region = comp == k
                touched = np.unique(les_ids[region & (les_ids > 0)])
                assert region.sum() <= max_ratio * les_sizes[touched].max()
        for les in res.lesions:
            assert all(size <= les.limit for size in les.kept_sizes)
            assert all(size > les.limit for size in les.rejected_sizes)
    assert n_kept > 5  # the property was exercised


def test_postprocessing_fill_holes_and_closing_at_border():
    cmap = np.zeros(SHAPE, np.int32)
    cmap[0:6, 0:6, 0:3] = 1
    cmap[2:4, 2:4, 1] = 2  # a hole of another cluster, not in the expert label
    lesion = (cmap == 1).astype(np.uint8)
    plain = refine_label(cmap, [lesion])
    np.testing.assert_array_equal(plain.label, lesion)
    filled = refine_label(cmap, [lesion], RefineParams(fill_holes=True))
    np.testing.assert_array_equal(filled.label, box(SHAPE, (0, 0, 0), (6, 6, 3)))
    closed = refine_label(cmap, [lesion], RefineParams(closing_iterations=2))
    np.testing.assert_array_equal(closed.label, box(SHAPE, (0, 0, 0), (6, 6, 3)))  # border voxels survive
