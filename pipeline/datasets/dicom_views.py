"""Uploading a zip of DICOM: scan it (the series descriptions, for the mapping step), then import it with the
coordinator's mapping; the same through the token API. The zip travels twice rather than waiting on the server
between the steps: nothing is left behind when a coordinator walks away from the page."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.roles import capability_required
from pipeline.core.io.case_names import CaseNameError, CaseNamer, read_mapping
from pipeline.datasets.dicom_import import (
    DicomImportError,
    DicomImportOptions,
    guess_modality,
    import_dicom,
    parse_modality_map,
    parse_rater,
    parse_split,
    pseudonym_key,
    scan_summary,
)
from pipeline.datasets.upload_views import DEFAULT_MODALITIES, _api_user
from pipeline.models import Dataset


class _Refused(ValueError):
    pass


@require_POST
@capability_required("coordinate")
def dicom_scan(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    return _respond(request, dataset.name, request.user, scan_only=True,
                    modalities=tuple(dataset.modalities()) or DEFAULT_MODALITIES)


@require_POST
@capability_required("coordinate")
def dicom_import_upload(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    return _respond(request, dataset.name, request.user)


@login_not_required
@csrf_exempt
@require_POST
def api_import_dicom(request, name):
    """``POST archive=<zip>`` with ``modality=DESC=MOD`` (repeated), ``split``, ``case_name`` (patient-id|hash),
    ``case_map`` (CSV text), ``by_study``, ``rater``, ``strict``; ``scan=1`` only lists the series descriptions."""
    user, denied = _api_user(request)
    if denied:
        return denied
    scan_only = request.POST.get("scan") in ("1", "true", "on")
    modalities = DEFAULT_MODALITIES
    if scan_only:
        dataset = Dataset.objects.filter(name=name).first()
        modalities = tuple(dataset.modalities()) if dataset and dataset.modalities() else DEFAULT_MODALITIES
    return _respond(request, name, user, scan_only=scan_only, modalities=modalities)


def _flag(request, key):
    return request.POST.get(key) in ("1", "true", "on")


def _respond(request, dataset_name, user, *, scan_only=False, modalities=DEFAULT_MODALITIES):
    upload = request.FILES.get("archive")
    if upload is None:
        return JsonResponse({"ok": False, "error": "archive: send the DICOM files as one .zip"}, status=400)
    tmp_root = Path(settings.FILE_UPLOAD_TEMP_DIR or Path(settings.MEDIA_ROOT) / "uploads")
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        archive = Path(tmp) / "upload.zip"
        with open(archive, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        names = {str(archive): Path(upload.name).name[:100]}
        try:
            if scan_only:
                summary = scan_summary(archive)
                for row in summary["descriptions"]:
                    row["guess"] = guess_modality(row["description"], modalities) if row["kind"] == "image" else ""
                return JsonResponse({"ok": True, **summary})
            options = _options(request, Path(tmp))
            report = import_dicom(dataset_name, archive, options, user=user, names=names)
        except (DicomImportError, CaseNameError, _Refused) as exc:
            message = str(exc).replace(str(archive), archive.name).replace(archive.name, names[str(archive)])
            return JsonResponse({"ok": False, "error": message}, status=400)
    return JsonResponse(report.to_dict(), status=200 if report.ok else 422)


def _options(request, tmp):
    pairs = parse_modality_map(request.POST.getlist("modality"))
    case_map = request.POST.get("case_map", "").strip()
    if case_map:
        path = tmp / "case_map.csv"
        path.write_text(case_map + "\n", encoding="utf-8")
        namer = CaseNamer("map", mapping=read_mapping(path))
    elif request.POST.get("case_name", "patient-id") == "hash":
        namer = CaseNamer("hash", key=pseudonym_key())
    elif request.POST.get("case_name", "patient-id") == "patient-id":
        namer = CaseNamer()
    else:
        raise _Refused("case_name: must be patient-id or hash")
    return DicomImportOptions(pairs, parse_split(request.POST.get("split", "TRAIN")), _flag(request, "by_study"),
                              namer, parse_rater(request.POST.get("rater", "")), _flag(request, "strict"))
