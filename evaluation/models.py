"""Reader studies: a blinded, randomized, side-by-side comparison of segmentation sources ("arms").

Study -> Arm (a prediction set) x StudyCase (a case every arm covers) -> Assignment (one reader, seeded
order) -> Item (one case, two arms, which is on the left) -> Vote (at most one per item) + VoteRevision
(the append-only history of changed answers). Arm names never leave coordinator pages.
"""

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
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

    class Method(models.TextChoices):
        MIXED = "mixed", "Logistic mixed model (reader and case random intercepts)"
        BOOTSTRAP = "bootstrap", "Two-way cluster bootstrap"

    class Ties(models.TextChoices):
        EXCLUDE = "exclude", "Excluded (share of decisive votes)"
        AGAINST = "against", "Counted against the arm (share of all votes)"

    #: The pre-registered analysis: fixed once the study has been opened.
    PLAN_FIELDS = ("primary_arm_id", "primary_comparator_id", "primary_method", "ties", "alpha")

    title = models.CharField(max_length=200, help_text="internal: seen by coordinators only")
    public_title = models.CharField("reader-facing title", max_length=200, blank=True,
                                    help_text="what readers see; empty = a neutral “Study <number>”")
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
    graded = models.BooleanField("graded answers (five-point scale)", default=False,
                                 help_text="A much better, A better, about equal, B better, B much better")
    reread_share = models.FloatField(
        "share of items re-read", default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="repeated later in each reader's sequence with sides swapped, not adjacent, not announced; "
                  "for intra-reader agreement only (0 = none)")
    radiological = models.BooleanField("radiological convention", default=True,
                                       help_text="patient left on screen right (readers can switch)")
    primary_arm = models.ForeignKey("Arm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    help_text="primary endpoint: the share of votes preferring this arm")
    primary_comparator = models.ForeignKey("Arm", null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+")
    primary_method = models.CharField(max_length=10, choices=Method.choices, default=Method.MIXED)
    ties = models.CharField("ties in the primary endpoint", max_length=8, choices=Ties.choices,
                            default=Ties.EXCLUDE)
    alpha = models.FloatField(default=0.05, validators=[MinValueValidator(0.001), MaxValueValidator(0.2)],
                              help_text="two-sided significance level of the primary analysis")
    planned_power = models.JSONField(null=True, blank=True, help_text="the planner's result at creation")
    unblinded_at = models.DateTimeField(null=True, blank=True)
    unblinded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
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

    def save(self, *args, **kwargs):
        stored = getattr(self, "_stored_plan", None)
        if stored and getattr(self, "_stored_opened", None) is not None:
            changed = [f.removesuffix("_id") for f in self.PLAN_FIELDS if getattr(self, f) != stored[f]]
            if changed:
                raise ValueError(f"the primary analysis is frozen once the study has been opened; refused "
                                 f"change of {', '.join(changed)}")
        super().save(*args, **kwargs)
        self._stored_plan = {f: getattr(self, f) for f in self.PLAN_FIELDS}
        self._stored_opened = self.opened_at

    def get_absolute_url(self):
        return reverse("evaluation:study_detail", args=[self.pk])

    @classmethod
    def from_db(cls, db, field_names, values):
        study = super().from_db(db, field_names, values)
        study._stored_plan = {f: getattr(study, f, None) for f in cls.PLAN_FIELDS}
        study._stored_opened = study.__dict__.get("opened_at")
        return study

    @property
    def reader_title(self):
        """The title readers see: never the internal one (it may name the arms)."""
        return self.public_title or f"Study {self.pk}"

    @property
    def plan_frozen(self):
        return self.opened_at is not None

    def analysis_plan(self):
        """The pre-registered primary analysis as :class:`evaluation.stats.AnalysisPlan`."""
        from evaluation.stats import AnalysisPlan

        arm = self.primary_arm.name if self.primary_arm_id else None
        comparator = self.primary_comparator.name if self.primary_comparator_id and arm else None
        return AnalysisPlan(arm=arm if comparator else None, comparator=comparator, method=self.primary_method,
                            ties=self.ties, alpha=self.alpha)

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
        return ["left", "right", "none"] if self.allow_tie or self.graded else ["left", "right"]

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
    reread_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                                  help_text="the first read this planned re-read repeats (sides swapped)")

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

    def arm_id_for(self, choice):
        """The id of the arm a choice picks (None for "none"), without loading the arm."""
        return {"left": self.arm_left_id, "right": self.arm_right_id}.get(choice)


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
    grade = models.SmallIntegerField(null=True, blank=True,
                                     help_text="graded studies: -2..2, positive = left (A) better, 0 = equal")
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
            models.CheckConstraint(condition=models.Q(grade__isnull=True) | (
                models.Q(grade__gte=1, grade__lte=2, choice="left") | models.Q(grade=0, choice="none")
                | models.Q(grade__gte=-2, grade__lte=-1, choice="right")), name="vote_grade_matches_choice"),
            models.CheckConstraint(condition=models.Q(choice="none", arm__isnull=True)
                                   | (~models.Q(choice="none") & models.Q(arm__isnull=False)), name="vote_arm_set"),
        ]

    GRADE_LABELS = {2: "A much better", 1: "A better", 0: "About equal", -1: "B better", -2: "B much better"}

    def __str__(self):
        return f"{self.item}: {self.choice}"

    @property
    def answer_label(self):
        """The answer as the reader saw it (A = left, B = right)."""
        if self.grade is not None:
            return self.GRADE_LABELS[self.grade]
        return {"left": "A (left)", "right": "B (right)", "none": "No preference"}[self.choice]

    @property
    def time_s(self):
        return self.time_ms / 1000


class VoteRevision(models.Model):
    """A vote as it was before a reader changed it. Append-only: rows are never updated or deleted."""

    vote = models.ForeignKey(Vote, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    choice = models.CharField(max_length=5, choices=Vote.Choice.choices)
    arm = models.ForeignKey(Arm, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    grade = models.SmallIntegerField(null=True, blank=True)
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
