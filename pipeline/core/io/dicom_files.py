"""Finding DICOM series in a folder tree or a zip, from their headers only (no Django, no pixel data).

>>> with dicom_tree("export.zip") as root:           # a zip is unpacked to a temporary folder
...     found = scan_dicom(root)
>>> [(s.patient_id, s.number, s.description, len(s.files)) for s in found.series]
[('P001', 3, 'T2 TSE', 32), ...]

Every file is opened with pydicom (``stop_before_pixels``). Files that are not DICOM at all (no ``DICM``
preamble: READMEs, thumbnails) are counted and skipped; DICOM files whose header cannot be read are listed
with the reason; a DICOMDIR is skipped (its series are found from the files themselves).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

#: SOP classes read as images (single-frame and enhanced/legacy-converted multi-frame, MR and CT).
IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

#: Attributes that identify a patient beyond the PatientID (PS3.15 Basic Profile, the ones seen in MR exports).
IDENTIFYING_TAGS = ("PatientName", "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers",
                    "OtherPatientIDs", "OtherPatientNames", "PatientMotherBirthName", "PatientBirthName")

#: A zip may unpack to at most this many bytes (a zip bomb is refused before anything is written).
MAX_UNPACKED_BYTES = 8 * 1024**3


class DicomTreeError(ValueError):
    """The folder or zip as a whole cannot be read (not found, not a zip, unsafe or too large)."""


@dataclass
class UnreadableFile:
    path: Path
    reason: str


@dataclass
class DicomSeries:
    """One series' headers. ``files`` and ``headers`` are in the same order (as found)."""

    uid: str
    patient_id: str
    study_uid: str
    number: int | None
    description: str
    modality: str
    sop_class: str
    study_date: str = ""
    files: list[Path] = field(default_factory=list)
    headers: list[pydicom.Dataset] = field(default_factory=list)
    identifying: set[str] = field(default_factory=set)

    @property
    def kind(self) -> str:
        """``image``, ``seg``, ``rtstruct`` or ``other``."""
        if self.sop_class in IMAGE_SOP_CLASSES:
            return "image"
        return {SEG_SOP_CLASS: "seg", RTSTRUCT_SOP_CLASS: "rtstruct"}.get(self.sop_class, "other")

    @property
    def sop_class_name(self) -> str:
        return IMAGE_SOP_CLASSES.get(self.sop_class) or UID(self.sop_class).name or self.sop_class

    @property
    def label(self) -> str:
        """How messages name the series: number and description, never a file path (paths may hold names)."""
        number = f"series {self.number}" if self.number is not None else "series (no number)"
        return f"{number} '{self.description}'" if self.description else number


@dataclass
class ScanResult:
    series: list[DicomSeries]
    not_dicom: int = 0
    unreadable: list[UnreadableFile] = field(default_factory=list)


@contextmanager
def dicom_tree(path, *, max_unpacked_bytes=MAX_UNPACKED_BYTES):
    """Yield a folder holding the DICOM files of ``path`` (a folder, yielded as is, or a .zip, unpacked to a
    temporary folder removed afterwards). Raises :class:`DicomTreeError` naming the problem."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise DicomTreeError(f"{path}: no such file or folder")
    if not zipfile.is_zipfile(path):
        raise DicomTreeError(f"{path.name}: not a zip file (a .zip of DICOM files, or a folder of them, is needed)")
    tmp = Path(tempfile.mkdtemp(prefix="labelgen-dicom-"))
    try:
        _unpack(path, tmp, max_unpacked_bytes)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unpack(path, target, max_bytes):
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        total = sum(m.file_size for m in members)
        if total > max_bytes:
            raise DicomTreeError(f"{path.name}: unpacks to {total / 1024**3:.1f} GiB (at most "
                                 f"{max_bytes / 1024**3:.1f} GiB)")
        for number, member in enumerate(members):
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if member.filename.startswith("/") or ".." in parts:
                raise DicomTreeError(f"{path.name}: member {member.filename[:80]!r} points outside the archive")
            # Members are stored under a counter, not their names: names may hold patient names.
            with archive.open(member) as src, open(target / f"{number:07d}.dcm", "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)


def scan_dicom(root) -> ScanResult:
    """Group every DICOM file under ``root`` by SeriesInstanceUID (headers only)."""
    by_uid: dict[str, DicomSeries] = {}
    result = ScanResult(series=[])
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            result.not_dicom += 1
            continue
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on a damaged header
            result.unreadable.append(UnreadableFile(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})"))
            continue
        sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
        if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if not uid:
            result.unreadable.append(UnreadableFile(path, "no SeriesInstanceUID"))
            continue
        series = by_uid.get(uid)
        if series is None:
            number = ds.get("SeriesNumber")
            series = by_uid[uid] = DicomSeries(
                uid=uid, patient_id=str(ds.get("PatientID", "") or "").strip(),
                study_uid=str(ds.get("StudyInstanceUID", "")), number=int(number) if number not in (None, "") else None,
                description=str(ds.get("SeriesDescription", "") or "").strip(), modality=str(ds.get("Modality", "")),
                sop_class=sop_class, study_date=str(ds.get("StudyDate", "") or ""))
        series.files.append(path)
        series.headers.append(ds)
        series.identifying.update(tag for tag in IDENTIFYING_TAGS if str(ds.get(tag, "") or "").strip())
    result.series = sorted(by_uid.values(), key=lambda s: (s.patient_id, s.study_uid, s.number or 0, s.uid))
    return result
