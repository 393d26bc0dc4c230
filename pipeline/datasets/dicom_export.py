"""Labels as DICOM SEG, each referencing the source series its case was imported from (the export command)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydicom

from pipeline.core.io.dicom_files import DicomTreeError, dicom_tree, scan_dicom
from pipeline.core.io.dicom_seg import SegmentInfo, write_seg
from pipeline.core.io.dicom_series import SeriesError
from pipeline.core.io.nifti import load_volume
from pipeline.datasets.dicom_import import series_hash
from pipeline.models import Label


class SegExportError(ValueError):
    pass


@dataclass
class SegExportResult:
    written: list[Path]
    failed: list[str]  # "<label file name>: reason"


def segment_info(label) -> SegmentInfo:
    """How a SEG describes a label: drawn (expert, truth) or made by labelgen (AI label, prediction)."""
    if label.source == Label.Source.AI:
        return SegmentInfo(label="Tumour (AI-assisted)", algorithm="labelgen AI-assisted label",
                           series_description="labelgen AI-assisted label")
    if label.source == Label.Source.PREDICTION:
        name = label.prediction_set.name if label.prediction_set_id else "prediction"
        return SegmentInfo(label="Tumour (predicted)", algorithm=f"labelgen {name}"[:64],
                           series_description=f"labelgen prediction {name}"[:64])
    rater = f" {label.rater}" if label.rater else ""
    return SegmentInfo(label=f"Tumour ({label.source}{rater})"[:64],
                       series_description=f"labelgen {label.source} label{rater}"[:64])


def export_seg(labels, source, out: Path, file_name) -> SegExportResult:
    """Write one SEG per label into ``out``; ``source`` is the DICOM folder or zip the cases came from.

    ``file_name(label)`` gives each output name. Each file is written to a temp name and moved in place; a label
    whose source series is missing, or whose grid is not that series', is listed in ``failed``.
    """
    try:
        with dicom_tree(source) as root:
            by_hash = {series_hash(s.uid): s for s in scan_dicom(root).series if s.kind == "image"}
            result = SegExportResult([], [])
            for label in labels:
                name = file_name(label)
                try:
                    result.written.append(_write_one(label, by_hash, out / name))
                except SegExportError as exc:
                    result.failed.append(f"{name}: {exc}")
            return result
    except DicomTreeError as exc:
        raise SegExportError(str(exc)) from None


def _write_one(label, by_hash, target):
    reference = label.case.reference_image()
    if reference is None or not reference.dicom_series:
        raise SegExportError(f"case {label.case.external_id} was not imported from DICOM (no source series known)")
    series = by_hash.get(reference.dicom_series)
    if series is None:
        raise SegExportError(f"the source series of case {label.case.external_id} ({reference.modality}, "
                             f"{reference.source_name}) is not under --dicom-source")
    volume = load_volume(label.path, kind="label")
    try:
        seg = write_seg(volume.data, volume.affine, [pydicom.dcmread(f) for f in series.files], segment_info(label))
    except (SeriesError, ValueError) as exc:
        raise SegExportError(str(exc)) from None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        seg.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
