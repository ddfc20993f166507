"""The fake WooCommerce is as strict as the real one and produces what it produces: its keys and their refusals,
WordPress's paging and parameter checks, plain permalinks, orders whose money adds up exactly (prices with or
without tax, coupons, fees, shipping), refunds, the trash, stock and signed webhooks. A server on a free port per
test, driven over real HTTP with `requests`; the documented example order is tests/payloads/woocommerce_order_727.json.
"""

import base64
import hashlib
import hmac
import json
import queue
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from sandbox.woocommerce import WooCommerceState, site_time
from tests.test_sandbox_shopify import assert_shaped_like

KEYS = ("ck_sandbox", "cs_sandbox")
READ_KEYS = ("ck_sandbox_read", "cs_sandbox_read")
SECRET = "wc-s3cret"
PAYLOADS = Path(__file__).parent / "payloads"
MONEY = re.compile(r"-?\d+\.\d{2}")
RAW = re.compile(r"-?(0|[1-9]\d*)(\.\d*[1-9])?")  # a stored float as WooCommerce shows it: "0.9", "2.598", "0"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
CANNOT_LIST = {
    "code": "woocommerce_rest_cannot_view",
    "message": "Sorry, you cannot list resources.",
    "data": {"status": 401},
}
REALM = 'Basic realm="WooCommerce API. Use a consumer key in the username field and a consumer secret in the password field."'
# The docs' "Create a refund" answer (woocommerce-rest-api-docs, _order-refunds.md), as far as the digest quotes it.
DOCUMENTED_REFUND = {
    "id": 724,
    "date_created": "2017-03-21T16:55:37",
    "date_created_gmt": "2017-03-21T19:55:37",
    "amount": "9.00",
    "reason": "",
    "refunded_by": 1,
    "refunded_payment": False,
    "meta_data": [],
    "line_items": [
        {
            "id": 314,
            "name": "Woo Album #2",
            "product_id": 87,
            "variation_id": 0,
            "quantity": -1,
            "tax_class": "",
            "subtotal": "-9.00",
            "subtotal_tax": "0.00",
            "total": "-9.00",
            "total_tax": "0.00",
            "taxes": [],
            "meta_data": [{"id": 2076, "key": "_refunded_item_id", "value": "311"}],
            "sku": "",
            "price": -9,
        }
    ],
}


def d(text):
    return Decimal(str(text))


def api(sandbox):
    return f"{sandbox.url}/woocommerce/wp-json/wc/v3"


def get(sandbox, path, auth=KEYS, **params):
    return requests.get(f"{api(sandbox)}/{path}", auth=auth, params=params, timeout=5)


def put(sandbox, path, body, auth=KEYS):
    return requests.put(f"{api(sandbox)}/{path}", auth=auth, json=body, timeout=5)


def control_post(sandbox, path, body=None):
    return requests.post(f"{sandbox.url}/_sandbox/woocommerce/{path}", json=body, timeout=5)


def payload(name):
    return json.loads((PAYLOADS / name).read_text())


def coffee_order(control, **overrides):
    """2 coffee at 129.95 and a box of filters at 12.99 (incl. VAT), 10 % off, shipping 39.20 + 9.80 VAT and a
    15.00 fee: 309.60 in all, 61.92 of it VAT."""
    body = {
        "status": "processing",
        "line_items": [{"sku": "COFFEE-500", "quantity": 2}, {"sku": "FILTER-100", "quantity": 1}],
        "coupon": {"code": "KAFFE10", "discount_type": "percent", "amount": 10},
        "shipping": True,
        "fees": [{"name": "Gebyr", "total": "15.00"}],
        **overrides,
    }
    order = control("woocommerce/orders", body)
    assert (order["total"], order["total_tax"]) == ("309.60", "61.92")
    return order


def assert_adds_up(order):
    """The totals follow from the lines as the module docstring of sandbox/woocommerce.py says, exactly."""
    items, shipping, fees = order["line_items"], order["shipping_lines"], order["fee_lines"]
    parts = items + shipping + fees
    assert sum(d(p["total"]) + d(p["total_tax"]) for p in parts) == d(order["total"])
    assert sum(d(p["total_tax"]) for p in parts) == d(order["total_tax"])
    assert sum(d(p["total_tax"]) for p in items + fees) == d(order["cart_tax"])
    assert sum(d(p["total_tax"]) for p in shipping) == d(order["shipping_tax"])
    assert sum(d(p["total"]) for p in shipping) == d(order["shipping_total"])
    assert d(order["cart_tax"]) + d(order["shipping_tax"]) == d(order["total_tax"])
    for tax_line in order["tax_lines"]:
        rate = tax_line["rate_id"]
        on = [p for p in items + fees if any(t["id"] == rate for t in p["taxes"])]
        assert sum(d(p["total_tax"]) for p in on) == d(tax_line["tax_total"])
        shipped = [p for p in shipping if any(t["id"] == rate for t in p["taxes"])]
        assert sum(d(p["total_tax"]) for p in shipped) == d(tax_line["shipping_tax_total"])
    for item in items:
        # The raw tax rounds to the shown one; subtotal (before coupons) is never below total (after).
        assert abs(sum(d(t["total"]) for t in item["taxes"]) - d(item["total_tax"])) <= Decimal("0.005")
        assert abs(sum(d(t["subtotal"]) for t in item["taxes"]) - d(item["subtotal_tax"])) <= Decimal("0.005")
        assert d(item["subtotal"]) >= d(item["total"])
        assert abs(item["price"] - float(item["total"]) / item["quantity"]) < 0.006
    gross_discount = sum(
        d(i["subtotal"]) + d(i["subtotal_tax"]) - d(i["total"]) - d(i["total_tax"]) for i in items
    )
    if order["prices_include_tax"]:
        # Net and tax of a line add up to its gross, before and after the coupon.
        assert d(order["discount_total"]) + d(order["discount_tax"]) == gross_discount
    else:
        assert d(order["discount_total"]) == sum(d(i["subtotal"]) - d(i["total"]) for i in items)
    for coupon in order["coupon_lines"]:
        assert d(coupon["discount"]) == d(order["discount_total"])
    if not order["coupon_lines"]:
        assert gross_discount == 0 and order["discount_total"] == "0.00"


def assert_typed(order):
    """Money strings padded to cents, taxes[] raw, `price` a number, ids integers, `number` a string."""
    for key in (
        "discount_total",
        "discount_tax",
        "shipping_total",
        "shipping_tax",
        "cart_tax",
        "total",
        "total_tax",
    ):
        assert MONEY.fullmatch(order[key]), key
    assert type(order["id"]) is int and order["number"] == str(order["id"])
    assert type(order["customer_id"]) is int and order["currency"] == "DKK"
    for line in order["line_items"] + order["shipping_lines"] + order["fee_lines"]:
        assert type(line["id"]) is int
        for key in ("subtotal", "subtotal_tax", "total", "total_tax"):
            assert key not in line or MONEY.fullmatch(line[key]), key
        for tax in line["taxes"]:
            assert type(tax["id"]) is int and RAW.fullmatch(tax["total"])
            assert tax["subtotal"] == "" or RAW.fullmatch(tax["subtotal"])
    for item in order["line_items"]:
        assert type(item["price"]) in (int, float)
        assert (
            type(item["product_id"]) is int and type(item["variation_id"]) is int and type(item["quantity"]) is int
        )
    for tax_line in order["tax_lines"]:
        assert type(tax_line["rate_id"]) is int and type(tax_line["rate_percent"]) is float
    for coupon in order["coupon_lines"]:
        assert type(coupon["nominal_amount"]) is float and RAW.fullmatch(coupon["discount"])
    for name in ("date_created", "date_modified"):
        assert DATE.fullmatch(order[name]) and DATE.fullmatch(order[f"{name}_gmt"])
        offset = datetime.fromisoformat(order[name]) - datetime.fromisoformat(order[f"{name}_gmt"])
        assert offset in (timedelta(hours=1), timedelta(hours=2))  # Copenhagen: CET or CEST


# Documented shapes and money ---------------------------------------------------------------------------------------


def test_the_documented_example_is_served_back_unchanged(sandbox, control):
    example = payload("woocommerce_order_727.json")
    assert control("woocommerce/webhooks/order.created", example) == {"posted": "order.created"}
    answer = get(sandbox, "orders/727")
    assert answer.status_code == 200
    assert answer.json() == example
    assert [order["id"] for order in get(sandbox, "orders").json()] == [727]


def test_orders_have_the_documented_fields_in_the_documented_order(control):
    order = control(
        "woocommerce/orders",
        {
            "line_items": [{"sku": "TSHIRT-M", "quantity": 1}, {"sku": "MUG-WHITE", "quantity": 2}],
            "coupon": {"code": "KAFFE10", "discount_type": "percent", "amount": 10},
            "shipping": True,
            "fees": [{"name": "Gebyr", "total": "15.00"}],
        },
    )
    documented = payload("woocommerce_order_727.json")
    assert_shaped_like(documented, order)
    assert [key for key in order if key in documented] == list(documented)
    assert [key for key in order["line_items"][0] if key in documented["line_items"][0]] == list(
        documented["line_items"][0]
    )
    shirt = order["line_items"][0]
    assert (shirt["name"], shirt["product_id"], shirt["variation_id"], shirt["sku"]) == (
        "T-shirt med logo - M",
        15,
        17,
        "TSHIRT-M",
    )
    assert [(m["key"], m["value"], m["display_key"], m["display_value"]) for m in shirt["meta_data"]] == [
        ("pa_size", "m", "Størrelse", "M")
    ]
    assert order["line_items"][1]["variation_id"] == 0
    assert order["prices_include_tax"] is True
    assert order["_links"]["self"][0]["href"].endswith(f"/woocommerce/wp-json/wc/v3/orders/{order['id']}")


def test_a_worked_example_with_prices_including_tax(control):
    order = coffee_order(control)
    coffee, filters = order["line_items"]
    # 10 % of 259.90 is floored to 25.99, of 12.99 to 1.29; the cart's 27.29 wants one more cent, from the first
    # (the dearest) line: 26.00 and 1.29 off.
    assert {k: coffee[k] for k in ("subtotal", "subtotal_tax", "total", "total_tax", "taxes", "price")} == {
        "subtotal": "207.92",
        "subtotal_tax": "51.98",
        "total": "187.12",
        "total_tax": "46.78",
        "taxes": [{"id": 1, "total": "46.78", "subtotal": "51.98"}],
        "price": 93.56,
    }
    # 12.99 holds 2.598 of VAT: kept raw in taxes[], rounded for subtotal_tax; the net keeps the rest (10.392).
    assert {k: filters[k] for k in ("subtotal", "subtotal_tax", "total", "total_tax", "taxes", "price")} == {
        "subtotal": "10.39",
        "subtotal_tax": "2.60",
        "total": "9.36",
        "total_tax": "2.34",
        "taxes": [{"id": 1, "total": "2.34", "subtotal": "2.598"}],
        "price": 9.36,
    }
    assert order["shipping_lines"][0]["taxes"] == [{"id": 1, "total": "9.8", "subtotal": ""}]
    assert (order["shipping_lines"][0]["total"], order["shipping_lines"][0]["method_id"]) == ("39.20", "flat_rate")
    fee = order["fee_lines"][0]
    assert (fee["name"], fee["tax_status"], fee["total"], fee["total_tax"], fee["taxes"]) == (
        "Gebyr",
        "taxable",
        "12.00",
        "3.00",
        [{"id": 1, "total": "3", "subtotal": ""}],
    )
    assert order["coupon_lines"][0] | {"id": 0} == {
        "id": 0,
        "code": "KAFFE10",
        "discount": "21.83",
        "discount_tax": "5.46",
        "discount_type": "percent",
        "nominal_amount": 10.0,
        "free_shipping": False,
        "meta_data": [],
    }
    assert (order["discount_total"], order["discount_tax"]) == ("21.83", "5.46")
    assert (order["cart_tax"], order["shipping_total"], order["shipping_tax"]) == ("52.12", "39.20", "9.80")
    assert order["tax_lines"][0] | {"id": 0} == {
        "id": 0,
        "rate_code": "DK-MOMS-1",
        "rate_id": 1,
        "label": "Moms",
        "compound": False,
        "tax_total": "52.12",
        "shipping_tax_total": "9.80",
        "rate_percent": 25.0,
        "meta_data": [],
    }
    assert_adds_up(order)
    assert_typed(order)


def test_a_worked_example_with_prices_excluding_tax(control):
    order = control(
        "woocommerce/orders",
        {
            "prices_include_tax": False,
            "line_items": [{"sku": "MUG-WHITE", "quantity": 3}, {"sku": "COFFEE-500", "quantity": 1}],
            "coupon": {"code": "VELKOMMEN50", "discount_type": "fixed_cart", "amount": "50"},
            "shipping": False,
        },
    )
    mugs, coffee = order["line_items"]
    # Without VAT: 89.00 -> 71.20, 129.95 -> 103.96. The 50.00 goes equally per unit: 12.50 a unit.
    assert [(i["subtotal"], i["subtotal_tax"], i["total"], i["total_tax"]) for i in (mugs, coffee)] == [
        ("213.60", "53.40", "176.10", "44.03"),
        ("103.96", "25.99", "91.46", "22.87"),
    ]
    # Tax on top is rounded half up: 44.025 -> 44.03, 22.865 -> 22.87 (raw in taxes[]).
    assert [i["taxes"][0]["total"] for i in (mugs, coffee)] == ["44.025", "22.865"]
    assert (order["total"], order["total_tax"], order["prices_include_tax"]) == ("334.46", "66.90", False)
    # The discount's tax is the rounded sum of the raw shares (12.50), a cent more than the lines' rounded taxes
    # went down by (12.49): reconcile on the lines and the order total, as with WooCommerce.
    assert (order["discount_total"], order["discount_tax"]) == ("50.00", "12.50")
    assert (order["coupon_lines"][0]["discount"], order["coupon_lines"][0]["discount_tax"]) == ("50", "12.5")
    assert order["shipping_lines"] == [] and order["fee_lines"] == []
    assert_adds_up(order)


def test_fixed_cart_coupons_share_the_cents_one_per_unit(control):
    order = control(
        "woocommerce/orders",
        {
            "line_items": [{"sku": "FILTER-100", "quantity": 1}, {"sku": "MUG-WHITE", "quantity": 2}],
            "coupon": {"code": "TI", "discount_type": "fixed_cart", "amount": "10.01"},
            "shipping": False,
        },
    )
    mugs_first = {
        i["sku"]: d(i["subtotal"]) + d(i["subtotal_tax"]) - d(i["total"]) - d(i["total_tax"])
        for i in order["line_items"]
    }
    # 1001 cents over 3 units: 333 each, then the last 2 cents one per unit from the dearest line (the mugs).
    assert mugs_first == {"MUG-WHITE": Decimal("6.68"), "FILTER-100": Decimal("3.33")}
    assert_adds_up(order)


THREE_RATES = [
    {"sku": "COFFEE-500", "quantity": 1},
    {"sku": "BOOK-DK", "quantity": 2},
    {"sku": "PAPER-KAFFE", "quantity": 1},
]


def test_a_worked_example_with_three_rates(control):
    order = control("woocommerce/orders", {"line_items": THREE_RATES, "shipping": True})
    coffee, books, paper = order["line_items"]
    assert (coffee["total"], coffee["total_tax"]) == ("103.96", "25.99")
    # 398.00 at 12.5 % holds 398.00 / 9 = 44.2222... of VAT: 44.22 shown, the net keeps the rest (353.7777...).
    assert {k: books[k] for k in ("tax_class", "subtotal", "subtotal_tax", "total", "total_tax", "taxes")} == {
        "tax_class": "reduced-rate",
        "subtotal": "353.78",
        "subtotal_tax": "44.22",
        "total": "353.78",
        "total_tax": "44.22",
        "taxes": [{"id": 3, "total": "44.222222", "subtotal": "44.222222"}],
    }
    assert (paper["total"], paper["total_tax"], paper["taxes"]) == (
        "35.00",
        "0.00",
        [{"id": 2, "total": "0", "subtotal": "0"}],
    )
    taxes = [
        (t["rate_id"], t["rate_code"], t["label"], t["tax_total"], t["shipping_tax_total"], t["rate_percent"])
        for t in order["tax_lines"]
    ]
    assert taxes == [
        (1, "DK-MOMS-1", "Moms", "25.99", "9.80", 25.0),
        (3, "DK-MOMS REDUCERET-1", "Moms reduceret", "44.22", "0.00", 12.5),
        (2, "DK-MOMS 0 %-1", "Moms 0 %", "0.00", "0.00", 0.0),
    ]
    assert (order["total"], order["total_tax"], order["cart_tax"]) == ("611.95", "80.01", "70.21")
    assert_adds_up(order)
    assert_typed(order)

    without = control("woocommerce/orders", {"prices_include_tax": False, "line_items": [{"sku": "BOOK-DK"}]})
    (book,) = without["line_items"]
    # 199.00 / 1.125 = 176.89 without VAT; 12.5 % on top is 22.11125, rounded half up to 22.11.
    assert (book["total"], book["total_tax"], book["taxes"][0]["total"]) == ("176.89", "22.11", "22.11125")
    assert_adds_up(without)


@pytest.mark.parametrize("included", [True, False])
def test_a_hundred_percent_coupon_leaves_zero_lines_that_name_their_rate(control, included):
    order = control(
        "woocommerce/orders",
        {
            "prices_include_tax": included,
            "line_items": THREE_RATES,
            "coupon": {"code": "GRATIS", "discount_type": "percent", "amount": "100"},
            "shipping": True,
        },
    )
    for item in order["line_items"]:
        assert (item["total"], item["total_tax"], item["price"]) == ("0.00", "0.00", 0)
        (tax,) = item["taxes"]
        assert tax["total"] == "0" and tax["id"] == {"": 1, "reduced-rate": 3, "zero-rate": 2}[item["tax_class"]]
        assert d(item["subtotal"]) > 0  # the price before the coupon is still there
    assert [(t["rate_id"], t["tax_total"]) for t in order["tax_lines"]] == [(1, "0.00"), (3, "0.00"), (2, "0.00")]
    # Only the shipping is left to pay: a percent coupon does not take it.
    assert (order["total"], order["total_tax"], order["shipping_tax"]) == ("49.00", "9.80", "9.80")
    coupon = order["coupon_lines"][0]
    assert (coupon["code"], coupon["discount_type"], coupon["nominal_amount"]) == ("GRATIS", "percent", 100.0)
    if included:
        # The coupon took every line's gross: 129.95 + 398.00 + 35.00 = 562.95, VAT included.
        assert (order["discount_total"], order["discount_tax"]) == ("492.74", "70.21")
    assert_adds_up(order)
    assert_typed(order)

    free = control(
        "woocommerce/orders",
        {
            "status": "pending",
            "line_items": THREE_RATES,
            "coupon": {"code": "GRATIS", "discount_type": "percent", "amount": 100},
            "shipping": False,
        },
    )
    assert (free["total"], free["total_tax"], free["needs_payment"]) == ("0.00", "0.00", False)


def test_a_store_older_than_woocommerce_3_7_states_no_tax_rate(sandbox, control):
    settings = control("config", {"woocommerce_legacy_tax_lines": True})
    assert settings["woocommerce_legacy_tax_lines"] is True
    order = control("woocommerce/orders", {"status": "processing", "line_items": THREE_RATES, "shipping": True})
    assert order["version"] == "3.6.5"
    # WC_Order_Item_Tax's rate_percent defaults to null: the field is there, without a value.
    assert [(t["rate_id"], t["rate_percent"]) for t in order["tax_lines"]] == [(1, None), (3, None), (2, None)]
    assert get(sandbox, f"orders/{order['id']}").json() == order
    assert_adds_up(order)
    # The rate is still to be had from a line's amounts.
    rates = {i["sku"]: round(d(i["total_tax"]) / d(i["total"]) * 100, 1) for i in order["line_items"]}
    assert rates == {"COFFEE-500": Decimal("25.0"), "BOOK-DK": Decimal("12.5"), "PAPER-KAFFE": Decimal("0.0")}
    refund = control(
        f"woocommerce/orders/{order['id']}/refunds", {"line_items": [{"sku": "BOOK-DK", "quantity": 1}]}
    )
    assert [(t["rate_id"], t["tax_total"], t["rate_percent"]) for t in refund["tax_lines"]] == [
        (3, "-22.11", None)
    ]

    control("config", {"woocommerce_legacy_tax_lines": False})
    newer = control("woocommerce/orders", {"line_items": THREE_RATES})
    assert [t["rate_percent"] for t in newer["tax_lines"]] == [25.0, 12.5, 0.0] and newer["version"] == "9.4.0"
    assert get(sandbox, f"orders/{order['id']}").json()["tax_lines"][0]["rate_percent"] is None  # made so, kept so
    bad = requests.post(f"{sandbox.url}/_sandbox/config", json={"woocommerce_legacy_tax_lines": "yes"}, timeout=5)
    assert bad.status_code == 400


@pytest.mark.parametrize("included", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_orders_add_up_exactly(seed, included):
    shop = WooCommerceState(seed=seed)
    orders = [shop.create_order({"prices_include_tax": included}) for _ in range(150)]
    for order in orders:
        assert_adds_up(order)
        assert_typed(order)
    kinds = {c["discount_type"] for o in orders for c in o["coupon_lines"]}
    assert kinds == {"percent", "fixed_cart"}
    assert any(o["fee_lines"] for o in orders) and any(not o["shipping_lines"] for o in orders)
    assert any(i["tax_class"] == "zero-rate" for o in orders for i in o["line_items"])
    # Some orders mix all three rates: 25 %, 12.5 % and 0 %.
    assert any({i["tax_class"] for i in o["line_items"]} == {"", "reduced-rate", "zero-rate"} for o in orders)
    assert any(i["variation_id"] for o in orders for i in o["line_items"])
    assert {o["status"] for o in orders} == {"pending", "processing", "on-hold", "completed"}
    # Real stores keep non-string values in meta_data; so does this one, on some orders.
    assert any(isinstance(m["value"], dict) for o in orders for m in o["meta_data"])
    zero = next(i for o in orders for i in o["line_items"] if i["tax_class"] == "zero-rate")
    assert (zero["total_tax"], zero["taxes"][0]["id"], zero["taxes"][0]["total"]) == ("0.00", 2, "0")


def test_every_amount_adds_up_over_http(control):
    for body in (
        {},
        {"prices_include_tax": False},
        {"status": "pending"},
        {"meta_data": [{"key": "n", "value": 3}]},
    ):
        order = control("woocommerce/orders", body)
        assert_adds_up(order)
        assert_typed(order)
    assert order["meta_data"][-1]["value"] == 3


def test_the_generator_stays_reproducible():
    moment = datetime(2025, 3, 1, 12, tzinfo=UTC)
    first, second = WooCommerceState(seed=5), WooCommerceState(seed=5)
    first.clock = second.clock = lambda: moment
    assert [first.create_order({}) for _ in range(10)] == [second.create_order({}) for _ in range(10)]
    assert [o["id"] for o in first.orders.values()] == list(range(5001, 5011))


# Lists -------------------------------------------------------------------------------------------------------------


def test_orders_page_with_wordpress_headers(sandbox, control):
    ids = [control("woocommerce/orders", {})["id"] for _ in range(12)]
    first = get(sandbox, "orders", per_page=5)
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("12", "3")
    # Newest first; orders made in the same second by id, descending.
    assert [o["id"] for o in first.json()] == ids[::-1][:5]
    assert first.headers["Link"] == f'<{api(sandbox)}/orders?per_page=5&page=2>; rel="next"'
    second = get(sandbox, "orders", per_page=5, page=2)
    assert second.headers["Link"] == (
        f'<{api(sandbox)}/orders?per_page=5&page=1>; rel="prev", <{api(sandbox)}/orders?per_page=5&page=3>; rel="next"'
    )
    last = get(sandbox, "orders", per_page=5, page=3)
    assert len(last.json()) == 2 and 'rel="next"' not in last.headers["Link"]
    past = get(sandbox, "orders", per_page=5, page=9)
    assert (past.status_code, past.json(), past.headers["X-WP-Total"]) == (200, [], "12")
    assert past.headers["Link"] == f'<{api(sandbox)}/orders?per_page=5&page=3>; rel="prev"'
    assert len(get(sandbox, "orders").json()) == 10  # per_page defaults to 10
    ascending = get(sandbox, "orders", orderby="id", order="asc", per_page=100)
    assert [o["id"] for o in ascending.json()] == ids
    assert "Link" not in ascending.headers


def test_parameters_are_checked_as_wordpress_does(sandbox):
    too_many = get(sandbox, "orders", per_page=101)
    assert too_many.status_code == 400
    assert too_many.json() == {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): per_page",
        "data": {
            "status": 400,
            "params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
        },
    }
    # Parameters are checked before permissions: a guest gets the same answer.
    assert get(sandbox, "orders", auth=None, per_page=0).json() == too_many.json()
    several = get(sandbox, "orders", per_page="many", page=0, modified_after="yesterday", status="shipped")
    assert several.json()["data"]["params"] == {
        "page": "page must be greater than or equal to 1",
        "per_page": "per_page is not of type integer.",
        "modified_after": "Invalid date.",
        "status": "status[0] is not one of any, trash, pending, processing, on-hold, completed, cancelled, refunded, failed, checkout-draft.",
    }
    assert several.json()["message"] == "Invalid parameter(s): page, per_page, modified_after, status"
    assert get(sandbox, "orders", dates_are_gmt="yes").json()["data"]["params"] == {
        "dates_are_gmt": "dates_are_gmt is not of type boolean."
    }


def test_status_filters_lists_and_any(sandbox, control):
    made = {
        status: control("woocommerce/orders", {"status": status})["id"]
        for status in ("pending", "processing", "completed")
    }
    assert {o["id"] for o in get(sandbox, "orders", status="processing,completed").json()} == {
        made["processing"],
        made["completed"],
    }
    both = requests.get(f"{api(sandbox)}/orders?status[]=pending&status[]=completed", auth=KEYS, timeout=5).json()
    assert {o["id"] for o in both} == {made["pending"], made["completed"]}
    assert len(get(sandbox, "orders", status="any").json()) == 3


def test_modified_after_on_the_sites_clock_or_gmt(sandbox, control):
    now = [datetime(2025, 1, 15, 10, 0, tzinfo=UTC)]
    sandbox.state.woocommerce.clock = lambda: now[0]
    winter = control("woocommerce/orders", {"status": "processing"})
    now[0] = datetime(2025, 7, 1, 10, 0, tzinfo=UTC)
    summer = control("woocommerce/orders", {"status": "processing"})
    assert (winter["date_created"], winter["date_created_gmt"]) == ("2025-01-15T11:00:00", "2025-01-15T10:00:00")
    assert (summer["date_modified"], summer["date_modified_gmt"]) == ("2025-07-01T12:00:00", "2025-07-01T10:00:00")
    assert (winter["date_paid"], winter["date_completed"]) == ("2025-01-15T11:00:00", None)

    def ids(**params):
        return [o["id"] for o in get(sandbox, "orders", orderby="id", order="asc", **params).json()]

    assert ids(modified_after="2025-01-15T10:30:00", dates_are_gmt="true") == [summer["id"]]
    # The site's clock: 11:00 in Copenhagen is after 10:30.
    assert ids(modified_after="2025-01-15T10:30:00") == [winter["id"], summer["id"]]
    # An offset makes it a moment: 10:30 UTC is 11:30 in Copenhagen.
    assert ids(modified_after="2025-01-15T10:30:00+00:00") == [summer["id"]]
    assert ids(modified_after="2025-01-15T10:00:00", dates_are_gmt="true") == [summer["id"]]  # strictly after
    assert ids(modified_before="2025-07-01T10:00:00", dates_are_gmt="1") == [winter["id"]]
    assert ids(after="2025-01-01T00:00:00Z", before="2025-02-01T00:00:00Z") == [winter["id"]]
    now[0] = datetime(2025, 7, 2, 8, 0, tzinfo=UTC)
    changed = control(f"woocommerce/orders/{winter['id']}", {"status": "completed"})
    assert (changed["date_modified_gmt"], changed["date_completed_gmt"]) == ("2025-07-02T08:00:00",) * 2
    assert changed["date_paid_gmt"] == "2025-01-15T10:00:00"
    assert ids(modified_after="2025-07-01T12:00:00", dates_are_gmt="true") == [winter["id"]]
    by_modified = get(sandbox, "orders", orderby="modified", order="asc").json()
    assert [o["id"] for o in by_modified] == [summer["id"], winter["id"]]


def test_site_time_follows_the_eu_rule():
    assert site_time(datetime(2025, 3, 30, 0, 59, tzinfo=UTC)) == datetime(2025, 3, 30, 1, 59)
    assert site_time(datetime(2025, 3, 30, 1, 0, tzinfo=UTC)) == datetime(2025, 3, 30, 3, 0)
    assert site_time(datetime(2025, 10, 26, 0, 59, tzinfo=UTC)) == datetime(2025, 10, 26, 2, 59)
    assert site_time(datetime(2025, 10, 26, 1, 0, tzinfo=UTC)) == datetime(2025, 10, 26, 2, 0)


# Keys --------------------------------------------------------------------------------------------------------------


def test_keys_by_http_basic_or_the_query_string(sandbox, control):
    control("woocommerce/orders", {})
    assert get(sandbox, "orders").status_code == 200
    keys = {"consumer_key": KEYS[0], "consumer_secret": KEYS[1]}
    assert get(sandbox, "orders", auth=None, **keys).status_code == 200
    # The query string's keys come first: they win over a Basic pair, good or bad.
    assert get(sandbox, "orders", auth=("ck_sandbox", "wrong"), **keys).status_code == 200
    refused = get(sandbox, "orders", consumer_key="ck_sandbox", consumer_secret="wrong")
    assert refused.json()["message"] == "Consumer secret is invalid."
    # Only the key without its secret in the query string: Basic is used.
    assert get(sandbox, "orders", consumer_key="ck_nobody").status_code == 200


def test_no_key_or_an_unknown_key_is_a_guest(sandbox, control):
    order = control("woocommerce/orders", {})
    for auth in (None, ("ck_nobody", "cs_nobody")):
        listed = get(sandbox, "orders", auth=auth)
        assert (listed.status_code, listed.json()) == (401, CANNOT_LIST)
        assert "WWW-Authenticate" not in listed.headers
        one = get(sandbox, f"orders/{order['id']}", auth=auth)
        assert one.json() == {
            "code": "woocommerce_rest_cannot_view",
            "message": "Sorry, you cannot view this resource.",
            "data": {"status": 401},
        }
        assert get(sandbox, "orders/999999", auth=auth).status_code == 401  # permission before the lookup
        edit = put(sandbox, "products/11", {"stock_quantity": 1}, auth=auth)
        assert (edit.status_code, edit.json()["code"]) == (401, "woocommerce_rest_cannot_edit")
        batch = requests.post(f"{api(sandbox)}/products/batch", auth=auth, json={"update": []}, timeout=5)
        assert batch.json() == {
            "code": "woocommerce_rest_cannot_batch",
            "message": "Sorry, you are not allowed to batch manipulate this resource.",
            "data": {"status": 401},
        }


def test_a_wrong_secret(sandbox):
    for path in ("orders", "orders/1", "no/such/route"):
        refused = get(sandbox, path, auth=("ck_sandbox", "cs_wrong"))
        assert refused.status_code == 401
        assert refused.json() == {
            "code": "woocommerce_rest_authentication_error",
            "message": "Consumer secret is invalid.",
            "data": {"status": 401},
        }
        assert refused.headers["WWW-Authenticate"] == REALM


def test_a_read_only_key_reads_but_cannot_write(sandbox):
    assert get(sandbox, "products", auth=READ_KEYS).status_code == 200
    written = put(sandbox, "products/11", {"stock_quantity": 3}, auth=READ_KEYS)
    no_write = {
        "code": "woocommerce_rest_authentication_error",
        "message": "The API key provided does not have write permissions.",
        "data": {"status": 401},
    }
    assert (written.status_code, written.json()) == (401, no_write)
    assert written.headers["WWW-Authenticate"] == REALM
    batch = requests.post(f"{api(sandbox)}/products/batch", auth=READ_KEYS, json={"update": []}, timeout=5)
    assert (batch.status_code, batch.json()) == (401, no_write)
    assert get(sandbox, "products/11").json()["stock_quantity"] == 40
    assert requests.post(f"{api(sandbox)}/products/batch", auth=KEYS, json={"update": []}, timeout=5).json() == []


def test_a_server_that_strips_the_authorization_header(sandbox, control):
    control("config", {"woocommerce_strips_authorization": True})
    stripped = get(sandbox, "orders")
    assert (stripped.status_code, stripped.json()) == (401, CANNOT_LIST)
    assert get(sandbox, "orders", auth=("ck_sandbox", "wrong")).status_code == 401  # not even read
    assert get(sandbox, "orders", auth=None, consumer_key=KEYS[0], consumer_secret=KEYS[1]).status_code == 200


def test_the_keys_are_settings(sandbox, control):
    control("config", {"woocommerce_consumer_key": "ck_other", "woocommerce_consumer_secret": "cs_other"})
    assert get(sandbox, "orders").status_code == 401
    assert get(sandbox, "orders", auth=("ck_other", "cs_other")).status_code == 200
    bad = requests.post(f"{sandbox.url}/_sandbox/config", json={"woocommerce_plain_permalinks": "yes"}, timeout=5)
    assert bad.status_code == 400
    bad = requests.post(f"{sandbox.url}/_sandbox/config", json={"woocommerce_webhook_url": "ftp://x"}, timeout=5)
    assert bad.status_code == 400


# Routing -----------------------------------------------------------------------------------------------------------


def test_plain_permalinks(sandbox, control):
    for _ in range(3):
        control("woocommerce/orders", {})
    assert get(sandbox, "orders").status_code == 200
    assert requests.get(f"{sandbox.url}/woocommerce/?rest_route=/wc/v3/orders", auth=KEYS, timeout=5).ok
    control("config", {"woocommerce_plain_permalinks": True})
    pretty = get(sandbox, "orders")
    assert pretty.status_code == 404
    assert pretty.headers["Content-Type"] == "text/html; charset=UTF-8" and "<html" in pretty.text
    plain = requests.get(
        f"{sandbox.url}/woocommerce/", params={"rest_route": "/wc/v3/orders", "per_page": 2}, auth=KEYS, timeout=5
    )
    assert plain.status_code == 200 and plain.headers["X-WP-Total"] == "3"
    site = f"{sandbox.url}/woocommerce"
    assert plain.headers["Link"] == f'<{site}/?rest_route=/wc/v3/orders&per_page=2&page=2>; rel="next"'
    assert (
        plain.json()[0]["_links"]["self"][0]["href"] == f"{site}/?rest_route=/wc/v3/orders/{plain.json()[0]['id']}"
    )
    keys = {"rest_route": "/wc/v3/orders", "consumer_key": KEYS[0], "consumer_secret": KEYS[1]}
    assert requests.get(f"{site}/", params=keys, timeout=5).status_code == 200
    root = requests.get(f"{site}/", params={"rest_route": "/"}, timeout=5).json()
    assert "wc/v3" in root["namespaces"]


def test_the_store_is_a_website_too(sandbox):
    home = requests.get(f"{sandbox.url}/woocommerce/", timeout=5)
    assert home.status_code == 200 and home.headers["Content-Type"].startswith("text/html")
    assert home.headers["Link"] == f'<{sandbox.url}/woocommerce/wp-json/>; rel="https://api.w.org/"'
    assert requests.get(f"{sandbox.url}/woocommerce/wp-admin/", timeout=5).status_code == 404
    index = get(sandbox, "").json()
    assert index["namespace"] == "wc/v3" and "/wc/v3/orders/(?P<id>[\\d]+)" in index["routes"]
    assert (
        requests.get(f"{sandbox.url}/woocommerce/wp-json/", timeout=5).json()["timezone_string"]
        == "Europe/Copenhagen"
    )


def test_what_is_not_found(sandbox, control):
    order = control("woocommerce/orders", {})
    assert get(sandbox, "orders/4999").json() == {
        "code": "woocommerce_rest_shop_order_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 404},
    }
    assert get(sandbox, "products/999").json() == {
        "code": "woocommerce_rest_product_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 404},
    }
    no_route = {
        "code": "rest_no_route",
        "message": "No route was found matching the URL and request method",
        "data": {"status": 404},
    }
    assert get(sandbox, "customers").json() == no_route
    deleted = requests.delete(f"{api(sandbox)}/orders/{order['id']}", auth=KEYS, timeout=5)
    assert (deleted.status_code, deleted.json()) == (404, no_route)
    assert (
        get(sandbox, f"orders/{order['id']}/refunds/1").json()["code"]
        == "woocommerce_rest_shop_order_refund_invalid_id"
    )
    assert put(sandbox, "products/999", {"stock_quantity": 1}).status_code == 400  # an update of no product


# Refunds -----------------------------------------------------------------------------------------------------------


def test_a_refund_of_a_line_and_the_shipping(sandbox, control, hooks):
    order = control(
        "woocommerce/orders",
        {"status": "processing", "line_items": [{"sku": "COFFEE-500", "quantity": 2}], "shipping": True},
    )
    assert (order["total"], order["total_tax"]) == ("308.90", "61.78")
    hooks(1)
    line = order["line_items"][0]
    made = control_post(
        sandbox,
        f"orders/{order['id']}/refunds",
        {"line_items": [{"id": line["id"], "quantity": 1}], "shipping": True, "reason": "Knust"},
    )
    assert made.status_code == 201, made.text
    refund = made.json()
    assert_shaped_like(DOCUMENTED_REFUND, refund)
    assert list(refund)[:12] == [*DOCUMENTED_REFUND, "shipping_lines", "tax_lines", "fee_lines"]
    # One of two coffees: half the line (103.96 + 25.99), and the shipping (39.20 + 9.80).
    assert (refund["amount"], refund["reason"], refund["refunded_by"]) == ("178.95", "Knust", 1)
    assert refund["refunded_payment"] is (order["payment_method"] == "stripe")  # a card refund goes back by itself
    (item,) = refund["line_items"]
    assert {
        k: item[k] for k in ("quantity", "subtotal", "subtotal_tax", "total", "total_tax", "taxes", "price")
    } == {
        "quantity": -1,
        "subtotal": "-103.96",
        "subtotal_tax": "-25.99",
        "total": "-103.96",
        "total_tax": "-25.99",
        "taxes": [{"id": 1, "total": "-25.99", "subtotal": "-25.99"}],
        "price": -103.96,
    }
    assert [(m["key"], m["value"]) for m in item["meta_data"]] == [("_refunded_item_id", str(line["id"]))]
    (shipping,) = refund["shipping_lines"]
    assert (shipping["total"], shipping["total_tax"], shipping["taxes"]) == (
        "-39.20",
        "-9.80",
        [{"id": 1, "total": "-9.8", "subtotal": ""}],
    )
    assert shipping["meta_data"][0]["value"] == str(order["shipping_lines"][0]["id"])
    assert [(t["rate_id"], t["tax_total"], t["shipping_tax_total"]) for t in refund["tax_lines"]] == [
        (1, "-25.99", "-9.80")
    ]
    assert refund["fee_lines"] == []

    ((headers, body),) = hooks(1)
    changed = get(sandbox, f"orders/{order['id']}").json()
    assert headers["x-wc-webhook-topic"] == "order.updated" and json.loads(body) == changed
    assert changed["refunds"] == [{"id": refund["id"], "reason": "Knust", "total": "-178.95"}]
    assert changed["status"] == "processing" and changed["date_modified_gmt"] > order["date_modified_gmt"]
    assert changed["total"] == order["total"]  # refunds do not change the order's own totals
    listed = get(sandbox, f"orders/{order['id']}/refunds")
    assert listed.headers["X-WP-Total"] == "1" and listed.json() == [refund]
    assert get(sandbox, f"orders/{order['id']}/refunds/{refund['id']}").json() == refund

    rest = control_post(
        sandbox, f"orders/{order['id']}/refunds", {"line_items": [{"sku": "COFFEE-500", "quantity": 1}]}
    )
    assert rest.json()["amount"] == "129.95"  # 308.90 - 178.95: nothing left
    done = get(sandbox, f"orders/{order['id']}").json()
    assert done["status"] == "refunded"
    assert [r["total"] for r in done["refunds"]] == ["-129.95", "-178.95"]  # newest first
    again = control_post(sandbox, f"orders/{order['id']}/refunds", {"amount": "1.00"})
    assert (again.status_code, again.json()) == (
        422,
        {
            "code": "woocommerce_rest_cannot_create_order_refund",
            "message": "Invalid refund amount.",
            "data": {"status": 422},
        },
    )
    more = control_post(
        sandbox, f"orders/{order['id']}/refunds", {"line_items": [{"id": line["id"], "quantity": 1}]}
    )
    assert more.status_code == 422
    assert control_post(sandbox, f"orders/{order['id']}/refunds", {"shipping": True}).status_code == 422


def test_an_amount_only_refund(sandbox, control):
    order = coffee_order(control)
    refund = control(f"woocommerce/orders/{order['id']}/refunds", {"amount": "10.00", "reason": "Rabat"})
    assert (refund["amount"], refund["line_items"], refund["tax_lines"], refund["shipping_lines"]) == (
        "10.00",
        [],
        [],
        [],
    )
    assert get(sandbox, f"orders/{order['id']}").json()["refunds"][0]["total"] == "-10.00"
    negative = control_post(sandbox, f"orders/{order['id']}/refunds", {"amount": "-1"})
    assert (negative.status_code, negative.json()["code"]) == (400, "woocommerce_rest_invalid_order_refund")
    too_much = control_post(sandbox, f"orders/{order['id']}/refunds", {"amount": "299.61"})
    assert too_much.status_code == 422
    assert control(f"woocommerce/orders/{order['id']}/refunds", {"amount": "299.60"})["amount"] == "299.60"
    assert get(sandbox, f"orders/{order['id']}").json()["status"] == "refunded"
    assert control_post(sandbox, "orders/4999/refunds", {"amount": "1"}).status_code == 404


def test_an_amount_only_refund_is_announced(sandbox, control, hooks):
    order = coffee_order(control)
    hooks(1)
    made = control_post(sandbox, f"orders/{order['id']}/refunds", {"amount": "50.00", "reason": "goodwill"})
    assert made.status_code == 201, made.text
    refund = made.json()
    assert (refund["amount"], refund["reason"]) == ("50.00", "goodwill")
    assert refund["line_items"] == refund["shipping_lines"] == refund["tax_lines"] == refund["fee_lines"] == []
    ((headers, body),) = hooks(1)
    changed = get(sandbox, f"orders/{order['id']}").json()
    assert headers["x-wc-webhook-topic"] == "order.updated" and json.loads(body) == changed
    assert changed["refunds"] == [{"id": refund["id"], "reason": "goodwill", "total": "-50.00"}]
    assert (changed["status"], changed["total"]) == ("processing", "309.60")  # 259.60 is left to refund
    assert get(sandbox, f"orders/{order['id']}/refunds").json() == [refund]


def test_refunding_all_of_a_line_gives_back_exactly_the_line(control):
    order = control(
        "woocommerce/orders",
        {
            "line_items": [{"sku": "FILTER-100", "quantity": 3}],
            "coupon": {"code": "K", "amount": 7},
            "shipping": False,
        },
    )
    (line,) = order["line_items"]
    one = {"id": line["id"], "quantity": 1}
    pieces = [
        control(f"woocommerce/orders/{order['id']}/refunds", {"line_items": entries})
        for entries in ([one, one], [one])  # a line twice in one refund counts as two units
    ]
    lines = [item for piece in pieces for item in piece["line_items"]]
    assert sum(item["quantity"] for item in lines) == -3
    assert sum(d(item["total"]) for item in lines) == -d(line["total"])
    assert sum(d(item["total_tax"]) for item in lines) == -d(line["total_tax"])
    assert sum(d(piece["amount"]) for piece in pieces) == d(order["total"])


# The trash ---------------------------------------------------------------------------------------------------------


def test_trash_and_restore(sandbox, control, hooks):
    order = control("woocommerce/orders", {"status": "on-hold"})
    hooks(1)
    trashed = control(f"woocommerce/orders/{order['id']}/trash")
    assert trashed["status"] == "trash"
    ((headers, body),) = hooks(1)
    assert (headers["x-wc-webhook-topic"], headers["x-wc-webhook-event"], body) == (
        "order.deleted",
        "deleted",
        f'{{"id":{order["id"]}}}'.encode(),
    )
    assert get(sandbox, "orders").json() == []
    assert [o["id"] for o in get(sandbox, "orders", status="trash").json()] == [order["id"]]
    assert get(sandbox, f"orders/{order['id']}").json()["status"] == "trash"
    assert control_post(sandbox, f"orders/{order['id']}/trash").status_code == 410
    restored = control(f"woocommerce/orders/{order['id']}/restore")
    assert restored["status"] == "on-hold"
    ((headers, body),) = hooks(1)
    assert headers["x-wc-webhook-topic"] == "order.restored" and json.loads(body) == restored
    assert control_post(sandbox, f"orders/{order['id']}/restore").status_code == 400


# Webhooks ----------------------------------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put(({name.lower(): value for name, value in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooks(sandbox, control, receiver):
    """WooCommerce webhooks as (lower-cased headers, raw body), in the order they arrive, each signature checked."""
    url = f"http://127.0.0.1:{receiver.server_port}/hooks"
    control("config", {"woocommerce_webhook_url": url, "woocommerce_webhook_secret": SECRET})

    def take(count):
        found = []
        for _ in range(count):
            headers, body = receiver.received.get(timeout=5)
            if "x-wc-webhook-signature" in headers:
                expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
                assert hmac.compare_digest(headers["x-wc-webhook-signature"], expected)
            found.append((headers, body))
        return found

    return take


def test_webhooks_are_signed_over_the_bytes_sent(sandbox, control, hooks):
    order = control("woocommerce/orders", {"status": "pending"})
    control(f"woocommerce/orders/{order['id']}", {"status": "processing"})
    (created, created_body), (updated, updated_body) = hooks(2)
    assert json.loads(created_body) == order
    assert json.loads(updated_body) == get(sandbox, f"orders/{order['id']}").json()
    for headers, topic, webhook_id in ((created, "order.created", "1"), (updated, "order.updated", "2")):
        assert headers["x-wc-webhook-topic"] == topic
        assert (headers["x-wc-webhook-resource"], headers["x-wc-webhook-event"]) == tuple(topic.split("."))
        assert headers["x-wc-webhook-id"] == webhook_id
        assert headers["x-wc-webhook-source"] == f"{sandbox.url}/woocommerce/"
        assert headers["user-agent"] == "WooCommerce/9.4.0 Hookshot (WordPress/6.7)"
        assert headers["content-type"] == "application/json"
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-wc-webhook-delivery-id"])
    assert created["x-wc-webhook-delivery-id"] != updated["x-wc-webhook-delivery-id"]
    # WordPress's JSON: "/" escaped, no spaces; JSON re-encoded by the receiver would not match the signature.
    assert b"\\/woocommerce\\/wp-json\\/wc\\/v3\\/orders" in created_body and b'": ' not in created_body
    assert json.dumps(json.loads(created_body)).encode() != created_body

    deadline = time.monotonic() + 5
    while sandbox.summary()["woocommerce"]["webhooks_sent"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_every_delivery_has_its_own_delivery_id(sandbox, control, hooks):
    example = payload("woocommerce_order_727.json")
    for _ in range(2):
        control("woocommerce/webhooks/order.updated", example)
    (first, first_body), (second, second_body) = hooks(2)
    assert first_body == second_body and json.loads(first_body) == example
    assert first["x-wc-webhook-delivery-id"] != second["x-wc-webhook-delivery-id"]
    assert first["x-wc-webhook-id"] == second["x-wc-webhook-id"] == "2"
    bad = control_post(sandbox, "webhooks/order.shipped", example)
    assert bad.status_code == 400


def test_the_ping_is_a_form_without_a_signature(sandbox, control, hooks):
    assert control("woocommerce/ping", {"webhook_id": 7}) == {"pinged": 7}
    ((headers, body),) = hooks(1)
    assert body == b"webhook_id=7"
    assert not [name for name in headers if name.startswith("x-wc-")]
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["user-agent"] == "WooCommerce/9.4.0 Hookshot (WordPress/6.7)"


def test_failed_deliveries_are_counted(sandbox, control):
    with ThreadingHTTPServer(("127.0.0.1", 0), Receiver) as closed:
        port = closed.server_port
    control(
        "config", {"woocommerce_webhook_url": f"http://127.0.0.1:{port}/", "woocommerce_webhook_secret": SECRET}
    )
    control("woocommerce/orders", {})
    deadline = time.monotonic() + 5
    while sandbox.summary()["woocommerce"]["webhooks_failed"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sandbox.summary()["woocommerce"]["webhooks_sent"] == 0


# Products and stock ------------------------------------------------------------------------------------------------


def test_products_and_variations(sandbox):
    products = get(sandbox, "products", per_page=100)
    assert products.headers["X-WP-Total"] == "7"
    by_sku = {p["sku"]: p for p in products.json()}
    assert set(by_sku) == {"COFFEE-500", "MUG-WHITE", "PAPER-KAFFE", "GRINDER", "TSHIRT", "FILTER-100", "BOOK-DK"}
    assert (by_sku["COFFEE-500"]["price"], by_sku["COFFEE-500"]["regular_price"]) == ("129.95", "129.95")
    assert (by_sku["PAPER-KAFFE"]["tax_class"], by_sku["COFFEE-500"]["tax_class"]) == ("zero-rate", "")
    assert (by_sku["BOOK-DK"]["id"], by_sku["BOOK-DK"]["tax_class"]) == (20, "reduced-rate")
    grinder = by_sku["GRINDER"]
    assert (grinder["manage_stock"], grinder["stock_quantity"], grinder["stock_status"]) == (
        False,
        None,
        "instock",
    )
    shirt = by_sku["TSHIRT"]
    assert (shirt["type"], shirt["variations"], shirt["regular_price"]) == ("variable", [16, 17, 18], "")
    assert shirt["attributes"][0]["options"] == ["S", "M", "L"]

    (found,) = get(sandbox, "products", sku="COFFEE-500").json()
    assert found["id"] == 11
    # A SKU search finds variations too, in product form with their parent.
    (variation,) = get(sandbox, "products", sku="TSHIRT-M").json()
    assert (variation["id"], variation["type"], variation["parent_id"], variation["name"]) == (
        17,
        "variation",
        15,
        "T-shirt med logo - M",
    )
    assert {p["sku"] for p in get(sandbox, "products", sku="TSHIRT-S,MUG-WHITE").json()} == {
        "TSHIRT-S",
        "MUG-WHITE",
    }
    assert get(sandbox, "products", sku="TSHIRT-X").json() == []
    assert [p["sku"] for p in get(sandbox, "products", type="variable").json()] == ["TSHIRT"]

    variations = get(sandbox, "products/15/variations")
    assert variations.headers["X-WP-Total"] == "3"
    medium = get(sandbox, "products/15/variations/17").json()
    assert (medium["sku"], medium["stock_quantity"], medium["manage_stock"], medium["attributes"]) == (
        "TSHIRT-M",
        15,
        True,
        [{"id": 1, "name": "Størrelse", "option": "M"}],
    )
    assert "type" not in medium and "name" not in medium and medium["image"] is None
    assert get(sandbox, "products/11/variations/17").status_code == 404
    assert get(sandbox, "products/17").json()["type"] == "variation"


def test_a_sku_search_is_exact_and_finds_variations(sandbox):
    def found(sku):
        answer = get(sandbox, "products", sku=sku, orderby="id", order="asc")
        return [(p["sku"], p["id"], p["type"], p["parent_id"]) for p in answer.json()]

    # Exact: not the variations whose SKUs begin with it, nor a part of a SKU.
    assert found("TSHIRT") == [("TSHIRT", 15, "variable", 0)]
    assert found("COFFEE") == found("500") == found("TSHIRT-") == []
    assert found("BOOK-DK") == [("BOOK-DK", 20, "simple", 0)]
    # A comma list is any of its SKUs; variations come in product form, with their parent.
    assert found("TSHIRT-L,BOOK-DK,NOPE") == [("TSHIRT-L", 18, "variation", 15), ("BOOK-DK", 20, "simple", 0)]
    # WooCommerce splits on the commas only: a space after one belongs to the next SKU.
    assert found("COFFEE-500, MUG-WHITE") == [("COFFEE-500", 11, "simple", 0)]
    sizes = get(sandbox, "products", sku="TSHIRT-S,TSHIRT-M")
    assert sizes.headers["X-WP-Total"] == "2" and {p["parent_id"] for p in sizes.json()} == {15}


def test_stock_is_written_only_where_it_is_managed(sandbox, control, hooks):
    now = [datetime(2025, 5, 1, 8, 0, tzinfo=UTC)]
    sandbox.state.woocommerce.clock = lambda: now[0]
    written = put(sandbox, "products/11", {"stock_quantity": 7})
    assert written.status_code == 200
    assert (written.json()["stock_quantity"], written.json()["date_modified_gmt"]) == (7, "2025-05-01T08:00:00")
    ((headers, body),) = hooks(1)
    assert (
        headers["x-wc-webhook-topic"] == "product.updated"
        and json.loads(body) == get(sandbox, "products/11").json()
    )
    assert (
        get(sandbox, "products", modified_after="2025-05-01T07:00:00", dates_are_gmt="true").json()[0]["id"] == 11
    )

    ignored = put(sandbox, "products/14", {"stock_quantity": 5}).json()
    assert (ignored["manage_stock"], ignored["stock_quantity"]) == (False, None)
    managed = put(sandbox, "products/14", {"manage_stock": True, "stock_quantity": 5}).json()
    assert (managed["manage_stock"], managed["stock_quantity"], managed["stock_status"]) == (True, 5, "instock")
    released = put(sandbox, "products/14", {"manage_stock": False, "stock_quantity": 9}).json()
    assert (released["manage_stock"], released["stock_quantity"]) == (False, None)
    hooks(3)

    now[0] += timedelta(minutes=5)
    sold_out = requests.put(
        f"{api(sandbox)}/products/15/variations/18", auth=KEYS, json={"stock_quantity": 0}, timeout=5
    )
    assert (sold_out.json()["stock_quantity"], sold_out.json()["stock_status"]) == (0, "outofstock")
    # The variation is saved, then its parent (announced too, with a new date_modified).
    saved = [(headers["x-wc-webhook-topic"], json.loads(body)["id"]) for headers, body in hooks(2)]
    assert saved == [("product.updated", 18), ("product.updated", 15)]
    assert get(sandbox, "products/15").json()["date_modified_gmt"] == "2025-05-01T08:05:00"

    invalid = put(sandbox, "products/11", {"stock_quantity": "lots", "manage_stock": "maybe"})
    assert invalid.json() == {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): manage_stock, stock_quantity",
        "data": {
            "status": 400,
            "params": {
                "manage_stock": "manage_stock is not of type boolean.",
                "stock_quantity": "stock_quantity is not of type integer.",
            },
        },
    }
    assert put(sandbox, "products/11", {"stock_quantity": "3"}).json()["stock_quantity"] == 3


def test_batch_updates(sandbox):
    answer = requests.post(
        f"{api(sandbox)}/products/batch",
        auth=KEYS,
        json={"update": [{"id": 11, "stock_quantity": 3}, {"id": 999, "stock_quantity": 1}]},
        timeout=5,
    )
    assert answer.status_code == 200
    updated, failed = answer.json()["update"]
    assert (updated["id"], updated["stock_quantity"]) == (11, 3)
    assert failed == {
        "id": 999,
        "error": {
            "code": "woocommerce_rest_product_invalid_id",
            "message": "Invalid ID.",
            "data": {"status": 400},
        },
    }
    assert list(answer.json()) == ["update"]  # only the lists asked for
    variations = requests.post(
        f"{api(sandbox)}/products/15/variations/batch",
        auth=KEYS,
        json={"update": [{"id": 16, "stock_quantity": 2}]},
        timeout=5,
    )
    assert variations.json()["update"][0]["stock_quantity"] == 2
    too_many = requests.post(
        f"{api(sandbox)}/products/batch", auth=KEYS, json={"update": [{"id": 11}] * 101}, timeout=5
    )
    assert (too_many.status_code, too_many.json()) == (
        413,
        {
            "code": "woocommerce_rest_request_entity_too_large",
            "message": "Unable to accept more than 100 items for this request.",
            "data": {"status": 413},
        },
    )
    created = requests.post(
        f"{api(sandbox)}/products/batch",
        auth=KEYS,
        json={"create": [{"name": "Termokande", "sku": "THERMOS", "regular_price": "299.00"}]},
        timeout=5,
    ).json()["create"][0]
    assert (created["sku"], created["id"], created["type"]) == ("THERMOS", 5001, "simple")


def test_tax_rates(sandbox):
    rates = get(sandbox, "taxes")
    assert rates.headers["X-WP-Total"] == "3"
    standard, zero, reduced = rates.json()
    assert {k: standard[k] for k in ("id", "country", "rate", "name", "shipping", "class", "compound")} == {
        "id": 1,
        "country": "DK",
        "rate": "25.0000",
        "name": "Moms",
        "shipping": True,
        "class": "standard",
        "compound": False,
    }
    assert (zero["id"], zero["rate"], zero["class"], zero["name"]) == (2, "0.0000", "zero-rate", "Moms 0 %")
    assert get(sandbox, "taxes/2").json()["rate"] == "0.0000"
    assert (reduced["id"], reduced["rate"], reduced["class"], reduced["name"], reduced["shipping"]) == (
        3,
        "12.5000",
        "reduced-rate",
        "Moms reduceret",
        False,
    )


# The control API ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"status": "shipped"},
        {"line_items": [{"sku": "NOPE"}]},
        {"line_items": [{"sku": "TSHIRT"}]},
        {"line_items": [{"sku": "MUG-WHITE", "quantity": 0}]},
        {"coupon": {"code": "X", "discount_type": "fixed_product", "amount": 1}},
        {"fees": [{"name": "Gebyr", "total": "1.234"}]},
        {"shipping": "yes"},
        {"prices_include_tax": "no"},
        {"country": "DK"},
    ],
)
def test_bad_overrides_are_refused(sandbox, body):
    refused = control_post(sandbox, "orders", body)
    assert refused.status_code == 400 and refused.json()["error"]


def test_control_changes_and_their_refusals(sandbox, control):
    order = control("woocommerce/orders", {"status": "pending"})
    assert (order["date_paid"], order["needs_payment"], order["is_editable"]) == (None, True, True)
    paid = control(f"woocommerce/orders/{order['id']}", {"status": "processing", "customer_note": "Tak!"})
    assert (paid["status"], paid["customer_note"], paid["needs_payment"]) == ("processing", "Tak!", False)
    assert paid["date_paid"] is not None
    assert control_post(sandbox, f"orders/{order['id']}", {"total": "1.00"}).status_code == 400
    assert control_post(sandbox, "orders/4999", {"status": "completed"}).status_code == 404
    product = control("woocommerce/products", {"name": "Termokande", "sku": "THERMOS", "regular_price": "299.00"})
    assert (product["id"], product["sku"], product["stock_quantity"]) == (5002, "THERMOS", 0)
    assert control_post(sandbox, "products", {"sku": "THERMOS"}).json()["code"] == "product_invalid_sku"
    bought = control("woocommerce/orders", {"line_items": [{"sku": "THERMOS", "quantity": 1}], "shipping": False})
    assert bought["total"] == "299.00"


def test_the_python_control_api(sandbox):
    order = sandbox.woocommerce_create_order(
        {"status": "completed", "line_items": [{"sku": "PAPER-KAFFE"}], "shipping": True}
    )
    assert (order["total"], order["total_tax"], order["tax_lines"][0]["rate_code"]) == (
        "84.00",
        "9.80",
        "DK-MOMS 0 %-1",
    )
    assert sandbox.woocommerce_update_order(1, {}) is None
    assert sandbox.woocommerce_refund_order(1, {}) is None
    assert sandbox.woocommerce_trash_order(1) is None
    refund = sandbox.woocommerce_refund_order(order["id"], {"line_items": [{"sku": "PAPER-KAFFE", "quantity": 1}]})
    assert refund["amount"] == "35.00" and refund["_links"]["up"][0]["href"].endswith(f"/orders/{order['id']}")
    assert sandbox.woocommerce_trash_order(order["id"])["status"] == "trash"
    variable = sandbox.woocommerce_create_product(
        {
            "name": "Forklæde",
            "variations": [
                {"sku": "APRON-S", "option": "S"},
                {"sku": "APRON-L", "option": "L", "stock_quantity": 4},
            ],
        }
    )
    assert variable["type"] == "variable" and len(variable["variations"]) == 2
    with pytest.raises(ValueError):
        sandbox.woocommerce_ping()  # no address to ping
    sandbox.woocommerce_post_webhook("order.updated", {"id": 42, "line_items": [], "status": "processing"})
    assert sandbox.state.woocommerce.orders[42]["status"] == "processing"
    summary = sandbox.summary()["woocommerce"]
    assert (summary["orders"], summary["refunds"], summary["products"], summary["variations"]) == (2, 1, 8, 5)


def test_the_order_timer_makes_woocommerce_orders_and_refunds(sandbox, control):
    control("config", {"woocommerce_order_interval": 0.05, "refund_every": 2})
    deadline = time.monotonic() + 10
    while sandbox.summary()["woocommerce"]["refunds"] < 1 or sandbox.summary()["woocommerce"]["orders"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    control("config", {"woocommerce_order_interval": 0})
    settled = sandbox.summary()["woocommerce"]["orders"]
    time.sleep(0.2)
    assert sandbox.summary()["woocommerce"]["orders"] == settled
    assert sandbox.summary()["shopify"]["orders"] == 0  # the Shopify timer keeps its own interval (0)
    orders = list(sandbox.state.woocommerce.orders.values())
    for order in orders:
        assert_adds_up(order)
    # A payment pending is paid by the next order's time: only the latest order may still wait for it.
    assert not [order["number"] for order in orders[:-1] if order["status"] == "pending"]


def test_a_reset_brings_the_seeded_store_back(sandbox, control):
    first = control("woocommerce/orders", {})
    put(sandbox, "products/11", {"stock_quantity": 1})
    state = control("reset")
    assert state["woocommerce"]["orders"] == 0
    again = control("woocommerce/orders", {})
    timeless = (
        "date_created",
        "date_created_gmt",
        "date_modified",
        "date_modified_gmt",
        "date_paid",
        "date_paid_gmt",
    )
    timeless += ("date_completed", "date_completed_gmt")
    assert {k: v for k, v in again.items() if k not in timeless} == {
        k: v for k, v in first.items() if k not in timeless
    }
    assert get(sandbox, "products/11").json()["stock_quantity"] == 40
