"""The launch form of a U-Net comparison."""

from django import forms

from pipeline.models import Dataset
from pipeline.runs.presets import DEFAULT_PRESET, PRESET_CHOICES, ConfigError, unet_config
from pipeline.unet.comparisons import check_arm, parse_arm


class ComparisonForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    arms = forms.CharField(initial="expert,ai", help_text="label sources, e.g. expert,ai or expert:r1,ai")
    preset = forms.ChoiceField(choices=PRESET_CHOICES, initial=DEFAULT_PRESET)
    max_epochs = forms.IntegerField(required=False, min_value=1, widget=forms.NumberInput(attrs={"placeholder": "preset"}))
    seed = forms.IntegerField(required=False, min_value=0, initial=0)
    device = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "auto"}))

    def clean(self):
        data = super().clean()
        if "dataset" not in data or "arms" not in data:
            return data
        overrides = {k: data[k] for k in ("max_epochs", "seed") if data.get(k) is not None}
        try:
            self.config = unet_config(data["preset"], overrides, data.get("device") or None)
            self.arm_list = [a.strip() for a in data["arms"].split(",") if a.strip()]
            for arm in self.arm_list:
                check_arm(data["dataset"], *parse_arm(arm))
        except ConfigError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
