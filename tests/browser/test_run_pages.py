"""An admin launches label generation from the page; a real Celery worker runs steps 1 and 2 on a 10-case
128x128x16 phantom dataset; the run pages show live curves, cluster maps and the QA chart."""

import pytest
from django.core.management import call_command

from pipeline.core.phantoms import write_phantom_dataset
from pipeline.models import ClusteringRun, Label, RefinementRun
from tests.browser.conftest import login, screenshot
from tests.factories import make_user
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker, pytest.mark.slow,
              pytest.mark.training]


def test_generate_labels_through_worker_with_live_pages(page, settings, tmp_path):
    from labelgen_web.celery import app

    app.control.purge()
    settings.MEDIA_ROOT = tmp_path / "media"
    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=10, size=128, depth=16, seed=11)
    call_command("import_cases", str(manifest), dataset="ph128", no_progress=True)
    make_user("b_admin", "admin")
    login(page, "b_admin", "b_admin-pass-123")
    page.click("text=Generate AI labels")
    page.select_option("select[name=dataset]", label="ph128")
    page.click("text=Step 1 parameters")
    page.fill("input[name=c_max_epochs]", "4")  # the fast preset, shortened for CI
    page.click("button:has-text('Launch on the gpu queue')")
    page.wait_for_selector("#run-state")
    run = ClusteringRun.objects.get()
    assert run.config["max_epochs"] == 4 and run.config["n_channels"] == 12
    with celery_worker() as proc:
        page.wait_for_selector("#run-state[data-status='running']", timeout=120_000)
        wait_for(lambda: ClusteringRun.objects.get().is_finished, timeout=600, proc=proc, message="clustering")
        page.wait_for_selector("#run-state[data-status='succeeded']", timeout=30_000)
        page.wait_for_selector("#chart-train_loss .main-svg", timeout=30_000)
        assert page.locator("#chart-train_loss .scatterlayer .trace").count() == 1
        # the fast preset keeps the epoch by VAL label agreement, and the page plots it
        assert run.config["keep_epoch_by"] == "val_labels"
        assert page.locator("#chart-val_agreement .scatterlayer .trace").count() == 1
        screenshot(page, "clustering-run-live")
        wait_for(lambda: RefinementRun.objects.get().is_finished, timeout=300, proc=proc, message="refinement")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.epochs_done == 4 and run.cluster_maps.count() == 10
    refinement = RefinementRun.objects.get()
    assert refinement.status == "succeeded", refinement.error
    assert Label.objects.filter(source="ai").count() == 10
    page.reload()
    page.wait_for_selector("#cluster-viewer[data-ready='1']", timeout=60_000)
    assert f"kept epoch {run.best_epoch} (by VAL label agreement)" in " ".join(page.text_content("main").split())
    screenshot(page, "clustering-run-clusters")
    page.goto(refinement.get_absolute_url())
    page.wait_for_selector("#qa-chart .main-svg", timeout=30_000)
    assert page.locator("#qa-table tbody tr").count() == 10
    screenshot(page, "refinement-run-qa")
    assert not page.js_errors, page.js_errors
