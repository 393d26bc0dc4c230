"""The step-1 loss: cross-entropy against its own argmax + continuity, its fused gradient (whole, in blocks,
written over the response) and its precision under bfloat16 and float16 (CUDA AMP, run in float16 on the CPU)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.core.clustering import ClusteringLoss


def test_loss_matches_independent_computation():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(2, 6, 5, 4, 3)).astype(np.float32)
    total, ce, cont = ClusteringLoss(mu=0.7)(torch.from_numpy(r))
    # cross-entropy against own argmax, by hand
    logp = r - np.log(np.exp(r).sum(axis=1, keepdims=True))
    want_ce = -np.take_along_axis(logp, r.argmax(axis=1)[:, None], axis=1).mean()
    want_cont = sum(np.abs(np.diff(r, axis=a)).mean() for a in (2, 3, 4))
    assert ce.item() == pytest.approx(want_ce, rel=1e-5)
    assert cont.item() == pytest.approx(want_cont, rel=1e-5)
    assert total.item() == pytest.approx(want_ce + 0.7 * want_cont, rel=1e-5)
    # the target is detached: the gradient is the CE gradient w.r.t. the logits (softmax - onehot)
    t = torch.from_numpy(r).requires_grad_()
    ClusteringLoss(mu=0.0)(t)[0].backward()
    want = (F.softmax(t.detach(), 1) - F.one_hot(t.detach().argmax(1), 6).permute(0, 4, 1, 2, 3)) / (2 * 5 * 4 * 3)
    torch.testing.assert_close(t.grad, want)


def test_fused_loss_equals_autograd_through_the_plain_expression():
    """SelfLabelLoss computes its gradient in the forward pass: it is the gradient of the plain expression
    (gradcheck in float64; equal to autograd through cross_entropy + diff().abs().mean() in float32, and close
    under bfloat16), including a size-1 axis that is skipped; without grad it returns the same values."""
    from pipeline.core.clustering.model import SelfLabelLoss

    y64 = torch.randn(2, 3, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: SelfLabelLoss.apply(y, 0.7)[0], (y64,))

    def plain(y, mu):
        ce = F.cross_entropy(y, y.detach().argmax(1))
        cont = sum(y.diff(dim=a).abs().mean() for a in (2, 3, 4) if y.shape[a] > 1)
        return ce + mu * cont, ce, cont

    for shape in [(2, 6, 9, 7, 5), (1, 4, 6, 5, 1)]:
        y = torch.randn(*shape, generator=torch.Generator().manual_seed(3), requires_grad=True)
        want = plain(y, 0.7)
        (grad_plain,) = torch.autograd.grad(want[0], y)
        got = ClusteringLoss(0.7)(y)
        (grad_fused,) = torch.autograd.grad(got[0], y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w)
        torch.testing.assert_close(grad_fused, grad_plain)
        with torch.no_grad():
            for g, w in zip(ClusteringLoss(0.7)(y), want, strict=True):
                torch.testing.assert_close(g, w.detach())
        *values, ids = ClusteringLoss(0.7).evaluate(y)
        for g, w in zip(values, want, strict=True):
            torch.testing.assert_close(g, w.detach())
        assert torch.equal(ids, y.argmax(1))
    yb = y.detach().to(torch.bfloat16).requires_grad_()
    got = ClusteringLoss(0.7)(yb)
    (grad_bf16,) = torch.autograd.grad(got[0], yb)
    assert grad_bf16.dtype == torch.bfloat16 and got[0].dtype == torch.float32
    torch.testing.assert_close(grad_bf16.float(), grad_plain, atol=2e-3, rtol=2e-2)


def test_fused_loss_is_the_same_whatever_the_block_size():
    """Blocks of a few rows of H (one row, rows not dividing H, the whole case) give the same values and
    gradient, also when the gradient overwrites the response: each difference along H is counted once and
    reaches both of its rows."""
    from pipeline.core.clustering.model import self_label_loss

    for shape in [(2, 5, 9, 4, 3), (1, 3, 1, 4, 2), (1, 3, 2, 1, 1)]:
        y = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        whole = self_label_loss(y, 0.6, with_grad=True, block_elements=10**9)
        for rows in (1, 2, 4):
            k, _, w, d = shape[1:]
            got = self_label_loss(y, 0.6, with_grad=True, block_elements=rows * k * w * d)
            for g, want in zip(got, whole, strict=True):
                torch.testing.assert_close(g, want)
            # inplace: the gradient overwrites the response, block by block, with the same result
            overwritten = y.clone()
            got = self_label_loss(overwritten, 0.6, with_grad=True, block_elements=rows * k * w * d, inplace=True)
            assert got[2].data_ptr() == overwritten.data_ptr()
            for g, want in zip(got, whole, strict=True):
                torch.testing.assert_close(g, want)
    # the trainer's case: the (B, M, C, H, W, D) view of a channels-last response, overwritten block by block
    y = torch.randn(2, 6, 9, 4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    whole = self_label_loss(y, 0.6, with_grad=True, block_elements=10**9)
    for rows in (1, 2, 4):
        overwritten = y.contiguous(memory_format=torch.channels_last_3d)
        got = self_label_loss(overwritten.view(2, 2, 3, 9, 4, 3), 0.6, with_grad=True,
                              block_elements=rows * 6 * 4 * 3, inplace=True)
        assert got[2].data_ptr() == overwritten.data_ptr()
        torch.testing.assert_close(got[0], whole[0])
        torch.testing.assert_close(got[1], whole[1])
        torch.testing.assert_close(got[2].reshape(y.shape), whole[2])


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


def test_scaled_gradient_in_blocks_equals_the_whole_product():
    """The float32 gradient is scaled and narrowed to float16 a block at a time (no float32 temporary the size of
    the response): the same numbers as in one piece, a last short block included; other cases in one piece."""
    from pipeline.core.clustering.model import _scaled

    g = torch.randn(2, 6, 7, 5, 3, generator=torch.Generator().manual_seed(3)) * 1e-6
    scale = torch.tensor(65536.0)
    want = (g * scale).to(torch.float16)
    got = _scaled(g, scale, torch.float16, block=97)  # 1,260 values: 12 blocks and one of 96
    assert got.dtype == torch.float16 and got.shape == g.shape
    assert torch.equal(got, want)
    channels_last = g.contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(_scaled(channels_last, scale, torch.float16, block=97), want)
    assert torch.equal(_scaled(g, scale, torch.float32, block=97), g * scale)
