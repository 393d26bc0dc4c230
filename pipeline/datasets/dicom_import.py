"""Importing DICOM series (and SEG expert labels) into a dataset: the command, the upload page and the API.

Each mapped series becomes a volume (:func:`pipeline.core.io.dicom_series.read_series`), written to a temporary
NIfTI and handed, as manifest entries, to the one import service (:func:`import_entries`): the same
all-or-nothing storage, duplicate detection and grid checks as a NIfTI import. A case whose series fail any
check is refused whole, naming the patient and the series; the other cases still import.

What labelgen keeps of a patient: the case name (the PatientID, or its pseudonym under ``--case-name``), the
series numbers and descriptions (as the volumes' source names) and a sha256 of each SeriesInstanceUID (to find
the source series again for a SEG export). No other header field is stored; the NIfTI files carry none.
"""

from __future__ import annotations

import fnmatch
import hashlib
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from pipeline.core.io.case_names import CaseNameError, CaseNamer
from pipeline.core.io.dicom_files import DicomTreeError, dicom_tree, scan_dicom
from pipeline.core.io.dicom_seg import read_seg, referenced_series_uids
from pipeline.core.io.dicom_series import SeriesError, read_series
from pipeline.core.io.manifest import SPLIT_ALIASES, ManifestEntry
from pipeline.core.io.names import InvalidName, check_name
from pipeline.core.io.nifti import VolumeError, save_nifti_atomic
from pipeline.datasets.importing import ImportReport, import_entries
from pipeline.models import Case, Image


class DicomImportError(ValueError):
    """The import as a whole is refused (bad option, unreadable archive); nothing was stored."""


def series_hash(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()


@dataclass
class DicomImportOptions:
    """``modalities``: (pattern, modality) pairs, in order; a SeriesDescription takes the first pattern it
    matches (case-insensitive, ``*`` and ``?`` wildcards). The first modality is the case's reference grid."""

    modalities: list[tuple[str, str]]
    split: str = "TRAIN"
    by_study: bool = False
    namer: CaseNamer = field(default_factory=CaseNamer)
    rater: str = ""
    strict: bool = False

    def modality_of(self, description: str) -> str | None:
        for pattern, modality in self.modalities:
            if fnmatch.fnmatchcase(description.lower(), pattern.lower()):
                return modality
        return None


def parse_modality_map(values) -> list[tuple[str, str]]:
    """``["T2 TSE=t2", "T1*FS*=t1fsce"]`` -> pairs; raises :class:`DicomImportError` naming the bad value."""
    pairs = []
    for value in values:
        pattern, sep, modality = str(value).rpartition("=")
        if not sep or not pattern.strip():
            raise DicomImportError(f"--modality {value!r}: write it as \"SERIES_DESCRIPTION=MODALITY\"")
        try:
            check_name(modality.strip(), "modality")
        except InvalidName as exc:
            raise DicomImportError(f"--modality {value!r}: {exc}") from None
        pairs.append((pattern.strip(), modality.strip()))
    if not pairs:
        raise DicomImportError("give at least one --modality \"SERIES_DESCRIPTION=MODALITY\"")
    return pairs


def parse_split(value: str) -> str:
    split = SPLIT_ALIASES.get(str(value).strip().lower(), str(value).strip().upper())
    if split not in ("TRAIN", "VAL", "TEST"):
        raise DicomImportError(f"--split {value!r}: must be TRAIN, VAL or TEST")
    return split


def parse_rater(value: str) -> str:
    value = str(value or "").strip()
    if value:
        try:
            check_name(value, "rater")
        except InvalidName as exc:
            raise DicomImportError(f"--rater: {exc}") from None
    return value


def pseudonym_key() -> bytes:
    return settings.LABELGEN_PSEUDONYM_KEY.encode()


def scan_summary(path) -> dict:
    """What a coordinator needs to write the mapping: the series descriptions found, per SOP class, with counts
    (no patient attributes). Raises :class:`DicomImportError` for an unreadable archive."""
    try:
        with dicom_tree(path) as root:
            scan = scan_dicom(root)
    except DicomTreeError as exc:
        raise DicomImportError(str(exc)) from None
    groups = defaultdict(lambda: {"series": 0, "files": 0})
    for s in scan.series:
        row = groups[(s.description, s.modality, s.kind)]
        row["series"] += 1
        row["files"] += len(s.files)
    return {"patients": len({s.patient_id for s in scan.series}), "not_dicom": scan.not_dicom,
            "unreadable": len(scan.unreadable),
            "descriptions": [{"description": d, "modality": m, "kind": k, **counts}
                             for (d, m, k), counts in sorted(groups.items())]}


def import_dicom(dataset_name, path, options: DicomImportOptions, *, user=None, progress=None,
                 names=None) -> ImportReport:
    """Import every mapped series under ``path`` (a folder or a .zip) into ``dataset_name``.

    ``names`` maps a path (the upload's temporary file) to the name messages use. Raises
    :class:`DicomImportError` if nothing can be read; per-case problems go into the report.
    """
    try:
        check_name(dataset_name, "dataset")
    except InvalidName as exc:
        raise DicomImportError(str(exc)) from None
    report = ImportReport(dataset_name)
    try:
        with dicom_tree(path) as root, tempfile.TemporaryDirectory(prefix="labelgen-dicom-nifti-") as tmp:
            scan = scan_dicom(root)
            shown = (lambda p: str(Path(p).relative_to(root))) if Path(path).is_dir() else (lambda p: Path(p).name)
            for bad in scan.unreadable:
                report.add("error", "-", bad.reason, shown(bad.path))
            entries, entry_names, identifying = _build_entries(dataset_name, scan, options, report, Path(tmp))
            if not scan.series:
                raise DicomImportError(f"{(names or {}).get(str(path), Path(path).name)}: no DICOM series found "
                                       f"({scan.not_dicom} file(s) that are not DICOM)")
            import_entries(dataset_name, entries, strict=options.strict, user=user, progress=progress,
                           names=entry_names, report=report)
    except DicomTreeError as exc:
        raise DicomImportError(str(exc)) from None
    if identifying:
        tags = ", ".join(sorted({t for tags in identifying.values() for t in tags}))
        advice = ("the case names are pseudonyms" if options.namer.pseudonymises else
                  "the case names are the PatientIDs: use --case-name hash or map to pseudonymise them")
        report.add("warning", "-", f"identifying tags ({tags}) are present in {len(identifying)} case(s); labelgen "
                                   f"stored none of them, {advice}")
    return report


def _build_entries(dataset_name, scan, options, report, tmp):
    """Read each case's mapped series and SEGs into temporary NIfTI files; refuse a case whole on any error.

    Returns ``(entries, names, identifying)``: manifest entries, the names for messages, and the identifying
    tags found per case."""
    cases, skipped, segs = defaultdict(list), defaultdict(int), []
    for s in scan.series:
        if s.kind == "seg":
            segs.append(s)
        elif s.kind == "rtstruct":
            report.add("warning", "-", f"{s.label} is an RTSTRUCT: not imported (no well-kept RTSTRUCT-to-mask "
                                       "reader is installed; export the contours as DICOM SEG)")
        elif options.modality_of(s.description) is None:
            skipped[(s.description, s.modality)] += 1
        else:
            cases[s.study_uid if options.by_study else s.patient_id].append(s)
    for (description, modality), n in sorted(skipped.items()):
        report.add("warning", "-", f"{n} series described {description!r} ({modality or 'no modality'}) match no "
                                   "modality mapping: skipped")
    entries, names, identifying, native, refused = [], {}, {}, {}, set()
    study_index = _study_numbers(cases) if options.by_study else {}
    for key, series_list in cases.items():
        patient = series_list[0].patient_id or "(no PatientID)"
        try:
            case = options.namer(study_index.get(key, key))
        except CaseNameError as exc:
            refused.update(s.uid for s in series_list)
            report.cases_failed.append(key)
            report.add("error", key, f"patient {patient}: {'StudyInstanceUID' if options.by_study else 'PatientID'} "
                                     f"{exc}")
            continue
        try:
            case_entries = _case_entries(case, series_list, options, tmp, names, native)
        except (SeriesError, VolumeError) as exc:
            refused.update(s.uid for s in series_list)
            report.cases_failed.append(case)
            report.add("error", case, f"patient {patient}: {exc}")
            continue
        entries.extend(case_entries)
        found = set().union(*(s.identifying for s in series_list))
        if found:
            identifying[case] = found
    entries.extend(_seg_entries(dataset_name, segs, options, report, tmp, names, native, refused,
                                {e.case for e in entries}))
    failed = set(report.cases_failed)  # a SEG that fails refuses its whole case
    return [e for e in entries if e.case not in failed], names, identifying


def _study_numbers(cases):
    """With ``--by-study`` and the patient-id rule, a patient's studies become ``<PatientID>_s1``, ``_s2``, ...
    in StudyDate order (the date itself is not kept)."""
    by_patient = defaultdict(list)
    for study_uid, series_list in cases.items():
        by_patient[series_list[0].patient_id].append((series_list[0].study_date, study_uid))
    numbers = {}
    for patient, studies in by_patient.items():
        for k, (_, study_uid) in enumerate(sorted(studies), start=1):
            numbers[study_uid] = f"{patient}_s{k}"
    return numbers


def _case_entries(case, series_list, options, tmp, names, native):
    by_modality = defaultdict(list)
    for s in series_list:
        by_modality[options.modality_of(s.description)].append(s)
    order = [m for _, m in options.modalities]
    entries = []
    for modality in sorted(by_modality, key=order.index):
        found = sorted(by_modality[modality], key=lambda s: (s.number or 0, s.uid))
        if len(found) > 1:
            raise SeriesError(f"{len(found)} series map to {modality} ({', '.join(s.label for s in found)}); "
                              "narrow the --modality pattern or remove the extra series")
        series = found[0]
        try:
            volume = read_series(series, max_voxels=settings.LABELGEN_MAX_VOXELS)
        except SeriesError as exc:
            raise SeriesError(f"{series.label}: {exc}") from None
        file = tmp / f"{len(names):05d}.nii"
        save_nifti_atomic(file, volume.data, volume.affine)
        names[str(file)] = series.label
        native[series.uid] = (case, modality, volume.shape, volume.affine)
        entries.append(ManifestEntry(line=0, case=case, file=file, kind="image", modality=modality,
                                     split=options.split, dicom_series=series_hash(series.uid)))
    return entries


def _seg_entries(dataset_name, segs, options, report, tmp, names, native, refused, imported_cases):
    """SEGs become expert labels of the case whose series they reference: one imported now, or earlier."""
    entries = []
    for seg in segs:
        for path, header in zip(seg.files, seg.headers, strict=True):
            uids = referenced_series_uids(header)
            if uids & refused:
                report.add("warning", "-", f"SEG {seg.label}: not imported, its series' case was refused")
                continue
            target = _seg_target(dataset_name, uids, native)
            if target is None:
                report.add("warning", "-", f"SEG {seg.label} references no series imported now or before: skipped")
                continue
            case, modality, shape, affine = target
            if case in report.cases_failed:
                continue
            try:
                mask = read_seg(path, shape, affine)
            except (SeriesError, ValueError) as exc:
                report.cases_failed.append(case)
                report.add("error", case, f"SEG {seg.label}: {exc}")
                continue
            file = tmp / f"{len(names):05d}.nii.gz"
            save_nifti_atomic(file, mask, affine)
            names[str(file)] = f"SEG {seg.label}"
            split = options.split if case in imported_cases else _case_split(dataset_name, case)
            entries.append(ManifestEntry(line=0, case=case, file=file, kind="label", source="expert",
                                         modality=modality, rater=options.rater, split=split))
    return entries


def _seg_target(dataset_name, uids, native):
    for uid in uids:
        if uid in native:
            return native[uid]
    image = (Image.objects.filter(case__dataset__name=dataset_name, dicom_series__in=[series_hash(u) for u in uids])
             .select_related("case").order_by("id").first())
    if image is None:
        return None
    return image.case.external_id, image.modality, tuple(image.shape), np.asarray(image.affine, dtype=np.float64)


def _case_split(dataset_name, case):
    found = Case.objects.filter(dataset__name=dataset_name, external_id=case).values_list("split", flat=True).first()
    return found or "TRAIN"


def guess_modality(description: str, modalities) -> str:
    """The known modality whose name the description holds, ignoring case and separators ('T1 FS CE axial' ->
    't1fsce'); the longest name wins, so 't1fsce' beats 't1'. Empty if none: the coordinator decides."""
    compact = "".join(ch for ch in description.lower() if ch.isalnum())
    for modality in sorted(modalities, key=len, reverse=True):
        if modality.lower() in compact:
            return modality
    return ""
