import pytest
from django.db import IntegrityError, transaction

from pipeline.models import Label
from tests.factories import make_dataset

pytestmark = pytest.mark.django_db


def test_factory_dataset_has_files_on_disk_and_constraints_hold(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    ds = make_dataset(n_cases=2)
    case = ds.cases.first()
    assert ds.modalities() == ["t1fsce", "t2"]
    assert all(img.path.exists() for img in case.images.all())
    expert = case.labels.get(source="expert")
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.create(case=case, source="expert", modality=expert.modality, rater=expert.rater,
                             file=expert.file, sha256="x", shape=[1, 1, 1], spacing=[1, 1, 1], affine=[],
                             voxel_count=1, volume_ml=0.001)
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.create(case=case, source="prediction", file=expert.file, sha256="x", shape=[1, 1, 1],
                             spacing=[1, 1, 1], affine=[], voxel_count=1, volume_ml=0.001)
