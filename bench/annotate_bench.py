"""Server time of "Make AI label" on the annotation page (issue 16 goal: under 3 s for 256x256x32).

Imports one phantom case of the given size, stores a cluster map made of its tissue classes (what a good
step 1 gives; timing does not depend on how it was trained) as a finished clustering run, saves a drawing of
each input kind through the same service the page posts to, and times ``make_ai_label`` (load the cluster map
and the drawing, step 2, store the label, all in-process). Prints JSON.

Run: .venv/bin/python bench/annotate_bench.py [--size 256 --depth 32 --repeats 3]
"""

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _django import import_phantoms, setup

    tmp = setup("annotate-bench-")
    import nibabel as nib
    import numpy as np
    from django.contrib.auth import get_user_model

    from pipeline.annotation.services import create_task, make_ai_label, save_drawing
    from pipeline.core.phantoms import case_seed, make_phantom_case
    from pipeline.core.phantoms.sparse import box_input, scribble_input, slices_input
    from pipeline.datasets.storage import store_volume
    from pipeline.models import ClusteringRun, ClusterMap

    dataset = import_phantoms(tmp, "bench", n_cases=1, size=args.size, depth=args.depth, seed=3)
    case = dataset.cases.get()
    phantom = make_phantom_case("case000", size=args.size, depth=args.depth, seed=case_seed(3, 0))  # the same case
    run = ClusteringRun.objects.create(dataset=dataset, status="succeeded")
    relpath, _ = store_volume(phantom.tissue.astype(np.uint16) + 1, phantom.affine, dtype=np.uint16)
    ClusterMap.objects.create(run=run, case=case, file=relpath, n_clusters=int(phantom.tissue.max()) + 1)
    user = get_user_model().objects.create_user("bench")
    outline = np.logical_or.reduce([m > 0 for (r, _), m in phantom.rater_labels.items() if r == "r1"]).astype(np.uint8)
    inputs = {"outline": outline, "slices": slices_input(outline, 3), "scribbles": scribble_input(outline, 2),
              "box": box_input(outline)}
    result = {"benchmark": "annotate", "shape": [args.size, args.size, args.depth], "make_ai_label_seconds": {}}
    for kind, data in inputs.items():
        task = create_task(dataset=dataset, name=kind, input=kind, radiologists=[user], cases=[case])
        item = task.items.get()
        raw = gzip.compress(nib.Nifti1Image(data, phantom.affine).to_bytes())
        t0 = time.perf_counter()
        save_drawing(item, raw, user)
        save_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            label, refined, _ = make_ai_label(item)
            times.append(time.perf_counter() - t0)
        result["make_ai_label_seconds"][kind] = {
            "median": round(statistics.median(times), 3), "max": round(max(times), 3),
            "save_drawing_seconds": round(save_s, 3), "lesions": refined.n_lesions, "voxels": label.voxel_count}
    worst = max(v["max"] for v in result["make_ai_label_seconds"].values())
    result["goal_under_3_s"] = worst < 3.0
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
