"""Launch forms for runs: every parameter of the core configs, blank = the preset's value."""

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


def _optional_field(f, prefix):
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str, "bool": bool}.get(
        str(f.type), str)
    if kind is bool:
        return forms.NullBooleanField(required=False, label=f.name, widget=forms.Select(
            choices=[("unknown", "preset"), ("true", "yes"), ("false", "no")]))
    return FIELD_TYPES.get(kind, forms.CharField)(required=False, label=f.name,
                                                 widget=forms.TextInput(attrs={"placeholder": "preset"}))


class ClusteringLaunchForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    preset = forms.ChoiceField(choices=PRESET_CHOICES, initial=DEFAULT_PRESET)
    refine = forms.BooleanField(required=False, initial=True, label="then refine into AI labels (step 2)")

    CLUSTERING = [f for f in fields(ClusteringConfig)]
    REFINE = [f for f in fields(RefineParams) if f.name not in ("ignore_clusters",)]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for f in self.CLUSTERING:
            self.fields[f"c_{f.name}"] = _optional_field(f, "c_")
        for f in self.REFINE:
            self.fields[f"r_{f.name}"] = _optional_field(f, "r_")
        self.fields["r_expert_rater"] = forms.CharField(required=False, label="expert_rater",
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
            raise forms.ValidationError(str(exc)) from None
        try:
            self.refine_config = refine_config(self._overrides("r_"))
        except ConfigError as exc:
            raise forms.ValidationError(str(exc)) from None
        try:
            check_clustering_inputs(data["dataset"], self.clustering_config)
        except DatasetNotReady as exc:
            self.add_error("dataset", str(exc))
        return data

    def is_valid_so_far(self):
        return "dataset" in self.cleaned_data and "preset" in self.cleaned_data
