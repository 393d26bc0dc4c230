"""Data side of the downstream U-Net (no Django): validation of cases, preprocessing onto the model grid,
paired augmentation, patch sampling, batching and (sliding-window) inference.

A case is ``(images, label)``: ``images`` a sequence of M co-registered volumes ``(X, Y, Z)`` (one per
modality, the same order in every case), ``label`` a 0/1 mask ``(X, Y, Z)`` on the same grid. On the model
grid an item is ``{"image": float32 (M, H, W, D) z-normalised, "label": float32 (1, H, W, D) 0/1}``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.data import CacheDataset
from monai.inferers import sliding_window_inference
from monai.transforms import (
    Compose,
    RandAffined,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ToDeviced,
    Transform,
)

from pipeline.core.preprocess import (
    GridSpec,
    check_case_images,
    label_to_model_grid,
    named_cases,
    to_model_grid,
)
from pipeline.core.unet.config import UNetConfig

__all__ = ["ToModelGridd", "make_unet_augmentation", "make_train_transforms", "build_train_dataset",
           "collate", "infer_logits", "validate_cases", "case_fingerprint", "same_fingerprint",
           "order_modalities"]

LabelledCase = tuple[Sequence[np.ndarray], np.ndarray]


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.as_tensor() if hasattr(t, "as_tensor") else t  # MONAI MetaTensor -> torch.Tensor


def _check_label(label: np.ndarray, name: str, shape: tuple) -> None:
    if not isinstance(label, np.ndarray):
        raise ValueError(f"{name}: label must be a numpy array, got {type(label).__name__}")
    if label.shape != shape:
        raise ValueError(f"{name}: label shape {label.shape} != image shape {shape}")
    if not (label.dtype == bool or np.issubdtype(label.dtype, np.integer)):
        raise ValueError(f"{name}: label dtype {label.dtype} must be an integer 0/1 mask (uint8)")
    if label.size and (label.min() < 0 or label.max() > 1):
        raise ValueError(f"{name}: label must contain only 0 and 1, got values in [{label.min()}, {label.max()}]")


def validate_cases(train: Sequence[LabelledCase], val: Sequence[LabelledCase], config: UNetConfig) -> int:
    """Raise ``ValueError`` (naming split, case index and reason) before training; returns M (modalities).

    Checks: TRAIN and VAL non-empty; each case an ``(images, label)`` pair; images a non-empty list of
    same-shaped volumes; the same M everywhere; label 0/1 of the image shape; the case fits the grid.
    """
    grid = GridSpec(*config.grid)
    n_mod = None
    for name, case in named_cases(train, val, "the U-Net"):
        if isinstance(case, np.ndarray) or not isinstance(case, Sequence) or len(case) != 2:
            raise ValueError(f"{name}: expected an (images, label) pair")
        images, label = case
        if isinstance(images, np.ndarray) or len(images) == 0:
            raise ValueError(f"{name}: images must be a non-empty list of modality volumes (X, Y, Z)")
        _check_label(label, name, check_case_images(name, images, grid, n_mod))
        n_mod = len(images)
    return int(n_mod)


def case_fingerprint(cases: Sequence[LabelledCase]) -> list:
    """Cheap identity of cases for resuming: per case its shape, per-modality mean / std and a SHA-1 of the
    label's bits (two arms differ only in labels, so the label must be identified exactly)."""
    out = []
    for images, label in cases:
        stats = [(float(np.mean(v, dtype=np.float64)), float(np.std(v, dtype=np.float64))) for v in images]
        digest = hashlib.sha1(np.packbits(np.asarray(label) != 0).tobytes()).hexdigest()
        out.append([list(np.shape(images[0])), stats, digest])
    return out


def same_fingerprint(a: dict, b: dict) -> bool:
    """Whether two ``{"train": [...], "val": [...]}`` fingerprints (:func:`case_fingerprint`) describe the same cases."""
    try:
        for split in ("train", "val"):
            if len(a[split]) != len(b[split]):
                return False
            for (sa, ma, la), (sb, mb, lb) in zip(a[split], b[split], strict=True):
                if list(sa) != list(sb) or la != lb or not np.allclose(ma, mb, rtol=1e-9, atol=0):
                    return False
    except (KeyError, TypeError, ValueError):
        return False
    return True


def order_modalities(images, modalities: Sequence[str] | None, what: str = "predict") -> list[np.ndarray]:
    """``images`` as a list: a sequence is taken as is; a mapping name -> volume is put in ``modalities`` order."""
    if isinstance(images, Mapping):
        if not modalities:
            raise ValueError(f"{what}: images given by name but the model has no modality names; pass a list "
                             "in training order")
        missing = [m for m in modalities if m not in images]
        if missing:
            raise ValueError(f"{what}: modality {', '.join(map(repr, missing))} missing; the model needs "
                             f"{list(modalities)}")
        return [images[m] for m in modalities]
    if isinstance(images, np.ndarray):
        raise ValueError(f"{what}: expected a list of modality volumes (X, Y, Z), got one array")
    return list(images)


class ToModelGridd(Transform):
    """Deterministic (cacheable) step: ``{"images": [M x (X, Y, Z)], "label": (X, Y, Z)}`` ->
    ``{"image": float32 tensor (M, H, W, D), "label": float32 tensor (1, H, W, D)}`` on the model grid
    (:func:`pipeline.core.preprocess.to_model_grid`, label nearest)."""

    def __init__(self, grid: GridSpec) -> None:
        self.grid = grid

    def __call__(self, data: Mapping) -> dict:
        arr, record = to_model_grid(data["images"], self.grid)
        lab = label_to_model_grid(np.asarray(data["label"]).astype(np.uint8), record)
        return {"image": torch.from_numpy(arr), "label": torch.from_numpy(lab[None].astype(np.float32))}


def make_unet_augmentation(keys: Sequence[str] = ("image", "label"), *, flip_prob: float = 0.5,
                           affine_prob: float = 0.5, rotate_deg: float = 15.0, scale: float = 0.1,
                           intensity_prob: float = 0.5, intensity_scale: float = 0.1, intensity_shift: float = 0.1,
                           device: torch.device | None = None) -> Compose:
    """Paired random augmentation of a channel-first item ``{"image": (M, H, W, D), "label": (1, H, W, D)}``.

    One draw of in-plane flips (X, Y) and affine (in-plane rotation up to ``rotate_deg``, X/Y scaling up to
    ``scale``) moves image and label together (image bilinear, label nearest; border padding, since a
    z-normalised image has a negative background); then the image alone gets a random intensity scale
    ``x (1 + U(-s, s))`` and shift ``+ U(-o, o)`` (in z-score units). Seed with ``set_random_state``.
    ``keys``: image key first, label key second.
    """
    image, label = keys
    both = [image, label]
    return Compose([
        RandFlipd(both, prob=flip_prob, spatial_axis=0),
        RandFlipd(both, prob=flip_prob, spatial_axis=1),
        RandAffined(both, prob=affine_prob, rotate_range=(0.0, 0.0, math.radians(rotate_deg)),
                    scale_range=(scale, scale, 0.0), mode=("bilinear", "nearest"), padding_mode="border",
                    device=device),
        RandScaleIntensityd(image, factors=intensity_scale, prob=intensity_prob),
        RandShiftIntensityd(image, offsets=intensity_shift, prob=intensity_prob),
    ])


def make_train_transforms(config: UNetConfig, device: torch.device, *, cache_on_device: bool) -> Compose:
    """Deterministic part (model grid, optionally moved to ``device`` so the cache lives there), then the
    random part: ``RandCropByPosNegLabeld`` when ``patch_size`` is set, and the paired augmentation."""
    steps: list = [ToModelGridd(GridSpec(*config.grid))]
    if cache_on_device:
        steps.append(ToDeviced(["image", "label"], device=device))
    if config.patch_size is not None:
        steps.append(RandCropByPosNegLabeld(["image", "label"], label_key="label", spatial_size=config.patch_size,
                                            pos=config.pos, neg=config.neg, num_samples=config.num_samples))
    if config.augment:
        steps.append(make_unet_augmentation(device=device if cache_on_device else None))
    return Compose(steps)


def build_train_dataset(cases: Sequence[LabelledCase], config: UNetConfig, device: torch.device) -> CacheDataset:
    """A ``CacheDataset`` over TRAIN cases; ``config.cache_rate`` of them keep their model-grid arrays cached
    (on the GPU when CUDA is used and the cache takes under a quarter of free memory)."""
    n_mod = len(cases[0][0])
    n_cached = int(len(cases) * config.cache_rate)
    on_device = False
    if device.type == "cuda":
        need = n_cached * (n_mod + 1) * int(np.prod(config.grid)) * 4
        on_device = need < 0.25 * torch.cuda.mem_get_info(device)[0]
    data = [{"images": list(images), "label": label} for images, label in cases]
    transforms = make_train_transforms(config, device, cache_on_device=on_device)
    return CacheDataset(data, transforms, cache_rate=config.cache_rate, num_workers=1, progress=False)


def collate(items: Sequence, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Items (dicts, or lists of ``num_samples`` dicts from patch sampling) -> ``x (B, M, h, w, d)``,
    ``y (B, 1, h, w, d)`` on ``device``."""
    flat = [d for it in items for d in (it if isinstance(it, list) else [it])]
    x = torch.stack([_plain(d["image"]).to(device, non_blocking=True) for d in flat])
    y = torch.stack([_plain(d["label"]).to(device, non_blocking=True) for d in flat])
    return x, y


def infer_logits(model: torch.nn.Module, x: torch.Tensor, config: UNetConfig) -> torch.Tensor:
    """Logits ``(B, 2, H, W, D)`` for model-grid input ``(B, M, H, W, D)``: one forward pass, or
    ``sliding_window_inference`` over ``patch_size`` windows (Gaussian blending) when patches are used."""
    if config.patch_size is None or tuple(config.patch_size) == tuple(x.shape[2:]):
        return model(x)
    return sliding_window_inference(x, roi_size=config.patch_size, sw_batch_size=config.sw_batch_size,
                                    predictor=model, overlap=config.sw_overlap, mode="gaussian")
