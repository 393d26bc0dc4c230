"""Admin pages for U-Net comparisons: launch, live curves of both arms, results and box plots."""

from django.contrib import messages
from django.shortcuts import redirect, render

from accounts.roles import capability_required
from pipeline import tasks
from pipeline.runs.launch import launch
from pipeline.runs.presets import ConfigError
from pipeline.unet.comparisons import create_comparison
from pipeline.unet.forms import ComparisonForm


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
