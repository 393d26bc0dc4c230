"""Downstream 3D U-Net: train on (images, label) cases, predict masks on the cases' own grids (no Django).

labelgen trains two of these identically (same :class:`UNetConfig`, same seed), one on expert labels and
one on AI labels, predicts the TEST split with both and compares them (:mod:`pipeline.core.unet.evaluation`).

* network: MONAI ``UNet`` (3D, 2 output channels, softmax), ``DiceCELoss``, AdamW, cosine or poly schedule;
* data: every case is resampled once onto the model grid (:mod:`pipeline.core.preprocess`) and cached
  (``CacheDataset``); whole volumes or ``RandCropByPosNegLabeld`` patches; paired flip / affine / intensity
  augmentation (:mod:`pipeline.core.unet.data`);
* seeded runs: weights from ``seed``; case order, augmentation draws and dropout reseeded from
  ``(seed, epoch)`` each epoch, so the two arms see the same draws and a resumed run draws exactly what an
  uninterrupted one would (identical history on CPU);
* early stopping on the mean VAL Dice (tumour class, model grid); the best epoch's weights are kept;
* checkpoints ``last.pt`` (everything to resume) and ``best.pt`` (a saved model) written atomically;
* :meth:`UNetTrainer.export` writes ``model.pt`` + ``config.json`` that :meth:`UNetTrainer.load_exported`
  reads back with no database.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.optimizers import WarmupCosineSchedule

from pipeline.core.device import resolve_device
from pipeline.core.preprocess import GridSpec, from_model_grid, to_model_grid
from pipeline.core.training.checkpoints import atomic_save, atomic_write_text, epoch_seed
from pipeline.core.training.loop import Checkpointing, EpochLoop, Verdict
from pipeline.core.unet.config import UNetConfig
from pipeline.core.unet.data import (
    LabelledCase,
    ToModelGridd,
    build_train_dataset,
    case_fingerprint,
    collate,
    infer_logits,
    order_modalities,
    same_fingerprint,
    validate_cases,
)
from pipeline.core.unet.evaluation import evaluate, paired_test

__all__ = ["UNetConfig", "EpochStats", "FitResult", "UNetTrainer", "build_unet", "evaluate", "paired_test",
           "validate_cases"]

_FORMAT = "labelgen.unet/1"
_EXPORT_FORMAT = "labelgen.unet-export/1"


@dataclass
class EpochStats:
    """One epoch: mean TRAIN loss per step, mean VAL Dice / loss per case, the lr used, wall time, whether
    VAL Dice improved (this epoch's weights became the best)."""

    epoch: int
    train_loss: float
    val_dice: float
    val_loss: float
    lr: float
    seconds: float
    best: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    """``stopped_reason``: ``"early_stopping"``, ``"max_epochs"``, ``"diverged"`` (non-finite loss) or
    ``"cancelled"``. ``resumed_from``: epochs restored from ``last.pt`` (0 for a fresh run)."""

    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_dice: float = -math.inf
    stopped_reason: str = ""
    resumed_from: int = 0

    @property
    def epochs(self) -> int:
        return len(self.history)


def build_unet(config: UNetConfig, in_channels: int) -> UNet:
    """The MONAI 3D ``UNet`` of ``config`` with ``in_channels`` modalities and 2 output channels."""
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=2, channels=config.channels,
                strides=config.strides, num_res_units=config.num_res_units, dropout=config.dropout)



class UNetTrainer:
    """Trains the U-Net with early stopping on VAL Dice, and predicts tumour masks.

    Args:
        config: a :class:`UNetConfig`; its device is resolved at once (``ValueError`` if CUDA is asked for
            but absent). The number of input channels is set from the data by :meth:`fit` (or :meth:`load`).
    """

    def __init__(self, config: UNetConfig) -> None:
        if not isinstance(config, UNetConfig):
            raise TypeError(f"UNetTrainer needs a UNetConfig, got {type(config).__name__}")
        self.config = config
        self.device = resolve_device(config.device)
        self.grid = GridSpec(*config.grid)
        self.use_amp = bool(config.amp and self.device.type == "cuda")
        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        self.model: UNet | None = None
        self.n_modalities: int | None = None
        self.modalities: list[str] | None = None  # names in channel order, if given to fit()
        self.best_epoch = 0

    # ----------------------------------------------------------------------------------------- helpers
    def _new_model(self, in_channels: int) -> UNet:
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(self.config.seed)
            model = build_unet(self.config, in_channels)
        return model.to(self.device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    def _scheduler(self, opt):
        cfg = self.config
        if cfg.schedule == "cosine":
            return WarmupCosineSchedule(opt, warmup_steps=cfg.warmup_epochs, t_total=cfg.max_epochs,
                                        warmup_multiplier=0.1 if cfg.warmup_epochs else 0.0)
        return torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=cfg.max_epochs, power=cfg.poly_power)

    def _prepare_val(self, val: Sequence[LabelledCase]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        to_grid = ToModelGridd(self.grid)
        out = []
        for images, label in val:
            item = to_grid({"images": list(images), "label": label})
            out.append((item["image"][None], item["label"][None]))
        return out

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, train: Sequence[LabelledCase], val: Sequence[LabelledCase], *, modalities: Sequence[str] | None = None,
            checkpoint_dir: str | os.PathLike | None = None, on_epoch: Callable[[EpochStats], object] | None = None,
            should_stop: Callable[[], bool] | None = None) -> FitResult:
        """Train; afterwards the trainer holds the weights of the best VAL epoch.

        Args:
            train, val: cases ``(images, label)``: ``images`` M volumes ``(X, Y, Z)`` (same M and order in every
                case), ``label`` a uint8 0/1 mask ``(X, Y, Z)``.
            modalities: optional names of the M modalities in order (stored with the model so :meth:`predict`
                accepts a dict name -> volume).
            checkpoint_dir: if given, ``last.pt`` is written (atomically) after every epoch and ``best.pt``
                when VAL Dice improves; if ``last.pt`` exists there, training resumes from it (config, except
                device, and data must match) and ends as an uninterrupted run would.
            on_epoch: called with each epoch's :class:`EpochStats` after its checkpoint is written (epochs
                restored on resume are not re-announced: they are in ``FitResult.history``).
            should_stop: polled before each epoch and between steps (at most every 2 s); when it returns true
                the partial epoch is discarded and ``stopped_reason`` is ``"cancelled"``.
        """
        cfg = self.config
        n_mod = validate_cases(train, val, cfg)
        if modalities is not None:
            modalities = [str(m) for m in modalities]
            if len(modalities) != n_mod or len(set(modalities)) != n_mod:
                raise ValueError(f"modalities {modalities} must name the {n_mod} modalities once each, in order")
        fingerprint = {"train": case_fingerprint(train), "val": case_fingerprint(val)}
        self.n_modalities, self.modalities = n_mod, modalities
        self.model = self._new_model(n_mod)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = self._scheduler(opt)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        loop = EpochLoop(
            self.model, stateful={"optimizer": opt, "scheduler": sched, "scaler": scaler},
            max_epochs=cfg.max_epochs, patience=cfg.patience, device=self.device, stats_type=EpochStats,
            restore_scaler=self.use_amp,
            checkpointing=Checkpointing(
                directory=Path(checkpoint_dir) if checkpoint_dir is not None else None, fmt=_FORMAT,
                config=cfg.to_dict(), defaults=UNetConfig().to_dict(), fingerprint=fingerprint,
                same_fingerprint=same_fingerprint, value_name="best_dice", key_of_value=lambda dice: -dice,
                export=lambda state, epoch, _dice: self._model_file(state, epoch),
                extra={"n_modalities": n_mod, "modalities": modalities}, what="U-Net training"))
        data = {}

        def train_epoch(epoch):
            if not data:  # only build the (cached) data when there is training left to do
                data.update(train=build_train_dataset(train, cfg, self.device), val=self._prepare_val(val))
            lr = opt.param_groups[0]["lr"]
            train_loss = self._train_epoch(data["train"], epoch, opt, scaler, should_stop)
            if train_loss is None:
                return None
            sched.step()
            return train_loss, lr

        def judge(epoch, trained):
            train_loss, lr = trained
            val_dice, val_loss = self._validate(data["val"])
            stats = EpochStats(epoch=epoch, train_loss=train_loss, val_dice=val_dice, val_loss=val_loss, lr=lr,
                               seconds=0.0, best=False)
            return Verdict(stats, key=-val_dice, value=val_dice,
                           finite=math.isfinite(train_loss) and math.isfinite(val_loss))

        result = loop.run(train_epoch, judge, on_epoch=on_epoch, should_stop=should_stop)
        self.best_epoch = result.best_epoch
        return FitResult(history=result.history, best_epoch=result.best_epoch,
                         best_val_dice=result.best_value if result.best_epoch else -math.inf,
                         stopped_reason=result.stopped_reason, resumed_from=result.resumed_from)

    def _train_epoch(self, dataset, epoch: int, opt, scaler, should_stop) -> float | None:
        """One pass over TRAIN; the mean loss per step, or None if cancelled."""
        cfg = self.config
        torch.manual_seed(epoch_seed(cfg.seed, epoch, 2))  # dropout (and any torch-RNG draw) of this epoch
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0)))
        dataset.transform.set_random_state(seed=epoch_seed(cfg.seed, epoch, 1))  # patches + augmentation
        self.model.train()
        total = torch.zeros((), device=self.device)
        steps = 0
        last_poll = time.monotonic()
        for i in range(0, len(order), cfg.batch_size):
            if should_stop is not None and time.monotonic() - last_poll > 2.0:
                if should_stop():
                    return None
                last_poll = time.monotonic()
            x, y = collate([dataset[int(j)] for j in order[i:i + cfg.batch_size]], self.device)
            with self._autocast():
                loss = self.loss_fn(self.model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach().float()
            steps += 1
        return float(total) / steps  # one host synchronisation per epoch

    @torch.no_grad()
    def _validate(self, val_data) -> tuple[float, float]:
        """Mean over VAL cases of the tumour Dice (argmax, model grid; 1 when both empty) and of the loss."""
        self.model.eval()
        sums = torch.zeros(2, device=self.device)
        for x, y in val_data:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = infer_logits(self.model, x, self.config)
                loss = self.loss_fn(logits, y)
            pred = logits.argmax(dim=1, keepdim=True) == 1
            ref = y > 0.5
            denom = pred.sum() + ref.sum()
            dice = torch.where(denom > 0, 2.0 * (pred & ref).sum() / denom.clamp(min=1), 1.0)
            sums += torch.stack([dice.float(), loss.detach().float()])
        dice, loss = (sums / len(val_data)).tolist()
        return dice, loss

    # ---------------------------------------------------------------------------------- checkpoints
    def _meta(self) -> dict:
        return {"config": self.config.to_dict(), "in_channels": self.n_modalities, "modalities": self.modalities,
                "grid": list(self.config.grid), "best_epoch": self.best_epoch}

    def _model_file(self, state_dict: dict, epoch: int) -> dict:
        meta = {**self._meta(), "best_epoch": epoch}
        return {"format": _FORMAT, "kind": "model", "meta_json": json.dumps(meta), "model": state_dict}

    def _require_model(self) -> UNet:
        if self.model is None or self.n_modalities is None:
            raise RuntimeError("the trainer has no trained model: call fit(), load() or load_exported() first")
        return self.model

    @classmethod
    def _from_meta(cls, meta: dict, state_dict: dict, device: str | None) -> UNetTrainer:
        # where it was trained ("cuda:1") may not exist here: it runs where asked, else on what this machine has
        config = UNetConfig.from_dict(meta["config"]).replace(device=device or "auto")
        trainer = cls(config)
        trainer.n_modalities = int(meta["in_channels"])
        trainer.modalities = list(meta["modalities"]) if meta.get("modalities") else None
        trainer.best_epoch = int(meta.get("best_epoch", 0))
        trainer.model = build_unet(config, trainer.n_modalities).to(trainer.device)
        trainer.model.load_state_dict(state_dict)
        return trainer

    def save(self, path: str | os.PathLike) -> None:
        """Write weights + config + modality count/names to one file, atomically; :meth:`load` reads it."""
        atomic_save(self._model_file(self._require_model().state_dict(), self.best_epoch), Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> UNetTrainer:
        """A trainer ready to :meth:`predict`, from :meth:`save` output or a ``best.pt``, on ``device`` (default
        ``"auto"``: CUDA if available, else the CPU; not the device it was trained on, which may not exist here)."""
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or ck.get("format") != _FORMAT or ck.get("kind") != "model":
            raise ValueError(f"{path} is not a saved U-Net model (use save() or best.pt)")
        return cls._from_meta(json.loads(ck["meta_json"]), ck["model"], device)

    def export(self, path_dir: str | os.PathLike) -> Path:
        """Write ``model.pt`` (the state dict only) and ``config.json`` (format, UNetConfig, in_channels,
        modality names, grid, best epoch) into ``path_dir`` (created); returns the directory."""
        model = self._require_model()
        out = Path(path_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_save(model.state_dict(), out / "model.pt")
        atomic_write_text(json.dumps({"format": _EXPORT_FORMAT, **self._meta()}, indent=2) + "\n",
                           out / "config.json")
        return out

    @classmethod
    def load_exported(cls, path_dir: str | os.PathLike, *, device: str | None = None) -> UNetTrainer:
        """A trainer ready to :meth:`predict` from an :meth:`export` directory (no database needed), on
        ``device`` (default ``"auto"``: CUDA if available, else the CPU)."""
        d = Path(path_dir)
        for name in ("config.json", "model.pt"):
            if not (d / name).is_file():
                raise ValueError(f"{d} is not an exported U-Net: {name} is missing")
        meta = json.loads((d / "config.json").read_text(encoding="utf-8"))
        if meta.get("format") != _EXPORT_FORMAT:
            raise ValueError(f"{d / 'config.json'}: format {meta.get('format')!r} is not {_EXPORT_FORMAT!r}")
        return cls._from_meta(meta, torch.load(d / "model.pt", map_location="cpu", weights_only=True), device)

    # ---------------------------------------------------------------------------------------- predict
    @torch.no_grad()
    def _probabilities(self, images: Sequence[np.ndarray] | Mapping[str, np.ndarray]):
        model = self._require_model()
        vols = order_modalities(images, self.modalities)
        if len(vols) != self.n_modalities:
            raise ValueError(f"predict: got {len(vols)} modalities, the model was trained on {self.n_modalities}"
                             + (f" ({self.modalities})" if self.modalities else ""))
        arr, record = to_model_grid(vols, self.grid)
        model.eval()
        with self._autocast():
            logits = infer_logits(model, torch.from_numpy(arr)[None].to(self.device), self.config)
        return torch.softmax(logits.float(), dim=1)[0], record

    def predict(self, images: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> np.ndarray:
        """Tumour mask of one case: uint8 0/1 ``(X, Y, Z)`` on the case's ORIGINAL grid (argmax on the model
        grid, mapped back nearest). ``images``: M volumes in training order, or a dict name -> volume when
        the model knows its modality names. Slices cropped away (``Z > depth``) are 0."""
        probs, record = self._probabilities(images)
        mask = probs.argmax(dim=0).to(torch.uint8).cpu().numpy()
        return from_model_grid(mask, record, mode="nearest", fill=0)

    def predict_proba(self, images: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> np.ndarray:
        """Tumour probability, float32 ``(X, Y, Z)`` in [0, 1] on the original grid (mapped back linearly;
        0 on slices cropped away)."""
        probs, record = self._probabilities(images)
        return np.clip(from_model_grid(probs[1].cpu().numpy(), record, mode="linear", fill=0), 0.0, 1.0)

