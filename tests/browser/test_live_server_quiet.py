"""The page fixture's wait for the live server's last requests (a request served while pytest-django
flushes the database deadlocked the flush on PostgreSQL)."""

import threading
import time

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.test import Client

from tests.browser.conftest import _in_flight

pytestmark = pytest.mark.browser


def test_the_counter_listens_to_every_request():
    assert request_started.has_listeners(WSGIHandler) and request_finished.has_listeners(WSGIHandler)
    receivers = [r[1]() for r in request_started.receivers] + [r[1]() for r in request_finished.receivers]
    assert _in_flight.started in receivers and _in_flight.finished in receivers


def test_the_wait_lasts_until_a_request_in_flight_has_finished():
    _in_flight.started(sender=WSGIHandler)
    finished_at = []

    def finish():
        time.sleep(0.6)
        finished_at.append(time.monotonic())
        _in_flight.finished(sender=WSGIHandler)

    threading.Thread(target=finish).start()
    assert _in_flight.wait_until_quiet(quiet=0.2)
    assert finished_at and time.monotonic() - finished_at[0] >= 0.2


def test_the_wait_gives_a_request_that_arrives_late_its_quiet_time():
    began = time.monotonic()

    def late_request():
        time.sleep(0.1)
        _in_flight.started(sender=WSGIHandler)
        time.sleep(0.3)
        _in_flight.finished(sender=WSGIHandler)

    threading.Thread(target=late_request).start()
    assert _in_flight.wait_until_quiet(quiet=0.2)
    assert time.monotonic() - began >= 0.6


def test_the_wait_reports_a_request_that_never_ends():
    _in_flight.started(sender=WSGIHandler)
    try:
        assert not _in_flight.wait_until_quiet(quiet=0.1, limit=0.5)
    finally:
        _in_flight.finished(sender=WSGIHandler)


def test_requests_through_the_test_client_do_not_count():
    """A streamed response the test client never reads never finishes; it must not hold the wait."""
    _in_flight.started(sender=Client().handler.__class__)
    assert _in_flight.wait_until_quiet(quiet=0.1, limit=0.5)
