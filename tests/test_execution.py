"""The run life cycle owned by pipeline.execution: success, failure, cancel, redelivery."""

import pytest

from pipeline.execution import Cancelled, execute
from pipeline.models import DeviceCheckRun, Run

pytestmark = pytest.mark.django_db


def make_run(**kw):
    return DeviceCheckRun.objects.create(**kw)


def test_success_records_progress_and_timings():
    run = make_run()

    def body(r, ctx):
        ctx.progress(40, "halfway-ish")
        ctx.event(1, {"loss": 0.5})
        ctx.event(1, {"loss": 0.4})  # re-recording a step (after a resume) replaces it

    assert execute(run.pk, body) == Run.Status.SUCCEEDED
    run.refresh_from_db()
    assert run.status == "succeeded" and run.progress == 100 and run.finished_at >= run.started_at
    assert run.message == "halfway-ish" and run.attempts == 1
    assert list(run.events.values_list("values", flat=True)) == [{"loss": 0.4}]


def test_failure_keeps_the_error():
    run = make_run()

    def body(r, ctx):
        raise ValueError("case007: modality t2 missing")

    assert execute(run.pk, body) == Run.Status.FAILED
    run.refresh_from_db()
    assert "case007: modality t2 missing" in run.message
    assert "ValueError" in run.error


def test_cancel_requested_while_running_stops_the_body():
    run = make_run()
    seen = []

    def body(r, ctx):
        Run.objects.get(pk=r.pk).request_cancel()  # as the page would, from another request
        ctx._cancel_poll = 0
        seen.append(ctx.should_stop())
        ctx.check_cancel()
        seen.append("not reached")

    assert execute(run.pk, body) == Run.Status.CANCELLED
    assert seen == [True]


def test_cancel_before_start_and_finished_runs_are_not_rerun():
    queued = make_run()
    assert queued.request_cancel()
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert execute(queued.pk, lambda r, c: pytest.fail("must not run")) == "cancelled"
    assert not queued.request_cancel()


def test_redelivered_running_run_resumes_and_counts_attempts():
    run = make_run(status="running", attempts=1)
    assert execute(run.pk, lambda r, c: None) == "succeeded"
    run.refresh_from_db()
    assert run.attempts == 2


def test_cancelled_is_an_exception_not_a_failure():
    run = make_run()

    def body(r, ctx):
        raise Cancelled()

    assert execute(run.pk, body) == "cancelled"
