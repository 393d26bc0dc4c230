"""The step-1 loss under float16 autocast (CUDA AMP), run in float16 on the CPU."""

import torch

from pipeline.core.clustering import ClusteringLoss


def test_float16_gradient_survives_a_gradient_scaler():
    """Under float16 autocast (CUDA) the unscaled gradient, about 1 / (K x voxels), is subnormal in float16; the
    loss keeps it in float32 and applies GradScaler's scale before casting, so the scaled float16 gradient
    matches the float32 one (stored in float16 it was off by several per cent)."""
    y = torch.randn(1, 4, 128, 128, 8, generator=torch.Generator().manual_seed(2))
    scale = 65536.0
    y32 = y.half().float().requires_grad_()  # the same values, so the same argmax
    (ClusteringLoss(0.5)(y32)[0] * scale).backward()
    for inplace in (False, True):
        y16 = y.half().requires_grad_()
        (ClusteringLoss(0.5, inplace=inplace)(y16)[0] * scale).backward()
        assert y16.grad.dtype == torch.float16
        torch.testing.assert_close(y16.grad.float(), y32.grad, rtol=5e-3, atol=1e-3)
