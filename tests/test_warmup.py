"""The web process warms itself up at start (labelgen_web/wsgi.py -> evaluation.warmup)."""

import sys

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
