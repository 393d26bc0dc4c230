"""Forms: they validate; :mod:`evaluation.services` applies the rules."""

import json

from django import forms

from evaluation.models import Study
from evaluation.services import readers_queryset, shared_cases
from pipeline.models import Dataset, Image, PredictionSet


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
    primary_set = forms.ModelChoiceField(
        queryset=PredictionSet.objects.select_related("dataset"), required=False,
        label="Primary endpoint: share preferring",
        help_text="the arm whose preference the headline tests (default: the first chosen set)")
    comparator_set = forms.ModelChoiceField(
        queryset=PredictionSet.objects.select_related("dataset"), required=False, label="over",
        help_text="with two arms: the other one (default)")
    planned_power = forms.CharField(required=False, widget=forms.HiddenInput)

    #: Study fields passed to :func:`evaluation.services.create_study` as they are.
    SETTINGS = ("public_title", "instructions", "default_modality", "allow_tie", "ask_confidence", "ask_comment",
                "allow_revisit", "every_pair_each_case", "graded", "reread_share", "radiological",
                "primary_method", "ties", "alpha", "planned_power")

    class Meta:
        model = Study
        fields = ["title", "public_title", "instructions", "dataset", "default_modality", "allow_tie",
                  "ask_confidence", "ask_comment", "allow_revisit", "every_pair_each_case", "graded",
                  "reread_share", "radiological", "primary_method", "ties", "alpha"]
        widgets = {"instructions": forms.Textarea(attrs={"rows": 3}),
                   "reread_share": forms.NumberInput(attrs={"step": "any", "min": "0", "max": "0.5"}),
                   "alpha": forms.NumberInput(attrs={"step": "any", "min": "0.001", "max": "0.2"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["readers"].queryset = readers_queryset()
        self.fields["dataset"].queryset = Dataset.objects.all()
        for name in ("prediction_sets", "primary_set", "comparator_set"):
            self.fields[name].label_from_instance = lambda p: f"{p.dataset.name} / {p.name}"
        # Design options a bare POST (an API client, a test) may leave out: the model's defaults apply.
        self.optional_defaults = {name: Study._meta.get_field(name).default
                                  for name in ("primary_method", "ties", "alpha", "reread_share")}
        for name in self.optional_defaults:
            self.fields[name].required = False
        modalities = sorted(set(Image.objects.values_list("modality", flat=True)))
        self.fields["default_modality"] = forms.ChoiceField(
            required=False, choices=[("", "the dataset's first")] + [(m, m) for m in modalities],
            help_text="base image shown first")

    def clean_planned_power(self):
        text = self.cleaned_data.get("planned_power") or ""
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError("The planner's result is not valid JSON; compute it again.") from None
        power = value.get("power") if isinstance(value, dict) else None
        if not isinstance(power, int | float) or not 0 <= power <= 1:
            raise forms.ValidationError("The planner's result has no power between 0 and 1; compute it again.")
        return value

    def primary_sets(self):
        """``(set_x, set_y)`` of the primary endpoint, or None (the service's default)."""
        x, y = self.cleaned_data.get("primary_set"), self.cleaned_data.get("comparator_set")
        sets = list(self.cleaned_data.get("prediction_sets") or [])
        if x is None:
            return None
        if y is None and len(sets) == 2:
            y = next(p for p in sets if p.pk != x.pk) if x in sets else None
        return (x, y) if y is not None else None

    def clean(self):
        data = super().clean()
        for name, default in self.optional_defaults.items():
            if data.get(name) in (None, "") and name not in self.errors:
                data[name] = default
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
        x, y = data.get("primary_set"), data.get("comparator_set")
        if x is not None and x not in sets:
            self.add_error("primary_set", f"{x.name} is not one of the chosen arms.")
        elif y is not None and (y not in sets or y == x):
            self.add_error("comparator_set", "Choose another of the chosen arms.")
        elif x is not None and y is None and len(sets) > 2:
            self.add_error("comparator_set", "With three or more arms, name the arm the primary endpoint "
                                             "compares with.")
        if data.get("graded") and data.get("ask_confidence"):
            self.add_error("ask_confidence", "Graded answers already say how strong the preference is; ask "
                                             "for either graded answers or a confidence, not both.")
        modality = data.get("default_modality")
        if modality and modality not in dataset.modalities():
            self.add_error("default_modality", f"Dataset {dataset.name} has no modality {modality!r} "
                                               f"(it has: {', '.join(dataset.modalities())}).")
        return data


class PlanForm(forms.Form):
    """The planner's question: power of the primary analysis for a design, and cases for a target power."""

    preference = forms.FloatField(min_value=0.51, max_value=0.99, initial=0.65,
                                  help_text="expected P(arm preferred) for a typical reader on a typical case")
    readers = forms.IntegerField(min_value=1, max_value=50, initial=5)
    cases = forms.IntegerField(min_value=2, max_value=1000, initial=40)
    reader_sd = forms.FloatField(min_value=0, max_value=3, initial=0.5, help_text="logit scale")
    case_sd = forms.FloatField(min_value=0, max_value=3, initial=1.0, help_text="logit scale")
    alpha = forms.FloatField(min_value=0.001, max_value=0.2, initial=0.05)
    method = forms.ChoiceField(choices=Study.Method.choices, initial=Study.Method.MIXED)
    ties = forms.ChoiceField(choices=Study.Ties.choices, initial=Study.Ties.EXCLUDE, required=False)
    tie_rate = forms.FloatField(min_value=0, max_value=0.9, initial=0.0, required=False)
    target = forms.FloatField(min_value=0.5, max_value=0.99, initial=0.8, required=False,
                              help_text="target power for the cases needed")


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
    """A reader's answer, sent by the page as JSON. Graded studies send ``grade`` (-2..2, positive = left
    better) and the choice follows from it."""

    choice = forms.ChoiceField(required=False, choices=[("left", "left"), ("right", "right"), ("none", "none")])
    grade = forms.IntegerField(required=False, min_value=-2, max_value=2)
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

    def clean(self):
        data = super().clean()
        grade, choice = data.get("grade"), data.get("choice")
        if not self.study.graded:
            data["grade"] = None
            if not choice and "choice" not in self.errors:
                self.add_error("choice", "This field is required.")
            return data
        if grade is None:
            if "grade" not in self.errors:
                self.add_error("grade", "This study takes a graded answer (-2..2).")
            return data
        implied = "left" if grade > 0 else "right" if grade < 0 else "none"
        if choice and choice != implied:
            self.add_error("choice", f"grade {grade} means {implied}, not {choice}.")
        data["choice"] = implied
        return data
