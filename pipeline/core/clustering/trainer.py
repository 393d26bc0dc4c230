"""Step 1: unsupervised 3D multi-modal segmentation by differentiable feature clustering (no Django).

A 3D, multi-modal, data-set-level extension of Kanezaki's method (Kim & Kanezaki, IEEE TIP 2020): a small
3D CNN with shared weights runs on every modality (:class:`ClusterNet`), the responses are concatenated
and trained against their own argmax plus a spatial continuity term (:class:`ClusteringLoss`), over TRAIN
cases with early stopping on VAL cases (:class:`ClusteringTrainer`). A voxel's cluster is the argmax over
all ``M * n_channels`` channels.

Where this deliberately improves on a literal port:

* one random flip + affine draw per case moves all its modalities together (they are channels of one
  tensor), so they stay aligned;
* cluster ids are the raw argmax over the concatenated channels, ``0 .. M * n_channels - 1``: distinct for
  every channel of every modality (no colour-modulo collisions);
* no host synchronisation per step: losses and the set of cluster ids in use accumulate on the device and
  are read once per epoch;
* the cluster count is measured on the VAL cases in eval mode, i.e. what :meth:`ClusteringTrainer.predict`
  will produce, and ``min_clusters`` (Kanezaki's ``minLabels``) can stop the run; the epoch that falls to
  ``min_clusters`` is not kept as "best" even though its VAL loss is lowest (the self-labelling loss keeps
  falling as clusters merge, so the lowest loss is often a collapsed clustering);
* ``keep_epoch_by="val_labels"`` (the "fast" preset) keeps the epoch whose VAL cluster maps best rebuild the
  VAL cases' expert labels from whole regions, instead of the lowest VAL loss; the weights never see a label;
* float16 autocast + GradScaler on CUDA (fused SGD, so the scaler needs no per-step sync);
* seeded runs: weights from ``seed``; case order and augmentation reseeded from ``(seed, epoch)`` each
  epoch, so a resumed run draws exactly what an uninterrupted one would (identical on CPU);
* each case is preprocessed once (:mod:`pipeline.core.preprocess`) and cached; only augmentation runs
  per step;
* checkpoints are written atomically, and ``fit`` resumes from ``last.pt``.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.core.clustering.bfloat16 import bfloat16_why_not
from pipeline.core.clustering.config import ClusteringConfig
from pipeline.core.clustering.model import ClusteringLoss, ClusterNet, make_augmentation
from pipeline.core.clustering.records import (
    CaseImages,
    EpochStats,
    FitResult,
    validate_cases,
    validate_val_labels,
)
from pipeline.core.device import resolve_device
from pipeline.core.metrics import best_regions, dice
from pipeline.core.preprocess import GridSpec, from_model_grid, label_to_model_grid, to_model_grid
from pipeline.core.training.checkpoints import atomic_save, epoch_seed
from pipeline.core.training.loop import Checkpointing, EpochLoop, Verdict

__all__ = [
    "ClusteringConfig", "ClusterNet", "ClusteringLoss", "make_augmentation", "EpochStats", "FitResult",
    "ClusteringTrainer", "validate_cases", "validate_val_labels",
]

_FORMAT = "labelgen.clustering/1"


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.as_tensor() if hasattr(t, "as_tensor") else t  # MONAI MetaTensor -> torch.Tensor



class ClusteringTrainer:
    """Trains :class:`ClusterNet` on TRAIN cases with early stopping on VAL, and predicts cluster maps.

    Args:
        config: a :class:`ClusteringConfig`; its device is resolved at once (``ValueError`` if CUDA is asked
            for but absent).
    """

    def __init__(self, config: ClusteringConfig) -> None:
        if not isinstance(config, ClusteringConfig):
            raise TypeError(f"ClusteringTrainer needs a ClusteringConfig, got {type(config).__name__}")
        self.config = config
        self.device = resolve_device(config.device)
        self.grid = GridSpec(config.height, config.width, config.depth)
        self.use_amp = bool(config.amp and self.device.type == "cuda")
        bf16_why_not = (bfloat16_why_not(config.n_channels, config.n_conv, config.slice_kernel,
                                         (config.height, config.width, config.depth))
                        if config.cpu_bf16 and self.device.type == "cpu" else None)
        self.use_bf16 = bool(config.cpu_bf16 and self.device.type == "cpu" and bf16_why_not is None)
        self.notes: list[str] = []  # options this machine cannot honour; the run page shows them
        if bf16_why_not:
            self.notes.append(f"cpu_bf16 ignored: {bf16_why_not}; trained in float32")
            warnings.warn(self.notes[-1], RuntimeWarning, stacklevel=2)
        self.loss_fn = ClusteringLoss(config.mu, inplace=True)  # the trainer never reads a response twice
        self.model = self._new_model()
        self.n_modalities: int | None = None  # set by fit/load; predict needs the same count
        self.best_epoch = 0

    # ----------------------------------------------------------------------------------------- helpers
    def _new_model(self) -> ClusterNet:
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(self.config.seed)
            model = ClusterNet(self.config.n_channels, self.config.n_conv, self.config.slice_kernel,
                               channels_last=self.device.type == "cpu")  # faster oneDNN convolutions
        return model.to(self.device)

    def _prepare(self, cases: Sequence[CaseImages], split: str) -> tuple[torch.Tensor, list, list]:
        """Preprocess once: ``(N, M, H, W, D)`` float32 on the device (pinned host memory if it would not fit),
        the fingerprint stats and the grid records."""
        arrays, stats, records = [], [], []
        for i, case in enumerate(cases):
            try:
                arr, record = to_model_grid(case, self.grid)
            except ValueError as exc:
                raise ValueError(f"{split} case {i}: {exc}") from None
            arrays.append(torch.from_numpy(arr))
            stats.append([list(record.original_shape), list(record.means), list(record.stds)])
            records.append(record)
        data = torch.stack(arrays)
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            data = data.to(self.device) if data.nbytes < 0.25 * free else data.pin_memory()
        return data, stats, records

    def _batches(self, data: torch.Tensor, order: torch.Tensor):
        for i in range(0, len(order), self.config.batch_size):
            yield data[order[i:i + self.config.batch_size]].to(self.device, non_blocking=True)

    def _autocast(self):
        if self.use_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, train: Sequence[CaseImages], val: Sequence[CaseImages], *, checkpoint_dir: str | os.PathLike | None = None,
            on_epoch: Callable[[EpochStats], object] | None = None,
            should_stop: Callable[[], bool] | None = None,
            val_labels: Sequence[np.ndarray | None] | None = None) -> FitResult:
        """Train; afterwards the trainer holds the weights of the best VAL epoch.

        Args:
            train, val: cases, each a list of M modality volumes ``(X, Y, Z)`` (same M everywhere).
            checkpoint_dir: if given, ``last.pt`` is written (atomically) after every epoch and ``best.pt``
                when the kept epoch changes (see ``keep_epoch_by``); if ``last.pt`` exists there, training resumes
                from it (config, except device, and data must match) and ends as an uninterrupted run would.
            on_epoch: called with each epoch's :class:`EpochStats` after its checkpoint is written (epochs
                restored on resume are not re-announced: they are in ``FitResult.history``).
            should_stop: polled before each epoch and between steps (at most every 2 s); when it returns
                true the partial epoch is discarded and ``stopped_reason`` is ``"cancelled"``.
            val_labels: with ``keep_epoch_by="val_labels"``, one 0/1 expert label ``(X, Y, Z)`` per VAL case (the
                raters' consensus; None for a case without one); ignored otherwise.
        """
        cfg = self.config
        validate_cases(train, val, cfg)
        validate_val_labels(val, val_labels, cfg)
        x_train, train_stats, _ = self._prepare(train, "TRAIN")
        x_val, val_stats, val_records = self._prepare(val, "VAL")
        targets = None
        if cfg.keep_epoch_by == "val_labels":  # labels on the model grid, where the VAL maps are scored
            targets = [None if lab is None or not np.any(lab) else label_to_model_grid(np.asarray(lab) > 0, rec)
                       for lab, rec in zip(val_labels, val_records, strict=True)]
            targets = [t if t is not None and t.any() else None for t in targets]
            if all(t is None for t in targets):  # e.g. tiny labels lost when the grid is coarser than the case
                raise ValueError("keep_epoch_by 'val_labels': no VAL expert label has a voxel left on the "
                                 f"{cfg.height}x{cfg.width}x{cfg.depth} model grid; use a finer grid or 'val_loss'")
        fingerprint = {"train": train_stats, "val": val_stats}
        self.n_modalities = n_mod = x_train.shape[1]
        n_ids = n_mod * cfg.n_channels

        self.model = self._new_model()
        fused = self.device.type == "cuda"  # fused SGD lets GradScaler skip inf steps without a host sync
        opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum, fused=fused or None)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        loop = EpochLoop(
            self.model, stateful={"optimizer": opt, "scaler": scaler}, max_epochs=cfg.max_epochs,
            patience=cfg.patience, device=self.device, stats_type=EpochStats, restore_scaler=self.use_amp,
            # no epoch qualified (all at or below min_clusters): keep the last one, as Kanezaki does
            keep_last_if_none_kept=lambda stats: stats.val_loss,
            checkpointing=Checkpointing(
                directory=Path(checkpoint_dir) if checkpoint_dir is not None else None, fmt=_FORMAT,
                config=cfg.to_dict(), defaults=ClusteringConfig().to_dict(), fingerprint=fingerprint,
                same_fingerprint=_same_fingerprint, value_name="best_val", key_of_value=lambda v: v,
                export=self._export, extra={"n_modalities": n_mod}, what="clustering training"))
        aug = make_augmentation(device=self.device) if cfg.augment else None

        def train_epoch(epoch):
            return self._train_epoch(x_train, epoch, opt, scaler, aug, should_stop)

        def judge(epoch, sums):
            val_sums, presence, val_ids = self._evaluate(x_val, n_ids, keep_ids=targets is not None)
            # the one host synchronisation of the epoch
            tr, tr_ce, tr_cont, va, n_clusters = torch.cat(
                [sums / len(x_train), val_sums[:1] / len(x_val), presence.sum().reshape(1).float()]).tolist()
            agreement = None if targets is None else _label_agreement(val_ids, targets)
            stats = EpochStats(epoch=epoch, train_loss=tr, val_loss=va, n_clusters=int(n_clusters), seconds=0.0,
                               best=False, lr=opt.param_groups[0]["lr"], train_ce=tr_ce, train_continuity=tr_cont,
                               val_agreement=agreement)
            # an epoch at or below min_clusters has collapsed clusters (VAL loss keeps falling as clusters merge,
            # so it would win): it ends the run but is never the kept one
            collapsed = bool(cfg.min_clusters) and stats.n_clusters <= cfg.min_clusters
            return Verdict(stats, key=va if agreement is None else 1.0 - agreement, value=va,
                           eligible=math.isfinite(va) and not collapsed, finite=math.isfinite(tr) and math.isfinite(va),
                           stop="min_clusters" if collapsed else None)

        result = loop.run(train_epoch, judge, on_epoch=on_epoch, should_stop=should_stop)
        self.best_epoch = result.best_epoch
        return FitResult(history=result.history, best_epoch=result.best_epoch,
                         best_val_loss=result.best_value if result.best_epoch else math.inf,
                         stopped_reason=result.stopped_reason, resumed_from=result.resumed_from)

    def _train_epoch(self, x_train, epoch, opt, scaler, aug, should_stop) -> torch.Tensor | None:
        """One pass over TRAIN; returns on-device sums (total, ce, continuity) x cases, or None if cancelled."""
        cfg = self.config
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0)))
        if aug is not None:
            aug.set_random_state(seed=epoch_seed(cfg.seed, epoch, 1))
        self.model.train()
        sums = torch.zeros(3, device=self.device)
        last_poll = time.monotonic()
        for xb in self._batches(x_train, order):
            if should_stop is not None and time.monotonic() - last_poll > 2.0:
                if should_stop():
                    return None
                last_poll = time.monotonic()
            if aug is not None:  # one draw per case, shared by its modalities (channels)
                xb = torch.stack([_plain(aug({"image": case})["image"]) for case in xb])
            with self._autocast():
                total, ce, cont = self.loss_fn(self.model.grouped(xb))
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
            sums += torch.stack([total.detach(), ce.detach(), cont.detach()]).float() * len(xb)
        return sums

    @torch.no_grad()
    def _evaluate(self, x_val: torch.Tensor, n_ids: int,
                  keep_ids: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Eval-mode VAL pass: on-device loss sums x cases, a bool vector of cluster ids in use and, if
        ``keep_ids``, each case's cluster map ``(H, W, D)`` (still on the device)."""
        self.model.eval()
        sums = torch.zeros(3, device=self.device)
        presence = torch.zeros(n_ids, dtype=torch.bool, device=self.device)
        maps = []
        for xb in self._batches(x_val, torch.arange(len(x_val))):
            with self._autocast():
                total, ce, cont, ids = self.loss_fn.evaluate(self.model.grouped(xb))
            presence.index_fill_(0, ids.flatten(), True)
            sums += torch.stack([total, ce, cont]).float() * len(xb)
            if keep_ids:
                maps += list(ids.to(torch.int32))
        return sums, presence, maps

    # ---------------------------------------------------------------------------------- checkpoints
    def _export(self, state_dict: dict, epoch: int, val_loss: float) -> dict:
        return {"format": _FORMAT, "kind": "model", "config_json": json.dumps(self.config.to_dict()),
                "n_modalities": self.n_modalities, "model": state_dict, "best_epoch": epoch,
                "val_loss": val_loss}

    def save(self, path: str | os.PathLike) -> None:
        """Write the current weights + config (JSON) + modality count, atomically; :meth:`load` reads it."""
        if self.n_modalities is None:
            raise RuntimeError("nothing to save: call fit() or load() first")
        atomic_save(self._export(self.model.state_dict(), self.best_epoch, math.nan), Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> ClusteringTrainer:
        """A trainer ready to :meth:`predict`, from :meth:`save` output or a ``best.pt``, on ``device`` (default
        ``"auto"``: CUDA if available, else the CPU; not the device it was trained on, which may not exist here)."""
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)
        if ck.get("format") != _FORMAT or ck.get("kind") != "model":
            raise ValueError(f"{path} is not a saved clustering model (use save() or best.pt)")
        # where it was trained ("cuda:1") may not exist here: it runs where asked, else on what this machine has
        config = ClusteringConfig.from_dict(json.loads(ck["config_json"])).replace(device=device or "auto")
        trainer = cls(config)
        trainer.model.load_state_dict(ck["model"])
        trainer.n_modalities = int(ck["n_modalities"])
        trainer.best_epoch = int(ck["best_epoch"])
        return trainer

    # ---------------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, images: CaseImages, *, fill: int = -1) -> np.ndarray:
        """Cluster map of one case: int32 ``(X, Y, Z)`` on the case's ORIGINAL grid, ids in
        ``0 .. M * n_channels - 1``; voxels outside the model grid (slices cropped when ``Z > depth``) get
        ``fill`` (default -1, "not clustered")."""
        if self.n_modalities is None:
            raise RuntimeError("the trainer has no trained model: call fit() or load() first")
        if isinstance(images, np.ndarray) or len(images) != self.n_modalities:
            n = "an array" if isinstance(images, np.ndarray) else f"{len(images)} modalities"
            raise ValueError(f"predict: got {n}, the model was trained on {self.n_modalities} modalities")
        arr, record = to_model_grid(images, self.grid)
        self.model.eval()
        with self._autocast():
            out = self.model(torch.from_numpy(arr)[None].to(self.device))
        ids = out.argmax(dim=1)[0].to(torch.int32).cpu().numpy()
        return from_model_grid(ids, record, mode="nearest", fill=fill)


def _label_agreement(val_ids: list[torch.Tensor], targets: list[np.ndarray | None]) -> float:
    """Mean over labelled VAL cases of the Dice between the expert label and the best union of whole cluster
    regions (:func:`~pipeline.core.metrics.best_regions`): how well step 2 could rebuild the experts' outline
    from these clusters. The maps come to the host here, once per epoch."""
    scores = [dice(best_regions(ids.cpu().numpy(), target), target)
              for ids, target in zip(val_ids, targets, strict=True) if target is not None]
    return float(np.mean(scores))


def _same_fingerprint(a: dict, b: dict) -> bool:
    try:
        for split in ("train", "val"):
            if len(a[split]) != len(b[split]):
                return False
            for (sa, ma, da), (sb, mb, db) in zip(a[split], b[split], strict=True):
                if list(sa) != list(sb) or not (np.allclose(ma, mb, rtol=1e-6) and np.allclose(da, db, rtol=1e-6)):
                    return False
    except (KeyError, TypeError, ValueError):
        return False
    return True
