"""Creating U-Net training runs and comparisons, validated before anything is queued."""

from django.db import transaction

from pipeline.labelgen.runs import DatasetNotReady
from pipeline.models import ComparisonRun, TrainingRun
from pipeline.runs.presets import ConfigError
from pipeline.unet.runs import training_cases

ARM_SOURCES = {"expert", "ai", "truth"}


def parse_arm(text):
    """``expert`` | ``ai`` | ``truth``, optionally ``:rater`` (e.g. ``expert:r2``) -> (source, rater)."""
    source, _, rater = text.strip().partition(":")
    if source not in ARM_SOURCES:
        raise ConfigError(f"unknown arm {text!r}; use expert, ai or truth (optionally :RATER, e.g. expert:r2)")
    return source, rater


def check_arm(dataset, source, rater):
    """Refuse an arm that cannot train (no TRAIN/VAL label of its source, no TEST case)."""
    try:
        training_cases(dataset, source, rater)
    except DatasetNotReady as exc:
        raise ConfigError(str(exc)) from None


@transaction.atomic
def create_comparison(dataset, arms, config, preset, user=None):
    """A ComparisonRun and one TrainingRun per arm, all with the same config (hence the same seed)."""
    parsed = [parse_arm(a) for a in arms]
    if len(parsed) < 2 or len(set(parsed)) != len(parsed):
        raise ConfigError("a comparison needs two or more different arms, e.g. expert,ai")
    comparison = ComparisonRun.objects.create(dataset=dataset, created_by=user, arms=list(arms),
                                              config={**config.to_dict(), "preset": preset})
    runs = [TrainingRun.objects.create(dataset=dataset, comparison=comparison, label_source=source,
                                       expert_rater=rater, created_by=user, config=dict(comparison.config))
            for source, rater in parsed]
    return comparison, runs
