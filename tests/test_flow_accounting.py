"""Accounting-grade documents end to end, over real HTTP against the strict sandbox: Shopify's documented example
order becomes a draft of the shop's 598.94 with its sales tax, and its refund a credit note; refunds, cancellations
and a draft the accountant booked; orders to several countries, each with its own VAT or held saying why."""

import hashlib
import hmac
import json
from base64 import b64encode
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from billing.usage import release_where_possible
from connections.models import Connection
from scheduling.models import Job
from scheduling.tasks import run_job
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db
PAYLOADS = Path(__file__).parent / "payloads"


@pytest.fixture
def books(sandboxed):
    """The sandbox e-conomic, with its product group for foreign sales tax (3, on account 7300) chosen."""
    sandboxed.target.settings = {"sales_tax_group": 3}
    sandboxed.target.save(update_fields=["settings"])
    return sandboxed.target


def flow(integration, name):
    connection = Connection.objects.get(integration=integration, flow=name)
    connection.active = True
    connection.save(update_fields=["active"])
    return connection


def run(connection, capture):
    job = Job.ensure_for(connection)
    with capture(execute=True):
        run_job(job.pk)


def drafts(sandbox):
    return sandbox.summary()["economic"]["drafts"]


def document(sandbox, reference):
    (found,) = [d for d in drafts(sandbox) if d["references"]["other"] == reference]
    return found


def post_webhook(module, topic, payload, capture):
    """What Shopify posts: the bare resource, signed with the app's secret."""
    body = json.dumps(payload).encode()
    secret = module.get_credentials()["webhook_secret"].encode()
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_HMAC_SHA256": b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode(),
        "HTTP_X_SHOPIFY_EVENT_ID": f"evt-{topic}-{payload['id']}",
    }
    with capture(execute=True):
        response = Client().post(
            f"/hooks/{module.webhook_token}/", body, content_type="application/json", **headers
        )
    assert response.status_code == 200, response.content


def test_the_documented_example_order_becomes_598_94_with_its_tax_and_its_refund_a_credit_note(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    """Shopify's own example (#1001, US, taxes on top): 587.00 after the TENOFF code spread over three lines, and
    11.94 of sales tax no Danish VAT code books, on a line of its own in the group the merchant chose."""
    example = json.loads((PAYLOADS / "shopify_order_450789469.json").read_text())
    refund = json.loads((PAYLOADS / "shopify_refund_450789469.json").read_text())
    sandboxed.trigger = "webhook"
    sandboxed.save(update_fields=["trigger"])
    credit_notes = flow(sandboxed.integration, "credit_notes")
    credit_notes.trigger = "webhook"
    credit_notes.save(update_fields=["trigger"])

    post_webhook(sandboxed.source, "orders/create", example, django_capture_on_commit_callbacks)
    invoice = Transfer.objects.get(entity="orders")
    assert (invoice.status, invoice.reason) == ("created", "")  # no totals warning
    draft = document(sandbox, "iex:450789469")
    assert (Decimal(str(draft["grossAmount"])), Decimal(str(draft["vatAmount"]))) == (Decimal("598.94"), 0)
    assert draft["recipient"]["vatZone"]["vatZoneNumber"] == 3  # abroad
    lines = [(line["product"]["productNumber"], line["quantity"], line["unitNetPrice"]) for line in draft["lines"]]
    assert lines[-1] == ("SALESTAX", 1, 11.94)
    assert all("TENOFF" in line["description"] for line in draft["lines"][:3])

    post_webhook(sandboxed.source, "refunds/create", refund, django_capture_on_commit_callbacks)
    credit = Transfer.objects.get(entity="credit_notes")
    assert (credit.status, credit.reference) == ("created", "#1001 refund 1"), credit.reason
    note = document(sandbox, "iex:refund:509562969")
    assert all(line["quantity"] < 0 for line in note["lines"])
    assert note["notes"]["heading"].startswith(f"Credit note for order #1001, invoice {invoice.target_ref}")
    # The invoice less its credit note is what the order comes to in the shop now.
    assert Decimal(str(draft["grossAmount"])) + Decimal(str(note["grossAmount"])) == Decimal(
        example["current_total_price"]
    )
    usage = credit.integration.usage.get()
    assert usage.used == 1  # the order counted; its credit note does not


def test_a_refund_in_the_shop_becomes_a_credit_note_on_the_schedule(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    order = sandbox.create_order({"country": "DK", "financial_status": "paid",
                                  "line_items": [{"sku": "BIKE-RED", "quantity": 2}, {"sku": "BOOK-GUIDE", "quantity": 1}]})  # fmt: skip
    run(sandboxed, django_capture_on_commit_callbacks)
    bike = next(line for line in order["line_items"] if line["sku"] == "BIKE-RED")
    sandbox.refund_order(order["id"], {"refund_line_items": [{"line_item_id": bike["id"], "quantity": 1}]})
    run(flow(sandboxed.integration, "credit_notes"), django_capture_on_commit_callbacks)
    credit = Transfer.objects.get(entity="credit_notes")
    assert credit.status == "created", credit.reason
    now = sandbox.state.shopify.orders[order["id"]]
    invoice = document(sandbox, f"iex:{order['id']}")
    (note,) = [d for d in drafts(sandbox) if d["references"]["other"].startswith("iex:refund:")]
    assert [(line["product"]["productNumber"], line["quantity"]) for line in note["lines"]] == [("BIKE-RED", -1)]
    assert Decimal(str(note["vatAmount"])) < 0  # the bike's VAT is credited too
    assert Decimal(str(invoice["grossAmount"])) + Decimal(str(note["grossAmount"])) == Decimal(
        now["current_total_price"]
    )
    run(flow(sandboxed.integration, "credit_notes"), django_capture_on_commit_callbacks)  # fetched again: once
    assert len([d for d in drafts(sandbox) if d["references"]["other"].startswith("iex:refund:")]) == 1


def test_a_partially_refunded_order_is_a_sale_not_skipped(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    order = sandbox.create_order(
        {"country": "DK", "financial_status": "paid", "line_items": [{"sku": "LOCK-U", "quantity": 2}]}
    )
    line = order["line_items"][0]
    sandbox.refund_order(order["id"], {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]})
    run(sandboxed, django_capture_on_commit_callbacks)
    transfer = Transfer.objects.get(entity="orders")
    assert transfer.status == "created", transfer.reason
    # The invoice is the order as sold: two locks; the refund of one is its credit note.
    assert document(sandbox, f"iex:{order['id']}")["lines"][0]["quantity"] == 2


def test_a_cancelled_order_withdraws_its_draft_and_credits_a_booked_invoice(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    first = sandbox.create_order({"country": "DK", "financial_status": "paid"})
    second = sandbox.create_order({"country": "DK", "financial_status": "paid"})
    run(sandboxed, django_capture_on_commit_callbacks)
    booked = sandbox.book_draft(int(document(sandbox, f"iex:{second['id']}")["draftInvoiceNumber"]))

    sandbox.cancel_order(first["id"], "customer")
    sandbox.cancel_order(second["id"], "customer")
    run(sandboxed, django_capture_on_commit_callbacks)
    assert not [d for d in drafts(sandbox) if d["references"]["other"] == f"iex:{first['id']}"]
    withdrawn = Transfer.objects.filter(source_ref=str(first["id"])).latest("id")
    assert withdrawn.reason.startswith("Cancelled in the shop: draft") and withdrawn.reason.endswith(
        "deleted in e-conomic"
    )
    credited = Transfer.objects.filter(source_ref=str(second["id"])).latest("id")
    assert credited.status == "updated", credited.reason
    assert credited.reason.startswith("Cancelled in the shop: credit note")
    note = document(sandbox, f"iex:refund:cancel:{second['id']}")
    assert Decimal(str(note["grossAmount"])) == -Decimal(str(booked["grossAmount"]))


def test_a_draft_the_accountant_booked_is_seen_and_left_alone(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    order = sandbox.create_order({"country": "DK", "financial_status": "paid"})
    run(sandboxed, django_capture_on_commit_callbacks)
    booked = sandbox.book_draft(int(Transfer.objects.get().target_ref))
    sandbox.update_order(order["id"], {"note": "changed after the accountant booked it"})
    run(sandboxed, django_capture_on_commit_callbacks)
    latest = Transfer.objects.latest("id")
    assert latest.status == "skipped"
    assert latest.reason.startswith(f"Booked in e-conomic as invoice {booked['bookedInvoiceNumber']}")


def test_orders_to_several_countries_are_booked_with_their_own_vat_or_held(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    orders = {
        country: sandbox.create_order({"country": country, "financial_status": "paid",
                                       "line_items": [{"sku": "HELMET-M", "quantity": 1}]})
        for country in ("DK", "SE", "NO", "US", "DE")
    }  # fmt: skip
    run(sandboxed, django_capture_on_commit_callbacks)
    statuses = {country: Transfer.objects.get(source_ref=str(order["id"])) for country, order in orders.items()}
    assert {country: t.status for country, t in statuses.items()} == {
        "DK": "created", "SE": "created", "NO": "created", "US": "created", "DE": "held",
    }  # fmt: skip
    assert statuses["DE"].reason.startswith("19 % tax on HELMET-M and shipping (DHL) to DE: product group")
    zones = {
        c: document(sandbox, f"iex:{o['id']}")["recipient"]["vatZone"]["vatZoneNumber"]
        for c, o in orders.items()
        if c != "DE"
    }
    assert zones == {"DK": 1, "SE": 1, "NO": 3, "US": 3}
    for country, order in orders.items():
        if country != "DE":
            booked = document(sandbox, f"iex:{order['id']}")
            assert Decimal(str(booked["grossAmount"])) == Decimal(order["total_price"]), country
    assert Decimal(str(document(sandbox, f"iex:{orders['DK']['id']}")["vatAmount"])) == Decimal(
        orders["DK"]["total_tax"]
    )


def test_a_refund_before_its_invoice_is_held_and_goes_once_the_invoice_is_made(
    sandboxed, sandbox, books, eager, django_capture_on_commit_callbacks
):
    order = sandbox.create_order(
        {"country": "DK", "financial_status": "paid", "line_items": [{"sku": "LOCK-U", "quantity": 2}]}
    )
    line = order["line_items"][0]
    refund = sandbox.refund_order(
        order["id"], {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]}
    )
    run(flow(sandboxed.integration, "credit_notes"), django_capture_on_commit_callbacks)
    waiting = Transfer.objects.get(entity="credit_notes")
    assert (waiting.status, waiting.held_for) == ("held", f"record:{sandboxed.pk}:{order['id']}")
    assert (waiting.reason, waiting.reference) == (  # IEX has not seen the order yet: it knows only its id
        f"Waiting for the invoice of order {order['id']}: the refund is credited once it is made",
        f"Refund {refund['id']}",
    )
    assert release_where_possible() == 0  # nothing to buy: orders being available does not release it

    run(sandboxed, django_capture_on_commit_callbacks)  # the invoice is made: the refund goes after it
    credit = Transfer.objects.get(pk=waiting.pk)
    assert (credit.status, credit.reference) == ("created", f"{order['name']} refund 1"), credit.reason
    invoice, note = document(sandbox, f"iex:{order['id']}"), document(sandbox, f"iex:refund:{refund['id']}")
    assert Decimal(str(invoice["grossAmount"])) + Decimal(str(note["grossAmount"])) == Decimal(
        sandbox.state.shopify.orders[order["id"]]["current_total_price"]
    )


def test_an_order_held_for_its_vat_waits_for_the_settings_not_for_orders(
    sandboxed, sandbox, books, eager, personas, django_capture_on_commit_callbacks
):
    order = sandbox.create_order(
        {"country": "DE", "financial_status": "paid", "line_items": [{"sku": "HELMET-M", "quantity": 1}]}
    )
    run(sandboxed, django_capture_on_commit_callbacks)
    held = Transfer.objects.get()
    assert (held.status, held.held_for) == ("held", "settings")
    assert release_where_possible() == 0
    # Its refund waits for its invoice, under the order's name.
    sandbox.refund_order(
        order["id"], {"refund_line_items": [{"line_item_id": order["line_items"][0]["id"], "quantity": 1}]}
    )
    run(flow(sandboxed.integration, "credit_notes"), django_capture_on_commit_callbacks)
    waiting = Transfer.objects.get(entity="credit_notes")
    assert (waiting.status, waiting.reference) == ("held", f"{order['name']} refund")
    assert (
        waiting.reason
        == f"Waiting for the invoice of order {order['name']}: the refund is credited once it is made"
    )
    client = personas.client(personas.owner)
    home = client.get(reverse("home", args=[personas.integration.number])).content.decode()
    assert "1 transfer held</strong> until the accounting system" in home and "Buy orders" not in home
    detail = client.get(reverse("transfer_detail", args=[personas.integration.number, held.code])).content.decode()
    assert f'href="{books.get_absolute_url()}#settings">open the settings</a>' in detail

    # Saving e-conomic's settings (here: as they were) runs it again; the rate is still not booked, so it waits on.
    data = {k: "on" if v is True else v for k, v in books.settings_values().items() if v is not False}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("save_module_settings", args=[personas.integration.number, books.code]), data
        )
    assert response.status_code == 302
    assert "1 held transfer queued again" in client.get(response.url).content.decode()
    held.refresh_from_db()
    assert (held.status, held.held_for) == ("held", "settings")
    notes = list(held.states.values_list("kind", "note"))
    assert ("retry", "Retry requested by the settings of e-conomic saved by owner@shop.example") in notes


def test_shops_that_transfer_paid_orders_transfer_refunded_ones_too(personas, connected):
    from importlib import import_module

    from django.apps import apps

    shop = connected.source
    shop.settings = {"financial_states": ["paid"]}
    shop.save(update_fields=["settings"])
    import_module("connections.migrations.0006_refunded_orders_are_sales").refunded_orders_are_sales(apps, None)
    shop.refresh_from_db()
    assert shop.settings["financial_states"] == ["paid", "partially_refunded", "refunded"]


def test_a_claim_an_attempt_that_died_held_is_let_go_when_the_transfer_runs_again(sandboxed, sandbox, monkeypatch):
    """The first attempt died holding the claim on a customer (its worker was killed); the next one finds the customer
    made and claims nothing: the dead attempt's claim goes with it, not five minutes later."""
    from datetime import timedelta

    from django.utils import timezone

    from connections import pipeline
    from connections.models import Mapping

    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    order = sandbox.create_order({"country": "DK", "financial_status": "paid"})
    transfer = pipeline.receive(sandboxed, str(order["id"]), order["name"], None, order)
    stale = Mapping.objects.create(
        connection=sandboxed, source_ref="claim:left-by-the-dead-attempt", leased_by=transfer.pk,
        leased_until=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    Transfer.objects.filter(pk=transfer.pk).update(attempts=1)  # the attempt that died
    pipeline.process(transfer.pk)
    stale.refresh_from_db()
    assert Transfer.objects.get(pk=transfer.pk).status == "created"
    assert (stale.leased_by, stale.leased_until) == (None, None)
