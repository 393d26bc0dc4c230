from django import forms

from pipeline.models import Dataset, Label


class DatasetForm(forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class LabelReviewForm(forms.Form):
    review = forms.ChoiceField(choices=Label.Review.choices)
