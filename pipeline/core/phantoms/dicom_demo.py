"""A PACS-style DICOM export of phantom patients, zipped, as the demo imports it (no Django).

Four patients (one scanned double-oblique), named and dated as a real export would be, each with a T1 FS CE,
a T2 and a localizer series; the first patient also has a rough outline drawn on its T2 series, stored as a
DICOM SEG (as a PACS segmentation tool saves it).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom

from pipeline.core.phantoms.case import make_phantom_case
from pipeline.core.phantoms.dicom import write_phantom_patient


def tilted(affine, angle=0.35):
    """``affine`` rotated about x, then y by half the angle, about the volume's corner (a double-oblique scan)."""
    rx = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    ry = np.array([[np.cos(angle / 2), 0, np.sin(angle / 2)], [0, 1, 0], [-np.sin(angle / 2), 0, np.cos(angle / 2)]])
    out = np.array(affine, dtype=np.float64)
    out[:3, :3] = ry @ rx @ out[:3, :3]
    return out


def write_pacs_export(folder, *, n_patients=4, size=64, depth=12, seed=40) -> Path:
    """Write ``folder/pacs.zip`` (and leave its files under ``folder/pacs``); returns the zip's path."""
    from pipeline.core.io.dicom_files import scan_dicom
    from pipeline.core.io.dicom_seg import SegmentInfo, write_seg
    from pipeline.core.io.dicom_series import read_series

    folder = Path(folder)
    pacs = folder / "pacs"
    shutil.rmtree(pacs, ignore_errors=True)
    for i in range(n_patients):
        case = make_phantom_case(f"dicom{i}", size=size, depth=depth, seed=seed + i)
        affine = tilted(case.affine) if i == n_patients - 1 else None
        series = write_phantom_patient(pacs, f"PHANTOM-{i + 1:03d}", case, affine=affine,
                                       patient_name=f"Phantom^Patient{i + 1}", birth_date="19800101")
        if i == 0:
            t2 = scan_dicom(series["t2"]).series[0]
            outline = case.rater_labels[("r1", "t2")]
            seg = write_seg(outline, read_series(t2).affine, [pydicom.dcmread(f) for f in t2.files],
                            SegmentInfo(label="Tumour outline", series_description="PACS outline r1"))
            (pacs / "PHANTOM-001" / "SEG").mkdir()
            seg.save_as(pacs / "PHANTOM-001" / "SEG" / "outline.dcm", enforce_file_format=True)
    archive = folder / "pacs.zip"
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(pacs.rglob("*.dcm")):
            z.write(path, str(path.relative_to(pacs)))
    tmp.replace(archive)
    return archive
