"""Jobs: dispatch due jobs once, run them (cursor moves only on success), and the Schedule settings page."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import responses
import time_machine
from django.urls import reverse
from django.utils import timezone

from scheduling.models import OVERLAP, Job
from scheduling.tasks import run_job
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db

SHOP_API = "https://nordic-bikes.myshopify.com/admin/api/2025-01"
ORDER = json.loads((Path(__file__).parent / "payloads" / "shopify_order.json").read_text())


@pytest.fixture
def job(connected):
    job = Job.ensure_for(connected)
    job.start_now()
    return job


def url(name, job, *args):
    return reverse(name, args=[job.integration.number, job.code, *args])


def test_due_jobs_are_claimed_once_and_moved_on(job, monkeypatch):
    now = timezone.now()
    assert Job.claim_due(now) == [job.pk]
    assert Job.claim_due(now) == []
    job.refresh_from_db()
    assert job.next_run_at == now + timedelta(minutes=5)


def test_inactive_connections_are_not_dispatched(job):
    job.connection.active = False
    job.connection.save()
    assert Job.claim_due(timezone.now()) == []


@responses.activate
def test_a_run_fetches_since_the_cursor_and_moves_it_after_success(job, django_capture_on_commit_callbacks):
    cursor = job.cursor
    responses.get(f"{SHOP_API}/orders.json", json={"orders": [ORDER, {**ORDER, "id": 2, "name": "#2"}]})
    with time_machine.travel(cursor + timedelta(minutes=5), tick=False):
        run_job(job.pk)
        started = timezone.now()
    job.refresh_from_db()
    assert (job.last_outcome, job.last_fetched, job.last_received, job.running_since) == ("ok", 2, 2, None)
    assert job.cursor == started
    assert Transfer.objects.filter(connection=job.connection).count() == 2
    query = responses.calls[0].request.params
    assert query["updated_at_min"] == (cursor - OVERLAP).isoformat()

    # The overlap fetches the same orders again: they are received once.
    with time_machine.travel(started + timedelta(minutes=5)):
        run_job(job.pk)
    job.refresh_from_db()
    assert (job.last_fetched, job.last_received) == (2, 0)
    assert Transfer.objects.count() == 2


@responses.activate
def test_a_failed_run_keeps_the_cursor(job):
    cursor = job.cursor
    responses.get(f"{SHOP_API}/orders.json", status=502, body="Bad gateway")
    run_job(job.pk)
    job.refresh_from_db()
    assert job.last_outcome == "failed"
    assert job.last_message == "nordic-bikes.myshopify.com answered 502: Bad gateway"
    assert job.cursor == cursor


def test_a_run_during_a_run_does_nothing(job):
    assert job.claim_run(timezone.now())
    run_job(job.pk)  # would fail without HTTP faked: it must not even start
    job.refresh_from_db()
    assert job.last_outcome == ""
    # A run whose worker died is taken over after STALE_RUN.
    assert job.claim_run(timezone.now() + timedelta(hours=1))


def test_inactive_integration_is_skipped(job, personas):
    personas.integration.set_active(False, personas.owner)
    run_job(job.pk)
    job.refresh_from_db()
    assert (job.last_outcome, job.last_message) == ("skipped", "Integration is inactive")


def test_late_when_not_completed_successfully_within_two_intervals(job):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        job.finish_run("ok")
    assert job.last_ok_at == start
    assert not job.is_late(start + timedelta(minutes=9))
    assert job.is_late(start + timedelta(minutes=11))
    # A failed run finishes, but is no success: the job stays late.
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        job.finish_run("failed", "nordic-bikes.myshopify.com answered 502: Bad gateway")
    assert job.is_late(start + timedelta(minutes=11))
    assert Job.late(start + timedelta(minutes=11)).get() == job
    with time_machine.travel(start + timedelta(minutes=12), tick=False):
        job.finish_run("ok")
    assert not job.is_late(start + timedelta(minutes=12)) and not Job.late(start + timedelta(minutes=12)).exists()


@responses.activate
def test_a_job_that_fails_every_run_is_late_in_the_health_endpoint_and_metrics(job, client):
    from dashboard.metrics import registry

    responses.get(f"{SHOP_API}/orders.json", status=502, body="Bad gateway")
    start = timezone.now()
    for minutes in (0, 5, 10, 15):
        with time_machine.travel(start + timedelta(minutes=minutes, seconds=1), tick=False):
            run_job(job.pk)
    job.refresh_from_db()
    assert (job.last_outcome, job.last_ok_at) == ("failed", None)
    with time_machine.travel(start + timedelta(minutes=15, seconds=1), tick=False):
        assert job.is_late()
        assert client.get("/healthz").json()["late_jobs"] == 1
        assert registry.get_sample_value("iex_jobs_late") == 1
    job.connection.trigger = "webhook"
    job.connection.save()
    assert Job.count_late() == 0  # reconciled hourly: late after two hours


def test_a_job_activated_long_after_it_was_made_or_last_ran_is_not_late(personas, connected):
    connected.active = False
    connected.save()
    long_ago = timezone.now() - timedelta(days=3)
    with time_machine.travel(long_ago, tick=False):
        job = Job.ensure_for(connected)  # made when the systems were connected, inactive since
    client = personas.client(personas.admin)
    update = reverse("update_connection", args=[personas.integration.number, connected.code])
    client.post(update, {"active": "on", "trigger": "schedule"})
    job.refresh_from_db()
    assert not job.is_late() and Job.count_late() == 0
    # Off for a week after a last success, then on again: late only if no run succeeds within two intervals.
    Job.objects.filter(pk=job.pk).update(last_ok_at=long_ago, last_finished_at=long_ago, on_time_at=long_ago)
    client.post(update, {"active": "", "trigger": "schedule"})
    client.post(update, {"active": "on", "trigger": "schedule"})
    assert Job.count_late() == 0
    assert Job.count_late(timezone.now() + timedelta(minutes=11)) == 1


def test_skipped_runs_are_not_late(job, personas):
    """Nothing is to move while the integration is off: its skipped runs keep the job on time."""
    personas.integration.set_active(False, personas.owner)
    start = timezone.now()
    for minutes in (5, 10, 15, 20):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            run_job(job.pk)
    job.refresh_from_db()
    assert job.last_outcome == "skipped" and job.last_ok_at is None
    assert not job.is_late(start + timedelta(minutes=21)) and Job.count_late(start + timedelta(minutes=21)) == 0


def test_the_migration_fills_the_last_success_and_keeps_lateness_where_it_was(personas, job):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("scheduling.migrations.0003_job_last_ok_at_on_time_at")
    now = timezone.now()
    ok_at, failed_at = now - timedelta(minutes=3), now - timedelta(minutes=12)
    other, never = (Job.ensure_for(c) for c in personas.integration.connections.exclude(pk=job.connection_id)[:2])
    Job.objects.filter(pk=job.pk).update(last_outcome="ok", last_finished_at=ok_at, on_time_at=now)
    Job.objects.filter(pk=other.pk).update(last_outcome="failed", last_finished_at=failed_at, on_time_at=now)
    Job.objects.filter(pk=never.pk).update(created=now - timedelta(days=1), on_time_at=now)
    migration.fill(apps, None)
    filled = {j.pk: (j.last_ok_at, j.on_time_at) for j in Job.objects.all()}
    assert filled[job.pk] == (ok_at, ok_at)
    assert filled[other.pk] == (None, failed_at)  # failing since: late, as it was
    assert filled[never.pk] == (None, now - timedelta(days=1))


def test_webhook_connections_reconcile_hourly(job):
    job.connection.trigger = "webhook"
    job.connection.save()
    assert job.period == timedelta(hours=1)


# /i/<number>/schedule/


def test_schedule_page_shows_when_a_failing_job_last_succeeded(personas, job):
    page = reverse("schedule", args=[personas.integration.number])
    job.finish_run("failed", "nordic-bikes.myshopify.com answered 502: Bad gateway")
    body = personas.client(personas.viewer).get(page).content.decode()
    assert "answered 502: Bad gateway" in body and "Last successful run: never" in body
    ok_at = timezone.now().replace(hour=9, minute=30, second=5)
    with time_machine.travel(ok_at, tick=False):
        job.finish_run("ok", fetched=1, received=1)
    with time_machine.travel(ok_at + timedelta(minutes=20), tick=False):
        job.finish_run("failed", "nordic-bikes.myshopify.com answered 502: Bad gateway")
        body = personas.client(personas.viewer).get(page).content.decode()
    assert f"Last successful run: {ok_at:%-d %b}, 09:30:05" in body
    assert '<span class="badge badge-warn">Late</span>' in body
    job.finish_run("ok")
    body = personas.client(personas.viewer).get(page).content.decode()
    assert "Last successful run" not in body and ">Late<" not in body


def test_schedule_page_lists_jobs_with_their_last_run(personas, job):
    job.finish_run("ok", fetched=3, received=2)
    body = (
        personas.client(personas.viewer)
        .get(reverse("schedule", args=[personas.integration.number]))
        .content.decode()
    )
    assert "Shopify &gt; e-conomic: orders" in body
    assert "3 fetched, 2 new" in body
    assert "Run now" not in body  # viewers cannot run


def test_run_now_enqueues_the_job(personas, job, monkeypatch, django_capture_on_commit_callbacks):
    ran = []
    monkeypatch.setattr("iex.lib.queueing.publish", lambda name, job_id, **kw: ran.append(job_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = personas.client(personas.admin).post(url("run_job_now", job), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()  # the row polls until the run is done
    assert ran == [job.pk]


def test_run_now_of_an_inactive_connection_says_why(personas, job, monkeypatch):
    ran = []
    monkeypatch.setattr("iex.lib.queueing.publish", lambda name, job_id, **kw: ran.append(job_id))
    job.connection.source.disconnect()
    response = personas.client(personas.admin).post(url("run_job_now", job), follow=True)
    assert "cannot run: Shopify is not connected" in response.content.decode()
    assert ran == []


def test_change_interval(personas, job):
    client = personas.client(personas.admin)
    client.post(url("set_job_interval", job), {"interval": "60"})
    job.refresh_from_db()
    assert job.interval == 60
    response = client.post(url("set_job_interval", job), {"interval": "7"}, follow=True)
    assert "Choose one of the listed intervals" in response.content.decode()
    job.refresh_from_db()
    assert job.interval == 60


@pytest.mark.parametrize("name", ["run_job_now", "set_job_interval"])
def test_viewer_cannot_change_jobs(personas, job, name):
    assert personas.client(personas.viewer).post(url(name, job), {"interval": "60"}).status_code == 403
    job.refresh_from_db()
    assert job.interval == 300


@pytest.mark.parametrize("name", ["run_job_now", "set_job_interval"])
def test_job_changes_reject_get(personas, job, name):
    assert personas.client(personas.admin).get(url(name, job)).status_code == 405


def test_schedule_rejects_post(personas, job):
    assert (
        personas.client(personas.admin).post(reverse("schedule", args=[personas.integration.number])).status_code
        == 405
    )


def test_run_now_refusal_shows_in_the_row(personas, job):
    job.connection.source.disconnect()
    response = personas.client(personas.admin).post(url("run_job_now", job), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "Cannot run: Shopify is not connected" in body
    assert "every 2s" not in body


def test_a_run_moves_the_next_run_a_period_on(job):
    now = timezone.now()
    assert job.claim_run(now)
    job.refresh_from_db()
    assert job.next_run_at == now + timedelta(minutes=5)


def test_webhook_connections_show_their_last_delivery(personas, job):
    from connections.models import Delivery

    job.connection.trigger = "webhook"
    job.connection.save()
    page = personas.client(personas.viewer).get(reverse("schedule", args=[personas.integration.number]))
    assert "Last webhook: none yet" in page.content.decode()
    Delivery.objects.create(
        integration=personas.integration,
        module=job.connection.source,
        topic="orders/create",
        body=b"{}",
        received_at=timezone.now().replace(hour=9, minute=30, second=5),
    )
    page = personas.client(personas.viewer).get(reverse("schedule", args=[personas.integration.number]))
    assert "Webhook-driven" in page.content.decode() and ", 09:30:05" in page.content.decode()


def test_a_connection_that_cannot_run_says_paused_and_why_where_one_looks(job, personas, connected):
    """A deactivated system (or one that refused IEX) leaves its flows on but unable to run: Connections and Schedule
    say so, and promise no next run."""
    connected.source.active = False
    connected.source.save()
    viewer = personas.client(personas.viewer)
    number = personas.integration.number
    listed = viewer.get(reverse("connections", args=[number])).content.decode()
    assert "Paused" in listed and "Shopify is inactive" in listed
    schedule = viewer.get(reverse("schedule", args=[number])).content.decode()
    assert "Paused" in schedule and "Shopify is inactive" in schedule
    assert job.next_run_at.strftime("%H:%M:%S") not in schedule and "Late" not in schedule
    connected.source.active = True
    connected.source.save()
    connected.target.credentials_refused("e-conomic answered 401")
    schedule = viewer.get(reverse("schedule", args=[number])).content.decode()
    assert "e-conomic refused IEX: test it on its page" in schedule


def test_a_shorter_interval_is_neither_late_at_once_nor_due_in_the_past(personas, job):
    client = personas.client(personas.admin)
    client.post(url("set_job_interval", job), {"interval": "3600"})  # every hour, last run 50 minutes ago
    ago = timezone.now() - timedelta(minutes=50)
    Job.objects.filter(pk=job.pk).update(
        on_time_at=ago, last_started_at=ago, next_run_at=timezone.now() + timedelta(minutes=10)
    )
    client.post(url("set_job_interval", job), {"interval": "300"})  # every 5 minutes: due at once
    job.refresh_from_db()
    assert job.interval == 300 and not job.is_late()
    assert job.next_run_at >= timezone.now() - timedelta(seconds=5)  # not in the past
    schedule = personas.client(personas.viewer).get(reverse("schedule", args=[personas.integration.number]))
    assert "Late" not in schedule.content.decode()
