"""The page fixture's wait for the live server's last requests (a request served while pytest-django
flushes the database deadlocked the flush on PostgreSQL)."""

import threading
import time

from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.test import Client

from tests.browser.conftest import _in_flight


def test_the_wait_lasts_until_a_request_in_flight_has_finished():
    request_started.send(sender=WSGIHandler, environ={})
    finished_at = []

    def finish():
        time.sleep(0.6)
        finished_at.append(time.monotonic())
        request_finished.send(sender=WSGIHandler)

    threading.Thread(target=finish).start()
    assert _in_flight.wait_until_quiet(quiet=0.2)
    assert finished_at and time.monotonic() - finished_at[0] >= 0.2


def test_the_wait_gives_a_request_that_arrives_late_its_quiet_time():
    began = time.monotonic()

    def late_request():
        time.sleep(0.1)
        request_started.send(sender=WSGIHandler, environ={})
        time.sleep(0.3)
        request_finished.send(sender=WSGIHandler)

    threading.Thread(target=late_request).start()
    assert _in_flight.wait_until_quiet(quiet=0.2)
    assert time.monotonic() - began >= 0.6


def test_the_wait_reports_a_request_that_never_ends():
    request_started.send(sender=WSGIHandler, environ={})
    try:
        assert not _in_flight.wait_until_quiet(quiet=0.1, limit=0.5)
    finally:
        request_finished.send(sender=WSGIHandler)


def test_requests_through_the_test_client_do_not_count():
    """A streamed response the test client never reads never finishes; it must not hold the wait."""
    request_started.send(sender=Client().handler.__class__, environ={})
    assert _in_flight.wait_until_quiet(quiet=0.1, limit=0.5)
