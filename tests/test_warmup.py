"""The web process warms itself up at start (labelgen_web/wsgi.py -> evaluation.warmup)."""

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from evaluation import warmup


def in_a_fresh_django_process(code, tmp_path):
    """Run ``code`` after ``django.setup()`` in a new Python process; returns the last line it printed."""
    setup = ("import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'labelgen_web.settings');"
             "import django; django.setup();")
    done = subprocess.run([sys.executable, "-c", setup + code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LABELGEN_VAR_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


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
    printed = in_a_fresh_django_process("from evaluation.warmup import warm_up; warm_up();"
                                        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))", tmp_path)
    assert printed == "[]"


def test_under_gunicorn_the_wsgi_module_warms_up_before_the_fork(monkeypatch):
    calls = []
    monkeypatch.setenv("LABELGEN_WARM_UP", "before-fork")
    monkeypatch.setattr(warmup, "warm_up_before_fork", lambda: calls.append("before-fork"))
    monkeypatch.setattr(warmup, "warm_up_in_background", lambda: calls.append("background"))
    monkeypatch.delitem(sys.modules, "labelgen_web.wsgi", raising=False)
    import labelgen_web.wsgi  # noqa: F401

    assert calls == ["before-fork"]


def test_the_warm_up_before_the_fork_leaves_no_thread_and_no_open_connection(tmp_path):
    """gunicorn forks its workers right after: a running thread or an open database socket would be copied into
    every worker."""
    printed = in_a_fresh_django_process(
        "import threading; from django.db import connection; connection.ensure_connection();"
        "from evaluation.warmup import warm_up_before_fork; warm_up_before_fork();"
        "print(threading.active_count(), connection.connection is None,"
        " 'evaluation.views_coordinator' in sys.modules, 'plotly.graph_objects' in sys.modules)", tmp_path)
    assert printed == "1 True True True"


def test_gunicorn_started_from_the_project_root_serves_pages_from_a_warm_master(tmp_path):
    """gunicorn.conf.py: the master imports the application and warms it up (scipy's compiled modules are mapped
    into the master itself) before it forks the workers, which then serve pages."""
    root = Path(__file__).resolve().parent.parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LABELGEN_VAR_DIR": str(tmp_path), "DEBUG": "1", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "labelgen_web.wsgi", "-w", "2",
                               "-b", f"127.0.0.1:{port}"], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # the socket opens once the master has warmed up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/login/")
        assert conn.getresponse().status == 200
        master_maps = Path(f"/proc/{server.pid}/maps").read_text()
        assert "/scipy/" in master_maps
    finally:
        server.terminate()
        server.wait(timeout=30)
