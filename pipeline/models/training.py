"""U-Net training runs and the comparison of two arms trained identically on different label sources."""

from django.db import models

from pipeline.models.cases import Case, Dataset, PredictionSet
from pipeline.models.runs import Run


class ComparisonRun(Run):
    """Two (or more) TrainingRuns with the same config and seed; only the label source differs."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="comparisons")
    arms = models.JSONField(default=list, help_text='label source per arm, e.g. ["expert", "ai"]')
    summary = models.JSONField(default=dict, blank=True)

    KIND = "comparison"

    class Meta:
        verbose_name = "U-Net comparison"

    def request_cancel(self):
        """Cancelling a comparison cancels its arms (each stops within an epoch)."""
        for arm in self.arms_runs.all():
            arm.request_cancel()
        return super().request_cancel()


class TrainingRun(Run):
    """One 3D U-Net trained on one label source; predicts the TEST split into a prediction set."""

    class LabelSource(models.TextChoices):
        EXPERT = "expert", "Expert labels"
        AI = "ai", "AI-assisted labels"
        TRUTH = "truth", "Truth (phantoms)"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="training_runs")
    comparison = models.ForeignKey(ComparisonRun, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="arms_runs")
    label_source = models.CharField(max_length=10, choices=LabelSource.choices)
    expert_rater = models.CharField(max_length=80, blank=True, help_text="one rater's labels; blank = union")
    modalities = models.JSONField(default=list)
    prediction_set = models.OneToOneField(PredictionSet, null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="training_run")
    best_epoch = models.PositiveIntegerField(null=True, blank=True)
    best_val_dice = models.FloatField(null=True, blank=True)
    epochs_done = models.PositiveIntegerField(default=0)
    stopped_reason = models.CharField(max_length=40, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)
    training_cases = models.JSONField(default=list, help_text="external ids of the cases it trained on")

    KIND = "training"

    class Meta:
        verbose_name = "U-Net training run"

    @property
    def arm_name(self):
        return self.label_source + (f"-{self.expert_rater}" if self.expert_rater else "")

    @property
    def labels_in_a_sentence(self):
        """The label source inside a sentence: "expert labels", "AI-assisted labels" (an acronym keeps its case)."""
        text = self.get_label_source_display()
        return text if text[:2].isupper() else text[0].lower() + text[1:]


class CaseMetric(models.Model):
    """A prediction of a TEST case against a reference label (expert union or truth)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="case_metrics")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="prediction_metrics")
    reference = models.CharField(max_length=20)
    metrics = models.JSONField(default=dict)

    class Meta:
        ordering = ["case__external_id", "reference"]
        constraints = [models.UniqueConstraint(fields=["run", "case", "reference"], name="one_metric_per_reference")]

    def __str__(self):
        return f"{self.run} {self.case} vs {self.reference}"
