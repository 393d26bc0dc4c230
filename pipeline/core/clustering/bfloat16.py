"""Whether bfloat16 autocast makes step 1 faster on this CPU, measured rather than read off the instruction set
(no Django).

At the paper's settings an epoch under bfloat16 took 0.7x the float32 time on an Intel Xeon with AMX and
0.74-0.94x on an AMD EPYC with AVX-512 bfloat16 instructions and no AMX, but 1.2-1.4x on an Intel Xeon with the
same instructions and no AMX, whose 3x3x3 convolutions took 2x; where bfloat16 is emulated (AVX2 only) it is
about 100x slower. So the trainer times one training step both ways before it uses ``cpu_bf16``.
"""

from __future__ import annotations

import functools
import time

import torch

from pipeline.core import device
from pipeline.core.clustering.model import ClusteringLoss, ClusterNet

__all__ = ["MAX_STEP_RATIO", "bfloat16_step_ratio", "bfloat16_why_not", "probe_grid"]

# bfloat16 is used where a step takes at most this share of the float32 time: timing noise on a busy machine is
# about 10%, and a smaller gain is not worth the clusters that differ slightly from float32's
MAX_STEP_RATIO = 0.9


def probe_grid(height: int, width: int, depth: int, max_voxels: int = 1 << 18) -> tuple[int, int, int]:
    """The grid one probe case has: the run's own, its larger in-plane side halved until it holds at most
    ``max_voxels`` (128x128x16 at the default; the paper's 512x512x32 becomes 64x128x32). bfloat16's gain comes
    from moving half the bytes, which shows only once a case is well past the CPU's caches: on 32x32x16 cases a
    step of the ``fast`` preset measured 1.0-1.1x while its epochs at 128x128x16 took 0.64-0.83x."""
    h, w = height, width
    while h * w * depth > max_voxels and max(h, w) > 16:
        if h >= w:
            h = (h + 1) // 2
        else:
            w = (w + 1) // 2
    return h, w, depth


@functools.cache
def bfloat16_step_ratio(n_channels: int, n_conv: int, slice_kernel: int, grid: tuple[int, int, int],
                        repeats: int = 1) -> float:
    """Time of one step-1 training step under bfloat16 autocast over its float32 time, on this CPU with its
    current threads: :class:`ClusterNet` (channels-last, as the trainer builds it on the CPU) forward,
    :class:`ClusteringLoss` and backward, on one random case of two modalities on ``grid`` ``(H, W, D)``
    (:func:`probe_grid` of the run's grid); the best of ``repeats`` after one warm-up each (oneDNN picks its
    kernels on the first call).

    Measured once per process and setting: about 3.5 s at the paper's 30 channels on a 128x128x16 grid with 2
    threads (under 1% of a run of 100 epochs of 8 cases), under 1 s for the ``fast`` preset. Where bfloat16 is
    emulated (:func:`~pipeline.core.device.cpu_bfloat16_is_native` false) it takes about 100x longer: do not call
    it there.
    """
    with torch.random.fork_rng(devices=[]):  # the caller's random numbers stay as they were
        torch.manual_seed(0)
        model = ClusterNet(n_channels, n_conv, slice_kernel, channels_last=True)
        x = torch.randn((1, 2, *grid))
    model.train()
    loss_fn = ClusteringLoss(inplace=True)

    def best(bf16: bool) -> float:
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                total, _, _ = loss_fn(model.grouped(x))
            total.backward()
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    float32 = best(False)
    return best(True) / float32


def bfloat16_why_not(n_channels: int, n_conv: int, slice_kernel: int, grid: tuple[int, int, int]) -> str | None:
    """None where bfloat16 autocast makes a step-1 training step of these settings (``grid``: the run's model grid)
    faster on this CPU, else why not: no native bfloat16 (not measured: about 100x slower), or a step measured at
    more than :data:`MAX_STEP_RATIO` of the float32 time (:func:`bfloat16_step_ratio`)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if not device.cpu_bfloat16_is_native():
        return f"this CPU ({capability}) has no native bfloat16, where it runs about 100x slower"
    ratio = bfloat16_step_ratio(int(n_channels), int(n_conv), int(slice_kernel), probe_grid(*map(int, grid)))
    if ratio > MAX_STEP_RATIO:
        return (f"on this CPU ({capability}) a training step took {ratio:.2f}x the float32 time under bfloat16 "
                f"(measured as the run started; used at up to {MAX_STEP_RATIO}x)")
    return None
