from celery import shared_task


@shared_task(acks_late=True)
def compute_mixed_models(study_pk, fingerprint):
    """The slow part of a study report, off the request path (default queue)."""
    from evaluation.reports import compute_mixed_models as compute

    compute(study_pk, fingerprint)
