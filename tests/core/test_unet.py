"""Tests of the downstream U-Net core (pipeline.core.unet*), on tiny synthetic blob volumes."""

import json
import math
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from pipeline.core.metrics import compare
from pipeline.core.unet import UNetConfig, UNetTrainer, evaluate, paired_test
from pipeline.core.unet.data import make_unet_augmentation, validate_cases

REPO = Path(__file__).resolve().parents[2]


def blob_case(seed, shape=(32, 32, 8)):
    """Two modalities with an ellipsoid 'tumour' (bright on the first, dark on the second) plus noise.

    The blob sits off-centre and is elongated along X, so flips and rotations are visible."""
    rng = np.random.default_rng(seed)
    sx, sy, sz = shape
    centre = rng.uniform([0.35 * sx, 0.35 * sy, 0.4 * sz], [0.6 * sx, 0.6 * sy, 0.6 * sz])
    radii = np.array([rng.uniform(0.18, 0.24) * sx, rng.uniform(0.13, 0.18) * sy, max(2.0, 0.3 * sz)])
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    label = (((grid - centre) / radii) ** 2).sum(-1) < 1
    t1 = 100 + 200 * label + rng.normal(0, 40, shape)
    t2 = 300 - 150 * label + rng.normal(0, 40, shape)
    return [t1.astype(np.float32), t2.astype(np.float32)], label.astype(np.uint8)


@cache
def dataset():
    """8 TRAIN, 2 VAL, 2 TEST cases of different, partly non-square and odd shapes (grid is 32x32x8)."""
    shapes = [(32, 32, 8), (36, 30, 8), (28, 32, 9), (32, 32, 7), (30, 30, 8), (32, 26, 8), (34, 34, 8),
              (32, 32, 8), (32, 32, 8), (31, 29, 8), (40, 28, 7), (27, 33, 9)]
    return [blob_case(100 + i, s) for i, s in enumerate(shapes)]


def tiny(**over):
    base = dict(height=32, width=32, depth=8, channels=(4, 8), strides=(2,), max_epochs=6, patience=6,
                batch_size=2, device="cpu")
    return UNetConfig.preset("fast", **{**base, **over})


def hist(result):
    return [(h.epoch, h.train_loss, h.val_dice, h.val_loss, h.lr, h.best) for h in result.history]


@cache
def trained():
    """One longer run used by several tests (learning, prediction, export)."""
    data = dataset()
    trainer = UNetTrainer(tiny(max_epochs=20, patience=20))
    result = trainer.fit(data[:8], data[8:10], modalities=["t1fsce", "t2"])
    return trainer, result


@cache
def reference_run():
    """Uninterrupted 6-epoch run with augmentation and dropout (the reference for determinism and resume)."""
    data = dataset()
    return hist(UNetTrainer(tiny(dropout=0.1)).fit(data[:8], data[8:10]))


# --- training -------------------------------------------------------------------------------------


def test_training_reduces_loss_and_reaches_dice():
    trainer, result = trained()
    losses = [h.train_loss for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_val_dice > 0.8  # measured 0.90-0.94 over seeds 0-9; untrained ~0.1
    best = max(result.history, key=lambda h: h.val_dice)
    assert result.best_epoch == best.epoch and result.best_val_dice == best.val_dice
    assert result.stopped_reason in ("max_epochs", "early_stopping")
    # the lr follows the cosine schedule, epoch by epoch
    lrs = [h.lr for h in result.history]
    assert lrs[0] == pytest.approx(1e-2) and all(b < a for a, b in zip(lrs, lrs[1:], strict=False))


def test_predictions_on_original_grid_match_blobs():
    trainer, _ = trained()
    for images, truth in dataset()[10:]:  # (40, 28, 7) and (27, 33, 9): resampled, padded / cropped
        pred = trainer.predict(images)
        assert pred.shape == truth.shape and pred.dtype == np.uint8
        assert set(np.unique(pred)) <= {0, 1}
        assert compare(pred, truth)["dice"] > 0.75  # measured 0.83-0.92 over seeds 0-9
        proba = trainer.predict_proba(images)
        assert proba.shape == truth.shape and proba.dtype == np.float32
        assert 0 <= proba.min() and proba.max() <= 1
        assert compare((proba > 0.5).astype(np.uint8), truth)["dice"] > 0.75
    images, truth = dataset()[11]
    assert not trainer.predict(images)[:, :, 8].any()  # 9 slices on a depth-8 grid: the last is cropped -> 0
    # by name, in any key order; a missing modality is named
    by_name = trainer.predict({"t2": images[1], "t1fsce": images[0]})
    np.testing.assert_array_equal(by_name, trainer.predict(images))
    with pytest.raises(ValueError, match="'t2'"):
        trainer.predict({"t1fsce": images[0]})
    with pytest.raises(ValueError, match="3 modalities"):
        trainer.predict([images[0], images[1], images[0]])


def test_same_seed_same_history_and_caller_rng_untouched():
    data = dataset()
    reference = reference_run()
    torch.manual_seed(123)  # a different global RNG state than the reference run started from
    before = torch.get_rng_state()
    again = hist(UNetTrainer(tiny(dropout=0.1)).fit(data[:8], data[8:10]))
    assert torch.equal(torch.get_rng_state(), before)
    assert again == reference  # exactly equal, augmentation and dropout included
    other = hist(UNetTrainer(tiny(dropout=0.1, seed=1, max_epochs=2)).fit(data[:8], data[8:10]))
    assert other[0][1] != reference_run()[0][1]


def test_resume_after_crash_gives_same_history(tmp_path):
    data = dataset()

    def crash(stats):
        if stats.epoch == 3:
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        UNetTrainer(tiny(dropout=0.1)).fit(data[:8], data[8:10], checkpoint_dir=tmp_path, on_epoch=crash)
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    seen = []
    result = UNetTrainer(tiny(dropout=0.1)).fit(data[:8], data[8:10], checkpoint_dir=tmp_path, on_epoch=seen.append)
    assert result.resumed_from == 3 and [s.epoch for s in seen] == [4, 5, 6]
    assert hist(result) == reference_run()
    # a finished run is not trained again; other data or config is refused
    assert hist(UNetTrainer(tiny(dropout=0.1)).fit(data[:8], data[8:10], checkpoint_dir=tmp_path)) == reference_run()
    with pytest.raises(ValueError, match="different TRAIN/VAL"):
        UNetTrainer(tiny(dropout=0.1)).fit(data[1:8], data[8:10], checkpoint_dir=tmp_path)
    other_arm = [(images, np.roll(label, 1, axis=0)) for images, label in data[:8]]  # same volume, moved
    with pytest.raises(ValueError, match="different TRAIN/VAL"):
        UNetTrainer(tiny(dropout=0.1)).fit(other_arm, data[8:10], checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="lr"):
        UNetTrainer(tiny(dropout=0.1, lr=0.5)).fit(data[:8], data[8:10], checkpoint_dir=tmp_path)
    # best.pt is a loadable model holding the best epoch
    best = UNetTrainer.load(tmp_path / "best.pt")
    assert best.best_epoch == max(reference_run(), key=lambda h: h[2])[0]


def test_cancel_via_should_stop():
    data = dataset()
    seen = []
    result = UNetTrainer(tiny()).fit(data[:8], data[8:10], on_epoch=seen.append,
                                     should_stop=lambda: len(seen) >= 2)
    assert result.stopped_reason == "cancelled" and result.epochs == 2


def test_early_stopping_keeps_best_weights():
    data = dataset()
    trainer = UNetTrainer(tiny(max_epochs=30, patience=1, lr=1e-6))  # lr too small to ever improve much
    result = trainer.fit(data[:8], data[8:10])
    assert result.stopped_reason == "early_stopping" and result.epochs < 30
    assert not result.history[-1].best


def test_patch_sampling_and_sliding_window():
    data = dataset()
    cfg = tiny(patch_size=(16, 16, 8), num_samples=2, pos=3.0, neg=1.0, max_epochs=3, schedule="poly")
    trainer = UNetTrainer(cfg)
    result = trainer.fit(data[:4], data[8:9])
    assert result.epochs == 3 and all(math.isfinite(h.train_loss) for h in result.history)
    lrs = [h.lr for h in result.history]
    assert lrs == pytest.approx([1e-2 * (1 - k / 3) ** 0.9 for k in range(3)])  # torch PolynomialLR
    images, truth = data[10]
    assert trainer.predict(images).shape == truth.shape


# --- persistence ----------------------------------------------------------------------------------


def test_save_load_and_export_without_django(tmp_path):
    trainer, _ = trained()
    images, _ = dataset()[10]
    expected = trainer.predict(images)
    trainer.save(tmp_path / "model.pt")
    np.testing.assert_array_equal(UNetTrainer.load(tmp_path / "model.pt").predict(images), expected)

    out = trainer.export(tmp_path / "export")
    meta = json.loads((out / "config.json").read_text())
    assert meta["in_channels"] == 2 and meta["modalities"] == ["t1fsce", "t2"] and meta["grid"] == [32, 32, 8]
    assert UNetConfig.from_dict(meta["config"]) == trainer.config
    assert isinstance(torch.load(out / "model.pt", weights_only=True), dict)  # a bare state dict
    np.save(tmp_path / "t1.npy", images[0])
    np.save(tmp_path / "t2.npy", images[1])
    script = f"""
import sys, numpy as np
from pipeline.core.unet import UNetTrainer
t = UNetTrainer.load_exported({str(out)!r}, device="cpu")
d = {str(tmp_path)!r}
pred = t.predict({{"t1fsce": np.load(d + "/t1.npy"), "t2": np.load(d + "/t2.npy")}})
np.save(d + "/pred.npy", pred)
assert "django" not in sys.modules, "django was imported"
"""
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), expected)
    with pytest.raises(ValueError, match="config.json is missing"):
        UNetTrainer.load_exported(tmp_path)
    with pytest.raises(RuntimeError, match="no trained model"):
        UNetTrainer(tiny()).predict(images)


# --- config and input validation ------------------------------------------------------------------


def test_config_round_trip_and_presets():
    for name in ("paper", "fast"):
        cfg = UNetConfig.preset(name)
        assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    paper = UNetConfig.preset("paper")
    assert paper.grid == (512, 512, 32) and paper.patch_size == (256, 256, 32) and paper.max_epochs == 300
    assert UNetConfig.from_dict({"strides": [[2, 2, 1], 2], "channels": [4, 8, 16], "depth": 16,
                                "patch_size": None}).strides == (
        (2, 2, 1), 2)


@pytest.mark.parametrize("bad, match", [
    ({"learning_rate": 1e-3}, "unknown U-Net config key.*learning_rate"),
    ({"lr": -1}, "lr must be > 0"),
    ({"lr": "fast"}, "lr must be a number"),
    ({"schedule": "step"}, "schedule must be one of"),
    ({"schedule": "poly", "warmup_epochs": 3}, "warmup_epochs applies"),
    ({"channels": [16]}, "channels must be a list"),
    ({"channels": [8, 16, 32], "strides": [2]}, "strides needs"),
    ({"depth": 12, "strides": [2, 2, 2]}, r"grid \(512, 512, 12\) must be divisible"),
    ({"patch_size": [600, 256, 32]}, "larger than the grid"),
    ({"patch_size": [256, 256]}, "patch_size must be"),
    ({"amp": "yes"}, "amp must be true or false"),
    ({"cache_rate": 1.5}, "cache_rate must be in"),
    ({"device": "gpu"}, "device must be"),
    ({"max_epochs": 0}, "max_epochs must be >= 1"),
    ({"pos": 0, "neg": 0}, "pos and neg cannot both be 0"),
])
def test_config_refuses_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig.from_dict(bad)
    with pytest.raises(ValueError, match="unknown U-Net preset"):
        UNetConfig.preset("huge")


def test_validate_cases_names_the_problem():
    data = dataset()
    cfg = tiny()
    (t1, t2), lab = data[0]
    with pytest.raises(ValueError, match="no VAL cases"):
        validate_cases(data[:2], [], cfg)
    with pytest.raises(ValueError, match="TRAIN case 1 has 1 modalities"):
        validate_cases([data[0], ([t1], lab)], data[8:9], cfg)
    with pytest.raises(ValueError, match=r"VAL case 0: label shape \(32, 32, 7\)"):
        validate_cases(data[:1], [([t1, t2], lab[:, :, :7])], cfg)
    with pytest.raises(ValueError, match="only 0 and 1"):
        validate_cases(data[:1], [([t1, t2], lab * 2)], cfg)
    with pytest.raises(ValueError, match="VAL case 0: .*too few"):
        validate_cases(data[:1], [([t1[:, :, :1], t2[:, :, :1]], lab[:, :, :1])], cfg)


# --- augmentation ---------------------------------------------------------------------------------


def test_augmentation_keeps_image_and_label_aligned():
    _, label = blob_case(7)
    lab = torch.from_numpy(label[None].astype(np.float32))
    image = torch.cat([lab * 1.0, lab * 1.0])  # the image IS the label, so alignment is checkable
    aug = make_unet_augmentation(flip_prob=0.5, affine_prob=1.0, intensity_prob=1.0)
    moved = 0
    for seed in range(6):
        aug.set_random_state(seed=seed)
        out = aug({"image": image.clone(), "label": lab.clone()})
        img, lab2 = np.asarray(out["image"]), np.asarray(out["label"])
        assert set(np.unique(lab2)) <= {0.0, 1.0}  # nearest for the label
        for c in range(2):  # undo the intensity scale / shift, threshold half-way
            lo, hi = img[c].min(), img[c].max()
            mask = (img[c] > (lo + hi) / 2).astype(np.uint8)
            assert compare(mask, lab2[0].astype(np.uint8))["dice"] > 0.9
        moved += compare(lab2[0].astype(np.uint8), label)["dice"] < 0.9
    assert moved >= 3  # the draws really moved the volumes


# --- evaluation -----------------------------------------------------------------------------------


def test_evaluate_matches_metrics_compare():
    data = dataset()
    preds = [data[i][1] for i in (0, 1)] + [np.zeros_like(data[2][1])]
    refs = [np.roll(data[i][1], 1, axis=0) for i in (0, 1, 2)]
    spacings = [(1.0, 1.0, 3.0), (0.5, 0.5, 4.0), (1.0, 1.0, 1.0)]
    out = evaluate(preds, refs, spacings, case_ids=["a", "b", "c"])
    singles = [compare(p, r, s) for p, r, s in zip(preds, refs, spacings, strict=True)]
    assert out["n"] == 3 and [c["case"] for c in out["cases"]] == ["a", "b", "c"]
    assert out["mean"]["dice"] == pytest.approx(np.mean([s["dice"] for s in singles]))
    assert out["median"]["dice"] == pytest.approx(np.median([s["dice"] for s in singles]))
    assert out["n_valid"]["hd95_mm"] == 2  # empty prediction: HD95 undefined
    assert out["mean"]["hd95_mm"] == pytest.approx(np.mean([s["hd95_mm"] for s in singles[:2]]))
    with pytest.raises(ValueError, match="case b"):
        evaluate(preds[:2], [refs[0], refs[1][:, :, :3]], spacings[:2], case_ids=["a", "b"])


def test_paired_test_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.6, 0.9, 15)
    b = a - rng.normal(0.03, 0.05, 15)
    out = paired_test(a, b)
    w, t = stats.wilcoxon(a, b), stats.ttest_rel(a, b)
    assert out["n"] == 15 and out["mean_difference"] == pytest.approx(np.mean(a - b))
    assert out["wilcoxon_p"] == pytest.approx(w.pvalue) and out["wilcoxon_statistic"] == pytest.approx(w.statistic)
    assert out["t_p"] == pytest.approx(t.pvalue) and out["t_statistic"] == pytest.approx(t.statistic)
    # NaN pairs are dropped
    out2 = paired_test(np.append(a, np.nan), np.append(b, 0.5))
    assert out2["n"] == 15 and out2["n_dropped"] == 1 and out2["t_p"] == pytest.approx(t.pvalue)
    # degenerate inputs degrade, never raise
    assert math.isnan(paired_test([0.8], [0.7])["wilcoxon_p"])
    same = paired_test([0.8, 0.7, 0.6], [0.8, 0.7, 0.6])
    assert same["wilcoxon_p"] == 1.0 and same["t_p"] == 1.0
    const = paired_test([0.8, 0.7, 0.6, 0.5], [0.7, 0.6, 0.5, 0.4])
    assert math.isnan(const["t_p"]) and 0 < const["wilcoxon_p"] <= 1
    with pytest.raises(ValueError, match="paired"):
        paired_test([1, 2, 3], [1, 2])
