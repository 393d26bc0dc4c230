"""The one epoch loop both trainers run: a checkpoint written before a config key existed still resumes
(for both trainers), a changed config or different data is refused, and the loop's stopping rules."""

import math
from dataclasses import dataclass

import pytest
import torch

from pipeline.core.clustering import ClusteringTrainer
from pipeline.core.training.loop import Checkpointing, EpochLoop, Verdict
from pipeline.core.unet import UNetTrainer
from tests.core.test_clustering import _config as clustering_config
from tests.core.test_clustering import _data as clustering_data
from tests.core.test_unet import dataset as unet_dataset
from tests.core.test_unet import tiny as unet_config


def _age_checkpoint(path, drop):
    """Rewrite ``last.pt`` as if written before config key ``drop`` was added (its value is the default)."""
    ck = torch.load(path, weights_only=True)
    del ck["config"][drop]
    torch.save(ck, path)


class Crash(Exception):
    pass


def _crash_after_two(stats):
    if stats.epoch == 2:
        raise Crash()


@pytest.mark.parametrize("kind", ["clustering", "unet"])
def test_a_checkpoint_from_before_a_config_key_resumes(tmp_path, kind):
    if kind == "clustering":
        (train, val), config, make, drop = clustering_data(), clustering_config(max_epochs=3), ClusteringTrainer, \
            "slice_kernel"
    else:
        data = unet_dataset()
        (train, val), config, make, drop = (data[:4], data[8:10]), unet_config(max_epochs=3), UNetTrainer, \
            "poly_power"
    assert getattr(config, drop) == getattr(type(config)(), drop)  # the run uses the key's default
    with pytest.raises(Crash):
        make(config).fit(train, val, checkpoint_dir=tmp_path, on_epoch=_crash_after_two)
    _age_checkpoint(tmp_path / "last.pt", drop)
    resumed = make(config).fit(train, val, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 2 and resumed.epochs == 3 and resumed.stopped_reason == "max_epochs"


def test_a_different_config_or_data_is_refused(tmp_path):
    train, val = clustering_data()
    ClusteringTrainer(clustering_config(max_epochs=1)).fit(train, val, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different config \(lr differ\)"):
        ClusteringTrainer(clustering_config(max_epochs=1, lr=0.01)).fit(train, val, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different TRAIN/VAL cases"):
        ClusteringTrainer(clustering_config(max_epochs=1)).fit(train[:3], val, checkpoint_dir=tmp_path)


@dataclass
class Stats:
    epoch: int
    loss: float
    seconds: float = 0.0
    best: bool = False

    def to_dict(self):
        return {"epoch": self.epoch, "loss": self.loss, "seconds": self.seconds, "best": self.best}


def _scripted(losses, tmp_path=None, **loop_args):
    """Run the loop on a scripted sequence of VAL losses (one per epoch) and a 1-parameter model."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ck = Checkpointing(directory=tmp_path, fmt="test/1", config={"a": 1}, defaults={"a": 1}, fingerprint=[1],
                       same_fingerprint=lambda a, b: a == b, value_name="best_loss", key_of_value=lambda v: v,
                       export=lambda state, epoch, value: {"epoch": epoch})
    args = {"max_epochs": len(losses), "patience": 99, **loop_args}
    loop = EpochLoop(model, stateful={"optimizer": opt}, device=torch.device("cpu"), stats_type=Stats,
                     checkpointing=ck, **args)

    def train_epoch(epoch):
        with torch.no_grad():
            model.weight.fill_(epoch)  # so the kept weights say which epoch they are from
        return epoch

    def judge(epoch, _):
        loss = losses[epoch - 1]
        return Verdict(Stats(epoch, loss), key=loss, value=loss, finite=math.isfinite(loss),
                       stop="floor" if loss == 0 else None)

    return loop.run(train_epoch, judge), model


def test_loop_keeps_the_best_epoch_and_stops_early():
    result, model = _scripted([5.0, 3.0, 4.0, 4.5, 1.0], patience=2)
    assert result.stopped_reason == "early_stopping" and result.best_epoch == 2 and result.best_value == 3.0
    assert [h.best for h in result.history] == [True, True, False, False]
    assert model.weight.item() == 2.0  # the kept epoch's weights


def test_loop_stops_on_divergence_and_on_the_trainers_own_rule():
    diverged, _ = _scripted([2.0, math.nan, 1.0])
    assert diverged.stopped_reason == "diverged" and diverged.best_epoch == 1
    own, _ = _scripted([2.0, 0.0, 1.0])
    assert own.stopped_reason == "floor" and own.best_epoch == 2


def test_loop_resumes_and_a_finished_run_is_not_rerun(tmp_path):
    first, _ = _scripted([3.0, 2.0], tmp_path)
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    again, model = _scripted([3.0, 2.0], tmp_path)
    assert again.resumed_from == 2 and again.stopped_reason == "max_epochs" and again.best_epoch == 2
    assert [h.to_dict() for h in again.history] == [h.to_dict() for h in first.history]
    assert model.weight.item() == 2.0
