"""Annotation tasks as domain operations: create a task, save a drawing, make an AI label for one case,
review or correct it. Views and commands are thin shells around these; every write is one transaction and
files are staged, so a refused drawing stores nothing."""

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from pipeline.core.io.nifti import VolumeError, check_label, load_volume
from pipeline.core.refinement import InvalidInput, RefineParams, check_input, refine_label
from pipeline.datasets.storage import StagedVolumes
from pipeline.models import AnnotationItem, AnnotationTask, Case, ClusteringRun, Label
from pipeline.runs.presets import refine_config

#: Largest drawing accepted in one POST (compressed or not): a 512x512x64 uint8 volume uncompressed.
MAX_DRAWING_BYTES = 512 * 512 * 64 + 352 + 1024


class AnnotationError(ValueError):
    """A request the annotation page cannot carry out; the message names the case and the reason."""


def create_task(*, dataset, name, input, radiologists, cases, created_by=None, instructions=""):
    """A task giving every case to every radiologist (in the order given). Refuses a dataset without images."""
    cases = list(cases)
    radiologists = list(radiologists)
    if not cases:
        raise AnnotationError(f"dataset {dataset.name} has no cases to annotate")
    without = [c.external_id for c in cases if not c.images.exists()]
    if without:
        raise AnnotationError(f"case {without[0]} of dataset {dataset.name} has no image to draw on")
    if not radiologists:
        raise AnnotationError("choose at least one radiologist")
    with transaction.atomic():
        task = AnnotationTask.objects.create(dataset=dataset, name=name, input=input, created_by=created_by,
                                             instructions=instructions)
        AnnotationItem.objects.bulk_create([
            AnnotationItem(task=task, radiologist=user, case=case, position=i)
            for user in radiologists for i, case in enumerate(cases, start=1)])
    return task


def read_drawing(raw, item, what="drawing"):
    """Bytes of a NIfTI (.nii or .nii.gz) posted by the page -> uint8 array on the case's grid, or
    AnnotationError naming the case and why (wrong grid, not a label, too large)."""
    case = item.case
    if not raw:
        raise AnnotationError(f"case {case.external_id}: the {what} arrived empty")
    if len(raw) > MAX_DRAWING_BYTES:
        raise AnnotationError(f"case {case.external_id}: the {what} is {len(raw):,} bytes, over the "
                              f"{MAX_DRAWING_BYTES:,} accepted")
    fd, tmp = tempfile.mkstemp(suffix=".nii.gz" if raw[:2] == b"\x1f\x8b" else ".nii")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        vol = load_volume(tmp, kind="label", name=f"{what} of {case.external_id}")
        data = check_label(vol)
    except VolumeError as exc:
        raise AnnotationError(f"case {case.external_id}: the {what} is not a readable label volume ({exc})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    reference = case.reference_image()
    if tuple(vol.shape) != tuple(reference.shape) or not np.allclose(vol.affine, np.asarray(reference.affine),
                                                                       rtol=0.0, atol=1e-3):
        raise AnnotationError(f"case {case.external_id}: the {what} is on a different grid "
                              f"({'x'.join(map(str, vol.shape))}) than the case's images "
                              f"({'x'.join(map(str, reference.shape))}); reload the page and draw again")
    return data


def _store_label(staged, item, data, **fields):
    reference = item.case.reference_image()
    spacing = [float(s) for s in reference.spacing]
    voxels = int(np.count_nonzero(data == 1))
    return dict(case=item.case, file=staged.store(data, np.asarray(reference.affine), dtype=np.uint8), sha256="",
                shape=list(data.shape), spacing=spacing, affine=reference.affine, voxel_count=voxels,
                volume_ml=voxels * float(np.prod(spacing)) / 1000.0, **fields)


def save_drawing(item, raw, user, seconds=0.0):
    """Store the radiologist's drawing as ``Label(source=expert, rater=<user>, input=<task's kind>)``,
    replacing their earlier drawing of this case. Refused (nothing stored): wrong grid, empty, values
    outside the kind's encoding."""
    kind = item.task.input
    data = read_drawing(raw, item)
    if kind == Label.Input.OUTLINE and not data.any():
        raise AnnotationError(f"case {item.case.external_id}: the drawing is empty; draw the lesion, or skip the "
                              "case with a reason")
    try:
        check_input(data, kind)
    except InvalidInput as exc:
        raise AnnotationError(f"case {item.case.external_id}: {exc}") from None
    with StagedVolumes() as staged, transaction.atomic():
        fields = _store_label(staged, item, data, source=Label.Source.EXPERT, rater=item.rater, modality="",
                              input=kind, created_by=user, source_name=f"drawn in annotation task {item.task_id}")
        label = Label.objects.filter(case=item.case, source=Label.Source.EXPERT, rater=item.rater, modality="",
                                     prediction_set=None).first()
        if label is None:
            label = Label.objects.create(**fields)
        else:
            for key, value in fields.items():
                setattr(label, key, value)
            label.save()
        AnnotationItem.objects.filter(pk=item.pk).update(drawing=label)
        item.drawing = label
    item.add_seconds(seconds)
    return label


def clustering_run_for(dataset):
    """The dataset's latest finished clustering run, or None."""
    return (ClusteringRun.objects.filter(dataset=dataset, status=ClusteringRun.Status.SUCCEEDED)
            .order_by("-finished_at", "-pk").first())


def make_ai_label(item, seconds=0.0):
    """Step 2 for this case from the radiologist's saved drawing, on the dataset's latest finished
    clustering run. Replaces their earlier AI label of this case (and its correction). Returns
    ``(label, result, server seconds)``."""
    t0 = time.perf_counter()
    case = item.case
    if item.drawing_id is None:
        raise AnnotationError(f"case {case.external_id}: save a drawing first; the AI label is made from it")
    run = clustering_run_for(case.dataset)
    if run is None:
        raise AnnotationError(f"dataset {case.dataset.name} has no finished clustering run; an admin launches "
                              "one under Runs → Generate labels (step 1), then this button works")
    cmap = run.cluster_maps.filter(case=case).first()
    if cmap is None:
        raise AnnotationError(f"clustering run #{run.pk} has no cluster map of case {case.external_id} (the case "
                              "was imported after it ran); an admin launches a new clustering run")
    drawing = item.drawing
    config = {k: v for k, v in refine_config().items() if k not in ("expert_rater", "splits")}
    params = RefineParams.from_dict({**config, "ignore_clusters": [0]})
    cluster_map = load_volume(cmap.path, kind="label").data.astype(np.int32)
    data = load_volume(drawing.path, kind="label").data
    result = refine_label(cluster_map, [data], params, raters=[drawing.rater], kinds=[drawing.input],
                          spacing=tuple(case.reference_image().spacing))
    if not result.label.any():  # an empty label to accept would read as "no tumour here"
        item.add_seconds(seconds)  # the time was spent all the same
        raise AnnotationError(f"case {case.external_id}: no AI label from this drawing: {_why_empty(result)}. "
                              "Mark more of the tumour (a larger part of it, or more slices) and make it again; "
                              "nothing was stored")
    with StagedVolumes() as staged, transaction.atomic():
        Label.objects.filter(case=case, source=Label.Source.AI, rater=item.rater, prediction_set=None).delete()
        label = Label.objects.create(**_store_label(
            staged, item, result.label.astype(np.uint8), source=Label.Source.AI, rater=item.rater,
            source_name=f"made on the annotation page from clustering run {run.pk}"))
        AnnotationItem.objects.filter(pk=item.pk).update(ai_label=label, ai_state=AnnotationItem.AIState.MADE)
        item.ai_label, item.ai_state = label, AnnotationItem.AIState.MADE
    item.add_seconds(seconds)
    return label, result, time.perf_counter() - t0


def _why_empty(result):
    statuses = {lesion.status for lesion in result.lesions}
    if "all_rejected" in statuses:
        return (f"every region grown from the clusters inside it was discarded, as larger than "
                f"{result.params.max_ratio:g} times the lesion it marks or mostly outside it")
    if "no_candidate" in statuses:
        return "no cluster of the clustering run (the background left out) covers enough of what it marks"
    return "it marks no tumour"


def review_ai_label(item, verdict, user, seconds=0.0):
    """``verdict``: "accepted" or "rejected"; recorded on the AI label (who, when) and on the item."""
    if item.ai_label_id is None:
        raise AnnotationError(f"case {item.case.external_id}: there is no AI label to review; make one first")
    if verdict not in (Label.Review.ACCEPTED, Label.Review.REJECTED):
        raise AnnotationError(f"verdict must be accepted or rejected, not {verdict!r}")
    with transaction.atomic():
        Label.objects.filter(pk=item.ai_label_id).update(review=verdict, reviewed_by=user, reviewed_at=timezone.now())
        corrected = Label.objects.filter(corrected_from_id=item.ai_label_id)
        if verdict == Label.Review.REJECTED:  # a rejected label's correction would be trained on otherwise
            corrected.delete()
            state = verdict
        else:  # accepting a corrected label accepts the correction, which stays what is trained on
            state = AnnotationItem.AIState.CORRECTED if corrected.exists() else verdict
        AnnotationItem.objects.filter(pk=item.pk).update(ai_state=state)
        item.ai_state = state
    item.add_seconds(seconds)


def save_correction(item, raw, user, seconds=0.0):
    """The radiologist's edit of the AI label, stored as a new AI label version (``corrected_from`` the
    original, which is kept and marked accepted-with-correction). Values must be 0/1."""
    if item.ai_label_id is None:
        raise AnnotationError(f"case {item.case.external_id}: there is no AI label to correct; make one first")
    data = read_drawing(raw, item, what="corrected AI label")
    try:
        check_input(data, Label.Input.OUTLINE)
    except InvalidInput as exc:
        raise AnnotationError(f"case {item.case.external_id}: the corrected AI label {exc}") from None
    original = item.ai_label
    with StagedVolumes() as staged, transaction.atomic():
        fields = _store_label(staged, item, data, source=Label.Source.AI, rater=item.rater, created_by=user,
                              source_name=f"corrected on the annotation page (task {item.task_id})",
                              review=Label.Review.ACCEPTED, reviewed_by=user, reviewed_at=timezone.now())
        Label.objects.filter(corrected_from=original).delete()
        correction = Label.objects.create(corrected_from=original, **fields)
        Label.objects.filter(pk=original.pk).update(review=Label.Review.ACCEPTED, reviewed_by=user,
                                                    reviewed_at=timezone.now())
        AnnotationItem.objects.filter(pk=item.pk).update(ai_state=AnnotationItem.AIState.CORRECTED)
        item.ai_state = AnnotationItem.AIState.CORRECTED
    item.add_seconds(seconds)
    return correction


def finish(item, status, reason="", seconds=0.0):
    """Mark the case done (needs a saved drawing) or skipped (needs a reason)."""
    if status == AnnotationItem.Status.DONE and item.drawing_id is None:
        raise AnnotationError(f"case {item.case.external_id}: save a drawing before marking it done, or skip it")
    reason = reason.strip()
    if status == AnnotationItem.Status.SKIPPED and not reason:
        raise AnnotationError(f"case {item.case.external_id}: say why it is skipped (e.g. no lesion visible)")
    AnnotationItem.objects.filter(pk=item.pk).update(status=status, skip_reason=reason[:300])
    item.status, item.skip_reason = status, reason[:300]
    item.add_seconds(seconds)


def cases_of(dataset, external_ids=None):
    cases = Case.objects.filter(dataset=dataset).order_by("external_id")
    return cases.filter(external_id__in=external_ids) if external_ids else cases
