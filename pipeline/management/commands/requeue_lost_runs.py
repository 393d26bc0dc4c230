from django.conf import settings
from django.core.management.base import BaseCommand

from pipeline.models import Run
from pipeline.runs.execution import requeue_lost_runs


class Command(BaseCommand):
    help = ("Re-queue running runs whose worker stopped heartbeating for LABELGEN_RUN_LOST_SECONDS (every worker "
            "already does this every LABELGEN_RUN_CHECK_SECONDS; this is the same check, by hand).")

    def handle(self, **options):
        handled = requeue_lost_runs()
        for run in Run.objects.filter(pk__in=handled):
            self.stdout.write(f"{run}: {run.message}")
        self.stdout.write(self.style.SUCCESS(
            f"{len(handled)} lost run(s) handled (lost after {settings.LABELGEN_RUN_LOST_SECONDS} s without a "
            "heartbeat)"))
