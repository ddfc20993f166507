"""Webhook intake at /hooks/<token>/: store first, answer at once, process after commit, lose nothing."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from connections import intake
from connections.models import Delivery, QueuedDrain
from connections.systems.shopify.webhooks import signature
from iex.celery import app as celery_app
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db

ORDER = json.loads((Path(__file__).parent / "payloads" / "shopify_order.json").read_text())


@pytest.fixture
def webhook(connected):
    connected.trigger = "webhook"
    connected.save()
    return connected


@pytest.fixture
def processed(monkeypatch):
    """Deliveries are processed on commit, their transfers received (not sent: no HTTP here)."""
    celery_app.conf.task_always_eager = True
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    yield
    celery_app.conf.task_always_eager = False


def post(module, body, *, topic="orders/create", event="evt-1", secret="whsec", **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client().post(
        f"/hooks/{module.webhook_token}/",
        raw,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC=topic,
        HTTP_X_SHOPIFY_EVENT_ID=event,
        HTTP_X_SHOPIFY_HMAC_SHA256=signature(secret, raw),
        HTTP_X_SHOPIFY_SHOP_DOMAIN="nordic-bikes.myshopify.com",
        **headers,
    )


def test_a_signed_order_is_stored_answered_and_becomes_a_transfer(
    webhook, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(webhook.source, ORDER)
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    assert (delivery.topic, delivery.event_id, delivery.status) == ("orders/create", "evt-1", "processed")
    assert json.loads(bytes(delivery.body)) == ORDER
    assert delivery.headers["X-Shopify-Shop-Domain"] == "nordic-bikes.myshopify.com"
    assert "X-Shopify-Hmac-Sha256" not in delivery.headers
    transfer = Transfer.objects.get()
    assert (transfer.connection, transfer.reference, transfer.source_data) == (webhook, "#1042", ORDER)


def test_the_same_event_three_times_is_stored_once(webhook, processed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [post(webhook.source, ORDER).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert Delivery.objects.count() == 1
    assert Transfer.objects.count() == 1


def test_another_event_for_the_same_order_version_makes_no_second_transfer(
    webhook, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(webhook.source, ORDER, topic="orders/create", event="evt-1")
        post(webhook.source, ORDER, topic="orders/paid", event="evt-2")
    assert Delivery.objects.count() == 2
    assert Transfer.objects.count() == 1
    assert Delivery.objects.get(event_id="evt-2").note == "#1042: this version was received before"


def test_bad_signature_is_401_and_nothing_is_stored(webhook):
    assert post(webhook.source, ORDER, secret="wrong").status_code == 401
    assert not Delivery.objects.exists()


def test_a_rotated_address_is_refused_though_the_process_knew_it(webhook):
    """Each process remembers the addresses it has read; the store checks they are still the module's."""
    shop = webhook.source
    old = shop.webhook_token
    assert post(shop, ORDER, event="evt-1").status_code == 200
    assert old in intake._known
    shop.rotate_webhook_token()
    assert Client().post(f"/hooks/{old}/", json.dumps(ORDER), content_type="application/json").status_code == 404
    assert post(shop, ORDER, event="evt-2").status_code == 200  # the new address
    assert sorted(Delivery.objects.values_list("event_id", flat=True)) == ["evt-1", "evt-2"]


def test_a_changed_secret_is_used_at_once_and_the_old_one_for_an_hour(webhook):
    """Shopify may go on signing with the old secret for up to an hour after it is rotated: accepted that long."""
    shop = webhook.source
    assert post(shop, ORDER, event="evt-1").status_code == 200  # the process now knows the secret "whsec"
    credentials = shop.get_credentials()
    shop.set_credentials({**credentials, "webhook_secret": "new-secret"})
    shop.save()
    assert post(shop, ORDER, event="evt-2", secret="new-secret").status_code == 200
    assert post(shop, ORDER, event="evt-3", secret="whsec").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        assert post(shop, ORDER, event="evt-4", secret="whsec").status_code == 401
        assert post(shop, ORDER, event="evt-5", secret="other").status_code == 401
        assert post(shop, ORDER, event="evt-6", secret="new-secret").status_code == 200
    assert sorted(Delivery.objects.values_list("event_id", flat=True)) == ["evt-1", "evt-2", "evt-3", "evt-6"]


def test_a_secret_changed_between_reading_and_storing_stores_nothing_under_the_old_one(webhook, monkeypatch):
    """The guard in the store itself: the module changes after this process checked the signature."""
    shop = webhook.source
    assert post(shop, ORDER, event="evt-1").status_code == 200
    store = intake._store

    def store_after_a_change(*args, **kwargs):
        if not store_after_a_change.changed:
            store_after_a_change.changed = True
            # Changed twice: "whsec" is not even the previous secret any more.
            for secret in ("middle", "new-secret"):
                shop.set_credentials({**shop.get_credentials(), "webhook_secret": secret})
                shop.save()
        return store(*args, **kwargs)

    store_after_a_change.changed = False
    monkeypatch.setattr(intake, "_store", store_after_a_change)
    assert post(shop, ORDER, event="evt-2", secret="whsec").status_code == 401
    assert list(Delivery.objects.values_list("event_id", flat=True)) == ["evt-1"]


def test_body_over_1_mb_is_413(webhook):
    big = {**ORDER, "note": "x" * (1024 * 1024)}
    assert post(webhook.source, big).status_code == 413
    assert not Delivery.objects.exists()


def test_posts_refused_at_the_door_are_counted_for_metrics(webhook):
    from tests.test_metrics import samples

    post(webhook.source, ORDER, secret="wrong")
    post(webhook.source, ORDER, secret="wrong")
    post(webhook.source, {**ORDER, "note": "x" * (1024 * 1024)})
    assert Client().post("/hooks/no-such-token/", b"{}", content_type="application/json").status_code == 404
    got = samples(Client().get("/metrics", REMOTE_ADDR="127.0.0.1"))
    assert got[("iex_webhooks_refused_total", (("reason", "bad_signature"),))] == 2
    assert got[("iex_webhooks_refused_total", (("reason", "too_large"),))] == 1
    assert got[("iex_webhooks_refused_total", (("reason", "unknown_address"),))] == 1
    assert not Delivery.objects.exists()


def test_invalid_json_with_a_valid_signature_is_400_and_kept_as_rejected(webhook):
    assert post(webhook.source, b"{not json").status_code == 400
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.note, bytes(delivery.body)) == (
        "rejected",
        "The body is not valid JSON",
        b"{not json",
    )


def test_unknown_topic_is_200_and_ignored(webhook, processed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(webhook.source, {"id": 1}, topic="customers/create").status_code == 200
    assert Delivery.objects.get().status == "ignored"
    assert not Transfer.objects.exists()


def test_inactive_integration_answers_200_and_the_transfer_says_why(
    webhook, personas, monkeypatch, django_capture_on_commit_callbacks
):
    celery_app.conf.task_always_eager = True
    try:
        personas.integration.set_active(False, personas.owner)
        with django_capture_on_commit_callbacks(execute=True):
            assert post(webhook.source, ORDER).status_code == 200
    finally:
        celery_app.conf.task_always_eager = False
    transfer = Transfer.objects.get()
    assert (transfer.status, transfer.reason) == ("skipped", "Integration is inactive")


def test_a_schedule_driven_connection_leaves_webhooks_to_its_job(
    connected, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(connected.source, ORDER).status_code == 200
    delivery = Delivery.objects.get()
    assert delivery.status == "ignored" and "schedule-driven" in delivery.note
    assert not Transfer.objects.exists()


def test_app_uninstalled_deactivates_the_module_and_tells_the_owners(
    webhook, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(webhook.source, {"id": 1, "name": "Nordic Bikes"}, topic="app/uninstalled").status_code == 200
    webhook.source.refresh_from_db()
    assert not webhook.source.active
    (message,) = mail.outbox
    assert message.to == ["owner@shop.example"]
    assert "removed the IEX app" in message.subject


def test_unknown_token_is_404_and_get_is_405(webhook):
    assert Client().post("/hooks/nope/", b"{}", content_type="application/json").status_code == 404
    assert Client().get(f"/hooks/{webhook.source.webhook_token}/").status_code == 405


def test_the_sweeper_re_enqueues_deliveries_left_behind(webhook, monkeypatch):
    sent = []
    monkeypatch.setattr("iex.lib.queueing.publish", lambda name, pk, countdown=0, priority=0: sent.append(pk))
    post(webhook.source, ORDER)  # stored, its drain flagged; its on-commit publish never ran (as if it crashed)
    delivery = Delivery.objects.get()
    assert intake.sweep() == 0  # not waiting long enough yet
    Delivery.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    QueuedDrain.objects.update(queued_at=timezone.now() - timedelta(minutes=5))
    call_command("sweep_inbox", "--dry-run")
    assert sent == []
    assert intake.sweep() == 1
    assert sent == [webhook.source.pk]  # a drain of the module's inbox
    intake.process(delivery.pk)
    intake.process(delivery.pk)  # twice is once
    assert Transfer.objects.count() == 1
    assert intake.sweep() == 0


def test_sweep_inbox_command_says_what_it_did(webhook, capsys):
    post(webhook.source, ORDER)
    Delivery.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    call_command("sweep_inbox", "--dry-run")
    assert "would queue again 1 deliveries and 0 transfers" in capsys.readouterr().out


@pytest.fixture
def drains(monkeypatch):
    """The drains intake queues (module ids), instead of publishing them."""
    sent: list[int] = []

    def publish(name, module_id, countdown=0, priority=0):
        assert name == "connections.tasks.drain_inbox"
        sent.append(module_id)
        return True

    monkeypatch.setattr("iex.lib.queueing.publish", publish)
    return sent


def order(n):
    return {**ORDER, "id": 800 + n, "name": f"#{800 + n}"}


def test_a_burst_queues_one_drain_which_takes_every_delivery(webhook, drains, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            assert post(webhook.source, order(n), event=f"evt-{n}").status_code == 200
    assert drains == [webhook.source.pk]  # one drain queued for the five, not five messages
    assert intake.drain(webhook.source.pk) == 5
    assert set(Delivery.objects.values_list("status", flat=True)) == {"processed"}
    assert sorted(Transfer.objects.values_list("reference", flat=True)) == [f"#{800 + n}" for n in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        post(webhook.source, order(5), event="evt-5")
    assert drains == [webhook.source.pk] * 2  # the drain has started: the next delivery queues a new one


def test_a_drain_takes_a_batch_and_queues_itself_behind_the_others(
    webhook, drains, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(intake, "DRAIN_BATCH", 2)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            post(webhook.source, order(n), event=f"evt-{n}")
    assert intake.drain(webhook.source.pk) == 2
    assert drains == [webhook.source.pk] * 2  # more were waiting: queued again, at the back of the queue
    assert Delivery.objects.filter(status="received").count() == 1
    assert intake.drain(webhook.source.pk) == 1
    assert intake.drain(webhook.source.pk) == 0
    assert drains == [webhook.source.pk] * 2
    assert Transfer.objects.count() == 3


def test_a_delivery_arriving_while_a_drain_runs_gets_a_drain_of_its_own(
    webhook, drains, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(webhook.source, order(1), event="evt-1")
    process = intake.process

    def process_while_another_arrives(delivery_id):
        process(delivery_id)
        with django_capture_on_commit_callbacks(execute=True):
            post(webhook.source, order(2), event="evt-2")  # committed after the drain read its batch

    monkeypatch.setattr(intake, "process", process_while_another_arrives)
    assert intake.drain(webhook.source.pk) == 1
    assert drains == [webhook.source.pk] * 2
    monkeypatch.setattr(intake, "process", process)
    assert intake.drain(webhook.source.pk) == 1
    assert not Delivery.objects.filter(status="received").exists()


def test_deliveries_held_back_by_a_lost_drain_are_swept(webhook, drains, django_capture_on_commit_callbacks):
    # A drain was queued five minutes ago, then lost with the broker.
    QueuedDrain.objects.create(module=webhook.source, queued_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        post(webhook.source, ORDER)
    assert drains == []
    Delivery.objects.update(received_at=timezone.now() - timedelta(minutes=3))
    assert intake.sweep() == 1
    assert drains == [webhook.source.pk]
    assert intake.drain(webhook.source.pk) == 1
    assert not QueuedDrain.objects.exists()  # the sweeper's drain took the lost one's flag down
    with django_capture_on_commit_callbacks(execute=True):
        post(webhook.source, order(1), event="evt-2")
    assert drains == [webhook.source.pk] * 2


def test_a_drain_the_broker_refused_holds_nothing_back(webhook, monkeypatch, django_capture_on_commit_callbacks):
    tries = []
    monkeypatch.setattr(
        "iex.lib.queueing.publish", lambda name, pk, countdown=0, priority=0: tries.append(pk) and False
    )
    for n in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):  # each request commits on its own
            post(webhook.source, order(n), event=f"evt-{n}")
    assert len(tries) == 2  # the first failed, so the second tried again
    assert not QueuedDrain.objects.exists()  # and the sweeper will queue one


def test_valid_json_that_is_not_an_order_is_rejected_with_a_note(
    webhook, processed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(webhook.source, {"hello": "world"}).status_code == 200
        assert post(webhook.source, [1, 2], event="evt-2").status_code == 200
    notes = list(Delivery.objects.order_by("pk").values_list("status", "note"))
    assert [status for status, _ in notes] == ["rejected", "rejected"]
    assert "Not a Shopify orders record IEX can read (KeyError('id'))" in notes[0][1]
    assert Transfer.objects.count() == 0


def test_the_sweeper_leaves_a_recently_queued_drain_alone(webhook, drains):
    """Under a backlog the intake queue may be minutes behind: a drain queued since the cutoff is still coming."""
    post(webhook.source, ORDER)  # stored and its drain flagged as queued; its on-commit publish never ran
    Delivery.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    QueuedDrain.objects.update(queued_at=timezone.now() - timedelta(seconds=30))
    assert intake.sweep() == 1
    assert drains == []
    QueuedDrain.objects.update(queued_at=timezone.now() - timedelta(minutes=3))
    assert intake.sweep() == 1
    assert drains == [webhook.source.pk]
    assert intake.sweep() == 1  # the drain just queued is not queued twice
    assert drains == [webhook.source.pk]


def test_a_delivery_that_cannot_be_processed_is_rejected_and_does_not_hold_up_the_others(
    webhook, drains, monkeypatch, django_capture_on_commit_callbacks
):
    from connections import pipeline

    receive = pipeline.receive

    def receive_or_fail(connection, source_ref, reference, *args):
        if reference == "#801":
            raise ValueError("value too long for type character varying(100)")
        return receive(connection, source_ref, reference, *args)

    monkeypatch.setattr(pipeline, "receive", receive_or_fail)
    with django_capture_on_commit_callbacks(execute=True):
        post(webhook.source, order(1), event="evt-1")
        post(webhook.source, order(2), event="evt-2")
    assert intake.drain(webhook.source.pk) == 2
    first, second = Delivery.objects.order_by("pk")
    assert first.status == "rejected" and "value too long" in first.note
    assert second.status == "processed"
    assert list(Transfer.objects.values_list("reference", flat=True)) == ["#802"]


def test_handled_deliveries_go_after_30_days_and_waiting_ones_stay(webhook, capsys):
    for n in range(4):
        post(webhook.source, order(n), event=f"evt-{n}")
    old_handled, old_rejected, old_waiting, recent = Delivery.objects.order_by("pk")
    Delivery.objects.filter(pk=old_handled.pk).update(status="processed")
    Delivery.objects.filter(pk=old_rejected.pk).update(status="rejected")
    Delivery.objects.filter(pk=recent.pk).update(status="processed")
    Delivery.objects.exclude(pk=recent.pk).update(received_at=timezone.now() - timedelta(days=31))
    call_command("purge_deliveries", "--dry-run")
    assert "would delete 2 webhook deliveries handled over 30 days ago" in capsys.readouterr().out
    assert Delivery.objects.count() == 4
    assert intake.purge_deliveries(timezone.now()) == 2
    assert set(Delivery.objects.values_list("pk", flat=True)) == {old_waiting.pk, recent.pk}


@pytest.mark.postgres
@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="a server that restarts and drops its connections: PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_database_dropped_is_replaced_at_the_first_query(webhook):
    """Intake skips Django's per-request health check (a round trip): its first statement finds a dead connection
    itself, be it the store (the address known to the process) or the lookup (not known yet)."""
    from django.db import connection

    assert post(webhook.source, ORDER, event="evt-0").status_code == 200
    for first in ("store", "lookup"):
        if first == "lookup":
            intake._known.clear()
        connection.ensure_connection()
        connection.connection.close()  # as a database restart leaves it: Django does not know yet
        assert post(webhook.source, ORDER, event=f"evt-{first}").status_code == 200
        assert connection.is_usable()
    assert sorted(Delivery.objects.values_list("event_id", flat=True)) == ["evt-0", "evt-lookup", "evt-store"]
