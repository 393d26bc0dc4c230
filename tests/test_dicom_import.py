"""`import_dicom` and `export_labels --format dicom-seg` on phantom DICOM exports: cases round-trip exactly, a
damaged series refuses its whole case (naming patient and series) while the others import, nothing
identifying is stored, and SEGs go out and come back as the same voxels."""

import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from pydicom.uid import generate_uid

from pipeline.core.io.dicom_seg import read_seg
from pipeline.core.io.nifti import load_volume, save_nifti_atomic
from pipeline.core.phantoms import make_phantom_case
from pipeline.core.phantoms.dicom import quantize, write_mr_series, write_phantom_patient
from pipeline.datasets.dicom_import import series_hash
from pipeline.models import Case, Dataset, Image, Label
from tests.core.test_dicom import oblique
from tests.test_import import stored_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
MAPPING = ["--modality", "T1 FS CE*=t1fsce", "--modality", "t2*=t2"]


def write_patient(root, patient_id, case, *, affine=None, name="", birth_date=""):
    return write_phantom_patient(root, patient_id, case, affine=affine, patient_name=name, birth_date=birth_date)


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom_case(f"c{i}", size=32, depth=8, seed=i) for i in range(3)]


@pytest.fixture
def export(tmp_path, phantoms):
    root = tmp_path / "pacs"
    write_patient(root, "P001", phantoms[0], name="Doe^Jane", birth_date="19700101")
    write_patient(root, "P002", phantoms[1], affine=oblique(phantoms[1].affine))
    return root


def run(path, *args):
    from io import StringIO

    out = StringIO()
    call_command("import_dicom", str(path), "--dataset", "dcm", *MAPPING, "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_cases_round_trip_exactly_and_unmapped_series_are_listed(export, phantoms):
    out = run(export, "--split", "test")
    assert "dcm: 2 case(s) imported, 0 failed" in out and "4 image(s)" in out
    assert "2 series described 'localizer' (MR) match no modality mapping: skipped" in out
    assert sorted(Case.objects.values_list("external_id", "split")) == [("P001", "TEST"), ("P002", "TEST")]
    for case, affine in [(phantoms[0], phantoms[0].affine), (phantoms[1], oblique(phantoms[1].affine))]:
        pid = "P001" if case is phantoms[0] else "P002"
        images = {i.modality: i for i in Image.objects.filter(case__external_id=pid)}
        assert list(images) == ["t1fsce", "t2"] and images["t1fsce"].source_name == "series 2 'T1 FS CE axial'"
        for modality, image in images.items():
            stored = load_volume(image.path)
            np.testing.assert_array_equal(stored.data, quantize(case.images[modality])[1])
            np.testing.assert_allclose(stored.affine, affine, atol=1e-6)
            assert len(image.dicom_series) == 64 and image.import_note == ""
    # the same export again changes nothing
    assert "0 case(s) imported, 0 failed, 2 already there" in run(export, "--split", "TEST")


def test_a_damaged_series_refuses_its_whole_case_naming_patient_and_series(export, media):
    t2 = export / "P002" / "T2_TSE"
    sorted(t2.iterdir())[3].unlink()
    with pytest.raises(CommandError, match="1 case\\(s\\) were not imported: P002"):
        run(export)
    assert list(Case.objects.values_list("external_id", flat=True)) == ["P001"]
    assert Image.objects.count() == 2 and len(stored_files(media)) == 2


def test_refusal_message_names_patient_series_and_reason(export):
    from pipeline.datasets.dicom_import import DicomImportOptions, import_dicom, parse_modality_map

    sorted((export / "P001" / "T1_FS_CE_axial").iterdir())[2].unlink()
    report = import_dicom("dcm", export, DicomImportOptions(parse_modality_map(MAPPING[1::2])))
    errors = [str(i) for i in report.issues if i.level == "error"]
    assert errors == [f"ERROR P001: patient P001: series 2 'T1 FS CE axial': is missing 1 slice(s) between "
                      f"{errors[0].split('between ')[1]}"] and "(gap 8 mm, slice spacing 4 mm)" in errors[0]
    assert report.cases_imported == ["P002"] and report.cases_failed == ["P001"]


def test_two_series_on_one_modality_refuse_the_case(export, phantoms):
    write_mr_series(export / "P001" / "T2_again", phantoms[0].images["t2"], phantoms[0].affine, patient_id="P001",
                    study_uid=generate_uid(), series_number=9, description="T2 TSE repeat")
    from pipeline.datasets.dicom_import import DicomImportOptions, import_dicom, parse_modality_map

    report = import_dicom("dcm", export, DicomImportOptions(parse_modality_map(MAPPING[1::2])))
    assert report.cases_failed == ["P001"] and report.cases_imported == ["P002"]
    assert "2 series map to t2 (series 3 'T2 TSE', series 9 'T2 TSE repeat')" in str(report.issues)


def test_identity_stays_out_of_labelgen_and_hash_pseudonymises(export, media, settings):
    settings.LABELGEN_PSEUDONYM_KEY = "site-secret"
    out = run(export, "--case-name", "hash")
    assert "identifying tags (PatientBirthDate, PatientName) are present in 1 case(s)" in out
    assert "case names are pseudonyms" in out
    names = sorted(Case.objects.values_list("external_id", flat=True))
    assert len(names) == 2 and all(n.startswith("case-") for n in names) and "P001" not in str(names)
    # nothing of the patient in the database rows or the stored NIfTI files
    rows = str(list(Image.objects.values())) + str(list(Case.objects.values())) + str(list(Dataset.objects.values()))
    for secret in ("P001", "P002", "Doe", "Jane", "19700101"):
        assert secret not in rows
        for path in stored_files(media):
            import gzip

            assert secret.encode() not in gzip.decompress(path.read_bytes())
    # the same key gives the same names on a later import
    Case.objects.all().delete()
    run(export, "--case-name", "hash")
    assert sorted(Case.objects.values_list("external_id", flat=True)) == names


def test_patient_ids_as_names_are_flagged_and_a_mapping_csv_renames(export, tmp_path):
    out = run(export)
    assert "the case names are the PatientIDs: use --case-name hash or map" in out
    mapping = tmp_path / "map.csv"
    mapping.write_text("patient_id,case\nP001,knee-01\n")
    with pytest.raises(CommandError, match="were not imported: P002"):
        call_command("import_dicom", str(export), "--dataset", "mapped", *MAPPING, "--case-map", str(mapping),
                     "--no-progress")
    assert list(Case.objects.filter(dataset__name="mapped").values_list("external_id", flat=True)) == ["knee-01"]


def test_zip_and_by_study(export, tmp_path, phantoms):
    write_patient(export / "later", "P001", phantoms[2])  # a second study of P001 (new study UID)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in export.rglob("*.dcm"):
            z.write(path, str(path.relative_to(export)))
    run(archive, "--by-study")
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["P001_s1", "P001_s2", "P002_s1"]


def test_an_unreadable_header_is_listed_and_the_command_exits_non_zero(export):
    (export / "P002" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    with pytest.raises(CommandError, match="some files could not be read"):
        run(export)
    assert Case.objects.count() == 2  # the cases found were still imported


def test_bad_options_are_refused_before_anything_is_read(export):
    with pytest.raises(CommandError, match="--modality 'T2': write it as"):
        call_command("import_dicom", str(export), "--dataset", "d", "--modality", "T2")
    with pytest.raises(CommandError, match="--split 'later'"):
        call_command("import_dicom", str(export), "--dataset", "d", *MAPPING, "--split", "later")
    with pytest.raises(CommandError, match="no such file or folder"):
        call_command("import_dicom", str(export / "nope"), "--dataset", "d", *MAPPING)
    assert not Dataset.objects.exists()


def test_scan_lists_descriptions_without_patient_attributes(export):
    from io import StringIO

    out = StringIO()
    call_command("import_dicom", str(export), "--scan", stdout=out)
    text = out.getvalue()
    assert "2 patient(s)" in text and "'T2 TSE'" in text and "'localizer'" in text and "Doe" not in text


def store_label(case_name, source, data, rater="", pset=None):
    image = Image.objects.get(case__external_id=case_name, modality="t1fsce")
    path = Path(image.path).with_name(f"{source}-{case_name}.nii.gz")
    save_nifti_atomic(path, data.astype(np.uint8), np.asarray(image.affine))
    return Label.objects.create(case=image.case, source=source, rater=rater, prediction_set=pset,
                                file=str(path.relative_to(image.path.parents[len(Path(image.file).parts) - 1])),
                                sha256="0" * 64, shape=image.shape, spacing=image.spacing, affine=image.affine,
                                voxel_count=int(data.sum()), volume_ml=0.0)


@pytest.mark.parametrize("source", ["ai", "expert", "prediction"])
def test_seg_export_reads_back_as_the_label_on_the_source_grid(export, phantoms, tmp_path, source):
    from pipeline.models import PredictionSet

    run(export)
    pset = PredictionSet.objects.create(dataset=Dataset.objects.get(), name="unet-ai") if source == "prediction" else None
    for pid, case in [("P001", phantoms[0]), ("P002", phantoms[1])]:
        store_label(pid, source, case.truth, rater="r1" if source == "expert" else "", pset=pset)
    out = tmp_path / "segs"
    call_command("export_labels", "--dataset", "dcm", "--source", source, "--out", str(out), "--format",
                 "dicom-seg", "--dicom-source", str(export))
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 2 and not list(out.glob(".*"))
    for path, case, pid in zip(files, phantoms[:2], ["P001", "P002"], strict=True):
        assert path.name.startswith(pid)
        header = pydicom.dcmread(path, stop_before_pixels=True)
        t1 = Image.objects.get(case__external_id=pid, modality="t1fsce")
        assert series_hash(str(header.ReferencedSeriesSequence[0].SeriesInstanceUID)) == t1.dicom_series
        assert header.SegmentSequence[0].SegmentAlgorithmType == ("MANUAL" if source == "expert" else "AUTOMATIC")
        np.testing.assert_array_equal(read_seg(path, tuple(t1.shape), np.asarray(t1.affine)), case.truth)


def test_seg_export_refuses_without_source_and_names_missing_series(export, phantoms, tmp_path):
    run(export)
    store_label("P001", "ai", phantoms[0].truth)
    with pytest.raises(CommandError, match="--format dicom-seg needs --dicom-source"):
        call_command("export_labels", "--dataset", "dcm", "--source", "ai", "--out", str(tmp_path / "o"),
                     "--format", "dicom-seg")
    elsewhere = tmp_path / "other"
    write_patient(elsewhere, "P009", phantoms[2])
    with pytest.raises(CommandError, match="1 label\\(s\\) could not be written"):
        call_command("export_labels", "--dataset", "dcm", "--source", "ai", "--out", str(tmp_path / "o"),
                     "--format", "dicom-seg", "--dicom-source", str(elsewhere))
    assert not list((tmp_path / "o").iterdir())


def test_seg_from_pacs_becomes_an_expert_label(export, phantoms, tmp_path):
    """A SEG drawn on the T2 series (not the reference grid) arrives with its series, and a second SEG later."""
    from pipeline.core.io.dicom_files import scan_dicom
    from pipeline.core.io.dicom_seg import write_seg
    from pipeline.core.io.dicom_series import read_series

    t2 = next(s for s in scan_dicom(export / "P002").series if s.description == "T2 TSE")
    volume = read_series(t2)
    seg = write_seg(phantoms[1].truth, volume.affine, [pydicom.dcmread(f) for f in t2.files])
    (export / "P002" / "seg").mkdir()
    seg.save_as(export / "P002" / "seg" / "seg.dcm")
    run(export, "--rater", "pacs")
    label = Label.objects.get(case__external_id="P002")
    assert (label.source, label.rater, label.modality) == ("expert", "pacs", "t2")
    np.testing.assert_array_equal(load_volume(label.path, kind="label").data, phantoms[1].truth)

    t1 = next(s for s in scan_dicom(export / "P001").series if s.description == "T1 FS CE axial")
    later = tmp_path / "later"
    later.mkdir()
    write_seg(phantoms[0].truth, read_series(t1).affine, [pydicom.dcmread(f) for f in t1.files]).save_as(
        later / "seg.dcm")
    run(later, "--rater", "r2")
    label = Label.objects.get(case__external_id="P001")
    assert (label.rater, label.modality, label.case.split) == ("r2", "t1fsce", "TRAIN")
    np.testing.assert_array_equal(load_volume(label.path, kind="label").data, phantoms[0].truth)


def zipped(folder, target):
    with zipfile.ZipFile(target, "w") as z:
        for path in folder.rglob("*.dcm"):
            z.write(path, str(path.relative_to(folder)))
    return target


def test_web_upload_scans_then_imports_with_the_mapping(export, tmp_path, client_for, coordinator, reader):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from tests.factories import make_dataset

    dataset = make_dataset(name="web", n_cases=0, prediction_sets=())
    data = zipped(export, tmp_path / "pacs.zip").read_bytes()
    c = client_for(coordinator)
    scan = c.post(reverse("pipeline:dataset_dicom_scan", args=[dataset.pk]),
                  {"archive": SimpleUploadedFile("pacs.zip", data)}).json()
    rows = {r["description"]: r for r in scan["descriptions"]}
    assert scan["patients"] == 2 and rows["T2 TSE"]["guess"] == "t2" and rows["T1 FS CE axial"]["guess"] == "t1fsce"
    assert rows["localizer"]["guess"] == "" and rows["T2 TSE"]["series"] == 2 and "Doe" not in str(scan)
    url = reverse("pipeline:dataset_dicom_import", args=[dataset.pk])
    refused = c.post(url, {"archive": SimpleUploadedFile("pacs.zip", data), "modality": ["T2"]})
    assert refused.status_code == 400 and "write it as" in refused.json()["error"]
    response = c.post(url, {"archive": SimpleUploadedFile("pacs.zip", data), "split": "VAL", "case_name": "hash",
                            "modality": ["T1 FS CE axial=t1fsce", "T2 TSE=t2"]})
    body = response.json()
    assert response.status_code == 200 and len(body["cases_imported"]) == 2, body
    assert set(Case.objects.filter(dataset=dataset).values_list("split", flat=True)) == {"VAL"}
    assert client_for(reader).post(url, {"archive": SimpleUploadedFile("pacs.zip", data)}).status_code == 403
    missing = c.post(url, {"modality": ["T2 TSE=t2"]})
    assert missing.status_code == 400 and missing.json()["error"].startswith("archive:")


def test_api_imports_dicom_with_a_token(export, tmp_path, client, coordinator):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from accounts.tokens import new_token

    url = reverse("pipeline:api_import_dicom", args=["scripted"])
    data = zipped(export, tmp_path / "pacs.zip").read_bytes()
    assert client.post(url, {"archive": SimpleUploadedFile("a.zip", data)}).status_code == 401
    _, key = new_token(coordinator)
    auth = {"HTTP_AUTHORIZATION": f"Token {key}"}
    scan = client.post(url, {"archive": SimpleUploadedFile("a.zip", data), "scan": "1"}, **auth).json()
    assert {r["description"] for r in scan["descriptions"]} == {"T1 FS CE axial", "T2 TSE", "localizer"}
    assert not Dataset.objects.exists()
    response = client.post(url, {"archive": SimpleUploadedFile("a.zip", data),
                                 "modality": ["T1 FS CE*=t1fsce", "T2*=t2"],
                                 "case_map": "patient_id,case\nP001,k1\nP002,k2"}, **auth)
    assert response.status_code == 200, response.content
    assert sorted(Case.objects.values_list("external_id", flat=True)) == ["k1", "k2"]
    bad = client.post(url, {"archive": SimpleUploadedFile("a.zip", b"not a zip"), "modality": ["T2*=t2"]}, **auth)
    assert bad.status_code == 400 and "a.zip: not a zip file (a .zip of DICOM files" in bad.json()["error"]
