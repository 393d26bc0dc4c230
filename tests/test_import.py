"""The import service and commands: every bad input gets a message naming file and reason, and a
failing case stores nothing (no rows, no files)."""

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from pipeline.core.io.manifest import ManifestEntry, read_manifest
from pipeline.core.phantoms import write_phantom_dataset, write_reference_manifest
from pipeline.datasets.importing import import_entries
from pipeline.models import Case, Dataset, Image, Label

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])



def stored_files(media):
    root = Path(media) / "volumes"
    return sorted(p for p in root.rglob("*.nii.gz") if "incoming" not in p.parts) if root.exists() else []


def nii(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def entry(file, case="c1", kind="image", modality="t1fsce", source="", rater="", split="TRAIN", pset=""):
    return ManifestEntry(line=2, case=case, file=Path(file), kind=kind, modality=modality, source=source,
                         rater=rater, prediction_set=pset, split=split)


@pytest.fixture
def good(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (16, 16, 6)).astype(np.float32)
    mask = np.zeros((16, 16, 6), np.uint8)
    mask[5:10, 5:10, 2:4] = 1
    return {"t1": nii(tmp_path / "c1_t1fsce.nii.gz", img), "t2": nii(tmp_path / "c1_t2.nii.gz", img * 2),
            "label": nii(tmp_path / "c1_r1_t1fsce_label.nii.gz", mask), "img": img, "mask": mask}


def assert_rejected(report, media, *fragments):
    assert not report.ok and report.cases_failed == ["c1"]
    errors = [str(i) for i in report.issues if i.level == "error"]
    assert len(errors) == 1, errors
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert not Case.objects.exists() and not Image.objects.exists() and not Label.objects.exists()
    assert stored_files(media) == []


def test_good_case_imports_with_metadata(good, media):
    report = import_entries("ds", [entry(good["t1"]), entry(good["t2"], modality="t2"),
                                   entry(good["label"], kind="label", source="expert", rater="r1")])
    assert report.ok and report.images == 2 and report.labels == 1
    label = Label.objects.get()
    assert label.voxel_count == 50 and label.volume_ml == pytest.approx(50 * 3 / 1000)
    image = Image.objects.get(modality="t1fsce")
    assert image.shape == [16, 16, 6] and image.spacing == [1.0, 1.0, 3.0]
    assert image.intensity_min == pytest.approx(float(good["img"].min()))
    assert len(stored_files(media)) == 3
    assert all(p.name.startswith(p.parent.name) for p in stored_files(media))  # content-addressed


def test_not_nifti(good, tmp_path, media):
    bad = tmp_path / "junk.nii.gz"
    bad.write_bytes(b"this is not an image at all" * 20)
    report = import_entries("ds", [entry(good["t1"]), entry(bad, modality="t2")])
    assert_rejected(report, media, "junk.nii.gz")


def test_truncated_file(good, tmp_path, media):
    raw = Path(good["t2"]).read_bytes()
    cut = tmp_path / "cut.nii"
    cut.write_bytes(gzip.decompress(raw)[:600])
    assert_rejected(import_entries("ds", [entry(good["t1"]), entry(cut, modality="t2")]), media, "cut.nii", "trunc")


def test_corrupt_gzip(good, tmp_path, media):
    raw = bytearray(Path(good["t2"]).read_bytes())
    raw[40:80] = b"\x00" * 40
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(bytes(raw))
    assert_rejected(import_entries("ds", [entry(good["t1"]), entry(bad, modality="t2")]), media, "corrupt.nii.gz")


def test_4d_single_volume_is_squeezed_but_two_volumes_refused(good, tmp_path, media):
    one = nii(tmp_path / "one.nii.gz", good["img"][..., None])
    assert import_entries("ds", [entry(good["t1"], case="c0"), entry(one, case="c0", modality="t2")]).ok
    assert Image.objects.get(modality="t2").shape == [16, 16, 6]
    two = nii(tmp_path / "two.nii.gz", np.stack([good["img"]] * 2, axis=-1) + 1)
    report = import_entries("ds2", [entry(two, case="c1")])
    assert not report.ok and "two.nii.gz" in str(report.issues[0]) and "4" in report.issues[0].message
    assert not Case.objects.filter(external_id="c1").exists()


def test_non_finite_values(good, tmp_path, media):
    img = good["img"].copy()
    img[3, 3, 3] = np.nan
    bad = nii(tmp_path / "nan.nii.gz", img)
    assert_rejected(import_entries("ds", [entry(good["t1"]), entry(bad, modality="t2")]), media, "nan.nii.gz",
                    "finite")


def test_absurd_spacing_and_too_many_voxels(good, tmp_path, media):
    raw = bytearray(nib.Nifti1Image(good["img"], AFFINE).to_bytes())
    raw[80:84] = np.float32(-2.0).tobytes()  # pixdim[1]: nibabel would "fix" it on save, so patch the bytes
    bad = tmp_path / "negspacing.nii"
    bad.write_bytes(bytes(raw))
    assert_rejected(import_entries("ds", [entry(good["t1"]), entry(bad, modality="t2")]), media, "negspacing")
    report = import_entries("ds", [entry(good["t1"])], max_voxels=1000)
    assert_rejected(report, media, "c1_t1fsce.nii.gz", "1,536 voxels")


def test_gzip_bomb(good, tmp_path, media):
    header = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), AFFINE)
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(header.to_bytes())
        zeros = b"\x00" * (1 << 20)
        for _ in range(60):
            f.write(zeros)
    assert bomb.stat().st_size < 200_000
    assert_rejected(import_entries("ds", [entry(good["t1"]), entry(bomb, modality="t2")]), media, "bomb.nii.gz")


def test_modalities_on_different_grids_resampled_or_refused_when_strict(good, tmp_path, media):
    coarse = nii(tmp_path / "coarse_t2.nii.gz", good["img"][::2, ::2], np.diag([2.0, 2.0, 3.0, 1.0]))
    strict = import_entries("ds", [entry(good["t1"]), entry(coarse, modality="t2")], strict=True)
    assert_rejected(strict, media, "coarse_t2.nii.gz", "different grid", "--strict")
    report = import_entries("ds", [entry(good["t1"]), entry(coarse, modality="t2")])
    assert report.ok
    t2 = Image.objects.get(modality="t2")
    assert t2.shape == [16, 16, 6] and "resampled" in t2.import_note
    assert any("resampled" in i.message for i in report.issues)


def test_label_not_on_its_image_grid(good, tmp_path, media):
    shifted = nii(tmp_path / "shifted_label.nii.gz", good["mask"], np.diag([1.0, 1.0, 3.5, 1.0]))
    report = import_entries("ds", [entry(good["t1"]), entry(shifted, kind="label", source="expert")])
    assert_rejected(report, media, "shifted_label.nii.gz", "not on its image's grid")


def test_label_not_integer(good, tmp_path, media):
    soft = nii(tmp_path / "soft_label.nii.gz", good["mask"].astype(np.float32) * 0.5)
    report = import_entries("ds", [entry(good["t1"]), entry(soft, kind="label", source="expert")])
    assert_rejected(report, media, "soft_label.nii.gz", "integer")


def test_duplicate_files_reported_not_stored_twice(good, tmp_path, media):
    copy = tmp_path / "copy_t2.nii.gz"
    copy.write_bytes(Path(good["t1"]).read_bytes())
    report = import_entries("ds", [entry(good["t1"]), entry(copy, modality="t2")])
    assert report.ok and report.duplicates == 1 and Image.objects.count() == 1
    assert "copy_t2.nii.gz" in str(report.issues[0]) and "not stored twice" in report.issues[0].message
    again = import_entries("ds", [entry(good["t1"])])
    assert again.cases_unchanged == ["c1"] and Image.objects.count() == 1


def test_case_with_label_but_no_image(good, media):
    report = import_entries("ds", [entry(good["label"], kind="label", source="expert")])
    assert_rejected(report, media, "c1_r1_t1fsce_label.nii.gz", "label but no image")


def test_one_bad_case_does_not_stop_the_others(good, tmp_path, media):
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"nope")
    report = import_entries("ds", [entry(good["t1"], case="ok1"), entry(bad, case="c1")])
    assert report.cases_imported == ["ok1"] and report.cases_failed == ["c1"]
    assert list(Case.objects.values_list("external_id", flat=True)) == ["ok1"]
    assert len(stored_files(media)) == 1


def test_phantom_manifest_imports_and_exports_identical(tmp_path, media):
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=3, size=32, depth=8, seed=1)
    call_command("import_cases", str(manifest), dataset="ph", no_progress=True)
    ds = Dataset.objects.get(name="ph")
    assert ds.cases.count() == 3 and ds.modalities() == ["t1fsce", "t2"]
    assert Label.objects.filter(source="expert").count() == 3 * 3 * 2
    out = tmp_path / "export"
    call_command("export_labels", dataset="ph", source="expert", out=str(out))
    call_command("export_labels", dataset="ph", source="truth", out=str(out))
    for row in read_manifest(manifest).entries:
        if row.kind != "label":
            continue
        name = f"{row.case}_truth.nii.gz" if row.source == "truth" else f"{row.case}_expert_{row.rater}_{row.modality}.nii.gz"
        original, exported = nib.load(row.file), nib.load(out / name)
        assert np.array_equal(np.asarray(original.dataobj), np.asarray(exported.dataobj)), name
        assert np.allclose(original.affine, exported.affine), name


def test_reference_format_manifest_pairs_by_order_with_warning(tmp_path, media, capsys):
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=3, size=32, depth=8, seed=2)
    ref = write_reference_manifest(manifest, tmp_path / "ph" / "reference.csv", rater="r2")
    call_command("import_cases", str(ref), dataset="ref", no_progress=True)
    assert "paired by row order" in capsys.readouterr().err
    assert Case.objects.filter(dataset__name="ref").count() == 3
    assert set(Label.objects.values_list("modality", flat=True)) == {"t1fsce", "t2"}


def test_manifest_errors_name_the_line(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("case,file,modality,kind,source\nc1,a.nii.gz,t2,image,\nc1,b.nii.gz,t2,label,guess\n")
    with pytest.raises(CommandError, match=r"m.csv, line 3: unknown source 'guess'"):
        call_command("import_cases", str(bad), dataset="x", no_progress=True)
    bad.write_text("name,path\nx,y\n")
    with pytest.raises(CommandError, match="line 1: missing column"):
        call_command("import_cases", str(bad), dataset="x", no_progress=True)


def test_import_command_fails_when_a_case_fails(good, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case,file,modality,kind\nc1,{good['t1']},t1fsce,image\nc2,missing.nii.gz,t2,image\n")
    with pytest.raises(CommandError, match="1 case"):
        call_command("import_cases", str(manifest), dataset="x", no_progress=True)
    assert Case.objects.get().external_id == "c1"


def test_xlsx_manifest(good, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["case", "file", "modality", "kind", "data_split"])
    book.active.append(["c9", str(good["t1"]), "t1fsce", "image", "val"])
    book.save(tmp_path / "m.xlsx")
    call_command("import_cases", str(tmp_path / "m.xlsx"), dataset="x", no_progress=True)
    assert Case.objects.get().split == "VAL"
