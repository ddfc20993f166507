"""The Shopify connector: transforms on a documented-shape order, the client's paging and 429, webhooks."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
import responses

from connections.systems.shopify import forms, transforms, webhooks
from connections.systems.shopify.client import ShopifyClient
from iex.lib import http

ORDER = json.loads((Path(__file__).parent / "payloads" / "shopify_order.json").read_text())
SETTINGS = dict(forms.DEFAULT_SETTINGS)


def test_order_becomes_the_common_format_with_net_prices_per_vat_rate():
    order = transforms.to_order(ORDER, SETTINGS)
    assert (order.source_ref, order.reference, order.currency, order.total) == (
        "5500000000001042",
        "#1042",
        "DKK",
        Decimal("4496.00"),
    )
    assert order.customer.email == "kari.nordmann@example.com"
    assert order.customer.address.street == "Vestergade 1, 2. tv"
    assert [(line.kind, line.sku, line.quantity, line.unit_price_net, line.vat_rate) for line in order.lines] == [
        ("product", "BIKE-RED", 1, Decimal("3119.2000"), Decimal("0.25")),  # 3999 - 100 discount, less 25 %
        ("product", "HELMET-M", 2, Decimal("159.2000"), Decimal("0.25")),
        ("product", "BOOK-GUIDE", 1, Decimal("150.0000"), Decimal("0.0")),
        ("shipping", "", 1, Decimal("39.2000"), Decimal("0.25")),
    ]
    assert order.lines_total == order.total


def test_prices_without_vat_are_taken_as_net():
    excluding = {**ORDER, "taxes_included": False, "total_price": "5582.50"}
    order = transforms.to_order(excluding, SETTINGS)
    assert order.lines[0].unit_price_net == Decimal("3899.0000")
    assert order.lines_total == Decimal("5582.50")


def test_unallocated_order_discount_becomes_a_discount_line():
    items = [{**item, "discount_allocations": []} for item in ORDER["line_items"]]
    order = transforms.to_order({**ORDER, "line_items": items}, SETTINGS)
    discount = order.lines[-1]
    assert (discount.kind, discount.unit_price_net) == ("discount", Decimal("-80.0000"))
    assert order.lines_total == order.total


def test_order_without_customer_email():
    order = transforms.to_order({**ORDER, "email": None, "customer": None}, SETTINGS)
    assert order.customer.email == ""
    assert order.customer.name == "Kari Nordmann"


@pytest.mark.parametrize(
    ("financial", "fulfillment", "overrides", "reason"),
    [
        ("paid", None, {}, ""),
        ("partially_paid", None, {}, ""),
        ("pending", None, {}, "Order not in allowed states (financial status: pending)"),
        (
            "paid",
            None,
            {"fulfillment_states": ["fulfilled"]},
            "Order not in allowed states (fulfillment status: unfulfilled)",
        ),
        ("paid", "fulfilled", {"fulfillment_states": ["fulfilled"]}, ""),
    ],
)
def test_allowed_states(financial, fulfillment, overrides, reason):
    order = {**ORDER, "financial_status": financial, "fulfillment_status": fulfillment}
    assert transforms.skip_reason(order, {**SETTINGS, **overrides}) == reason


def test_products_become_one_common_product_per_variant_with_a_sku():
    product = {
        "id": 8000000000001,
        "title": "City bike",
        "updated_at": "2026-11-20T10:00:00+01:00",
        "variants": [
            {"id": 1, "sku": "BIKE-RED", "title": "Red", "price": "3999.00", "taxable": True},
            {"id": 2, "sku": "", "title": "Blue", "price": "3999.00", "taxable": True},
        ],
    }
    (red,) = transforms.to_products(product, SETTINGS)
    assert (red.sku, red.name, red.price_net, red.vat_rate) == (
        "BIKE-RED",
        "City bike - Red",
        Decimal("3199.2000"),
        Decimal("0.25"),
    )


class FakeModule:
    base_url = ""

    def get_credentials(self):
        return {"shop_domain": "nordic-bikes.myshopify.com", "access_token": "shpat_secret"}

    def settings_values(self):
        return SETTINGS


API = "https://nordic-bikes.myshopify.com/admin/api/2025-01"


@responses.activate
def test_orders_are_read_page_by_page_following_the_link_header():
    from datetime import UTC, datetime

    next_url = f"{API}/orders.json?limit=250&page_info=abc"
    responses.get(
        f"{API}/orders.json",
        json={"orders": [{"id": 1}]},
        headers={"Link": f'<{next_url}>; rel="next"'},
        match=[
            responses.matchers.query_param_matcher(
                {"status": "any", "updated_at_min": "2026-11-01T00:00:00+00:00", "limit": "250"}
            )
        ],
    )
    responses.get(next_url, json={"orders": [{"id": 2}]})
    orders = list(ShopifyClient(FakeModule()).orders_since(datetime(2026, 11, 1, tzinfo=UTC)))
    assert [o["id"] for o in orders] == [1, 2]
    assert responses.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_secret"


@responses.activate
def test_429_waits_for_retry_after_then_succeeds(monkeypatch):
    slept = []
    monkeypatch.setattr("connections.systems.shopify.client.time.sleep", slept.append)
    responses.get(
        f"{API}/shop.json", status=429, headers={"Retry-After": "2.0"}, json={"errors": "Exceeded 2 calls"}
    )
    responses.get(
        f"{API}/shop.json",
        json={"shop": {"name": "Nordic Bikes", "myshopify_domain": "nordic-bikes.myshopify.com"}},
    )
    assert ShopifyClient(FakeModule()).test() == "Connected to Nordic Bikes (nordic-bikes.myshopify.com)"
    assert slept == [2.0]


@responses.activate
def test_long_retry_after_is_left_to_the_pipeline():
    responses.get(f"{API}/shop.json", status=429, headers={"Retry-After": "60"}, json={"errors": "Exceeded"})
    with pytest.raises(http.TransientError) as raised:
        ShopifyClient(FakeModule()).test()
    assert raised.value.retry_after == 60.0


@responses.activate
def test_wrong_token_is_a_permanent_error_with_shopifys_message():
    responses.get(f"{API}/shop.json", status=401, json={"errors": "[API] Invalid API key or access token"})
    with pytest.raises(http.PermanentError, match="Invalid API key"):
        ShopifyClient(FakeModule()).test()


def test_webhook_signature_is_verified_on_the_raw_body():
    body = json.dumps(ORDER).encode()
    good = webhooks.signature("whsec", body)
    assert webhooks.verify("whsec", body, {"X-Shopify-Hmac-Sha256": good})
    assert not webhooks.verify("whsec", body + b" ", {"X-Shopify-Hmac-Sha256": good})
    assert not webhooks.verify("other", body, {"X-Shopify-Hmac-Sha256": good})
    assert not webhooks.verify("", body, {"X-Shopify-Hmac-Sha256": webhooks.signature("", body)})
    assert not webhooks.verify("whsec", body, {})
