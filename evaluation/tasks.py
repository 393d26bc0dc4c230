from celery import shared_task


@shared_task(acks_late=True)
def compute_full_report(study_pk, fingerprint=None):
    """The slow part of a study report (its mixed models), off the request path (default queue)."""
    from evaluation.reports import compute_full_report as compute

    compute(study_pk, fingerprint)
