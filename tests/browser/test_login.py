"""Each role logs in through the real login page in chromium and lands on its own start page."""

import pytest

from tests.browser.conftest import login, screenshot
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.mark.parametrize(
    "role,path,heading",
    [("reader", "/studies/my/", "My studies"), ("coordinator", "/datasets/", "Datasets"), ("admin", "/runs/", "Runs")],
)
def test_each_role_lands_on_its_page(page, role, path, heading):
    make_user(f"b_{role}", role)
    page.goto("/runs/")
    assert page.url.endswith("/login/?next=/runs/")  # anonymous: login page only
    login(page, f"b_{role}", f"b_{role}-pass-123")
    assert page.url.endswith(path)
    assert page.locator("h1").first.inner_text() == heading
    shot = screenshot(page, f"login-{role}")
    assert shot.stat().st_size > 5000
    page.click("text=Log out")
    page.wait_for_url("**/login/")


def test_wrong_password_is_refused(page):
    make_user("b_reader", "reader")
    login(page, "b_reader", "nope")
    assert page.url.endswith("/login/")
    assert "didn't match" in page.inner_text(".error")


def test_niivue_demo_viewer_draws(page):
    make_user("b_viewer", "reader")
    login(page, "b_viewer", "b_viewer-pass-123")
    page.goto("/viewer/demo/")
    page.wait_for_selector("#viewer-status[data-ready='1']", timeout=60_000)
    assert not page.js_errors, page.js_errors
    # The canvas really drew: sample its pixels through WebGL-preserving screenshot and count non-black.
    png = page.locator("#demo-canvas").screenshot()
    screenshot(page, "viewer-demo")
    from io import BytesIO

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(png)).convert("L"))
    assert (pixels > 40).mean() > 0.05, "the viewer canvas stayed black"
