"""Sparse radiologist input through the whole pipeline: import with the manifest's input column, step 1 kept
by VAL labels that are sparse, step 2 from mixed kinds, and the refusals that name the file and reason."""

import csv
import io

import nibabel as nib
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from pipeline.core.io.nifti import load_volume
from pipeline.core.metrics import dice
from pipeline.labelgen.runs import val_target
from pipeline.models import Case, Label, LabelQA
from tests.factories import import_phantoms

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
KINDS = ("slices", "scribbles", "box", "slices", "scribbles", "box", "box", "scribbles", "slices", "slices")
TINY = "height: 32\nwidth: 32\ndepth: 8\nn_channels: 4\nmax_epochs: 3\npatience: 3\nbatch_size: 2\n"


def test_import_keeps_each_kinds_values(tmp_path):
    dataset = import_phantoms(tmp_path, n_cases=3, sparse_kinds=("slices", "scribbles", "box"))
    quick = {lab.case.external_id: lab for lab in Label.objects.filter(case__dataset=dataset, rater="quick")}
    assert {k: lab.input for k, lab in quick.items()} == {"case000": "slices", "case001": "scribbles",
                                                        "case002": "box"}
    scribbles = load_volume(quick["case001"].path, kind="label").data
    assert set(np.unique(scribbles)) == {0, 1, 2}  # background strokes are kept, not made binary
    assert quick["case001"].voxel_count == int((scribbles == 1).sum())


def rewrite(manifest, case, kind, data):
    """Point the sparse row of ``case`` at a new file holding ``data``."""
    rows = list(csv.DictReader(open(manifest, newline="")))
    row = next(r for r in rows if r["case"] == case and r["rater"] == "quick")
    ref = nib.load(manifest.parent / row["file"])
    name = f"{case}_bad_{kind}.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.uint8), ref.affine), manifest.parent / name)
    row.update(file=name, input=kind)
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return name


@pytest.mark.parametrize("kind,values,reason", [
    ("scribbles", 3, "found value(s) 3"),
    ("box", 0, "this box input marks no voxel"),
    ("slices", 2, "holds only 0 and 1"),
])
def test_import_refuses_input_that_does_not_fit_its_kind(tmp_path, kind, values, reason):
    from pipeline.core.phantoms import write_phantom_dataset

    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=2, size=32, depth=8, seed=5,
                                     sparse_kinds=("scribbles", "box"))
    data = np.zeros((32, 32, 8))
    data[10:14, 10:14, 3] = values
    name = rewrite(manifest, "case001", kind, data)
    out = io.StringIO()
    with pytest.raises(CommandError, match="case001"):
        call_command("import_cases", str(manifest), dataset="bad", no_progress=True, stdout=out, stderr=out)
    text = out.getvalue()
    assert name in text and reason in text
    assert not Case.objects.filter(dataset__name="bad", external_id="case001").exists()  # the whole case
    assert Case.objects.filter(dataset__name="bad", external_id="case000").exists()  # the others import


def test_unknown_input_in_the_manifest_names_the_line(tmp_path):
    from pipeline.core.phantoms import write_phantom_dataset

    manifest = write_phantom_dataset(tmp_path / "ph", n_cases=1, size=32, depth=8, seed=5)
    text = manifest.read_text().replace(",outline\n", ",lasso\n", 1)
    manifest.write_text(text)
    with pytest.raises(CommandError, match=r"line \d+: unknown input 'lasso'"):
        call_command("import_cases", str(manifest), dataset="bad", no_progress=True, stdout=io.StringIO())


def test_val_target_from_sparse_input_only(tmp_path):
    dataset = import_phantoms(tmp_path, n_cases=3, sparse_kinds=("slices", "scribbles", "box"))
    Label.objects.filter(case__dataset=dataset, source="expert").exclude(rater="quick").delete()
    for case in Case.objects.filter(dataset=dataset).prefetch_related("labels", "images"):
        target = val_target(case)
        truth = load_volume(case.labels.get(source="truth").path, kind="label").data > 0
        assert target.shape == truth.shape and dice(target > 0, truth) > 0.3, case.external_id


@pytest.mark.training
def test_generate_labels_on_ten_cases_with_mixed_kinds(tmp_path, capsys):
    dataset = import_phantoms(tmp_path, n_cases=10, sparse_kinds=KINDS)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    # only the quick rater's sparse input, for the VAL labels (keep_epoch_by val_labels) and step 2
    Label.objects.filter(case__dataset=dataset, source="expert").exclude(rater="quick").delete()
    call_command("generate_labels", dataset="tiny", config=str(config))
    assert "mean Dice AI vs truth" in capsys.readouterr().out
    ai = {lab.case.external_id: lab for lab in Label.objects.filter(case__dataset=dataset, source="ai")}
    assert sorted(ai) == [f"case{i:03d}" for i in range(10)]
    qas = list(LabelQA.objects.filter(case__dataset=dataset))
    assert len(qas) == 10 and all(0 <= qa.vs_truth["dice"] <= 1 for qa in qas)
    # sparse input is not an outline to score the AI label against: no per-rater figures, only the extent
    assert all(qa.per_rater == {} and "dice" in qa.vs_expert for qa in qas)

