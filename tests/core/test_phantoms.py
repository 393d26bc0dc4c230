"""Tests of the phantom generator (pipeline.core.phantoms): geometry, contrasts, raters, files."""

import csv
from functools import cache

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from pipeline.core import phantoms as ph


def dice(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@cache
def case(seed=0, size=32, depth=8):
    return ph.make_phantom_case(f"case{seed:03d}", size=size, depth=depth, seed=seed)


# --- generation ---------------------------------------------------------------------------------


def test_deterministic_from_seed_and_seeds_differ():
    a = ph.make_phantom_case(size=32, depth=8, seed=5)
    b = ph.make_phantom_case(size=32, depth=8, seed=5)
    c = ph.make_phantom_case(size=32, depth=8, seed=6)
    for m in a.images:
        np.testing.assert_array_equal(a.images[m], b.images[m])
    for k in a.rater_labels:
        np.testing.assert_array_equal(a.rater_labels[k], b.rater_labels[k])
    np.testing.assert_array_equal(a.truth, b.truth)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert not np.array_equal(a.truth, c.truth)
    assert not np.array_equal(a.images["t2"], c.images["t2"])


def test_streams_independent_of_other_modalities_and_raters():
    full = case(3)
    only_t2 = ph.make_phantom_case("case003", size=32, depth=8, seed=3, modalities=("t2",), raters=("r1",))
    np.testing.assert_array_equal(only_t2.images["t2"], full.images["t2"])
    np.testing.assert_array_equal(only_t2.rater_labels[("r1", "t2")], full.rater_labels[("r1", "t2")])
    assert set(only_t2.images) == {"t2"} and set(only_t2.rater_labels) == {("r1", "t2")}


def test_shapes_dtypes_and_affine():
    c = ph.make_phantom_case("abc", size=40, depth=6, seed=1)
    assert c.case_id == "abc" and c.shape == (40, 40, 6)
    assert set(c.images) == {"t1fsce", "t2"}
    assert set(c.rater_labels) == {(r, m) for r in ("r1", "r2", "r3") for m in ("t1fsce", "t2")}
    for img in c.images.values():
        assert img.dtype == np.float32 and img.shape == (40, 40, 6)
        assert np.isfinite(img).all() and img.min() >= 0
    for mask in [c.truth, c.oedema, *c.rater_labels.values()]:
        assert mask.dtype == np.uint8 and mask.shape == (40, 40, 6)
        assert set(np.unique(mask)) <= {0, 1}
    assert c.affine.shape == (4, 4) and c.affine.dtype == np.float64
    step = 0.5 * 256 / 40
    np.testing.assert_allclose(c.spacing, (step, step, 4.0))
    np.testing.assert_allclose(c.affine[:3, :3], np.diag([step, step, 4.0]))
    np.testing.assert_array_equal(c.affine[3], [0, 0, 0, 1])
    # In-plane the grid is centred on the world origin.
    np.testing.assert_allclose(c.affine[:2, 3], [-(40 - 1) / 2 * step] * 2)


def test_truth_inside_limb_on_some_but_not_all_slices():
    for seed in range(4):
        c = case(seed)
        truth = c.truth.astype(bool)
        assert truth.sum() > 10
        under = c.anatomy[truth]
        assert np.isin(under, (ph.MUSCLE, ph.FAT, ph.CORTEX, ph.MARROW)).all()  # FAT = septa only
        slices = np.flatnonzero(truth.any(axis=(0, 1)))
        assert 3 <= slices.size < c.shape[2]
        assert slices[0] > 0 and slices[-1] < c.shape[2] - 1
        assert np.array_equal(slices, np.arange(slices[0], slices[-1] + 1))  # contiguous


def test_tumour_breaks_through_cortex():
    for seed in range(6):
        c = case(seed)
        under = c.anatomy[c.truth.astype(bool)]
        for tissue in (ph.MARROW, ph.CORTEX, ph.MUSCLE):
            assert (under == tissue).any(), (seed, ph.TISSUE_NAMES[tissue])


def test_oedema_disjoint_surrounding_and_tissue_map_consistent():
    for seed in range(3):
        c = case(seed)
        truth, oed = c.truth.astype(bool), c.oedema.astype(bool)
        assert oed.any() and not (truth & oed).any()
        # Oedema lies around the tumour: most of it within 2 voxels of it.
        near = ndimage.binary_dilation(truth, iterations=2)
        assert (oed & near).sum() > 0.5 * oed.sum()
        assert np.array_equal(np.isin(c.tissue, (ph.RIM, ph.CORE)), truth)
        assert np.array_equal(c.tissue == ph.OEDEMA, oed)
        assert (c.tissue == ph.CORE).any() and (c.tissue == ph.RIM).any()
        healthy = ~(truth | oed)
        assert np.array_equal(c.tissue[healthy], c.anatomy[healthy])


def test_contrast_relations():
    c = case(2, size=64)
    t1, t2, tis = c.images["t1fsce"], c.images["t2"], c.tissue

    def mean(img, code):
        return float(img[tis == code].mean())

    assert mean(t2, ph.CORE) > mean(t2, ph.MUSCLE)  # necrosis is fluid
    assert mean(t2, ph.OEDEMA) > mean(t2, ph.MUSCLE)
    assert mean(t2, ph.FAT) > mean(t2, ph.MUSCLE)  # fat bright-ish on t2
    assert mean(t2, ph.CORTEX) < mean(t2, ph.MUSCLE)  # cortex dark
    assert mean(t1, ph.RIM) > mean(t1, ph.CORE)  # rim enhances, necrosis does not
    assert mean(t1, ph.RIM) > mean(t1, ph.MUSCLE)
    assert mean(t1, ph.FAT) < mean(t1, ph.MUSCLE)  # fat suppressed
    assert mean(t1, ph.MUSCLE) < mean(t1, ph.OEDEMA) < mean(t1, ph.RIM)


def test_rician_background_and_noise_free_config():
    c = case(1, size=64)
    bg = c.images["t2"][c.tissue == ph.BACKGROUND]
    # Zero signal + complex Gaussian noise -> Rayleigh with mean sigma * sqrt(pi / 2).
    sigma = ph.PhantomConfig().noise_sigma * ph.PhantomConfig().intensity_scale
    assert bg.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.05)
    cfg = ph.PhantomConfig(noise_sigma=0.0, blur_sigma_vox=0.0, bias_strength=0.0)
    clean = ph.make_phantom_case(size=32, depth=8, seed=1, config=cfg)
    assert (clean.images["t2"][clean.tissue == ph.BACKGROUND] == 0).all()
    # Without bias the muscle mean matches the contrast table (texture is zero-mean).
    muscle = clean.images["t2"][clean.tissue == ph.MUSCLE]
    assert muscle.mean() == pytest.approx(ph.CONTRASTS["t2"][ph.MUSCLE], rel=0.03)


def test_bias_field_is_multiplicative_and_per_modality():
    base = dict(noise_sigma=0.0, blur_sigma_vox=0.0)
    flat = ph.make_phantom_case(size=32, depth=8, seed=4, config=ph.PhantomConfig(bias_strength=0.0, **base))
    biased = ph.make_phantom_case(size=32, depth=8, seed=4, config=ph.PhantomConfig(bias_strength=0.2, **base))
    fg = flat.tissue != ph.BACKGROUND
    ratios = {}
    for m in flat.images:
        ratio = np.ones(fg.shape)
        ratio[fg] = biased.images[m][fg] / flat.images[m][fg]
        assert 0.4 < ratio[fg].min() and ratio[fg].max() < 2.5 and ratio[fg].max() > 1.02 * ratio[fg].min()
        # Smooth: neighbouring foreground voxels (1 in-plane step = 4 mm) differ by < 2 %.
        both = fg[1:] & fg[:-1]
        assert np.abs(ratio[1:][both] / ratio[:-1][both] - 1).max() < 0.02
        ratios[m] = ratio[fg]
    assert not np.allclose(ratios["t1fsce"], ratios["t2"])


def test_smooth_noise_field_statistics():
    rng = np.random.default_rng(0)
    f = ph.smooth_noise_field(rng, (60, 60, 30), (1.0, 1.0, 2.0), 3.0)
    assert f.dtype == np.float32 and f.shape == (60, 60, 30)
    # ~20 x 20 x 20 independent cells: the sample mean is ~N(0, 1/sqrt(8000)).
    assert abs(float(f.mean())) < 0.1 and 0.9 < float(f.std()) < 1.1
    near = np.corrcoef(f[:-1].ravel(), f[1:].ravel())[0, 1]
    far = np.corrcoef(f[:-15].ravel(), f[15:].ravel())[0, 1]
    assert near > 0.9 and abs(far) < 0.1
    with pytest.raises(ValueError, match="corr_mm"):
        ph.smooth_noise_field(rng, (8, 8, 8), (1, 1, 1), 0.0)


# --- raters -------------------------------------------------------------------------------------


def test_rater_labels_differ_with_plausible_dice():
    scores = []
    for seed in range(3):
        c = case(seed, size=48)
        labels = c.rater_labels
        truth_slices = set(np.flatnonzero(c.truth.any(axis=(0, 1))))
        for key, lab in labels.items():
            assert lab.any() and not np.array_equal(lab, c.truth), key
            assert set(np.flatnonzero(lab.any(axis=(0, 1)))) <= truth_slices, key
            d = dice(lab, c.truth)
            assert 0.45 < d < 0.98, (seed, key, d)
            scores.append(d)
        keys = list(labels)
        for i, k1 in enumerate(keys):
            for k2 in keys[i + 1:]:
                assert not np.array_equal(labels[k1], labels[k2]), (k1, k2)
    assert 0.68 < np.mean(scores) < 0.88


def test_rater_personalities():
    over = under = inc_oed = exc_oed = 0.0
    for seed in range(4):
        c = case(seed, size=48)
        vol = c.truth.sum()
        for m in ("t1fsce", "t2"):
            over += c.rater_labels[("r1", m)].sum() / vol
            under += c.rater_labels[("r2", m)].sum() / vol
            oed = c.oedema.astype(bool)
            inc_oed += (c.rater_labels[("r3", m)].astype(bool) & oed).sum() / oed.sum()
            exc_oed += (c.rater_labels[("r2", m)].astype(bool) & oed).sum() / oed.sum()
    assert over / 8 > 1.05 and under / 8 < 0.95
    assert inc_oed > 2 * exc_oed


def test_custom_rater_style_and_missed_slices():
    c = ph.make_phantom_case(size=32, depth=8, seed=2, raters=("a", "b"),
                             rater_styles={"b": ph.RaterStyle(miss_end_prob=1.0, wobble_mm=0.0,
                                                              modality_margin_mm={})})
    truth_slices = np.flatnonzero(c.truth.any(axis=(0, 1)))
    for m in ("t1fsce", "t2"):
        lab_slices = np.flatnonzero(c.rater_labels[("b", m)].any(axis=(0, 1)))
        np.testing.assert_array_equal(lab_slices, truth_slices[1:-1])
        # No wobble, no margin: on the remaining slices the label is the truth itself.
        inner = slice(truth_slices[1], truth_slices[-1])
        np.testing.assert_array_equal(c.rater_labels[("b", m)][..., inner], c.truth[..., inner])
    with pytest.raises(ValueError, match="miss_end_prob"):
        ph.RaterStyle(miss_end_prob=2.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(size=8), "size"),
        (dict(depth=3), "depth"),
        (dict(seed=-1), "seed"),
        (dict(modalities=("flair",)), "flair"),
        (dict(modalities=()), "modalities"),
        (dict(raters=("dr_x",)), "dr_x"),
        (dict(raters=("a", "a")), "duplicates"),
        (dict(case_id="case 1"), "case 1"),
        (dict(rater_styles={"zz": ph.RaterStyle()}), "zz"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ph.make_phantom_case(**{"size": 32, "depth": 8, **kwargs})


# --- files and manifests ------------------------------------------------------------------------


def read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    calls = []
    manifest = ph.write_phantom_dataset(out / "data", n_cases=3, size=32, depth=5, seed=7,
                                        progress=lambda i, n: calls.append((i, n)))
    return manifest, calls


def test_dataset_files_roundtrip(dataset):
    manifest, calls = dataset
    assert calls == [(1, 3), (2, 3), (3, 3)]
    folder = manifest.parent
    assert manifest.name == "manifest.csv"
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp")]
    header, rows = read_csv(manifest)
    for i in range(3):
        c = ph.make_phantom_case(f"case{i:03d}", size=32, depth=5, seed=ph.case_seed(7, i))
        expected = {f"case{i:03d}_{m}.nii.gz": (c.images[m], np.float32) for m in c.images}
        expected[f"case{i:03d}_truth.nii.gz"] = (c.truth, np.uint8)
        for (r, m), lab in c.rater_labels.items():
            expected[f"case{i:03d}_{r}_{m}_label.nii.gz"] = (lab, np.uint8)
        assert {row["file"] for row in rows if row["case"] == f"case{i:03d}"} == set(expected)
        for name, (array, dtype) in expected.items():
            img = nib.load(folder / name)
            data = np.asanyarray(img.dataobj)
            assert data.dtype == dtype, name
            np.testing.assert_array_equal(data, array)
            np.testing.assert_allclose(img.affine, c.affine)
            assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    assert ph.case_seed(7, 0) != ph.case_seed(7, 1) != ph.case_seed(8, 1)


def test_manifest_columns_and_rows(dataset):
    manifest, _ = dataset
    header, rows = read_csv(manifest)
    assert header == ["case", "file", "modality", "kind", "source", "rater", "prediction_set", "data_split", "input"]
    assert len(rows) == 3 * (2 + 1 + 6)
    for row in rows:
        assert row["prediction_set"] == ""
        if row["kind"] == "image":
            assert row["source"] == "" and row["rater"] == "" and row["modality"] in ("t1fsce", "t2")
            assert row["file"] == f"{row['case']}_{row['modality']}.nii.gz"
        elif row["source"] == "truth":
            assert row["kind"] == "label" and row["rater"] == "" and row["modality"] == ""
        else:
            assert (row["kind"], row["source"], row["input"]) == ("label", "expert", "outline")
            assert row["file"] == f"{row['case']}_{row['rater']}_{row['modality']}_label.nii.gz"
    split_of = {r["case"]: r["data_split"] for r in rows}
    assert all(r["data_split"] == split_of[r["case"]] for r in rows)
    assert sorted(split_of.values()) == ["TEST", "TRAIN", "VAL"]


def test_assign_splits_rules():
    for n in range(3, 15):
        for seed in range(3):
            s = ph.assign_splits(n, seed)
            assert s == ph.assign_splits(n, seed) and len(s) == n
            assert s.count("VAL") >= 1 and s.count("TEST") >= 1 and s.count("TRAIN") >= 1
    s10 = ph.assign_splits(10, 0)
    assert (s10.count("TRAIN"), s10.count("VAL"), s10.count("TEST")) == (6, 2, 2)
    assert len({tuple(ph.assign_splits(10, seed)) for seed in range(5)}) > 1
    assert ph.assign_splits(1, 0) == ["TRAIN"]
    with pytest.raises(ValueError, match="split_fractions"):
        ph.assign_splits(5, 0, (0.5, 0.5, 0.5))


def test_reference_manifest(dataset, tmp_path):
    manifest, _ = dataset
    out = ph.write_reference_manifest(manifest, tmp_path / "ref" / "reference.csv", rater="r2")
    header, rows = read_csv(out)
    assert header == ["FILE", "modality", "data_split"]
    assert len(rows) == 3 * 4
    assert {r["modality"] for r in rows} == {"t1fsce", "t2", "t1fsce_label", "t2_label"}
    for r in rows:
        assert (out.parent / r["FILE"]).resolve().is_file()
        name = r["FILE"].rsplit("/", 1)[-1]
        if r["modality"].endswith("_label"):
            assert name.endswith(f"_r2_{r['modality'][:-6]}_label.nii.gz")
    _, rich = read_csv(manifest)
    split_of = {r["case"]: r["data_split"] for r in rich}
    for split in ("TRAIN", "VAL", "TEST"):
        groups = {}
        for r in rows:
            if r["data_split"] == split:
                groups.setdefault(r["modality"], []).append(r["FILE"].rsplit("/", 1)[-1][:7])
        cases = groups["t1fsce"]
        assert all(g == cases for g in groups.values())  # k-th rows of a split pair up
        assert all(split_of[c] == split for c in cases)
    absolute = ph.write_reference_manifest(manifest, tmp_path / "abs.csv", absolute=True)
    _, rows_abs = read_csv(absolute)
    assert all(r["FILE"].startswith("/") for r in rows_abs)
    with pytest.raises(ValueError, match="nobody"):
        ph.write_reference_manifest(manifest, tmp_path / "x.csv", rater="nobody")
