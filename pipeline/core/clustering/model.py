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
from monai.transforms import Compose, RandAffined, RandFlipd
from torch import nn

from pipeline.core.clustering.pointwise_bn import pointwise_batch_norm, pointwise_fusable
from pipeline.core.clustering.relu_bn import ReLUBatchNorm3d

__all__ = ["ClusterNet", "ClusteringLoss", "SelfLabelLoss", "make_augmentation", "self_label_loss"]


class ClusterNet(nn.Module):
    """Shared-weight feature network.

    Per modality: ``n_conv`` x (conv3d 3x3x3 -> ReLU -> BatchNorm3d), then conv3d 1x1x1 -> BatchNorm3d.
    The modalities are folded into the batch so the same weights (and BatchNorm statistics) serve all.

    With ``channels_last`` (the trainer's choice on the CPU) training keeps half the activations for the
    backward, with the same numbers up to rounding: each ReLU -> BatchNorm is one
    :class:`~pipeline.core.clustering.relu_bn.ReLUBatchNorm3d` node and the head one
    :func:`~pipeline.core.clustering.pointwise_bn.pointwise_batch_norm` node. Other layouts (CUDA) run the
    plain modules.

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
        Works for any ``M >= 1``. ``grouped(x)``: the same response as ``(B, M, C, H, W, D)``.
    """

    def __init__(self, n_channels: int = 30, n_conv: int = 2, slice_kernel: int = 3,
                 channels_last: bool = False) -> None:
        super().__init__()
        if n_channels < 1 or n_conv < 1:
            raise ValueError(f"ClusterNet: n_channels ({n_channels}) and n_conv ({n_conv}) must be >= 1")
        if slice_kernel not in (1, 3):
            raise ValueError(f"ClusterNet: slice_kernel must be 1 or 3, got {slice_kernel!r}")
        self.n_channels = n_channels
        self.channels_last = bool(channels_last)
        layers: list[nn.Module] = []
        in_ch = 1
        for _ in range(n_conv):
            # the ReLU runs inside ReLUBatchNorm3d, fused with the BatchNorm to keep less for the backward;
            # the Identity holds its place so that checkpoints keep their keys (body.2.weight, ...)
            layers += [nn.Conv3d(in_ch, n_channels, (3, 3, slice_kernel), padding=(1, 1, slice_kernel // 2)),
                       nn.Identity(),
                       ReLUBatchNorm3d(n_channels)]
            in_ch = n_channels
        layers += [nn.Conv3d(n_channels, n_channels, 1), nn.BatchNorm3d(n_channels)]
        self.body = nn.Sequential(*layers)
        if self.channels_last:  # weights in the same layout as the activations, or oneDNN reorders them
            self.body.to(memory_format=torch.channels_last_3d)

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """The response per modality, ``(B, M, C, H, W, D)``: a view of the network's output in its own layout
        (channels-last with ``channels_last``), which :class:`ClusteringLoss` reads without a copy."""
        if x.ndim != 5:
            raise ValueError(f"ClusterNet expects (B, M, H, W, D), got shape {tuple(x.shape)}")
        b, m = x.shape[:2]
        x = x.reshape(b * m, 1, *x.shape[2:])  # shared weights: modalities ride in the batch
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        *blocks, conv, bn = self.body
        for layer in blocks:
            x = layer(x)
        # the head (1x1x1 conv -> BatchNorm) fused in training on the CPU: its conv output is never stored
        x = pointwise_batch_norm(x, conv, bn) if pointwise_fusable(x, conv, bn) else bn(conv(x))
        return x.view(b, m, self.n_channels, *x.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.grouped(x)
        return y.reshape(y.shape[0], -1, *y.shape[3:])


class ClusteringLoss(nn.Module):
    """Self-labelling cross-entropy + ``mu`` x spatial continuity.

    ``ce``: cross-entropy of the response against its own (detached) argmax over channels.
    ``continuity``: sum over the three spatial axes of the mean absolute difference between neighbouring
    voxels of the response (Kanezaki's L1 "HPy/HPz" term, extended to 3D); axes of size 1 are skipped.

    ``forward(response)`` with response ``(B, K, H, W, D)``, or ``(B, M, C, H, W, D)`` for ``K = M * C``
    channels grouped by modality (:meth:`ClusterNet.grouped`), returns ``(total, ce, continuity)``, scalars;
    only ``total`` carries a gradient. The loss is a function of the response alone, so its gradient is
    computed with its value, a few rows of one case at a time in float32 (:class:`SelfLabelLoss`): autograd
    would keep a float32 copy of the response, its log-softmax and the difference tensors for the backward.

    ``inplace=True``: with a gradient, the gradient is written over the response's memory (one response-sized
    tensor less at the peak); for callers that do not read the response after the loss, as the trainer.
    """

    def __init__(self, mu: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if not (mu >= 0 and math.isfinite(mu)):
            raise ValueError(f"ClusteringLoss: mu must be a finite number >= 0, got {mu!r}")
        self.mu = float(mu)
        self.inplace = bool(inplace)

    def forward(self, response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if response.ndim not in (5, 6):
            raise ValueError(f"ClusteringLoss expects (B, K, H, W, D) or (B, M, C, H, W, D), "
                             f"got shape {tuple(response.shape)}")
        if torch.is_grad_enabled() and response.requires_grad:
            return SelfLabelLoss.apply(response, self.mu, self.inplace)
        ce, continuity, _ = self_label_loss(response, self.mu, with_grad=False)
        return ce + self.mu * continuity, ce, continuity

    @torch.no_grad()
    def evaluate(self, response: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, ce, continuity, cluster ids)`` without a gradient; the ids ``(B, H, W, D)`` int64 are the
        argmax over channels the cross-entropy needs anyway (no second pass over the response)."""
        ids = torch.empty((response.shape[0], *response.shape[-3:]), dtype=torch.int64, device=response.device)
        ce, continuity, _ = self_label_loss(response, self.mu, with_grad=False, ids=ids)
        return ce + self.mu * continuity, ce, continuity, ids


def self_label_loss(response: torch.Tensor, mu: float, with_grad: bool, block_elements: int = 1 << 20,
                    ids: torch.Tensor | None = None,
                    inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(ce, continuity, gradient of ce + mu * continuity)`` of a ``(B, K, H, W, D)`` response, or of a
    ``(B, M, C, H, W, D)`` one read as ``K = M * C`` channels (the gradient then has its shape and layout).

    Works through blocks of about ``block_elements`` values (one case, a few rows of H, all channels) in
    float32 (float64 for float64 input): on the CPU a block stays in cache through the dozen passes below,
    and the temporaries stay small whatever the volume (on CUDA a block is a whole case). The gradient is
    ``(softmax - onehot(argmax)) / voxels`` plus ``mu`` x each axis' ``sign`` of the neighbour differences
    scattered onto both neighbours, in the response's dtype. ``ids``: an int64 ``(B, H, W, D)`` tensor to
    receive the argmax over channels, if given. ``inplace``: write the gradient over the response (returned
    as a detached alias of it): each block is read before it is written, and the last original row of a
    block is kept for the next block's differences along H.
    """
    acc = torch.promote_types(response.dtype, torch.float32)
    b, *groups, h, w, d = response.shape
    k = math.prod(groups)
    voxels = b * h * w * d
    ce = torch.zeros((), dtype=acc, device=response.device)
    continuity = torch.zeros((), dtype=acc, device=response.device)
    # float16 cannot hold an unscaled gradient (1 / voxels underflows; GradScaler's scale arrives only in the
    # backward), so its gradient is kept in float32; bfloat16 has float32's range
    grad_dtype = torch.float32 if response.dtype == torch.float16 else response.dtype
    if not with_grad:
        grad = None
    elif inplace and grad_dtype == response.dtype:
        grad = response.detach()
    else:
        grad = torch.empty_like(response, dtype=grad_dtype)
    # elements of each axis' difference tensor over the whole batch (the mean is over all of them)
    count = [b * k * (h - 1) * w * d, b * k * h * (w - 1) * d, b * k * h * w * (d - 1)]
    rows = h if response.device.type == "cuda" else max(1, block_elements // (k * w * d))
    for i in range(b):
        above = None  # with inplace: the original values of the row above this block (already overwritten)
        for h0 in range(0, h, rows):
            h1 = min(h0 + rows, h)
            e0, e1 = max(h0 - 1, 0), min(h1 + 1, h)  # one row more on each side for the differences along H
            if above is None:
                ext = response[i, ..., e0:e1, :, :].to(acc, memory_format=torch.contiguous_format)
                ext = ext.view(k, e1 - e0, w, d)
            else:  # the row above from before it was overwritten, then this block's rows (no torch.cat copy)
                ext = torch.empty((k, e1 - e0, w, d), dtype=acc, device=response.device)
                ext[:, :1] = above
                src = response[i, ..., h0:e1, :, :]
                ext[:, 1:].view(src.shape).copy_(src)
            x = ext[:, h0 - e0:h1 - e0]  # (K, rows, W, D)
            top, arg = x.max(dim=0, keepdim=True)
            if ids is not None:
                ids[i, h0:h1] = arg[0]
            g = (x - top).exp_()
            total = g.sum(dim=0, keepdim=True)
            ce += total.log().sum()  # log-sum-exp minus the logit of the argmax
            if with_grad:
                g.div_(total.mul_(voxels))
                g.scatter_add_(0, arg, g.new_full(arg.shape, -1.0 / voxels))
            if h > 1:  # differences along H: ext row j is row e0 + j; each is counted by the block of its lower row
                diff = ext.diff(dim=1)
                lower = min(h1, h - 1)
                continuity += diff[:, h0 - e0:lower - e0].norm(p=1) / count[0]
                if with_grad:
                    scale = mu / count[0]
                    diff.sign_()
                    first = max(h0, 1)  # d|x[r] - x[r-1]|/dx[r] = +sign, d|x[r+1] - x[r]|/dx[r] = -sign
                    g[:, first - h0:].add_(diff[:, first - 1 - e0:h1 - 1 - e0], alpha=scale)
                    g[:, :lower - h0].sub_(diff[:, h0 - e0:lower - e0], alpha=scale)
            for axis, n in ((2, w), (3, d)):
                if n < 2:
                    continue
                diff = x.diff(dim=axis)
                continuity += diff.norm(p=1) / count[axis - 1]
                if with_grad:
                    scale = mu / count[axis - 1]
                    diff.sign_()
                    g.narrow(axis, 1, n - 1).add_(diff, alpha=scale)
                    g.narrow(axis, 0, n - 1).sub_(diff, alpha=scale)
            if with_grad:
                if inplace:
                    above = x[:, -1:].clone()
                block = grad[i, ..., h0:h1, :, :]
                block.copy_(g.view(block.shape))
    return ce / voxels, continuity, grad


class SelfLabelLoss(torch.autograd.Function):
    """``(total, ce, continuity)`` of :func:`self_label_loss` as one autograd node: the forward keeps only the
    gradient (one tensor the size of the response), the backward scales it. ``ce`` and ``continuity`` are
    reported values without a gradient."""

    @staticmethod
    def forward(ctx, response, mu, inplace=False):
        ce, continuity, grad = self_label_loss(response, mu, with_grad=True, inplace=inplace)
        ctx.save_for_backward(grad)
        ctx.response_dtype = response.dtype
        ctx.mark_non_differentiable(ce, continuity)
        return ce + mu * continuity, ce, continuity

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total, _grad_ce, _grad_continuity):
        (grad,) = ctx.saved_tensors
        if grad.dtype == ctx.response_dtype and grad.device.type == "cpu" and grad_total.item() == 1.0:
            return grad, None, None  # the usual case on the CPU: no copy (and no host sync on CUDA)
        return _scaled(grad, grad_total.to(grad.dtype), ctx.response_dtype), None, None


def _scaled(grad: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype, block: int = 1 << 24) -> torch.Tensor:
    """``(grad * scale).to(dtype)``; a float32 ``grad`` narrowed to float16 (GradScaler's scale times a float16
    response's gradient) a block at a time, without a float32 temporary the size of the response (7.5 GiB at the
    paper's 512x512x32 grid, 2 x 30 channels and batch 4)."""
    if grad.dtype == dtype or not grad.is_contiguous():
        return (grad * scale).to(dtype)
    out = torch.empty_like(grad, dtype=dtype)
    for src, dst in zip(grad.view(-1).split(block), out.view(-1).split(block), strict=True):
        dst.copy_(src * scale)
    return out


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
