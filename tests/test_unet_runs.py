"""U-Net training runs and comparisons: same config and seed per arm, predictions on the original grid,
metrics, predict from an export without the database, external prediction sets."""

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from pipeline.models import CaseMetric, ComparisonRun, Label, PredictionSet, TrainingRun
from pipeline.runs.execution import run_dir
from tests.factories import import_phantoms

pytestmark = [pytest.mark.django_db, pytest.mark.training]
ROOT = Path(__file__).resolve().parent.parent
TINY = "height: 32\nwidth: 32\ndepth: 8\nmax_epochs: 3\nchannels: [4, 8, 16]\n"


@pytest.fixture
def tiny(media, tmp_path):
    dataset = import_phantoms(tmp_path, n_cases=5, seed=9)
    config = tmp_path / "unet.yaml"
    config.write_text(TINY)
    return {"dataset": dataset, "config": str(config), "tmp": tmp_path,
            "folder": tmp_path / "ph"}


def test_compare_models_trains_arms_identically_and_predicts_test(tiny, capsys):
    call_command("compare_models", dataset="tiny", arms="expert,truth", config=tiny["config"])
    out = capsys.readouterr().out
    comparison = ComparisonRun.objects.get()
    arms = list(comparison.arms_runs.order_by("id"))
    assert comparison.status == "succeeded" and [a.label_source for a in arms] == ["expert", "truth"]
    assert arms[0].config == arms[1].config and arms[0].config["seed"] == 0  # only the labels differ
    for arm in arms:
        assert arm.prediction_set.name in out
        assert arm.events.filter(series=arm.arm_name).count() == arm.epochs_done == 3
    test_cases = list(tiny["dataset"].cases.filter(split="TEST"))
    for arm in arms:
        preds = Label.objects.filter(prediction_set=arm.prediction_set)
        assert sorted(p.case_id for p in preds) == sorted(c.pk for c in test_cases)
        for pred in preds:
            image = pred.case.reference_image()
            stored = nib.load(pred.path)
            assert stored.shape == tuple(image.shape) and np.allclose(stored.affine, image.affine)
        assert CaseMetric.objects.filter(run=arm, reference="truth").count() == len(test_cases)
    summary = comparison.summary
    assert set(summary["arms"]) == {"expert", "truth"}
    test = summary["paired_tests"]["dice_vs_truth"]
    assert (test["a"], test["b"], test["reference"]) == ("expert", "truth", "truth")  # which way it goes
    assert test["mean_difference"] == pytest.approx(test["mean_a"] - test["mean_b"])
    assert f"Dice vs truth, expert minus truth: mean difference {test['mean_difference']:+.3f}" in out


def test_comparison_page_says_which_way_the_difference_goes_and_no_worker_facts(tiny, client_for, admin_user):
    call_command("compare_models", dataset="tiny", arms="expert,truth", config=tiny["config"])
    html = client_for(admin_user).get(ComparisonRun.objects.get().get_absolute_url()).content.decode()
    assert "Dice vs truth, expert minus truth per case: mean difference" in html
    assert "Attempts" not in html and "Code version" not in html  # the arms ran, not the comparison
    arm = TrainingRun.objects.first()
    assert "Attempts" in client_for(admin_user).get(arm.get_absolute_url()).content.decode()
    assert [TrainingRun(label_source=s).labels_in_a_sentence for s in ("expert", "ai", "truth")] == [
        "expert labels", "AI-assisted labels", "truth (phantoms)"]


def test_predict_from_export_needs_no_database(tiny):
    call_command("train_unet", dataset="tiny", labels="truth", config=tiny["config"])
    export = run_dir(TrainingRun.objects.get()) / "export"
    out = tiny["tmp"] / "pred"
    code = ("import sys; sys.argv = ['manage.py', 'predict', '--model', sys.argv[1], '--images', sys.argv[2], "
            "'--out', sys.argv[3]]; import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'labelgen_web.settings'; "
            "from django.core.management import execute_from_command_line; execute_from_command_line(sys.argv)")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none"  # any database access would fail
    result = subprocess.run([sys.executable, "-c", code, str(export), str(tiny["folder"]), str(out)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"case{i:03d}_prediction.nii.gz" for i in range(5)]
    source = nib.load(tiny["folder"] / "case000_t1fsce.nii.gz")
    pred = nib.load(out / "case000_prediction.nii.gz")
    assert pred.shape == source.shape and np.allclose(pred.affine, source.affine)


def test_arm_without_labels_is_refused(tiny):
    with pytest.raises(CommandError, match="no TRAIN case with a ai label"):
        call_command("compare_models", dataset="tiny", arms="expert,ai", config=tiny["config"])
    with pytest.raises(CommandError, match="unknown arm 'experts'"):
        call_command("train_unet", dataset="tiny", labels="experts", config=tiny["config"])
    assert not TrainingRun.objects.exists() and not ComparisonRun.objects.exists()


def test_import_external_predictions_validates_grids(tiny):
    folder = tiny["tmp"] / "nnunet"
    folder.mkdir()
    for case in tiny["dataset"].cases.all():
        img = nib.load(case.reference_image().path)
        nib.save(nib.Nifti1Image((np.asarray(img.dataobj) > 0).astype(np.uint8), img.affine),
                 str(folder / f"{case.external_id}.nii.gz"))
    call_command("import_predictions", str(folder), dataset="tiny", set_name="nnunet")
    assert Label.objects.filter(prediction_set__name="nnunet").count() == 5
    bad = tiny["tmp"] / "bad"
    bad.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 4), np.uint8), np.eye(4)), str(bad / "case000.nii.gz"))
    with pytest.raises(CommandError, match="refused"):
        call_command("import_predictions", str(bad), dataset="tiny", set_name="other")
    assert not PredictionSet.objects.filter(name="other", labels__isnull=False).exists()


def test_a_training_run_trains_on_the_worker_s_device(tiny, settings):
    """LABELGEN_DEVICE (one worker per GPU) is where a run whose config says "auto" trains: here a GPU this
    machine lacks, so the run fails naming it instead of landing on the first device."""
    from pipeline.runs.execution import execute
    from pipeline.runs.presets import unet_config
    from pipeline.unet.runs import run_training

    settings.LABELGEN_DEVICE = "cuda:99"
    run = TrainingRun.objects.create(dataset=tiny["dataset"], label_source="truth",
                                     config=unet_config("fast", {"max_epochs": 1}).to_dict())
    assert run.config["device"] == "auto" and execute(run.pk, run_training) == "failed"
    run.refresh_from_db()
    assert "'cuda:99'" in run.message and "not available" in run.message
