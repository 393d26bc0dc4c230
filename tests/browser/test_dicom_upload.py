"""A coordinator uploads a PACS-style zip of DICOM, maps its series descriptions to modalities and imports it."""

import pytest

from pipeline.core.phantoms import make_phantom_case
from pipeline.core.phantoms.dicom_demo import tilted
from pipeline.models import Case, Dataset
from tests.browser.conftest import login, screenshot
from tests.browser.test_cases import canvas_brightness
from tests.factories import make_user
from tests.test_dicom_import import write_patient, zipped

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser,
              pytest.mark.filterwarnings("ignore::UserWarning")]


def test_dicom_zip_is_scanned_mapped_and_imported(page, media, tmp_path):
    for i, pid in enumerate(["P001", "P002"]):
        case = make_phantom_case(f"c{i}", size=32, depth=8, seed=i)
        write_patient(tmp_path / "pacs", pid, case, name="Doe^Jane", affine=tilted(case.affine) if i else None)
    archive = zipped(tmp_path / "pacs", tmp_path / "pacs.zip")
    make_user("d_coord", "coordinator")
    ds = Dataset.objects.create(name="from-pacs")
    login(page, "d_coord", "d_coord-pass-123")
    page.goto(f"/datasets/{ds.pk}/upload/")
    page.set_input_files("#dicom-file", str(archive))
    page.wait_for_selector("#dicom-table tbody tr")
    rows = page.locator("#dicom-table tbody tr")
    assert rows.count() == 3 and "2 patient(s)" in page.inner_text("#dicom-found")
    t2 = page.locator("#dicom-table tbody tr[data-description='T2 TSE'] input")
    assert t2.input_value() == "t2"
    assert page.locator("#dicom-table tbody tr[data-description='localizer'] input").input_value() == ""
    page.select_option("#dicom-case-name", "hash")
    page.select_option("#dicom-split", "VAL")
    page.locator("#dicom").scroll_into_view_if_needed()
    screenshot(page, "dicom-upload-mapping")
    page.click("#dicom-go")
    page.wait_for_selector("#dicom[data-done='1']")
    report = page.inner_text("#dicom-report")
    assert "2 case(s) imported" in report and "identifying tags (PatientName) are present in 2 case(s)" in report
    assert "1 series described 'localizer'" not in report and "2 series described 'localizer'" in report
    assert "warning: 2 series described 'localizer'" in report and "-:" not in report  # no case: none named
    screenshot(page, "dicom-upload-report")
    cases = Case.objects.filter(dataset=ds)
    assert cases.count() == 2 and all(c.external_id.startswith("case-") and c.split == "VAL" for c in cases)
    assert all(sorted(c.images.values_list("modality", flat=True)) == ["t1fsce", "t2"] for c in cases)
    oblique = next(c for c in cases if abs(c.reference_image().affine[1][2]) > 0.1)
    page.goto(oblique.get_absolute_url())  # the double-oblique case in the viewer, as stored (not resampled)
    page.wait_for_selector("#case-viewer[data-ready='1']", timeout=60_000)
    lit, _ = canvas_brightness(page, "#case-viewer canvas")
    assert lit > 0.05, lit
    assert "from DICOM series 2 'T1 FS CE axial'" in page.inner_text("main")
    screenshot(page, "dicom-oblique-case")
    assert not page.js_errors, page.js_errors
