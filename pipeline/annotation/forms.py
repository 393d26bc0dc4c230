from django import forms
from django.contrib.auth import get_user_model

from accounts.roles import GROUPS, READER
from pipeline.models import Case, Dataset, Label


class AnnotationTaskForm(forms.Form):
    """A task: which dataset's cases (all, or the ones ticked), which kind of input, which radiologists."""

    name = forms.CharField(max_length=120)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    input = forms.ChoiceField(choices=Label.Input.choices, initial=Label.Input.SCRIBBLES,
                              help_text="what the radiologists are asked to draw")
    cases = forms.CharField(required=False, help_text="case names separated by commas or spaces; empty = every case")
    radiologists = forms.ModelMultipleChoiceField(queryset=get_user_model().objects.none(),
                                                  widget=forms.CheckboxSelectMultiple)
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["radiologists"].queryset = (get_user_model().objects.filter(groups__name=GROUPS[READER])
                                                .order_by("username"))

    def clean(self):
        data = super().clean()
        dataset = data.get("dataset")
        if dataset is None:
            return data
        names = [n for n in (data.get("cases") or "").replace(",", " ").split() if n]
        cases = Case.objects.filter(dataset=dataset).order_by("external_id")
        if names:
            found = {c.external_id: c for c in cases.filter(external_id__in=names)}
            missing = [n for n in names if n not in found]
            if missing:
                self.add_error("cases", f"dataset {dataset.name} has no case {', '.join(missing[:5])}")
                return data
            data["case_list"] = [found[n] for n in dict.fromkeys(names)]
        else:
            data["case_list"] = list(cases)
        if not data["case_list"]:
            self.add_error("dataset", f"dataset {dataset.name} has no cases")
        return data
