"""Moving between devices without a GPU at hand: an optimiser keeps the implementation it was built with when a
checkpoint from another device is loaded, a saved model loads where this machine can run it, and a worker's
peak memory is each run's own."""

import json

import numpy as np
import pytest
import torch

from pipeline.core.clustering import ClusteringTrainer
from pipeline.core.device import peak_memory_mb, reset_peak_memory, resolve_device
from pipeline.core.training.loop import load_optimizer_state
from tests.core.test_clustering import _config, _data


def _stepped_sgd(model, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, **kw)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return opt


def test_a_fused_optimizer_stays_fused_when_given_a_plain_optimizer_s_checkpoint():
    """A CPU worker's checkpoint (plain SGD) resumed on a GPU worker (fused SGD, so GradScaler skips inf steps
    without a host sync): plain load_state_dict unfused it, and the scaler's next step failed."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    saved = _stepped_sgd(model).state_dict()
    fused = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5, fused=True)
    load_optimizer_state(fused, saved)
    group = fused.param_groups[0]
    assert group["fused"] is True and group["lr"] == 0.1 and group["momentum"] == 0.9  # learnt state restored
    assert all("momentum_buffer" in fused.state[p] for p in model.parameters())
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(model(torch.randn(4, 3)).sum()).backward()
    scaler.step(fused)  # passes the scaler's grad_scale and found_inf, which only a fused step accepts
    scaler.update()
    plain = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5)
    load_optimizer_state(plain, fused.state_dict())  # and the other way round
    assert plain.param_groups[0]["fused"] is None


def test_a_gpu_this_machine_lacks_is_refused_by_name():
    """With or without CUDA here: cuda:99 is no device of this machine (not a later 'invalid device ordinal')."""
    with pytest.raises(ValueError, match=r"'cuda:99' was asked for but .*not available"):
        resolve_device("cuda:99")


def test_a_saved_model_loads_where_this_machine_runs_it(tmp_path):
    """A model trained on a worker's "cuda:1" loads on a machine without that GPU: the stored device is where
    it was trained, not where it must run."""
    train, val = _data()
    trainer = ClusteringTrainer(_config(max_epochs=1))
    trainer.fit(train, val)
    trainer.save(tmp_path / "m.pt")
    ck = torch.load(tmp_path / "m.pt", weights_only=True)
    ck["config_json"] = json.dumps({**json.loads(ck["config_json"]), "device": "cuda:1"})
    torch.save(ck, tmp_path / "gpu.pt")
    loaded = ClusteringTrainer.load(tmp_path / "gpu.pt")
    assert loaded.device == resolve_device("auto")
    if loaded.device.type == "cpu":
        np.testing.assert_array_equal(loaded.predict(val[0]), trainer.predict(val[0]))
    assert ClusteringTrainer.load(tmp_path / "gpu.pt", device="cpu").device.type == "cpu"


def test_peak_memory_is_counted_from_the_last_reset():
    """A long-lived worker process reports each run's own peak, not the largest since it started (Linux, as
    labelgen's workers)."""
    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    big = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    with_big = peak_memory_mb(cpu)
    del big
    reset_peak_memory(cpu)
    after = peak_memory_mb(cpu)
    assert with_big - after > 250, (with_big, after)
