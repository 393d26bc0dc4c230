"""Running a :class:`~pipeline.models.Run` inside a Celery task: status, progress, events, cancel, errors.

Tasks stay thin: they look up their run and hand a function to :func:`execute`, which owns the run's
life cycle. A task redelivered after its worker died (``acks_late``) finds the run still RUNNING and
calls the function again; the function resumes from its own checkpoints.
"""

import functools
import logging
import socket
import subprocess
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .models import Run, RunEvent

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a run's body when its cancel flag is seen; the run ends as CANCELLED."""


@functools.cache
def code_version():
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=settings.BASE_DIR,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class RunContext:
    """What a run's body uses to report: ``progress``, ``event``, ``should_stop``, ``check_cancel``."""

    def __init__(self, run, *, cancel_poll_seconds=1.0, listener=None):
        self.run = run
        self.listener = listener
        self._cancel_poll = cancel_poll_seconds
        self._last_poll = 0.0
        self._cancelled = False

    def progress(self, percent, message=None):
        fields = {"progress": max(0.0, min(100.0, float(percent)))}
        if message is not None:
            fields["message"] = str(message)[:500]
        self.run.update_fields(**fields)
        if self.listener is not None:
            self.listener(fields["progress"], self.run.message)

    def event(self, step, values, series="train"):
        RunEvent.objects.update_or_create(run_id=self.run.pk, series=series, step=step,
                                          defaults={"values": values})

    def should_stop(self):
        """True once a cancel was requested (polled at most once per ``cancel_poll_seconds``)."""
        now = time.monotonic()
        if not self._cancelled and now - self._last_poll >= self._cancel_poll:
            self._last_poll = now
            self._cancelled = self.run.cancel_was_requested()
        return self._cancelled

    def check_cancel(self):
        if self.should_stop():
            raise Cancelled()


def execute(run_id, body, listener=None):
    """Run ``body(run, ctx)`` for the run with ``run_id``, recording its whole life cycle.

    ``listener(percent, message)``, if given, hears every progress update (commands draw a progress bar).
    """
    run = Run.objects.get(pk=run_id).specific()
    if run.is_finished:
        log.info("run %s already %s; nothing to do", run_id, run.status)
        return run.status
    if run.cancel_requested:
        run.update_fields(status=Run.Status.CANCELLED, finished_at=timezone.now(), message="Cancelled")
        return run.status
    run.update_fields(
        status=Run.Status.RUNNING,
        started_at=run.started_at or timezone.now(),
        attempts=run.attempts + 1,
        worker=socket.gethostname()[:200],
        code_version=code_version(),
        message="Resuming after a worker restart" if run.attempts else "Started",
    )
    ctx = RunContext(run, listener=listener)
    try:
        body(run, ctx)
    except Cancelled:
        run.update_fields(status=Run.Status.CANCELLED, finished_at=timezone.now(), message="Cancelled")
    except Exception as exc:
        log.exception("run %s failed", run_id)
        run.update_fields(status=Run.Status.FAILED, finished_at=timezone.now(),
                          message=f"Failed: {exc}"[:500], error=traceback.format_exc())
    else:
        run.update_fields(status=Run.Status.SUCCEEDED, finished_at=timezone.now(), progress=100.0,
                          message=run.message if run.message and run.message != "Started" else "Done")
    return run.status


def run_dir(run):
    """Where a run keeps checkpoints and artifacts: ``MEDIA_ROOT/runs/<id>/``."""
    path = Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)
    path.mkdir(parents=True, exist_ok=True)
    return path
