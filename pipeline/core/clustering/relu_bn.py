"""ReLU -> BatchNorm3d in one autograd node that keeps 1 activation and a bit mask instead of 2 activations
(no Django). Used by :class:`~pipeline.core.clustering.model.ClusterNet`.

The clustering network's blocks are conv -> ReLU -> BatchNorm. Done as separate modules, autograd keeps two
full-size tensors per block for the backward: BatchNorm's input (the ReLU output) and its output (the next
convolution's input). Here the BatchNorm output is written over the convolution's output and is the only
full-size tensor kept, with the ReLU's mask as bits (1/32 of a float32 activation; as bools it was 1/4, 63 MB
per block at the paper's settings): BatchNorm's normalised input is recovered from its output as
``(y - beta) / gamma`` (the idea of in-place activated BatchNorm, Rota Bulo et al., CVPR 2018, for the
opposite order of the two operations), and the backward writes its gradient over that output, which nothing
needs afterwards. With the paper's 2 blocks the network keeps almost 2 activations less (2 - 1/16).

The passes over the data run on blocks of rows of a ``(rows, k * C)`` view of a channels-last tensor, so
each block stays in cache and the per-channel vectors broadcast over a wide last axis; accumulations are in
float32 (float64 for float64 input), whatever the tensor's dtype.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ReLUBatchNorm3d", "relu_batch_norm"]

_BLOCK_ELEMENTS = 1 << 18  # about 1 MB of float32 per block: in L2 through the few passes of a step
_TINY_GAMMA = 1e-3  # below this |gamma|, (y - beta) / gamma loses digits: keep the input instead
_BITS = torch.arange(8, dtype=torch.uint8).view(1, 8, 1)


class ReLUBatchNorm3d(nn.BatchNorm3d):
    """``BatchNorm3d(relu(x))``, fused and memory-lean when it can be (:func:`relu_batch_norm`), else the two
    plain operations. Same parameters, buffers and ``state_dict`` keys as :class:`torch.nn.BatchNorm3d`.

    Shapes: ``(N, C, H, W, D)`` -> ``(N, C, H, W, D)``. In training the input tensor is overwritten (it is a
    convolution's output that nothing else reads).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fusable(x, self):
            return relu_batch_norm(x, self)
        return super().forward(torch.relu_(x))  # in place, as nn.ReLU(inplace=True) was


def fusable(x: torch.Tensor, bn: nn.BatchNorm3d) -> bool:
    """The fused path: training with batch statistics, a gradient to keep, a channels-last 5D input on the CPU
    (other layouts and devices take the plain path; the CUDA one is unmeasured)."""
    return (bn.training and bn.track_running_stats and bn.affine and bn.momentum is not None
            and torch.is_grad_enabled() and x.grad_fn is not None  # an intermediate, free to overwrite
            and x.device.type == "cpu" and x.ndim == 5
            and x.permute(0, 2, 3, 4, 1).is_contiguous()  # so that _wide is a view of x, not a copy
            and x.numel() > x.shape[1])


def relu_batch_norm(x: torch.Tensor, bn: nn.BatchNorm3d) -> torch.Tensor:
    """Training-mode ``bn(relu(x))`` with batch statistics, updating ``bn``'s running mean and variance as
    :class:`torch.nn.BatchNorm3d` does; ``x`` (channels-last, see :func:`fusable`) is overwritten and returned."""
    bn.num_batches_tracked.add_(1)  # as BatchNorm3d.forward does
    return _ReLUBatchNorm.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """A ``(rows, k * C)`` view of a channels-last ``(N, C, H, W, D)`` tensor, ``k`` up to 16 voxels per row."""
    c = t.shape[1]
    flat = t.permute(0, 2, 3, 4, 1).reshape(-1, c)  # a view: channels-last is (N, H, W, D, C) in memory
    k = next(k for k in (16, 8, 4, 2, 1) if flat.shape[0] % k == 0)
    return flat.view(-1, k * c)


def _spans(wide: torch.Tensor):
    """Blocks of rows of ``wide`` and the rows of its packed mask that hold them (:func:`_pack`)."""
    rows = max(8, _BLOCK_ELEMENTS // wide.shape[1] // 8 * 8)  # a multiple of 8: whole bytes of the mask
    for r in range(0, wide.shape[0], rows):
        yield slice(r, r + rows), slice(r // 8, (r + rows + 7) // 8)


def _blocks(*tensors: torch.Tensor):
    for rows, _ in _spans(tensors[0]):
        yield tuple(t[rows] for t in tensors)


def _pack(mask: torch.Tensor, out: torch.Tensor) -> None:
    """``(rows, cols)`` bool -> ``out`` ``(ceil(rows / 8), cols)`` uint8, whose row ``i`` holds rows ``8 i .. 8 i + 7``
    as bits 0..7."""
    if pad := -mask.shape[0] % 8:
        mask = torch.cat([mask, mask.new_zeros(pad, mask.shape[1])])
    torch.sum(mask.view(torch.uint8).view(-1, 8, mask.shape[1]) << _BITS, 1, dtype=torch.uint8, out=out)


def _unpack(bits: torch.Tensor, rows: int) -> torch.Tensor:
    """The inverse of :func:`_pack`: ``(rows, cols)`` uint8 0/1."""
    return (bits.unsqueeze(1) >> _BITS).bitwise_and_(1).view(-1, bits.shape[1])[:rows]


def _per_channel(wide_sum: torch.Tensor, c: int) -> torch.Tensor:
    return wide_sum.view(-1, c).sum(0)


class _ReLUBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        c = x.shape[1]
        acc = torch.promote_types(x.dtype, torch.float32)
        wide = _wide(x)
        k = wide.shape[1] // c
        n = wide.shape[0] * k
        # the ReLU's gradient, kept apart (its output cannot be told from 0 once normalised), 1 bit per element
        mask = torch.empty(((wide.shape[0] + 7) // 8, wide.shape[1]), dtype=torch.uint8)
        positive = None
        total = torch.zeros(wide.shape[1], dtype=acc)
        for rows, bits in _spans(wide):
            block = wide[rows]
            if positive is None:
                positive = torch.empty(block.shape, dtype=torch.bool)
            _pack(torch.gt(block.relu_(), 0, out=positive[:block.shape[0]]), mask[bits])
            total += block.sum(0, dtype=acc)
        mean = _per_channel(total, c) / n
        mean_k = mean.repeat(k)
        sq = torch.zeros(wide.shape[1], dtype=acc)
        for (block,) in _blocks(wide):  # two passes: E[x^2] - E[x]^2 would cancel for large means
            sq += (block.to(acc) - mean_k).square_().sum(0)
        var = _per_channel(sq, c) / n
        invstd = (var + eps).rsqrt()
        with torch.no_grad():
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * n / max(n - 1, 1)).to(running_var.dtype), momentum)
        gamma, beta = weight.detach().to(acc), bias.detach().to(acc)
        scale = gamma * invstd
        shift = beta - mean * scale
        keep_input = bool((gamma.abs() < _TINY_GAMMA).any())
        if keep_input:  # x_hat from the input: (x - mean) * invstd
            source, a, b = x.clone(), invstd, -mean * invstd
        scale_k, shift_k = scale.repeat(k), shift.repeat(k)
        for (block,) in _blocks(wide):
            if block.dtype == acc:
                torch.addcmul(shift_k, block, scale_k, out=block)
            else:
                block.copy_(torch.addcmul(shift_k, block.to(acc), scale_k))
        if not keep_input:  # x_hat from the output: (y - beta) / gamma
            source, a, b = x, 1.0 / gamma, -beta / gamma
        ctx.mark_dirty(x)
        ctx.save_for_backward(x, mask, source, a, b, gamma, invstd)
        ctx.weight_dtype = weight.dtype
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        y, mask, source, a, b, gamma, invstd = ctx.saved_tensors
        y, source = y.detach(), source.detach()  # y: the output's memory, about to receive the gradient
        c = y.shape[1]
        acc = gamma.dtype
        grad_y = grad_y.contiguous(memory_format=torch.channels_last_3d)
        wy, wg, ws = _wide(y), _wide(grad_y), _wide(source)
        k = wy.shape[1] // c
        n = wy.shape[0] * k
        a_k, b_k = a.repeat(k), b.repeat(k)
        sum_g = torch.zeros(wy.shape[1], dtype=acc)
        sum_gx = torch.zeros(wy.shape[1], dtype=acc)
        for g, s in _blocks(wg, ws):
            g = g.to(acc)
            sum_g += g.sum(0)
            sum_gx += (g * torch.addcmul(b_k, s.to(acc), a_k)).sum(0)
        grad_bias, grad_weight = _per_channel(sum_g, c), _per_channel(sum_gx, c)
        # d/dx of gamma * x_hat + beta through the batch statistics, then the ReLU's mask:
        # coef * (g - mean(g) - x_hat * mean(g * x_hat)), with x_hat = a * s + b, is one affine map of g and s
        coef = gamma * invstd
        m1, m2 = grad_bias / n, grad_weight / n
        c_k = coef.repeat(k)
        shift_k = (-coef * (m1 + b * m2)).repeat(k)
        s_k = (-coef * a * m2).repeat(k)
        # the gradient is written over y (nothing reads it after this node; the in-place write bumps its
        # version, so a second backward through a retained graph fails loudly instead of reading it)
        for rows, bits in _spans(wy):
            out, g, s = wy[rows], wg[rows], ws[rows]
            m = _unpack(mask[bits], out.shape[0])
            gx = torch.addcmul(shift_k, g.to(acc), c_k).addcmul_(s.to(acc), s_k)
            if out.dtype == acc:
                torch.mul(gx, m, out=out)
            else:
                out.copy_(gx.mul_(m))
        return y, grad_weight.to(ctx.weight_dtype), grad_bias.to(ctx.weight_dtype), None, None, None, None
