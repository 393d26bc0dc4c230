"""What the benchmarks that run the Django app share: a throw-away var folder (SQLite, media, broker) and a
migrated database, set up before Django is imported."""

import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(prefix):
    """Point labelgen at a fresh temporary var folder, start Django and migrate; returns that folder."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.environ.update({"LABELGEN_VAR_DIR": tmp, "DJANGO_SETTINGS_MODULE": "labelgen_web.settings"})
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))  # production settings refuse to start without one
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return tmp


def import_phantoms(tmp, name, **kwargs):
    """Write phantoms under ``tmp`` (``write_phantom_dataset`` arguments) and import them as dataset ``name``."""
    from django.core.management import call_command

    from pipeline.core.phantoms import write_phantom_dataset
    from pipeline.models import Dataset

    manifest = write_phantom_dataset(Path(tmp) / "data", **kwargs)
    call_command("import_cases", str(manifest), dataset=name, no_progress=True, stdout=open(os.devnull, "w"))
    return Dataset.objects.get(name=name)
