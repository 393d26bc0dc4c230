"""Annotation tasks: a coordinator hands a dataset's cases to radiologists, who mark them in the browser."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from pipeline.models.cases import Case, Dataset, Label


class AnnotationTask(models.Model):
    """Cases of one dataset to be marked by chosen radiologists (each marks every case of the task)."""

    name = models.CharField(max_length=120)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="annotation_tasks")
    input = models.CharField(max_length=10, choices=Label.Input.choices, default=Label.Input.SCRIBBLES,
                             help_text="the kind of input asked for (what the saved drawings are stored as)")
    instructions = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name


class AnnotationItem(models.Model):
    """One case for one radiologist: their drawing, the AI label made from it, the time they spent."""

    class Status(models.TextChoices):
        TODO = "todo", "To do"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    class AIState(models.TextChoices):
        NONE = "", "—"
        MADE = "made", "Made, not reviewed"
        ACCEPTED = "accepted", "Accepted"
        CORRECTED = "corrected", "Corrected"
        REJECTED = "rejected", "Rejected"

    task = models.ForeignKey(AnnotationTask, on_delete=models.CASCADE, related_name="items")
    radiologist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                    related_name="annotation_items")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="annotation_items")
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.TODO)
    skip_reason = models.CharField(max_length=300, blank=True)
    seconds_spent = models.FloatField(default=0.0)
    drawing = models.ForeignKey(Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                help_text="the saved rough input (an expert label)")
    ai_label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text="the AI label made from it (its correction, if any, hangs off it)")
    ai_state = models.CharField(max_length=10, choices=AIState.choices, default=AIState.NONE, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["task", "radiologist", "position"]
        constraints = [
            models.UniqueConstraint(fields=["task", "radiologist", "case"], name="one_item_per_case_and_reader"),
            models.UniqueConstraint(fields=["task", "radiologist", "position"], name="one_item_per_position"),
        ]

    def __str__(self):
        return f"{self.task} · {self.case.external_id} · {self.radiologist}"

    def get_absolute_url(self):
        return reverse("pipeline:annotate_item", args=[self.pk])

    @property
    def rater(self):
        """The rater name the drawing is stored under: the radiologist's user name."""
        return self.radiologist.get_username()

    def add_seconds(self, seconds):
        """Add time spent on the page (bounded: a tab left open over lunch is not 40 minutes of work)."""
        seconds = max(0.0, min(float(seconds), 600.0))
        AnnotationItem.objects.filter(pk=self.pk).update(seconds_spent=models.F("seconds_spent") + seconds)
        self.refresh_from_db(fields=["seconds_spent"])
