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
        job.finish_run("ok", fetched=1)
    with time_machine.travel(ok_at + timedelta(minutes=20), tick=False):
        job.finish_run("failed", "nordic-bikes.myshopify.com answered 502: Bad gateway")
        body = personas.client(personas.viewer).get(page).content.decode()
    assert f"Last successful run: {ok_at:%-d %b}, 09:30:05" in body
    assert '<span class="badge badge-warn">Late</span>' in body
    job.finish_run("ok")
    body = personas.client(personas.viewer).get(page).content.decode()
    assert "Last successful run" not in body and ">Late<" not in body


@responses.activate
def test_schedule_page_lists_jobs_with_their_last_run(personas, job):
    responses.get(f"{SHOP_API}/orders.json", json={"orders": [ORDER, {**ORDER, "id": 2, "name": "#2"}]})
    run_job(job.pk)  # its transfers are queued on commit: still waiting
    body = (
        personas.client(personas.viewer)
        .get(reverse("schedule", args=[personas.integration.number]))
        .content.decode()
    )
    assert "Shopify &gt; e-conomic: orders" in body
    assert "2 fetched: 2 new, 0 already known. Of the new: 2 still waiting." in body
    assert 'hx-trigger="every 2s"' in body  # the row follows them until they settle
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


# Start date: from which date orders are imported


def paid_orders(sandbox, *days_ago):
    """Paid orders placed in the sandbox shop that many days ago, each."""
    now = timezone.now()
    placed = []
    for days in days_ago:
        with time_machine.travel(now - timedelta(days=days)):
            placed.append(sandbox.create_order({"financial_status": "paid", "country": "DK"}))
    return placed


def imported(connection):
    return set(Transfer.objects.filter(connection=connection).values_list("reference", flat=True))


@pytest.mark.parametrize("activated", ["before", "after"])
def test_the_first_run_imports_only_the_orders_since_the_start_date(personas, sandboxed, sandbox, activated):
    old, recent, today = paid_orders(sandbox, 40, 10, 0)
    client = personas.client(personas.admin)
    update = reverse("update_connection", args=[personas.integration.number, sandboxed.code])
    if activated == "after":  # chosen before the connection is switched on: the activation starts from it
        client.post(update, {"active": "off"})
    response = client.post(update, {"start": "30", "date": ""}, follow=True)
    assert "imports orders placed or changed since" in response.content.decode()
    if activated == "after":
        client.post(update, {"active": "on"})
    run_job(sandboxed.job.pk)
    assert imported(sandboxed) == {recent["name"], today["name"]}
    assert old["name"] not in imported(sandboxed)


def test_by_default_the_first_run_imports_from_the_activation(personas, sandboxed, sandbox):
    paid_orders(sandbox, 1)  # placed before the activation: not imported
    client = personas.client(personas.admin)
    update = reverse("update_connection", args=[personas.integration.number, sandboxed.code])
    client.post(update, {"active": "off"})
    client.post(update, {"active": "on"})
    (new,) = paid_orders(sandbox, 0)
    run_job(sandboxed.job.pk)
    assert imported(sandboxed) == {new["name"]}


def test_an_earlier_start_date_after_runs_imports_again_from_then(personas, sandboxed, sandbox):
    old, recent = paid_orders(sandbox, 20, 0)
    client = personas.client(personas.admin)
    update = reverse("update_connection", args=[personas.integration.number, sandboxed.code])
    client.post(update, {"start": "7", "date": ""})
    run_job(sandboxed.job.pk)
    assert imported(sandboxed) == {recent["name"]}

    # "Now" after runs takes nothing back: the next run goes on from the last one.
    response = client.post(update, {"start": "now", "date": ""}, follow=True)
    assert "goes on from its last run" in response.content.decode()
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        run_job(sandboxed.job.pk)
    assert imported(sandboxed) == {recent["name"]}

    placed = (timezone.now() - timedelta(days=21)).date()
    response = client.post(update, {"start": "date", "date": placed.isoformat()}, follow=True)
    body = response.content.decode()
    assert f"imports again the orders placed or changed since {placed:%-d %b %Y}, 00:00 UTC" in body
    assert "counts against this month&#x27;s allowance" in body
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        run_job(sandboxed.job.pk)
    job = Job.objects.get(pk=sandboxed.job.pk)
    assert imported(sandboxed) == {old["name"], recent["name"]}
    assert (job.last_fetched, job.last_received) == (2, 1)  # the recent order was known: not received twice


def test_the_start_date_is_shown_where_one_looks(personas, connected):
    client = personas.client(personas.admin)
    number = personas.integration.number
    client.post(
        reverse("update_connection", args=[number, connected.code]), {"start": "date", "date": "2025-03-01"}
    )
    job = Job.objects.get(connection=connected)
    assert job.start_chosen and job.import_from.isoformat() == "2025-03-01T00:00:00+00:00"
    assert (
        "Orders placed or changed since 1 Mar 2025, 00:00 UTC"
        in client.get(reverse("connections", args=[number])).content.decode()
    )
    assert (
        "Imports orders since 1 Mar 2025, 00:00 UTC"
        in client.get(reverse("schedule", args=[number])).content.decode()
    )
    viewer = personas.client(personas.viewer).get(reverse("connections", args=[number])).content.decode()
    assert "1 Mar 2025" in viewer and "<fieldset disabled>" in viewer


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"start": "date", "date": ""}, "Choose the date to import orders from."),
        ({"start": "date", "date": "2999-01-01"}, "Choose a date that has passed"),
        ({"start": "365", "date": ""}, "Select a valid choice"),
    ],
)
def test_a_start_date_that_cannot_be_is_refused_next_to_its_field(personas, connected, posted, error):
    job = Job.ensure_for(connected)
    cursor = job.cursor
    update = reverse("update_connection", args=[personas.integration.number, connected.code])
    response = personas.client(personas.admin).post(update, posted)
    assert response.status_code == 400
    assert error in response.content.decode()
    job.refresh_from_db()
    assert (job.cursor, job.start_chosen) == (cursor, False)


def test_only_the_orders_connection_has_a_start_date(personas, connected):
    products = personas.integration.connections.get(flow="products")
    update = reverse("update_connection", args=[personas.integration.number, products.code])
    response = personas.client(personas.admin).post(update, {"start": "30", "date": ""})
    assert response.status_code == 400 and "has no start date" in response.content.decode()


def test_viewer_cannot_choose_the_start_date_and_outsider_cannot_see_it(personas, connected):
    update = reverse("update_connection", args=[personas.integration.number, connected.code])
    assert personas.client(personas.viewer).post(update, {"start": "30", "date": ""}).status_code == 403
    assert personas.client(personas.outsider).post(update, {"start": "30", "date": ""}).status_code == 404
    assert not Job.objects.filter(connection=connected, start_chosen=True).exists()


# Run summaries that add up


def test_a_run_summary_adds_up_with_a_skipped_order(
    personas, sandboxed, sandbox, eager, django_capture_on_commit_callbacks
):
    job = Job.ensure_for(sandboxed)
    job.start_now()
    sandbox.create_order({"financial_status": "paid", "country": "DK"})
    sandbox.create_order({"financial_status": "pending", "country": "DK"})
    with django_capture_on_commit_callbacks(execute=True):
        run_job(job.pk)
    page = reverse("schedule", args=[personas.integration.number])
    body = personas.client(personas.viewer).get(page).content.decode()
    assert "2 fetched: 2 new, 0 already known. Of the new: 1 created, 1 skipped." in body
    assert 'hx-trigger="every 2s"' not in body  # settled: nothing to follow

    # The overlap fetches both again: already known, and nothing new to tell of.
    with (
        time_machine.travel(timezone.now() + timedelta(minutes=5)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        run_job(job.pk)
    body = personas.client(personas.viewer).get(page).content.decode()
    assert "2 fetched: 0 new, 2 already known." in body and "Of the new" not in body


def test_a_run_counts_its_own_transfers_not_those_webhooks_brought_meanwhile(personas, connected):
    job = Job.ensure_for(connected)

    def transfer(ref, status):
        return Transfer.objects.create(
            integration=personas.integration, connection=connected, connection_label=connected.label,
            entity="orders", source_ref=ref, status=status,
        )  # fmt: skip

    before = transfer("0", "created")  # an earlier run's
    first = transfer("1", "created")
    posted = transfer("2", "failed")  # a webhook's, while the run fetched
    last = transfer("3", "skipped")
    job.finish_run("ok", fetched=3, transfers=[first.pk, last.pk])
    assert set(job.run_transfers()) == {first, last}
    assert job.last_transfers_besides == [posted.pk] and before not in job.run_transfers()


# Run now: queued at once, the result when it lands


def test_run_now_answers_queued_and_the_row_polls_until_the_result(
    personas, job, monkeypatch, django_capture_on_commit_callbacks
):
    ran = []
    monkeypatch.setattr("iex.lib.queueing.publish", lambda name, job_id, **kw: ran.append(job_id))
    client = personas.client(personas.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("run_job_now", job), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and ran == [job.pk]
    assert ">Queued</span>" in body and 'hx-trigger="every 2s"' in body

    job.refresh_from_db()
    assert job.claim_run(timezone.now())  # the worker takes it
    body = client.get(url("job_row", job)).content.decode()
    assert ">Running</span>" in body and ">Queued<" not in body and 'hx-trigger="every 2s"' in body

    Job.objects.get(pk=job.pk).finish_run("ok", fetched=0)
    body = client.get(url("job_row", job)).content.decode()
    assert "0 fetched: nothing had changed." in body and "hx-trigger" not in body


def test_run_now_without_javascript_redirects_back_saying_queued(personas, job, monkeypatch):
    ran = []
    monkeypatch.setattr("iex.lib.queueing.publish", lambda name, job_id, **kw: ran.append(job_id))
    client = personas.client(personas.admin)
    response = client.post(url("run_job_now", job))
    assert response.status_code == 302 and response["Location"] == reverse(
        "schedule", args=[job.integration.number]
    )
    body = client.get(response["Location"]).content.decode()
    assert "Shopify &gt; e-conomic: orders is queued: it runs in a moment." in body
    assert ">Queued</span>" in body
    assert f'<form method="post" action="{url("run_job_now", job)}"' in body  # a plain form: no script needed


def test_run_now_during_a_run_queues_nothing(personas, job, monkeypatch):
    ran = []
    monkeypatch.setattr("iex.lib.queueing.publish", lambda name, job_id, **kw: ran.append(job_id))
    assert job.claim_run(timezone.now())
    response = personas.client(personas.admin).post(url("run_job_now", job), follow=True)
    assert "is running already" in response.content.decode() and ">Running</span>" in response.content.decode()
    job.refresh_from_db()
    assert ran == [] and job.queued_at is None


def test_a_queued_run_that_finds_one_going_is_no_longer_queued(job):
    now = timezone.now()
    assert job.queue(now) and job.queued_at == now
    assert job.claim_run(now)
    job.refresh_from_db()
    assert job.queued_at is None
    Job.objects.filter(pk=job.pk).update(queued_at=now)  # asked again as the run started
    assert not job.claim_run(now)  # its task finds the run going: the run's result answers it
    job.refresh_from_db()
    assert job.queued_at is None


# Without JavaScript, and triggers a system cannot do


def test_the_interval_and_trigger_selects_have_a_save_button_without_javascript(personas, job):
    client = personas.client(personas.admin)
    number = personas.integration.number
    for page in ("schedule", "connections"):
        body = client.get(reverse(page, args=[number])).content.decode()
        assert '<noscript><button class="button button-small">Save</button></noscript>' in body, page


@pytest.mark.parametrize(
    ("kind", "flow", "posted"),
    [
        ("shopify", "orders", True),
        ("shopify", "credit_notes", True),
        ("shopify", "products", True),
        ("woocommerce", "orders", True),
        ("woocommerce", "credit_notes", True),  # its order.updated lists the refunds
        ("economic", "stock", False),
        ("dinero", "orders", False),
    ],
)
def test_webhooks_are_offered_where_the_source_system_posts_them(kind, flow, posted):
    from connections.flows import FLOWS
    from connections.systems import SYSTEMS

    assert FLOWS[flow].posted_by(SYSTEMS[kind]) is posted


def test_a_trigger_the_system_cannot_do_is_neither_offered_nor_taken(personas, connected):
    stock = personas.integration.connections.get(flow="stock")
    client = personas.client(personas.admin)
    number = personas.integration.number
    body = client.get(reverse("connections", args=[number])).content.decode()
    select = body.split(f'id="trigger-{stock.code}"')[1].split("</select>")[0]
    assert "schedule" in select and "webhook" not in select
    response = client.post(reverse("update_connection", args=[number, stock.code]), {"trigger": "webhook"})
    assert response.status_code == 400
    assert "e-conomic posts no stock webhooks: e-conomic &gt; Shopify: stock runs on a schedule." in (
        response.content.decode()
    )
    stock.refresh_from_db()
    assert stock.trigger == "schedule"
    assert (
        client.post(reverse("update_connection", args=[number, stock.code]), {"trigger": "often"}).status_code
        == 400
    )


def test_a_webhook_connection_shows_the_address_and_how_to_register_it(personas, connected):
    from django.utils.html import escape

    shop = connected.source
    client = personas.client(personas.admin)
    number = personas.integration.number
    assert shop.webhook_url not in client.get(reverse("connections", args=[number])).content.decode()
    client.post(reverse("update_connection", args=[number, connected.code]), {"trigger": "webhook"})
    body = personas.client(personas.viewer).get(reverse("connections", args=[number])).content.decode()
    assert "Webhooks to register" in body and shop.webhook_url in body
    assert escape(shop.system.webhook_setup) in body
    assert f'href="{shop.get_absolute_url()}#webhooks"' in body
