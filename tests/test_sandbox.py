"""The sandbox over real HTTP: a server on a free port per test, driven with `requests`. No database needed."""

import base64
import hashlib
import hmac
import json
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sandbox.orders import COUNTRIES, make_order
from sandbox.shopify import ShopifyState

SHOPIFY = {"X-Shopify-Access-Token": "shpat_sandbox"}
ECONOMIC = {"X-AppSecretToken": "sandbox-app-secret", "X-AgreementGrantToken": "sandbox-grant"}


def shop_get(sandbox, path, **params):
    return requests.get(
        f"{sandbox.url}/shopify/admin/api/2025-01/{path}", headers=SHOPIFY, params=params, timeout=5
    )


def books(sandbox, method, path, body=None, **params):
    url = f"{sandbox.url}/economic/{path}"
    return requests.request(method, url, headers=ECONOMIC, json=body, params=params, timeout=5)


def d(text):
    return Decimal(str(text))


def cents(amount):
    return amount.quantize(Decimal("0.01"), "ROUND_HALF_UP")


def discounted(item):
    """A line's price * quantity less its discount allocations."""
    return d(item["price"]) * item["quantity"] - sum(
        (d(a["amount"]) for a in item["discount_allocations"]), Decimal(0)
    )


def assert_consistent(order):
    """The Shopify totals follow from the lines, as the generator promises (sandbox/orders.py): taxes included or
    added on top, at the rates of the country the order ships to."""
    included = order["taxes_included"]
    country = COUNTRIES[order["shipping_address"]["country_code"]]
    lines = order["line_items"]
    line_total = sum(d(item["price"]) * item["quantity"] for item in lines)
    discounts = sum(d(a["amount"]) for item in lines for a in item["discount_allocations"])
    shipping = sum(d(line["discounted_price"]) for line in order["shipping_lines"])
    taxed = [(item, discounted(item), item["taxable"]) for item in lines]
    taxed += [(line, d(line["discounted_price"]), country.tax_shipping) for line in order["shipping_lines"]]
    per_title = {}
    for item, amount, taxable in taxed:
        # Each tax line is computed from the line's discounted amount.
        expected = [(title, float(rate)) for title, rate in country.taxes] if taxable else []
        assert [(tax["title"], tax["rate"]) for tax in item["tax_lines"]] == expected
        combined = sum(d(tax["rate"]) for tax in item["tax_lines"])
        for tax in item["tax_lines"]:
            rate = d(tax["rate"])
            assert d(tax["price"]) == cents(amount * rate / (1 + combined) if included else amount * rate)
            assert tax["price_set"]["shop_money"] == {"amount": tax["price"], "currency_code": "DKK"}
            per_title[tax["title"], tax["rate"]] = per_title.get((tax["title"], tax["rate"]), 0) + d(tax["price"])
    total_tax = sum(per_title.values(), Decimal(0))
    assert {(tax["title"], tax["rate"]): d(tax["price"]) for tax in order["tax_lines"]} == per_title
    assert d(order["total_line_items_price"]) == line_total
    assert d(order["total_discounts"]) == discounts
    assert d(order["subtotal_price"]) == line_total - discounts
    assert d(order["total_tax"]) == total_tax
    assert d(order["total_price"]) == line_total - discounts + shipping + (0 if included else total_tax)
    assert d(order["total_shipping_price_set"]["shop_money"]["amount"]) == shipping
    for name in ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_line_items_price"):
        assert order[f"{name}_set"]["presentment_money"] == {"amount": order[name], "currency_code": "DKK"}


def test_shopify_refuses_a_wrong_token(sandbox):
    refused = requests.get(f"{sandbox.url}/shopify/admin/api/2025-01/shop.json", timeout=5)
    assert refused.status_code == 401
    assert refused.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    # No app, no bucket: a refused token is not counted.
    assert "X-Shopify-Shop-Api-Call-Limit" not in refused.headers

    shop = shop_get(sandbox, "shop.json")
    assert shop.status_code == 200
    assert shop.json()["shop"]["myshopify_domain"] == "sandbox.myshopify.com"
    assert shop.headers["X-Shopify-Shop-Api-Call-Limit"] == "1/40"


def test_economic_refuses_wrong_tokens(sandbox):
    refused = requests.get(
        f"{sandbox.url}/economic/self", headers={**ECONOMIC, "X-AgreementGrantToken": "nope"}, timeout=5
    )
    assert refused.status_code == 401
    body = refused.json()
    assert {key: body[key] for key in ("message", "errorCode", "httpStatusCode")} == {
        "message": "Unauthorized",
        "errorCode": "E04010",
        "httpStatusCode": 401,
    }
    assert set(body) == {"message", "errorCode", "developerHint", "logId", "httpStatusCode", "logTime"}
    assert books(sandbox, "GET", "self").json()["agreementNumber"] == 654321


def test_orders_page_with_link_headers(sandbox, control):
    created = [control("shopify/orders") for _ in range(5)]

    seen, previous = [], []
    response = shop_get(sandbox, "orders.json", status="any", limit=2)
    while True:
        assert response.status_code == 200
        seen += response.json()["orders"]
        previous.append("previous" in response.links)
        if "next" not in response.links:
            break
        # The cursor carries the filters: the next URL is followed as it is.
        url = response.links["next"]["url"]
        assert url.startswith(f"{sandbox.url}/shopify/admin/api/2025-01/orders.json?limit=2&page_info=")
        response = requests.get(url, headers=SHOPIFY, timeout=5)

    assert [order["id"] for order in seen] == sorted(order["id"] for order in created)
    assert previous == [False, True, True]
    assert [len(page) for page in (seen[:2], seen[2:4], seen[4:])] == [2, 2, 1]


def test_orders_filter_by_updated_at_min(sandbox, control):
    orders = [control("shopify/orders") for _ in range(3)]
    changed = control(f"shopify/orders/{orders[0]['id']}", {"note": "gift wrap"})
    assert changed["updated_at"] > orders[0]["updated_at"]

    since = changed["updated_at"]
    found = shop_get(sandbox, "orders.json", status="any", updated_at_min=since).json()["orders"]
    matching = [changed] + [order for order in orders[1:] if order["updated_at"] >= since]
    assert [order["id"] for order in found] == [
        order["id"] for order in sorted(matching, key=lambda order: (order["updated_at"], order["id"]))
    ]
    assert shop_get(sandbox, "orders.json", updated_at_min="2999-01-01T00:00:00+00:00").json() == {"orders": []}
    assert shop_get(sandbox, "orders.json", updated_at_min="yesterday").status_code == 400


def test_order_totals_are_consistent():
    shop = ShopifyState(seed=1)
    rng = random.Random(1)
    orders = [make_order(rng, 1001 + n, shop.products) for n in range(200)]
    for order in orders:
        assert_consistent(order)
    assert {order["shipping_address"]["country_code"] for order in orders} == set(COUNTRIES)
    assert {order["taxes_included"] for order in orders} == {True, False}
    assert any(order["discount_codes"] for order in orders)
    assert any(not order["shipping_lines"] for order in orders)
    assert any(order["email"] is None and order["customer"]["email"] is None for order in orders)
    assert {order["financial_status"] for order in orders} == {"paid", "pending"}
    assert any(
        a["amount"] != "0.00" for o in orders for item in o["line_items"] for a in item["discount_allocations"]
    )


def test_order_from_a_given_basket(control):
    order = control(
        "shopify/orders",
        {
            "line_items": [{"sku": "BIKE-RED", "quantity": 1}, {"sku": "BOOK-GUIDE", "quantity": 2}],
            "shipping_lines": [{"price": "49.00"}],
            "discount_codes": [{"code": "TEN", "amount": "10.00"}],
            "financial_status": "pending",
            "country": "DK",
        },
    )
    assert_consistent(order)
    assert order["financial_status"] == "pending"
    assert order["taxes_included"] is True
    assert order["total_line_items_price"] == "5397.00"
    assert order["total_discounts"] == "10.00"
    assert order["total_price"] == "5436.00"
    # The code is shared out by value: 4999 / 5397 of 10.00 on the bike, the rest on the books. As in Shopify's
    # documented example, the shares are in discount_allocations and not in the line's total_discount.
    assert [[a["amount"] for a in item["discount_allocations"]] for item in order["line_items"]] == [
        ["9.26"],
        ["0.74"],
    ]
    assert [item["total_discount"] for item in order["line_items"]] == ["0.00", "0.00"]
    # 4989.74 / 5 = 997.948 -> 997.95, plus 9.80 on the shipping; the book is not taxable: no tax line.
    assert [(tax["title"], tax["rate"], tax["price"]) for tax in order["tax_lines"]] == [("Moms", 0.25, "1007.75")]
    assert order["line_items"][1]["tax_lines"] == []


def test_changing_an_order_bumps_updated_at_and_reprices(control):
    order = control("shopify/orders", {"financial_status": "pending", "country": "DK"})
    changed = control(f"shopify/orders/{order['id']}", {"line_items": [{"sku": "LOCK-U", "quantity": 2}]})
    assert changed["updated_at"] > order["updated_at"]
    assert changed["total_line_items_price"] == "698.00"
    assert_consistent(changed)
    again = control(f"shopify/orders/{order['id']}", {"financial_status": "paid"})
    assert again["updated_at"] > changed["updated_at"]
    assert again["total_price"] == changed["total_price"]


def test_unknown_sku_and_unknown_order_are_refused(sandbox):
    bad = requests.post(
        f"{sandbox.url}/_sandbox/shopify/orders", json={"line_items": [{"sku": "NOPE"}]}, timeout=5
    )
    assert bad.status_code == 400
    assert "NOPE" in bad.json()["error"]
    missing = requests.post(f"{sandbox.url}/_sandbox/shopify/orders/1", json={"note": "x"}, timeout=5)
    assert missing.status_code == 404
    assert shop_get(sandbox, "orders/1.json").json() == {"errors": "Not Found"}


def test_products_page_and_inventory_levels(sandbox, control):
    control("shopify/products", {"title": "Bell", "variants": [{"sku": "BELL", "price": "59.5"}]})
    first = shop_get(sandbox, "products.json", limit=5)
    rest = requests.get(first.links["next"]["url"], headers=SHOPIFY, timeout=5)
    products = first.json()["products"] + rest.json()["products"]
    assert [p["variants"][0]["sku"] for p in products][-2:] == ["PUMP-MINI", "BELL"]
    bell = products[-1]["variants"][0]
    assert bell["price"] == "59.50"

    location = shop_get(sandbox, "locations.json").json()["locations"][0]["id"]
    url = f"{sandbox.url}/shopify/admin/api/2025-01/inventory_levels/set.json"
    body = {"location_id": location, "inventory_item_id": bell["inventory_item_id"], "available": 12}
    level = requests.post(url, headers=SHOPIFY, json=body, timeout=5)
    assert level.status_code == 200
    assert level.json()["inventory_level"]["available"] == 12
    product = shop_get(sandbox, "products.json", limit=250).json()["products"][-1]
    assert product["variants"][0]["inventory_quantity"] == 12

    unknown = requests.post(url, headers=SHOPIFY, json={**body, "inventory_item_id": 1}, timeout=5)
    assert unknown.status_code == 422
    assert unknown.json() == {"errors": {"inventory_item_id": ["is invalid"]}}


def economic_customer(sandbox, **fields):
    body = {
        "name": "Nordic Bikes ApS",
        "currency": "DKK",
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
        **fields,
    }
    response = books(sandbox, "POST", "customers", body)
    assert response.status_code == 201, response.text
    return response.json()


def invoice(customer_number, vat_zone=1, **fields):
    return {
        "date": "2025-01-31",
        "currency": "DKK",
        "customer": {"customerNumber": customer_number},
        "recipient": {"name": "Nordic Bikes ApS", "vatZone": {"vatZoneNumber": vat_zone}},
        "paymentTerms": {"paymentTermsNumber": 1},
        "layout": {"layoutNumber": 19},
        "references": {"other": "shopify:#1001"},
        "lines": [
            {
                "product": {"productNumber": "BIKE-RED"},
                "description": "City Bike",
                "quantity": 1,
                "unitNetPrice": 3999.2,
            },
            {
                "product": {"productNumber": "BOOK-GUIDE"},
                "description": "Guide",
                "quantity": 3,
                "unitNetPrice": 199.0,
                "discountPercentage": 12.5,
            },
        ],
        **fields,
    }


def test_draft_invoice_totals_with_two_vat_rates(sandbox):
    customer = economic_customer(sandbox)
    assert customer["customerNumber"] == 1
    assert customer["self"] == f"{sandbox.url}/economic/customers/1"

    created = books(sandbox, "POST", "invoices/drafts", invoice(1))
    assert created.status_code == 201, created.text
    draft = created.json()
    # Bike 3999.20 at 25%; books 3 * 199 * 0.875 = 522.375 -> 522.38 at 0%.
    assert (draft["netAmount"], draft["vatAmount"], draft["grossAmount"]) == (4521.58, 999.8, 5521.38)
    assert draft["draftInvoiceNumber"] == 1
    assert [line["lineNumber"] for line in draft["lines"]] == [1, 2]
    assert books(sandbox, "GET", "invoices/drafts/1").json()["netAmount"] == 4521.58

    abroad = books(sandbox, "PUT", "invoices/drafts/1", invoice(1, vat_zone=3)).json()
    assert (abroad["draftInvoiceNumber"], abroad["vatAmount"], abroad["grossAmount"]) == (1, 0.0, 4521.58)

    booked = books(sandbox, "POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}})
    assert booked.status_code == 201
    assert booked.json()["bookedInvoiceNumber"] == 10001
    assert booked.json()["references"] == {"other": "shopify:#1001"}
    assert books(sandbox, "GET", "invoices/drafts/1").status_code == 404
    found = books(sandbox, "GET", "invoices/booked", filter="references.other$eq:shopify:#1001").json()
    assert [each["bookedInvoiceNumber"] for each in found["collection"]] == [10001]
    rebooked = books(sandbox, "POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}})
    assert rebooked.status_code == 400
    assert rebooked.json()["errors"]["draftInvoice"]["errors"][0]["message"] == "draftInvoice does not exist."


def test_drafts_delete_and_orders(sandbox):
    economic_customer(sandbox)
    assert books(sandbox, "POST", "invoices/drafts", invoice(1)).status_code == 201
    deleted = books(sandbox, "DELETE", "invoices/drafts/1")
    assert (deleted.status_code, deleted.json()["deletedCount"]) == (200, 1)
    assert books(sandbox, "GET", "invoices/drafts/1").status_code == 404

    order = books(sandbox, "POST", "orders/drafts", invoice(1)).json()
    assert (order["orderNumber"], order["grossAmount"]) == (1, 5521.38)
    listed = books(sandbox, "GET", "orders/drafts", filter="customer.customerNumber$eq:1").json()
    assert listed["pagination"]["results"] == 1


def test_unknown_product_and_customer_are_refused(sandbox):
    economic_customer(sandbox)
    body = invoice(1)
    body["lines"][0]["product"]["productNumber"] = "NOPE"
    refused = books(sandbox, "POST", "invoices/drafts", body)
    assert refused.status_code == 400
    assert refused.json()["message"] == "Validation error."
    (error,) = refused.json()["errors"]["lines"][0]["product"]["errors"]
    assert refused.json()["errors"]["lines"][0]["arrayIndex"] == 0
    assert (error["errorCode"], error["message"], error["value"]) == ("E06000", "product does not exist.", "NOPE")
    assert books(sandbox, "POST", "invoices/drafts", invoice(99)).status_code == 400
    missing_product = books(sandbox, "GET", "products/NOPE")
    assert missing_product.status_code == 404
    assert (missing_product.json()["message"], missing_product.json()["httpStatusCode"]) == (
        "Product not found.",
        404,
    )
    missing = books(sandbox, "POST", "customers", {"name": "X"})
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {"currency", "customerGroup", "paymentTerms", "vatZone"}


def test_nulls_are_refused(sandbox):
    refused = books(sandbox, "POST", "customers", {"name": "X", "email": None})
    assert refused.status_code == 400
    assert refused.json()["message"] == "Null values are not allowed: email"

    economic_customer(sandbox)
    body = invoice(1)
    body["lines"][1]["description"] = None
    refused = books(sandbox, "POST", "invoices/drafts", body)
    assert refused.json()["message"] == "Null values are not allowed: lines[1].description"


def test_filters_unescape_values(sandbox):
    tricky = "Smith $ Sons (Nordic), *the* best"
    economic_customer(sandbox, name="Plain", email="plain@example.com")
    economic_customer(sandbox, name=tricky, email="Tricky@Example.com", telephoneAndFaxNumber="+45 1234")
    escaped = "".join("$" + ch if ch in "$()*," else ch for ch in tricky)

    def names(filter):
        response = books(sandbox, "GET", "customers", filter=filter)
        assert response.status_code == 200, response.text
        return [customer["name"] for customer in response.json()["collection"]]

    assert names(f"name$eq:{escaped}") == [tricky]
    assert names("email$eq:tricky@example.COM") == [tricky]
    assert names(f"email$eq:tricky@example.com$and:name$eq:{escaped}") == [tricky]
    assert names("email$eq:tricky@example.com$and:name$eq:Plain") == []
    assert names("telephoneAndFaxNumber$eq:+45 1234") == [tricky]
    assert books(sandbox, "GET", "customers", filter=f"name$eq:{tricky}").status_code == 400
    assert books(sandbox, "GET", "customers", filter="mobilePhone$eq:1234").status_code == 400  # not filterable


def test_collections_page(sandbox):
    page = books(sandbox, "GET", "products", pagesize=4, skippages=1).json()
    assert [p["productNumber"] for p in page["collection"]] == ["BOOK-GUIDE", "PUMP-MINI", "SHIPPING", "FEE"]
    assert page["pagination"]["results"] == 10
    assert page["pagination"]["lastPage"] == f"{sandbox.url}/economic/products?skippages=2&pagesize=4"
    last = requests.get(page["pagination"]["nextPage"], headers=ECONOMIC, timeout=5).json()
    assert [p["productNumber"] for p in last["collection"]] == ["DISCOUNT", "MISC"]
    assert "nextPage" not in last["pagination"]


def test_economic_products(sandbox, control):
    book = books(sandbox, "GET", "products/BOOK-GUIDE").json()
    assert (book["productGroup"]["productGroupNumber"], book["productGroup"]["name"]) == (2, "Varer u/moms")
    body = {"productNumber": "BELL", "name": "Bell", "productGroup": {"productGroupNumber": 1}, "salesPrice": 47.6}
    created = books(sandbox, "POST", "products", body)
    assert created.status_code == 201
    assert created.json()["inventory"] == {"available": 0, "inStock": 0}
    assert books(sandbox, "POST", "products", body).status_code == 400
    assert control("economic/products/BELL", {"available": 7})["inventory"] == {"available": 7, "inStock": 7}
    assert books(sandbox, "GET", "products/BELL").json()["inventory"]["available"] == 7


class Receiver(BaseHTTPRequestHandler):
    """Collects webhook POSTs in `self.server.received`."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((dict(self.headers), body))
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


def test_webhooks_are_signed(sandbox, control, receiver):
    control(
        "config", {"webhook_url": f"http://127.0.0.1:{receiver.server_port}/hooks", "webhook_secret": "s3cret"}
    )
    order = control("shopify/orders", {"financial_status": "pending"})
    control(f"shopify/orders/{order['id']}", {"financial_status": "paid"})

    topics = []
    for _ in range(3):
        headers, body = receiver.received.get(timeout=5)
        expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
        assert hmac.compare_digest(headers["X-Shopify-Hmac-Sha256"], expected)
        assert headers["X-Shopify-Shop-Domain"] == "sandbox.myshopify.com"
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["id"] == order["id"]
        topics.append(headers["X-Shopify-Topic"])
    assert sorted(topics) == ["orders/create", "orders/paid", "orders/updated"]

    deadline = time.monotonic() + 5
    while requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["webhooks_sent"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_faults_are_injected_with_retry_after(sandbox, control):
    control("config", {"faults": [{"path_contains": "/orders.json", "status": 429, "times": 2, "retry_after": 3}]})
    for n in (1, 2):
        throttled = shop_get(sandbox, "orders.json")
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "3"
        # A faulty answer still went through the bucket (it leaks 2 a second: these came quicker).
        assert throttled.headers["X-Shopify-Shop-Api-Call-Limit"] == f"{n}/40"
        assert throttled.json() == {"errors": "Too Many Requests"}
    assert shop_get(sandbox, "orders.json").status_code == 200
    assert shop_get(sandbox, "shop.json").status_code == 200

    control("config", {"faults": [{"path_contains": "/economic/", "status": 503, "times": 1, "body": "down"}]})
    unavailable = books(sandbox, "GET", "self")
    assert (unavailable.status_code, unavailable.text) == (503, "down")
    assert "Retry-After" not in unavailable.headers
    assert books(sandbox, "GET", "self").status_code == 200


def test_config_is_validated_and_survives_reset(sandbox, control):
    bad = requests.post(f"{sandbox.url}/_sandbox/config", json={"latency_ms": "slow"}, timeout=5)
    assert bad.status_code == 400
    config = control("config", {"shopify_token": "other", "latency_ms": 1})
    assert config["shopify_token"] == "other"
    control("shopify/orders")
    assert shop_get(sandbox, "shop.json").status_code == 401

    state = control("reset")
    assert state["shopify"] == {"orders": 0, "products": 6}
    assert state["requests"] == 0
    assert (
        requests.get(
            f"{sandbox.url}/shopify/admin/api/2025-01/shop.json",
            headers={"X-Shopify-Access-Token": "other"},
            timeout=5,
        ).status_code
        == 200
    )


def test_order_timer_creates_orders(sandbox, control):
    control("config", {"order_interval": 0.05})
    deadline = time.monotonic() + 5
    while sandbox.summary()["shopify"]["orders"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    control("config", {"order_interval": 0})
    settled = sandbox.summary()["shopify"]["orders"]
    time.sleep(0.2)
    assert sandbox.summary()["shopify"]["orders"] == settled


def test_concurrent_requests(sandbox, control):
    with ThreadPoolExecutor(max_workers=16) as pool:
        orders = list(pool.map(lambda _: control("shopify/orders"), range(40)))
        pages = list(pool.map(lambda _: shop_get(sandbox, "orders.json", limit=250).status_code, range(20)))
    assert sorted(order["order_number"] for order in orders) == list(range(1001, 1041))
    assert set(pages) == {200}
    assert len(shop_get(sandbox, "orders.json", limit=250).json()["orders"]) == 40
