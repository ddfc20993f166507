"""The contract every webshop connector passes, run alike for each against the sandbox's copy of its shop: orders
changed since a time, each to the shop's total and tax to the cent; sales sent and the rest skipped; refunds found
and credited as the shop refunded them; products one per SKU; stock written by SKU; webhooks verified and read; and
an order and its refund end to end through the pipeline into e-conomic. A new webshop adds a driver below."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from connections import intake, pipeline
from connections.common import StockLevel
from connections.models import Connection, Module
from connections.systems import webshop
from sandbox.shopify import WAREHOUSE_ID
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


class Shopify:
    kind = "shopify"
    credentials = {"shop_domain": "sandbox.myshopify.com", "access_token": "shpat_sandbox"}
    stocked = "HELMET-M"

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def order(self, paid=True, **overrides):
        status = "paid" if paid else "pending"
        return self.sandbox.create_order({"country": "DK", "financial_status": status, **overrides})

    def of(self, skus):
        return {"line_items": [{"sku": sku, "quantity": quantity} for sku, quantity in skus]}

    def refund_one(self, order):
        line = order["line_items"][0]
        return self.sandbox.refund_order(
            order["id"], {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]}
        )

    def now(self, order):
        return self.sandbox.state.shopify.orders[order["id"]]

    def total(self, order):
        return Decimal(order["total_price"]), Decimal(order["total_tax"])

    def left(self, order):
        return Decimal(self.now(order)["current_total_price"])

    def stock(self, sku):
        shop = self.sandbox.state.shopify
        variant = next(v for p in shop.products for v in p["variants"] if v["sku"] == sku)
        return shop.levels[variant["inventory_item_id"], WAREHOUSE_ID]["available"]  # the shop's primary location

    def webhook(self, topic, order, secret):
        body = json.dumps(order).encode()
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        return body, {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Event-Id": "e1"}

    created_topic = "orders/create"


class WooCommerce:
    kind = "woocommerce"
    credentials = {"site_url": "https://sandbox-shop.example", "consumer_key": "ck_sandbox", "consumer_secret": "cs_sandbox"}  # fmt: skip
    stocked = "COFFEE-500"

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def order(self, paid=True, **overrides):
        return self.sandbox.woocommerce_create_order({"status": "processing" if paid else "pending", **overrides})

    def of(self, skus):
        return {"line_items": [{"sku": sku, "quantity": quantity} for sku, quantity in skus]}

    def refund_one(self, order):
        return self.sandbox.woocommerce_refund_order(order["id"], {"line_items": [{"id": order["line_items"][0]["id"], "quantity": 1}]})  # fmt: skip

    def now(self, order):
        return self.sandbox.state.woocommerce.orders[order["id"]]

    def total(self, order):
        return Decimal(order["total"]), Decimal(order["total_tax"])

    def left(self, order):
        now = self.now(order)
        return Decimal(now["total"]) + sum((Decimal(r["total"]) for r in now["refunds"]), Decimal(0))

    def stock(self, sku):
        return self.sandbox.state.woocommerce.by_sku(sku)["stock_quantity"]

    def webhook(self, topic, order, secret):
        body = json.dumps(order).encode()
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        return body, {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": signature, "X-WC-Webhook-Delivery-ID": "d1"}  # fmt: skip

    created_topic = "order.created"


@pytest.fixture(params=[Shopify, WooCommerce], ids=lambda driver: driver.kind)
def shop(request, sandbox):
    return request.param(sandbox)


@pytest.fixture
def modules(shop, sandbox, personas):
    """The shop and the sandbox's e-conomic, connected in the personas' integration; orders and credit notes on."""
    integration = personas.integration
    source = Module(integration=integration, kind=shop.kind, base_url=f"{sandbox.url}/{shop.kind}")
    source.set_credentials({**shop.credentials, "webhook_secret": "whsec"})
    source.save()
    books = Module(integration=integration, kind="economic", base_url=f"{sandbox.url}/economic")
    books.set_credentials({"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"})
    books.save()
    Connection.ensure_for(integration)
    integration.connections.filter(flow__in=["orders", "credit_notes"]).update(active=True)
    return source, books


def test_orders_changed_since_a_time_are_read_with_their_reference_and_version(shop, modules):
    since = datetime.now(UTC) - timedelta(minutes=1)
    made = [shop.order() for _ in range(3)]
    system = webshop(shop.kind)
    read = {str(order["id"]): order for order in system.client(modules[0]).orders_since(since)}
    assert {str(order["id"]) for order in made} <= set(read)
    for order in made:
        source_ref, reference, version = system.transforms.order_ref(read[str(order["id"])])
        assert source_ref == str(order["id"]) and reference.startswith("#") and version is not None


def test_every_order_comes_to_the_shops_total_and_tax_to_the_cent(shop, modules):
    system = webshop(shop.kind)
    settings = modules[0].settings_values()
    for _ in range(25):  # the generator's own mix: discounts, fees, shipping, several lines
        raw = shop.order()
        order = system.transforms.to_order(raw, settings)
        assert (order.lines_total, order.total_tax) == shop.total(raw), raw["id"]
        assert all(line.net == line.net.quantize(Decimal("0.01")) for line in order.lines)


def test_a_sale_is_sent_and_an_unpaid_order_skipped_with_the_reason(shop, modules):
    system = webshop(shop.kind)
    settings = modules[0].settings_values()
    assert system.transforms.skip_reason(shop.order(), settings) == ""
    assert system.transforms.skip_reason(shop.order(paid=False), settings).startswith(
        "Order not in allowed states"
    )


def test_a_refund_is_found_and_credits_what_the_shop_took_off_the_order(shop, modules):
    system = webshop(shop.kind)
    settings = modules[0].settings_values()
    since = datetime.now(UTC) - timedelta(minutes=1)
    order = shop.order(**shop.of([(shop.stocked, 2)]))
    made = shop.refund_one(order)
    (refund,) = [r for r in system.client(modules[0]).refunds_since(since) if str(r["id"]) == str(made["id"])]
    credit = system.transforms.to_credit_note(refund, shop.now(order), settings)
    invoice = system.transforms.to_order(order, settings)
    assert invoice.total - credit.total == shop.left(order)
    assert credit.order_ref == str(order["id"]) and credit.reference.startswith(invoice.reference)


def test_products_are_one_common_product_per_sku(shop, modules):
    system = webshop(shop.kind)
    settings = modules[0].settings_values()
    since = datetime.now(UTC) - timedelta(days=3650)
    products = [
        p
        for raw in system.client(modules[0]).products_since(since)
        for p in system.transforms.to_products(raw, settings)
    ]
    skus = [p.sku for p in products]
    assert shop.stocked in skus and len(skus) == len(set(skus)) and all(skus)
    assert all(
        p.price_net == p.price_net.quantize(Decimal("0.01")) and 0 <= p.vat_rate <= Decimal("0.25")
        for p in products
    )


def test_stock_is_written_by_sku_and_an_unknown_sku_is_skipped(shop, modules):
    client = webshop(shop.kind).client(modules[0])
    written, unknown = client.set_stock([StockLevel(shop.stocked, 17), StockLevel("NO-SUCH-SKU", 1)])
    assert shop.stock(shop.stocked) == 17 and "skipped" in unknown
    item = str(written["inventory_level"]["inventory_item_id"])
    (again,) = client.set_stock([StockLevel(shop.stocked, 16, item_ref=item)])  # the item known: written directly
    assert shop.stock(shop.stocked) == 16 and "skipped" not in again


def test_a_webhook_is_verified_and_names_its_records(shop, modules):
    reader = webshop(shop.kind).webhooks
    assert reader is not None
    order = shop.order()
    body, headers = shop.webhook(shop.created_topic, order, "whsec")
    assert reader.verify(["whsec"], body, headers) and not reader.verify(["other"], body, headers)
    assert reader.ping(body, headers) == "" and reader.topic(headers) == shop.created_topic
    (entity, record), *_ = reader.records(shop.created_topic, json.loads(body))
    assert entity == "orders"
    assert reader.record_ref(entity, record) == webshop(shop.kind).transforms.order_ref(order)


def test_an_order_and_its_refund_reach_e_conomic_as_the_shop_has_them(shop, modules, sandbox):
    """The order posted as its webhook, twice (one document), then its refund found by the schedule."""
    source = modules[0]
    Connection.objects.filter(flow="orders").update(trigger="webhook")
    order = shop.order(**shop.of([(shop.stocked, 2)]))
    body, headers = shop.webhook(shop.created_topic, order, "whsec")
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    for _ in range(2):
        response = Client().post(f"/hooks/{source.webhook_token}/", body, content_type="application/json", **meta)
        assert response.status_code == 200
    intake.drain(source.pk)
    run_pending()
    (invoice,) = Transfer.objects.filter(entity="orders")
    assert invoice.status == "created", invoice.reason
    draft = document(sandbox, f"iex:{order['id']}")
    total, tax = shop.total(order)
    assert (Decimal(str(draft["grossAmount"])), Decimal(str(draft["vatAmount"]))) == (total, tax)

    refund = shop.refund_one(order)
    pipeline.sync(Connection.objects.get(flow="credit_notes"), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    credit = Transfer.objects.get(entity="credit_notes", source_ref=str(refund["id"]))
    assert credit.status == "created", credit.reason
    note = document(sandbox, f"iex:refund:{refund['id']}")
    assert Decimal(str(draft["grossAmount"])) + Decimal(str(note["grossAmount"])) == shop.left(order)


def run_pending():
    for transfer in Transfer.objects.filter(status="pending"):
        pipeline.process(transfer.pk)


def document(sandbox, reference):
    (found,) = [d for d in sandbox.summary()["economic"]["drafts"] if d["references"]["other"] == reference]
    return found
