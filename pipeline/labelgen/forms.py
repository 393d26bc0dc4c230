"""Launch forms for runs: every parameter of the core configs, blank = the preset's value."""

import re
from dataclasses import fields

from django import forms

from pipeline.core.clustering.config import ClusteringConfig
from pipeline.core.refinement import RefineParams
from pipeline.labelgen.runs import DatasetNotReady, check_clustering_inputs
from pipeline.models import Dataset
from pipeline.runs.presets import (
    DEFAULT_PRESET,
    PRESET_CHOICES,
    ConfigError,
    clustering_config,
    refine_config,
)

FIELD_TYPES = {int: forms.IntegerField, float: forms.FloatField, str: forms.CharField}

# What each parameter is, in the words of the page; the config key stays visible as the field's help text.
LABELS = {
    "c_height": "Grid height (voxels)", "c_width": "Grid width (voxels)", "c_depth": "Grid depth (slices)",
    "c_n_channels": "Feature channels per modality", "c_n_conv": "Convolution layers",
    "c_slice_kernel": "Kernel across slices (1 or 3)", "c_mu": "Continuity weight (μ)", "c_lr": "Learning rate",
    "c_momentum": "SGD momentum", "c_batch_size": "Cases per step", "c_max_epochs": "Most epochs",
    "c_patience": "Patience (epochs without a better one)", "c_min_clusters": "Stop at this many clusters",
    "c_seed": "Random seed", "c_device": "Device (auto, cpu, cuda:N)", "c_amp": "Mixed precision on CUDA",
    "c_augment": "Augmentation", "c_keep_epoch_by": "Keep the epoch by (val_loss or val_labels)",
    "r_combine": "Merge raters (union, intersection, majority, staple)",
    "r_min_coverage": "Least share of a lesion a cluster covers", "r_max_ratio": "Largest region (x lesion size)",
    "r_min_inside": "Least share of a region inside the rough label", "r_connectivity": "Connectivity (1, 2 or 3)",
    "r_fill_holes": "Fill holes", "r_closing_iterations": "Closing iterations", "r_seed": "Random seed",
    "r_mode": "Mode (3d or per_slice_2d)", "r_seeds_per_cluster": "Seeds per cluster (one or each_component)",
}


def _optional_field(f, prefix):
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str, "bool": bool}.get(
        str(f.type), str)
    label, help_text = LABELS.get(prefix + f.name, f.name), f"config key {f.name}"
    if kind is bool:
        return forms.NullBooleanField(required=False, label=label, help_text=help_text, widget=forms.Select(
            choices=[("unknown", "preset"), ("true", "yes"), ("false", "no")]))
    return FIELD_TYPES.get(kind, forms.CharField)(required=False, label=label, help_text=help_text,
                                                 widget=forms.TextInput(attrs={"placeholder": "preset"}))


class ClusteringLaunchForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    preset = forms.ChoiceField(choices=PRESET_CHOICES, initial=DEFAULT_PRESET)
    refine = forms.BooleanField(required=False, initial=True, label="then refine into AI labels (step 2)", label_suffix="")

    CLUSTERING = [f for f in fields(ClusteringConfig)]
    REFINE = [f for f in fields(RefineParams) if f.name not in ("ignore_clusters",)]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for f in self.CLUSTERING:
            self.fields[f"c_{f.name}"] = _optional_field(f, "c_")
        for f in self.REFINE:
            self.fields[f"r_{f.name}"] = _optional_field(f, "r_")
        self.fields["r_expert_rater"] = forms.CharField(required=False, label="Only this rater's labels",
                                                        help_text="config key expert_rater",
                                                        widget=forms.TextInput(attrs={"placeholder": "all raters"}))

    def clustering_fields(self):
        return [self[f"c_{f.name}"] for f in self.CLUSTERING]

    def refine_fields(self):
        return [self[f"r_{f.name}"] for f in self.REFINE] + [self["r_expert_rater"]]

    def _overrides(self, prefix):
        return {name[len(prefix):]: value for name, value in self.cleaned_data.items()
                if name.startswith(prefix) and value not in (None, "")}

    def clean(self):
        data = super().clean()
        if not self.is_valid_so_far():
            return data
        try:
            self.clustering_config = clustering_config(data["preset"], self._overrides("c_"))
        except ConfigError as exc:
            self._add_config_error("c_", exc)
        try:
            self.refine_config = refine_config(self._overrides("r_"))
        except ConfigError as exc:
            self._add_config_error("r_", exc)
        if self.errors:
            return data
        try:
            check_clustering_inputs(data["dataset"], self.clustering_config)
        except DatasetNotReady as exc:
            self.add_error("dataset", str(exc))
        return data

    def _add_config_error(self, prefix, exc):
        """Put a config error on the fields it names (so their section opens on them), else on the form."""
        message = str(exc)
        named = [name for name in self.fields if name.startswith(prefix)
                 and re.search(rf"\b{re.escape(name[len(prefix):])}\b", message)]
        for name in named:
            self.add_error(name, message)
        if not named:
            self.add_error(None, message)

    def section_has_errors(self, prefix):
        return any(name.startswith(prefix) for name in self.errors)

    def clustering_errors(self):
        return self.section_has_errors("c_")

    def refine_errors(self):
        return self.section_has_errors("r_")

    def is_valid_so_far(self):
        return "dataset" in self.cleaned_data and "preset" in self.cleaned_data
