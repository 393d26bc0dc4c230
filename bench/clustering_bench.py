"""Step-1 clustering benchmark; prints JSON (not run by CI).

    .venv/bin/python bench/clustering_bench.py             # speed: CPU at 128x128x16, GPU at 512x512x32 if any
    .venv/bin/python bench/clustering_bench.py --quality   # "fast" preset on 10 phantoms: time + cluster quality

Speed: ``voxels_per_s`` counts model-grid voxels of TRAIN cases (per case, not per modality) over the epochs'
wall time, VAL pass included; ``cpu_s`` is process CPU time, so ``cpu_s / threads`` estimates the wall time
on an idle machine when this one is shared. Peak memory: process peak RSS on CPU, peak allocated on CUDA.

Quality: ``best_union_dice`` is the best Dice with the truth of any union of clusters (what step 2 could at
most reach); ``refined`` is step 2 (``refine_label``) on the clusters and the raters' rough labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.clustering import ClusteringConfig, ClusteringTrainer  # noqa: E402
from pipeline.core.device import describe_device, peak_memory_mb  # noqa: E402


def _synthetic_cases(n: int, shape: tuple[int, int, int], n_mod: int = 2, seed: int = 0) -> list[list[np.ndarray]]:
    """Smooth blobs + noise: cheap stand-ins with some structure (speed only)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij"))
    cases = []
    for _ in range(n):
        c = rng.uniform(-0.5, 0.5, size=(3, 1, 1, 1)).astype(np.float32)
        r = np.sqrt(((grid - c) ** 2).sum(0))
        body = (r < 0.8).astype(np.float32) + 2 * (r < 0.3)
        cases.append([(m + 1) * body + rng.normal(0, 0.2, shape).astype(np.float32) for m in range(n_mod)])
    return cases


def _speed(config: ClusteringConfig, n_train: int, n_val: int) -> dict:
    shape = (config.height, config.width, config.depth)
    cases = _synthetic_cases(n_train + n_val, shape)
    trainer = ClusteringTrainer(config)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = trainer.fit(cases[:n_train], cases[n_train:])
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    epoch_s = sum(s.seconds for s in res.history)
    voxels = res.epochs * n_train * int(np.prod(shape))
    return {
        "device": describe_device(trainer.device), "grid": list(shape), "modalities": 2,
        "n_channels": config.n_channels, "batch_size": config.batch_size, "amp": trainer.use_amp,
        "cpu_bf16": trainer.use_bf16, "notes": trainer.notes,
        "train_cases": n_train, "val_cases": n_val, "epochs": res.epochs,
        "seconds_per_epoch": [round(s.seconds, 3) for s in res.history],
        "voxels_per_s": round(voxels / epoch_s), "fit_wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "threads": torch.get_num_threads(), "peak_memory_mb": round(peak_memory_mb(trainer.device), 1),
    }


def _best_union_dice(cmap: np.ndarray, truth: np.ndarray) -> float:
    """Best Dice of a union of clusters: add clusters in order of purity (exact optimum of a fractional
    objective's greedy path)."""
    t = truth.astype(bool)
    ids = cmap.ravel() - cmap.min()
    inside = np.bincount(ids[t.ravel()], minlength=ids.max() + 1)
    size = np.bincount(ids, minlength=ids.max() + 1)
    keep = size > 0
    order = np.argsort(-inside[keep] / size[keep])
    tp, sz = np.cumsum(inside[keep][order]), np.cumsum(size[keep][order])
    return float(np.max(2 * tp / (sz + t.sum())))


def _quality(overrides: dict) -> dict:
    from pipeline.core.metrics import dice
    from pipeline.core.phantoms import make_phantom_case
    from pipeline.core.refinement import RefineParams, refine_label

    cases = [make_phantom_case(f"case{i:03d}", size=128, depth=16, seed=i) for i in range(10)]
    mods = ("t1fsce", "t2")
    images = [[c.images[m] for m in mods] for c in cases]
    config = ClusteringConfig.preset("fast", **overrides)
    trainer = ClusteringTrainer(config)
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = trainer.fit(images[:6], images[6:8])
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    refine_variants = {"default": RefineParams(),
                       "majority_cov0.1_fill": RefineParams(combine="majority", min_coverage=0.1, fill_holes=True)}
    rows = []
    for case, imgs in zip(cases, images, strict=True):
        cmap = trainer.predict(imgs)
        rough = list(case.rater_labels.values())
        row = {"case": case.case_id, "n_clusters": int(len(np.unique(cmap))),
               "best_union_dice": _best_union_dice(cmap, case.truth),
               "rough_mean": float(np.mean([dice(r, case.truth) for r in rough])),
               "rough_union": dice(np.max(rough, axis=0), case.truth),
               "rough_majority": dice((np.mean(rough, axis=0) > 0.5).astype(np.uint8), case.truth)}
        for name, params in refine_variants.items():
            row[f"refined_{name}"] = dice(refine_label(cmap, rough, params).label, case.truth)
        rows.append(row)
    keys = [k for k in rows[0] if k != "case"]
    return {"config": config.to_dict(), "epochs": res.epochs, "stopped_reason": res.stopped_reason,
            "best_epoch": res.best_epoch, "fit_wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "threads": torch.get_num_threads(),
            "mean": {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys},
            "cases": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true", help="fast preset on 10 phantoms: time + cluster quality")
    ap.add_argument("--set", default="{}", help="JSON overrides of the config, e.g. '{\"max_epochs\": 10}'")
    ap.add_argument("--epochs", type=int, default=3, help="speed mode: epochs per measurement")
    ap.add_argument("--paper-cpu", action="store_true", help="also the paper preset on CPU, 8+2 cases 128x128x16")
    args = ap.parse_args()
    overrides = json.loads(args.set)
    if args.quality:
        print(json.dumps(_quality(overrides), indent=1))
        return
    # speed only: the synthetic cases have no labels, so the epoch is kept by VAL loss (the paper's rule)
    overrides = {"keep_epoch_by": "val_loss", **overrides}
    cpu_cfg = ClusteringConfig.preset("fast", device="cpu", max_epochs=args.epochs, patience=args.epochs,
                                      **overrides)
    out = {"cpu": _speed(cpu_cfg, n_train=4, n_val=1), "gpu": None}
    if args.paper_cpu:  # the paper's settings on 8 TRAIN + 2 VAL cases of 128x128x16 (issue 19's reference set)
        paper_cfg = ClusteringConfig.preset("paper", device="cpu", height=128, width=128, depth=16,
                                            max_epochs=args.epochs, patience=args.epochs, **overrides)
        out["cpu_paper"] = _speed(paper_cfg, n_train=8, n_val=2)
    if torch.cuda.is_available():
        gpu_cfg = ClusteringConfig.preset("paper", device="cuda", max_epochs=args.epochs, patience=args.epochs,
                                          **{"amp": True, **overrides})
        out["gpu"] = _speed(gpu_cfg, n_train=8, n_val=2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
