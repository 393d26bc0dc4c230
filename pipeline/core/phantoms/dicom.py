"""Phantom volumes written as DICOM MR series, as a PACS would export them (no Django).

Used by the tests, the demo and ``bench/``: they build series in any orientation, compressed or multi-frame,
and damage them on purpose (a missing or duplicated slice). The writer is the inverse of
:func:`pipeline.core.io.dicom_series.read_series`: ``(X, Y, Z)`` voxels with a RAS affine become one file per
slice (rows = Y, columns = X) with LPS ImagePositionPatient/ImageOrientationPatient.

>>> files = write_mr_series("dicom/P001/t2", case.images["t2"], case.affine, patient_id="P001",
...                         study_uid=study, series_number=2, description="T2 TSE")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

LPS = np.diag([-1.0, -1.0, 1.0])


def quantize(data, slope=0.5, intercept=-100.0):
    """``(stored int16, the values a reader must recover)`` for float voxels written with this rescale."""
    stored = np.clip(np.round((np.asarray(data, dtype=np.float64) - intercept) / slope), -32768, 32767)
    stored = stored.astype(np.int16)
    return stored, (stored.astype(np.float64) * slope + intercept).astype(np.float32)


def write_mr_series(folder, data, affine, *, patient_id, study_uid, series_number, description,
                    patient_name="", birth_date="", frame_of_reference_uid=None, series_uid=None,
                    slope=0.5, intercept=-100.0, transfer_syntax=None, multiframe=False) -> list[Path]:
    """Write ``data`` ``(X, Y, Z)`` on ``affine`` (RAS, 4x4) as an MR series under ``folder``.

    ``transfer_syntax``: a compressed UID (e.g. ``pydicom.uid.RLELossless``) compresses every slice;
    ``multiframe=True`` writes one Legacy Converted Enhanced MR instance instead of one file per slice.
    Returns the files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored, _ = quantize(data, slope, intercept)
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    row_dir, col_dir = LPS @ affine[:3, 0] / spacing[0], LPS @ affine[:3, 1] / spacing[1]
    series_uid = series_uid or generate_uid()
    frame_uid = frame_of_reference_uid or generate_uid()
    slices = []
    for k in range(stored.shape[2]):
        ds = _slice_header(patient_id, patient_name, birth_date, study_uid, series_uid, frame_uid, series_number,
                           description, k)
        ds.ImageOrientationPatient = [_ds(v) for v in np.r_[row_dir, col_dir]]
        ds.ImagePositionPatient = [_ds(v) for v in LPS @ (affine @ [0.0, 0.0, k, 1.0])[:3]]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing (Y), column spacing (X)
        ds.SliceThickness = _ds(spacing[2])
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds(slope), _ds(intercept), "US"
        ds.WindowCenter, ds.WindowWidth = _ds(float(data.mean())), _ds(max(float(np.ptp(data)), 1.0))
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        if transfer_syntax is not None:
            ds.compress(transfer_syntax)
        slices.append(ds)
    if multiframe:
        import highdicom as hd

        enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
            slices, series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=generate_uid(),
            instance_number=1)
        path = folder / "enhanced.dcm"
        enhanced.save_as(path, enforce_file_format=True)
        return [path]
    paths = []
    for k, ds in enumerate(slices):
        path = folder / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _ds(value):
    """A decimal string that keeps the value to within 1e-9 relative (DS holds at most 16 characters)."""
    return float(f"{float(value):.10g}")


def _slice_header(patient_id, patient_name, birth_date, study_uid, series_uid, frame_uid, series_number,
                  description, k):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.Manufacturer = "MR", "labelgen phantom"
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, patient_name, birth_date, "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
    ds.SeriesDate, ds.SeriesTime, ds.ContentDate, ds.ContentTime = "20260101", "120000", "20260101", "120000"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = series_number, k + 1, description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
    ds.EchoTrainLength, ds.RepetitionTime, ds.EchoTime, ds.MagneticFieldStrength = 1, 500.0, 10.0, 1.5
    ds.PositionReferenceIndicator, ds.BodyPartExamined, ds.PatientPosition = "", "PELVIS", "HFS"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


#: The series of a phantom patient as a PACS exports them: (SeriesNumber, SeriesDescription, phantom modality).
PACS_SERIES = ((2, "T1 FS CE axial", "t1fsce"), (3, "T2 TSE", "t2"))


def write_phantom_patient(root, patient_id, case, *, affine=None, patient_name="", birth_date="",
                          localizer=True) -> dict[str, Path]:
    """One phantom case as one patient's study: a T1 FS CE and a T2 series on one frame of reference, and a
    two-slice localizer that a mapping skips. ``affine`` (RAS) overrides the case's (e.g. an oblique one).
    Returns each phantom modality's series folder (``root/<patient_id>/<description>``)."""
    study, frame = generate_uid(), generate_uid()
    affine = case.affine if affine is None else affine
    folders = {}
    for number, description, modality in PACS_SERIES:
        folders[modality] = Path(root) / patient_id / description.replace(" ", "_")
        write_mr_series(folders[modality], case.images[modality], affine, patient_id=patient_id, study_uid=study,
                        series_number=number, description=description, patient_name=patient_name,
                        birth_date=birth_date, frame_of_reference_uid=frame)
    if localizer:
        write_mr_series(Path(root) / patient_id / "localizer", case.images["t2"][:, :, :2], affine,
                        patient_id=patient_id, patient_name=patient_name, birth_date=birth_date, study_uid=study,
                        series_number=1, description="localizer")
    return folders
