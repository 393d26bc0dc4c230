"""Coordinator pages for datasets and cases."""

from django.shortcuts import render

from accounts.roles import capability_required


@capability_required("coordinate")
def dataset_list(request):
    return render(request, "pipeline/dataset_list.html", {"datasets": []})
