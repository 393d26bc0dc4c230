"""What the run commands share: a tqdm bar fed by the run's progress, and running in-process or queued."""

from django.core.management.base import CommandError
from tqdm import tqdm

from pipeline.models import Run
from pipeline.runs.execution import execute


def run_here(command, run, body, label):
    """Execute ``body`` for ``run`` in this process with a progress bar; raise CommandError unless it succeeds."""
    bar = tqdm(total=100, desc=label, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}] {postfix}",
               file=command.stderr)

    def listener(percent, message):
        bar.n = percent
        bar.set_postfix_str((message or "")[:70])

    status = execute(run.pk, body, listener=listener)
    bar.close()
    run.refresh_from_db()
    if status != Run.Status.SUCCEEDED:
        raise CommandError(f"{run} {status}: {run.message}")
    return run
