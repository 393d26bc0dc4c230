"""The web process warms itself up at start (labelgen_web/wsgi.py -> evaluation.warmup)."""

import os
import subprocess
import sys
from pathlib import Path

from evaluation import warmup


def test_warm_up_draws_every_report_chart_from_the_tiny_vote_table():
    figures = warmup.warm_up()
    assert figures["preference"] and figures["side_bias"] and figures["time"]
    (pair,) = figures["pairs"]
    assert pair["forest"] and pair["heatmap"] and pair["dice"]


def test_a_failing_warm_up_ends_quietly(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    hooked = []
    monkeypatch.setattr(warmup, "warm_up", broken)
    monkeypatch.setattr("threading.excepthook", lambda args: hooked.append(args))
    thread = warmup.warm_up_in_background()
    thread.join(30)
    assert not thread.is_alive() and thread.daemon and not hooked


def test_the_wsgi_module_starts_the_warm_up(monkeypatch):
    calls = []
    monkeypatch.setattr(warmup, "warm_up_in_background", lambda: calls.append("started"))
    monkeypatch.delitem(sys.modules, "labelgen_web.wsgi", raising=False)
    import labelgen_web.wsgi as wsgi

    assert calls == ["started"] and callable(wsgi.application)


def test_a_web_process_serves_pages_without_loading_torch(tmp_path):
    """The URLconf and the report need neither torch nor MONAI (about 2.4 s and hundreds of MB per web
    process); only the worker's run bodies import them."""
    code = ("import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'labelgen_web.settings');"
            "import django; django.setup(); from evaluation.warmup import warm_up; warm_up();"
            "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LABELGEN_VAR_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
