"""Writing phantom datasets to NIfTI files plus a manifest (rich format and reference format).

Rich manifest (``manifest.csv``), one row per file, paths relative to the manifest's folder::

    case,file,modality,kind,source,rater,prediction_set,data_split

Reference manifest (the published reference code's format)::

    FILE,modality,data_split        # label rows have modality "<modality>_label"
"""

from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Callable, Sequence

import nibabel as nib
import numpy as np

from pipeline.core.phantoms.case import PhantomCase, make_phantom_case

MANIFEST_COLUMNS = ("case", "file", "modality", "kind", "source", "rater", "prediction_set", "data_split", "input")
SPARSE_RATER = "quick"  # the simulated radiologist who gives sparse input (slices, strokes, a box)
REFERENCE_COLUMNS = ("FILE", "modality", "data_split")
SPLITS = ("TRAIN", "VAL", "TEST")


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset generated with ``seed`` (distinct, reproducible)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def assign_splits(n_cases: int, seed: int, split_fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> list[str]:
    """Deterministic TRAIN/VAL/TEST assignment of ``n_cases`` cases, shuffled by ``seed``.

    Counts are rounded from ``split_fractions`` (train, val, test; summing to 1). A split with a
    positive fraction gets at least one case whenever there are enough cases for every such split
    (so with the defaults and ``n_cases >= 3`` there is always a VAL and a TEST case); TRAIN keeps at
    least one case.

    Returns:
        list of split names, index = case index.
    """
    fr = tuple(float(f) for f in split_fractions)
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"split_fractions must be 3 non-negative numbers summing to 1, got {split_fractions!r}")
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases!r}")
    counts = [round(f * n_cases) for f in fr]
    wanted = [i for i in (1, 2) if fr[i] > 0]
    if n_cases >= 1 + len(wanted):
        for i in wanted:
            counts[i] = max(counts[i], 1)
    counts[1] = min(counts[1], n_cases - 1)
    counts[2] = min(counts[2], n_cases - 1 - counts[1])
    counts[0] = n_cases - counts[1] - counts[2]
    order = np.random.default_rng([int(seed), 7919]).permutation(n_cases)
    splits = [""] * n_cases
    for pos, idx in enumerate(order):
        splits[idx] = "VAL" if pos < counts[1] else "TEST" if pos < counts[1] + counts[2] else "TRAIN"
    return splits


def save_nifti(array: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> pathlib.Path:
    """Write ``array`` (X, Y, Z) with ``affine`` (qform and sform code 1, mm) atomically.

    The file is written under a hidden temporary name in the same folder and then renamed, so a
    reader never sees a half-written file.
    """
    path = pathlib.Path(path)
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64))
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # keeps the .nii.gz suffix for nibabel
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_csv(path: pathlib.Path, header: Sequence[str], rows: list[Sequence[str]]) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_case_files(case: PhantomCase, out_dir: pathlib.Path, split: str) -> list[list[str]]:
    """Write one case's images, truth and rater labels; returns its rich-manifest rows."""
    cid = case.case_id
    rows = []
    for m, img in case.images.items():
        name = f"{cid}_{m}.nii.gz"
        save_nifti(img.astype(np.float32, copy=False), case.affine, out_dir / name)
        rows.append([cid, name, m, "image", "", "", "", split, ""])
    name = f"{cid}_truth.nii.gz"
    save_nifti(case.truth.astype(np.uint8, copy=False), case.affine, out_dir / name)
    rows.append([cid, name, "", "label", "truth", "", "", split, ""])
    for (rater, m), lab in case.rater_labels.items():
        name = f"{cid}_{rater}_{m}_label.nii.gz"
        save_nifti(lab.astype(np.uint8, copy=False), case.affine, out_dir / name)
        rows.append([cid, name, m, "label", "expert", rater, "", split, "outline"])
    return rows


def write_sparse_input(case: PhantomCase, out_dir: pathlib.Path, split: str, kind: str) -> list[str]:
    """Write a sparse input of ``kind`` simulated from the first rater's outline (the union of their
    modalities) as rater :data:`SPARSE_RATER`; returns its rich-manifest row."""
    from pipeline.core.phantoms.sparse import box_input, scribble_input, slices_input

    first = next(iter(case.rater_labels))[0]
    outline = np.logical_or.reduce([lab > 0 for (r, _), lab in case.rater_labels.items() if r == first])
    simulate = {"slices": lambda m: slices_input(m, every=3), "scribbles": lambda m: scribble_input(m, n_slices=2),
                "box": box_input}
    if kind not in simulate:
        raise ValueError(f"sparse kind must be one of {', '.join(simulate)}, got {kind!r}")
    name = f"{case.case_id}_{SPARSE_RATER}_{kind}_label.nii.gz"
    save_nifti(simulate[kind](outline).astype(np.uint8), case.affine, out_dir / name)
    return [case.case_id, name, "", "label", "expert", SPARSE_RATER, "", split, kind]


def write_phantom_dataset(
    out_dir: str | os.PathLike,
    n_cases: int = 10,
    size: int = 128,
    depth: int = 16,
    seed: int = 0,
    modalities: Sequence[str] = ("t1fsce", "t2"),
    raters: Sequence[str] = ("r1", "r2", "r3"),
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    progress: Callable[[int, int], object] | None = None,
    sparse_kinds: Sequence[str] = (),
) -> pathlib.Path:
    """Generate ``n_cases`` phantoms into ``out_dir`` and write ``manifest.csv`` there.

    Files: ``<case>_<modality>.nii.gz`` (float32), ``<case>_truth.nii.gz`` and
    ``<case>_<rater>_<modality>_label.nii.gz`` (uint8), all with the case's affine. Case ``i`` is
    ``case{i:03d}`` generated with :func:`case_seed` ``(seed, i)``; splits come from
    :func:`assign_splits`. ``progress(done, total)`` is called after each case. ``sparse_kinds``: case ``i``
    (for ``i < len(sparse_kinds)``) also gets a sparse input of kind ``sparse_kinds[i]`` by rater
    :data:`SPARSE_RATER`, simulated from the first rater's outline (:func:`write_sparse_input`).

    Returns:
        path of the rich manifest (columns :data:`MANIFEST_COLUMNS`, paths relative to its folder).
    """
    if isinstance(n_cases, bool) or not isinstance(n_cases, int | np.integer) or n_cases < 1:
        raise ValueError(f"n_cases must be an integer >= 1, got {n_cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    splits = assign_splits(int(n_cases), int(seed), split_fractions)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    for i in range(n_cases):
        case = make_phantom_case(f"case{i:03d}", size=size, depth=depth, seed=case_seed(seed, i),
                                 modalities=modalities, raters=raters)
        rows += write_case_files(case, out, splits[i])
        if i < len(sparse_kinds):
            rows.append(write_sparse_input(case, out, splits[i], sparse_kinds[i]))
        if progress is not None:
            progress(i + 1, n_cases)
    manifest = out / "manifest.csv"
    _write_csv(manifest, MANIFEST_COLUMNS, rows)
    return manifest


def write_reference_manifest(
    manifest_path: str | os.PathLike,
    out_path: str | os.PathLike,
    rater: str = "r1",
    *,
    absolute: bool = False,
) -> pathlib.Path:
    """Convert a rich manifest into the reference format ``FILE,modality,data_split``.

    One row per image (modality e.g. ``t1fsce``) and one per label of ``rater`` (modality
    ``t1fsce_label``, ``t2_label``). Rows are grouped by split (TRAIN, VAL, TEST, then any other),
    then by modality column (images, then labels), and within a group follow the case order of the
    manifest, so the k-th row of every group within a split belongs to the same case.

    Args:
        manifest_path: rich manifest (as written by :func:`write_phantom_dataset`).
        out_path: CSV to write.
        rater: whose expert labels to list.
        absolute: write absolute paths; by default paths are relative to ``out_path``'s folder.

    Returns:
        ``out_path`` as a :class:`pathlib.Path`.
    """
    manifest_path = pathlib.Path(manifest_path)
    out_path = pathlib.Path(out_path)
    with open(manifest_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("case", "file", "modality", "kind", "source", "rater", "data_split")
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest_path}: not a rich manifest, missing columns {missing}")
        records = list(reader)
    base = manifest_path.resolve().parent
    out_base = out_path.resolve().parent
    cases: dict[str, dict] = {}  # insertion order = manifest case order
    modalities: list[str] = []
    raters_seen: set[str] = set()
    for line, rec in enumerate(records, start=2):
        entry = cases.setdefault(rec["case"], {"split": rec["data_split"], "image": {}, "label": {}})
        if rec["data_split"] != entry["split"]:
            raise ValueError(f"{manifest_path}:{line}: case {rec['case']!r} appears in splits "
                             f"{entry['split']!r} and {rec['data_split']!r}")
        path = (base / rec["file"]).resolve()
        file = str(path) if absolute else pathlib.Path(os.path.relpath(path, out_base)).as_posix()
        if rec["kind"] == "image":
            entry["image"][rec["modality"]] = file
            if rec["modality"] not in modalities:
                modalities.append(rec["modality"])
        elif rec["kind"] == "label" and rec["source"] == "expert":
            raters_seen.add(rec["rater"])
            if rec["rater"] == rater:
                entry["label"][rec["modality"]] = file
    if rater not in raters_seen:
        raise ValueError(f"{manifest_path}: rater {rater!r} has no labels; raters: {sorted(raters_seen)}")
    for cid, entry in cases.items():
        lacking = [m for m in modalities if m not in entry["image"]]
        lacking += [f"{m}_label" for m in modalities if m not in entry["label"]]
        if lacking:
            raise ValueError(f"{manifest_path}: case {cid!r} lacks {lacking} (rater {rater!r})")
    split_order = [s for s in SPLITS if any(e["split"] == s for e in cases.values())]
    split_order += sorted({e["split"] for e in cases.values()} - set(SPLITS))
    rows = []
    for split in split_order:
        members = [e for e in cases.values() if e["split"] == split]
        for kind, suffix in (("image", ""), ("label", "_label")):
            for m in modalities:
                rows += [[e[kind][m], f"{m}{suffix}", split] for e in members]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(out_path, REFERENCE_COLUMNS, rows)
    return out_path
