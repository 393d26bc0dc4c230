"""Benchmark the downstream U-Net (pipeline.core.unet): training throughput, peak memory, inference time; JSON.

* CPU: phantoms 128x128x16 on a 128x128x16 grid, the "fast" network (channels 8/16/32), whole volumes,
  ``--cpu-cases`` TRAIN cases, 1 VAL case, ``--epochs`` epochs;
* GPU (when CUDA is available, else ``null``): the "paper" preset (grid 512x512x32, patches 256x256x32,
  2 per case, channels 32..256) on 256x256x32 phantoms (upsampled 2x in-plane by the grid), AMP on and off.

``train_voxels_per_s``: training voxels fed to the network (whole volumes, or patches x samples) per second
of epoch wall time, first epoch (warm-up, caching) excluded, validation included. ``peak_memory_mb``: process
peak RSS on CPU (since start), peak allocated CUDA memory on GPU. ``inference_s_per_case``: median seconds of
``UNetTrainer.predict`` on one case (preprocessing and mapping back included).

    OMP_NUM_THREADS=2 .venv/bin/python bench/unet_bench.py [--epochs 4] [--cpu-cases 6] [--gpu-cases 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.device import describe_device, peak_memory_mb  # noqa: E402
from pipeline.core.phantoms import make_phantom_case  # noqa: E402
from pipeline.core.unet import UNetConfig, UNetTrainer  # noqa: E402


def phantom_cases(n: int, size: int, depth: int) -> list:
    out = []
    for i in range(n):
        c = make_phantom_case(f"b{i}", size=size, depth=depth, seed=i, raters=("r1",))
        out.append(([c.images["t1fsce"], c.images["t2"]], c.truth))
    return out


def run(config: UNetConfig, train: list, val: list, test: list) -> dict:
    trainer = UNetTrainer(config)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    result = trainer.fit(train, val)
    seconds = [h.seconds for h in result.history[1:]] or [result.history[0].seconds]
    if config.patch_size is None:
        per_epoch = len(train) * int(np.prod(config.grid))
    else:
        per_epoch = len(train) * config.num_samples * int(np.prod(config.patch_size))
    times = []
    for images, _ in test:
        trainer.predict(images)  # warm-up (CUDA context, cuDNN handles, allocator)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainer.predict(images)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {
        "device": describe_device(trainer.device),
        "grid": list(config.grid),
        "patch_size": list(config.patch_size) if config.patch_size else None,
        "channels": list(config.channels),
        "amp": trainer.use_amp,
        "train_cases": len(train),
        "epochs": result.epochs,
        "epoch_seconds": [round(h.seconds, 3) for h in result.history],
        "train_voxels_per_s": round(per_epoch / statistics.mean(seconds)),
        "peak_memory_mb": round(peak_memory_mb(trainer.device), 1),
        "inference_s_per_case": round(statistics.median(times), 4),
        "final_train_loss": round(result.history[-1].train_loss, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--cpu-cases", type=int, default=6)
    ap.add_argument("--gpu-cases", type=int, default=8)
    args = ap.parse_args()

    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    data = phantom_cases(args.cpu_cases + 2, 128, 16)
    cpu = UNetConfig.preset("fast", height=128, width=128, depth=16, max_epochs=args.epochs,
                            patience=args.epochs, device="cpu")
    out["cpu"] = run(cpu, data[:args.cpu_cases], data[args.cpu_cases:args.cpu_cases + 1], data[-1:])

    out["gpu"] = None
    if torch.cuda.is_available():
        data = phantom_cases(args.gpu_cases + 2, 256, 32)
        out["gpu"] = {}
        for amp in (True, False):
            cfg = UNetConfig.preset("paper", max_epochs=args.epochs, patience=args.epochs, amp=amp, device="cuda")
            out["gpu"]["amp" if amp else "fp32"] = run(cfg, data[:args.gpu_cases],
                                                        data[args.gpu_cases:args.gpu_cases + 1], data[-1:])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
