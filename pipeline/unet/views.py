"""Admin pages for U-Net comparisons: launch, live curves of both arms, results and box plots."""

import json

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from accounts.roles import capability_required
from pipeline import tasks
from pipeline.models import Dataset
from pipeline.runs.launch import launch
from pipeline.runs.presets import ConfigError
from pipeline.unet.comparisons import check_arm, create_comparison, parse_arm, unet_config


class ComparisonForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    arms = forms.CharField(initial="expert,ai", help_text="label sources, e.g. expert,ai or expert:r1,ai")
    preset = forms.ChoiceField(choices=[("fast", "fast (CPU-friendly)"), ("paper", "paper (512x512x32, GPU)")])
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


@capability_required("run")
def comparison_launch(request):
    form = ComparisonForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        try:
            comparison, runs = create_comparison(form.cleaned_data["dataset"], form.arm_list, form.config,
                                                 form.cleaned_data["preset"], user=request.user)
        except ConfigError as exc:
            form.add_error("arms", str(exc))
        else:
            for run in runs:
                launch(run, tasks.train_unet)
            messages.success(request, f"{comparison} queued: one training run per arm on the gpu queue")
            return redirect(comparison)
    return render(request, "pipeline/comparison_launch.html", {"form": form}, status=400 if form.errors else 200)


def comparison_context(run):
    import plotly.graph_objects as go

    arms = list(run.arms_runs.select_related("prediction_set").order_by("id"))
    rows = {}
    for arm in arms:
        for m in arm.case_metrics.select_related("case"):
            rows.setdefault((m.case.external_id, m.case.pk), {})[(arm.arm_name, m.reference)] = m.metrics
    references = [ref for ref in ("truth", "expert") if any(ref == r for row in rows.values() for _, r in row)]
    fig = go.Figure()
    for arm in arms:
        for ref in references:
            values = [row[(arm.arm_name, ref)]["dice"] for row in rows.values() if (arm.arm_name, ref) in row]
            fig.add_trace(go.Box(y=values, name=f"{arm.arm_name} vs {ref}", boxpoints="all", jitter=0.3))
    fig.update_layout(yaxis={"title": {"text": "Dice (TEST cases)"}, "range": [0, 1]}, height=360, showlegend=False,
                      margin={"t": 20, "r": 10, "b": 40, "l": 50})
    table = [{"case": case, "case_pk": pk,
              "cells": [(row.get((arm.arm_name, ref)) or {}).get("dice") for arm in arms for ref in references]}
             for (case, pk), row in sorted(rows.items())]
    sets = [arm.prediction_set.name for arm in arms if arm.prediction_set_id]
    return {"arms": arms, "references": references, "result_rows": table, "box_figure": fig.to_json(),
            "arm_columns": [(arm.arm_name, ref) for arm in arms for ref in references], "prediction_set_names": sets,
            "chart_metrics": CHART_METRICS}


def training_context(run):
    return {"chart_metrics": CHART_METRICS}


CHART_METRICS = json.dumps([{"key": "train_loss", "label": "train loss"}, {"key": "val_dice", "label": "validation Dice"}])
