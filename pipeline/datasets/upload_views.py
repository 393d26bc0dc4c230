"""Uploading NIfTI files into a dataset: the coordinator's page and the token-authenticated JSON API."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import can, capability_required
from accounts.tokens import user_from_request
from labelgen_web.json_body import BadJSON, read_json
from pipeline.core.io.filenames import guess
from pipeline.datasets.uploads import UploadError, import_upload
from pipeline.models import Dataset

DEFAULT_MODALITIES = ("t1fsce", "t2")


@capability_required("coordinate")
def upload_page(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    modalities = tuple(dataset.modalities()) or DEFAULT_MODALITIES
    return render(request, "pipeline/dataset_upload.html", {"dataset": dataset, "modalities": modalities})


@require_POST
@capability_required("coordinate")
def upload_guess(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    try:
        names = read_json(request, max_bytes=256 * 1024, max_depth=3)["names"]
        assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    except (BadJSON, TypeError, KeyError, AssertionError):
        return JsonResponse({"error": 'send {"names": ["file.nii.gz", ...]}'}, status=400)
    modalities = tuple(dataset.modalities()) or DEFAULT_MODALITIES
    return JsonResponse({"guesses": [{"file": n, **guess(n, modalities).to_dict()} for n in names]})


@require_POST
@capability_required("coordinate")
def upload_files(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    return _import_response(request, dataset.name, request.user)


def _import_response(request, dataset_name, user):
    try:
        report = import_upload(dataset_name, request.FILES.getlist("files"), request.POST.get("manifest", ""),
                               strict=request.POST.get("strict") in ("1", "true", "on"), user=user)
    except UploadError as exc:
        return JsonResponse({"ok": False, "error": str(exc)}, status=400)
    return JsonResponse(report.to_dict(), status=200 if report.ok else 422)


def _api_user(request):
    user = user_from_request(request)
    if user is None:
        return None, JsonResponse({"error": "send a valid API token: 'Authorization: Token <key>'"}, status=401)
    if not can(user, "coordinate"):
        return None, JsonResponse({"error": "this token's user is not a coordinator or admin"}, status=403)
    return user, None


@login_not_required
@csrf_exempt
@require_POST
def api_import(request, name):
    user, denied = _api_user(request)
    if denied:
        return denied
    return _import_response(request, name, user)


@login_not_required
@require_GET
def api_datasets(request):
    user, denied = _api_user(request)
    if denied:
        return denied
    from django.db.models import Count

    rows = Dataset.objects.annotate(n_cases=Count("cases")).values("name", "description", "n_cases")
    return JsonResponse({"datasets": list(rows)})
