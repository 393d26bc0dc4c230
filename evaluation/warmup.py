"""Pay a web process's one-time costs when it starts, not on a user's first click.

In a fresh server process the first request of any page loads the URLconf and every view module; the first study
report also imports scipy and plotly and builds plotly's validators. :func:`warm_up` does both, on a tiny made-up
vote table. ``labelgen_web/wsgi.py`` runs it in gunicorn's master before the workers are forked
(``gunicorn.conf.py``), and in a background thread under runserver, so that server takes requests at once.
Measured with ``bench/report_bench.py --warm-up`` at 100 readers x 2,000 cases: the first report view in a
fresh process went from 5.6 s to 2.2 s. Web processes do not import torch or MONAI at all (only the worker's run
bodies do; ``tests/test_warmup.py`` checks it): the URLconf used to pull them in through the run forms, 2 s
and 220 MB per process.
"""

import logging
import threading

import pandas as pd

logger = logging.getLogger(__name__)


def tiny_votes():
    """A made-up vote table in the statistics' format: 2 readers x 3 cases, one pair of arms, every column a
    real study can have (confidence, time, Dice) so every chart is drawn."""
    rows = []
    for r, reader in enumerate(("warm-up-1", "warm-up-2")):
        for c in range(3):
            rows.append({"reader": reader, "case": f"case{c}", "arm_a": "A", "arm_b": "B",
                         "choice": ("a", "b", "tie")[(r + c) % 3], "left": "a", "confidence": 3.0 + c % 2,
                         "time_ms": 4000 + 500 * c, "dice_a": 0.8, "dice_b": 0.7 + 0.05 * c})
    return pd.DataFrame(rows)


def warm_up():
    """Load the URLconf, then compute a report and its figures on :func:`tiny_votes`; returns the figures."""
    from django.urls import get_resolver

    from evaluation.report_charts import all_figures
    from evaluation.stats import study_report

    get_resolver().url_patterns  # noqa: B018 - imports every view module, as the first request would
    votes = tiny_votes()
    report = study_report(votes, n_boot=20, fit_mixed_model=False).to_dict()
    return all_figures(report, votes)


def warm_up_quietly():
    """:func:`warm_up`, where a failure must never stop the server (the first page then simply pays the cost
    itself): it is logged and swallowed."""
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - best effort, see the docstring
        logger.warning("warm-up failed; the first requests will be slower", exc_info=True)


def warm_up_in_background():
    """Start :func:`warm_up_quietly` in a daemon thread, so the server takes requests at once (runserver)."""
    thread = threading.Thread(target=warm_up_quietly, name="report-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up_before_fork():
    """Warm up in gunicorn's master, before it forks the workers (gunicorn.conf.py): no thread may be running at
    the fork, and no database or cache connection may be open, or the workers would share its socket."""
    from django.core.cache import caches
    from django.db import connections

    warm_up_quietly()
    connections.close_all()
    caches.close_all()
