"""Importing uploaded files described by a manifest: the web upload page and the JSON API share this.

Only the request's own uploads are ever opened: the manifest's ``file`` cells must be the bare names of
uploaded files (see :func:`pipeline.core.io.manifest.read_manifest`), never paths on the server.
"""

import re
import tempfile
from pathlib import Path

from django.conf import settings

from pipeline.core.io.manifest import ManifestError, read_manifest
from pipeline.core.io.names import InvalidName, check_name
from pipeline.datasets.importing import import_entries

SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class UploadError(ValueError):
    pass


def import_upload(dataset_name, files, manifest_text, *, strict=False, user=None):
    """``files``: Django UploadedFiles; ``manifest_text``: a rich-format CSV whose ``file`` column names them.

    Returns the :class:`~pipeline.datasets.importing.ImportReport`; raises :class:`UploadError` naming the problem.
    """
    try:
        check_name(dataset_name, "dataset")
    except InvalidName as exc:
        raise UploadError(str(exc)) from None
    if not files:
        raise UploadError("no files were uploaded")
    if not (manifest_text or "").strip():
        raise UploadError("the manifest is empty")
    tmp_root = Path(settings.FILE_UPLOAD_TEMP_DIR or Path(settings.MEDIA_ROOT) / "uploads")
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        tmp = Path(tmp)
        (tmp / "files").mkdir()
        saved = {}
        for upload in files:
            name = Path(upload.name).name
            if SAFE.sub("_", name) != name or name.startswith(".") or len(name) > 200:
                raise UploadError(f"{name[:60]}: file names may only use letters, digits, '.', '_' and '-', "
                                  "at most 200 of them, not starting with '.'")
            if name in saved:
                raise UploadError(f"{name}: uploaded twice")
            with open(tmp / "files" / name, "wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            saved[name] = tmp / "files" / name
        manifest_path = tmp / "manifest.csv"
        manifest_path.write_text(manifest_text, encoding="utf-8")
        try:
            manifest = read_manifest(manifest_path, uploads=saved)
        except ManifestError as exc:
            raise UploadError(str(exc)) from None
        report = import_entries(dataset_name, manifest.entries, strict=strict, user=user)
        unused = sorted(set(saved) - {e.file.name for e in manifest.entries})
        for name in unused:
            report.add("warning", "-", "uploaded but not in the manifest; ignored", name)
        for warning in manifest.warnings:
            report.add("warning", "-", warning)
        return report
