"""Playwright (Python) driving Debian's chromium against pytest-django's live server."""

import os
import threading
import time
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test body are
# still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (run `make browser-deps`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
        )
        yield browser
        browser.close()


def _served_over_wsgi(sender):
    return isinstance(sender, type) and issubclass(sender, WSGIHandler)


class _RequestsInFlight:
    """Counts the live server's requests, so a test ends only once its pages' last requests have.

    A closing page still talks to the server: the annotation page sends the time spent with
    `navigator.sendBeacon` when it is hidden, and Playwright does not report beacons. Served while
    pytest-django flushes the database after the test, such a request deadlocked the flush on
    PostgreSQL (CI, stop 25). Only requests served over WSGI count: the test client's handler is not a
    WSGIHandler, and a streamed response it never read would never finish.
    """

    def __init__(self):
        self.count = 0
        self.last = time.monotonic()
        self.changed = threading.Condition()

    def started(self, sender, **kwargs):
        if not _served_over_wsgi(sender):
            return
        with self.changed:
            self.count += 1

    def finished(self, sender, **kwargs):
        if not _served_over_wsgi(sender):
            return
        with self.changed:
            self.count -= 1
            self.last = time.monotonic()
            self.changed.notify_all()

    def wait_until_quiet(self, quiet=0.3, limit=30.0):
        """Return once no request has been in flight for `quiet` seconds (after at most `limit`)."""
        began = time.monotonic()
        deadline = began + limit
        with self.changed:
            while time.monotonic() < deadline:
                idle_for = time.monotonic() - max(self.last, began)
                if self.count == 0 and idle_for >= quiet:
                    return True
                self.changed.wait(timeout=quiet if self.count else quiet - idle_for)
        return False


_in_flight = _RequestsInFlight()
request_started.connect(_in_flight.started, dispatch_uid="browser-tests-in-flight")
request_finished.connect(_in_flight.finished, dispatch_uid="browser-tests-in-flight")


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()
    assert _in_flight.wait_until_quiet(), "the live server was still serving 30 s after the test's pages closed"


def login(page, username, password):
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
