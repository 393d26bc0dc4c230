"""Seconds and peak memory to import N phantom cases (default 20 at 256x256x32) through import_cases.

Run: .venv/bin/python bench/import_bench.py [--cases 20 --size 256 --depth 32]. Prints JSON.
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--depth", type=int, default=32)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from pipeline.core.phantoms import write_phantom_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = write_phantom_dataset(Path(tmp) / "data", n_cases=args.cases, size=args.size, depth=args.depth)
        generate_s = time.perf_counter() - t0
        env = {**os.environ, "LABELGEN_VAR_DIR": str(Path(tmp) / "var"), "DJANGO_SETTINGS_MODULE": "labelgen_web.settings"}
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
