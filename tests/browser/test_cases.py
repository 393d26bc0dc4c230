"""A coordinator sees an imported phantom case in NiiVue with a label overlay, and uploads files."""

from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from pipeline.core.phantoms import write_phantom_dataset
from pipeline.models import Case, Dataset
from tests.browser.conftest import login, screenshot
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]



def canvas_brightness(page, selector):
    from io import BytesIO

    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(int)
    colour = (np.abs(pixels[..., 0] - pixels[..., 1]) > 60) | (np.abs(pixels[..., 0] - pixels[..., 2]) > 60)
    return (pixels.mean(axis=2) > 30).mean(), colour.mean()


@pytest.mark.slow
@pytest.mark.once  # about a minute of phantoms and NIfTI at 256x256x32; PostgreSQL imports are tested small
def test_phantom_dataset_20_cases_256_imports_and_case_page_shows_overlay(page, media, tmp_path):
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=20, size=256, depth=32, seed=3)
    call_command("import_cases", str(manifest), dataset="ph256", no_progress=True)
    assert Case.objects.filter(dataset__name="ph256").count() == 20
    make_user("b_coord", "coordinator")
    login(page, "b_coord", "b_coord-pass-123")
    page.click("text=ph256")
    assert page.locator("#case-table tbody tr").count() == 20
    page.locator("#case-table tbody tr a").first.click()
    page.wait_for_selector("#case-viewer[data-ready='1']", timeout=90_000)
    lit, coloured = canvas_brightness(page, "#case-viewer canvas")
    assert lit > 0.05 and coloured > 0.0005, (lit, coloured)  # anatomy drawn, and a red expert overlay on it
    screenshot(page, "case-page-overlay")
    # the radiologists' convention, as on the reader page, and the neurological one a click away
    convention = "document.getElementById('case-viewer').viewer.opts.isRadiologicalConvention"
    assert page.evaluate(convention) is True
    page.uncheck("[data-role=radiological]")
    assert page.evaluate(convention) is False
    page.check("[data-role=radiological]")
    boxes = page.locator("[data-role=label-toggle]")
    for i in [i for i in range(boxes.count()) if boxes.nth(i).is_checked()]:
        boxes.nth(i).uncheck()
        page.wait_for_selector("#case-viewer[data-ready='1']")
    _, without = canvas_brightness(page, "#case-viewer canvas")
    screenshot(page, "case-page-no-overlay")
    assert page.get_attribute("#case-viewer", "data-overlays") == "0"
    assert without < coloured
    assert not page.js_errors, page.js_errors


def test_upload_page_guesses_and_imports_with_progress(page, media, tmp_path):
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=1, size=32, depth=8, seed=4)
    folder = Path(manifest).parent
    files = sorted(str(p) for p in folder.glob("case000_*.nii.gz") if "_r2_" not in p.name and "_r3_" not in p.name)
    make_user("b_coord2", "coordinator")
    ds = Dataset.objects.create(name="uploaded")
    login(page, "b_coord2", "b_coord2-pass-123")
    page.goto(f"/datasets/{ds.pk}/upload/")
    page.set_input_files("#upload-files", files)
    page.wait_for_selector("#upload-table tbody tr")
    rows = page.locator("#upload-table tbody tr")
    assert rows.count() == len(files)
    label_row = page.locator("#upload-table tbody tr[data-file='case000_r1_t2_label.nii.gz']")
    assert label_row.locator("[name=kind]").input_value() == "label"
    assert label_row.locator("[name=rater]").input_value() == "r1"
    screenshot(page, "upload-mapping")
    # every choice reads whole, also on a narrower window: no select is narrower than its chosen option's text
    page.set_viewport_size({"width": 1000, "height": 900})
    cut = page.evaluate("""() => {
      const ctx = document.createElement('canvas').getContext('2d');
      return [...document.querySelectorAll('#upload-table select')].filter((s) => {
        ctx.font = getComputedStyle(s).font;
        return ctx.measureText(s.selectedOptions[0].text).width + 16 > s.clientWidth;  // 16 px: the arrow
      }).map((s) => s.selectedOptions[0].text);
    }""")
    assert cut == [], cut
    page.set_viewport_size({"width": 1400, "height": 900})
    page.click("#upload-go")
    page.wait_for_selector("#upload[data-done='1']")
    assert "1 case(s) imported" in page.inner_text("#upload-report")
    case = Case.objects.get(dataset=ds)
    assert sorted(case.images.values_list("modality", flat=True)) == ["t1fsce", "t2"]
    assert case.labels.count() == len(files) - 2
