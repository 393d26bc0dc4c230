"""How much radiologist input does step 2 need? Effort against quality on phantoms (issue 16).

Makes a phantom dataset with simulated raters, imports it and trains step 1 once (a ClusteringRun with the
preset). Then, for each rater, it simulates sparse input from that rater's rough outline (the union of their
modalities, as one drawing): ``slices`` every k-th lesion slice (k = 1..4), ``scribbles`` on the 1-3 central
slices (a cross inside, a ring outside), a ``box`` per lesion; and makes AI labels from each with the core
step 2 (the refinement runs' defaults). It prints JSON: mean Dice against the truth of every input and of the
AI label made from it, per rater and over raters, next to each rater's full outline and the raters' union;
the effort (slices touched, voxels marked, and seconds at the rates in ``pipeline.core.phantoms.sparse``),
and the goals of issue 16:

- from ``slices`` (every third lesion slice) and from ``scribbles``, the AI labels reach the Dice of the
  union of the full rough outlines (over the rough raters, r1 and r3; r2 is a careful outline, a reference);
- from a ``box``, within 0.05 of it.

Run: .venv/bin/python bench/effort_quality.py [--cases 10 --size 128 --depth 16 --preset fast --seed 0]
     (one step-1 training, about 2 min on 2 CPU cores at the defaults)
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUGH_RATERS = ("r1", "r3")  # r2 draws within about a voxel of the truth: a reference line, not rough input


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=None, help="override max_epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _django import import_phantoms, setup

    tmp = setup("effort-quality-")
    import numpy as np

    from pipeline.core.io.nifti import load_volume
    from pipeline.core.metrics import dice
    from pipeline.core.phantoms.sparse import box_input, effort, scribble_input, slices_input
    from pipeline.core.refinement import RefineParams, refine_label
    from pipeline.labelgen.runs import run_clustering
    from pipeline.models import Case, ClusteringRun
    from pipeline.runs.execution import execute
    from pipeline.runs.presets import clustering_config, refine_config

    dataset = import_phantoms(tmp, "effort", n_cases=args.cases, size=args.size, depth=args.depth,
                              seed=args.seed)
    cases = list(Case.objects.filter(dataset=dataset).prefetch_related("labels", "images").order_by("external_id"))
    labels_of = {c.pk: list(c.labels.all()) for c in cases}
    truth = {c.pk: load_volume(next(lab for lab in labels_of[c.pk] if lab.source == "truth").path,
                               kind="label").data > 0 for c in cases}
    spacing = {c.pk: tuple(c.images.all()[0].spacing) for c in cases}
    raters = sorted({lab.rater for c in cases for lab in labels_of[c.pk] if lab.source == "expert"})

    def outline(case, rater):
        masks = [load_volume(lab.path, kind="label").data > 0 for lab in labels_of[case.pk]
                 if lab.source == "expert" and lab.rater == rater]
        return np.logical_or.reduce(masks).astype(np.uint8)

    outlines = {r: {c.pk: outline(c, r) for c in cases} for r in raters}

    overrides = {"seed": args.seed, **({"max_epochs": args.epochs} if args.epochs else {})}
    t0 = time.perf_counter()
    run = ClusteringRun.objects.create(dataset=dataset, config=clustering_config(args.preset, overrides).to_dict())
    assert execute(run.pk, run_clustering) == "succeeded", ClusteringRun.objects.get(pk=run.pk).error
    step1_s = time.perf_counter() - t0
    maps = {m.case_id: load_volume(m.path, kind="label").data.astype(np.int32) for m in run.cluster_maps.all()}
    config = {k: v for k, v in refine_config().items() if k not in ("expert_rater", "splits")}
    params = RefineParams.from_dict({**config, "ignore_clusters": [0]})

    kinds = {f"slices_every_{k}": ("slices", lambda m, k=k: slices_input(m, every=k)) for k in (1, 2, 3, 4)}
    kinds.update({f"scribbles_{n}_slices": ("scribbles", lambda m, n=n: scribble_input(m, n_slices=n))
                  for n in (1, 2, 3)})
    kinds["box"] = ("box", box_input)
    kinds["outline"] = ("outline", lambda m: m)

    refine_seconds = []
    rows = {}
    for name, (kind, simulate) in kinds.items():
        per_rater = {}
        for r in raters:
            ai_dice, input_dice, slices, voxels, seconds = [], [], [], [], []
            for c in cases:
                sparse = simulate(outlines[r][c.pk])
                t = time.perf_counter()
                result = refine_label(maps[c.pk], [sparse], params, raters=[r], kinds=[kind], spacing=spacing[c.pk])
                refine_seconds.append(time.perf_counter() - t)
                ai_dice.append(dice(result.label > 0, truth[c.pk]))
                input_dice.append(dice(sparse == 1, truth[c.pk]))
                e = effort(sparse, kind)
                slices.append(e.slices)
                voxels.append(e.voxels)
                seconds.append(e.seconds)
            per_rater[r] = {"ai_dice": round(float(np.mean(ai_dice)), 4),
                            "input_dice": round(float(np.mean(input_dice)), 4),
                            "slices_touched": round(float(np.mean(slices)), 2),
                            "voxels_marked": round(float(np.mean(voxels)), 1),
                            "seconds": round(float(np.mean(seconds)), 1)}
        rough = [per_rater[r] for r in ROUGH_RATERS if r in per_rater]
        rows[name] = {"kind": kind, "per_rater": per_rater,
                      **{f"rough_raters_{k}": round(float(np.mean([p[k] for p in rough])), 4)
                         for k in ("ai_dice", "slices_touched", "voxels_marked", "seconds")}}

    full = {r: round(float(np.mean([dice(outlines[r][c.pk] > 0, truth[c.pk]) for c in cases])), 4) for r in raters}
    rough_union = {c.pk: np.logical_or.reduce([outlines[r][c.pk] > 0 for r in ROUGH_RATERS if r in raters])
                   for c in cases}
    all_union = {c.pk: np.logical_or.reduce([outlines[r][c.pk] > 0 for r in raters]) for c in cases}
    union_rough = round(float(np.mean([dice(rough_union[c.pk], truth[c.pk]) for c in cases])), 4)
    union_all = round(float(np.mean([dice(all_union[c.pk], truth[c.pk]) for c in cases])), 4)
    outline_seconds = rows["outline"]["rough_raters_seconds"]
    for row in rows.values():
        row["seconds_saved_vs_full_outline"] = round(outline_seconds - row["rough_raters_seconds"], 1)

    def worst(name):
        return min(rows[name]["per_rater"][r]["ai_dice"] for r in ROUGH_RATERS if r in raters)

    result = {
        "benchmark": "effort_quality", "cases": args.cases, "shape": [args.size, args.size, args.depth],
        "preset": args.preset, "step1_seconds": round(step1_s, 1), "raters": raters, "rough_raters": ROUGH_RATERS,
        "refine_seconds_per_case": {"mean": round(float(np.mean(refine_seconds)), 3),
                                    "max": round(float(np.max(refine_seconds)), 3)},
        "full_rough_outline_dice": full,
        "union_of_rough_raters_outlines_dice": union_rough,
        "union_of_all_raters_outlines_dice": union_all,
        "rates_assumed": "outline/slices 12 s per slice, strokes 5 s per slice, 2 s to reach a slice, box 10 s",
        "by_input": rows,
        "goals": {
            "slices_every_3_reaches_union (worst rough rater)": worst("slices_every_3") >= union_rough,
            **{f"{n}_reaches_union (worst rough rater)": worst(n) >= union_rough
               for n in ("scribbles_1_slices", "scribbles_2_slices", "scribbles_3_slices")},
            "box_within_0.05_of_union (worst rough rater)": worst("box") >= union_rough - 0.05,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
