"""Tests for pipeline.core.clustering: network, loss, trainer (fit/resume/cancel/predict), config, validation."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from pipeline.core.clustering import (
    ClusteringConfig,
    ClusteringLoss,
    ClusteringTrainer,
    ClusterNet,
    make_augmentation,
    validate_cases,
)

SHAPE = (32, 32, 8)


def _case(seed, n_mod=2, shape=SHAPE):
    """A box (the 'lesion') in a body on a background, one array per modality, with noise; the box is bright
    in modality 0 and dark in the others (modalities with the same contrast would tie in the argmax)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_mod):
        img = np.zeros(shape, np.float32)
        img[4:28, 4:28, :] = 1.0
        img[10:18, 12:22, 2:6] = 3.0 if k == 0 else 0.3
        out.append((k + 1) * img + rng.normal(0, 0.1, shape).astype(np.float32))
    return out


def _config(**kw):
    base = dict(height=32, width=32, depth=8, n_channels=4, n_conv=2, lr=0.05, batch_size=2, max_epochs=6,
                patience=50, device="cpu", seed=0)
    return ClusteringConfig(**{**base, **kw})


def _data(n_mod=2):
    return [_case(i, n_mod) for i in range(4)], [_case(10 + i, n_mod) for i in range(2)]


def _strip(history):
    return [{k: v for k, v in h.to_dict().items() if k != "seconds"} for h in history]


# ------------------------------------------------------------------------------------------ network, loss
def test_clusternet_shape_and_shared_weights():
    torch.manual_seed(0)
    net = ClusterNet(n_channels=5, n_conv=2).eval()
    x = torch.randn(2, 3, 12, 10, 6)
    y = net(x)
    assert y.shape == (2, 15, 12, 10, 6)
    # shared weights: swapping modalities swaps the channel blocks of the response
    y_swapped = net(x[:, [2, 1, 0]])
    torch.testing.assert_close(y_swapped[:, 0:5], y[:, 10:15])
    torch.testing.assert_close(y_swapped[:, 10:15], y[:, 0:5])
    # each block is the single-modality network applied to that modality
    torch.testing.assert_close(net(x[:, 1:2]), y[:, 5:10])
    n_conv3 = sum(1 for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3))
    assert n_conv3 == 2


def test_channels_last_and_grouped_response_give_the_same_loss_and_gradients():
    """On the CPU the trainer runs the network channels-last and hands the loss its (B, M, C, H, W, D) view:
    same response, loss, cluster ids and weight gradients as the plain layout."""
    x = torch.randn(2, 2, 12, 10, 6, generator=torch.Generator().manual_seed(5))
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        net = ClusterNet(n_channels=4, n_conv=2, channels_last=channels_last)
        loss = ClusteringLoss(0.5, inplace=channels_last)  # the trainer's loss writes over the response
        grouped = net.grouped(x)
        assert grouped.shape == (2, 2, 4, 12, 10, 6)
        total = loss(grouped)[0]
        total.backward()
        with torch.no_grad():
            response = net(x)
            *_, ids = loss.evaluate(net.grouped(x))
        results.append((response, total.detach(), ids, [p.grad.clone() for p in net.parameters()]))
    (r0, t0, i0, g0), (r1, t1, i1, g1) = results
    torch.testing.assert_close(r1, r0, rtol=1e-4, atol=1e-4)  # other convolution algorithms: float rounding
    torch.testing.assert_close(t1, t0)
    torch.testing.assert_close(t0, ClusteringLoss(0.5)(r0)[0])
    assert torch.equal(i0, r0.argmax(1)) and torch.equal(i1, r1.argmax(1))
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_augmentation_keeps_modalities_aligned():
    aug = make_augmentation(flip_prob=1.0, affine_prob=1.0)
    aug.set_random_state(seed=3)
    vol = torch.from_numpy(np.random.default_rng(1).normal(size=(20, 20, 6)).astype(np.float32))
    out = aug({"image": vol.expand(3, -1, -1, -1).clone()})["image"]
    out = out.as_tensor() if hasattr(out, "as_tensor") else out
    assert out.shape == (3, 20, 20, 6)
    torch.testing.assert_close(out[0], out[1])
    torch.testing.assert_close(out[0], out[2])
    assert not torch.allclose(out[0], vol)  # it did transform the case


# ------------------------------------------------------------------------------------------ config
def test_config_defaults_are_the_paper_and_presets():
    c = ClusteringConfig()
    assert (c.height, c.width, c.depth, c.n_channels, c.n_conv, c.mu) == (512, 512, 32, 30, 2, 1.0)
    assert (c.lr, c.momentum, c.batch_size, c.max_epochs, c.patience) == (1e-3, 0.9, 4, 700, 10)
    assert ClusteringConfig.preset("paper") == c
    fast = ClusteringConfig.preset("fast")
    assert fast.height * fast.width * fast.depth < c.height * c.width * c.depth
    assert ClusteringConfig.from_dict(fast.to_dict()) == fast
    with pytest.raises(ValueError, match="unknown clustering preset 'nope'"):
        ClusteringConfig.preset("nope")


def test_config_from_dict_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown clustering config key.*learning_rate"):
        ClusteringConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="lr must be > 0"):
        ClusteringConfig.from_dict({"lr": -1})
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        ClusteringConfig.from_dict({"batch_size": "4"})
    with pytest.raises(ValueError, match="momentum must be in"):
        ClusteringConfig.from_dict({"momentum": 1.5})
    with pytest.raises(ValueError, match="amp must be true or false"):
        ClusteringConfig.from_dict({"amp": "yes"})
    with pytest.raises(ValueError, match="device must be"):
        ClusteringConfig.from_dict({"device": "tpu"})
    with pytest.raises(ValueError, match="n_channels must be >= 1"):
        ClusteringConfig.from_dict({"n_channels": 0})
    with pytest.raises(ValueError, match="mu must be a number"):
        ClusteringConfig.from_dict({"mu": True})


def test_validate_cases_messages():
    cfg = _config()
    train, val = _data()
    validate_cases(train, val, cfg)
    with pytest.raises(ValueError, match="no VAL cases"):
        validate_cases(train, [], cfg)
    with pytest.raises(ValueError, match="no TRAIN cases"):
        validate_cases([], val, cfg)
    with pytest.raises(ValueError, match="VAL case 1 has 1 modalities but TRAIN case 0 has 2"):
        validate_cases(train, [val[0], val[1][:1]], cfg)
    with pytest.raises(ValueError, match="TRAIN case 2: modality shapes differ"):
        validate_cases([train[0], train[1], [train[2][0], train[2][1][:, :20]]], val, cfg)
    small = [np.zeros((6, 32, 8), np.float32)] * 2
    with pytest.raises(ValueError, match="TRAIN case 0: .*in-plane size 6 < 8"):
        validate_cases([small], val, cfg)
    bad = [val[1][0].copy(), val[1][1]]
    bad[0][3, 3, 3] = np.inf
    with pytest.raises(ValueError, match="VAL case 1: modality 0 contains NaN or infinite"):
        validate_cases(train, [val[0], bad], cfg)
    with pytest.raises(ValueError, match="VAL case 1: modality 0 contains NaN or infinite"):
        ClusteringTrainer(cfg).fit(train, [val[0], bad])


# ------------------------------------------------------------------------------------------ trainer
def test_fit_decreases_loss_reports_clusters_and_is_reproducible():
    train, val = _data()
    seen = []
    res = ClusteringTrainer(_config()).fit(train, val, on_epoch=seen.append)
    assert [s.epoch for s in seen] == list(range(1, 7)) and res.stopped_reason == "max_epochs"
    assert res.history[-1].train_loss < res.history[0].train_loss
    n_ids = 2 * 4
    assert all(1 <= s.n_clusters <= n_ids for s in res.history)
    assert all(math.isclose(s.train_loss, s.train_ce + s.train_continuity, rel_tol=1e-5) for s in res.history)
    best = [s.epoch for s in res.history if s.best]
    assert res.best_epoch == best[-1] and res.best_val_loss == min(s.val_loss for s in res.history)
    again = ClusteringTrainer(_config()).fit(train, val)
    assert _strip(again.history) == _strip(res.history)  # same seed, same CPU run
    other = ClusteringTrainer(_config(seed=1)).fit(train, val)
    assert _strip(other.history) != _strip(res.history)


def test_n_clusters_counts_distinct_val_predictions_of_the_held_weights():
    train, val = _data()
    trainer = ClusteringTrainer(_config(batch_size=1))
    res = trainer.fit(train, val)
    ids = set()
    for case in val:
        ids |= set(np.unique(trainer.predict(case)).tolist())  # grid == case shape: no resampling
    assert len(ids) == res.history[res.best_epoch - 1].n_clusters
    assert max(ids) < 2 * 4


class _Threshold(torch.nn.Module):
    """Stand-in network: channel 1 wins where modality 0 is above 1.5 (i.e. in the box), else channel 0."""

    def forward(self, x):
        hi = (x[:, :1] > 1.5).float()
        return torch.cat([1 - hi, hi, torch.zeros_like(hi) - 1], dim=1)


@pytest.mark.parametrize("shape", [(64, 64, 8), (64, 48, 5), (60, 52, 11)])
def test_predict_maps_back_onto_the_original_grid(shape):
    trainer = ClusteringTrainer(_config(height=32, width=32, depth=8))
    trainer.model, trainer.n_modalities = _Threshold(), 1
    img = np.zeros(shape, np.float32)
    blob = np.zeros(shape, bool)
    blob[10:30, 16:36, 1:4] = True  # even-aligned: exact under the 2x in-plane resize
    img[blob] = 10.0
    cmap = trainer.predict([img])
    assert cmap.shape == shape and cmap.dtype == np.int32
    record_crop = (shape[2] - 8) // 2 if shape[2] > 8 else 0
    kept = blob.copy()
    if shape[2] > 8:
        kept[..., :record_crop] = False
        kept[..., record_crop + 8:] = False
        assert (cmap[..., :record_crop] == -1).all()
    inside = cmap != -1
    if shape[0] == shape[1]:
        np.testing.assert_array_equal(cmap[inside] == 1, kept[inside])
    else:  # non-integral scale after padding to the square: allow a voxel of boundary error
        dice = 2 * np.sum((cmap == 1) & kept) / (np.sum(cmap == 1) + kept.sum())
        assert dice > 0.9


def test_trained_clusters_separate_the_box():
    train, val = _data()
    trainer = ClusteringTrainer(_config(max_epochs=15, batch_size=1))
    trainer.fit(train, val)
    cmap = trainer.predict(_case(99))
    box = np.zeros(SHAPE, bool)
    box[10:18, 12:22, 2:6] = True
    ids, counts = np.unique(cmap[box], return_counts=True)
    k = ids[np.argmax(counts)]
    assert counts.max() > 0.9 * box.sum()
    # within the box's slices the cluster is the box, give or take two voxels in-plane (the 3x3x3 receptive
    # field also blurs it across the box's Z ends, so those slices are not checked)
    sl = slice(2, 6)
    hit = cmap[..., sl] == k
    near = ndimage.binary_dilation(box, np.ones((5, 5, 1), bool))[..., sl]
    assert np.sum(hit & box[..., sl]) > 0.95 * box[..., sl].sum()
    assert not (hit & ~near).any()
    assert not (cmap[:4] == k).any()  # never in the background


def test_resume_after_crash_matches_an_uninterrupted_run(tmp_path):
    train, val = _data()
    cfg = _config(max_epochs=7, patience=3)
    full = ClusteringTrainer(cfg).fit(train, val, checkpoint_dir=tmp_path / "a")

    def crash(stats):
        if stats.epoch == 3:
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        ClusteringTrainer(cfg).fit(train, val, checkpoint_dir=tmp_path / "b", on_epoch=crash)
    resumed_trainer = ClusteringTrainer(cfg)
    announced = []
    resumed = resumed_trainer.fit(train, val, checkpoint_dir=tmp_path / "b", on_epoch=announced.append)
    assert resumed.resumed_from == 3 and [s.epoch for s in announced] == list(range(4, full.epochs + 1))
    assert resumed.epochs == full.epochs and resumed.stopped_reason == full.stopped_reason
    assert _strip(resumed.history) == _strip(full.history)
    assert resumed.best_epoch == full.best_epoch
    assert (tmp_path / "b" / "best.pt").exists() and (tmp_path / "b" / "last.pt").exists()
    assert not list((tmp_path / "b").glob("*.tmp"))
    # the held weights are the best epoch's, and predictions agree with the uninterrupted run's model
    ref = ClusteringTrainer.load(tmp_path / "a" / "best.pt")
    np.testing.assert_array_equal(resumed_trainer.predict(val[0]), ref.predict(val[0]))
    # a finished run in the directory returns at once with the same result
    done = ClusteringTrainer(cfg).fit(train, val, checkpoint_dir=tmp_path / "b", on_epoch=announced.append)
    assert _strip(done.history) == _strip(full.history) and len(announced) == full.epochs - 3
    with pytest.raises(ValueError, match="different config.*lr"):
        ClusteringTrainer(_config(max_epochs=7, patience=3, lr=0.01)).fit(train, val, checkpoint_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="different TRAIN/VAL cases"):
        ClusteringTrainer(cfg).fit(train[:3], val, checkpoint_dir=tmp_path / "b")


def test_should_stop_cancels_within_an_epoch():
    train, val = _data()
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) > 2

    res = ClusteringTrainer(_config(max_epochs=50)).fit(train, val, should_stop=should_stop)
    assert res.stopped_reason == "cancelled" and res.epochs == 2


def test_min_clusters_stops_the_run_and_never_keeps_a_collapsed_epoch():
    train, val = _data()
    res = ClusteringTrainer(_config(min_clusters=8, max_epochs=20)).fit(train, val)
    # 2 x 4 ids: every epoch is at or below 8, so epoch 1 stops the run and (no epoch qualified) is kept
    assert res.stopped_reason == "min_clusters" and res.epochs == 1 and res.best_epoch == 1

    trainer = ClusteringTrainer(_config(min_clusters=3, max_epochs=20))
    real, counts = trainer._evaluate, iter([6, 5, 4, 3, 3])

    def evaluate_with_counts(x_val, n_ids, keep_ids=False):  # real losses, scripted cluster counts
        sums, presence, maps = real(x_val, n_ids, keep_ids)
        fake = torch.zeros_like(presence)
        fake[:next(counts)] = True
        return sums, fake, maps

    trainer._evaluate = evaluate_with_counts
    res = trainer.fit(train, val)
    assert res.stopped_reason == "min_clusters" and res.epochs == 4
    assert [s.n_clusters for s in res.history] == [6, 5, 4, 3]
    assert not res.history[3].best
    assert res.best_epoch == 1 + int(np.argmin([s.val_loss for s in res.history[:3]]))


@pytest.mark.parametrize("n_mod", [1, 3])
def test_one_and_three_modalities(n_mod, tmp_path):
    train, val = _data(n_mod)
    trainer = ClusteringTrainer(_config(max_epochs=2))
    res = trainer.fit(train, val)
    assert res.epochs == 2 and all(np.isfinite(s.train_loss) for s in res.history)
    cmap = trainer.predict(_case(5, n_mod, shape=(30, 36, 6)))
    assert cmap.shape == (30, 36, 6) and 0 <= cmap.min() and cmap.max() < n_mod * 4
    trainer.save(tmp_path / "m.pt")
    loaded = ClusteringTrainer.load(tmp_path / "m.pt", device="cpu")
    assert loaded.n_modalities == n_mod and loaded.config == trainer.config
    np.testing.assert_array_equal(loaded.predict(val[0]), trainer.predict(val[0]))
    with pytest.raises(ValueError, match=f"trained on {n_mod} modalities"):
        trainer.predict(_case(5, n_mod + 1))


def test_predict_before_fit_and_bad_config_type():
    with pytest.raises(RuntimeError, match="call fit"):
        ClusteringTrainer(_config()).predict(_case(0))
    with pytest.raises(TypeError, match="ClusteringConfig"):
        ClusteringTrainer({"lr": 0.1})
