"""Forms: they validate; :mod:`evaluation.services` applies the rules."""

from django import forms

from evaluation.models import Study
from evaluation.services import readers_queryset, shared_cases
from pipeline.models import Dataset, PredictionSet


class ReaderChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name() or obj.username


class StudyForm(forms.ModelForm):
    prediction_sets = forms.ModelMultipleChoiceField(
        queryset=PredictionSet.objects.select_related("dataset"), widget=forms.CheckboxSelectMultiple,
        label="Arms (prediction sets)", help_text="two or more sets of the chosen dataset")
    readers = ReaderChoiceField(queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
                                help_text="members of the Readers group")
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**62, help_text="empty: a random seed")

    class Meta:
        model = Study
        fields = ["title", "instructions", "dataset", "default_modality", "allow_tie", "ask_confidence",
                  "ask_comment", "allow_revisit", "every_pair_each_case"]
        widgets = {"instructions": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["readers"].queryset = readers_queryset()
        self.fields["dataset"].queryset = Dataset.objects.all()
        self.fields["prediction_sets"].label_from_instance = lambda p: f"{p.dataset.name} / {p.name}"

    def clean(self):
        data = super().clean()
        dataset, sets = data.get("dataset"), list(data.get("prediction_sets") or [])
        if dataset is None or not sets:
            return data
        wrong = [p.name for p in sets if p.dataset_id != dataset.pk]
        if wrong:
            self.add_error("prediction_sets", f"Not sets of dataset {dataset.name}: {', '.join(wrong)}.")
        elif len(sets) < 2:
            self.add_error("prediction_sets", "Choose at least two prediction sets.")
        elif not shared_cases(dataset, sets).exists():
            self.add_error("prediction_sets", "No case has a prediction in every chosen set.")
        modality = data.get("default_modality")
        if modality and modality not in dataset.modalities():
            self.add_error("default_modality", f"Dataset {dataset.name} has no modality {modality!r} "
                                               f"(it has: {', '.join(dataset.modalities())}).")
        return data


class AssignReadersForm(forms.Form):
    readers = ReaderChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, study=None, **kwargs):
        super().__init__(*args, **kwargs)
        qs = readers_queryset()
        if study is not None:
            qs = qs.exclude(assignments__study=study)
        self.fields["readers"].queryset = qs


class PairsForm(forms.Form):
    pairs = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, study, **kwargs):
        super().__init__(*args, **kwargs)
        arms = list(study.arms.order_by("pk"))
        self.fields["pairs"].choices = [(f"{a.pk}-{b.pk}", f"{a.name} vs {b.name}")
                                        for i, a in enumerate(arms) for b in arms[i + 1:]]
        self.fields["pairs"].initial = [f"{a.pk}-{b.pk}" for a, b in study.arm_pairs()]

    def arm_id_pairs(self):
        return [tuple(int(x) for x in v.split("-")) for v in self.cleaned_data["pairs"]]


class VoteForm(forms.Form):
    """A reader's answer, sent by the page as JSON."""

    choice = forms.ChoiceField(choices=[("left", "left"), ("right", "right"), ("none", "none")])
    confidence = forms.IntegerField(required=False, min_value=1, max_value=5)
    comment = forms.CharField(required=False, max_length=2000, strip=True)
    time_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000)

    def __init__(self, *args, study, **kwargs):
        super().__init__(*args, **kwargs)
        self.study = study
        self.fields["choice"].choices = [(c, c) for c in study.choices()]
        if study.ask_confidence:
            self.fields["confidence"].required = True

    def clean_comment(self):
        text = self.cleaned_data.get("comment") or ""
        if text and not self.study.ask_comment:
            raise forms.ValidationError("This study does not take comments.")
        return text

    def clean_confidence(self):
        value = self.cleaned_data.get("confidence")
        return value if self.study.ask_confidence else None
