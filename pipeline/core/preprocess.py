"""Bringing a case's volumes onto a fixed model grid and mapping model outputs back, exactly (no Django).

The preprocessing of the clustering paper, shared by the step-1 clustering trainer and the U-Net module:

1. in-plane: pad the shorter in-plane axis so the slice becomes a square of side ``S = max(X, Y)``
   (nothing is cropped in-plane);
2. slice axis: centre-crop or centre-pad ``Z`` to ``grid.depth``;
3. resize ``(S, S, depth)`` -> ``(height, width, depth)`` (trilinear with anti-aliasing for images,
   ``nearest-exact`` for labels and cluster maps);
4. z-normalise each modality.

Everything is in nibabel voxel order ``(X, Y, Z)``, Z (slices) last. The mapping is in voxel space only: the
caller keeps the case's affine, and :func:`from_model_grid` returns arrays of exactly the original shape.
Steps 1-3 are MONAI dict transforms built from a :class:`GridRecord` (:func:`grid_transforms`), so MONAI's own
``Compose.inverse`` can undo them; :func:`from_model_grid` is an explicit exact inverse that needs no
MONAI trace (a model output is a plain array), and the tests check both agree.

Choices that differ from a literal port, on purpose:

* padding uses each modality's minimum (its background), not 0, so already-normalised inputs (negative
  background) do not get a bright band of padding;
* the z-normalisation statistics (mean, std) are taken on the model grid over the voxels that are not
  padding, so the amount of padding does not change how a case is normalised.
* label resizing uses ``nearest-exact`` (pixel-centre aligned), which avoids the half-voxel shift of torch's
  legacy ``nearest`` and makes integral down/up-sampling round trips exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from monai.transforms import BorderPadd, Compose, Resize, Resized, SpatialCropd

__all__ = [
    "GridSpec",
    "GridRecord",
    "plan_grid",
    "grid_transforms",
    "to_model_grid",
    "label_to_model_grid",
    "from_model_grid",
    "check_fits",
    "named_cases",
    "check_case_images",
]

# Resize modes we expose, mapped to torch.nn.functional.interpolate modes for 3D volumes.
_MODES = {"nearest": "nearest-exact", "nearest-exact": "nearest-exact", "linear": "trilinear",
          "trilinear": "trilinear"}


@dataclass(frozen=True)
class GridSpec:
    """The model grid ``(height, width, depth)``: ``height`` x ``width`` in-plane (X, Y), ``depth`` slices (Z)."""

    height: int
    width: int
    depth: int

    def __post_init__(self) -> None:
        for name in ("height", "width", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"GridSpec.{name} must be a positive integer, got {value!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.height), int(self.width), int(self.depth))


@dataclass(frozen=True)
class GridRecord:
    """Everything needed to map between one case's original grid and the model grid.

    Attributes:
        original_shape: ``(X, Y, Z)`` of the case.
        grid: the model grid.
        crop: per axis ``(start, stop)`` kept from the original (only Z is ever cropped).
        pad: per axis ``(before, after)`` voxels added after cropping.
        means, stds: per-modality z-normalisation statistics in the input's intensity units, measured on
            the model grid over non-padding voxels (empty for a geometry-only record from :func:`plan_grid`).
    """

    original_shape: tuple[int, int, int]
    grid: GridSpec
    crop: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    pad: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    means: tuple[float, ...] = ()
    stds: tuple[float, ...] = ()

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        """Shape after crop + pad, before resizing: ``(S, S, depth)``."""
        return tuple(int(c[1] - c[0] + p[0] + p[1]) for c, p in zip(self.crop, self.pad, strict=True))

    def to_dict(self) -> dict:
        """JSON-able dict (for storing next to a run's artifacts)."""
        d = asdict(self)
        d["grid"] = asdict(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GridRecord:
        return cls(
            original_shape=tuple(int(s) for s in d["original_shape"]),
            grid=GridSpec(**d["grid"]),
            crop=tuple((int(a), int(b)) for a, b in d["crop"]),
            pad=tuple((int(a), int(b)) for a, b in d["pad"]),
            means=tuple(float(m) for m in d.get("means", ())),
            stds=tuple(float(s) for s in d.get("stds", ())),
        )


def check_fits(shape: Sequence[int], grid: GridSpec) -> None:
    """Raise ``ValueError`` if a case of ``shape`` ``(X, Y, Z)`` is too small to be meaningful on ``grid``.

    Rule (each part names itself in the message):

    * the shape is 3D with positive sizes;
    * each in-plane size is at least 8 voxels (less is a strip, not an image);
    * the in-plane square ``S = max(X, Y)`` is upsampled at most 8x (``8 * S >= max(height, width)``):
      beyond that the grid only invents detail and costs compute;
    * ``Z >= min(3, depth)`` (a 3x3x3 convolution needs 3 slices for 3D context) and ``4 * Z >= depth``
      (otherwise more than 3/4 of the network's input would be padding).
    """
    shape = tuple(shape)
    if len(shape) != 3 or any((not isinstance(s, int | np.integer)) or s < 1 for s in shape):
        raise ValueError(f"case shape must be 3 positive sizes (X, Y, Z), got {shape!r}")
    x, y, z = (int(s) for s in shape)
    if min(x, y) < 8:
        raise ValueError(f"case shape {shape}: in-plane size {min(x, y)} < 8 voxels is too small for a 3D grid")
    side = max(x, y)
    if 8 * side < max(grid.height, grid.width):
        raise ValueError(
            f"case shape {shape}: in-plane size {side} would be upsampled more than 8x to the grid "
            f"{grid.height}x{grid.width}; use a smaller grid"
        )
    if z < min(3, grid.depth) or 4 * z < grid.depth:
        raise ValueError(
            f"case shape {shape}: {z} slices is too few for grid depth {grid.depth} "
            f"(need at least {max(min(3, grid.depth), math.ceil(grid.depth / 4))})"
        )


def plan_grid(shape: Sequence[int], grid: GridSpec) -> GridRecord:
    """The crop/pad geometry (no intensity statistics) for a case of ``shape`` ``(X, Y, Z)``."""
    check_fits(shape, grid)
    x, y, z = (int(s) for s in shape)
    side = max(x, y)
    crop, pad = [], []
    for size, target in ((x, side), (y, side), (z, grid.depth)):
        if size > target:  # centre crop (only ever the slice axis)
            start = (size - target) // 2
            crop.append((start, start + target))
            pad.append((0, 0))
        else:  # centre pad; the odd voxel goes after
            before = (target - size) // 2
            crop.append((0, size))
            pad.append((before, target - size - before))
    return GridRecord(original_shape=(x, y, z), grid=grid, crop=tuple(crop), pad=tuple(pad))


def grid_transforms(record: GridRecord, keys: Sequence[str] = ("image",),
                    mode: Sequence[str] | str = "trilinear") -> Compose:
    """MONAI dict transforms: original grid -> model grid (crop, pad, resize) for channel-first ``(C, X, Y, Z)``.

    Args:
        record: the case's geometry (:func:`plan_grid`).
        keys: dict keys to transform together.
        mode: per key ``"trilinear"`` (images; anti-aliased when downsampling) or ``"nearest"`` (labels).

    Padding is constant 0, so shift images to a zero background first (as :func:`to_model_grid` does).
    Invertible with ``Compose.inverse`` on the MetaTensors it produced.
    """
    keys = list(keys)
    modes = [mode] * len(keys) if isinstance(mode, str) else list(mode)
    if len(modes) != len(keys):
        raise ValueError(f"grid_transforms: {len(modes)} modes for {len(keys)} keys")
    try:
        modes = [_MODES[m] for m in modes]
    except KeyError as exc:
        raise ValueError(f"grid_transforms: unknown mode {exc.args[0]!r}; use one of {sorted(_MODES)}") from None
    border = [int(v) for p in record.pad for v in p]
    return Compose([
        SpatialCropd(keys, roi_start=[c[0] for c in record.crop], roi_end=[c[1] for c in record.crop]),
        BorderPadd(keys, spatial_border=border, mode="constant"),
        Resized(keys, spatial_size=record.grid.shape, mode=modes,
                anti_aliasing=[m == "trilinear" for m in modes]),
    ])


def _check_volumes(images: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) or len(images) == 0:
        raise ValueError(f"{what}: expected a non-empty sequence of 3D arrays (one per modality)")
    arrays = [np.asarray(a) for a in images]
    for i, a in enumerate(arrays):
        if a.ndim != 3:
            raise ValueError(f"{what}: modality {i} has shape {a.shape}, expected 3D (X, Y, Z)")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{what}: modality {i} has non-real dtype {a.dtype}")
        if a.shape != arrays[0].shape:
            raise ValueError(f"{what}: modality {i} has shape {a.shape}, modality 0 has {arrays[0].shape}; "
                             "all modalities of a case must share one grid")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValueError(f"{what}: modality {i} contains NaN or infinite values")
    return arrays


def to_model_grid(images: Sequence[np.ndarray], grid: GridSpec) -> tuple[np.ndarray, GridRecord]:
    """M co-registered volumes ``(X, Y, Z)`` -> float32 ``(M, height, width, depth)``, z-normalised per modality.

    Returns the model-grid array and the :class:`GridRecord` that inverts it (:func:`from_model_grid`).
    Raises ``ValueError`` for an empty list, non-3D or mismatched shapes, non-finite values, or a case too
    small for the grid (:func:`check_fits`).
    """
    arrays = _check_volumes(images, "to_model_grid")
    record = plan_grid(arrays[0].shape, grid)
    stack = np.stack([a.astype(np.float32, copy=False) for a in arrays])
    lows = stack.min(axis=(1, 2, 3))
    # Shift each modality to a zero background so the constant-0 padding is background.
    shifted = stack - lows[:, None, None, None]
    out = grid_transforms(record, ("image",), "trilinear")({"image": torch.from_numpy(shifted)})["image"]
    out = out.as_tensor() if hasattr(out, "as_tensor") else out
    out = out.numpy().astype(np.float32, copy=False)
    # z-normalise on the model grid (as the paper does), but with statistics of the case's own voxels only,
    # so the amount of padding does not change how a case is normalised.
    inside = out[:, _inside_mask(record)].astype(np.float64)
    means, stds = inside.mean(axis=1), inside.std(axis=1)
    stds = np.where(stds > 1e-6 * np.maximum(1.0, np.abs(means)), stds, 1.0)  # constant image: no scaling
    out -= means.astype(np.float32)[:, None, None, None]
    out /= stds.astype(np.float32)[:, None, None, None]
    record = GridRecord(record.original_shape, record.grid, record.crop, record.pad,
                        tuple(float(m + lo) for m, lo in zip(means, lows, strict=True)),
                        tuple(float(s) for s in stds))
    return np.ascontiguousarray(out), record


def _inside_mask(record: GridRecord) -> np.ndarray:
    """Boolean ``(height, width, depth)``: model voxels whose nearest source voxel is not padding."""
    axes = []
    for n, m, (before, after) in zip(record.padded_shape, record.grid.shape, record.pad, strict=True):
        src = np.minimum(np.floor((np.arange(m) + 0.5) * (n / m)).astype(int), n - 1)  # torch nearest-exact
        axes.append((src >= before) & (src < n - after))
    return axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]


def label_to_model_grid(label: np.ndarray, record: GridRecord) -> np.ndarray:
    """A label or integer map ``(X, Y, Z)`` on the case's grid -> ``(height, width, depth)``, nearest, same dtype."""
    label = np.asarray(label)
    if label.shape != record.original_shape:
        raise ValueError(f"label_to_model_grid: label shape {label.shape} != case shape {record.original_shape}")
    if not (np.issubdtype(label.dtype, np.integer) or label.dtype == bool):
        raise ValueError(f"label_to_model_grid: label dtype {label.dtype} is not integer or bool")
    if np.abs(label).max(initial=0) >= 2**24:
        raise ValueError("label_to_model_grid: label values >= 2**24 cannot be resized exactly (float32)")
    data = torch.from_numpy(label.astype(np.float32)[None])
    out = grid_transforms(record, ("label",), "nearest")({"label": data})["label"]
    out = out.as_tensor() if hasattr(out, "as_tensor") else out
    return np.rint(out[0].numpy()).astype(label.dtype)


def from_model_grid(arr: np.ndarray, record: GridRecord, *, mode: str = "nearest", fill: float = 0) -> np.ndarray:
    """Map a model output back onto the case's original grid (exact inverse of the geometry).

    Args:
        arr: ``(height, width, depth)`` (a label, cluster map or score) or ``(C, height, width, depth)``.
        record: the case's :class:`GridRecord`.
        mode: ``"nearest"`` (labels, cluster maps; keeps the dtype) or ``"linear"`` (scores; float32).
        fill: value for original voxels outside the model grid (slices cropped away when ``Z > depth``).

    Returns:
        ``(X, Y, Z)`` (or ``(C, X, Y, Z)``) on the case's original voxel grid; the affine is unchanged.
    """
    arr = np.asarray(arr)
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != record.grid.shape:
        raise ValueError(f"from_model_grid: array shape {arr.shape if not squeeze else arr.shape[1:]} does not "
                         f"match the model grid {record.grid.shape}")
    if mode not in _MODES:
        raise ValueError(f"from_model_grid: unknown mode {mode!r}; use 'nearest' or 'linear'")
    interp = _MODES[mode]
    nearest = interp == "nearest-exact"
    if nearest and np.issubdtype(arr.dtype, np.integer) and np.abs(arr).max(initial=0) >= 2**24:
        raise ValueError("from_model_grid: values >= 2**24 cannot be resized exactly (float32)")
    if nearest and np.issubdtype(arr.dtype, np.integer) and not np.can_cast(np.min_scalar_type(fill), arr.dtype):
        raise ValueError(f"from_model_grid: fill {fill!r} does not fit the array's dtype {arr.dtype}")
    data = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    resized = Resize(record.padded_shape, mode=interp, anti_aliasing=False)(data)
    resized = resized.as_tensor() if hasattr(resized, "as_tensor") else resized
    resized = resized.numpy()
    # Undo the padding, then put the kept slab back into a fill-valued original-shaped array.
    inner = tuple(slice(p[0], s - p[1]) for p, s in zip(record.pad, record.padded_shape, strict=True))
    kept = resized[(slice(None), *inner)]
    out_dtype = arr.dtype if nearest else np.float32
    if nearest and np.issubdtype(out_dtype, np.integer):
        kept = np.rint(kept)
    out = np.full((arr.shape[0], *record.original_shape), fill, dtype=out_dtype)
    out[(slice(None), *(slice(c[0], c[1]) for c in record.crop))] = kept.astype(out_dtype)
    return out[0] if squeeze else out


def named_cases(train, val, model: str):
    """Yield ``("TRAIN case 3", case)`` / ``("VAL case 0", case)`` for every case, after refusing an empty split
    (``model`` names the trainer in the message, e.g. "clustering")."""
    if len(train) == 0:
        raise ValueError(f"no TRAIN cases: {model} needs at least one training case")
    if len(val) == 0:
        raise ValueError(f"no VAL cases: {model} needs at least one validation case for early stopping")
    for split, cases in (("TRAIN", train), ("VAL", val)):
        for i, case in enumerate(cases):
            yield f"{split} case {i}", case


def check_case_images(name: str, images: Sequence[np.ndarray], grid: GridSpec, n_mod: int | None) -> tuple:
    """Refuse, before training, a case whose modalities number differently from the other cases' ``n_mod``
    (None for the first case), differ in shape, or do not fit ``grid``; returns the shared shape. The caller
    has checked that ``images`` is a non-empty list."""
    if n_mod is not None and len(images) != n_mod:
        raise ValueError(f"{name} has {len(images)} modalities but TRAIN case 0 has {n_mod}; "
                         "every case needs the same modalities in the same order")
    shapes = [np.shape(v) for v in images]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"{name}: modality shapes differ {shapes}; modalities must share one grid")
    try:
        check_fits(shapes[0], grid)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return shapes[0]
