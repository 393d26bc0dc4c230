"""U-Net training as run bodies (see pipeline.runs.execution), and the comparison of arms."""

import numpy as np
from django.db import transaction
from django.utils import timezone

from pipeline.core.io.nifti import load_volume
from pipeline.core.metrics import compare
from pipeline.core.unet.config import UNetConfig
from pipeline.core.unet.evaluation import paired_test
from pipeline.datasets.storage import StagedVolumes
from pipeline.labelgen.runs import DatasetNotReady, case_modalities, load_images
from pipeline.models import Case, CaseMetric, ComparisonRun, Label, PredictionSet, Run
from pipeline.runs.execution import Cancelled, on_this_worker, run_dir


def _mask(label):
    return load_volume(label.path, kind="label").data > 0


def source_mask(case, source, rater=""):
    """The training label of ``case`` for a label source, or None when the case has none.

    expert: union of the raters' outlines (or one rater's; sparse input is not a training label); ai: the AI
    label (rejected ones excluded; a radiologist's correction in place of its original), made from that
    rater's input when ``rater`` is given; truth: the truth label.
    """
    labels = [lab for lab in case.labels.all() if lab.source == source and lab.prediction_set_id is None]
    if source == Label.Source.EXPERT:
        labels = [lab for lab in labels if (not rater or lab.rater == rater) and not lab.is_sparse]
        return np.logical_or.reduce([_mask(lab) for lab in labels]) if labels else None
    if source == Label.Source.AI:
        corrections = {lab.corrected_from_id: lab for lab in labels if lab.corrected_from_id}
        labels = [corrections.get(lab.pk, lab) for lab in labels if not lab.corrected_from_id
                  and lab.review != Label.Review.REJECTED and lab.rater == rater]
    return _mask(labels[0]) if labels else None


def training_cases(dataset, source, rater=""):
    """``(modalities, {split: [(case, images, mask)]})``; refuses what cannot train, naming why."""
    modalities = case_modalities(dataset)
    out = {"TRAIN": [], "VAL": [], "TEST": []}
    for case in Case.objects.filter(dataset=dataset).prefetch_related("images", "labels").order_by("external_id"):
        mask = source_mask(case, source, rater)
        if case.split != "TEST" and mask is None:
            continue
        out[case.split].append((case, load_images(case, modalities), mask))
    for split in ("TRAIN", "VAL"):
        if not out[split]:
            raise DatasetNotReady(f"dataset {dataset.name} has no {split} case with a {source} label"
                                  f"{' by ' + rater if rater else ''}")
    if not out["TEST"]:
        raise DatasetNotReady(f"dataset {dataset.name} has no TEST cases to predict")
    return modalities, out


def run_training(run, ctx):
    # torch and MONAI are imported here, in the worker, not by the web pages that import this module
    from pipeline.core.device import describe_device, peak_memory_mb, reset_peak_memory, resolve_device
    from pipeline.core.unet import UNetTrainer

    if run.comparison_id:
        ComparisonRun.objects.filter(pk=run.comparison_id, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, started_at=timezone.now(), message="training the arms")
    config = on_this_worker(UNetConfig.from_dict({k: v for k, v in run.config.items() if k != "preset"}))
    device = resolve_device(config.device)
    reset_peak_memory(device)
    run.update_fields(device=describe_device(device))
    ctx.progress(0, "loading cases")
    modalities, cases = training_cases(run.dataset, run.label_source, run.expert_rater)
    run.update_fields(modalities=modalities, training_cases=[c.external_id for c, _, _ in cases["TRAIN"]])

    def on_epoch(stats):
        run.update_fields(epochs_done=stats.epoch)
        ctx.event(stats.epoch, stats.to_dict(), series=run.arm_name)
        ctx.progress(85 * stats.epoch / config.max_epochs,
                     f"epoch {stats.epoch}/{config.max_epochs} · loss {stats.train_loss:.3f} · "
                     f"val Dice {stats.val_dice:.3f}")

    trainer = UNetTrainer(config)
    result = trainer.fit([(imgs, m) for _, imgs, m in cases["TRAIN"]], [(imgs, m) for _, imgs, m in cases["VAL"]],
                         modalities=modalities, checkpoint_dir=run_dir(run) / "checkpoints", on_epoch=on_epoch,
                         should_stop=ctx.should_stop)
    if result.resumed_from:
        ctx.note(f"resumed from the checkpoint of epoch {result.resumed_from}")
    for stats in result.history[: result.resumed_from]:
        ctx.event(stats.epoch, stats.to_dict(), series=run.arm_name)
    if result.stopped_reason == "cancelled":
        raise Cancelled()
    trainer.export(run_dir(run) / "export")
    run.update_fields(best_epoch=result.best_epoch, best_val_dice=result.best_val_dice, epochs_done=result.epochs,
                      stopped_reason=result.stopped_reason)
    pset = prediction_set_for(run)
    for i, (case, images, _) in enumerate(cases["TEST"], start=1):
        ctx.check_cancel()
        store_prediction(run, pset, case, trainer.predict(images))
        ctx.progress(85 + 15 * i / len(cases["TEST"]), f"predicted {i}/{len(cases['TEST'])} TEST cases")
    run.update_fields(peak_memory_mb=peak_memory_mb(device),
                      message=f"best val Dice {result.best_val_dice:.3f} at epoch {result.best_epoch}; "
                              f"{len(cases['TEST'])} TEST predictions in {pset.name}")


def prediction_set_for(run):
    if run.prediction_set_id:
        return run.prediction_set
    pset, _ = PredictionSet.objects.get_or_create(
        dataset=run.dataset, name=f"unet-{run.arm_name}-run{run.pk}",
        defaults={"run": run, "description": f"3D U-Net trained on {run.get_label_source_display().lower()}"})
    run.update_fields(prediction_set=pset)
    return pset


def store_prediction(run, pset, case, mask):
    reference = case.reference_image()
    spacing = tuple(reference.spacing)
    refs = {"expert": source_mask(case, Label.Source.EXPERT), "truth": source_mask(case, Label.Source.TRUTH)}
    voxels = int(mask.sum())
    with StagedVolumes() as staged, transaction.atomic():
        Label.objects.filter(case=case, prediction_set=pset).delete()
        Label.objects.create(
            case=case, source=Label.Source.PREDICTION, prediction_set=pset, run=run, sha256="",
            file=staged.store(mask.astype(np.uint8), np.asarray(reference.affine), dtype=np.uint8),
            source_name=f"training run {run.pk}", shape=list(mask.shape), spacing=list(spacing),
            affine=reference.affine, voxel_count=voxels, volume_ml=voxels * float(np.prod(spacing)) / 1000.0)
        for name, ref in refs.items():
            if ref is not None:
                metrics = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                           for k, v in compare(mask, ref, spacing).items()}
                CaseMetric.objects.update_or_create(run=run, case=case, reference=name,
                                                    defaults={"metrics": metrics})


def finalize_comparison(comparison_id):
    """Once every arm has finished: the summary (per arm mean/median, paired tests) and the final status."""
    with transaction.atomic():
        comparison = ComparisonRun.objects.select_for_update().get(pk=comparison_id)
        arms = list(comparison.arms_runs.order_by("id"))
        if comparison.is_finished or not all(a.is_finished for a in arms):
            return comparison
        comparison.summary = comparison_summary(arms)
        failed = [a for a in arms if a.status != Run.Status.SUCCEEDED]
        comparison.status = (Run.Status.SUCCEEDED if not failed else
                             Run.Status.CANCELLED if all(a.status == Run.Status.CANCELLED for a in failed)
                             else Run.Status.FAILED)
        comparison.progress = 100.0 if not failed else comparison.progress
        comparison.finished_at = timezone.now()
        comparison.message = (f"prediction sets: {', '.join(a.prediction_set.name for a in arms if a.prediction_set)}"
                              if not failed else f"{len(failed)} arm(s) did not succeed")
        comparison.save()
        return comparison


def comparison_summary(arms):
    per_arm, values = {}, {}
    for arm in arms:
        rows = list(arm.case_metrics.select_related("case"))
        per_arm[arm.arm_name] = {"prediction_set": arm.prediction_set.name if arm.prediction_set else None,
                                 "best_val_dice": arm.best_val_dice, "status": arm.status}
        for reference in ("truth", "expert"):
            by_case = {r.case.external_id: r.metrics for r in rows if r.reference == reference}
            if not by_case:
                continue
            values[(arm.arm_name, reference)] = by_case
            stats = {}
            for metric in ("dice", "hd95_mm", "volume_similarity"):
                v = np.array([m[metric] for m in by_case.values() if m.get(metric) is not None], dtype=float)
                stats[metric] = {"mean": float(v.mean()) if v.size else None,
                                 "median": float(np.median(v)) if v.size else None, "n": int(v.size)}
            per_arm[arm.arm_name][f"vs_{reference}"] = stats
    tests = {}
    if len(arms) == 2:
        a, b = arms[0].arm_name, arms[1].arm_name
        for reference in ("truth", "expert"):
            if (a, reference) in values and (b, reference) in values:
                cases = sorted(set(values[(a, reference)]) & set(values[(b, reference)]))
                test = paired_test([values[(a, reference)][c]["dice"] for c in cases],
                                   [values[(b, reference)][c]["dice"] for c in cases])
                # a and b say which way the difference goes (a minus b)
                tests[f"dice_vs_{reference}"] = {"a": a, "b": b, "reference": reference} | {
                    k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in test.items()}
    return {"arms": per_arm, "paired_tests": tests}
