"""Label generation runs: step 1 (clustering) and step 2 (refinement into AI labels), with their outputs."""

from django.db import models

from pipeline.models.cases import Case, Dataset, Label
from pipeline.models.runs import Run


class ClusteringRun(Run):
    """Step 1: the shared-weight 3D CNN trained on a dataset's TRAIN/VAL cases; one cluster map per case."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="clustering_runs")
    modalities = models.JSONField(default=list, help_text="modality order fed to the network")
    best_epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs_done = models.PositiveIntegerField(default=0)
    stopped_reason = models.CharField(max_length=40, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)

    KIND = "clustering"

    class Meta:
        verbose_name = "clustering run"


class ClusterMap(models.Model):
    """A case's cluster ids (uint16 NIfTI on the case's original grid; 0 = not clustered, id + 1 otherwise)."""

    run = models.ForeignKey(ClusteringRun, on_delete=models.CASCADE, related_name="cluster_maps")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="cluster_maps")
    file = models.CharField(max_length=200)
    n_clusters = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "case"], name="one_cluster_map_per_case")]

    def __str__(self):
        return f"clusters of {self.case} ({self.run})"

    @property
    def path(self):
        from pathlib import Path

        from django.conf import settings

        return Path(settings.MEDIA_ROOT) / self.file


class RefinementRun(Run):
    """Step 2: cluster maps + expert labels -> AI labels (``Label(source=ai)``), with per-case QA."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="refinement_runs")
    clustering_run = models.ForeignKey(ClusteringRun, on_delete=models.PROTECT, related_name="refinements")

    KIND = "refinement"

    class Meta:
        verbose_name = "refinement run"


class LabelQA(models.Model):
    """How an AI label compares with each expert label and with truth (Dice, HD95, volume difference).

    ``metrics`` maps a reference name to its figures; the names are built and read only here.
    """

    VS_EXPERT = "expert (combined)"
    VS_TRUTH = "truth"
    EXPERT_VS_TRUTH = "truth vs expert (combined)"

    run = models.ForeignKey(RefinementRun, on_delete=models.CASCADE, related_name="qa")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="label_qa")
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="qa")
    n_lesions = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, help_text="{reference name: {dice, hd95_mm, volume_difference_ml, ...}}")

    class Meta:
        ordering = ["case__external_id"]
        constraints = [models.UniqueConstraint(fields=["run", "case"], name="one_qa_per_case")]

    def __str__(self):
        return f"QA of {self.label}"

    @staticmethod
    def rater_key(rater, modality):
        return f"expert {rater or '?'} on {modality or '?'}"

    @property
    def vs_expert(self):
        """The AI label against the raters' combined label: ``{dice, hd95_mm, ...}``."""
        return self.metrics.get(self.VS_EXPERT, {})

    @property
    def vs_truth(self):
        """The AI label against the truth (phantoms), or None."""
        return self.metrics.get(self.VS_TRUTH)

    @property
    def expert_vs_truth(self):
        """The raters' combined label against the truth, or None."""
        return self.metrics.get(self.EXPERT_VS_TRUTH)

    @property
    def per_rater(self):
        """``{"expert r1 on t2": {...}}``: the AI label against each rater's own label."""
        return {k: v for k, v in self.metrics.items() if k.startswith("expert ") and k != self.VS_EXPERT}
