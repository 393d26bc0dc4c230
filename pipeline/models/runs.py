"""Runs: long jobs executed by Celery workers. The database row, not Celery's result backend, is the
source of truth that pages read: status, progress, message, timings, device, config and errors."""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Run(models.Model):
    """Base of every run (multi-table inheritance, so one query lists all runs of all kinds)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=40, editable=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, help_text="0-100")
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True)
    device = models.CharField(max_length=120, blank=True, help_text="device the run actually used")
    code_version = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0, help_text="deliveries of the task (more than 1 = resumed)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the worker running it")
    lease = models.CharField(max_length=32, blank=True, editable=False,
                             help_text="token of the delivery now running it; a lost worker's writes are refused")
    history = models.JSONField(default=list, blank=True, help_text="[{at, text}]: starts, losses, resumes")

    class Meta:
        ordering = ["-created_at", "-id"]

    KIND = "run"

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}"

    def save(self, *args, **kwargs):
        if not self.kind:
            self.kind = self.KIND
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("pipeline:run_detail", args=[self.pk])

    def get_kind_display(self):
        model = run_models().get(self.kind)
        name = str(model._meta.verbose_name) if model else self.kind
        return name[:1].upper() + name[1:]

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def specific(self):
        """The subclass instance (ClusteringRun, TrainingRun, ...) behind this base row."""
        model = run_models().get(self.kind)
        if model is None or isinstance(self, model):
            return self
        return model.objects.get(pk=self.pk)

    # Updates go through queryset.update so a worker never overwrites a cancel request made meanwhile.
    # The worker's own instance carries its lease (set by pipeline.runs.execution): its writes count as a
    # heartbeat and are refused (RunLost) once another delivery has taken the run over.
    def update_fields(self, **fields):
        lease = getattr(self, "_lease", None)
        rows = type(self).objects.filter(pk=self.pk)
        if lease:
            fields.setdefault("heartbeat_at", timezone.now())
            rows = rows.filter(lease=lease)
        if not rows.update(**fields) and lease:
            raise RunLost(self.pk)
        for name, value in fields.items():
            setattr(self, name, value)

    def history_entries(self):
        """``[(datetime, text)]`` of :attr:`history`, for the run page."""
        from datetime import datetime

        return [(datetime.fromisoformat(e["at"]), e["text"]) for e in self.history]

    def note(self, text):
        """Add a line to the run's history (what the run page lists under "What happened")."""
        entry = {"at": timezone.now().isoformat(timespec="seconds"), "text": str(text)[:300]}
        self.update_fields(history=[*self.history, entry][-50:])

    def request_cancel(self):
        if self.is_finished:
            return False
        if self.status == self.Status.QUEUED:
            self.update_fields(status=self.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now(),
                               message="Cancelled before it started")
        else:
            self.update_fields(cancel_requested=True, message="Cancelling…")
        return True

    def state(self):
        """The JSON the run page polls: status, progress, what happened and every recorded event, per series.

        A comparison shows its arms' events (one series per arm) and their mean progress.
        """
        runs = [self]
        progress = self.progress
        if self.kind == "comparison":
            runs += list(Run.objects.filter(trainingrun__comparison_id=self.pk))
            if not self.is_finished and len(runs) > 1:
                progress = sum(r.progress for r in runs[1:]) / (len(runs) - 1)
        series = {}
        for event in RunEvent.objects.filter(run__in=runs).order_by("series", "step"):
            series.setdefault(event.series, []).append({"step": event.step, **event.values})
        error = self.error.strip()
        return {
            "id": self.pk, "kind": self.kind, "status": self.status, "finished": self.is_finished,
            "progress": progress, "message": self.message, "error": error.splitlines()[-1] if error else "",
            "device": self.device, "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": self.duration.total_seconds() if self.duration else None,
            "series": series,
        }

    def cancel_was_requested(self):
        return Run.objects.filter(pk=self.pk, cancel_requested=True).exists()


class RunLost(Exception):
    """This delivery no longer holds the run: it was taken as lost and another delivery took it over."""

    def __init__(self, run_pk):
        super().__init__(f"run {run_pk} was taken over by another delivery; this one stops without writing")
        self.run_pk = run_pk


class RunEvent(models.Model):
    """One measured point of a run (an epoch, a case): what the live curves on the run page draw."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    step = models.PositiveIntegerField()
    series = models.CharField(max_length=40, default="train", help_text="e.g. an arm of a comparison")
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "series", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "series", "step"], name="unique_run_event_step")]

    def __str__(self):
        return f"{self.run} {self.series} step {self.step}"


class DeviceCheckRun(Run):
    """A quick check that a worker can reach its device: runs a small matrix product and records the device."""

    size = models.PositiveIntegerField(default=256)
    gflops = models.FloatField(null=True, blank=True)

    KIND = "device_check"

    class Meta:
        verbose_name = "device check"


def run_models():
    """``{kind: model}`` for every concrete subclass of :class:`Run`."""
    found, todo = {}, list(Run.__subclasses__())
    while todo:
        model = todo.pop()
        found[model.KIND] = model
        todo.extend(model.__subclasses__())
    return found
