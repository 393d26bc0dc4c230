"""DICOM series -> volume and label -> DICOM SEG -> label, on phantom series written as a PACS would export them:
the voxels and the affine come back exactly, and every damaged series is refused with the reason."""

import zipfile

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import UID, JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from pipeline.core.io.case_names import CaseNameError, CaseNamer, read_mapping
from pipeline.core.io.dicom_files import DicomTreeError, dicom_tree, scan_dicom
from pipeline.core.io.dicom_seg import SegmentInfo, read_seg, referenced_series_uids, write_seg
from pipeline.core.io.dicom_series import SeriesError, read_series
from pipeline.core.phantoms import make_phantom_case
from pipeline.core.phantoms.dicom import quantize, write_mr_series
from pipeline.core.phantoms.dicom_demo import tilted

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def phantom():
    return make_phantom_case("c0", size=32, depth=8, seed=1)


def oblique(affine, angle=0.4):
    """The phantom's grid tilted about x and y (a double-oblique MR), shifted off the origin."""
    out = tilted(affine, angle)
    out[:3, 3] = [12.5, -30.0, 41.0]
    return out


def write(tmp_path, phantom, affine=None, **kwargs):
    folder = tmp_path / "series"
    write_mr_series(folder, phantom.images["t2"], phantom.affine if affine is None else affine, patient_id="P1",
                    study_uid=generate_uid(), series_number=3, description="T2 TSE", **kwargs)
    return folder


def only_series(folder):
    found = scan_dicom(folder).series
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("orientation", ["axial", "oblique"])
@pytest.mark.parametrize("layout", ["single-frame", "multi-frame"])
def test_series_round_trip_gives_the_original_voxels_and_affine(tmp_path, phantom, orientation, layout):
    affine = phantom.affine if orientation == "axial" else oblique(phantom.affine)
    folder = write(tmp_path, phantom, affine, multiframe=layout == "multi-frame")
    volume = read_series(only_series(folder))
    _, expected = quantize(phantom.images["t2"])
    assert volume.data.dtype == np.float32 and volume.shape == (32, 32, 8)
    np.testing.assert_array_equal(volume.data, expected)  # rescale slope 0.5 and intercept -100 applied
    np.testing.assert_allclose(volume.affine, affine, rtol=0, atol=1e-6)
    np.testing.assert_allclose(volume.spacing, phantom.spacing, atol=1e-6)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_series_are_decoded(tmp_path, phantom, syntax):
    folder = write(tmp_path, phantom, transfer_syntax=syntax)
    assert pydicom.dcmread(next(folder.iterdir())).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(read_series(only_series(folder)).data, quantize(phantom.images["t2"])[1])


def test_a_transfer_syntax_without_a_decoder_is_refused_by_name(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    for path in folder.iterdir():  # claim JPEG 2000 Part 2 multi-component, which no installed plugin decodes
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.92")
        ds.PixelData = encapsulate([ds.PixelData])
        ds.save_as(path)
    with pytest.raises(SeriesError, match=r"compressed with JPEG 2000 Part 2 .*no installed decoder reads"):
        read_series(only_series(folder))


def test_slices_given_in_any_file_order_stack_along_the_normal(tmp_path, phantom):
    folder = write(tmp_path, phantom, oblique(phantom.affine))
    series = only_series(folder)
    series.files.reverse()
    series.headers.reverse()
    np.testing.assert_allclose(read_series(series).affine, oblique(phantom.affine), atol=1e-6)


def slice_files(folder):
    return sorted(folder.iterdir())


def test_missing_slice_is_refused_with_the_gap(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    slice_files(folder)[4].unlink()
    with pytest.raises(SeriesError, match=r"missing 1 slice\(s\) between .* \(gap 8 mm, slice spacing 4 mm\)"):
        read_series(only_series(folder))


def test_duplicated_slice_is_refused_naming_both_files(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    files = slice_files(folder)
    ds = pydicom.dcmread(files[3])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(folder / "copy.dcm")
    with pytest.raises(SeriesError, match=r"duplicated slice at .*files (IM0004.dcm and copy.dcm|copy.dcm and IM0004)"):
        read_series(only_series(folder))


def edit(path, **attrs):
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path)


def test_uneven_spacing_mixed_orientation_and_mixed_size_are_refused(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    last = slice_files(folder)[-1]
    position = [float(v) for v in pydicom.dcmread(last).ImagePositionPatient]
    edit(last, ImagePositionPatient=[position[0], position[1], position[2] + 1.0])
    with pytest.raises(SeriesError, match=r"uneven slice spacing \(4 to 5 mm\)"):
        read_series(only_series(folder))

    folder = write(tmp_path / "o", phantom)
    edit(slice_files(folder)[2], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    with pytest.raises(SeriesError, match=r"mixes slice orientations .*IM0003.dcm"):
        read_series(only_series(folder))

    folder = write(tmp_path / "s", phantom)
    small = pydicom.dcmread(slice_files(folder)[1])
    small.Rows = small.Columns = 16
    small.PixelData = np.zeros((16, 16), np.int16).tobytes()
    small.save_as(slice_files(folder)[1])
    with pytest.raises(SeriesError, match=r"mixes slice sizes \(32x32 in 7 file\(s\), 16x16 in 1 file\(s\)\)"):
        read_series(only_series(folder))


def test_a_series_that_is_not_mr_or_ct_image_storage_is_refused(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    for path in slice_files(folder):
        edit(path, SOPClassUID="1.2.840.10008.5.1.4.1.1.6.1", Modality="US")  # Ultrasound Image Storage
    with pytest.raises(SeriesError, match=r"is Ultrasound Image Storage \(US\), not MR or CT image storage"):
        read_series(only_series(folder))


def test_a_truncated_file_is_refused_naming_it(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    victim = slice_files(folder)[5]
    victim.write_bytes(victim.read_bytes()[:-900])
    series = only_series(folder)  # the header still reads; the pixel data does not
    with pytest.raises(SeriesError, match="IM0006.dcm|cannot be read as a volume"):
        read_series(series)


def test_scan_skips_non_dicom_and_lists_damaged_headers(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    (folder / "README.txt").write_text("exported from PACS")
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    scan = scan_dicom(folder)
    assert len(scan.series) == 1 and len(scan.series[0].files) == 8
    assert scan.not_dicom == 1
    assert [u.path.name for u in scan.unreadable] == ["broken.dcm"]


def test_scan_flags_identifying_tags(tmp_path, phantom):
    folder = tmp_path / "s"
    write_mr_series(folder, phantom.images["t2"], phantom.affine, patient_id="P1", patient_name="Doe^Jane",
                    birth_date="19700101", study_uid=generate_uid(), series_number=1, description="T2")
    assert only_series(folder).identifying == {"PatientName", "PatientBirthDate"}
    folder = write(tmp_path, phantom)
    assert only_series(folder).identifying == set()


def test_zip_is_unpacked_safely(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in slice_files(folder):
            z.write(path, f"DOE_JANE/T2/{path.name}")
    with dicom_tree(archive) as root:
        series = only_series(root)
        assert len(series.files) == 8 and not any("DOE" in str(p) for p in series.files)
        read_series(series)
    assert not root.exists()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../etc/passwd.dcm", b"x")
    with pytest.raises(DicomTreeError, match="points outside the archive"), dicom_tree(evil):
        pass
    with pytest.raises(DicomTreeError, match="unpacks to"), dicom_tree(archive, max_unpacked_bytes=1000):
        pass
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DicomTreeError, match="notes.txt: not a zip file"), dicom_tree(tmp_path / "notes.txt"):
        pass


@pytest.mark.parametrize("orientation", ["axial", "oblique"])
def test_seg_written_and_read_back_gives_the_same_mask_on_the_same_grid(tmp_path, phantom, orientation):
    affine = phantom.affine if orientation == "axial" else oblique(phantom.affine)
    series = only_series(write(tmp_path, phantom, affine))
    volume = read_series(series)
    sources = [pydicom.dcmread(f) for f in series.files]
    seg = write_seg(phantom.truth, volume.affine, sources, SegmentInfo(algorithm="labelgen AI-assisted label"))
    seg.save_as(tmp_path / "seg.dcm")
    header = pydicom.dcmread(tmp_path / "seg.dcm", stop_before_pixels=True)
    assert header.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and header.SegmentationType == "BINARY"
    assert referenced_series_uids(header) == {series.uid}
    assert header.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert header.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    back = read_seg(tmp_path / "seg.dcm", volume.shape, volume.affine)
    assert back.dtype == np.uint8 and back.sum() == phantom.truth.sum() > 0
    np.testing.assert_array_equal(back, phantom.truth)


def test_a_seg_that_omits_empty_frames_is_padded_back_onto_the_grid(tmp_path, phantom):
    """PACS tools store only the frames a segment touches; the mask must land on the right slices."""
    series = only_series(write(tmp_path, phantom, oblique(phantom.affine)))
    volume = read_series(series)
    sources = [pydicom.dcmread(f) for f in series.files]
    mask = np.zeros(volume.shape, np.uint8)
    mask[10:20, 8:14, 5] = 1
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="lesion", segmented_property_category=hd.sr.CodedConcept(
            "49755003", "SCT", "Morphologically Abnormal Structure"),
        segmented_property_type=hd.sr.CodedConcept("108369006", "SCT", "Neoplasm"), algorithm_type="MANUAL")
    frames = np.transpose(mask, (2, 1, 0))  # (slice, row, column), in the order of ``sources``
    order = np.argsort([np.dot([float(v) for v in s.ImagePositionPatient],
                               np.cross(*np.reshape([float(v) for v in s.ImageOrientationPatient], (2, 3))))
                        for s in sources])
    seg = hd.seg.Segmentation(
        source_images=[sources[i] for i in order], pixel_array=frames, segmentation_type="BINARY",
        segment_descriptions=[segment], series_instance_uid=generate_uid(), series_number=5,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="a PACS", manufacturer_model_name="x",
        software_versions="1", device_serial_number="1", omit_empty_frames=True)
    assert seg.NumberOfFrames == 1
    np.testing.assert_array_equal(read_seg(seg, volume.shape, volume.affine), mask)


def test_seg_refuses_a_mask_on_another_grid(tmp_path, phantom):
    series = only_series(write(tmp_path, phantom))
    sources = [pydicom.dcmread(f) for f in series.files]
    shifted = phantom.affine.copy()
    shifted[0, 3] += 5.0
    with pytest.raises(SeriesError, match="not the source series' grid"):
        write_seg(phantom.truth, shifted, sources)


def test_case_names_hash_map_and_refusals(tmp_path):
    hashed = CaseNamer("hash", key=b"k1")
    assert hashed("P1") == hashed("P1") != CaseNamer("hash", key=b"k2")("P1")
    assert hashed("P1").startswith("case-") and len(hashed("P1")) == 17 and "P1" not in hashed("P1")[5:]
    assert CaseNamer()("P_0001") == "P_0001"
    with pytest.raises(CaseNameError, match=r"case 'Doe\^Jane' .*use --case-name hash or map"):
        CaseNamer()("Doe^Jane")
    csv = tmp_path / "map.csv"
    csv.write_text("patient_id,case\nP1,knee-01\nP2,knee-02\n")
    namer = CaseNamer("map", mapping=read_mapping(csv))
    assert namer("P2") == "knee-02"
    with pytest.raises(CaseNameError, match="not in the mapping CSV"):
        namer("P3")
    csv.write_text("patient_id,case\nP1,knee-01\nP2,knee-01\n")
    with pytest.raises(CaseNameError, match=r"map.csv, line 3: case 'knee-01' already given on line 2"):
        read_mapping(csv)
    csv.write_text("patient_id,case\nP1,../etc\n")
    with pytest.raises(CaseNameError, match="map.csv, line 2: case"):
        read_mapping(csv)


def test_a_sheared_stack_and_a_single_slice_are_refused(tmp_path, phantom):
    folder = write(tmp_path, phantom)
    for k, path in enumerate(slice_files(folder)):  # each slice shifted sideways by 1 mm more: a gantry tilt
        position = [float(v) for v in pydicom.dcmread(path).ImagePositionPatient]
        edit(path, ImagePositionPatient=[position[0] + k, position[1], position[2]])
    with pytest.raises(SeriesError, match="not stacked along their normal"):
        read_series(only_series(folder))

    folder = write(tmp_path / "one", phantom)
    for path in slice_files(folder)[1:]:
        path.unlink()
    with pytest.raises(SeriesError, match="single slice"):
        read_series(only_series(folder))
