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
    lines = [
        (line.kind, line.sku, line.quantity, line.unit_price, line.net, line.tax, line.vat_rate)
        for line in order.lines
    ]
    assert lines == [
        # The list price without VAT, and the shop's own figures: 3999 - 100 discount = 3899, of which 779.80 VAT.
        ("product", "BIKE-RED", 1, Decimal("3199.20"), Decimal("3119.20"), Decimal("779.80"), Decimal("0.25")),
        ("product", "HELMET-M", 2, Decimal("159.20"), Decimal("318.40"), Decimal("79.60"), Decimal("0.25")),
        ("product", "BOOK-GUIDE", 1, Decimal("150.00"), Decimal("150.00"), Decimal("0.00"), Decimal("0.0")),
        ("shipping", "", 1, Decimal("39.20"), Decimal("39.20"), Decimal("9.80"), Decimal("0.25")),
    ]
    assert order.lines[0].discount_codes == []
    assert order.lines_total == order.total and order.total_tax == Decimal("869.20")
    assert (order.country_code, order.taxes_included, order.cancelled) == ("DK", True, False)


def test_prices_without_vat_are_taken_as_net():
    items = [{**item, "tax_lines": [{**item["tax_lines"][0], "price": tax}]} for item, tax in
             zip(ORDER["line_items"], ("974.75", "99.50", "0.00"), strict=True)]  # fmt: skip
    shipping = [{**ORDER["shipping_lines"][0], "tax_lines": [{"rate": 0.25, "price": "12.25", "title": "Moms"}]}]
    excluding = {**ORDER, "taxes_included": False, "total_price": "5582.50", "line_items": items,
                 "shipping_lines": shipping}  # fmt: skip
    order = transforms.to_order(excluding, SETTINGS)
    assert (order.lines[0].unit_price, order.lines[0].net, order.lines[0].tax) == (
        Decimal("3999.00"),
        Decimal("3899.00"),
        Decimal("974.75"),
    )
    assert order.lines_total == Decimal("5582.50") == order.total


def test_unallocated_order_discount_becomes_a_discount_line():
    items = [{**item, "discount_allocations": []} for item in ORDER["line_items"]]
    order = transforms.to_order({**ORDER, "line_items": items}, SETTINGS)
    discount = order.lines[-1]
    # The lines' tax is the shop's after the discount already: the discount line takes off none again.
    assert (discount.kind, discount.net, discount.tax) == ("discount", Decimal("-100.00"), Decimal("0"))
    assert order.lines_total == order.total and order.total_tax == Decimal("869.20")


def test_the_documented_example_order_keeps_the_shops_tax_and_discount_code():
    """Shopify's own example (#1001): taxes excluded, 6 % sales tax lines whose amounts the rate does not give, a
    TENOFF code spread over three lines. The shop's amounts are kept as they are, to the cent."""
    example = json.loads((Path(__file__).parent / "payloads" / "shopify_order_450789469.json").read_text())
    order = transforms.to_order(example, SETTINGS)
    assert [(line.sku, line.net, line.tax, line.discount_codes) for line in order.lines] == [
        ("IPOD2008GREEN", Decimal("195.66"), Decimal("3.98"), ["TENOFF"]),
        ("IPOD2008RED", Decimal("195.67"), Decimal("3.98"), ["TENOFF"]),
        ("IPOD2008BLACK", Decimal("195.67"), Decimal("3.98"), ["TENOFF"]),
    ]
    assert (order.total, order.lines_total, order.total_tax) == (
        Decimal("598.94"),
        Decimal("598.94"),
        Decimal("11.94"),
    )
    assert (order.country_code, order.taxes_included, order.current_total) == ("US", False, Decimal("199.65"))
    assert [(line.sku, line.quantity) for line in order.current_lines] == [("IPOD2008RED", 1)]


def test_a_refund_becomes_a_credit_note_of_the_refunded_lines():
    example = json.loads((Path(__file__).parent / "payloads" / "shopify_order_450789469.json").read_text())
    refund = json.loads((Path(__file__).parent / "payloads" / "shopify_refund_450789469.json").read_text())
    credit = transforms.to_credit_note(refund, example, SETTINGS)
    assert (credit.order_ref, credit.order_reference, credit.reference) == ("450789469", "#1001", "#1001 refund 1")
    assert [(line.sku, line.quantity, line.net, line.tax) for line in credit.lines] == [
        ("IPOD2008BLACK", 1, Decimal("195.66"), Decimal("3.98")),
        ("IPOD2008GREEN", 1, Decimal("195.67"), Decimal("3.98")),
    ]
    # The invoice less this credit note is what is left of the order in the shop.
    assert transforms.to_order(example, SETTINGS).total - credit.total == Decimal("199.65")


def test_a_shipping_refund_is_credited_as_shipping():
    example = json.loads((Path(__file__).parent / "payloads" / "shopify_order_450789469.json").read_text())
    refund = {"id": 929361471, "order_id": 450789469, "created_at": "2025-01-02T10:00:00-05:00",
              "refund_line_items": [], "order_adjustments": [{"kind": "shipping_refund", "amount": "-5.00",
                                                               "tax_amount": "0.00", "reason": "Shipping refund"}]}  # fmt: skip
    credit = transforms.to_credit_note(refund, example, SETTINGS)
    assert [(line.kind, line.net, line.tax) for line in credit.lines] == [
        ("shipping", Decimal("5.00"), Decimal("0.00"))
    ]
    assert credit.total == Decimal("5.00")


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
    pk = 1
    base_url = ""
    gate = None  # no rate budget or circuit: the HTTP is faked

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
    assert webhooks.verify(["whsec"], body, {"X-Shopify-Hmac-Sha256": good})
    assert webhooks.verify(["new", "whsec"], body, {"X-Shopify-Hmac-Sha256": good})  # the previous secret, a while
    assert not webhooks.verify(["whsec"], body + b" ", {"X-Shopify-Hmac-Sha256": good})
    assert not webhooks.verify(["other"], body, {"X-Shopify-Hmac-Sha256": good})
    assert not webhooks.verify([""], body, {"X-Shopify-Hmac-Sha256": webhooks.signature("", body)})
    assert not webhooks.verify(["whsec"], body, {})


@responses.activate
def test_stock_goes_to_the_shops_primary_location_unless_one_is_chosen():
    from connections.common import StockLevel

    responses.get(f"{API}/shop.json", json={"shop": {"name": "Nordic Bikes", "primary_location_id": 2}})
    responses.get(f"{API}/locations.json", json={"locations": [{"id": 1, "name": "Shop front", "active": True},
                                                               {"id": 2, "name": "Warehouse", "active": True}]})  # fmt: skip
    responses.get(
        f"{API}/products.json",
        json={"products": [{"id": 8, "variants": [{"sku": "BIKE-RED", "inventory_item_id": 77}]}]},
    )
    set_level = responses.post(
        f"{API}/inventory_levels/set.json", json={"inventory_level": {"inventory_item_id": 77, "available": 3}}
    )
    ShopifyClient(FakeModule()).set_stock([StockLevel("BIKE-RED", 3)])
    assert json.loads(set_level.calls[0].request.body) == {
        "location_id": 2,
        "inventory_item_id": 77,
        "available": 3,
    }
    # Only the variants' ids are read, not the whole catalogue.
    (catalogue,) = [c for c in responses.calls if "/products.json" in c.request.url]
    assert "fields=id%2Cvariants" in catalogue.request.url

    chosen = FakeModule()
    chosen.settings_values = lambda: {**SETTINGS, "stock_location": "1"}
    responses.calls.reset()
    ShopifyClient(chosen).set_stock([StockLevel("BIKE-RED", 4, item_ref="77")])
    # A stock item known from the last write: no catalogue read, no location look-up.
    assert [c.request.url.split("/admin/api/2025-01/")[1] for c in responses.calls] == [
        "inventory_levels/set.json"
    ]
    assert json.loads(responses.calls[0].request.body)["location_id"] == 1


def test_a_shipping_refund_with_its_tax_is_credited_at_the_rate_shipping_was_taxed():
    """1.00 of tax on 3.99 is 25.06 %: the rate is the shipping line's, 25 %, as e-conomic books it."""
    refund = {"id": 3, "order_id": 5500000000001042, "created_at": "2026-11-22T10:00:00+01:00",
              "refund_line_items": [], "order_adjustments": [{"kind": "shipping_refund", "amount": "-3.99",
                                                               "tax_amount": "-1.00"}]}  # fmt: skip
    (line,) = transforms.to_credit_note(refund, ORDER, SETTINGS).lines
    assert (line.kind, line.net, line.tax, line.vat_rate) == (
        "shipping",
        Decimal("3.99"),
        Decimal("1.00"),
        Decimal("0.25"),
    )


def test_tips_duties_and_fees_are_lines_of_their_own_so_the_total_is_the_shops():
    data = {
        **ORDER,
        "total_price": "4621.00",
        "total_tip_received": "50.00",
        "original_total_duties_set": {"shop_money": {"amount": "60.00", "currency_code": "DKK"}},
        "original_total_additional_fees_set": {"shop_money": {"amount": "15.00", "currency_code": "DKK"}},
    }
    order = transforms.to_order(data, SETTINGS)
    assert [(line.kind, line.description, line.net, line.tax) for line in order.lines[4:]] == [
        ("fee", "Tip", Decimal("50.00"), 0), ("fee", "Duties", Decimal("60.00"), 0),
        ("fee", "Additional fees", Decimal("15.00"), 0),
    ]  # fmt: skip
    assert order.lines_total == order.total


def test_a_shipping_discount_in_total_discounts_is_not_taken_off_twice():
    """`total_discounts` counts a free-shipping code too; the shipping line's discounted price already has it."""
    shipping = [{**ORDER["shipping_lines"][0], "price": "79.00", "discounted_price": "49.00"}]
    data = {**ORDER, "shipping_lines": shipping, "total_discounts": str(Decimal(ORDER["total_discounts"]) + 30)}
    order = transforms.to_order(data, SETTINGS)
    assert [line.kind for line in order.lines] == ["product", "product", "product", "shipping"]
    assert order.lines[-1].gross == Decimal("49.00")


def test_products_are_taxed_at_the_shops_rate_at_home():
    product = {"id": 1, "title": "Bike", "variants": [{"id": 2, "sku": "B", "price": "1190.00", "taxable": True}]}
    (bike,) = transforms.to_products(product, {**SETTINGS, "vat_rate": "19"})
    assert (bike.price_net, bike.vat_rate) == (Decimal("1000.00"), Decimal("0.19"))


@responses.activate
def test_a_stock_item_gone_since_the_last_write_is_found_again():
    from connections.common import StockLevel

    chosen = FakeModule()
    chosen.settings_values = lambda: {**SETTINGS, "stock_location": "1"}
    responses.post(f"{API}/inventory_levels/set.json", status=422,
                   json={"errors": ["Inventory item does not exist"]})  # fmt: skip
    responses.get(f"{API}/products.json",
                  json={"products": [{"id": 8, "variants": [{"sku": "BIKE-RED", "inventory_item_id": 78}]}]})  # fmt: skip
    written = responses.post(
        f"{API}/inventory_levels/set.json", json={"inventory_level": {"inventory_item_id": 78}}
    )
    (answer,) = ShopifyClient(chosen).set_stock([StockLevel("BIKE-RED", 4, item_ref="77")])
    assert answer == {"inventory_level": {"inventory_item_id": 78}}
    assert json.loads(written.calls[0].request.body)["inventory_item_id"] == 78
