"""Running a :class:`~pipeline.models.Run` inside a Celery task: status, progress, events, cancel, errors,
and surviving a dead worker.

Tasks stay thin: they look up their run and hand a function to :func:`execute`, which owns the run's
life cycle. A delivery first *claims* the run with a fresh lease token; while it works, every progress
update, event and cancel poll doubles as a heartbeat (at least every ``LABELGEN_RUN_HEARTBEAT_SECONDS``).
A worker that dies (SIGKILL, a lost machine) stops heartbeating: every worker checks every
``LABELGEN_RUN_CHECK_SECONDS`` for runs whose heartbeat is older than ``LABELGEN_RUN_LOST_SECONDS`` and
re-queues them (:func:`requeue_lost_runs`), at most ``LABELGEN_RUN_MAX_ATTEMPTS`` deliveries in all; the
new delivery resumes from the run's own checkpoints. A delivery that finds the run held by a live worker
waits for it to finish or go silent, so a run never runs twice at once; a worker that was taken for lost
but was only stalled finds its lease gone at its next write (RunLost) and stops without writing.
"""

import functools
import logging
import socket
import subprocess
import threading
import time
import traceback
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from pipeline.models import Run, RunEvent
from pipeline.models.runs import RunLost

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
    """What a run's body uses to report: ``progress``, ``event``, ``note``, ``should_stop``, ``check_cancel``.

    Each call is also the run's heartbeat (written at most every ``heartbeat_seconds``); once another
    delivery has taken the run over, they raise :class:`~pipeline.models.RunLost`.
    """

    def __init__(self, run, *, cancel_poll_seconds=1.0, heartbeat_seconds=None, listener=None):
        self.run = run
        self.listener = listener
        self._cancel_poll = cancel_poll_seconds
        self._last_poll = 0.0
        self._cancelled = False
        self._beat_every = settings.LABELGEN_RUN_HEARTBEAT_SECONDS if heartbeat_seconds is None else heartbeat_seconds
        self._last_beat = time.monotonic()

    def beat(self):
        now = time.monotonic()
        if now - self._last_beat >= self._beat_every:
            self._last_beat = now
            self.run.update_fields()  # only heartbeat_at, and only while this delivery holds the lease

    def progress(self, percent, message=None):
        fields = {"progress": max(0.0, min(100.0, float(percent)))}
        if message is not None:
            fields["message"] = str(message)[:500]
        self.run.update_fields(**fields)
        self._last_beat = time.monotonic()
        if self.listener is not None:
            self.listener(fields["progress"], self.run.message)

    def event(self, step, values, series="train"):
        self.beat()
        RunEvent.objects.update_or_create(run_id=self.run.pk, series=series, step=step,
                                          defaults={"values": values})

    def note(self, text):
        self.run.note(text)

    def should_stop(self):
        """True once a cancel was requested (polled at most once per ``cancel_poll_seconds``)."""
        self.beat()
        now = time.monotonic()
        if not self._cancelled and now - self._last_poll >= self._cancel_poll:
            self._last_poll = now
            self._cancelled = self.run.cancel_was_requested()
        return self._cancelled

    def check_cancel(self):
        if self.should_stop():
            raise Cancelled()


def lost_after():
    return timedelta(seconds=settings.LABELGEN_RUN_LOST_SECONDS)


def execute(run_id, body, listener=None):
    """Run ``body(run, ctx)`` for the run with ``run_id``, recording its whole life cycle.

    ``listener(percent, message)``, if given, hears every progress update (commands draw a progress bar).
    Returns the run's status, or ``"held"`` / ``"lost"`` when this delivery did not (or no longer) hold it.
    """
    run = Run.objects.get(pk=run_id).specific()
    outcome = _claim(run)
    if outcome is not None:
        return outcome
    ctx = RunContext(run, listener=listener)
    try:
        try:
            if run.cancel_requested:
                raise Cancelled()
            body(run, ctx)
        except Cancelled:
            run.update_fields(status=Run.Status.CANCELLED, finished_at=timezone.now(), message="Cancelled",
                              lease="")
        except RunLost:
            raise
        except Exception as exc:
            log.exception("run %s failed", run_id)
            run.update_fields(status=Run.Status.FAILED, finished_at=timezone.now(), lease="",
                              message=f"Failed: {exc}"[:500], error=traceback.format_exc())
        else:
            run.update_fields(status=Run.Status.SUCCEEDED, finished_at=timezone.now(), progress=100.0, lease="",
                              message=run.message if run.message and run.message != "Started" else "Done")
    except RunLost:
        log.warning("run %s was taken over by another delivery; this one stops without writing", run_id)
        return "lost"
    return run.status


def _claim(run):
    """Take ``run`` for this delivery (a fresh lease). None when taken; else what :func:`execute` returns.

    A run is free when queued, or running without a heartbeat for ``LABELGEN_RUN_LOST_SECONDS`` (its
    worker died). A run held by a live worker is waited for, up to that long, then left to it.
    """
    lease = uuid.uuid4().hex
    deadline = time.monotonic() + lost_after().total_seconds() + settings.LABELGEN_RUN_HEARTBEAT_SECONDS
    while True:
        run.refresh_from_db()
        if run.is_finished:
            log.info("run %s already %s; nothing to do", run.pk, run.status)
            return run.status
        now = timezone.now()
        silent = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - lost_after())
        free = Q(status=Run.Status.QUEUED) | Q(status=Run.Status.RUNNING, lease="") | (
            Q(status=Run.Status.RUNNING) & silent)
        worker = socket.gethostname()[:200]
        resumed = run.attempts > 0
        taken = Run.objects.filter(free, pk=run.pk).update(
            status=Run.Status.RUNNING, lease=lease, heartbeat_at=now, attempts=F("attempts") + 1, worker=worker,
            started_at=run.started_at or now, code_version=code_version(),
            message="Resuming after a worker restart" if resumed else "Started")
        if taken:
            run.refresh_from_db()
            run._lease = lease
            run.note(f"resumed on {worker} (delivery {run.attempts})" if resumed else f"started on {worker}")
            return None
        if time.monotonic() > deadline:
            log.warning("run %s is held by a live worker; this delivery leaves it to that worker", run.pk)
            return "held"
        time.sleep(min(5.0, max(0.2, lost_after().total_seconds() / 5)))


def requeue_lost_runs():
    """Re-queue every running run whose worker stopped heartbeating; fail those out of attempts.

    Safe to call from every worker at once: each run is re-queued by exactly one caller (the row is
    re-checked under a lock in the transaction that changes it). Returns the ids re-queued or failed.
    """
    from pipeline.tasks import task_for_kind

    now = timezone.now()
    cutoff = now - lost_after()
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    handled = []
    candidates = Run.objects.filter(silent, status=Run.Status.RUNNING, kind__in=task_for_kind())
    for pk in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            run = Run.objects.select_for_update().filter(silent, pk=pk, status=Run.Status.RUNNING).first()
            if run is None:
                continue
            heard = timezone.localtime(run.heartbeat_at).strftime("%H:%M:%S") if run.heartbeat_at else "never"
            lost = f"its worker {run.worker or '?'} stopped answering at {run.progress:.0f}% (last heartbeat {heard})"
            limit = settings.LABELGEN_RUN_MAX_ATTEMPTS
            if run.attempts >= limit:
                text = f"Failed: {lost}; given up after {run.attempts} of {limit} deliveries"
                fields = {"status": Run.Status.FAILED, "finished_at": now, "error": text}
            else:
                text = f"Re-queued: {lost}; delivery {run.attempts + 1} of {limit} resumes from the last checkpoint"
                fields = {"status": Run.Status.QUEUED}
                kind = run.kind
                transaction.on_commit(lambda pk=pk, kind=kind: _send(pk, kind))
            history = [*run.history, {"at": now.isoformat(timespec="seconds"), "text": text}][-50:]
            Run.objects.filter(pk=pk).update(lease="", message=text[:500], history=history, **fields)
            log.warning("run %s: %s", pk, text)
            handled.append(pk)
    return handled


def _send(pk, kind):
    from pipeline.tasks import task_for_kind

    result = task_for_kind()[kind].apply_async(args=[pk], queue="gpu")
    Run.objects.filter(pk=pk).update(celery_task_id=result.id or "")


def start_lost_run_watch(interval=None):
    """Check for lost runs now and then every ``interval`` seconds, in a daemon thread (one per worker)."""
    interval = interval or settings.LABELGEN_RUN_CHECK_SECONDS

    def watch():
        while True:
            try:
                close_old_connections()
                requeue_lost_runs()
            except Exception:
                log.exception("checking for lost runs failed; trying again in %s s", interval)
            finally:
                connection.close()
            time.sleep(interval)

    thread = threading.Thread(target=watch, name="lost-run-watch", daemon=True)
    thread.start()
    return thread


def run_dir(run):
    """Where a run keeps checkpoints and artifacts: ``MEDIA_ROOT/runs/<id>/``."""
    path = Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)
    path.mkdir(parents=True, exist_ok=True)
    return path


def on_this_worker(config):
    """A run's training config with the device it trains on here: the run's own choice, or this worker's
    ``LABELGEN_DEVICE`` where the run says ``"auto"`` (one worker per GPU, each started with
    ``LABELGEN_DEVICE=cuda:N``; without it every run would land on the first GPU)."""
    auto = (config.device or "auto").strip().lower() == "auto"  # as resolve_device reads it
    return config.replace(device=settings.LABELGEN_DEVICE) if auto else config
