"""The one resumable epoch loop that every trainer runs (no Django).

A trainer (step-1 clustering, the U-Net) supplies only what is its own, as MONAI's engines do: one training
epoch, one validation that scores the epoch, and the rule that says which epoch to keep. The loop owns
everything else: resuming from ``last.pt`` (config, data fingerprint, model, optimiser/scheduler/scaler,
RNG), the stopping rules (diverged, the trainer's own, early stopping, max epochs), the kept epoch's
weights, atomic ``last.pt`` / ``best.pt`` writes, cancel polls and the per-epoch callback.

Epochs are judged by a *key* where smaller is better (a VAL loss, ``1 - agreement``, ``-Dice``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.core.training.checkpoints import atomic_save


@dataclass
class Verdict:
    """A trainer's judgement of one validated epoch.

    ``stats``: its per-epoch record (a dataclass with ``epoch``, ``seconds`` and ``best`` fields, and
    ``to_dict()``); the loop fills in ``seconds`` and ``best``. ``key``: smaller is better. ``value``: the
    figure the trainer reports for its kept epoch (VAL loss, VAL Dice). ``eligible``: may this epoch be
    kept at all. ``finite``: False ends the run as ``"diverged"``. ``stop``: a reason of the trainer's own
    to stop after this epoch (checked after divergence, before early stopping).
    """

    stats: Any
    key: float
    value: float
    eligible: bool = True
    finite: bool = True
    stop: str | None = None


@dataclass
class LoopResult:
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_value: float = math.nan
    stopped_reason: str = ""
    resumed_from: int = 0


@dataclass
class Checkpointing:
    """Where and how a trainer's checkpoints are written.

    ``fmt``: the format tag of ``last.pt``. ``config``: the run's config as a dict; ``defaults``: the
    config class's defaults, standing in for keys a checkpoint predates. ``fingerprint`` and
    ``same_fingerprint``: what identifies the TRAIN/VAL data. ``value_name``: the checkpoint key of
    :attr:`Verdict.value` (e.g. ``"best_val"``); ``key_of_value`` rebuilds a key from it for checkpoints
    that stored no key. ``extra``: trainer fields saved in ``last.pt`` and checked on resume.
    ``export``: ``(state_dict, epoch, value) -> dict`` written as ``best.pt``.
    """

    directory: Path | None
    fmt: str
    config: dict
    defaults: dict
    fingerprint: Any
    same_fingerprint: Callable[[Any, Any], bool]
    value_name: str
    key_of_value: Callable[[float], float]
    export: Callable[[dict, int, float], dict]
    extra: dict = field(default_factory=dict)
    what: str = "training"


def _copy(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# how an optimiser computes its step on this device, not what it has learnt: a checkpoint written on another device
# (a CPU worker's plain SGD resumed on a GPU worker's fused one) must not switch it
_IMPLEMENTATION = ("fused", "foreach", "capturable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` keeping the implementation this optimiser was built with.

    ``load_state_dict`` replaces the parameter groups with the saved ones, flags included: a fused SGD given a
    CPU checkpoint's ``fused=None`` stepped unfused, and under a GradScaler (which still saw a fused optimiser
    and passed it its scale) failed with "Expected grad_scale and found_inf to be None".
    """
    # the flags go into the saved groups before loading: load_state_dict also places each state tensor by them
    # (a fused or capturable optimiser keeps its step counts on the parameters' device)
    groups = [saved | {k: g[k] for k in _IMPLEMENTATION if k in g}
              for saved, g in zip(state["param_groups"], optimizer.param_groups, strict=True)]
    optimizer.load_state_dict({**state, "param_groups": groups})


class EpochLoop:
    """Runs epochs of ``model`` until a stopping rule fires, resumably.

    Args:
        model: the network being trained (its weights end as the kept epoch's).
        stateful: objects with ``state_dict``/``load_state_dict`` saved with the model (optimiser, scheduler,
            grad scaler); a scaler is restored only when ``restore_scaler`` is true.
        max_epochs, patience: stop after ``max_epochs`` epochs, or ``patience`` epochs without a kept one.
        device: for the CUDA RNG state.
        stats_type: the trainer's per-epoch record class (to rebuild the history on resume).
        keep_last_if_none_kept: when no epoch was eligible (and the run did not diverge), keep the last one
            and write its ``best.pt``; the callable gives the kept value from its stats (e.g. its VAL loss).
    """

    def __init__(self, model: torch.nn.Module, *, stateful: Mapping[str, Any], max_epochs: int, patience: int,
                 device: torch.device, stats_type: type, checkpointing: Checkpointing,
                 restore_scaler: bool = True,
                 keep_last_if_none_kept: Callable[[Any], float] | None = None) -> None:
        self.model = model
        self.stateful = dict(stateful)
        self.max_epochs, self.patience = max_epochs, patience
        self.device = device
        self.stats_type = stats_type
        self.ck = checkpointing
        self.restore_scaler = restore_scaler
        self.keep_last_if_none_kept = keep_last_if_none_kept
        self.state = {"epoch": 0, "history": [], "best_key": math.inf, "best_value": math.nan, "best_epoch": 0,
                      "bad_epochs": 0, "best_model": _copy(model), "finished": None}

    # ---------------------------------------------------------------------------------------- resume
    def restore(self) -> int:
        """Load ``last.pt`` if the checkpoint folder has one; returns the epochs it restored (0 if none)."""
        if self.ck.directory is None:
            return 0
        self.ck.directory.mkdir(parents=True, exist_ok=True)
        path = self.ck.directory / "last.pt"
        if not path.exists():
            return 0
        # to the CPU first: load_state_dict moves what belongs on the device there, and leaves an optimiser's step
        # counts on the CPU (on the GPU, a non-capturable AdamW reads each back with a host sync every step)
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if ck.get("format") != self.ck.fmt or ck.get("kind") != "last":
            raise ValueError(f"{path} is not a {self.ck.what} checkpoint")
        ours, theirs = self.ck.config, ck["config"]
        # a key added to the config since the checkpoint was written had its default then
        diff = sorted(k for k in ours if k != "device" and theirs.get(k, self.ck.defaults.get(k)) != ours[k])
        if diff:
            raise ValueError(f"{path} was written with a different config ({', '.join(diff)} differ); "
                             "use another checkpoint_dir or the same config")
        same_extra = all(ck.get(k) == v for k, v in self.ck.extra.items())
        if not same_extra or not self.ck.same_fingerprint(ck["fingerprint"], self.ck.fingerprint):
            raise ValueError(f"{path} was written for different TRAIN/VAL cases; use another checkpoint_dir")
        self.model.load_state_dict(ck["model"])
        for name, obj in self.stateful.items():
            if name == "scaler" and not (ck.get("scaler") and self.restore_scaler):
                continue
            if isinstance(obj, torch.optim.Optimizer):
                load_optimizer_state(obj, ck[name])
            else:
                obj.load_state_dict(ck[name])
        torch.set_rng_state(ck["rng"]["torch"].cpu())
        if "cuda" in ck["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng"]["cuda"].cpu(), self.device)
        value = ck[self.ck.value_name]
        self.state.update({k: ck[k] for k in ("epoch", "history", "best_epoch", "bad_epochs", "best_model",
                                               "finished")})
        self.state.update(best_value=value, best_key=ck.get("best_key", self.ck.key_of_value(value)))
        return self.state["epoch"]

    def _last(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        st = self.state
        return {"format": self.ck.fmt, "kind": "last", "config": self.ck.config, "fingerprint": self.ck.fingerprint,
                **self.ck.extra, "model": self.model.state_dict(),
                **{name: obj.state_dict() for name, obj in self.stateful.items()}, "rng": rng,
                **{k: st[k] for k in ("epoch", "history", "best_epoch", "bad_epochs", "best_model", "finished",
                                      "best_key")},
                self.ck.value_name: st["best_value"]}

    # ------------------------------------------------------------------------------------------- run
    def run(self, train_epoch: Callable[[int], Any], judge: Callable[[int, Any], Verdict], *,
            on_epoch: Callable[[Any], object] | None = None,
            should_stop: Callable[[], bool] | None = None) -> LoopResult:
        """Train until a stopping rule fires; afterwards the model holds the kept epoch's weights.

        ``train_epoch(epoch)`` trains one epoch and returns what ``judge`` needs, or None when it saw a
        cancel (the partial epoch is discarded); ``judge(epoch, trained)`` validates and returns a
        :class:`Verdict`. ``on_epoch(stats)`` hears each new epoch after its checkpoint is written.
        """
        resumed_from = self.restore()
        st = self.state
        history = [self.stats_type(**h) for h in st["history"]]
        reason = st["finished"]
        directory = self.ck.directory
        rng_devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):  # per-epoch reseeding must not leak to the caller
            while reason is None:
                if should_stop is not None and should_stop():
                    reason = "cancelled"
                    break
                epoch = st["epoch"] + 1
                t0 = time.perf_counter()
                trained = train_epoch(epoch)
                if trained is None:
                    reason = "cancelled"
                    break
                verdict = judge(epoch, trained)
                improved = verdict.eligible and math.isfinite(verdict.key) and verdict.key < st["best_key"]
                if improved:
                    st.update(best_key=verdict.key, best_value=verdict.value, best_epoch=epoch, bad_epochs=0,
                              best_model=_copy(self.model))
                else:
                    st["bad_epochs"] += 1
                stats = dataclasses.replace(verdict.stats, seconds=time.perf_counter() - t0, best=improved)
                history.append(stats)
                if not verdict.finite:
                    reason = "diverged"
                elif verdict.stop:
                    reason = verdict.stop
                elif st["bad_epochs"] >= self.patience:
                    reason = "early_stopping"
                elif epoch >= self.max_epochs:
                    reason = "max_epochs"
                st.update(epoch=epoch, history=[h.to_dict() for h in history], finished=reason)
                if directory is not None:
                    if improved:
                        atomic_save(self.ck.export(self.model.state_dict(), epoch, verdict.value), directory / "best.pt")
                    atomic_save(self._last(), directory / "last.pt")
                if on_epoch is not None:
                    on_epoch(stats)

        if self.keep_last_if_none_kept and st["best_epoch"] == 0 and history and reason != "diverged":
            last = history[-1]
            st.update(best_epoch=last.epoch, best_value=self.keep_last_if_none_kept(last), best_model=_copy(self.model))
            if directory is not None and not (directory / "best.pt").exists():
                atomic_save(self.ck.export(st["best_model"], st["best_epoch"], st["best_value"]), directory / "best.pt")
        self.model.load_state_dict(st["best_model"])
        return LoopResult(history=history, best_epoch=st["best_epoch"], best_value=st["best_value"],
                          stopped_reason=reason, resumed_from=resumed_from)
