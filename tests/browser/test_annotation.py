"""A radiologist draws strokes with the mouse on the NiiVue canvas, saves, makes the AI label, erases part of
it, saves the correction and accepts; the database then holds the rough input, the original AI label and the
corrected one."""

import numpy as np
import pytest

from pipeline.annotation.services import create_task
from pipeline.core.io.nifti import load_volume
from pipeline.models import AnnotationItem, Label
from tests.browser.conftest import _in_flight, login, screenshot
from tests.factories import make_dataset, make_user
from tests.test_annotation import clustering_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def on_canvas(page, box, vox):
    """Page coordinates of voxel ``vox`` (x, y, z) in the viewer, as NiiVue maps it."""
    x, y = page.evaluate("([v]) => { const nv = document.getElementById('annotate').viewer;"
                         " return nv.frac2canvasPos(nv.vox2frac(v)); }", [list(map(float, vox))])
    ratio = page.evaluate("window.devicePixelRatio")
    return box["x"] + x / ratio, box["y"] + y / ratio


def drag(page, box, points, voxels=False):
    """Press at the first point, move through the others, release (points as fractions of the canvas, or
    voxels (x, y, z) with ``voxels=True``)."""
    if voxels:
        xy = [on_canvas(page, box, p) for p in points]
    else:
        xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_draw_save_make_ai_label_correct_and_accept(page, media):
    dataset = make_dataset(name="draw", n_cases=1, prediction_sets=())
    reader = make_user("drawer", "reader")
    task = create_task(dataset=dataset, name="Mark with strokes", input="scribbles", radiologists=[reader],
                       cases=dataset.cases.all())
    clustering_run(dataset)
    item = task.items.get()

    login(page, "drawer", "drawer-pass-123")
    page.goto("/annotate/")
    page.click("text=Start")
    page.wait_for_selector("#annotate[data-ready='1']", timeout=90_000)
    assert "Loading" not in page.inner_text("#annotate [data-role=status]")  # it said so after the viewer drew
    page.select_option("[data-role=plane]", "axial")
    page.wait_for_timeout(500)
    canvas = page.locator("#annotate canvas")
    box = canvas.bounding_box()
    page.keyboard.press("t")  # tumour pen
    assert page.get_attribute("[data-tool=tumour]", "aria-pressed") == "true"
    truth = load_volume(item.case.labels.get(source="truth").path, kind="label").data > 0
    z = int(page.evaluate("Math.round(document.getElementById('annotate').viewer.frac2vox("
                          "document.getElementById('annotate').viewer.scene.crosshairPos)[2])"))
    xs, ys = np.nonzero(truth[:, :, z])
    cy = int(round(ys.mean()))
    drag(page, box, [(xs.min() + 1, cy, z), (xs.max() - 1, cy, z)], voxels=True)  # a stroke across the lesion
    page.keyboard.press("b")  # background pen, far outside the lesion
    drag(page, box, [(0.5 - 0.4 * box["height"] / box["width"], 0.12), (0.5 + 0.4 * box["height"] / box["width"], 0.12)])
    page.keyboard.press("s")
    page.wait_for_selector("#annotate[data-saved='1']")
    # the case's history shows the saved drawing without a reload
    page.wait_for_function("document.querySelector('[data-role=history]').textContent.includes('scribbles')")
    screenshot(page, "annotate-strokes")

    drawing = Label.objects.get(case=item.case, source="expert", rater="drawer")
    strokes = load_volume(drawing.path, kind="label").data
    assert drawing.input == "scribbles" and (strokes == 1).sum() >= 2 and (strokes == 2).sum() >= 2
    assert set(np.unique(strokes)) == {0, 1, 2}

    page.click("[data-action=make-ai]")
    page.wait_for_function("document.querySelector('[data-role=status]').textContent.startsWith('AI label made')",
                           timeout=60_000)
    original = Label.objects.get(case=item.case, source="ai", rater="drawer", corrected_from=None)
    assert original.voxel_count > 0
    screenshot(page, "annotate-ai-label")

    page.click("[data-action=edit]")
    page.wait_for_selector("#annotate[data-mode='correct']")
    page.wait_for_timeout(300)
    page.keyboard.press("e")  # eraser across the middle of the label
    page.select_option("[data-role=pen-size]", "3")
    drag(page, box, [(xs.min() - 2, cy, z), (xs.max() + 2, cy, z)], voxels=True)
    drawing_posts = []
    page.on("request", lambda r: drawing_posts.append(r.url) if r.method == "POST" and "/drawing/" in r.url else None)
    page.keyboard.press("s")  # Save, while the drawing layer holds the AI label: not stored as the rough input
    page.wait_for_function("document.querySelector('[data-role=status]').textContent.includes('Save correction first')")
    page.click("[data-action=save-correction]")
    page.wait_for_function("document.querySelector('[data-role=status]').textContent.startsWith('Correction saved')",
                           timeout=60_000)
    page.wait_for_timeout(3000)  # longer than the autosave delay
    assert drawing_posts == [], drawing_posts  # the rough input was neither overwritten nor saved again
    assert Label.objects.get(pk=drawing.pk).sha256 == drawing.sha256
    page.click("[data-action=accept]")
    page.wait_for_function("document.querySelector('[data-role=status]').textContent.startsWith('AI label accepted')")
    page.wait_for_function("document.querySelector('[data-role=history]').textContent.includes('AI-assisted corrected')")
    screenshot(page, "annotate-corrected")

    correction = Label.objects.get(corrected_from=original)
    before = load_volume(original.path, kind="label").data > 0
    after = load_volume(correction.path, kind="label").data > 0
    assert 0 < after.sum() < before.sum() and not (after & ~before).any()  # only erased, the rest kept
    item.refresh_from_db()
    assert item.ai_state == AnnotationItem.AIState.CORRECTED and item.seconds_spent > 0
    original.refresh_from_db()
    assert original.review == "accepted"
    assert not page.js_errors, page.js_errors


def test_leaving_the_page_records_the_time_spent_on_it(browser, live_server):
    """The beacon sent when the page turns hidden carries the seconds it was visible (it sent 0.0 before:
    the page was already hidden when it counted)."""
    dataset = make_dataset(name="timed", n_cases=1, prediction_sets=())
    reader = make_user("timer", "reader")
    task = create_task(dataset=dataset, name="Box it", input="box", radiologists=[reader],
                       cases=dataset.cases.all())
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    login(page, "timer", "timer-pass-123")
    page.goto("/annotate/")
    page.click("text=Start")
    page.wait_for_selector("#annotate[data-ready='1']", timeout=90_000)
    page.wait_for_timeout(1500)
    page.goto("about:blank")
    context.close()
    assert _in_flight.wait_until_quiet()
    assert task.items.get().seconds_spent >= 1.5


def test_coordinator_creates_a_task_and_follows_it(page, media):
    dataset = make_dataset(name="to-mark", n_cases=3, prediction_sets=())
    make_user("marker", "reader")
    make_user("coord_b", "coordinator")
    login(page, "coord_b", "coord_b-pass-123")
    page.goto(f"/datasets/{dataset.pk}/")
    page.click("text=New annotation task")
    page.fill("input[name=name]", "Boxes please")
    page.select_option("select[name=input]", "box")
    page.fill("input[name=cases]", "case001 case002")
    page.check("text=marker")
    page.click("text=Create task")
    page.wait_for_selector("text=Boxes please")
    assert page.locator("table tbody tr").count() == 2  # one row per case for the one radiologist
    screenshot(page, "annotation-task-detail")
    page.goto("/annotation-tasks/")
    assert "0 / 2" in page.inner_text("table")
    screenshot(page, "annotation-task-list")
    assert not page.js_errors, page.js_errors
