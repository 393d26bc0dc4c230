"""The reader page as radiologists asked for it (issue 17), in chromium at 1366x768: keys that never mean two
things in a row, radiological convention with a toggle, slice numbers, controls on screen, aria-pressed,
shortcuts that can be switched off, and graded answers. Screenshots: test-artifacts/reader-design-*.png."""

import pytest

from evaluation.models import Vote
from tests.browser.conftest import login, screenshot
from tests.browser.test_reader import answer_by_mouse, drawn_fraction, red_fraction, wait_item, wait_sent
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def on_screen(page, selector):
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 768


def pressed(page, selector):
    return page.get_attribute(selector, "aria-pressed")


def test_keys_convention_and_controls_at_1366x768(page, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    page.set_viewport_size({"width": 1366, "height": 768})
    reader = make_user("d_reader", "reader")
    study = make_study(n_cases=3, readers=[reader], ask_confidence=True, allow_tie=True)
    login(page, "d_reader", "d_reader-pass-123")
    page.goto(f"/studies/{study.pk}/read/")
    wait_item(page, 1)
    assert study.title not in page.content() and f"Study {study.pk}" in page.inner_text(".reader-title")

    # Radiological convention by default (a per-study setting), shown and switchable with R.
    nv = "window.labelgenReader.pair.viewers.map(v => v.nv.opts.isRadiologicalConvention)"
    assert page.evaluate(nv) == [True, True] and pressed(page, "#radiological") == "true"
    assert "Axial" in page.inner_text("#slice-info") and "radiological" in page.inner_text("#slice-info")
    # The large axial view fills the space the 2x2 grid would leave empty.
    assert page.evaluate("window.labelgenReader.pair.viewers[0].nv.opts.heroImageFraction") > 0
    screenshot(page, "reader-design-radiological")
    page.keyboard.press("r")
    assert page.evaluate(nv) == [False, False] and pressed(page, "#radiological") == "false"
    assert "neurological" in page.inner_text("#slice-info")
    page.keyboard.press("r")

    # Every answer control is on screen at 1366x768, before and after choosing a side.
    for sel in ("#choose-left", "#choose-none", "#choose-right"):
        assert on_screen(page, sel), sel
    # A digit before a side means nothing (it was "A" + confidence in the old design): no side is chosen.
    page.keyboard.press("1")
    page.keyboard.press("2")
    assert page.is_hidden("#followup") and pressed(page, "#choose-left") == "false"
    page.keyboard.press("a")
    page.wait_for_selector("#followup:not([hidden])")
    assert pressed(page, "#choose-left") == "true" and pressed(page, "#choose-right") == "false"
    assert on_screen(page, "#submit-answer") and on_screen(page, "input[name=confidence][value='5']")
    page.keyboard.press("2")
    screenshot(page, "reader-design-confidence")
    page.keyboard.press("Enter")
    wait_item(page, 2)
    wait_sent(page)
    vote = Vote.objects.get()
    assert (vote.choice, vote.confidence) == ("left", 2)

    # Single-key shortcuts off: letters do nothing, the buttons still work; the setting survives a reload.
    page.click("#shortcuts")
    assert pressed(page, "#shortcuts") == "false"
    page.keyboard.press("b")
    assert page.is_hidden("#followup")
    page.reload()
    wait_item(page, 2)
    assert pressed(page, "#shortcuts") == "false"
    page.click("#choose-right")
    page.check("input[name=confidence][value='4']")
    page.click("#submit-answer")
    wait_item(page, 3)
    wait_sent(page)
    assert Vote.objects.get(item__position=2).choice == "right"
    assert not page.js_errors, page.js_errors


def test_graded_answers_by_digit(page, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    page.set_viewport_size({"width": 1366, "height": 768})
    reader = make_user("g_reader", "reader")
    study = make_study(n_cases=2, readers=[reader], graded=True)
    login(page, "g_reader", "g_reader-pass-123")
    page.goto(f"/studies/{study.pk}/read/")
    wait_item(page, 1)
    for grade in ("2", "1", "0", "-1", "-2"):
        assert on_screen(page, f"[data-grade='{grade}']")
    screenshot(page, "reader-design-graded")
    page.keyboard.press("4")  # fourth button from the left: "B better"
    wait_item(page, 2)
    page.click("[data-grade='2']")  # "A much better"
    page.wait_for_selector("#study-done", timeout=30_000)
    votes = {v.item.position: (v.choice, v.grade) for v in Vote.objects.select_related("item")}
    assert votes == {1: ("right", -1), 2: ("left", 2)}
    assert not page.js_errors, page.js_errors


# NiiVue reads its gradient texture back as bytes mapped to [-1, 1]: a texture no pass wrote reads -1 everywhere
GRADIENT = ("window.labelgenReader.pair.viewers.map(v => { const g = v.nv.getGradientTextureData();"
            " return [v.nv.skippedGradient, g ? g.some((x) => x !== -1) : null]; })")


def test_2d_layouts_skip_the_3d_gradient_and_the_3d_layout_computes_it(page, settings, tmp_path):
    """NiiVue's gradient texture (3D lighting only) is not computed in 2D layouts, which saves most of a first
    draw with software WebGL; the 2D views still show image and overlay, and "Multiplanar + 3D" computes the
    gradient of the image shown, also for items loaded while it is chosen."""
    settings.MEDIA_ROOT = tmp_path
    reader = make_user("g_reader", "reader")
    study = make_study(n_cases=3, readers=[reader], ask_confidence=True)
    login(page, "g_reader", "g_reader-pass-123")
    page.goto(f"/studies/{study.pk}/read/")
    wait_item(page, 1)
    assert page.evaluate(GRADIENT) == [[True, False], [True, False]]  # hero layout: nothing computed
    assert drawn_fraction(page, "#canvas-left") > 0.05 and red_fraction(page, "#canvas-right") > 0.002

    page.select_option("#layout", "render")
    assert page.evaluate(GRADIENT) == [[False, True], [False, True]]
    screenshot(page, "reader-design-render")
    answer_by_mouse(page, "left", 3)
    wait_item(page, 2)
    assert page.evaluate(GRADIENT) == [[False, True], [False, True]]  # a new item in the 3D layout

    page.select_option("#layout", "multiplanar")
    answer_by_mouse(page, "right", 3)
    wait_item(page, 3)
    assert page.evaluate("window.labelgenReader.pair.viewers.map(v => v.nv.skippedGradient)") == [True, True]
    assert drawn_fraction(page, "#canvas-left") > 0.05 and red_fraction(page, "#canvas-right") > 0.002
    assert not page.js_errors, page.js_errors


def test_the_first_items_volumes_download_with_the_page_once_each(page, settings, tmp_path):
    """The page preloads the first item's three volumes (base, A, B) while its code loads; the viewers use those
    downloads (no second request) and decode them while WebGL starts."""
    settings.MEDIA_ROOT = tmp_path
    reader = make_user("p_reader", "reader")
    study = make_study(n_cases=2, readers=[reader])
    login(page, "p_reader", "p_reader-pass-123")
    volume_requests = []
    page.on("request", lambda req: volume_requests.append(req.url) if "/studies/v/" in req.url else None)
    page.goto(f"/studies/{study.pk}/read/")
    wait_item(page, 1)
    shown = page.evaluate("(() => { const p = window.labelgenReader.pair;"
                          " return [p.config.base.url, ...p.viewers.map(v => v.overlays[0].url)]; })()")
    preloaded = page.eval_on_selector_all("link[rel=preload][as=fetch]", "ls => ls.map(l => l.getAttribute('href'))")
    assert preloaded == shown
    for url in shown:
        assert sum(r.endswith(url) for r in volume_requests) == 1, (url, volume_requests)
    assert page.evaluate("window.labelgenReader.pair.lastLoad") == "prepared"
    assert drawn_fraction(page, "#canvas-left") > 0.05 and red_fraction(page, "#canvas-right") > 0.002
    # the page marks when the GPU has finished the item (bench/reader_bench.py reads it)
    page.wait_for_function("performance.getEntriesByName('labelgen:item-drawn').length === 1")
    # the slice line, filled once the item shows, keeps its height: a resized canvas is a full redraw (1.4 s of
    # software WebGL right after the first item)
    heights = ("(() => { const r = document.querySelector('#canvas-left').getBoundingClientRect().height;"
               " const info = document.querySelector('#slice-info'); const text = info.textContent;"
               " info.textContent = ''; const e = document.querySelector('#canvas-left').getBoundingClientRect().height;"
               " info.textContent = text; return [r, e]; })()")
    filled, empty = page.evaluate(heights)
    assert filled == empty
    assert not page.js_errors, page.js_errors
