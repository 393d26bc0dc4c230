"""The fused ReLU -> BatchNorm and 1x1x1 conv -> BatchNorm of the clustering network: the same numbers as the
plain modules, less kept for the backward."""

import pytest
import torch
from torch import nn

from pipeline.core.clustering import ClusteringLoss, ClusterNet
from pipeline.core.clustering.pointwise_bn import pointwise_batch_norm, pointwise_fusable
from pipeline.core.clustering.relu_bn import ReLUBatchNorm3d, fusable

CL = torch.channels_last_3d


def _pair(gamma=None, dtype=torch.float64):
    """A plain BatchNorm3d and a ReLUBatchNorm3d with the same (non-default) parameters."""
    plain = nn.BatchNorm3d(5).to(dtype)
    with torch.no_grad():
        plain.weight.copy_(torch.tensor([0.5, 2.0, -1.5, 1.0, 0.8]))
        plain.bias.copy_(torch.tensor([0.1, -0.4, 0.3, 0.0, 1.0]))
        if gamma is not None:
            plain.weight[2] = gamma
    fused = ReLUBatchNorm3d(5).to(dtype)
    fused.load_state_dict(plain.state_dict())
    return plain, fused


def _run(module, z, g, relu_first):
    z = z.clone().requires_grad_()
    y = module(torch.relu(z * 1) if relu_first else z * 1)  # "* 1": a non-leaf, as a convolution's output is
    out = y.detach().clone()
    (y * g).sum().backward()
    return out, z.grad


@pytest.mark.parametrize("gamma", [None, 1e-6, 0.0], ids=["gamma", "tiny-gamma", "zero-gamma"])
def test_fused_matches_relu_then_batchnorm(gamma):
    """Output, input gradient, weight and bias gradients, running statistics and batch count as the two plain
    modules give, also where gamma is too small to recover BatchNorm's input from its output."""
    torch.manual_seed(0)
    plain, fused = _pair(gamma)
    z = (torch.randn(2, 5, 6, 7, 4, dtype=torch.float64) + 0.3).contiguous(memory_format=CL)
    g = torch.randn_like(z)
    assert fusable(z.clone().requires_grad_() * 1, fused)
    want, want_grad = _run(plain, z, g, relu_first=True)
    got, got_grad = _run(fused, z, g, relu_first=False)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    torch.testing.assert_close(fused.weight.grad, plain.weight.grad)
    torch.testing.assert_close(fused.bias.grad, plain.bias.grad)
    torch.testing.assert_close(fused.running_mean, plain.running_mean)
    torch.testing.assert_close(fused.running_var, plain.running_var)
    assert int(fused.num_batches_tracked) == int(plain.num_batches_tracked) == 1


@pytest.mark.parametrize("block_elements", [1, 1300])
def test_fused_in_blocks_of_rows_matches_the_plain_modules(block_elements, monkeypatch):
    """The passes run on blocks of 8 rows or more (whole bytes of the packed ReLU mask), the last one shorter:
    the same output and gradients as the plain modules (21 rows of 80: blocks of 8, 8 and 5 rows, or 16 and 5)."""
    from pipeline.core.clustering import relu_bn

    monkeypatch.setattr(relu_bn, "_BLOCK_ELEMENTS", block_elements)
    torch.manual_seed(2)
    plain, fused = _pair()
    z = torch.randn(2, 5, 6, 7, 4, dtype=torch.float64).contiguous(memory_format=CL)
    wide = relu_bn._wide(z)
    assert wide.shape == (21, 80)
    assert [wide[rows].shape[0] for rows, _ in relu_bn._spans(wide)] == ([8, 8, 5] if block_elements == 1 else [16, 5])
    g = torch.randn_like(z)
    want, want_grad = _run(plain, z, g, relu_first=True)
    got, got_grad = _run(fused, z, g, relu_first=False)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)
    torch.testing.assert_close(fused.weight.grad, plain.weight.grad)


def test_float32_close_to_plain():
    torch.manual_seed(1)
    plain, fused = _pair(dtype=torch.float32)
    z = torch.randn(2, 5, 16, 16, 8).contiguous(memory_format=CL)
    g = torch.randn_like(z)
    want, want_grad = _run(plain, z, g, relu_first=True)
    got, got_grad = _run(fused, z, g, relu_first=False)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["contiguous", "eval", "no_grad"])
def test_other_cases_take_the_plain_path(case):
    """A standard-layout input, eval mode and no-grad training give what ReLU -> BatchNorm3d gives."""
    torch.manual_seed(2)
    plain, fused = _pair()
    z = torch.randn(2, 5, 6, 7, 4, dtype=torch.float64)
    if case != "contiguous":
        z = z.contiguous(memory_format=CL)
    if case == "eval":
        plain.eval(), fused.eval()
    with torch.set_grad_enabled(case != "no_grad"):
        assert not fusable(z, fused)
        torch.testing.assert_close(fused(z.clone()), plain(torch.relu(z)))
    torch.testing.assert_close(fused.running_var, plain.running_var)


def test_a_second_backward_through_a_retained_graph_fails_loudly():
    """The backward writes its gradient over the kept output: a second pass must not read that silently."""
    _, fused = _pair()
    z = torch.randn(2, 5, 6, 7, 4, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    y = fused(z * 1)
    (y * 2).sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (y * 2).sum().backward()


def _saved_activation_bytes(model, x, at_least):
    """Bytes of the distinct storages of at least ``at_least`` bytes that autograd keeps for the backward of
    ``model(x)``, other than the weights and the input (per-channel vectors are smaller)."""
    storages = {}
    theirs = {t.untyped_storage().data_ptr() for t in [x, *model.parameters()]}

    def pack(t):
        if t.untyped_storage().nbytes() >= at_least and t.untyped_storage().data_ptr() not in theirs:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


def test_cluster_net_keeps_half_the_activations_for_the_backward():
    """At the paper's depth (2 blocks) the channels-last network keeps 2 activations and 1/16 instead of 5: per
    block the BatchNorm output and the ReLU's mask (1 bit per element) instead of BatchNorm's float input and
    output, and nothing for the head (conv 1x1x1 -> BatchNorm) instead of the conv's output."""
    x = torch.randn(2, 2, 16, 16, 8)
    fused = ClusterNet(n_channels=12, n_conv=2, channels_last=True)
    plain = ClusterNet(n_channels=12, n_conv=2, channels_last=False)
    activation = 2 * 2 * 12 * 16 * 16 * 8 * 4  # (B * M, C, H, W, D) float32
    assert _saved_activation_bytes(plain, x, activation // 64) == 5 * activation
    assert _saved_activation_bytes(fused, x, activation // 64) == (2 + 2 / 32) * activation


def test_fused_network_and_loss_give_the_plain_gradients():
    """The whole step-1 step in float64: the fused channels-last network with the in-place loss gives the same
    loss and parameter gradients as the plain modules, and the same running statistics."""
    torch.manual_seed(3)
    fused = ClusterNet(n_channels=5, n_conv=2, channels_last=True).double()
    plain = ClusterNet(n_channels=5, n_conv=2, channels_last=False).double()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 2, 12, 10, 6, dtype=torch.float64)
    losses = []
    for net, inplace in ((fused, True), (plain, False)):
        total, _, _ = ClusteringLoss(0.7, inplace=inplace)(net.grouped(x))
        total.backward()
        losses.append(total.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    for (name, b), c in zip(fused.named_buffers(), plain.buffers(), strict=True):
        torch.testing.assert_close(b, c, msg=name)


def _head_pair(dtype=torch.float64):
    conv, bn = nn.Conv3d(5, 5, 1).to(dtype), nn.BatchNorm3d(5).to(dtype)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 2.0, -1.5, 1.0, 0.8]))
        bn.bias.copy_(torch.tensor([0.1, -0.4, 0.3, 0.0, 1.0]))
    conv2, bn2 = nn.Conv3d(5, 5, 1).to(dtype), nn.BatchNorm3d(5).to(dtype)
    conv2.load_state_dict(conv.state_dict()), bn2.load_state_dict(bn.state_dict())
    return (conv, bn), (conv2, bn2)


def test_fused_head_matches_conv_then_batchnorm():
    """Output, input, weight and bias gradients of both layers and the running statistics; a gradient handed
    in from outside is read, not overwritten."""
    torch.manual_seed(4)
    (conv, bn), (conv2, bn2) = _head_pair()
    x = (torch.randn(2, 5, 6, 7, 4, dtype=torch.float64) + 0.5).contiguous(memory_format=CL)
    g = torch.randn_like(x)
    g_before = g.clone()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    want = bn(conv(x1 * 1))
    want.backward(g)
    assert pointwise_fusable(x2 * 1, conv2, bn2)
    got = pointwise_batch_norm(x2 * 1, conv2, bn2)
    torch.testing.assert_close(got, want)
    assert got.is_contiguous(memory_format=CL)
    got.backward(g)
    assert torch.equal(g, g_before)
    torch.testing.assert_close(x2.grad, x1.grad)
    for a, b in ((conv2, conv), (bn2, bn)):
        torch.testing.assert_close(a.weight.grad, b.weight.grad)
        torch.testing.assert_close(a.bias.grad, b.bias.grad)
    torch.testing.assert_close(bn2.running_mean, bn.running_mean)
    torch.testing.assert_close(bn2.running_var, bn.running_var)
    assert int(bn2.num_batches_tracked) == 1


def test_fused_head_writes_only_over_its_own_output_storage():
    """The head's backward writes the input gradient over the output gradient only when that is its own output
    storage (the in-place loss), not whenever the address matches: memory that used to be a freed output can
    hold the caller's gradient. Here the caller's gradient lies at the output's address under another storage
    (a NumPy view of it) and must be left alone."""
    (_, _), (conv, bn) = _head_pair(torch.float32)
    x = torch.randn(2, 5, 6, 7, 4).contiguous(memory_format=CL).requires_grad_()
    y = pointwise_batch_norm(x * 1, conv, bn)
    g = torch.from_numpy(y.detach().numpy())  # same memory, another storage
    assert g.data_ptr() == y.data_ptr() and g.is_contiguous(memory_format=CL)
    g_before = g.clone()
    y.backward(g)
    assert torch.equal(g, g_before)


def test_fused_head_under_the_in_place_loss_needs_no_new_gradient_tensor():
    """The trainer's case: the loss writes its gradient over the head's output, and the head writes the input
    gradient over that again, so the backward's peak holds no extra full-size tensor."""
    (_, _), (conv, bn) = _head_pair(torch.float32)
    x = torch.randn(4, 5, 6, 7, 4).contiguous(memory_format=CL).requires_grad_()
    xm = x * 1
    seen = []
    xm.register_hook(lambda grad: seen.append(grad.untyped_storage().data_ptr()))
    y = pointwise_batch_norm(xm, conv, bn)
    output = y.untyped_storage().data_ptr()
    total, _, _ = ClusteringLoss(1.0, inplace=True)(y.view(2, 2, 5, 6, 7, 4))
    del y
    total.backward()
    assert seen == [output]


def test_head_with_a_3x3x3_conv_or_channel_change_is_not_fused():
    x = torch.randn(2, 5, 6, 7, 4).contiguous(memory_format=CL)
    assert not pointwise_fusable(x, nn.Conv3d(5, 5, 3, padding=1), nn.BatchNorm3d(5))
    assert not pointwise_fusable(x, nn.Conv3d(5, 4, 1), nn.BatchNorm3d(4))


def test_cluster_net_checkpoint_keys_are_unchanged():
    """Checkpoints written before the fusion (conv, ReLU, BatchNorm modules in one Sequential) still load."""
    keys = set(ClusterNet(n_channels=4, n_conv=2).state_dict())
    bn = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert keys == ({f"body.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}
                    | {f"body.{i}.{p}" for i in (2, 5, 7) for p in bn})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input_stays_close_to_float32(dtype):
    """Under autocast (``cpu_bf16``) the convolutions hand the fused layers bfloat16: statistics and gradients
    are computed in float32 from the stored low-precision values, so they stay within that format's rounding
    of the float32 result."""
    torch.manual_seed(6)
    plain, fused = _pair(dtype=torch.float32)
    z = torch.randn(2, 5, 16, 16, 8).contiguous(memory_format=CL).to(dtype)
    g = torch.randn_like(z)
    want, want_grad = _run(plain, z.float(), g.float(), relu_first=True)
    got, got_grad = _run(fused, z, g, relu_first=False)
    assert got.dtype == got_grad.dtype == dtype
    scale = want_grad.abs().max()
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got_grad.float(), want_grad, rtol=2e-2, atol=2e-2 * scale)
    torch.testing.assert_close(fused.weight.grad, plain.weight.grad, rtol=2e-2, atol=2e-2 * plain.weight.grad.abs().max())
    torch.testing.assert_close(fused.bias.grad, plain.bias.grad, rtol=2e-2, atol=2e-2 * plain.bias.grad.abs().max())
