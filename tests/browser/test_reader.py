"""A reader goes through a 6-item study in chromium: keyboard and mouse, a lost network, logout and resume.

Screenshots of the reader page go to test-artifacts/reader-*.png.
"""

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from evaluation.models import Vote
from tests.browser.conftest import login, screenshot
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def wait_item(page, position):
    page.wait_for_selector(f"#reader[data-ready='1'][data-position='{position}']", timeout=60_000)


def wait_sent(page):
    page.wait_for_selector("#reader-status[data-pending='0']", state="attached", timeout=30_000)


def drawn_fraction(page, selector):
    pixels = np.asarray(Image.open(BytesIO(page.locator(selector).screenshot())).convert("L"))
    return float((pixels > 40).mean())


def red_fraction(page, selector):
    rgb = np.asarray(Image.open(BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(int)
    return float(((rgb[..., 0] - rgb[..., 1] > 60) & (rgb[..., 0] - rgb[..., 2] > 60)).mean())


def answer_by_keys(page, key, confidence):
    page.keyboard.press(key)
    page.wait_for_selector("#followup:not([hidden])")
    page.keyboard.press(str(confidence))
    page.keyboard.press("Enter")


def answer_by_mouse(page, side, confidence):
    page.click(f"#choose-{side}")
    page.check(f"input[name=confidence][value='{confidence}']")
    page.click("#submit-answer")


def test_reader_goes_through_a_study_with_keys_mouse_outage_and_resume(page, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    reader = make_user("b_reader", "reader")
    make_study(n_cases=6, readers=[reader], ask_confidence=True)
    choices = {}

    login(page, "b_reader", "b_reader-pass-123")
    page.click("text=Start")
    wait_item(page, 1)
    assert page.inner_text("#reader-position") == "1 / 6"
    assert drawn_fraction(page, "#canvas-left") > 0.05 and drawn_fraction(page, "#canvas-right") > 0.05
    screenshot(page, "reader-item1")

    # Both views follow each other: scrolling on the left moves the right one to the same slice.
    before = page.evaluate("window.labelgenReader.pair.viewers[1].nv.scene.crosshairPos[2]")
    page.locator("#canvas-left").hover()
    page.mouse.wheel(0, 300)
    page.wait_for_timeout(300)
    left, right = page.evaluate("window.labelgenReader.pair.viewers.map(v => Array.from(v.nv.scene.crosshairPos))")
    assert np.allclose(left, right) and right[2] != before

    # Controls: hide overlays (H), outline, a single plane.
    red = red_fraction(page, "#canvas-right")
    assert red > 0.002  # the overlay is drawn
    page.keyboard.press("h")
    page.wait_for_timeout(200)
    assert page.evaluate("window.labelgenReader.pair.overlaysHidden") is True
    assert red_fraction(page, "#canvas-right") < red / 10
    page.keyboard.press("h")
    page.click("#outline")
    assert page.get_attribute("#outline", "aria-pressed") == "true"
    page.select_option("#layout", "axial")
    page.select_option("#modality", "t2")
    wait_item(page, 1)
    screenshot(page, "reader-item1-axial-outline-t2")
    page.select_option("#layout", "multiplanar")
    page.click("#outline")

    assert page.title().endswith(" · 1 / 6")
    boxes = [page.locator(s).bounding_box() for s in ("#canvas-left", "#choose-left")]
    page.keyboard.press("a")
    page.wait_for_selector("#followup:not([hidden])")
    # the confidence row takes the place kept for it: no button moves and the viewers keep their size
    assert [page.locator(s).bounding_box() for s in ("#canvas-left", "#choose-left")] == boxes
    answer_by_keys(page, "a", 4)
    choices[1] = "left"
    wait_item(page, 2)
    assert page.title().endswith(" · 2 / 6")  # the tab says where the reader is, also after moving on in place
    # The next item was prefetched: once it is ready, moving on fetches no volume.
    assert page.evaluate("window.labelgenReader.nextReady()") is True
    volume_requests = []
    page.on("request", lambda req: volume_requests.append(req.url) if "/studies/v/" in req.url else None)
    answer_by_mouse(page, "right", 3)
    choices[2] = "right"
    wait_item(page, 3)
    shown = page.evaluate("(() => { const p = window.labelgenReader.pair;"
                          " return [p.config.base.url, ...p.viewers.map(v => v.overlays[0].url)]; })()")
    assert len(shown) == 3 and not [u for u in volume_requests if any(u.endswith(s) for s in shown)]
    # ... and its volumes were decoded while item 2 was on screen: answering only swapped them in.
    assert page.evaluate("window.labelgenReader.pair.lastLoad") == "prepared"
    # Another modality chosen on item 3: the next item is decoded again, on that modality.
    page.select_option("#modality", "t1fsce")
    wait_item(page, 3)
    assert page.evaluate("window.labelgenReader.nextReady()") is True
    answer_by_keys(page, "b", 5)
    choices[3] = "right"
    wait_item(page, 4)
    assert page.evaluate("(() => { const p = window.labelgenReader.pair;"
                         " return [p.lastLoad, p.config.base.url === p.config.baseUrls.t1fsce]; })()") == ["prepared", True]
    wait_sent(page)
    assert Vote.objects.count() == 3

    # Log out in the middle and come back: the study resumes at item 4.
    page.click("text=Log out")
    page.wait_for_url("**/login/")
    login(page, "b_reader", "b_reader-pass-123")
    page.click("text=Resume")
    wait_item(page, 4)
    assert page.inner_text("#reader-position") == "4 / 6"

    # The network fails while item 4 is answered: the reader is told, the answer is kept and retried.
    page.route("**/vote/", lambda route: route.abort())
    answer_by_keys(page, "b", 2)
    choices[4] = "right"
    wait_item(page, 5)
    page.wait_for_selector("#reader-status.is-warning", timeout=15_000)
    assert "not sent yet" in page.inner_text("#reader-status")
    screenshot(page, "reader-network-down")
    assert Vote.objects.count() == 3
    page.unroute("**/vote/")
    wait_sent(page)
    assert Vote.objects.count() == 4

    answer_by_mouse(page, "left", 1)
    choices[5] = "left"
    wait_item(page, 6)
    answer_by_keys(page, "a", 3)
    choices[6] = "left"
    page.wait_for_selector("#study-done", timeout=30_000)
    assert "6 / 6" in page.inner_text("#done-count")
    screenshot(page, "reader-done")
    assert not page.js_errors, page.js_errors

    votes = Vote.objects.filter(item__assignment__reader=reader).select_related("item")
    assert votes.count() == 6
    for v in votes:
        assert v.choice == choices[v.item.position]
        assert v.arm == (v.item.arm_left if v.choice == "left" else v.item.arm_right)
        assert v.time_ms > 0 and v.confidence in (1, 2, 3, 4, 5)


def test_coordinator_preview_and_closed_study(page, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    reader = make_user("b_reader", "reader")
    make_user("b_coord", "coordinator")
    study = make_study(n_cases=2, readers=[reader], allow_tie=True)
    login(page, "b_coord", "b_coord-pass-123")
    page.goto(f"/studies/{study.pk}/")
    page.click("text=Preview as a reader")
    wait_item(page, 1)
    assert "Preview" in page.inner_text(".preview-banner")
    screenshot(page, "reader-preview")
    page.keyboard.press("n")
    wait_item(page, 2)
    assert not Vote.objects.exists()  # a preview records nothing
    assert not page.js_errors, page.js_errors
