"""Options beyond the paper: keep_epoch_by="val_labels" (the kept epoch is the one whose VAL cluster maps best
rebuild the VAL labels) and slice_kernel=1 (3x3x1 blocks for thick slices)."""

import numpy as np
import pytest
import torch

from pipeline.core.clustering import ClusteringConfig, ClusteringTrainer, ClusterNet
from pipeline.core.clustering.bfloat16 import bfloat16_step_ratio, probe_grid
from pipeline.core.metrics import best_regions, dice

from .test_clustering import _config, _data, _strip


def _box_label(shape=(32, 32, 8)):
    """The 'lesion' box of ``_case`` as an expert would outline it."""
    label = np.zeros(shape, np.uint8)
    label[10:18, 12:22, 2:6] = 1
    return label


def _agreement(trainer, case, label):
    cmap = trainer.predict(case)
    return dice(best_regions(cmap, label > 0), label > 0)


def test_config_accepts_the_two_rules_and_names_a_bad_one():
    assert ClusteringConfig().keep_epoch_by == "val_loss"  # the paper
    assert ClusteringConfig.preset("fast").keep_epoch_by == "val_labels"
    with pytest.raises(ValueError, match="keep_epoch_by must be one of val_loss, val_labels, got 'dice'"):
        ClusteringConfig(keep_epoch_by="dice")


def test_val_labels_are_checked_before_training():
    train, val = _data()
    cfg = _config(keep_epoch_by="val_labels")
    with pytest.raises(ValueError, match="needs an expert label .* per VAL case; got none"):
        ClusteringTrainer(cfg).fit(train, val)
    with pytest.raises(ValueError, match="got 1 labels for 2 VAL cases"):
        ClusteringTrainer(cfg).fit(train, val, val_labels=[_box_label()])
    with pytest.raises(ValueError, match=r"VAL case 1: expert label shape \(32, 32, 7\) differs"):
        ClusteringTrainer(cfg).fit(train, val, val_labels=[_box_label(), _box_label((32, 32, 7))])
    with pytest.raises(ValueError, match="no VAL case has an expert label"):
        ClusteringTrainer(cfg).fit(train, val, val_labels=[None, np.zeros((32, 32, 8), np.uint8)])
    speck = np.zeros((32, 32, 8), np.uint8)
    speck[10, 10, 3] = 1  # an even voxel: halving the grid (nearest) drops it
    with pytest.raises(ValueError, match="no VAL expert label has a voxel left on the 16x16x8 model grid"):
        ClusteringTrainer(_config(keep_epoch_by="val_labels", height=16, width=16)).fit(
            train, val, val_labels=[speck, None])
    # with the paper's rule labels are not needed and, if given, change nothing
    plain = ClusteringTrainer(_config(max_epochs=3)).fit(train, val)
    given = ClusteringTrainer(_config(max_epochs=3)).fit(train, val, val_labels=[_box_label(), None])
    assert _strip(plain.history) == _strip(given.history)
    assert all(h.val_agreement is None for h in plain.history)


def test_kept_epoch_is_the_best_label_agreement_and_patience_watches_it():
    train, val = _data()
    labels = [_box_label(), None]  # a VAL case without a label is skipped, not scored as 0
    trainer = ClusteringTrainer(_config(keep_epoch_by="val_labels", max_epochs=8, lr=0.2, patience=50))
    res = trainer.fit(train, val, val_labels=labels)
    scores = [h.val_agreement for h in res.history]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) > 1  # the rule has something to choose from
    assert res.best_epoch == int(np.argmax(scores)) + 1  # the first epoch with the highest agreement
    assert [h.best for h in res.history] == [s > max(scores[:i], default=-1) for i, s in enumerate(scores)]
    # the held weights are that epoch's: its VAL map reproduces the recorded agreement
    assert _agreement(trainer, val[0], labels[0]) == pytest.approx(max(scores))
    # early stopping counts epochs without a better agreement, whatever the VAL loss does
    short = ClusteringTrainer(_config(keep_epoch_by="val_labels", max_epochs=8, lr=0.2, patience=2))
    res2 = short.fit(train, val, val_labels=labels)
    s2 = [h.val_agreement for h in res2.history]
    assert s2 == scores[:len(s2)]
    last_best = max(i for i, h in enumerate(res2.history) if h.best)
    assert res2.stopped_reason == "max_epochs" or len(s2) - 1 - last_best == 2


def test_resume_with_val_labels_matches_an_uninterrupted_run(tmp_path):
    train, val = _data()
    labels = [_box_label(), _box_label()]
    cfg = _config(keep_epoch_by="val_labels", max_epochs=6, lr=0.2)
    full = ClusteringTrainer(cfg).fit(train, val, val_labels=labels, checkpoint_dir=tmp_path / "a")

    def crash(stats):
        if stats.epoch == 3:
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        ClusteringTrainer(cfg).fit(train, val, val_labels=labels, checkpoint_dir=tmp_path / "b", on_epoch=crash)
    resumed = ClusteringTrainer(cfg).fit(train, val, val_labels=labels, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 3
    assert _strip(resumed.history) == _strip(full.history) and resumed.best_epoch == full.best_epoch


def test_slice_kernel_one_keeps_each_slice_to_itself():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 12, 10, 6)
    changed = x.clone()
    changed[..., 3] += 5.0  # only slice 3 differs
    flat, deep = ClusterNet(4, 2, slice_kernel=1).eval(), ClusterNet(4, 2, slice_kernel=3).eval()
    diff_flat = (flat(changed) - flat(x)).abs().amax(dim=(0, 1, 2, 3))
    diff_deep = (deep(changed) - deep(x)).abs().amax(dim=(0, 1, 2, 3))
    assert diff_flat[3] > 0 and torch.all(diff_flat[[0, 1, 2, 4, 5]] == 0)
    assert torch.all(diff_deep[[1, 2, 4, 5]] > 0)  # 3x3x3, two blocks: two slices either side
    assert flat(x).shape == (1, 8, 12, 10, 6)
    with pytest.raises(ValueError, match="slice_kernel must be 1 or 3, got 2"):
        ClusterNet(4, 2, slice_kernel=2)
    with pytest.raises(ValueError, match="slice_kernel must be 1 or 3, got 5"):
        ClusteringConfig(slice_kernel=5)
    assert ClusteringConfig().slice_kernel == 3 and ClusteringConfig.preset("fast").slice_kernel == 1


def test_slice_kernel_is_saved_with_the_model(tmp_path):
    train, val = _data()
    trainer = ClusteringTrainer(_config(slice_kernel=1, max_epochs=2))
    trainer.fit(train, val)
    trainer.save(tmp_path / "m.pt")
    loaded = ClusteringTrainer.load(tmp_path / "m.pt")
    assert loaded.config.slice_kernel == 1
    np.testing.assert_array_equal(loaded.predict(val[0]), trainer.predict(val[0]))


def test_cpu_bf16_trains_in_bfloat16_and_stays_close_to_float32(monkeypatch):
    """cpu_bf16 runs the network under bfloat16 autocast on the CPU (seen in the response's dtype) and, from
    the same seed, follows the float32 run's losses closely; it is off unless asked for."""
    assert ClusteringConfig().cpu_bf16 is False
    with pytest.raises(ValueError, match="cpu_bf16 must be true or false"):
        ClusteringConfig(cpu_bf16="yes")
    train, val = _data()
    dtypes = []
    original = ClusterNet.grouped

    def spy(self, x):
        y = original(self, x)
        dtypes.append(y.dtype)
        return y

    monkeypatch.setattr(ClusterNet, "grouped", spy)
    # the path itself, also on a CI machine whose CPU emulates bfloat16 (slow, but these volumes are tiny)
    monkeypatch.setattr("pipeline.core.clustering.trainer.bfloat16_why_not", lambda *_: None)
    plain = ClusteringTrainer(_config(max_epochs=3)).fit(train, val)
    assert set(dtypes) == {torch.float32}
    dtypes.clear()
    bf16 = ClusteringTrainer(_config(max_epochs=3, cpu_bf16=True)).fit(train, val)
    assert torch.bfloat16 in set(dtypes)
    for a, b in zip(plain.history, bf16.history, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=0.02) and np.isfinite(b.val_loss)


@pytest.mark.parametrize(("native", "ratio", "why"), [
    (False, None, r"cpu_bf16 ignored: this CPU \(\w+\) has no native bfloat16, where it runs about 100x slower"),
    (True, 1.27, r"cpu_bf16 ignored: on this CPU \(\w+\) a training step took 1.27x the float32 time under bfloat16"),
])
def test_cpu_bf16_is_ignored_with_a_warning_where_bfloat16_is_slower_than_float32(monkeypatch, native, ratio, why):
    """Emulated bfloat16 (AVX2) was about 100x slower and is never measured; with native bfloat16 a training step
    of the run's own settings is timed (epochs 1.2-1.4x slower on an AVX-512 Xeon without AMX, faster with AMX and
    on an AVX-512 EPYC without it): the trainer keeps float32 and says why, or uses bfloat16 where it measured
    faster."""
    measured = []

    def step_ratio(*setting):
        measured.append(setting)
        return ratio

    monkeypatch.setattr("pipeline.core.device.cpu_bfloat16_is_native", lambda: native)
    monkeypatch.setattr("pipeline.core.clustering.bfloat16.bfloat16_step_ratio", step_ratio)
    cfg = _config(cpu_bf16=True, slice_kernel=1)
    with pytest.warns(RuntimeWarning, match=why):
        trainer = ClusteringTrainer(cfg)
    assert not trainer.use_bf16 and len(trainer.notes) == 1 and trainer.notes[0].endswith("trained in float32")
    assert measured == ([(cfg.n_channels, cfg.n_conv, 1, (cfg.height, cfg.width, cfg.depth))] if native else [])
    monkeypatch.setattr("pipeline.core.device.cpu_bfloat16_is_native", lambda: True)
    ratio = 0.62
    assert ClusteringTrainer(cfg).use_bf16 and ClusteringTrainer(cfg).notes == []
    ratio = 0.91  # within the noise of a busy machine
    with pytest.warns(RuntimeWarning, match="took 0.91x the float32 time"):
        assert not ClusteringTrainer(cfg).use_bf16
    assert ClusteringTrainer(_config()).notes == []


def test_the_bfloat16_step_is_timed_against_float32_once_per_setting():
    """The measurement behind cpu_bf16's choice runs a training step both ways, leaves the caller's random
    numbers as they were, and is taken once per process and setting (a tiny one here, quick even where bfloat16
    is emulated); large grids are probed on one case of at most 128x128x16 voxels."""
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    setting = (4, 1, 1, (8, 8, 4))
    ratio = bfloat16_step_ratio(*setting)
    assert np.isfinite(ratio) and ratio > 0
    torch.testing.assert_close(torch.rand(3), expected)
    hits = bfloat16_step_ratio.cache_info().hits
    assert bfloat16_step_ratio(*setting) == ratio and bfloat16_step_ratio.cache_info().hits == hits + 1
    assert probe_grid(512, 512, 32) == (64, 128, 32) and probe_grid(128, 128, 16) == (128, 128, 16)
    assert probe_grid(32, 32, 8) == (32, 32, 8) and probe_grid(300, 100, 16) == (150, 100, 16)
