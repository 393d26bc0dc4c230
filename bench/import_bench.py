"""Seconds and peak memory to import N phantom cases (default 20 at 256x256x32) through import_cases.

Run: .venv/bin/python bench/import_bench.py [--cases 20 --size 256 --depth 32]. Prints JSON.
``--at-limit``: one case of two float32 modalities and a label, each exactly at the default voxel limit
(LABELGEN_MAX_VOXELS, 512x512x256): the import's peak memory is what the limit budgets for.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_limit_case(folder, shape):
    """One case (t1fsce, t2 as float32, an expert label) of ``shape``, with its manifest."""
    import nibabel as nib
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    label = np.zeros(shape, np.uint8)
    label[200:260, 200:260, 100:140] = 1
    rows = ["case,file,modality,kind,source,rater"]
    for modality in ("t1fsce", "t2"):
        data = rng.normal(100, 10, shape).astype(np.float32)
        nib.save(nib.Nifti1Image(data, affine), str(folder / f"big_{modality}.nii.gz"))
        rows.append(f"big,big_{modality}.nii.gz,{modality},image,,")
    nib.save(nib.Nifti1Image(label, affine), str(folder / "big_r1_t1fsce_label.nii.gz"))
    rows.append("big,big_r1_t1fsce_label.nii.gz,t1fsce,label,expert,r1")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--at-limit", action="store_true")
    args = parser.parse_args()
    if args.at_limit:
        args.cases, args.size, args.depth = 1, 512, 256
    sys.path.insert(0, str(ROOT))
    from pipeline.core.phantoms import write_phantom_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.at_limit:
            manifest = write_limit_case(Path(tmp) / "data", (args.size, args.size, args.depth))
        else:
            manifest = write_phantom_dataset(Path(tmp) / "data", n_cases=args.cases, size=args.size,
                                             depth=args.depth)
        generate_s = time.perf_counter() - t0
        env = {**os.environ, "LABELGEN_VAR_DIR": str(Path(tmp) / "var"), "DJANGO_SETTINGS_MODULE": "labelgen_web.settings",
               "SECRET_KEY": os.environ.get("SECRET_KEY") or "import-bench-only-secret-key-0123456789abcdef"}
        env.pop("DATABASE_URL", None)
        py = sys.executable
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        subprocess.run([py, "manage.py", "import_cases", str(manifest), "--dataset", "bench", "--no-progress"],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        files = sum(1 for _ in (Path(tmp) / "data").glob("*.nii.gz"))
    print(json.dumps({
        "benchmark": "import_cases", "cases": args.cases, "shape": [args.size, args.size, args.depth],
        "files": files, "seconds": round(seconds, 2), "seconds_per_case": round(seconds / args.cases, 3),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1), "generate_seconds": round(generate_s, 2),
        "cpu_count": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
