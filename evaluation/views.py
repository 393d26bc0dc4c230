from django.shortcuts import render

from accounts.roles import capability_required


@capability_required("vote")
def my_studies(request):
    return render(request, "evaluation/my_studies.html", {"assignments": []})
