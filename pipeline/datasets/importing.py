"""The one validated import service behind the web upload, the command and the API.

Each case is all or nothing: every file of a case is loaded and validated first; only then are its
volumes written (temp file, then moved in place under a content-addressed name) and its rows created in
one transaction. A failing case leaves nothing behind; the other cases still import. The report names
every file and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from pipeline.core.io.manifest import ManifestEntry
from pipeline.core.io.names import check_name
from pipeline.core.io.nifti import VolumeError, check_label, load_volume, resample_to, same_grid, sha256_file
from pipeline.core.refinement.inputs import InvalidInput, check_input
from pipeline.datasets.storage import StagedVolumes
from pipeline.models import Case, Dataset, Image, Label, PredictionSet


@dataclass
class Issue:
    level: str  # "error" | "warning" | "info"
    case: str
    message: str
    file: str = ""

    def __str__(self):
        where = f"{self.case}: {self.file}: " if self.file else f"{self.case}: "
        return f"{self.level.upper()} {where}{self.message}"


@dataclass
class ImportReport:
    dataset: str
    cases_imported: list[str] = field(default_factory=list)
    cases_failed: list[str] = field(default_factory=list)
    cases_unchanged: list[str] = field(default_factory=list)
    images: int = 0
    labels: int = 0
    duplicates: int = 0
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self):
        return not self.cases_failed

    def add(self, level, case, message, file=""):
        self.issues.append(Issue(level, case, message, file))

    def summary(self):
        return (f"{self.dataset}: {len(self.cases_imported)} case(s) imported, {len(self.cases_failed)} failed, "
                f"{len(self.cases_unchanged)} already there; "
                f"{self.images} image(s), {self.labels} label(s) stored, {self.duplicates} duplicate file(s) "
                f"skipped; {sum(i.level == 'warning' for i in self.issues)} warning(s)")

    def to_dict(self):
        return {"dataset": self.dataset, "ok": self.ok, "summary": self.summary(),
                "cases_imported": self.cases_imported, "cases_failed": self.cases_failed,
                "cases_unchanged": self.cases_unchanged,
                "images": self.images, "labels": self.labels, "duplicates": self.duplicates,
                "issues": [vars(i) for i in self.issues]}


class CaseRejected(Exception):
    def __init__(self, message, file=""):
        super().__init__(message)
        self.file = file


@dataclass
class _Loaded:
    entry: ManifestEntry
    name: str
    sha256: str
    volume: object = None
    note: str = ""


def import_entries(dataset_name, entries, *, strict=False, max_voxels=None, user=None, progress=None,
                   names=None, report=None) -> ImportReport:
    """Import manifest entries into dataset ``dataset_name``, created with its first imported case (so a
    refused import leaves no empty dataset behind).

    ``names`` maps a file path to the name shown in messages (uploads live in temp files).
    ``progress(done_cases, total_cases, case)`` is called after each case. ``report``: an
    :class:`ImportReport` to add to (the DICOM import's, which already holds the cases it refused). Raises
    :class:`~pipeline.core.io.names.InvalidName` for a dataset name that breaks the name rule.
    """
    check_name(dataset_name, "dataset")
    max_voxels = max_voxels or settings.LABELGEN_MAX_VOXELS
    names = names or {}
    report = report or ImportReport(dataset_name)
    dataset = Dataset.objects.filter(name=dataset_name).first()
    grouped: dict[str, list[ManifestEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.case, []).append(entry)
    known = _known_hashes(dataset)
    for done, (case_id, case_entries) in enumerate(grouped.items(), start=1):
        try:
            loaded = _validate_case(dataset, case_id, case_entries, report, known, strict, max_voxels, names)
            if loaded is not None:
                dataset, n_images, n_labels = _store_case(dataset_name, user, case_id, case_entries, loaded)
                report.images += n_images
                report.labels += n_labels
                known.update({item.sha256: f"{case_id}/{item.name}" for item in loaded})
                report.cases_imported.append(case_id)
        except CaseRejected as exc:
            report.cases_failed.append(case_id)
            report.add("error", case_id, str(exc), exc.file)
        except VolumeError as exc:
            report.cases_failed.append(case_id)
            report.add("error", case_id, exc.reason, exc.filename)
        if progress:
            progress(done, len(grouped), case_id)
    return report


def _known_hashes(dataset):
    found = {}
    if dataset is None:
        return found
    for model in (Image, Label):
        for sha, name, case in model.objects.filter(case__dataset=dataset).values_list(
                "sha256", "source_name", "case__external_id"):
            found[sha] = f"{case}/{name}"
    return found


def _validate_case(dataset, case_id, entries, report, known, strict, max_voxels, names):
    splits = {e.split for e in entries}
    if len(splits) > 1:
        raise CaseRejected(f"rows disagree on the split ({', '.join(sorted(splits))})")
    existing = dataset and Case.objects.filter(dataset=dataset, external_id=case_id).first()
    if existing and existing.split != entries[0].split:
        raise CaseRejected(f"already imported with split {existing.split}, this manifest says {entries[0].split}")
    fresh, batch = [], {}
    for entry in sorted(entries, key=lambda e: (e.kind != "image", e.line)):
        name = names.get(str(entry.file), entry.file.name)
        if not Path(entry.file).is_file():
            raise CaseRejected("file not found", str(entry.file))
        sha = sha256_file(entry.file)
        if sha in known or sha in batch:
            report.duplicates += 1
            report.add("warning", case_id, f"same content as {known.get(sha) or batch[sha]}; not stored twice", name)
            continue
        batch[sha] = f"{case_id}/{name}"
        fresh.append(_Loaded(entry, name, sha))
    if not fresh:
        report.cases_unchanged.append(case_id)
        return None

    modalities = [i.entry.modality for i in fresh if i.entry.kind == "image"]
    repeated = sorted({m for m in modalities if modalities.count(m) > 1})
    if repeated:
        raise CaseRejected(f"modality {', '.join(repeated)} given more than once")
    existing_images = {img.modality: img for img in existing.images.all()} if existing else {}
    clash = sorted(set(modalities) & set(existing_images))
    if clash:
        raise CaseRejected(f"modality {', '.join(clash)} is already imported for this case (with other content)")
    if not modalities and not existing_images:
        raise CaseRejected("has a label but no image (a case needs at least one modality)", fresh[0].name)

    loaded = fresh
    for item in loaded:
        item.volume = load_volume(item.entry.file, max_voxels=max_voxels, name=item.name, kind=item.entry.kind)

    images = [i for i in loaded if i.entry.kind == "image"]
    if existing_images:
        ref_image = existing.reference_image()
        reference = _grid_of(ref_image)
    elif images:
        reference = images[0].volume
    else:
        return loaded
    originals = {i.entry.modality: i.volume for i in images}
    for item in images:
        if not same_grid(item.volume, reference):
            if strict:
                raise CaseRejected(f"modality {item.entry.modality} is on a different grid "
                                   f"({_grid_text(item.volume)}) than the first modality ({_grid_text(reference)}); "
                                   "refused because of --strict", item.name)
            item.note = f"resampled from {_grid_text(item.volume)} onto the first modality's grid"
            item.volume = resample_to(item.volume, reference, order=1)
            report.add("info", case_id, item.note, item.name)
    all_modalities = set(originals) | set(existing_images)
    for item in loaded:
        if item.entry.kind != "label":
            continue
        if item.entry.modality and item.entry.modality not in all_modalities:
            raise CaseRejected(f"label drawn on modality {item.entry.modality!r}, which this case does not have "
                               f"(it has {', '.join(sorted(all_modalities))})", item.name)
        drawn_on = originals.get(item.entry.modality) or reference
        if not same_grid(item.volume, drawn_on):
            raise CaseRejected(f"label is not on its image's grid: label {_grid_text(item.volume)}, image "
                               f"{_grid_text(drawn_on)}", item.name)
        data = check_label(item.volume)
        if item.entry.input != "outline":
            try:  # sparse input keeps its values (scribbles: 1 tumour, 2 background) and must fit its kind
                check_input(data, item.entry.input)
            except InvalidInput as exc:
                raise CaseRejected(str(exc), item.name) from None
            item.volume.data = data.astype(np.uint8)
            if drawn_on is not reference:
                item.volume = resample_to(item.volume, reference, order=0)
            continue
        if data.max() > 1:
            report.add("info", case_id, f"label values {sorted(np.unique(data).tolist())[:6]} made binary (>0)",
                       item.name)
        data = (data > 0).astype(np.uint8)
        item.volume.data = data
        if drawn_on is not reference:
            item.volume = resample_to(item.volume, reference, order=0)
    return loaded


@dataclass
class _Grid:
    """A stored image's grid, to compare and resample against without loading its voxels."""

    shape: tuple
    affine: np.ndarray
    spacing: tuple
    filename: str = ""


def _grid_of(image):
    return _Grid(tuple(image.shape), np.asarray(image.affine, dtype=np.float64), tuple(image.spacing))


def _grid_text(vol):
    spacing = "x".join(f"{s:g}" for s in vol.spacing)
    return f"{'x'.join(str(n) for n in vol.shape)} voxels of {spacing} mm"


def _store_case(dataset_name, user, case_id, entries, loaded):
    """Write the case's volumes and rows (the dataset's too, if new) in one transaction.

    Returns ``(dataset, images stored, labels stored)``.
    """
    n_images = n_labels = 0
    with StagedVolumes() as staged, transaction.atomic():
        dataset, _ = Dataset.objects.get_or_create(name=dataset_name, defaults={"created_by": user})
        case, _ = Case.objects.get_or_create(dataset=dataset, external_id=case_id,
                                             defaults={"split": entries[0].split})
        for item in loaded:
            vol, entry = item.volume, item.entry
            common = {"case": case, "sha256": item.sha256, "source_name": item.name[:255], "shape": list(vol.shape),
                      "spacing": [float(s) for s in vol.spacing], "affine": np.asarray(vol.affine).tolist()}
            if entry.kind == "image":
                Image.objects.create(
                    file=staged.store(vol.data, vol.affine), modality=entry.modality, dtype=vol.original_dtype,
                    dicom_series=entry.dicom_series,
                    intensity_min=float(vol.data.min()), intensity_max=float(vol.data.max()),
                    import_note=item.note[:300], **common)
                n_images += 1
            else:
                pset = None
                if entry.source == "prediction":
                    pset, _ = PredictionSet.objects.get_or_create(dataset=dataset, name=entry.prediction_set)
                voxels = int(np.count_nonzero(vol.data == 1))  # scribbles: the tumour strokes
                if Label.objects.filter(case=case, source=entry.source, modality=entry.modality, rater=entry.rater,
                                        prediction_set=pset).exists():
                    raise CaseRejected(f"a {entry.source} label{' by ' + entry.rater if entry.rater else ''}"
                                       f"{' on ' + entry.modality if entry.modality else ''}"
                                       f"{' in set ' + pset.name if pset else ''} already exists", item.name)
                Label.objects.create(
                    file=staged.store(vol.data, vol.affine, dtype=np.uint8), source=entry.source,
                    modality=entry.modality, rater=entry.rater, prediction_set=pset, voxel_count=voxels,
                    input=entry.input,
                    volume_ml=voxels * float(np.prod(vol.spacing)) / 1000.0, **common)
                n_labels += 1
    return dataset, n_images, n_labels
