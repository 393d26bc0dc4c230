"""A coordinator follows an open study (progress only), unblinds it on purpose, and reads the report: the
primary analysis as headline, plotly charts drawn with their titles inside the charts."""

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
    page.goto(f"/studies/{study.pk}/")
    assert page.locator("#votes-table").count() == 0 and "progress only" in page.inner_text("#blinded-answers")
    screenshot(page, "study-open-progress-only")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#unblind-now")  # asked first: unblinding cannot be undone
    page.wait_for_timeout(300)
    assert asked and "cannot be undone" in asked[0] and page.locator("#votes-table").count() == 0
    study.refresh_from_db()
    assert study.unblinded_at is None  # declined: nothing was sent
    page.once("dialog", lambda d: d.accept())
    page.click("#unblind-now")
    page.wait_for_selector("#votes-table")
    page.click("a.button:text('Report')")
    page.wait_for_selector("body[data-charts-drawn='1']")
    headline = page.inner_text("#headline")
    assert "Arm unet-expert was preferred in" in headline and "Primary analysis" in headline
    assert "Unblinded while open by rep_coord" in headline
    for chart in ("#fig-preference", "#fig-forest-0", "#fig-heatmap-0", "#fig-side", "#fig-time"):
        page.wait_for_selector(f"{chart} .main-svg")
        # the title is drawn inside its chart (long titles wrap instead of being cut off)
        title, box = page.locator(f"{chart} .gtitle").bounding_box(), page.locator(chart).bounding_box()
        assert box["x"] <= title["x"] and title["x"] + title["width"] <= box["x"] + box["width"], chart
    screenshot(page, "study-report")
    assert not page.js_errors, page.js_errors


def test_coordinator_plans_power_on_the_study_form_and_the_study_keeps_it(page, settings, tmp_path):
    from evaluation.models import Study
    from pipeline.models import Label
    from tests.factories import make_dataset

    settings.MEDIA_ROOT = tmp_path / "media"
    dataset = make_dataset(n_cases=3, prediction_sets=("unet-expert", "unet-ai", "partial"))
    Label.objects.filter(prediction_set__name="partial", case__external_id="case000").delete()  # 2 of 3 cases
    make_user("plan_coord", "coordinator")
    login(page, "plan_coord", "plan_coord-pass-123")
    page.goto("/studies/new/")
    page.fill("input[name=title]", "Planned study")
    page.select_option("select[name=dataset]", str(dataset.pk))
    first, second, partial = dataset.prediction_sets.order_by("pk")
    page.check(f"input[name=prediction_sets][value='{first.pk}']")
    assert page.input_value("#plan-cases") == "40"  # one set is no study yet: the planner's default stays
    page.check(f"input[name=prediction_sets][value='{second.pk}']")
    assert page.input_value("#plan-cases") == "3"  # the cases both sets predict: the study's own count
    page.check(f"input[name=prediction_sets][value='{partial.pk}']")
    assert page.input_value("#plan-cases") == "2"
    page.uncheck(f"input[name=prediction_sets][value='{partial.pk}']")
    page.select_option("select[name=primary_method]", "bootstrap")
    page.fill("#plan-readers", "4")
    page.fill("#plan-cases", "30")
    page.click("#plan-power")
    page.wait_for_function("document.querySelector('#plan-result').textContent.startsWith('power ')")
    line = page.inner_text("#plan-result")
    assert "4 readers x 30 cases" in line and "Monte Carlo SE" in line and "bootstrap" in line
    # the design changes with the form: the computed power is then stale, and cleared rather than recorded
    page.check(f"input[name=prediction_sets][value='{partial.pk}']")
    assert page.input_value("#plan-cases") == "2" and page.input_value("input[name=planned_power]") == ""
    assert "compute the power again" in page.inner_text("#plan-result")
    page.uncheck(f"input[name=prediction_sets][value='{partial.pk}']")
    page.fill("#plan-cases", "30")
    page.click("#plan-power")
    page.wait_for_function("document.querySelector('#plan-result').textContent.startsWith('power ')")
    assert page.inner_text("#plan-result") == line  # seeded: the same design gives the same answer
    screenshot(page, "study-form-planner")
    page.click("button[type=submit].primary")
    page.wait_for_selector("#study-status")
    study = Study.objects.get(title="Planned study")
    assert study.planned_power["line"] == line and study.primary_method == "bootstrap"
    assert "Planned power" in page.inner_text(".facts")
    assert not page.js_errors, page.js_errors
