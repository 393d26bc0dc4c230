"""Volume files under MEDIA_ROOT, named by the sha256 of their content: ``volumes/ab/<sha256>.nii.gz``.

Files are written to a temp name and moved in place, so a reader never sees half a file. An import that
rolls back removes the files it added unless a committed row uses them (:class:`StagedVolumes`).
"""

import hashlib
import os
import uuid
from pathlib import Path

from django.conf import settings

from pipeline.core.io.nifti import save_nifti_atomic


def media_path(relpath):
    return Path(settings.MEDIA_ROOT) / relpath


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def store_volume(data, affine, *, dtype=None):
    """Write ``data`` (X, Y, Z) + ``affine`` as .nii.gz under MEDIA_ROOT. Returns ``(relpath, created)``."""
    incoming = media_path("volumes/incoming")
    incoming.mkdir(parents=True, exist_ok=True)
    tmp = incoming / f"{uuid.uuid4().hex}.nii.gz"
    save_nifti_atomic(tmp, data, affine, dtype=dtype)
    sha = _sha256(tmp)
    relpath = f"volumes/{sha[:2]}/{sha}.nii.gz"
    final = media_path(relpath)
    if final.exists():
        tmp.unlink()
        return relpath, False
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    return relpath, True


class StagedVolumes:
    """Collects the files an import creates; if the import fails they are removed again.

    Wrap the transaction, so cleanup runs after the rollback::

        with StagedVolumes() as staged, transaction.atomic():
            relpath = staged.store(data, affine)
            Image.objects.create(file=relpath, ...)

    A file is kept if a committed row uses it (the same content imported meanwhile by someone else).
    """

    def __init__(self):
        self.created = []

    def store(self, data, affine, *, dtype=None):
        relpath, created = store_volume(data, affine, dtype=dtype)
        if created:
            self.created.append(relpath)
        return relpath

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            from pipeline.models import Image, Label

            for rel in self.created:
                if not (Image.objects.filter(file=rel).exists() or Label.objects.filter(file=rel).exists()):
                    media_path(rel).unlink(missing_ok=True)
        return False
