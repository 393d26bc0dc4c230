import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labelgen_web.settings")
application = get_wsgi_application()

# Web processes only (runserver and gunicorn load this module; commands, workers and tests do not).
from evaluation.warmup import warm_up_before_fork, warm_up_in_background  # noqa: E402 - needs the app registry

if os.environ.get("LABELGEN_WARM_UP") == "before-fork":  # gunicorn's master, see gunicorn.conf.py
    warm_up_before_fork()
else:
    warm_up_in_background()
