"""Benchmark step 2 (pipeline.core.refinement.refine_label) on one synthetic 512x512x32 case; prints JSON.

Cluster map: smoothed Gaussian noise quantised into ~30 clusters (uint8), plus 3 clusters made inside each
lesion; expert labels: a few ellipsoidal lesions of different sizes, drawn on two "modalities" that disagree slightly (combined by union).
Reports seconds per case (median of --repeats runs) and peak traced memory (tracemalloc, a separate run so
tracing does not slow the timed runs) for both modes.

    OMP_NUM_THREADS=1 .venv/bin/python bench/refine_bench.py [--repeats 3] [--clusters 30] [--lesions 5]
        [--pattern product|speckle]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.refinement import RefineParams, refine_label  # noqa: E402


def synthetic_case(shape=(512, 512, 32), n_clusters=30, n_lesions=5, seed=0, pattern="product"):
    """Return ``(cluster_map uint8 (X, Y, Z), [label_t1fsce, label_t2] uint8)``.

    pattern "product": two smooth fields quantised into 6 and n_clusters // 6 levels, combined: clusters with
    both small and large (10k+ voxel) components, so regions are kept and rejected. "speckle": one smooth
    field quantised into n_clusters levels: thin bands broken into ~100k tiny components per cluster.
    """
    rng = np.random.default_rng(seed)
    levels = (6, max(1, n_clusters // 6)) if pattern == "product" else (n_clusters,)
    sigma = (8, 8, 2) if pattern == "product" else (6, 6, 1.5)
    cmap = np.zeros(shape, np.uint8)
    for n_levels in levels:
        f = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
        edges = np.quantile(f[::4, ::4, ::2], np.linspace(0, 1, n_levels + 1)[1:-1])
        cmap = cmap * n_levels + np.digitize(f, edges).astype(np.uint8)
    noise = f
    n_clusters = int(np.prod(levels))
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    labels = [np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)]
    for _ in range(n_lesions):
        centre = rng.uniform([60, 60, 6], [452, 452, 26])
        radii = rng.uniform([6, 6, 2], [30, 30, 5])
        for k, lab in enumerate(labels):
            r = radii * (1.0 + 0.1 * k)  # the second modality's label is a bit larger
            inside = sum(((g - c) / rr) ** 2 for g, c, rr in zip(grid, centre, r, strict=True)) <= 1.0
            # Lesions of real tumours contain several clusters: put 3 dedicated clusters inside each.
            if k == 0:
                sub = (noise[inside] > np.quantile(noise[inside], [1 / 3, 2 / 3])[:, None]).sum(0)
                cmap[inside] = (n_clusters + sub).astype(np.uint8)
            lab[inside] = 1
    return cmap, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=30)
    parser.add_argument("--lesions", type=int, default=5)
    parser.add_argument("--pattern", choices=["product", "speckle"], default="product")
    args = parser.parse_args()

    cmap, labels = synthetic_case(n_clusters=args.clusters, n_lesions=args.lesions, pattern=args.pattern)
    out: dict = {"shape": list(cmap.shape), "pattern": args.pattern, "n_clusters": int(len(np.unique(cmap))),
                 "modes": {}}
    for mode in ("3d", "per_slice_2d"):
        params = RefineParams(mode=mode)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = refine_label(cmap, labels, params)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        refine_label(cmap, labels, params)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["modes"][mode] = {
            "seconds_median": round(statistics.median(times), 4),
            "seconds_all": [round(t, 4) for t in times],
            "peak_traced_mib": round(peak / 2**20, 1),
            "n_lesions": res.n_lesions,
            "kept_regions": res.n_kept_regions,
            "rejected_regions": res.n_rejected_regions,
            "label_voxels": int(res.label.sum()),
            "combined_voxels": int(res.combined.sum()),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
