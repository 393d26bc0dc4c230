"""A coordinator opens the report of a study with votes: headline and plotly charts are drawn."""

import pytest

from evaluation.services import record_vote
from tests.browser.conftest import login, screenshot
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_report_page_draws_charts(page, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    readers = [make_user(f"rep{i}", "reader") for i in range(3)]
    study = make_study(readers=readers, n_cases=6, allow_tie=True)
    for i, reader in enumerate(readers):
        for item in study.assignments.get(reader=reader).items.all():
            wanted = "unet-ai" if (i + item.position) % 3 else "unet-expert"
            side = "left" if item.arm_left.name == wanted else "right"
            record_vote(item, reader, {"choice": side, "confidence": None, "comment": "", "time_ms": 3000 + 500 * i})
    make_user("rep_coord", "coordinator")
    login(page, "rep_coord", "rep_coord-pass-123")
    page.goto(f"/studies/{study.pk}/report/")
    page.wait_for_selector("body[data-charts-drawn='1']")
    assert "Arm unet-ai was preferred in" in page.inner_text("#headline")
    for chart in ("#fig-preference", "#fig-forest-0", "#fig-heatmap-0", "#fig-side", "#fig-time"):
        page.wait_for_selector(f"{chart} .main-svg")
    screenshot(page, "study-report")
    assert not page.js_errors, page.js_errors
