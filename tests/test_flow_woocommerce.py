"""WooCommerce to e-conomic end to end: what the sandbox's WooCommerce posts (signed, as WooCommerce posts it) is
relayed to IEX's webhook address and runs through the pipeline into the sandbox's e-conomic. The documentation's own
example order and a Danish order with a coupon, a fee and shipping become drafts of the shop's totals; the same
version posted twice makes one; the ping gets 200; a refund becomes a credit note; a trashed order withdraws its
draft."""

import json
import queue
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import Client

from connections import intake, pipeline
from connections.models import Connection, Delivery, Module
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db
EXAMPLE = json.loads((Path(__file__).parent / "payloads" / "woocommerce_order_727.json").read_text())


class Relay(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def shop(sandbox, personas):
    """The sandbox's WooCommerce and e-conomic connected, orders and credit notes on webhooks; what the sandbox posts
    is caught, to be posted to IEX by `deliver`."""
    integration = personas.integration
    woo = Module(integration=integration, kind="woocommerce", base_url=f"{sandbox.url}/woocommerce")
    woo.set_credentials({"site_url": "https://sandbox-shop.example", "consumer_key": "ck_sandbox",
                         "consumer_secret": "cs_sandbox", "webhook_secret": "whsec"})  # fmt: skip
    woo.save()
    books = Module(integration=integration, kind="economic", base_url=f"{sandbox.url}/economic")
    books.set_credentials({"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"})
    books.settings = {"sales_tax_group": 3}  # the sandbox agreement's group for foreign sales tax
    books.save()
    Connection.ensure_for(integration)
    integration.connections.filter(flow__in=["orders", "credit_notes"]).update(active=True, trigger="webhook")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    server.received = queue.Queue()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    sandbox.configure({"woocommerce_webhook_url": f"http://127.0.0.1:{server.server_port}/", "woocommerce_webhook_secret": "whsec"})  # fmt: skip
    yield woo, server.received
    server.shutdown()
    server.server_close()


def deliver(shop, count=1):
    """Post what the sandbox sent to IEX's address as it came, and run what it makes; IEX's answers."""
    woo, received = shop
    answers = []
    for _ in range(count):
        headers, body = received.get(timeout=5)
        meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items() if name.lower() != "content-type"}  # fmt: skip
        kind = headers.get("Content-Type", "application/x-www-form-urlencoded")
        answers.append(Client().post(f"/hooks/{woo.webhook_token}/", body, content_type=kind, **meta))
    intake.drain(woo.pk)
    for transfer in Transfer.objects.filter(status="pending"):
        pipeline.process(transfer.pk)
    return answers


def draft(sandbox, reference):
    (found,) = [d for d in sandbox.summary()["economic"]["drafts"] if d["references"]["other"] == reference]
    return found


def test_the_documented_example_order_becomes_one_draft_of_its_total_however_often_it_comes(shop, sandbox):
    sandbox.woocommerce_post_webhook("order.created", EXAMPLE)
    sandbox.woocommerce_post_webhook("order.created", EXAMPLE)  # again: a second delivery id
    assert [answer.status_code for answer in deliver(shop, 2)] == [200, 200]
    (transfer,) = Transfer.objects.all()
    assert (transfer.status, transfer.reason, transfer.reference) == ("created", "", "#727")
    document = draft(sandbox, "iex:727")
    assert (Decimal(str(document["grossAmount"])), Decimal(str(document["vatAmount"]))) == (Decimal("29.35"), 0)
    lines = [(line["product"]["productNumber"], line["unitNetPrice"]) for line in document["lines"]]
    assert lines[-1] == ("SALESTAX", 1.35)  # California's 7.5 %: a sales tax no Danish VAT code books
    notes = list(Delivery.objects.values_list("note", flat=True))
    assert notes == ["#727: transfer received", "#727: this version was received before"]


def test_a_danish_order_with_a_coupon_a_fee_and_shipping_is_booked_with_its_vat(shop, sandbox):
    order = sandbox.woocommerce_create_order({
        "status": "processing", "line_items": [{"sku": "COFFEE-500", "quantity": 3}, {"sku": "PAPER-KAFFE", "quantity": 1}],
        "coupon": {"code": "tiprocent", "discount_type": "percent", "amount": "10"},
        "fees": [{"name": "Gebyr", "total": "19.95", "taxable": True}], "shipping": True,
    })  # fmt: skip
    deliver(shop)
    transfer = Transfer.objects.get()
    assert transfer.status == "created", transfer.reason
    document = draft(sandbox, f"iex:{order['id']}")
    assert (Decimal(str(document["grossAmount"])), Decimal(str(document["vatAmount"]))) == (
        Decimal(order["total"]), Decimal(order["total_tax"]),
    )  # fmt: skip
    assert document["recipient"]["vatZone"] == {"vatZoneNumber": 1}
    assert any("tiprocent" in line["description"] for line in document["lines"])


def test_the_ping_is_answered_and_kept(shop, sandbox):
    sandbox.woocommerce_ping(webhook_id=12)
    (answer,) = deliver(shop)
    assert answer.status_code == 200
    ping = Delivery.objects.get()
    assert (ping.topic, ping.status, ping.note) == (
        "ping",
        "ignored",
        "A ping from WooCommerce: its webhook 12 reaches IEX",
    )


def test_a_refund_announced_by_its_order_becomes_a_credit_note(shop, sandbox):
    order = sandbox.woocommerce_create_order(
        {"status": "completed", "line_items": [{"sku": "MUG-WHITE", "quantity": 2}]}
    )
    deliver(shop)
    refund = sandbox.woocommerce_refund_order(order["id"], {"line_items": [{"sku": "MUG-WHITE", "quantity": 1}]})
    deliver(shop)  # order.updated, listing the refund
    credit = Transfer.objects.get(entity="credit_notes")
    assert (credit.status, credit.reference) == ("created", f"#{order['number']} refund 1"), credit.reason
    assert [state.kind for state in credit.states.all()][:2] == ["received", "read"]  # announced, then read whole
    note = draft(sandbox, f"iex:refund:{refund['id']}")
    invoice = draft(sandbox, f"iex:{order['id']}")
    assert Decimal(str(invoice["grossAmount"])) + Decimal(str(note["grossAmount"])) == (
        Decimal(order["total"]) - Decimal(refund["amount"])
    )


def test_a_trashed_order_withdraws_its_draft(shop, sandbox):
    order = sandbox.woocommerce_create_order(
        {"status": "processing", "line_items": [{"sku": "MUG-WHITE", "quantity": 1}]}
    )
    deliver(shop)
    sandbox.woocommerce_trash_order(order["id"])
    deliver(shop)  # order.deleted: its id only
    trashed = Transfer.objects.latest("id")
    assert trashed.reason.startswith("Cancelled in the shop: draft") and trashed.reason.endswith(
        "deleted in e-conomic"
    )
    assert not [
        d for d in sandbox.summary()["economic"]["drafts"] if d["references"]["other"] == f"iex:{order['id']}"
    ]


def test_an_older_store_without_rate_percent_is_booked_by_its_amounts_and_a_rate_nothing_books_held(shop, sandbox):
    sandbox.configure({"woocommerce_legacy_tax_lines": True})  # tax lines without rate_percent (before 3.7)
    sale = sandbox.woocommerce_create_order({
        "status": "processing", "line_items": [{"sku": "FILTER-100", "quantity": 7}, {"sku": "PAPER-KAFFE", "quantity": 1}],
    })  # fmt: skip
    reduced = sandbox.woocommerce_create_order(
        {"status": "processing", "line_items": [{"sku": "BOOK-DK", "quantity": 1}]}
    )
    deliver(shop, 2)
    booked = Transfer.objects.get(source_ref=str(sale["id"]))
    assert booked.status == "created", booked.reason
    document = draft(sandbox, f"iex:{sale['id']}")
    assert (Decimal(str(document["grossAmount"])), Decimal(str(document["vatAmount"]))) == (
        Decimal(sale["total"]), Decimal(sale["total_tax"]),
    )  # fmt: skip
    held = Transfer.objects.get(source_ref=str(reduced["id"]))
    assert held.status == "held" and held.reason.startswith("12.5 % tax on BOOK-DK")
