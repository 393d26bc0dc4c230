"""Datasets of 3D MRI cases: images (one per modality), labels (expert, AI, prediction, truth)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from pipeline.core.io.names import MAX_LENGTH, RULE, InvalidName, check_name


def validate_name(value):
    """The shared name rule (pipeline.core.io.names); the field's own max_length bounds the length."""
    try:
        check_name(value, "name", max_length=len(value) or 1)
    except InvalidName:
        raise ValidationError(f"Use {RULE}.", code="invalid_name") from None


NAME_VALIDATOR = validate_name


class DatasetQuerySet(models.QuerySet):
    def with_split_counts(self):
        """Each dataset with ``n_cases``, ``n_train``, ``n_val`` and ``n_test`` (one query)."""
        from django.db.models import Count, Q

        return self.annotate(
            n_cases=Count("cases", distinct=True),
            n_train=Count("cases", filter=Q(cases__split="TRAIN"), distinct=True),
            n_val=Count("cases", filter=Q(cases__split="VAL"), distinct=True),
            n_test=Count("cases", filter=Q(cases__split="TEST"), distinct=True),
        )


class Dataset(models.Model):
    name = models.CharField(max_length=MAX_LENGTH["dataset"], unique=True, validators=[NAME_VALIDATOR])
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("pipeline:dataset_detail", args=[self.pk])

    def split_counts(self):
        """``{"TRAIN": n, "VAL": n, "TEST": n}`` of this dataset's cases (splits without cases: 0)."""
        from django.db.models import Count

        found = dict(self.cases.values_list("split").annotate(n=Count("id")))
        return {split: found.get(split, 0) for split in Case.Split.values}

    def modalities(self):
        return sorted(set(Image.objects.filter(case__dataset=self).values_list("modality", flat=True)))


class Case(models.Model):
    class Split(models.TextChoices):
        TRAIN = "TRAIN", "Train"
        VAL = "VAL", "Validation"
        TEST = "TEST", "Test"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="cases")
    external_id = models.CharField(max_length=MAX_LENGTH["case"], validators=[NAME_VALIDATOR])
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TRAIN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "external_id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "external_id"], name="unique_case_per_dataset")]

    def __str__(self):
        return f"{self.dataset.name}/{self.external_id}"

    def get_absolute_url(self):
        return reverse("pipeline:case_detail", args=[self.pk])

    def reference_image(self):
        """The first modality imported: the grid every other volume of this case lives on."""
        return self.images.order_by("id").first()


class Volume(models.Model):
    """What images and labels share: a NIfTI file under MEDIA_ROOT named by its content's sha256."""

    file = models.CharField(max_length=200, help_text="path under MEDIA_ROOT")
    sha256 = models.CharField(max_length=64, db_index=True, help_text="of the file as it was imported")
    source_name = models.CharField(max_length=255, blank=True, help_text="file name it was imported from")
    shape = models.JSONField()
    spacing = models.JSONField()
    affine = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    @property
    def path(self):
        from pathlib import Path

        return Path(settings.MEDIA_ROOT) / self.file

    def shape_text(self):
        return "×".join(str(n) for n in self.shape)

    def spacing_text(self):
        return "×".join(f"{s:g}" for s in self.spacing)


class Image(Volume):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="images")
    modality = models.CharField(max_length=MAX_LENGTH["modality"], validators=[NAME_VALIDATOR])
    dtype = models.CharField(max_length=20)
    intensity_min = models.FloatField()
    intensity_max = models.FloatField()
    import_note = models.CharField(max_length=300, blank=True, help_text="e.g. resampled onto the first modality")
    dicom_series = models.CharField(
        max_length=64, blank=True, db_index=True,
        help_text="sha256 of the DICOM SeriesInstanceUID it was imported from (finds the source series for a SEG "
                  "export without storing the UID)")

    class Meta:
        ordering = ["case", "id"]
        constraints = [models.UniqueConstraint(fields=["case", "modality"], name="unique_modality_per_case")]

    def __str__(self):
        return f"{self.case} {self.modality}"


class PredictionSet(models.Model):
    """A named set of predicted segmentations over a dataset's cases (from a run or imported)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="prediction_sets")
    name = models.CharField(max_length=MAX_LENGTH["prediction_set"], validators=[NAME_VALIDATOR])
    description = models.TextField(blank=True)
    run = models.ForeignKey("pipeline.Run", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="prediction_sets")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_prediction_set_name")]

    def __str__(self):
        return self.name


class Label(Volume):
    class Source(models.TextChoices):
        EXPERT = "expert", "Expert"
        AI = "ai", "AI-assisted"
        PREDICTION = "prediction", "Prediction"
        TRUTH = "truth", "Truth"

    class Review(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    class Input(models.TextChoices):
        """What a radiologist's rough input is (``pipeline.core.refinement.inputs`` gives the encodings)."""

        OUTLINE = "outline", "Outline (every slice)"
        SLICES = "slices", "Outlines on some slices"
        SCRIBBLES = "scribbles", "Strokes (tumour and background)"
        BOX = "box", "Box"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="labels")
    source = models.CharField(max_length=12, choices=Source.choices, db_index=True)
    modality = models.CharField(max_length=MAX_LENGTH["modality"], blank=True, help_text="the modality it was drawn on, if any")
    rater = models.CharField(max_length=MAX_LENGTH["rater"], blank=True)
    prediction_set = models.ForeignKey(PredictionSet, null=True, blank=True, on_delete=models.CASCADE,
                                       related_name="labels")
    run = models.ForeignKey("pipeline.Run", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="labels", help_text="the run that produced it")
    voxel_count = models.PositiveBigIntegerField()
    volume_ml = models.FloatField()
    review = models.CharField(max_length=10, choices=Review.choices, default=Review.PENDING,
                              help_text="coordinator's verdict on an AI label; rejected ones are not trained on")
    input = models.CharField(max_length=10, choices=Input.choices, default=Input.OUTLINE,
                             help_text="expert labels: the kind of rough input and so the meaning of its values")
    corrected_from = models.OneToOneField("self", null=True, blank=True, on_delete=models.CASCADE,
                                          related_name="correction",
                                          help_text="an AI label a radiologist edited: the original, kept")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="who drew or corrected it in the browser")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["case", "source", "rater", "modality", "id"]
        constraints = [
            models.UniqueConstraint(fields=["case", "source", "modality", "rater"],
                                    condition=models.Q(prediction_set__isnull=True, corrected_from__isnull=True),
                                    name="unique_label_kind"),
            models.UniqueConstraint(fields=["case", "prediction_set"],
                                    condition=models.Q(prediction_set__isnull=False),
                                    name="unique_prediction_per_set"),
            models.CheckConstraint(condition=~models.Q(source="prediction") | models.Q(prediction_set__isnull=False),
                                   name="prediction_has_set"),
        ]

    def __str__(self):
        return f"{self.case} {self.display_name}"

    @property
    def is_sparse(self):
        return self.input != self.Input.OUTLINE

    def tumour_mask(self):
        """bool (X, Y, Z): the voxels this label says are tumour (scribbles: the tumour strokes, value 1)."""
        from pipeline.core.io.nifti import load_volume

        data = load_volume(self.path, kind="label").data
        return data == 1 if self.input == self.Input.SCRIBBLES else data > 0

    @property
    def display_name(self):
        if self.source == self.Source.PREDICTION:
            return f"prediction {self.prediction_set.name}"
        bits = [self.get_source_display()]
        if self.corrected_from_id:
            bits.append("corrected")
        if self.is_sparse and self.source == self.Source.EXPERT:
            bits.append(f"({self.input})")
        if self.rater:
            bits.append(self.rater)
        if self.modality:
            bits.append(f"on {self.modality}")
        return " ".join(bits)
