import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelgen_web.settings")
application = get_wsgi_application()

# Web processes only (runserver and gunicorn load this module; commands, workers and tests do not).
from evaluation.warmup import warm_up_in_background  # noqa: E402 - needs the app registry set up above

warm_up_in_background()
