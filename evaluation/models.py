"""Reader studies: a blinded, randomized, side-by-side comparison of segmentation sources ("arms").

Study -> Arm (a prediction set) x StudyCase (a case every arm covers) -> Assignment (one reader, seeded
order) -> Item (one case, two arms, which is on the left) -> Vote (at most one per item) + VoteRevision
(the append-only history of changed answers). Arm names never leave coordinator pages.
"""

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse


def new_secret():
    return secrets.token_hex(32)


def new_item_token():
    return secrets.token_urlsafe(24)


def new_seed():
    return secrets.randbelow(2**31)


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="shown to readers above the viewers")
    dataset = models.ForeignKey("pipeline.Dataset", on_delete=models.PROTECT, related_name="studies")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT, db_index=True)
    allow_tie = models.BooleanField("allow “no preference”", default=False)
    ask_confidence = models.BooleanField("ask confidence (1-5)", default=False)
    ask_comment = models.BooleanField("offer an optional comment", default=False)
    allow_revisit = models.BooleanField("allow going back to change an answer", default=False)
    every_pair_each_case = models.BooleanField(
        default=False, help_text="with 3+ arms: show every chosen pair on every case (default: one pair per "
                                 "case, pairs balanced across cases)")
    pairs = models.JSONField(default=list, blank=True,
                             help_text="[[arm id, arm id], ...] compared; empty = all pairs")
    default_modality = models.CharField(max_length=40, blank=True, help_text="base image shown first")
    seed = models.BigIntegerField(default=new_seed)
    # Mixed into the HMAC of volume URLs, so URLs of one study say nothing about another's.
    secret = models.CharField(max_length=64, default=new_secret, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("evaluation:study_detail", args=[self.pk])

    @property
    def is_open(self):
        return self.status == self.Status.OPEN

    def arm_pairs(self):
        """The compared pairs as ``[(Arm, Arm), ...]`` (lower id first), all pairs when none were chosen."""
        arms = {a.pk: a for a in self.arms.order_by("pk")}
        ids = sorted(arms)
        chosen = [tuple(sorted(p)) for p in self.pairs] or [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        return [(arms[a], arms[b]) for a, b in chosen if a in arms and b in arms]

    def choices(self):
        return ["left", "right", "none"] if self.allow_tie else ["left", "right"]

    def modalities(self):
        from pipeline.models import Image

        mods = sorted(set(Image.objects.filter(case__study_entries__study=self).values_list("modality", flat=True)))
        if self.default_modality in mods:
            mods.remove(self.default_modality)
            mods.insert(0, self.default_modality)
        return mods


class Arm(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=100, help_text="seen by coordinators only")
    prediction_set = models.ForeignKey("pipeline.PredictionSet", on_delete=models.PROTECT, related_name="arms")

    class Meta:
        ordering = ["study", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="unique_arm_name"),
            models.UniqueConstraint(fields=["study", "prediction_set"], name="unique_arm_set"),
        ]

    def __str__(self):
        return self.name


class StudyCase(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="study_cases")
    case = models.ForeignKey("pipeline.Case", on_delete=models.PROTECT, related_name="study_entries")

    class Meta:
        ordering = ["study", "case__external_id"]
        constraints = [models.UniqueConstraint(fields=["study", "case"], name="unique_study_case")]

    def __str__(self):
        return f"{self.study} / {self.case.external_id}"

    def prediction_for(self, arm):
        return self.case.labels.get(prediction_set_id=arm.prediction_set_id)


class Assignment(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    seed = models.BigIntegerField(help_text="derived from the study seed and the reader; fixes order and sides")
    preview = models.BooleanField(default=False, help_text="a coordinator's preview: votes are not recorded")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "reader__username"]
        constraints = [models.UniqueConstraint(fields=["study", "reader"], name="unique_assignment")]

    def __str__(self):
        return f"{self.study} / {self.reader}"

    def first_open_position(self):
        """Where the reader resumes: the first item without a vote, or None when all are answered."""
        item = self.items.filter(vote__isnull=True).order_by("position").first()
        return item.position if item else None


class Item(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="1-based place in this reader's order")
    study_case = models.ForeignKey(StudyCase, on_delete=models.CASCADE, related_name="items")
    arm_left = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+")
    arm_right = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="+")
    # Random, per item: the only handle on an item that appears in volume URLs.
    token = models.CharField(max_length=40, unique=True, default=new_item_token, editable=False)
    focus = models.JSONField(null=True, blank=True, help_text="cached {voxel: [i,j,k], mm: [x,y,z]} to open at")

    class Meta:
        ordering = ["assignment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "position"], name="unique_item_position"),
            models.CheckConstraint(condition=~models.Q(arm_left=models.F("arm_right")), name="item_two_arms"),
        ]

    def __str__(self):
        return f"{self.assignment} #{self.position}"

    def arm_for(self, choice):
        return {"left": self.arm_left, "right": self.arm_right}.get(choice)


class Vote(models.Model):
    class Choice(models.TextChoices):
        LEFT = "left", "Left"
        RIGHT = "right", "Right"
        NONE = "none", "No preference"

    # One-to-one: a reader has at most one vote per item, enforced by the database.
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="vote")
    choice = models.CharField(max_length=5, choices=Choice.choices)
    arm = models.ForeignKey(Arm, null=True, blank=True, on_delete=models.CASCADE, related_name="votes",
                            help_text="the arm the choice means (empty for no preference)")
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    time_ms = models.PositiveIntegerField(default=0, help_text="visible time on the item, summed over visits")
    revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["item"]
        constraints = [
            models.CheckConstraint(condition=models.Q(choice__in=["left", "right", "none"]), name="vote_choice"),
            models.CheckConstraint(condition=models.Q(confidence__isnull=True)
                                   | models.Q(confidence__gte=1, confidence__lte=5), name="vote_confidence_1_5"),
            models.CheckConstraint(condition=models.Q(choice="none", arm__isnull=True)
                                   | (~models.Q(choice="none") & models.Q(arm__isnull=False)), name="vote_arm_set"),
        ]

    def __str__(self):
        return f"{self.item}: {self.choice}"


class VoteRevision(models.Model):
    """A vote as it was before a reader changed it. Append-only: rows are never updated or deleted."""

    vote = models.ForeignKey(Vote, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    choice = models.CharField(max_length=5, choices=Vote.Choice.choices)
    arm = models.ForeignKey(Arm, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    time_ms = models.PositiveIntegerField(default=0)
    answered_at = models.DateTimeField(help_text="when this answer was given")
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vote", "revision"]
        constraints = [models.UniqueConstraint(fields=["vote", "revision"], name="unique_vote_revision")]

    def __str__(self):
        return f"{self.vote} rev {self.revision}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("VoteRevision rows are append-only and cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("VoteRevision rows are append-only and cannot be deleted")
