"""The run life cycle owned by pipeline.runs.execution: success, failure, cancel, redelivery."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pipeline.models import DeviceCheckRun, Run
from pipeline.runs.execution import Cancelled, execute, requeue_lost_runs

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


# --- Surviving a dead worker: leases, heartbeats, re-queueing.

def test_progress_and_polls_heartbeat_but_page_writes_do_not(settings):
    run = make_run()
    beats = []

    def body(r, ctx):
        ctx._beat_every = 0
        before = Run.objects.get(pk=r.pk).heartbeat_at
        ctx.should_stop()
        beats.append(Run.objects.get(pk=r.pk).heartbeat_at > before)
        Run.objects.get(pk=r.pk).update_fields(message="written by a page")  # no lease: not a heartbeat
        beats.append(Run.objects.get(pk=r.pk).heartbeat_at == r.heartbeat_at)

    assert execute(run.pk, body) == "succeeded"
    assert beats == [True, True]


def test_a_run_held_by_a_live_worker_is_not_run_twice(settings):
    settings.LABELGEN_RUN_LOST_SECONDS = 1
    settings.LABELGEN_RUN_HEARTBEAT_SECONDS = 1
    run = make_run(status="running", attempts=1, lease="a-live-delivery",
                   heartbeat_at=timezone.now() + timedelta(hours=1))
    assert execute(run.pk, lambda r, c: pytest.fail("must not run twice at once")) == "held"
    run.refresh_from_db()
    assert run.status == "running" and run.lease == "a-live-delivery" and run.attempts == 1


def test_a_stalled_worker_whose_run_was_taken_over_stops_without_writing():
    run = make_run()
    reached = []

    def body(r, ctx):
        Run.objects.filter(pk=r.pk).update(lease="the-new-delivery")  # another worker took it over
        ctx.progress(50, "still here?")
        reached.append("not reached")

    assert execute(run.pk, body) == "lost"
    run.refresh_from_db()
    assert reached == [] and run.status == "running" and run.lease == "the-new-delivery"
    assert run.message != "still here?"


def test_a_silent_running_run_is_requeued_once_and_says_so(settings, django_capture_on_commit_callbacks):
    settings.LABELGEN_RUN_LOST_SECONDS = 60
    run = make_run(status="running", attempts=1, lease="dead", progress=18.0, worker="gpu-7",
                   started_at=timezone.now() - timedelta(minutes=5), heartbeat_at=timezone.now() - timedelta(minutes=2))
    fresh = make_run(status="running", attempts=1, lease="alive", heartbeat_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert requeue_lost_runs() == [run.pk]
        assert requeue_lost_runs() == []  # a second checker (another worker) finds nothing left to do
    assert len(sent) == 1
    run.refresh_from_db()
    assert run.status == "queued" and run.lease == ""
    assert "gpu-7 stopped answering at 18%" in run.message and "delivery 2 of 3" in run.message
    assert run.history[-1]["text"] == run.message
    fresh.refresh_from_db()
    assert fresh.status == "running"
    # The re-queued delivery resumes it.
    assert execute(run.pk, lambda r, c: None) == "succeeded"
    run.refresh_from_db()
    assert run.attempts == 2 and "resumed on" in run.history[-1]["text"]


def test_a_run_out_of_deliveries_fails_instead_of_looping(settings, django_capture_on_commit_callbacks):
    settings.LABELGEN_RUN_MAX_ATTEMPTS = 3
    run = make_run(status="running", attempts=3, lease="dead", heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert requeue_lost_runs() == [run.pk]
    assert sent == []
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at and "given up after 3 of 3 deliveries" in run.message
