from celery import shared_task


@shared_task(acks_late=True)
def compute_full_report(study_pk, fingerprint=None):
    """The slow part of a study report (its mixed models), off the request path (default queue)."""
    from evaluation.reports import compute_full_report as compute

    compute(study_pk, fingerprint)


@shared_task(acks_late=True)
def prepare_study_volumes(study_pk):
    """Fill the viewer cache with a newly opened study's volumes (default queue)."""
    from evaluation.models import Study
    from evaluation.volumes import prepare_study_volumes as prepare

    study = Study.objects.filter(pk=study_pk).first()
    return prepare(study) if study is not None else 0
