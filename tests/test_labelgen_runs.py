"""Steps 1 and 2 as runs: commands, stored outputs on the original grid, bad input, cancel, resume."""

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from pipeline.core.io.nifti import load_volume
from pipeline.labelgen.runs import run_clustering, run_refinement
from pipeline.models import Case, ClusteringRun, ClusterMap, Label, LabelQA, RefinementRun
from pipeline.runs.execution import execute
from tests.factories import import_phantoms

pytestmark = [pytest.mark.django_db, pytest.mark.training]
TINY = "height: 32\nwidth: 32\ndepth: 8\nn_channels: 4\nmax_epochs: 3\npatience: 3\nbatch_size: 2\n"


@pytest.fixture
def tiny(media, tmp_path):
    dataset = import_phantoms(tmp_path, n_cases=4, seed=5)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    return {"dataset": dataset, "config": str(config), "tmp": tmp_path}


def test_generate_labels_end_to_end_and_export(tiny, capsys):
    call_command("generate_labels", dataset="tiny", config=tiny["config"])
    out = capsys.readouterr().out
    assert "mean Dice AI vs truth" in out and "case000" in out
    clustering = ClusteringRun.objects.get()
    assert clustering.status == "succeeded" and clustering.epochs_done == 3 and clustering.best_epoch >= 1
    assert clustering.events.count() == 3
    assert {"train_loss", "val_loss", "n_clusters"} <= set(clustering.events.first().values)
    # the fast preset keeps the epoch whose VAL clusters best rebuild the VAL cases' expert labels
    agreement = [e.values["val_agreement"] for e in clustering.events.order_by("step")]
    assert all(0 <= a <= 1 for a in agreement)
    assert clustering.best_epoch == 1 + int(np.argmax(agreement))
    for cluster_map in ClusterMap.objects.select_related("case"):
        image = cluster_map.case.reference_image()
        stored = nib.load(cluster_map.path)
        assert stored.shape == tuple(image.shape) and np.allclose(stored.affine, image.affine)
        assert stored.get_data_dtype() == np.uint16 and cluster_map.n_clusters >= 1
    refinement = RefinementRun.objects.get()
    assert refinement.status == "succeeded"
    ai = Label.objects.filter(source="ai")
    assert ai.count() == 4 and all(lab.run_id == refinement.pk for lab in ai)
    qa = LabelQA.objects.first()
    assert {"expert (combined)", "truth", "truth vs expert (combined)"} <= set(qa.metrics)
    assert 0 <= qa.metrics["truth"]["dice"] <= 1
    call_command("export_labels", dataset="tiny", source="ai", out=str(tiny["tmp"] / "ai"))
    exported = sorted(p.name for p in (tiny["tmp"] / "ai").iterdir())
    assert exported == [f"case{i:03d}_ai.nii.gz" for i in range(4)]


def test_generate_labels_for_one_split_and_one_rater(tiny):
    call_command("generate_labels", dataset="tiny", config=tiny["config"], split=["TRAIN"], expert_rater="r2")
    ai = Label.objects.filter(source="ai")
    assert set(ai.values_list("rater", flat=True)) == {"r2"}
    assert set(ai.values_list("case__split", flat=True)) == {"TRAIN"}


def test_bad_inputs_are_refused_before_training(tiny):
    Case.objects.filter(dataset=tiny["dataset"], split="VAL").update(split="TRAIN")
    with pytest.raises(CommandError, match="has no VAL cases"):
        call_command("train_clustering", dataset="tiny", config=tiny["config"])
    case = Case.objects.filter(dataset=tiny["dataset"]).first()
    case.split = "VAL"
    case.save()
    Label.objects.filter(case=case, source="expert").delete()  # the only VAL case now has no rough label
    with pytest.raises(CommandError, match="keep_epoch_by 'val_labels' needs expert labels on VAL cases"):
        call_command("train_clustering", dataset="tiny", config=tiny["config"])
    with pytest.raises(CommandError, match="too small"):
        call_command("train_clustering", dataset="tiny", preset="paper")
    case.images.filter(modality="t2").delete()
    with pytest.raises(CommandError, match=f"case {case.external_id} has no t2 image"):
        call_command("train_clustering", dataset="tiny", config=tiny["config"])
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("train_clustering", dataset="nope")
    assert not ClusteringRun.objects.exists()


def test_config_file_unknown_key_and_bad_value(tiny):
    bad = tiny["tmp"] / "bad.yaml"
    bad.write_text("heigth: 32\n")
    with pytest.raises(CommandError, match="unknown key 'heigth'"):
        call_command("generate_labels", dataset="tiny", config=str(bad))
    bad.write_text(TINY + "lr: -1\n")
    with pytest.raises(CommandError, match="lr must be > 0"):
        call_command("train_clustering", dataset="tiny", config=str(bad))
    bad.write_text(TINY + "max_ratio: 0\n")
    with pytest.raises(CommandError, match="max_ratio"):
        call_command("generate_labels", dataset="tiny", config=str(bad))


def make_run(tiny, **config):
    import yaml

    from pipeline.runs.presets import clustering_config

    base = yaml.safe_load(TINY) | config
    return ClusteringRun.objects.create(dataset=tiny["dataset"], config=clustering_config("fast", base).to_dict())


def test_cancel_stops_within_an_epoch(tiny):
    run = make_run(tiny, max_epochs=50, patience=50)
    calls = []

    def body(r, ctx):
        original = ctx.event

        def event(step, values, series="train"):
            original(step, values, series)
            calls.append(step)
            if step == 2:
                ClusteringRun.objects.get(pk=r.pk).request_cancel()
                ctx._cancel_poll = 0

        ctx.event = event
        run_clustering(r, ctx)

    assert execute(run.pk, body) == "cancelled"
    run.refresh_from_db()
    assert calls == [1, 2] and run.status == "cancelled" and not run.cluster_maps.exists()


class WorkerDied(BaseException):
    """Not an Exception: like a killed worker, it escapes execute() and leaves the run RUNNING."""


def test_resume_after_worker_death_continues_from_last_epoch(tiny, settings):
    settings.LABELGEN_RUN_LOST_SECONDS = 1  # the redelivery waits until the dead worker's heartbeat is this old
    run = make_run(tiny, max_epochs=4, patience=10)

    def dying(r, ctx):
        original = ctx.event

        def event(step, values, series="train"):
            original(step, values, series)
            if step == 2:
                raise WorkerDied()

        ctx.event = event
        run_clustering(r, ctx)

    with pytest.raises(WorkerDied):
        execute(run.pk, dying)
    run.refresh_from_db()
    assert run.status == "running" and run.epochs_done == 2
    assert execute(run.pk, run_clustering) == "succeeded"  # the redelivered task
    run.refresh_from_db()
    assert run.attempts == 2 and run.epochs_done == 4
    assert sorted(run.events.values_list("step", flat=True)) == [1, 2, 3, 4]
    assert run.cluster_maps.count() == 4


def test_launch_form_passes_min_inside_to_the_refinement(tiny, client_for, admin_user):
    c = client_for(admin_user)
    url = reverse("pipeline:clustering_launch")
    post = {"dataset": tiny["dataset"].pk, "preset": "fast", "refine": "on", "c_max_epochs": "2"}
    bad = c.post(url, {**post, "r_min_inside": "1.5"})
    assert bad.status_code == 400 and "min_inside must be a number in [0, 1]" in bad.content.decode()
    assert not ClusteringRun.objects.exists() and not RefinementRun.objects.exists()
    ok = c.post(url, {**post, "r_min_inside": "0.3"})
    assert ok.status_code == 302
    assert RefinementRun.objects.get().config["min_inside"] == 0.3
    c.post(url, post)  # left blank: labelgen's default
    assert RefinementRun.objects.latest("pk").config["min_inside"] == 0.5


def test_a_run_configured_before_min_inside_keeps_the_published_rules(tiny):
    call_command("generate_labels", dataset="tiny", config=tiny["config"])
    clustering = ClusteringRun.objects.get()

    def refine(config):
        run = RefinementRun.objects.create(dataset=tiny["dataset"], clustering_run=clustering, config=config)
        assert execute(run.pk, run_refinement) == "succeeded"
        return {lab.case_id: load_volume(lab.path, kind="label").data for lab in Label.objects.filter(run=run)}

    old_style = {k: v for k, v in RefinementRun.objects.get().config.items() if k != "min_inside"}
    published, default, old = (refine({**old_style, "min_inside": 0.0}), refine({**old_style, "min_inside": 0.5}),
                               refine(old_style))
    assert any(not np.array_equal(published[c], default[c]) for c in published)  # the rule matters here
    assert all(np.array_equal(old[c], published[c]) for c in published)


def _expected_combined_dice(case, rater=""):
    from pipeline.core.metrics import dice
    from pipeline.core.refinement.combine import combine_raters

    experts = [lab for lab in case.labels.all() if lab.source == "expert" and (not rater or lab.rater == rater)]
    masks = [load_volume(lab.path, kind="label").data > 0 for lab in experts]
    truth = load_volume(case.labels.get(source="truth").path, kind="label").data > 0
    staple = combine_raters(masks, [lab.rater for lab in experts], "staple")
    flat = combine_raters(masks, None, "staple")  # every label a rater: t1 and t2 outlines "disagree"
    return dice(staple, truth), dice(flat, truth), dice(np.logical_or.reduce(masks), truth)


def test_refinement_unites_each_raters_outlines_then_merges_raters_with_staple(tiny):
    call_command("generate_labels", dataset="tiny", config=tiny["config"])
    run = RefinementRun.objects.get()
    assert run.config["combine"] == "staple"
    differs = 0
    for qa in LabelQA.objects.filter(run=run).select_related("case"):
        grouped, flat, union = _expected_combined_dice(qa.case)
        assert qa.metrics["truth vs expert (combined)"]["dice"] == pytest.approx(grouped)
        differs += abs(grouped - flat) > 1e-6
    assert differs  # the grouping matters on these cases
    # one rater: their t1 and t2 outlines are united (as published), whatever the method
    call_command("generate_labels", dataset="tiny", config=tiny["config"], expert_rater="r2")
    single = RefinementRun.objects.filter(config__expert_rater="r2").get()
    for qa in LabelQA.objects.filter(run=single).select_related("case"):
        _, _, union = _expected_combined_dice(qa.case, "r2")
        assert qa.metrics["truth vs expert (combined)"]["dice"] == pytest.approx(union)


def test_launch_form_names_parameters_in_words_and_opens_the_section_of_a_bad_one(tiny, client_for, admin_user):
    c = client_for(admin_user)
    page = c.get(reverse("pipeline:clustering_launch")).content.decode()
    assert "Continuity weight (μ)" in page and "config key mu" in page and "Convolution layers" in page
    assert "<details open>" not in page  # both parameter sections start collapsed
    bad = c.post(reverse("pipeline:clustering_launch"),
                 {"dataset": tiny["dataset"].pk, "preset": "fast", "refine": "on", "c_mu": "-1"})
    assert bad.status_code == 400
    form = bad.context["form"]
    assert list(form.errors) == ["c_mu"] and "mu" in form.errors["c_mu"][0]
    html = bad.content.decode()
    step1, step2 = html.index("Step 1 parameters"), html.index("Step 2 parameters")
    assert html.rfind("<details open>", 0, step1) != -1  # step 1 opens on its bad field
    assert html.rfind("<details open>", step1, step2) == -1  # step 2 stays closed
    assert not ClusteringRun.objects.exists()


def test_cpu_bf16_on_a_cpu_without_native_bfloat16_trains_in_float32_and_says_so(tiny, monkeypatch):
    """Emulated bfloat16 made an AVX2-only CPU about 100x slower: the run falls back to float32 and its history
    tells why."""
    monkeypatch.setattr("pipeline.core.device.cpu_bfloat16_is_native", lambda: False)
    run = make_run(tiny, max_epochs=1, patience=1, cpu_bf16=True)
    with pytest.warns(RuntimeWarning, match="cpu_bf16 ignored"):
        assert execute(run.pk, run_clustering) == "succeeded"
    run.refresh_from_db()
    assert any("cpu_bf16 ignored" in entry["text"] and "float32" in entry["text"] for entry in run.history)


def test_a_run_trains_on_the_worker_s_device_unless_it_names_its_own(tiny, settings):
    """One worker per GPU (LABELGEN_DEVICE=cuda:N): a run whose config says "auto" trains on the worker's device
    (here a GPU no machine has, so it fails naming it); a run that names a device keeps it."""
    settings.LABELGEN_DEVICE = "cuda:99"
    run = make_run(tiny, max_epochs=1, patience=1)
    assert run.config["device"] == "auto"
    assert execute(run.pk, run_clustering) == "failed"
    run.refresh_from_db()
    assert "'cuda:99'" in run.message and "not available" in run.message
    typed = make_run(tiny, max_epochs=1, patience=1, device=" Auto ")  # auto as the config reads it
    assert execute(typed.pk, run_clustering) == "failed" and "'cuda:99'" in ClusteringRun.objects.get(pk=typed.pk).message
    own = make_run(tiny, max_epochs=1, patience=1, device="cpu")
    assert execute(own.pk, run_clustering) == "succeeded"
    own.refresh_from_db()
    assert own.device.startswith("cpu") and own.peak_memory_mb > 0


def test_time_left_never_says_zero_minutes():
    from pipeline.labelgen.runs import time_left

    assert time_left(38 * 0.8) == "under a minute left"  # 38 epochs of 0.8 s said "at most 0 min left"
    assert time_left(59.9) == "under a minute left" and time_left(600) == "at most 10 min left"
