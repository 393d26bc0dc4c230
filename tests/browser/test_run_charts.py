"""The run page's live curves fit their cells: every chart lies inside its grid cell and the card, and
its x axis spans every recorded epoch (a 37-epoch training run whose chart used to be cut at epoch 11); a long
chart title wraps inside its chart."""

import pytest

from pipeline.models import ClusteringRun, Dataset, RunEvent, TrainingRun
from tests.browser.conftest import login, screenshot
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
EPOCHS = 37


@pytest.mark.parametrize("width", [1400, 1000])
def test_run_page_curves_stay_inside_their_cells(page, width):
    run = TrainingRun.objects.create(dataset=Dataset.objects.create(name="d"), label_source="expert",
                                     status="succeeded", progress=100.0)
    RunEvent.objects.bulk_create([RunEvent(run=run, step=e, values={"train_loss": 1.0 / e, "val_dice": e / EPOCHS})
                                  for e in range(1, EPOCHS + 1)])
    make_user("c_admin", "admin")
    page.set_viewport_size({"width": width, "height": 900})
    login(page, "c_admin", "c_admin-pass-123")
    page.goto(run.get_absolute_url())
    page.wait_for_selector("#chart-val_dice .main-svg")
    page.wait_for_timeout(300)  # let plotly's responsive resize settle
    boxes = page.evaluate("""() => {
      const grid = document.getElementById('run-charts').getBoundingClientRect();
      return [...document.querySelectorAll('#run-charts .chart')].map(el => {
        const svg = el.querySelector('.main-svg').getBoundingClientRect();
        const cell = el.getBoundingClientRect();
        return {id: el.id, svgLeft: svg.left, svgRight: svg.right, cellLeft: cell.left, cellRight: cell.right,
                gridRight: grid.right, range: el._fullLayout.xaxis.range,
                title: !!el.querySelector('.gtitle')};
      });
    }""")
    assert [b["id"] for b in boxes] == ["chart-train_loss", "chart-val_dice"]
    for b in boxes:
        assert b["cellRight"] <= b["gridRight"] + 1, b  # the cell stays in the grid
        assert b["svgLeft"] >= b["cellLeft"] - 1 and b["svgRight"] <= b["cellRight"] + 1, b  # the plot in its cell
        assert b["range"][0] <= 1 and b["range"][1] >= EPOCHS, b  # every epoch drawn
        assert b["title"], b
    screenshot(page, f"run-charts-{width}")
    assert not page.js_errors, page.js_errors


def test_a_long_chart_title_wraps_inside_its_chart(page):
    run = ClusteringRun.objects.create(dataset=Dataset.objects.create(name="d"), status="succeeded", progress=100.0,
                                       config={"keep_epoch_by": "val_labels"})
    RunEvent.objects.bulk_create([RunEvent(run=run, step=e, values={
        "train_loss": 1.0 / e, "val_loss": 1.0 / e, "n_clusters": 20 - e, "val_agreement": e / 10})
        for e in range(1, 11)])
    make_user("c_admin", "admin")
    login(page, "c_admin", "c_admin-pass-123")
    page.goto(run.get_absolute_url())
    page.wait_for_selector("#chart-val_agreement .gtitle")
    page.wait_for_timeout(300)
    title, cell = page.evaluate("""() => {
      const el = document.getElementById('chart-val_agreement'), box = (e) => e.getBoundingClientRect().toJSON();
      return [box(el.querySelector('.gtitle')), box(el)];
    }""")
    assert cell["left"] - 1 <= title["left"] and title["right"] <= cell["right"] + 1, (title, cell)
    assert title["height"] > 25  # on two lines
    screenshot(page, "run-charts-clustering")
    assert not page.js_errors, page.js_errors


def test_the_live_page_follows_the_run_to_its_end(page):
    """While it runs, the epoch count follows the curves; when it finishes, the page is drawn again (no Cancel
    button, its start time and code version), without a reload by hand."""
    run = TrainingRun.objects.create(dataset=Dataset.objects.create(name="d"), label_source="expert",
                                     status="running", progress=10.0, config={"max_epochs": 5})
    make_user("c_admin", "admin")
    login(page, "c_admin", "c_admin-pass-123")
    page.goto(run.get_absolute_url())
    page.wait_for_selector("#run-state[data-status='running']")
    assert page.locator("button:has-text('Cancel')").count() == 1
    RunEvent.objects.bulk_create([RunEvent(run=run, step=e, values={"train_loss": 1.0 / e}) for e in (1, 2)])
    page.wait_for_function("document.querySelector('[data-epochs-done]').textContent === '2'", timeout=10_000)
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", progress=100.0, epochs_done=5,
                                                 code_version="abc123def456")
    page.wait_for_selector("button:has-text('Cancel')", state="detached", timeout=10_000)
    page.wait_for_selector("#run-state[data-status='succeeded']")
    text = " ".join(page.text_content("main").split())
    assert "epochs 5 / 5" in text and "abc123def456" in text
    assert not page.js_errors, page.js_errors
