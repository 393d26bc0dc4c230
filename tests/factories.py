"""The shared test factories: users with a role, datasets made directly in the database and MEDIA_ROOT, and
blind studies over them. Fixtures (``media``, role users) are in tests/conftest.py."""

from pathlib import Path

import numpy as np

from pipeline.datasets.storage import store_volume
from pipeline.models import Case, Dataset, Image, Label, PredictionSet

AFFINE = np.diag([1.0, 1.0, 3.0, 1.0])


def blob(shape, center, radius):
    grid = np.indices(shape).astype(np.float32)
    d2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radius, strict=True))
    return (d2 <= 1).astype(np.uint8)


def add_image(case, modality, data, affine=AFFINE):
    relpath, _ = store_volume(data.astype(np.float32), affine)
    return Image.objects.create(
        case=case, modality=modality, file=relpath, sha256=relpath.split("/")[-1][:64], shape=list(data.shape),
        spacing=[float(abs(affine[i, i])) for i in range(3)], affine=np.asarray(affine).tolist(),
        dtype="float32", intensity_min=float(data.min()), intensity_max=float(data.max()),
    )


def add_label(case, mask, *, source="expert", modality="", rater="", prediction_set=None, affine=AFFINE):
    relpath, _ = store_volume(mask.astype(np.uint8), affine)
    voxels = int(mask.sum())
    return Label.objects.create(
        case=case, source=source, modality=modality, rater=rater, prediction_set=prediction_set, file=relpath,
        sha256=relpath.split("/")[-1][:64], shape=list(mask.shape), affine=np.asarray(affine).tolist(),
        spacing=[float(abs(affine[i, i])) for i in range(3)], voxel_count=voxels,
        volume_ml=voxels * float(np.prod(np.abs(np.diag(affine)[:3]))) / 1000.0,
    )


def make_dataset(name="demo", n_cases=4, shape=(32, 32, 8), modalities=("t1fsce", "t2"),
                 prediction_sets=("unet-expert", "unet-ai"), seed=0):
    """A dataset whose cases each have every modality, an expert label, truth and one prediction per set.

    Prediction sets differ systematically (each one's masks have a different radius) so tests can tell
    which set a served volume came from.
    """
    rng = np.random.default_rng(seed)
    dataset = Dataset.objects.create(name=name)
    sets = [PredictionSet.objects.create(dataset=dataset, name=s) for s in prediction_sets]
    splits = ["TRAIN", "VAL", "TEST"]
    for i in range(n_cases):
        case = Case.objects.create(dataset=dataset, external_id=f"case{i:03d}", split=splits[i % 3])
        center = (shape[0] / 2 + rng.integers(-3, 4), shape[1] / 2 + rng.integers(-3, 4), shape[2] / 2)
        truth = blob(shape, center, (6, 5, 2.5))
        for m in modalities:
            add_image(case, m, rng.normal(100, 10, shape) + 80 * truth)
        add_label(case, truth, source="truth")
        add_label(case, blob(shape, center, (7, 6, 2.5)), source="expert", modality=modalities[0], rater="r1")
        for k, pset in enumerate(sets):
            add_label(case, blob(shape, center, (4 + 2 * k, 4 + k, 2.5)), source="prediction", prediction_set=pset)
    return dataset


def make_user(username, role):
    from django.contrib.auth.models import Group, User

    from accounts.roles import GROUPS

    user = User.objects.create_user(username=username, password=f"{username}-pass-123")
    if role:
        user.groups.add(Group.objects.get_or_create(name=GROUPS[role])[0])
    return user

def make_study(*, n_cases=4, readers=(), prediction_sets=("unet-expert", "unet-ai"), name="demo", open_now=True,
               **settings):
    """A dataset from tests.factories and a study over all its prediction sets, assigned to ``readers``."""
    from evaluation.services import create_study
    from tests.factories import make_dataset

    dataset = make_dataset(name=name, n_cases=n_cases, prediction_sets=prediction_sets)
    return create_study(dataset=dataset, prediction_sets=list(dataset.prediction_sets.order_by("pk")),
                        title=f"Study of {name}", readers=readers, open_now=open_now and bool(readers), seed=7,
                        **settings)


def import_phantoms(folder, name="tiny", *, n_cases=4, size=32, depth=8, seed=5, sparse_kinds=()):
    """A phantom dataset written under ``folder`` and imported through ``import_cases`` (MEDIA_ROOT must be set)."""
    from django.core.management import call_command

    from pipeline.core.phantoms import write_phantom_dataset

    manifest = write_phantom_dataset(Path(folder) / "ph", n_cases=n_cases, size=size, depth=depth, seed=seed,
                                     sparse_kinds=sparse_kinds)
    call_command("import_cases", str(manifest), dataset=name, no_progress=True)
    return Dataset.objects.get(name=name)
