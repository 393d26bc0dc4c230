"""Network, loss and augmentation of the step-1 clustering (no Django). Re-exported by
:mod:`pipeline.core.clustering`.

3D multi-modal extension of Kanezaki's unsupervised segmentation by differentiable feature clustering
(Kim & Kanezaki, IEEE TIP 2020): one small 3D CNN with *shared weights* runs on every modality, the
per-modality responses are concatenated, and each voxel's cluster is the argmax over all channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.transforms import Compose, RandAffined, RandFlipd
from torch import nn

__all__ = ["ClusterNet", "ClusteringLoss", "ContinuityL1", "make_augmentation"]


class ClusterNet(nn.Module):
    """Shared-weight feature network.

    Per modality: ``n_conv`` x (conv3d 3x3x3 -> ReLU -> BatchNorm3d), then conv3d 1x1x1 -> BatchNorm3d.
    The modalities are folded into the batch so the same weights (and BatchNorm statistics) serve all.

    Args:
        n_channels: features per modality (``C``).
        n_conv: number of 3x3x3 blocks.
        slice_kernel: kernel size along Z (the slice axis) of those blocks: 3 (paper, 3x3x3) or 1 (3x3x1: each
            slice is clustered from its own voxels, for thick slices whose neighbours are 3-5 mm away; with
            3x3x3 an enhancing rim one slice away pulls the oedema above and below it into the rim's cluster).

    Shapes:
        ``forward(x)``: ``x`` ``(B, M, H, W, D)`` float -> response ``(B, M * C, H, W, D)``; channels
        ``m * C .. (m + 1) * C - 1`` belong to modality ``m``, so cluster id ``k`` (argmax over channels)
        is channel ``k % C`` of modality ``k // C``: ids are distinct for every channel (no modulo colours).
        Works for any ``M >= 1``.
    """

    def __init__(self, n_channels: int = 30, n_conv: int = 2, slice_kernel: int = 3) -> None:
        super().__init__()
        if n_channels < 1 or n_conv < 1:
            raise ValueError(f"ClusterNet: n_channels ({n_channels}) and n_conv ({n_conv}) must be >= 1")
        if slice_kernel not in (1, 3):
            raise ValueError(f"ClusterNet: slice_kernel must be 1 or 3, got {slice_kernel!r}")
        self.n_channels = n_channels
        layers: list[nn.Module] = []
        in_ch = 1
        for _ in range(n_conv):
            layers += [nn.Conv3d(in_ch, n_channels, (3, 3, slice_kernel), padding=(1, 1, slice_kernel // 2)),
                       nn.ReLU(inplace=True),
                       nn.BatchNorm3d(n_channels)]
            in_ch = n_channels
        layers += [nn.Conv3d(n_channels, n_channels, 1), nn.BatchNorm3d(n_channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"ClusterNet expects (B, M, H, W, D), got shape {tuple(x.shape)}")
        b, m = x.shape[:2]
        y = self.body(x.reshape(b * m, 1, *x.shape[2:]))  # shared weights: modalities ride in the batch
        return y.reshape(b, m * self.n_channels, *x.shape[2:])


class ClusteringLoss(nn.Module):
    """Self-labelling cross-entropy + ``mu`` x spatial continuity.

    ``ce``: cross-entropy of the response against its own (detached) argmax over channels.
    ``continuity``: sum over the three spatial axes of the mean absolute difference between neighbouring
    voxels of the response (Kanezaki's L1 "HPy/HPz" term, extended to 3D); axes of size 1 are skipped.

    ``forward(response)`` with response ``(B, K, H, W, D)`` returns ``(total, ce, continuity)``, scalars.
    """

    def __init__(self, mu: float = 1.0) -> None:
        super().__init__()
        if not (mu >= 0 and math.isfinite(mu)):
            raise ValueError(f"ClusteringLoss: mu must be a finite number >= 0, got {mu!r}")
        self.mu = float(mu)

    def forward(self, response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if response.ndim != 5:
            raise ValueError(f"ClusteringLoss expects (B, K, H, W, D), got shape {tuple(response.shape)}")
        target = response.detach().argmax(dim=1)
        ce = F.cross_entropy(response, target)
        continuity = ContinuityL1.apply(response)
        return ce + self.mu * continuity, ce, continuity


class ContinuityL1(torch.autograd.Function):
    """``sum over axes 2, 3, 4 of mean |neighbour difference|`` of ``(B, K, H, W, D)``, as one autograd node.

    Autograd through ``diff().abs().mean()`` keeps every difference tensor for the backward pass and builds
    its gradient through slice, sign, multiply and zero-fill nodes: on the CPU that took as long as the
    convolutions. Here the forward keeps only the input; the backward recomputes each difference's sign in
    place and scatters it with two in-place adds. Same value and gradient (up to float summation order);
    axes of size 1 are skipped. Reduced in float32 (float64 for float64 input).
    """

    @staticmethod
    def forward(ctx, response):
        ctx.save_for_backward(response)
        acc = torch.promote_types(response.dtype, torch.float32)  # fp16/bf16 reduce in float32
        total = response.new_zeros((), dtype=acc)
        for axis in (2, 3, 4):
            if response.shape[axis] > 1:
                total = total + response.diff(dim=axis).abs_().mean(dtype=acc)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        (response,) = ctx.saved_tensors
        grad = torch.zeros_like(response)
        for axis in (2, 3, 4):
            n = response.shape[axis]
            if n > 1:
                step = response.diff(dim=axis).sign_().mul_(grad_output.to(response.dtype) / (response.numel() // n
                                                                                               * (n - 1)))
                grad.narrow(axis, 1, n - 1).add_(step)
                grad.narrow(axis, 0, n - 1).sub_(step)
        return grad


def make_augmentation(keys: Sequence[str] = ("image",), *, flip_prob: float = 0.5, affine_prob: float = 0.5,
                      rotate_deg: float = 15.0, scale: float = 0.1,
                      device: torch.device | None = None) -> Compose:
    """Random spatial augmentation for channel-first ``(M, H, W, D)`` cases (MONAI dict transforms).

    All modalities of a case are channels of one tensor (or several ``keys`` of one dict), so one draw of
    flip + affine moves them together and they stay aligned. Flips are in-plane (X and Y, each with
    ``flip_prob``); the affine (``affine_prob``) rotates in-plane by up to ``rotate_deg`` and scales X/Y by up
    to ``scale``, bilinear, border padding (z-normalised zeros would read as tissue). Seed with
    ``set_random_state``. ``device``: where the affine grid is built (the cases' device).
    """
    keys = list(keys)
    return Compose([
        RandFlipd(keys, prob=flip_prob, spatial_axis=0),
        RandFlipd(keys, prob=flip_prob, spatial_axis=1),
        RandAffined(keys, prob=affine_prob, rotate_range=(0.0, 0.0, math.radians(rotate_deg)),
                    scale_range=(scale, scale, 0.0), mode="bilinear", padding_mode="border", device=device),
    ])
