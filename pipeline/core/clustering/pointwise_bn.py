"""The clustering network's head, a 1x1x1 convolution -> BatchNorm3d, in one autograd node that keeps nothing
of its own for the backward (no Django). Used by :class:`~pipeline.core.clustering.model.ClusterNet`.

Both are affine maps per voxel, so in training (batch statistics) the head is ``y = x @ A^T + t`` with ``A``
and ``t`` from the weights and the batch's mean and covariance of ``x`` (``C x C``). The convolution's output
is never stored: the backward recomputes what it needs from ``x``, which the block before keeps anyway, and
writes the input gradient over the output gradient once that gradient is known to be the step-1 loss's,
written over this node's output (:class:`~pipeline.core.clustering.model.ClusteringLoss` with ``inplace``).
At the paper's settings this takes the last two full-size tensors of the backward's peak away.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from pipeline.core.clustering.relu_bn import _blocks, _per_channel, _wide, fusable

__all__ = ["pointwise_batch_norm", "pointwise_fusable"]


def pointwise_fusable(x: torch.Tensor, conv: nn.Conv3d, bn: nn.BatchNorm3d) -> bool:
    """The fused path: as :func:`~pipeline.core.clustering.relu_bn.fusable`, for a 1x1x1 convolution with a
    bias and as many output channels as input channels."""
    return (fusable(x, bn) and conv.kernel_size == (1, 1, 1) and conv.stride == (1, 1, 1) and conv.groups == 1
            and conv.padding == (0, 0, 0) and conv.bias is not None and conv.in_channels == conv.out_channels)


def pointwise_batch_norm(x: torch.Tensor, conv: nn.Conv3d, bn: nn.BatchNorm3d) -> torch.Tensor:
    """Training-mode ``bn(conv(x))``, updating ``bn``'s running statistics as :class:`torch.nn.BatchNorm3d`
    does. ``x``: channels-last ``(N, C, H, W, D)`` (see :func:`pointwise_fusable`); returns the same shape and
    layout."""
    bn.num_batches_tracked.add_(1)
    return _PointwiseBatchNorm.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                                     bn.running_var, bn.momentum, bn.eps)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``(voxels, C)`` view of a channels-last ``(N, C, H, W, D)`` tensor."""
    return t.permute(0, 2, 3, 4, 1).reshape(-1, t.shape[1])


def _column_sums(t: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    return _per_channel(_wide(t).sum(0, dtype=acc), t.shape[1])


class _PointwiseBatchNorm(torch.autograd.Function):
    @staticmethod
    @torch.autocast("cpu", enabled=False)  # the products below are float32 or float64 whatever the autocast
    def forward(ctx, x, weight, conv_bias, gamma, beta, running_mean, running_var, momentum, eps):
        c = x.shape[1]
        acc = torch.promote_types(x.dtype, torch.float32)
        rows = _rows(x)
        n = rows.shape[0]
        # statistics of c = x W^T + w0 from those of x: mean W m + w0, variance diag(W S W^T); S is summed in
        # float64 over blocks of centred rows (E[xx^T] - mm^T would cancel)
        w = weight.detach().reshape(c, c).to(torch.float64)
        mean_x = _column_sums(x, acc).to(torch.float64) / n
        scatter = torch.zeros(c, c, dtype=torch.float64)
        mean_x_acc = mean_x.to(acc)
        for (block,) in _blocks(rows):
            centred = block.to(acc) - mean_x_acc
            scatter += (centred.T @ centred).to(torch.float64)
        mean = w @ mean_x + conv_bias.detach().to(torch.float64)
        var = ((w @ scatter) * w).sum(1) / n
        invstd = (var + eps).rsqrt()
        with torch.no_grad():
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * n / max(n - 1, 1)).to(running_var.dtype), momentum)
        # x_hat = x P^T + p, y = gamma x_hat + beta
        p_mat = invstd[:, None] * w
        p_vec = invstd * (conv_bias.detach().to(torch.float64) - mean)
        g64 = gamma.detach().to(torch.float64)
        out = torch.empty_like(x, memory_format=torch.channels_last_3d)
        a_t = (g64[:, None] * p_mat).T.to(acc)
        t = (g64 * p_vec + beta.detach().to(torch.float64)).to(acc)
        for y, xb in _blocks(_rows(out), rows):
            if y.dtype == acc:
                torch.addmm(t, xb, a_t, out=y)
            else:
                y.copy_(torch.addmm(t, xb.to(acc), a_t))
        ctx.save_for_backward(x, p_mat, p_vec, g64, invstd, w, scatter, mean_x)
        ctx.output_storage = StorageWeakRef(out.untyped_storage())  # weak: the loss decides how long it lives
        ctx.dtypes = (weight.dtype, conv_bias.dtype, gamma.dtype, beta.dtype)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, p_mat, p_vec, gamma, invstd, w, scatter, mean_x = ctx.saved_tensors
        c = x.shape[1]
        acc = torch.promote_types(x.dtype, torch.float32)
        grad_y = grad_y.contiguous(memory_format=torch.channels_last_3d)
        rows, g_rows = _rows(x), _rows(grad_y)
        n = rows.shape[0]
        sum_x = mean_x * n
        sum_g = _column_sums(grad_y, acc).to(torch.float64)
        q = torch.zeros(c, c, dtype=torch.float64)  # G^T X, (C_out, C_in)
        for g, xb in _blocks(g_rows, rows):
            q += (g.to(acc).T @ xb.to(acc)).to(torch.float64)
        gram = scatter + n * torch.outer(mean_x, mean_x)  # X^T X
        grad_beta = sum_g
        grad_gamma = (q * p_mat).sum(1) + p_vec * sum_g  # sum of g * x_hat per channel
        coef = gamma * invstd
        m1, m2 = sum_g / n, grad_gamma / n
        # grad_c = coef (g - m1 - x_hat m2); grad_W = grad_c^T X; grad_w0 = sum of grad_c (0 up to rounding)
        xhat_t_x = p_mat @ gram + torch.outer(p_vec, sum_x)
        grad_w = coef[:, None] * (q - torch.outer(m1, sum_x) - m2[:, None] * xhat_t_x)
        grad_w0 = coef * (sum_g - n * m1 - m2 * (p_mat @ sum_x + n * p_vec))
        # grad_x = grad_c W, block by block; over the output gradient when that is this node's output, still
        # alive (the loss wrote its gradient there and nothing else reads it), else into a new tensor: memory
        # that only used to be the output may now hold someone else's tensor
        own = (not ctx.output_storage.expired() and StorageWeakRef(grad_y.untyped_storage()) == ctx.output_storage
               and grad_y.dtype == x.dtype)
        grad_x = grad_y if own else torch.empty_like(x, memory_format=torch.channels_last_3d)
        # grad_x = (g - m1 - x_hat m2) (coef W) with x_hat = x P^T + p: two products and a constant row
        wk = coef[:, None] * w
        g_map, x_map = wk.to(acc), (-(p_mat.T * m2) @ wk).to(acc)
        shift = (-(m1 + p_vec * m2) @ wk).to(acc)
        for out, g, xb in _blocks(_rows(grad_x), g_rows, rows):
            gx = torch.addmm(shift, xb.to(acc), x_map).addmm_(g.to(acc), g_map)
            out.copy_(gx)  # not addmm(out=out): out may be g's memory
        wd, bd, gd, betad = ctx.dtypes
        return (grad_x, grad_w.reshape(c, c, 1, 1, 1).to(wd), grad_w0.to(bd), grad_gamma.to(gd), grad_beta.to(betad),
                None, None, None, None)
