"""The transfer pipeline: receive once, skip with a reason, send, retry transient failures, fail permanent ones."""

import json
from pathlib import Path

import pytest
import responses
import time_machine
from cryptography.fernet import Fernet

from connections import gate, pipeline
from connections.models import Mapping
from iex.lib import queueing
from tests import fake_economic
from transferlog.models import RESWEEP_AFTER, Status, Transfer

pytestmark = pytest.mark.django_db

API = "https://restapi.e-conomic.com"
ORDER = json.loads((Path(__file__).parent / "payloads" / "shopify_order.json").read_text())


def receive(connection, order=ORDER):
    return pipeline.receive(
        connection,
        str(order["id"]),
        order["name"],
        __import__("datetime").datetime.fromisoformat(order["updated_at"]),
        order,
    )


def economic(gross=4496.0, draft_status=201):
    fake_economic.chart()
    fake_economic.products({"BIKE-RED": 1, "HELMET-M": 1, "BOOK-GUIDE": 2, "SHIPPING": 1})
    responses.get(f"{API}/customers", json={"collection": [{"customerNumber": 9}]})
    responses.get(f"{API}/invoices/drafts", json={"collection": []})
    responses.get(f"{API}/invoices/booked", json={"collection": []})
    document = {"draftInvoiceNumber": 31, "grossAmount": gross, "vatAmount": 869.2}
    responses.post(
        f"{API}/invoices/drafts",
        status=draft_status,
        json=document if draft_status < 400 else {"message": "Validation failed", "errorCode": "E00500"},
    )
    responses.put(f"{API}/invoices/drafts/31", json=document)


@responses.activate
def test_an_order_becomes_one_draft_with_every_state_kept(connected):
    economic()
    transfer = receive(connected)
    pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert (transfer.status, transfer.action, transfer.target_ref, transfer.attempts) == (
        "created",
        "created",
        "31",
        1,
    )
    assert (transfer.reference, transfer.entity, transfer.connection_label) == (
        "#1042",
        "orders",
        "Shopify > e-conomic: orders",
    )
    kinds = list(transfer.states.values_list("kind", flat=True))
    assert kinds == ["received", "transformed", "looked up", "sent", "answer", "document", "created"]
    sent = transfer.states.get(kind="sent").data
    assert sent["method"] == "POST" and sent["body"]["references"] == {"other": "iex:5500000000001042"}
    assert transfer.source_data == ORDER
    # Nothing secret is kept in any state.
    assert "app-secret" not in json.dumps(list(transfer.states.values_list("data", flat=True)))
    assert Mapping.objects.get(connection=connected).target_ref == "31"


@responses.activate
def test_the_same_version_is_received_once_and_processing_twice_does_nothing(connected):
    economic()
    transfer = receive(connected)
    assert receive(connected) is None
    pipeline.process(transfer.pk)
    pipeline.process(transfer.pk)
    assert len([c for c in responses.calls if c.request.method == "POST"]) == 1
    assert Transfer.objects.count() == 1


@responses.activate
def test_a_changed_order_updates_its_draft(connected):
    economic()
    pipeline.process(receive(connected).pk)
    changed = {**ORDER, "updated_at": "2026-11-20T11:00:00+01:00", "note": "Leave at the door"}
    second = receive(connected, changed)
    pipeline.process(second.pk)
    second.refresh_from_db()
    assert (second.status, second.action, second.target_ref) == ("updated", "updated", "31")
    assert [c.request.method for c in responses.calls if "/invoices/drafts/" in c.request.url] == ["PUT"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("integration", "Integration is inactive"),
        ("module", "Shopify is inactive"),
        ("connection", "Connection is inactive"),
        ("state", "Order not in allowed states (financial status: pending)"),
    ],
)
@responses.activate
def test_skipped_with_the_reason(connected, personas, change, reason):
    order = ORDER
    if change == "integration":
        personas.integration.set_active(False, personas.owner)
    elif change == "module":
        connected.source.active = False
        connected.source.save()
    elif change == "connection":
        connected.active = False
        connected.save()
    else:
        order = {**ORDER, "financial_status": "pending"}
    transfer = receive(connected, order)
    pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert (transfer.status, transfer.reason) == ("skipped", reason)
    assert not responses.calls


@responses.activate
def test_transient_failures_retry_with_backoff_then_fail(
    connected, eager, django_capture_on_commit_callbacks, monkeypatch
):
    delays = []
    monkeypatch.setattr(
        pipeline, "backoff", lambda attempt, retry_after=None: delays.append((attempt, retry_after)) or 0
    )
    monkeypatch.setattr(gate, "FAILURES", 100)  # the account answers otherwise: its gate stays open
    responses.get(f"{API}/invoices/drafts", status=503, json={"message": "Service unavailable"})
    with django_capture_on_commit_callbacks(execute=True):
        transfer = receive(connected)
    transfer.refresh_from_db()
    assert transfer.status == "failed"
    assert transfer.attempts == pipeline.MAX_ATTEMPTS
    assert transfer.reason == "restapi.e-conomic.com answered 503: Service unavailable (gave up after 6 attempts)"
    assert [a for a, _ in delays] == [1, 2, 3, 4, 5]
    assert list(transfer.states.values_list("kind", flat=True)).count("retrying") == 5


def test_backoff_grows_exponentially_with_jitter_and_respects_retry_after(settings):
    assert pipeline.backoff(3, retry_after=7.0) == 7.0
    for attempt in range(1, 10):
        delay = pipeline.backoff(attempt)
        expected = min(pipeline.BACKOFF_CAP, settings.RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
        assert 0.5 * expected <= delay <= 1.5 * expected


@responses.activate
def test_a_refusal_fails_at_once_with_the_receiving_systems_message(connected):
    economic(draft_status=400)
    transfer = receive(connected)
    pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert (transfer.status, transfer.attempts) == ("failed", 1)
    assert transfer.reason == "restapi.e-conomic.com answered 400: Validation failed"
    assert transfer.states.last().data == {"message": "Validation failed", "errorCode": "E00500"}


def test_undecryptable_credentials_fail_clearly(connected, settings):
    settings.CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    transfer = receive(connected)
    pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == "failed"
    assert "cannot be decrypted" in transfer.reason


@responses.activate
def test_a_record_being_sent_by_another_transfer_waits(connected, monkeypatch):
    transfer = receive(connected)
    enqueued = []
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: enqueued.append(countdown))
    assert Mapping.lease(connected, transfer.source_ref, holder=0) is not None  # someone else holds it
    pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert (transfer.status, transfer.attempts) == (Status.RETRYING, 0)
    assert enqueued == [pipeline.LEASE_BUSY_DELAY]
    assert not responses.calls


def test_overdue_transfers_are_swept_back_into_the_queue(connected, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    sent = []
    monkeypatch.setattr(queueing, "publish", lambda name, pk, countdown=0, priority=0: sent.append(pk))
    transfer = receive(connected)
    assert Transfer.sweep() == 0
    Transfer.objects.update(due_at=timezone.now() - timedelta(minutes=3))
    assert Transfer.sweep(dry_run=True) == 1 and sent == []
    assert Transfer.sweep() == 1 and sent == [transfer.pk]


def test_a_flood_from_one_integration_goes_into_lower_lanes_and_leaves_the_others_first(
    connected, personas, settings
):
    """Workers take lane 0 first: the 21st transfer an integration queues in a minute waits behind everyone's
    first 20, the 201st behind those, and so on. Another integration's first transfer is still in lane 0."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    with time_machine.travel("2026-11-27 10:00:00+00:00", tick=False):
        lanes = [queueing.lane(connected.integration_id) for _ in range(2001)]
        assert queueing.lane(personas.other.pk) == 0
    assert lanes[:20] == [0] * 20
    assert set(lanes[20:200]) == {3} and set(lanes[200:2000]) == {6} and lanes[2000] == queueing.LOWEST_LANE
    with time_machine.travel("2026-11-27 10:01:00+00:00", tick=False):
        assert queueing.lane(connected.integration_id) == 0  # a new minute


def test_without_redis_there_are_no_lanes(connected, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    assert {queueing.lane(connected.integration_id) for _ in range(30)} == {0}


def test_transfers_are_published_in_their_integrations_lane(
    connected, monkeypatch, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    sent = []
    monkeypatch.setattr(queueing, "publish", lambda name, pk, countdown=0, priority=0: sent.append(priority))
    with time_machine.travel("2026-11-27 10:00:00+00:00", tick=False):
        for _ in range(20):
            queueing.lane(connected.integration_id)
        with django_capture_on_commit_callbacks(execute=True):
            receive(connected)
    assert sent == [3]


def test_the_sweeper_queues_a_backlog_rarely_and_in_fair_lanes(connected, monkeypatch, settings):
    from datetime import timedelta

    from django.utils import timezone

    sent = []
    monkeypatch.setattr(queueing, "publish", lambda name, pk, countdown=0, priority=0: sent.append(priority))
    for n in range(25):
        receive(connected, {**ORDER, "id": 5000 + n})
    Transfer.objects.update(due_at=timezone.now() - timedelta(minutes=3))
    # In lanes by their number in the integration, as if queued this minute: its first 20 in lane 0.
    assert Transfer.sweep() == 25 and sent == [0] * 20 + [3] * 5
    assert Transfer.sweep() == 0  # swept: not queued again at every sweep...
    later = timezone.now() + RESWEEP_AFTER * timedelta(seconds=settings.SWEEP_AFTER_SECONDS)
    with time_machine.travel(later):
        assert Transfer.sweep() == 25  # ...but now and then, in case Redis lost them
    assert not Transfer.objects.filter(due_at__gt=timezone.now() - timedelta(minutes=3)).exists()  # due_at kept


def test_a_transfer_whose_worker_died_runs_again_after_the_lease(connected, monkeypatch, settings):
    """A host that died mid-transfer leaves it running, and Redis redelivers only after its visibility timeout:
    the sweeper takes it back after TRANSFER_LEASE_SECONDS, and a new task claims it."""
    from datetime import timedelta

    from django.utils import timezone

    sent = []
    monkeypatch.setattr(queueing, "publish", lambda name, pk, countdown=0, priority=0: sent.append(pk))
    transfer = receive(connected)
    assert Transfer.claim(transfer.pk, task_id="lost-task")
    assert Transfer.sweep() == 0  # running, and within its lease
    Transfer.objects.update(updated=timezone.now() - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS + 1))
    assert Transfer.sweep(dry_run=True) == 1 and sent == []
    assert Transfer.objects.get().status == "running"
    assert Transfer.sweep() == 1 and sent == [transfer.pk]
    assert Transfer.objects.get().status == "pending"
    # The new task claims it; the lost one, redelivered by Redis hours later, finds it taken.
    assert Transfer.claim(transfer.pk, task_id="new-task").attempts == 2
    assert Transfer.claim(transfer.pk, task_id="lost-task") is None


def test_transfer_tasks_run_again_when_the_database_goes_away():
    from django.db import InterfaceError, OperationalError

    from connections import tasks

    for task in (tasks.process_transfer, tasks.drain_inbox):
        assert task.acks_late and task.reject_on_worker_lost
        assert set(task.autoretry_for) == {InterfaceError, OperationalError}


def test_a_broker_outage_at_enqueue_time_loses_nothing(connected, caplog, monkeypatch):
    from kombu.exceptions import OperationalError

    class DownBroker:
        def apply_async(self, *args, **kwargs):
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(queueing, "_task", lambda name: DownBroker())
    assert queueing.publish("connections.tasks.process_transfer", 42) is False
    assert "left to the sweeper" in caplog.text


@responses.activate
def test_a_transfer_stops_before_a_request_once_it_ran_half_its_lease(connected, settings):
    """The sweeper takes a transfer running past its lease for lost: it must not still be sending by then."""
    settings.TRANSFER_LEASE_SECONDS = 0  # every request comes too late
    economic()
    transfer = receive(connected)
    pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == "retrying"
    assert transfer.reason == "The receiving system answered too slowly; the transfer stopped to run again"
    assert [call.request.method for call in responses.calls if call.request.method != "GET"] == []


def test_a_database_error_mid_transfer_is_left_for_the_task_to_run_again(connected, monkeypatch):
    from django.db import OperationalError

    from connections.systems.economic.client import EconomicClient

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(EconomicClient, "send_order", lost)
    transfer = receive(connected)
    with pytest.raises(OperationalError):
        pipeline.process(transfer.pk, task_id="task-1")
    # Not failed as an internal error: still running, and its task (retried under the same id) takes it over.
    assert Transfer.objects.get().status == "running"
    assert Transfer.claim(transfer.pk, task_id="task-1") is not None


def test_a_wait_repeated_100_times_is_one_entry_with_its_count_and_first_and_last_times(connected, monkeypatch):
    from datetime import UTC, datetime, timedelta

    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    transfer = receive(connected)
    assert Mapping.lease(connected, transfer.source_ref, holder=0) is not None  # another transfer sends the record
    first = datetime(2026, 11, 24, 10, tzinfo=UTC)
    for n in range(100):
        with time_machine.travel(first + timedelta(seconds=15 * n), tick=False):
            pipeline.process(transfer.pk)  # each try finds the record still taken, and waits again
    transfer.refresh_from_db()
    assert (transfer.status, transfer.attempts) == (Status.RETRYING, 0)
    waits = list(transfer.states.filter(kind="waiting").values_list("note", "times", "at", "last_at"))
    assert waits == [
        ("Another transfer of this record is in progress", 100, first, first + timedelta(seconds=1485))
    ]
    assert list(transfer.states.values_list("kind", flat=True)) == ["received", "waiting"]


def test_each_kind_of_wait_keeps_its_own_entry(connected, monkeypatch):
    from billing import usage
    from billing.packs import PackInFlight

    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    transfer = receive(connected)
    lease = Mapping.lease(connected, transfer.source_ref, holder=0)
    pipeline.process(transfer.pk)
    pipeline.process(transfer.pk)
    lease.release()

    def paying(transfer):  # another transfer of the integration is paying for an order pack (billing.packs)
        raise PackInFlight

    monkeypatch.setattr(usage, "reserve", paying)
    for _ in range(3):
        pipeline.process(transfer.pk)
    waits = dict(transfer.states.filter(kind="waiting").values_list("note", "times"))
    assert waits == {
        "Another transfer of this record is in progress": 2,
        "Waiting for an order pack being paid": 3,
    }


def test_a_running_transfer_does_not_show_the_previous_attempts_reason(connected):
    transfer = receive(connected)
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.RETRYING, reason="e-conomic answered 503")
    claimed = Transfer.claim(transfer.pk)
    assert (claimed.status, claimed.reason) == (Status.RUNNING, "")
    transfer.refresh_from_db()
    assert (transfer.status, transfer.reason) == (Status.RUNNING, "")
    # A failed transfer retried by hand is pending, without the error it had (its state keeps it).
    transfer.finish(Status.FAILED, "e-conomic said: Validation failed")
    assert Transfer.objects.get(pk=transfer.pk).retry(by="owner@shop.example")
    transfer.refresh_from_db()
    assert (transfer.status, transfer.reason) == (Status.PENDING, "")
