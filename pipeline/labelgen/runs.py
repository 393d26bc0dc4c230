"""Step 1 and step 2 as run bodies (see pipeline.runs.execution): load cases, call the core, store outputs."""

from collections import Counter

import numpy as np
from django.db import transaction

from pipeline.core.clustering.config import ClusteringConfig
from pipeline.core.io.nifti import load_volume
from pipeline.core.metrics import compare
from pipeline.core.refinement import RefineParams, refine_label
from pipeline.core.refinement.combine import combine_raters
from pipeline.core.refinement.inputs import gather_evidence
from pipeline.datasets.storage import StagedVolumes
from pipeline.models import Case, ClusterMap, Label, LabelQA
from pipeline.runs.execution import Cancelled, on_this_worker, run_dir


class DatasetNotReady(ValueError):
    """The dataset cannot be used as asked; the message says which case and why."""


def case_modalities(dataset):
    """The modalities every case has, in a fixed order; refuses a dataset where a case lacks one."""
    modalities = dataset.modalities()
    if not modalities:
        raise DatasetNotReady(f"dataset {dataset.name} has no images")
    for case in Case.objects.filter(dataset=dataset).prefetch_related("images"):
        missing = sorted(set(modalities) - {img.modality for img in case.images.all()})
        if missing:
            raise DatasetNotReady(f"case {case.external_id} has no {', '.join(missing)} image "
                                  f"(every case needs {', '.join(modalities)})")
    return modalities


def load_images(case, modalities):
    by_modality = {img.modality: img for img in case.images.all()}
    return [load_volume(by_modality[m].path).data for m in modalities]


def check_clustering_inputs(dataset, config):
    """Refuse, before any training, a dataset without TRAIN or VAL cases, with cases too small, or (when the
    kept epoch is chosen by the VAL labels) without an expert label on any VAL case."""
    modalities = case_modalities(dataset)
    splits = set(Case.objects.filter(dataset=dataset).values_list("split", flat=True))
    for split in ("TRAIN", "VAL"):
        if split not in splits:
            raise DatasetNotReady(f"dataset {dataset.name} has no {split} cases; clustering trains on TRAIN and "
                                  "stops early on VAL")
    if config.keep_epoch_by == "val_labels" and not Label.objects.filter(
            case__dataset=dataset, case__split="VAL", source=Label.Source.EXPERT).exists():
        raise DatasetNotReady(f"dataset {dataset.name}: keep_epoch_by 'val_labels' needs expert labels on VAL "
                              "cases, and none has one; import rough labels for a VAL case or set keep_epoch_by "
                              "to 'val_loss'")
    from pipeline.core.preprocess import GridSpec, check_fits

    grid = GridSpec(config.height, config.width, config.depth)
    for case in Case.objects.filter(dataset=dataset).prefetch_related("images"):
        shape = case.images.all()[0].shape
        try:
            check_fits(shape, grid)
        except ValueError as exc:
            raise DatasetNotReady(f"case {case.external_id} ({'x'.join(map(str, shape))}) is too small for the "
                                  f"{grid.height}x{grid.width}x{grid.depth} grid: {exc}") from None
    return modalities


def time_left(seconds):
    """At most how long the run has left (early stopping may end it sooner): "at most 12 min left"; under a minute
    is not "0 min"."""
    return "under a minute left" if seconds < 60 else f"at most {seconds / 60:.0f} min left"


def run_clustering(run, ctx):
    # torch and MONAI are imported here, in the worker, not by the web pages that import this module
    from pipeline.core.clustering import ClusteringTrainer
    from pipeline.core.device import describe_device, peak_memory_mb, reset_peak_memory, resolve_device

    config = on_this_worker(ClusteringConfig.from_dict({k: v for k, v in run.config.items() if k != "preset"}))
    device = resolve_device(config.device)
    reset_peak_memory(device)
    run.update_fields(device=describe_device(device))
    modalities = check_clustering_inputs(run.dataset, config)
    cases = list(Case.objects.filter(dataset=run.dataset).prefetch_related("images", "labels")
                 .order_by("external_id"))
    ctx.progress(0, f"loading {len(cases)} cases")
    images = {case.pk: load_images(case, modalities) for case in cases}
    train = [images[c.pk] for c in cases if c.split == "TRAIN"]
    val = [images[c.pk] for c in cases if c.split == "VAL"]
    val_labels = None
    if config.keep_epoch_by == "val_labels":  # only the choice of the kept epoch looks at them
        # the raters' consensus, not their union: the union also holds what any one rater over-drew (oedema),
        # and scoring against it favoured clusterings that merge the tumour with its oedema
        val_labels = [val_target(case) for case in cases if case.split == "VAL"]

    def on_epoch(stats):
        run.update_fields(epochs_done=stats.epoch)
        ctx.event(stats.epoch, stats.to_dict())
        eta = stats.seconds * (config.max_epochs - stats.epoch)
        ctx.progress(90 * stats.epoch / config.max_epochs,
                     f"epoch {stats.epoch}/{config.max_epochs} · loss {stats.train_loss:.3f} · "
                     f"{stats.n_clusters} clusters · {time_left(eta)}")

    trainer = ClusteringTrainer(config)
    for note in trainer.notes:
        ctx.note(note)
    result = trainer.fit(train, val, checkpoint_dir=run_dir(run) / "checkpoints", on_epoch=on_epoch,
                         should_stop=ctx.should_stop, val_labels=val_labels)
    if result.resumed_from:
        ctx.note(f"resumed from the checkpoint of epoch {result.resumed_from}")
    for stats in result.history[: result.resumed_from]:
        ctx.event(stats.epoch, stats.to_dict())  # a previous attempt may have died before recording these
    if result.stopped_reason == "cancelled":
        raise Cancelled()
    trainer.save(run_dir(run) / "model.pt")
    run.update_fields(modalities=modalities, best_epoch=result.best_epoch, epochs_done=result.epochs,
                      stopped_reason=result.stopped_reason)
    for i, case in enumerate(cases, start=1):
        ctx.check_cancel()
        ids = trainer.predict(images[case.pk])  # -1 = outside the model grid
        store_cluster_map(run, case, ids + 1)
        ctx.progress(90 + 10 * i / len(cases), f"cluster maps {i}/{len(cases)}")
    run.update_fields(peak_memory_mb=peak_memory_mb(device),
                      message=f"best epoch {result.best_epoch} of {result.epochs} ({result.stopped_reason}); "
                              f"{len(cases)} cluster maps")


def store_cluster_map(run, case, ids):
    reference = case.reference_image()
    with StagedVolumes() as staged:
        relpath = staged.store(ids.astype(np.uint16), np.asarray(reference.affine), dtype=np.uint16)
        ClusterMap.objects.update_or_create(run=run, case=case, defaults={
            "file": relpath, "n_clusters": int(len(np.unique(ids[ids > 0])))})


def expert_inputs(case, rater=""):
    """The case's expert labels (one rater's, or all) and their arrays in their input kind's encoding."""
    labels = [lab for lab in case.labels.all() if lab.source == Label.Source.EXPERT and (not rater or lab.rater == rater)]
    return labels, [load_volume(lab.path, kind="label").data for lab in labels]


def val_target(case):
    """What a VAL case's clusters are scored against when the kept epoch is chosen by the VAL labels: the
    raters' majority of their outlines; with sparse input only, the lesion extent it implies (interpolated
    slices, the ball around strokes, the ellipsoid in a box), or None without expert input."""
    labels, arrays = expert_inputs(case)
    outlines = [(lab, a > 0) for lab, a in zip(labels, arrays, strict=True) if not lab.is_sparse]
    if outlines:
        return combine_raters([m for _, m in outlines], [lab.rater for lab, _ in outlines], "majority")
    if not labels:
        return None
    structure = RefineParams().structure()
    evidence = gather_evidence(arrays, [lab.input for lab in labels], [lab.rater for lab in labels], "union",
                               structure, tuple(case.reference_image().spacing))
    return evidence.extent.astype(np.uint8)


def run_refinement(run, ctx):
    params_dict = dict(run.config)
    rater = params_dict.pop("expert_rater", "")
    splits = params_dict.pop("splits", None) or list(Case.Split.values)
    # Runs configured before min_inside existed followed the published rules; a redelivery must too.
    params_dict.setdefault("min_inside", 0.0)
    params = RefineParams.from_dict({**params_dict, "ignore_clusters": [0]})
    maps = {m.case_id: m for m in run.clustering_run.cluster_maps.all()}
    cases = list(Case.objects.filter(dataset=run.dataset, pk__in=maps, split__in=splits)
                 .prefetch_related("labels", "images").order_by("external_id"))
    if not cases:
        raise ValueError(f"clustering run #{run.clustering_run_id} has no cluster maps")
    done = 0
    for i, case in enumerate(cases, start=1):
        ctx.check_cancel()
        labels, masks = expert_inputs(case, rater)
        if not masks:
            ctx.progress(100 * i / len(cases), f"{case.external_id}: no expert label{' by ' + rater if rater else ''}; skipped")
            continue
        cluster_map = load_volume(maps[case.pk].path, kind="label").data.astype(np.int32)
        result = refine_label(cluster_map, masks, params, raters=[lab.rater for lab in labels],
                              kinds=[lab.input for lab in labels], spacing=tuple(case.reference_image().spacing))
        save_ai_label(run, case, result, labels, masks, rater)
        done += 1
        reasons = Counter(r.reason for les in result.lesions for r in les.regions)
        ctx.progress(100 * i / len(cases), f"{case.external_id}: {result.n_lesions} lesion(s), "
                                           f"{int(result.label.sum())} voxels; regions kept {reasons['kept']}, "
                                           f"too large {reasons['too_large']}, "
                                           f"mostly outside {reasons['mostly_outside']}")
    run.update_fields(message=f"{done} AI label(s) from {len(cases)} cluster maps")


def save_ai_label(run, case, result, labels, masks, rater):
    reference = case.reference_image()
    spacing = tuple(reference.spacing)
    metrics = {LabelQA.VS_EXPERT: compare(result.label, result.combined, spacing)}
    for label, mask in zip(labels, masks, strict=True):
        if not label.is_sparse:  # sparse input is not a lesion outline to measure against
            metrics[LabelQA.rater_key(label.rater, label.modality)] = compare(result.label, mask > 0, spacing)
    truth = next((lab for lab in case.labels.all() if lab.source == Label.Source.TRUTH), None)
    if truth is not None:
        truth_mask = load_volume(truth.path, kind="label").data > 0
        metrics[LabelQA.VS_TRUTH] = compare(result.label, truth_mask, spacing)
        metrics[LabelQA.EXPERT_VS_TRUTH] = compare(result.combined, truth_mask, spacing)
    metrics = {k: {m: (None if isinstance(v, float) and not np.isfinite(v) else v) for m, v in d.items()}
               for k, d in metrics.items()}
    voxels = int(result.label.sum())
    with StagedVolumes() as staged, transaction.atomic():
        Label.objects.filter(case=case, source=Label.Source.AI, rater=rater, prediction_set=None).delete()
        label = Label.objects.create(
            case=case, source=Label.Source.AI, rater=rater, run=run,
            file=staged.store(result.label, np.asarray(reference.affine), dtype=np.uint8),
            sha256="", source_name=f"refinement run {run.pk}", shape=list(result.label.shape),
            spacing=list(spacing), affine=reference.affine, voxel_count=voxels,
            volume_ml=voxels * float(np.prod(spacing)) / 1000.0)
        LabelQA.objects.update_or_create(run=run, case=case, defaults={
            "label": label, "n_lesions": result.n_lesions, "metrics": metrics})
