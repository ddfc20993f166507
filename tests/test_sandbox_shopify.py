"""The fake Shopify is as strict as the real one and produces what it produces: the leaky bucket, cursor pagination,
orders of several countries, refunds, cancellations, locations and stock. A server on a free port per test, driven
over real HTTP with `requests`; the documented examples are in tests/payloads/shopify_*_450789469.json."""

import base64
import hashlib
import hmac
import json
import queue
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import orders
from sandbox.orders import COUNTRIES, Refused, make_order
from sandbox.shopify import LeakyBucket, ShopifyState
from tests.test_sandbox import assert_consistent, d

SHOPIFY = {"X-Shopify-Access-Token": "shpat_sandbox"}
API = "shopify/admin/api/2025-01"
PAYLOADS = Path(__file__).parent / "payloads"
PAGINATION_ERROR = "{0} cannot be passed when page_info is present. See https://shopify.dev/api/usage/pagination-rest for more information."
BIG = 2**53
LOCATION_FIELDS = [
    *("id", "name", "address1", "address2", "city", "zip", "province", "country", "phone", "created_at"),
    *("updated_at", "country_code", "country_name", "province_code", "legacy", "active", "admin_graphql_api_id"),
    *("localized_country_name", "localized_province_name"),
]


def get(sandbox, path, **params):
    return requests.get(f"{sandbox.url}/{API}/{path}", headers=SHOPIFY, params=params, timeout=5)


def refund(sandbox, order_id, body):
    return requests.post(f"{sandbox.url}/_sandbox/shopify/orders/{order_id}/refunds", json=body, timeout=5)


def payload(name):
    return json.loads((PAYLOADS / name).read_text())


def danish_order(control, **overrides):
    """A paid Danish order: 3 U-locks at 349.00 with a 10.00 code (D = 1037.00, VAT inside 207.40), shipping 49.00
    (VAT inside 9.80): total_price 1086.00, total_tax 217.20."""
    body = {
        "country": "DK",
        "financial_status": "paid",
        "line_items": [{"sku": "LOCK-U", "quantity": 3}],
        "shipping_lines": [{"price": "49.00", "title": "PostNord"}],
        "discount_codes": [{"code": "TEN", "amount": "10.00"}],
        **overrides,
    }
    order = control("shopify/orders", body)
    assert (order["total_price"], order["total_tax"]) == ("1086.00", "217.20")
    return order


def kind(value):
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def assert_shaped_like(documented, ours, path="$"):
    """Every key of the documented object is in ours, with the same JSON type (or null on either side), down
    through objects and the first element of lists of objects."""
    for key, value in documented.items():
        assert key in ours, f"{path}.{key} is missing"
        if kind(value) and kind(ours[key]):
            assert kind(value) == kind(ours[key]), f"{path}.{key}: {kind(ours[key])}, documented {kind(value)}"
        if isinstance(value, dict) and isinstance(ours[key], dict):
            assert_shaped_like(value, ours[key], f"{path}.{key}")
        if isinstance(value, list) and value and isinstance(value[0], dict) and ours[key]:
            assert_shaped_like(value[0], ours[key][0], f"{path}.{key}[0]")


def money_set(amount):
    return {
        "shop_money": {"amount": amount, "currency_code": "DKK"},
        "presentment_money": {"amount": amount, "currency_code": "DKK"},
    }


# Documented shapes -------------------------------------------------------------------------------------------------


def test_the_documented_examples_are_kept_verbatim():
    order = payload("shopify_order_450789469.json")
    assert (order["id"], order["name"], order["total_price"]) == (450789469, "#1001", "598.94")
    assert order["refunds"][0]["id"] == 509562969
    # The one identity the example keeps (its subtotal_price, total_discount and refund transaction do not add up).
    lines = sum(d(item["price"]) * item["quantity"] for item in order["line_items"])
    shipping = sum(d(line["discounted_price"]) for line in order["shipping_lines"])
    assert lines - d(order["total_discounts"]) + d(order["total_tax"]) + shipping == d(order["total_price"])
    line_refund = payload("shopify_refund_450789469.json")
    assert (line_refund["id"], line_refund["order_id"]) == (509562969, 450789469)
    assert [item["subtotal"] for item in line_refund["refund_line_items"]] == [195.66, 195.67]
    shipping_refund = payload("shopify_refund_shipping_450789469.json")
    assert shipping_refund["order_adjustments"][0]["amount"] == "-5.00"
    assert shipping_refund["transactions"][0]["amount"] == "5.00"


@pytest.mark.parametrize("country", list(COUNTRIES))
def test_orders_have_every_documented_field(sandbox, control, country):
    # Like the example: a discount code, shipping, and a taxable line (and here one that is not).
    basket = [{"sku": "HELMET-M", "quantity": 2}, {"sku": "BOOK-GUIDE", "quantity": 1}]
    order = control(
        "shopify/orders",
        {
            "country": country,
            "financial_status": "paid",
            "line_items": basket,
            "shipping_lines": [{"price": "49.00"}],
            "discount_codes": [{"code": "TEN", "amount": "10.00"}],
        },
    )
    documented = payload("shopify_order_450789469.json")
    assert_shaped_like({key: value for key, value in documented.items() if key != "refunds"}, order)
    assert order["shipping_address"]["country_code"] == country
    assert order["taxes_included"] is COUNTRIES[country].taxes_included

    line = order["line_items"][0]
    made = refund(sandbox, order["id"], {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]})
    assert made.status_code == 201, made.text
    assert_shaped_like(payload("shopify_refund_450789469.json"), made.json())
    changed = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert_shaped_like(documented["refunds"][0], changed["refunds"][0])


def test_shipping_refunds_have_the_documented_shape(sandbox, control):
    order = danish_order(control)
    made = refund(sandbox, order["id"], {"shipping": {"amount": "5.00"}}).json()
    assert_shaped_like(payload("shopify_refund_shipping_450789469.json"), made)


# The leaky bucket --------------------------------------------------------------------------------------------------


def test_the_bucket_holds_40_and_leaks_2_a_second(sandbox):
    now = [1000.0]
    sandbox.state.shopify.bucket.clock = lambda: now[0]  # time stands still until the test moves it
    with requests.Session() as session:
        session.headers.update(SHOPIFY)
        for n in range(1, 41):
            answer = session.get(f"{sandbox.url}/{API}/shop.json", timeout=5)
            assert answer.status_code == 200
            assert answer.headers["X-Shopify-Shop-Api-Call-Limit"] == f"{n}/40"
        throttled = session.get(f"{sandbox.url}/{API}/orders.json", timeout=5)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "2.0"
        assert throttled.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
        assert throttled.json() == {
            "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
        }
        now[0] += 0.5  # one request leaked out
        again = session.get(f"{sandbox.url}/{API}/shop.json", timeout=5)
        assert again.status_code == 200
        assert again.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
        assert session.get(f"{sandbox.url}/{API}/shop.json", timeout=5).status_code == 429
        now[0] += 10
        assert (
            session.get(f"{sandbox.url}/{API}/shop.json", timeout=5).headers["X-Shopify-Shop-Api-Call-Limit"]
            == "21/40"
        )


def test_the_bucket_in_real_time(sandbox):
    passed, started = 0, time.monotonic()
    with requests.Session() as session:
        session.headers.update(SHOPIFY)
        while (answer := session.get(f"{sandbox.url}/{API}/shop.json", timeout=5)).status_code == 200:
            passed += 1
            assert passed < 100
        elapsed = time.monotonic() - started
        # 40 quick calls pass (plus what leaked meanwhile), the next one is throttled.
        assert 40 <= passed <= 40 + 2 * elapsed + 1
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "2.0"
        assert answer.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
        time.sleep(0.6)
        assert session.get(f"{sandbox.url}/{API}/shop.json", timeout=5).status_code == 200


def test_the_bucket_size_and_leak_rate_are_settings(sandbox, control):
    assert (
        control("config", {"shopify_bucket_size": 5, "shopify_leak_per_second": 0.5})["shopify_bucket_size"] == 5
    )
    sandbox.state.shopify.bucket.clock = lambda: 1.0
    assert [get(sandbox, "shop.json").status_code for _ in range(6)] == [200] * 5 + [429]
    throttled = get(sandbox, "shop.json")
    assert throttled.headers["X-Shopify-Shop-Api-Call-Limit"] == "5/5"
    assert throttled.json()["errors"].startswith("Exceeded 0.5 calls per second for api client.")
    for bad in ({"shopify_bucket_size": 0}, {"shopify_leak_per_second": -1}, {"shopify_bucket_size": 2.5}):
        assert requests.post(f"{sandbox.url}/_sandbox/config", json=bad, timeout=5).status_code == 400


def test_the_bucket_leaks_as_documented():
    now = [0.0]
    bucket = LeakyBucket(lambda: now[0])
    assert all(bucket.take(40, 2) for _ in range(39))
    assert bucket.header(40) == "39/40"
    now[0] = 10.0  # "if the header displays 39/40 requests, then after ... ten seconds, the header displays 19/40"
    bucket.take(40, 2)
    assert bucket.header(40) == "20/40"  # 19, plus this request
    assert bucket.take(400, 20)  # a Plus plan is a matter of settings


# Cursor pagination -------------------------------------------------------------------------------------------------


def test_page_info_allows_only_limit_and_fields(sandbox, control):
    for _ in range(3):
        control("shopify/orders")
    first = get(sandbox, "orders.json", status="any", limit=1)
    url = first.links["next"]["url"]

    mixed = requests.get(url, headers=SHOPIFY, params={"status": "any"}, timeout=5)
    assert mixed.status_code == 400
    assert mixed.json() == {"errors": {"status": PAGINATION_ERROR.format("status")}}
    both = requests.get(url, headers=SHOPIFY, params={"updated_at_min": "2020-01-01", "ids": "1"}, timeout=5)
    assert both.json() == {"errors": {name: PAGINATION_ERROR.format(name) for name in ("updated_at_min", "ids")}}

    # limit and fields may change from page to page; the filters stay those of the first request.
    second = requests.get(url.replace("limit=1", "limit=2"), headers=SHOPIFY, params={"fields": "id"}, timeout=5)
    assert second.status_code == 200
    assert [list(order) for order in second.json()["orders"]] == [["id"], ["id"]]
    assert "next" not in second.links and "previous" in second.links

    for cursor in ("nonsense", url.split("page_info=")[1][:-4] + "AAAA"):
        bad = get(sandbox, "orders.json", page_info=cursor)
        assert bad.status_code == 400
        assert bad.json() == {"errors": {"page_info": "Invalid value."}}


def test_limit_is_at_most_250(sandbox):
    assert get(sandbox, "orders.json", limit=250).status_code == 200
    refused = get(sandbox, "orders.json", limit=251)
    assert refused.status_code == 400
    assert refused.json() == {"errors": "Limit exceeds maximum limit of 250"}
    assert get(sandbox, "orders.json", limit="many").status_code == 400


def test_previous_links_go_back(sandbox, control):
    created = [control("shopify/orders")["id"] for _ in range(5)]
    page = get(sandbox, "orders.json", limit=2)
    pages = [page]
    while "next" in page.links:
        page = requests.get(page.links["next"]["url"], headers=SHOPIFY, timeout=5)
        pages.append(page)
    back = requests.get(pages[-1].links["previous"]["url"], headers=SHOPIFY, timeout=5)
    assert [o["id"] for o in back.json()["orders"]] == [o["id"] for o in pages[1].json()["orders"]]
    assert [o["id"] for p in pages for o in p.json()["orders"]] == sorted(created)


def test_orders_list_open_orders_unless_asked(sandbox, control):
    kept, cancelled, pending = (
        control("shopify/orders", {"financial_status": s}) for s in ("paid", "paid", "pending")
    )
    control(f"shopify/orders/{cancelled['id']}/cancel", {"reason": "customer"})

    def ids(**params):
        answer = get(sandbox, "orders.json", **params)
        assert answer.status_code == 200, answer.text
        return sorted(order["id"] for order in answer.json()["orders"])

    assert ids() == sorted([kept["id"], pending["id"]])
    assert ids(status="any") == sorted([kept["id"], cancelled["id"], pending["id"]])
    assert ids(status="cancelled") == ids(status="closed") == [cancelled["id"]]
    assert ids(status="any", financial_status="pending") == [pending["id"]]
    assert ids(status="any", financial_status="unpaid") == [pending["id"]]
    assert ids(status="any", ids=f"{kept['id']},{cancelled['id']}") == sorted([kept["id"], cancelled["id"]])
    assert ids(status="any", since_id=cancelled["id"]) == [pending["id"]]
    assert ids(created_at_min="2999-01-01T00:00:00Z") == []
    assert get(sandbox, "orders.json", status="archived").status_code == 400
    assert get(sandbox, "orders.json", created_at_min="soon").status_code == 400


# Realistic orders --------------------------------------------------------------------------------------------------


def test_ids_are_json_integers_above_2_53(sandbox, control):
    order = danish_order(control)
    answer = refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 1}]})
    made = answer.json()
    raw = get(sandbox, f"orders/{order['id']}.json").text + answer.text
    ids = [
        order["id"],
        order["customer"]["id"],
        *(line["id"] for line in order["line_items"]),
        *(line["id"] for line in order["shipping_lines"]),
        made["id"],
        made["refund_line_items"][0]["id"],
        made["transactions"][0]["id"],
        made["transactions"][0]["parent_id"],
    ]
    assert len(set(ids)) == len(ids)
    for each in ids:
        assert isinstance(each, int) and each > BIG
        assert int(float(each)) != each  # a double cannot hold it
        assert f'"id": {each},' in raw or f'"parent_id": {each},' in raw  # a JSON integer, not a string


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    country=st.sampled_from([None, *COUNTRIES]),
    taxes_included=st.sampled_from([None, True, False]),
)
def test_generated_orders_add_up_in_every_country(seed, country, taxes_included):
    shop = ShopifyState(seed=seed)
    overrides = {
        key: value
        for key, value in (("country", country), ("taxes_included", taxes_included))
        if value is not None
    }
    order = make_order(random.Random(seed), 1001, shop.products, **overrides)
    assert_consistent(order)
    if taxes_included is not None:
        assert order["taxes_included"] is taxes_included
    for name in ("subtotal_price", "total_discounts", "total_price", "total_tax"):
        assert order[f"current_{name}"] == order[name]
        assert order[f"current_{name}_set"] == order[f"{name}_set"]
    assert all(line["current_quantity"] == line["quantity"] for line in order["line_items"])
    for line in order["line_items"]:
        manual = sum(d(a["amount"]) for a in line["discount_allocations"] if a["discount_application_index"] == 0)
        has_manual = order["discount_applications"] and order["discount_applications"][0]["type"] == "manual"
        assert d(line["total_discount"]) == (manual if has_manual else 0)


def shipping_left(shop, order):
    refunded = [rsl for made in shop.refunds.get(order["id"], []) for rsl in made["refund_shipping_lines"]]
    return sum(d(line["discounted_price"]) for line in order["shipping_lines"]) - sum(
        d(rsl["subtotal_amount_set"]["shop_money"]["amount"]) for rsl in refunded
    )


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), country=st.sampled_from(list(COUNTRIES)), data=st.data())
def test_refunds_add_up(seed, country, data):
    """However an order is refunded, in steps, the current_* fields are the originals less the refunds, and
    refunding everything gives back exactly total_price."""
    shop = ShopifyState(seed=seed)
    order = shop.create_order({"country": country, "financial_status": "paid"})
    total = d(order["total_price"])
    while any(line["current_quantity"] for line in order["line_items"]) or d(order["current_total_price"]):
        items = [
            {"line_item_id": line["id"], "quantity": data.draw(st.integers(1, line["current_quantity"]))}
            for line in order["line_items"]
            if line["current_quantity"] and data.draw(st.booleans())
        ]
        shipping = data.draw(st.sampled_from([None, {"full_refund": True}, {"amount": "1.00"}]))
        if shipping == {"amount": "1.00"} and shipping_left(shop, order) < 1:
            shipping = None
        if not items and (shipping is None or not shipping_left(shop, order)):
            items = [
                {"line_item_id": li["id"], "quantity": 1} for li in order["line_items"] if li["current_quantity"]
            ]
            shipping = {"full_refund": True}
        made = shop.refund_order(order, {"refund_line_items": items, "shipping": shipping})
        # The customer gets the lines (with their tax when it came on top) and the shipping with its tax.
        taxes_on_top = not order["taxes_included"]
        back = sum(d(i["subtotal"]) + taxes_on_top * d(i["total_tax"]) for i in made["refund_line_items"])
        back -= sum(d(a["amount"]) + d(a["tax_amount"]) for a in made["order_adjustments"])
        assert [d(t["amount"]) for t in made["transactions"]] == ([back] if back else [])
        refunded = sum(d(t["amount"]) for r in order["refunds"] for t in r["transactions"])
        assert d(order["current_total_price"]) == total - refunded
        current = d(order["current_subtotal_price"]) + shipping_left(shop, order)
        assert d(order["current_total_price"]) == current + taxes_on_top * d(order["current_total_tax"])
        assert d(order["current_subtotal_price"]) == sum(
            d(line["price"]) * line["current_quantity"] for line in order["line_items"]
        ) - d(order["current_total_discounts"])
        assert order["financial_status"] in ("partially_refunded", "refunded")
    assert order["financial_status"] == "refunded"
    assert sum(d(t["amount"]) for r in order["refunds"] for t in r["transactions"]) == total
    for name in ("current_total_price", "current_subtotal_price", "current_total_tax", "current_total_discounts"):
        assert order[name] == "0.00"


def test_orders_are_taxed_where_they_ship(control):
    de = control(
        "shopify/orders",
        {"country": "DE", "line_items": [{"sku": "HELMET-M", "quantity": 1}], "shipping_lines": []},
    )
    assert de["taxes_included"] is True
    assert de["line_items"][0]["price"] == "549.95"  # the catalogue price stays
    assert [(t["title"], t["rate"], t["price"]) for t in de["tax_lines"]] == [("MwSt.", 0.19, "87.81")]
    assert de["total_price"] == "549.95"

    us = control(
        "shopify/orders",
        {
            "country": "US",
            "line_items": [{"sku": "HELMET-M", "quantity": 2}],
            "shipping_lines": [{"price": "399.00"}],
        },
    )
    assert us["taxes_included"] is False
    assert us["line_items"][0]["price"] == "439.96"  # 549.95 without the Danish VAT
    assert [(t["title"], t["rate"], t["price"]) for t in us["tax_lines"]] == [
        ("State Tax", 0.06, "52.80"),  # 879.92 * 6 %
        ("County Tax", 0.025, "22.00"),
    ]
    assert us["shipping_lines"][0]["tax_lines"] == []  # this shop does not tax shipping in the US
    assert us["total_price"] == "1353.72"  # 879.92 + 399.00 + 74.80 on top
    assert us["billing_address"]["province_code"] == "KY"

    no = control("shopify/orders", {"country": "NO", "line_items": [{"sku": "HELMET-M", "quantity": 1}]})
    assert (no["taxes_included"], no["tax_lines"], no["total_tax"]) == (False, [], "0.00")
    assert no["line_items"][0]["tax_lines"] == []


def test_country_and_taxes_included_are_chosen_at_creation(sandbox, control):
    refused = requests.post(f"{sandbox.url}/_sandbox/shopify/orders", json={"country": "FR"}, timeout=5)
    assert refused.status_code == 400
    assert "country" in refused.json()["error"]
    order = control("shopify/orders", {"country": "DK", "taxes_included": False})
    assert order["taxes_included"] is False
    assert_consistent(order)
    changed = requests.post(
        f"{sandbox.url}/_sandbox/shopify/orders/{order['id']}", json={"country": "SE"}, timeout=5
    )
    assert changed.status_code == 400


def test_most_generated_orders_are_danish():
    shop = ShopifyState(seed=3)
    countries = [shop.create_order({})["shipping_address"]["country_code"] for _ in range(400)]
    assert 0.6 < countries.count("DK") / len(countries) < 0.8
    assert set(countries) == set(COUNTRIES)


# Refunds -----------------------------------------------------------------------------------------------------------


def test_a_partial_line_refund(sandbox, control):
    order = danish_order(control)
    line = order["line_items"][0]
    answer = refund(
        sandbox,
        order["id"],
        {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}], "note": "Too big"},
    )
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["order_id"], made["note"], made["restock"]) == (order["id"], "Too big", False)
    (item,) = made["refund_line_items"]
    # One of three: discount 10.00 / 3 -> 3.33; subtotal 349.00 - 3.33, with the VAT inside (taxes included).
    assert (item["line_item_id"], item["quantity"], item["restock_type"]) == (line["id"], 1, "no_restock")
    assert (item["subtotal"], item["total_tax"]) == (345.67, 69.13)  # numbers, as documented
    assert (item["subtotal_set"], item["total_tax_set"]) == (money_set("345.67"), money_set("69.13"))
    assert item["line_item"]["id"] == line["id"] and "current_quantity" not in item["line_item"]
    (transaction,) = made["transactions"]
    assert (transaction["kind"], transaction["status"], transaction["amount"]) == ("refund", "success", "345.67")
    assert made["order_adjustments"] == [] and made["refund_shipping_lines"] == []

    changed = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert changed["financial_status"] == "partially_refunded"
    assert changed["updated_at"] > order["updated_at"]
    assert changed["line_items"][0]["current_quantity"] == 2
    assert changed["line_items"][0]["quantity"] == 3
    assert (changed["total_price"], changed["total_tax"]) == ("1086.00", "217.20")  # the originals stay
    assert changed["current_subtotal_price"] == "691.33"
    assert changed["current_total_discounts"] == "6.67"
    assert changed["current_total_tax"] == "148.07"
    assert changed["current_total_price"] == "740.33"  # 1086.00 - 345.67
    assert changed["current_total_price_set"] == money_set("740.33")
    (embedded,) = changed["refunds"]
    assert "refund_shipping_lines" not in embedded and "return" not in embedded
    assert "total_unsettled_set" not in embedded["transactions"][0]
    assert embedded["refund_line_items"][0]["line_item"]["current_quantity"] == 2

    # The rest of the line gives back exactly what is left of it.
    rest = refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 2}]}).json()
    assert (rest["refund_line_items"][0]["subtotal"], rest["refund_line_items"][0]["total_tax"]) == (
        691.33,
        138.27,
    )

    listed = get(sandbox, f"orders/{order['id']}/refunds.json").json()
    assert listed == {"refunds": [made, rest]}
    assert get(sandbox, f"orders/{order['id']}/refunds/{made['id']}.json").json() == {"refund": made}
    assert get(sandbox, f"orders/{order['id']}/refunds/1.json").status_code == 404


def test_a_refund_with_taxes_on_top(sandbox, control):
    order = control(
        "shopify/orders",
        {
            "country": "US",
            "financial_status": "paid",
            "line_items": [{"sku": "PUMP-MINI", "quantity": 2}],
            "shipping_lines": [],
        },
    )
    assert order["line_items"][0]["price"] == "103.96"  # 129.95 / 1.25
    made = refund(sandbox, order["id"], {"refund_line_items": [{"sku": "PUMP-MINI", "quantity": 1}]}).json()
    (item,) = made["refund_line_items"]
    # The subtotal excludes the tax when taxes are excluded; the customer gets both back.
    assert (item["subtotal"], item["total_tax"]) == (103.96, 8.84)  # (12.48 + 5.20) / 2 = 8.84
    assert made["transactions"][0]["amount"] == "112.80"
    changed = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert d(changed["current_total_price"]) == d(order["total_price"]) - d("112.80")


def test_a_shipping_refund(sandbox, control):
    order = danish_order(control)
    made = refund(sandbox, order["id"], {"shipping": {"amount": "20.00"}}).json()
    # 20.00 of the 49.00 shipping, with its VAT inside: 9.80 * 20 / 49 = 4.00.
    (adjustment,) = made["order_adjustments"]
    assert (adjustment["kind"], adjustment["reason"]) == ("shipping_refund", "Shipping refund")
    assert (adjustment["amount"], adjustment["tax_amount"]) == ("-16.00", "-4.00")
    assert (adjustment["order_id"], adjustment["refund_id"]) == (order["id"], made["id"])
    assert made["transactions"][0]["amount"] == "20.00"
    (shipping_line,) = made["refund_shipping_lines"]
    assert shipping_line["shipping_line_id"] == order["shipping_lines"][0]["id"]
    assert shipping_line["subtotal_amount_set"] == money_set("20.00")
    assert made["refund_line_items"] == []

    too_much = refund(sandbox, order["id"], {"shipping": {"amount": "29.01"}})
    assert too_much.status_code == 422
    assert list(too_much.json()["errors"]) == ["shipping.amount"]
    rest = refund(sandbox, order["id"], {"shipping": {"full_refund": True, "amount": "5.00"}}).json()
    assert rest["transactions"][0]["amount"] == "5.00"  # amount takes precedence over full_refund
    rest = refund(sandbox, order["id"], {"shipping": {"full_refund": True}}).json()
    assert (rest["order_adjustments"][0]["amount"], rest["order_adjustments"][0]["tax_amount"]) == (
        "-19.20",
        "-4.80",
    )
    changed = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert changed["current_total_price"] == changed["current_subtotal_price"] == "1037.00"
    assert changed["current_total_tax"] == "207.40"
    assert changed["financial_status"] == "partially_refunded"
    nothing_left = refund(sandbox, order["id"], {"shipping": {"full_refund": True}})
    assert nothing_left.status_code == 422


def test_refunding_more_than_is_left_is_refused(sandbox, control):
    order = danish_order(control)
    line_id = order["line_items"][0]["id"]
    over = refund(sandbox, order["id"], {"refund_line_items": [{"line_item_id": line_id, "quantity": 4}]})
    assert over.status_code == 422
    assert over.json() == {
        "errors": {"refund_line_items.quantity": ["cannot refund more items than were purchased"]}
    }
    assert refund(sandbox, order["id"], {"refund_line_items": [{"line_item_id": line_id, "quantity": 2}]}).ok
    twice = {"refund_line_items": [{"line_item_id": line_id, "quantity": 1}, {"sku": "LOCK-U", "quantity": 1}]}
    assert refund(sandbox, order["id"], twice).status_code == 422
    for body in (
        {"refund_line_items": [{"line_item_id": 1, "quantity": 1}]},
        {"refund_line_items": [{"line_item_id": line_id, "quantity": 0}]},
        {"refund_line_items": [{"line_item_id": line_id, "quantity": 1, "restock_type": "legacy_restock"}]},
        {
            "refund_line_items": [
                {"line_item_id": line_id, "quantity": 1, "restock_type": "return", "location_id": 9}
            ]
        },
        {"shipping": {"amount": "-1"}},
        {},
    ):
        refused = refund(sandbox, order["id"], body)
        assert refused.status_code == 422, body
        assert "errors" in refused.json()
    unchanged = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert len(unchanged["refunds"]) == 1 and unchanged["line_items"][0]["current_quantity"] == 1
    assert refund(sandbox, 1, {"refund_line_items": []}).status_code == 404
    assert (
        requests.post(
            f"{sandbox.url}/_sandbox/shopify/orders/{order['id']}/refunds", data="{", timeout=5
        ).status_code
        == 400
    )


def test_everything_refunded_is_refunded(sandbox, control):
    order = danish_order(control)
    made = refund(
        sandbox,
        order["id"],
        {
            "refund_line_items": [{"sku": "LOCK-U", "quantity": 3, "restock_type": "return"}],
            "shipping": {"full_refund": True},
        },
    ).json()
    assert made["transactions"][0]["amount"] == "1086.00"
    assert made["restock"] is True
    assert (
        made["refund_line_items"][0]["location_id"]
        == get(sandbox, "shop.json").json()["shop"]["primary_location_id"]
    )
    changed = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert changed["financial_status"] == "refunded"
    assert (changed["current_total_price"], changed["current_total_tax"]) == ("0.00", "0.00")
    assert (
        refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 1}]}).status_code == 422
    )


def test_an_unpaid_order_refunds_no_money(sandbox, control):
    order = danish_order(control, financial_status="pending")
    assert order["total_outstanding"] == "1086.00"
    made = refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 1}]}).json()
    assert made["transactions"] == []
    changed = get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert changed["financial_status"] == "pending"
    assert changed["total_outstanding"] == changed["current_total_price"] == "740.33"


def test_an_order_with_refunds_is_not_repriced(sandbox, control):
    order = danish_order(control)
    assert refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 1}]}).ok
    repriced = requests.post(
        f"{sandbox.url}/_sandbox/shopify/orders/{order['id']}", json={"shipping_lines": []}, timeout=5
    )
    assert repriced.status_code == 400
    noted = control(f"shopify/orders/{order['id']}", {"note": "called"})
    assert noted["current_total_price"] == "740.33"


# Webhooks ----------------------------------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def hooks(sandbox, control):
    """Webhooks signed with "s3cret", as (topic, headers, body) in the order they arrive."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    control("config", {"webhook_url": f"http://127.0.0.1:{server.server_port}/hooks", "webhook_secret": "s3cret"})

    def take(count):
        found = []
        for _ in range(count):
            headers, body = server.received.get(timeout=5)
            expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
            assert hmac.compare_digest(headers["X-Shopify-Hmac-Sha256"], expected)
            found.append((headers["X-Shopify-Topic"], headers, json.loads(body)))
        return found

    yield take
    server.shutdown()
    server.server_close()


def test_a_refund_posts_refunds_create_then_orders_updated(sandbox, control, hooks):
    order = danish_order(control)
    ((topic, _, body),) = hooks(1)
    assert topic == "orders/create" and body == order  # the bare order

    made = refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 1}]}).json()
    (created, created_headers, refund_body), (updated, updated_headers, order_body) = hooks(2)
    assert (created, updated) == ("refunds/create", "orders/updated")
    assert refund_body == made  # the bare refund, as the refund endpoint shows it
    assert order_body == get(sandbox, f"orders/{order['id']}.json").json()["order"]
    assert created_headers["X-Shopify-Event-Id"] != updated_headers["X-Shopify-Event-Id"]
    assert created_headers["X-Shopify-Shop-Domain"] == "sandbox.myshopify.com"


def test_cancelling_a_paid_order_with_a_refund(sandbox, control, hooks):
    order = danish_order(control)
    assert refund(sandbox, order["id"], {"refund_line_items": [{"sku": "LOCK-U", "quantity": 1}]}).ok
    hooks(3)
    cancelled = control(f"shopify/orders/{order['id']}/cancel", {"reason": "customer", "refund": True})
    assert cancelled["cancel_reason"] == "customer"
    assert cancelled["cancelled_at"] == cancelled["closed_at"] == cancelled["updated_at"]
    assert cancelled["financial_status"] == "refunded"
    assert cancelled["current_total_price"] == "0.00"
    assert [line["current_quantity"] for line in cancelled["line_items"]] == [0]
    last = cancelled["refunds"][-1]
    assert [(item["quantity"], item["restock_type"]) for item in last["refund_line_items"]] == [(2, "cancel")]
    assert last["transactions"][0]["amount"] == "740.33"  # all that was left, shipping included

    events = hooks(3)
    assert [topic for topic, _, _ in events] == ["refunds/create", "orders/cancelled", "orders/updated"]
    assert events[0][2]["id"] == last["id"]
    assert events[1][2] == cancelled  # the bare order

    again = requests.post(f"{sandbox.url}/_sandbox/shopify/orders/{order['id']}/cancel", json={}, timeout=5)
    assert again.status_code == 422


def test_cancelling_without_a_refund(sandbox, control, hooks):
    paid = danish_order(control)
    pending = danish_order(control, financial_status="pending")
    hooks(2)
    kept = control(f"shopify/orders/{paid['id']}/cancel", {"reason": "inventory"})
    assert (kept["financial_status"], kept["refunds"], kept["current_total_price"]) == ("paid", [], "1086.00")
    voided = control(f"shopify/orders/{pending['id']}/cancel", {"reason": "declined", "refund": True})
    assert (voided["financial_status"], voided["refunds"], voided["total_outstanding"]) == ("voided", [], "0.00")
    assert sorted(topic for topic, _, _ in hooks(4)) == ["orders/cancelled"] * 2 + ["orders/updated"] * 2

    bad = requests.post(
        f"{sandbox.url}/_sandbox/shopify/orders/{danish_order(control)['id']}/cancel",
        json={"reason": "bored"},
        timeout=5,
    )
    assert bad.status_code == 422
    assert bad.json() == {"errors": {"reason": ["is not included in the list"]}}
    assert requests.post(f"{sandbox.url}/_sandbox/shopify/orders/1/cancel", json={}, timeout=5).status_code == 404


def test_the_python_control_api(sandbox):
    order = sandbox.create_order(
        {"country": "SE", "financial_status": "paid", "line_items": [{"sku": "BIKE-RED", "quantity": 2}]}
    )
    assert sandbox.refund_order(1, {}) is None
    assert sandbox.cancel_order(1) is None
    with pytest.raises(Refused):
        sandbox.refund_order(order["id"], {})
    line = order["line_items"][0]
    made = sandbox.refund_order(order["id"], {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]})
    assert made["order_id"] == order["id"]
    cancelled = sandbox.cancel_order(order["id"], "customer", refund=True)
    assert cancelled["financial_status"] == "refunded"
    assert len(sandbox.state.shopify.refunds[order["id"]]) == 2


# Locations, stock, variants, fields --------------------------------------------------------------------------------


def test_locations_and_the_primary_one(sandbox):
    shop = get(sandbox, "shop.json").json()["shop"]
    locations = get(sandbox, "locations.json").json()["locations"]
    assert [location["name"] for location in locations] == ["Warehouse", "Shop front"]
    assert shop["primary_location_id"] == locations[0]["id"]
    assert list(locations[0]) == LOCATION_FIELDS  # as documented, and no "primary" flag
    one = get(sandbox, f"locations/{locations[1]['id']}.json").json()["location"]
    assert one["name"] == "Shop front" and "localized_country_name" not in one
    assert get(sandbox, "shop.json", fields="id,primary_location_id").json() == {
        "shop": {"id": shop["id"], "primary_location_id": shop["primary_location_id"]}
    }


def test_inventory_levels_per_location(sandbox):
    warehouse, front = (location["id"] for location in get(sandbox, "locations.json").json()["locations"])
    products = get(sandbox, "products.json", fields="id,variants").json()["products"]
    variants = {v["sku"]: v for p in products for v in p["variants"]}
    helmet, bike = variants["HELMET-M"], variants["BIKE-RED"]
    assert helmet["inventory_quantity"] == 20  # 16 in the warehouse, 4 at the shop front

    levels = get(
        sandbox,
        "inventory_levels.json",
        inventory_item_ids=f"{helmet['inventory_item_id']},{bike['inventory_item_id']}",
    )
    assert levels.status_code == 200
    found = {
        (level["inventory_item_id"], level["location_id"]): level["available"]
        for level in levels.json()["inventory_levels"]
    }
    assert found == {
        (helmet["inventory_item_id"], warehouse): 16,
        (helmet["inventory_item_id"], front): 4,
        (bike["inventory_item_id"], warehouse): 8,
        (bike["inventory_item_id"], front): 0,
    }
    level = levels.json()["inventory_levels"][0]
    assert set(level) == {"inventory_item_id", "location_id", "available", "updated_at", "admin_graphql_api_id"}

    at_front = get(sandbox, "inventory_levels.json", location_ids=str(front), limit=4)
    assert len(at_front.json()["inventory_levels"]) == 4
    rest = requests.get(at_front.links["next"]["url"], headers=SHOPIFY, timeout=5).json()["inventory_levels"]
    assert len(rest) == 2 and all(each["location_id"] == front for each in rest)

    neither = get(sandbox, "inventory_levels.json")
    assert neither.status_code == 422
    assert "inventory_item_ids, location_ids, or both" in neither.json()["errors"]
    too_many = get(sandbox, "inventory_levels.json", inventory_item_ids=",".join(str(n) for n in range(51)))
    assert too_many.status_code == 422
    assert get(sandbox, "inventory_levels.json", location_ids=str(front), limit=251).status_code == 400

    url = f"{sandbox.url}/{API}/inventory_levels/set.json"
    body = {"location_id": front, "inventory_item_id": helmet["inventory_item_id"], "available": 7}
    answer = requests.post(url, headers=SHOPIFY, json=body, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["inventory_level"]["available"] == 7
    assert get(sandbox, f"variants/{helmet['id']}.json").json()["variant"]["inventory_quantity"] == 23
    for wrong in ({**body, "location_id": 1}, {**body, "inventory_item_id": 1}, {**body, "location_id": [front]}):
        refused = requests.post(url, headers=SHOPIFY, json=wrong, timeout=5)
        assert refused.status_code == 422
        assert refused.json() == {"errors": {"inventory_item_id": ["is invalid"]}}
    variant = next(v for p in sandbox.state.shopify.products for v in p["variants"] if v["id"] == helmet["id"])
    variant["inventory_management"] = None  # Shopify does not track this one's stock
    untracked = requests.post(url, headers=SHOPIFY, json=body, timeout=5)
    assert untracked.status_code == 422
    assert untracked.json() == {"errors": ["Inventory item does not have inventory tracking enabled"]}


def test_variants_by_id(sandbox):
    product = get(sandbox, "products.json", limit=1).json()["products"][0]
    variant = product["variants"][0]
    assert get(sandbox, f"variants/{variant['id']}.json").json() == {"variant": variant}
    assert get(sandbox, f"variants/{variant['id']}.json", fields="id,sku,inventory_item_id").json() == {
        "variant": {"id": variant["id"], "sku": variant["sku"], "inventory_item_id": variant["inventory_item_id"]}
    }
    assert get(sandbox, "variants/1.json").json() == {"errors": "Not Found"}
    assert get(sandbox, "variants.json").status_code == 404  # no such list in the REST API


def test_fields_keep_only_the_named_fields(sandbox, control):
    first = get(sandbox, "products.json", fields="id,variants", limit=4)
    assert all(list(product) == ["id", "variants"] for product in first.json()["products"])
    url = first.links["next"]["url"]
    assert "fields=id,variants" in url
    rest = requests.get(url, headers=SHOPIFY, timeout=5).json()["products"]
    assert len(rest) == 2 and all(list(product) == ["id", "variants"] for product in rest)
    order = control("shopify/orders")
    assert get(sandbox, f"orders/{order['id']}.json", fields="id, name").json() == {
        "order": {"id": order["id"], "name": order["name"]}
    }


def test_the_generator_stays_reproducible():
    first, second = ShopifyState(seed=5), ShopifyState(seed=5)
    one = [first.create_order({}) for _ in range(5)]
    two = [second.create_order({}) for _ in range(5)]

    def timeless(order):
        return {
            k: v for k, v in order.items() if k not in ("created_at", "updated_at", "processed_at", "customer")
        }

    assert [timeless(o) for o in one] == [timeless(o) for o in two]
    assert orders.ORDER_ID_BASE > BIG
