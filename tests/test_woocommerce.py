"""The WooCommerce connector: transforms on the documentation's own example order, webhooks (signature, the ping,
refunds announced by their order), the client's paging, key fallback and stock, and connecting in one click."""

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from django.urls import reverse

from connections.common import StockLevel
from connections.systems import PARTIAL
from connections.systems.woocommerce import authorize, forms, transforms, webhooks
from connections.systems.woocommerce.client import _KEYS_IN_QUERY, WooCommerceClient
from iex.lib import http

PAYLOADS = Path(__file__).parent / "payloads"
EXAMPLE = json.loads((PAYLOADS / "woocommerce_order_727.json").read_text())  # the docs' "Retrieve an order"
SETTINGS = dict(forms.DEFAULT_SETTINGS)
SITE = "https://nordic-bikes.dk"
API = f"{SITE}/wp-json/wc/v3"


def test_the_documented_example_keeps_the_shops_amounts_and_rates():
    order = transforms.to_order(EXAMPLE, SETTINGS)
    assert (order.source_ref, order.reference, order.currency, order.total, order.country_code) == (
        "727", "#727", "USD", Decimal("29.35"), "US",
    )  # fmt: skip
    assert order.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)  # date_modified_gmt is UTC
    assert [(line.kind, line.description, line.sku, line.quantity, line.net, line.tax, line.vat_rate)
            for line in order.lines] == [
        ("product", "Woo Single #1", "", 2, Decimal("6.00"), Decimal("0.45"), Decimal("0.075")),
        ("product", "Ship Your Idea \u2013 Color: Black, Size: M Test", "Bar3", 1, Decimal("12.00"), Decimal("0.90"),
         Decimal("0.075")),
        ("shipping", "Flat Rate", "", 1, Decimal("10.00"), Decimal("0.00"), 0),
    ]  # fmt: skip
    assert order.lines_total == order.total and order.total_tax == Decimal(EXAMPLE["total_tax"])
    assert transforms.skip_reason(EXAMPLE, SETTINGS) == ""
    assert transforms.skip_reason({**EXAMPLE, "status": "on-hold"}, SETTINGS) == (
        "Order not in allowed states (status: on hold)"
    )


def danish_order(prices_include_tax=True):
    """A DKK order as WooCommerce's REST API gives it: ex-tax line totals, a 10 % coupon, a taxable fee and taxable
    shipping, 25 % VAT with its rate_percent, the raw per-rate amounts unpadded."""
    return {
        **EXAMPLE,
        "id": 5001, "number": "5001", "currency": "DKK", "prices_include_tax": prices_include_tax,
        "total": "787.15", "total_tax": "121.43",
        "line_items": [
            {"id": 1, "name": "Cykellås", "product_id": 11, "variation_id": 0, "quantity": 2, "tax_class": "",
             "subtotal": "478.40", "subtotal_tax": "119.60", "total": "430.56", "total_tax": "107.64",
             "taxes": [{"id": 1, "total": "107.64", "subtotal": "119.6"}], "meta_data": [], "sku": "LOCK-U",
             "price": 215.28},
            {"id": 2, "name": "Bog", "product_id": 12, "variation_id": 0, "quantity": 1, "tax_class": "zero-rate",
             "subtotal": "200.00", "subtotal_tax": "0.00", "total": "180.00", "total_tax": "0.00",
             "taxes": [{"id": 2, "total": "0", "subtotal": "0"}], "meta_data": [], "sku": "BOOK", "price": 180},
        ],
        "shipping_lines": [{"id": 3, "method_title": "PostNord", "method_id": "flat_rate", "total": "39.20",
                            "total_tax": "9.80", "taxes": [{"id": 1, "total": "9.8", "subtotal": ""}], "meta_data": []}],
        "fee_lines": [{"id": 4, "name": "Gebyr", "tax_class": "", "tax_status": "taxable", "total": "15.96",
                       "total_tax": "3.99", "taxes": [{"id": 1, "total": "3.99", "subtotal": ""}], "meta_data": []}],
        "coupon_lines": [{"id": 5, "code": "tiprocent", "discount": "67.84", "discount_tax": "11.96",
                          "discount_type": "percent", "nominal_amount": 10, "meta_data": []}],
        "tax_lines": [{"id": 6, "rate_code": "DK-MOMS-1", "rate_id": 1, "label": "Moms", "compound": False,
                       "tax_total": "111.63", "shipping_tax_total": "9.80", "rate_percent": 25, "meta_data": []}],
        "shipping": {**EXAMPLE["shipping"], "country": "DK"},
    }  # fmt: skip


def test_a_danish_order_with_a_coupon_a_fee_and_shipping_comes_to_the_shops_total():
    order = transforms.to_order(danish_order(), SETTINGS)
    assert [(line.kind, line.unit_price, line.net, line.tax, line.vat_rate, line.discount_codes)
            for line in order.lines] == [
        ("product", Decimal("239.20"), Decimal("430.56"), Decimal("107.64"), Decimal("0.25"), ["tiprocent"]),
        ("product", Decimal("200.00"), Decimal("180.00"), Decimal("0.00"), 0, ["tiprocent"]),
        ("shipping", Decimal("39.20"), Decimal("39.20"), Decimal("9.80"), Decimal("0.25"), []),
        ("fee", Decimal("15.96"), Decimal("15.96"), Decimal("3.99"), Decimal("0.25"), []),
    ]  # fmt: skip
    assert order.lines_total == order.total == Decimal("787.15") and order.total_tax == Decimal("121.43")
    assert not order.lines[1].taxable and order.taxes_included


def test_a_rate_old_stores_do_not_state_is_worked_out_from_the_amounts():
    old = danish_order()
    old["tax_lines"] = [{**old["tax_lines"][0], "rate_percent": None}]
    order = transforms.to_order(old, SETTINGS)
    # 3.99 on 15.96 is 25.0 %; 107.64 on 430.56 is exactly 25 %: both to the nearest 0.05 %.
    assert {line.vat_rate for line in order.lines if line.tax} == {Decimal("0.2500")}


def test_a_refund_is_credited_with_its_lines_and_what_it_paid_back_beside_them():
    order = {**danish_order(), "refunds": [{"id": 7001, "reason": "", "total": "-279.10"}]}
    refund = {
        "id": 7001, "date_created": "2026-11-22T10:00:00", "date_created_gmt": "2026-11-22T09:00:00",
        "amount": "279.10", "reason": "Returned", "refunded_by": 1, "refunded_payment": True, "meta_data": [],
        "line_items": [{"id": 91, "name": "Cykellås", "product_id": 11, "variation_id": 0, "quantity": -1,
                        "tax_class": "", "subtotal": "-215.28", "subtotal_tax": "-53.82", "total": "-215.28",
                        "total_tax": "-53.82", "taxes": [{"id": 1, "total": "-53.82", "subtotal": "-53.82"}],
                        "meta_data": [{"id": 1, "key": "_refunded_item_id", "value": "1"}], "sku": "LOCK-U",
                        "price": -215.28}],
        "shipping_lines": [], "tax_lines": [], "fee_lines": [],
    }  # fmt: skip
    credit = transforms.to_credit_note(refund, order, SETTINGS)
    assert [(line.kind, line.quantity, line.net, line.tax, line.source_ref) for line in credit.lines] == [
        ("product", 1, Decimal("215.28"), Decimal("53.82"), "1"),
        # 10.00 paid back beside the lock: taken off the price at the order's rates, as its gross is (607.15 at 25 %,
        # 180.00 at 0 %), each part with its VAT.
        ("adjustment", 1, Decimal("2.29"), Decimal("0.00"), ""),
        ("adjustment", 1, Decimal("6.17"), Decimal("1.54"), ""),
    ]
    assert (credit.total, credit.reference, credit.note) == (Decimal("279.10"), "#5001 refund 1", "Returned")
    assert transforms.refund_ref(refund)[2] == transforms.REFUND_VERSION  # one version, however it is found


def test_products_and_variations_are_one_product_per_sku():
    product = {"id": 20, "name": "T-shirt", "type": "variable", "tax_status": "taxable", "date_modified_gmt": None,
               "variations": [{"id": 21, "sku": "TEE-M", "regular_price": "125.00", "attributes": [{"option": "M"}]},
                              {"id": 22, "sku": "", "regular_price": "125.00", "attributes": [{"option": "L"}]}]}  # fmt: skip
    (medium,) = transforms.to_products(product, SETTINGS)
    assert (medium.sku, medium.name, medium.price_net, medium.vat_rate) == (
        "TEE-M", "T-shirt - M", Decimal("100.00"), Decimal("0.25"),
    )  # fmt: skip


# --- webhooks ---------------------------------------------------------------------------------------------------


def signed(body: bytes, secret="whsec", topic="order.updated"):
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": signature, "X-WC-Webhook-Delivery-ID": "d1"}


def test_webhooks_are_verified_over_the_raw_body_and_carry_no_stable_event_id():
    body = json.dumps(EXAMPLE).encode()
    assert webhooks.verify(["old", "whsec"], body, signed(body))
    assert not webhooks.verify(["whsec"], body + b" ", signed(body))
    assert webhooks.event_id(signed(body)) == ""  # a new delivery id each time: the version is the key
    assert webhooks.topic(signed(body)) == "order.updated"


def test_the_ping_is_known_by_its_body_and_missing_headers():
    assert webhooks.ping(b"webhook_id=12", {}) == "12"
    assert webhooks.ping(b"webhook_id=12", {"X-WC-Webhook-Topic": "order.created"}) == ""
    assert webhooks.ping(b'{"webhook_id": 12}', {}) == ""


def test_an_order_announces_its_refunds_and_a_trashed_one_is_its_id():
    order = {**EXAMPLE, "refunds": [{"id": 730, "reason": "", "total": "-10.00"}]}
    assert webhooks.records("order.updated", order) == [
        ("orders", order),
        ("credit_notes", {"id": 730, "order_id": 727, PARTIAL: True}),
    ]
    assert webhooks.records("order.deleted", {"id": 727}) == [("orders", {"id": 727, PARTIAL: True})]
    assert webhooks.record_ref("orders", {"id": 727, PARTIAL: True}) == ("727", "#727", None)


# --- the client -------------------------------------------------------------------------------------------------


class FakeModule:
    pk = 77
    base_url = ""
    gate = None  # no rate budget or circuit: the HTTP is faked

    def __init__(self, **settings):
        self.settings = settings

    def get_credentials(self):
        return {"site_url": SITE, "consumer_key": "ck_abc", "consumer_secret": "cs_def"}

    def settings_values(self):
        return {**SETTINGS, **self.settings}


@pytest.fixture(autouse=True)
def _fresh_keys_mode():
    _KEYS_IN_QUERY.clear()


@responses.activate
def test_orders_are_read_page_by_page_changed_since_in_gmt_with_basic_keys():
    first = responses.get(f"{API}/orders", json=[{"id": 1}], headers={"X-WP-TotalPages": "2"},
                          match=[responses.matchers.query_param_matcher({"page": "1"}, strict_match=False)])  # fmt: skip
    responses.get(f"{API}/orders", json=[{"id": 2}], headers={"X-WP-TotalPages": "2"},
                  match=[responses.matchers.query_param_matcher({"page": "2"}, strict_match=False)])  # fmt: skip
    since = datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert [o["id"] for o in WooCommerceClient(FakeModule()).orders_since(since)] == [1, 2]
    query = responses.calls[0].request.url
    assert (
        "modified_after=2026-11-01T10%3A00%3A00" in query
        and "dates_are_gmt=true" in query
        and "per_page=100" in query
    )
    assert (
        first.calls[0].request.headers["Authorization"] == "Basic " + base64.b64encode(b"ck_abc:cs_def").decode()
    )


@responses.activate
def test_keys_go_as_query_parameters_when_the_server_strips_the_authorization_header():
    no_key = {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": {"status": 401}}  # fmt: skip
    responses.get(f"{API}/orders", json=no_key, status=401, match=[responses.matchers.header_matcher({"Authorization": "Basic " + base64.b64encode(b"ck_abc:cs_def").decode()})])  # fmt: skip
    responses.get(f"{API}/orders", json=[], match=[responses.matchers.query_param_matcher({"consumer_key": "ck_abc", "consumer_secret": "cs_def"}, strict_match=False)])  # fmt: skip
    client = WooCommerceClient(FakeModule())
    assert list(client.orders_since(datetime(2026, 11, 1, tzinfo=UTC))) == []
    assert list(client.orders_since(datetime(2026, 11, 1, tzinfo=UTC))) == []
    assert len(responses.calls) == 3  # the second read goes with the keys in the query at once


@responses.activate
def test_refused_keys_and_plain_permalinks_are_said_in_words():
    responses.get(f"{API}/orders", status=401, json={"code": "woocommerce_rest_authentication_error",
                  "message": "Consumer secret is invalid.", "data": {"status": 401}})  # fmt: skip
    with pytest.raises(http.PermanentError, match=r"refused the key \(.*Consumer secret is invalid\.\): enter"):
        WooCommerceClient(FakeModule()).test()
    responses.replace(responses.GET, f"{API}/orders", body="<html>Not Found</html>", content_type="text/html")
    with pytest.raises(http.PermanentError, match="turn on pretty permalinks"):
        WooCommerceClient(FakeModule()).test()


@responses.activate
def test_a_read_only_key_connects_and_says_it_cannot_write_stock():
    responses.get(f"{API}/orders", json=[])
    responses.post(f"{API}/products/batch", status=401, json={"code": "woocommerce_rest_authentication_error",
                   "message": "The API key provided does not have write permissions.", "data": {"status": 401}})  # fmt: skip
    answer = WooCommerceClient(FakeModule()).test()
    assert answer.startswith(
        f"Connected to {SITE}, read only: IEX reads orders and products but cannot write stock"
    )


@responses.activate
def test_stock_is_written_where_woocommerce_manages_it_and_the_item_is_kept():
    responses.get(f"{API}/products", json=[{"id": 11, "parent_id": 0, "sku": "LOCK-U", "manage_stock": True}],
                  match=[responses.matchers.query_param_matcher({"sku": "LOCK-U"}, strict_match=False)])  # fmt: skip
    responses.get(f"{API}/products", json=[{"id": 12, "parent_id": 0, "sku": "MUG", "manage_stock": False}],
                  match=[responses.matchers.query_param_matcher({"sku": "MUG"}, strict_match=False)])  # fmt: skip

    def answer(request):
        quantity = json.loads(request.body)["stock_quantity"]
        return 200, {}, json.dumps({"id": 11, "manage_stock": True, "stock_quantity": quantity})

    written = responses.add_callback(
        responses.PUT, f"{API}/products/11", callback=answer, content_type="application/json"
    )
    client = WooCommerceClient(FakeModule())
    lock, mug = client.set_stock([StockLevel("LOCK-U", 7), StockLevel("MUG", 3)])
    assert lock == {"inventory_level": {"inventory_item_id": "products/11", "available": 7}}
    assert json.loads(written.calls[0].request.body) == {"stock_quantity": 7}
    assert mug["skipped"].startswith("WooCommerce does not manage the stock of MUG")
    responses.calls.reset()
    client.set_stock([StockLevel("LOCK-U", 6, item_ref="products/11")])
    assert [c.request.method for c in responses.calls] == ["PUT"]  # known from the last write: no search


# --- connecting in one click ------------------------------------------------------------------------------------


def test_the_key_generation_page_is_asked_for_read_write_with_iexs_signed_state():
    url = authorize.url(SITE, "state-1", "https://app.iex.example/back", "https://app.iex.example/keys")
    assert url.startswith(f"{SITE}/wc-auth/v1/authorize?app_name=IEX&scope=read_write&user_id=state-1&")
    posted = {"key_id": 1, "user_id": "state-1", "consumer_key": "ck_x", "consumer_secret": "cs_y", "key_permissions": "read_write"}  # fmt: skip
    assert authorize.keys(json.dumps(posted).encode()) == (
        "state-1",
        {"consumer_key": "ck_x", "consumer_secret": "cs_y"},
    )
    with pytest.raises(ValueError):
        authorize.keys(json.dumps({**posted, "consumer_key": "x"}).encode())


def test_woocommerce_posts_the_keys_to_the_module_that_asked(db, personas, client, settings):
    from connections.models import Module

    settings.SITE_URL = "https://app.iex.example"
    module = Module.objects.create(integration=personas.integration, kind="woocommerce")
    owner = personas.client(personas.owner)
    number = personas.integration.number
    sent = owner.post(reverse("authorize_module", args=[number, module.code]), {"site_url": SITE})
    assert sent.status_code == 302 and sent.url.startswith(f"{SITE}/wc-auth/v1/authorize?")
    state = dict(p.split("=", 1) for p in sent.url.split("?", 1)[1].split("&"))["user_id"]
    from urllib.parse import unquote

    posted = {"key_id": 3, "user_id": unquote(state), "consumer_key": "ck_new", "consumer_secret": "cs_new",
              "key_permissions": "read_write"}  # fmt: skip
    url = reverse("take_credentials", args=["woocommerce"])
    assert client.post(url, json.dumps(posted), content_type="application/json").status_code == 200
    module.refresh_from_db()
    assert module.get_credentials() == {"site_url": SITE, "consumer_key": "ck_new", "consumer_secret": "cs_new"}
    replayed = client.post(url, json.dumps(posted), content_type="application/json")
    assert replayed.status_code == 400  # the state is good for one post
    forged = {**posted, "user_id": "not-ours"}
    assert client.post(url, json.dumps(forged), content_type="application/json").status_code == 400
    viewer = personas.client(personas.viewer)
    assert (
        viewer.post(reverse("authorize_module", args=[number, module.code]), {"site_url": SITE}).status_code == 403
    )


def test_a_line_a_coupon_took_all_of_keeps_its_rate():
    free = danish_order()
    free["line_items"] = [{**free["line_items"][0], "total": "0.00", "total_tax": "0.00",
                           "taxes": [{"id": 1, "total": "0", "subtotal": "119.6"}]}]  # fmt: skip
    (line,) = [line for line in transforms.to_order(free, SETTINGS).lines if line.kind == "product"]
    assert (line.net, line.vat_rate, line.taxable) == (0, Decimal("0.25"), True)
    free["tax_lines"] = [{**free["tax_lines"][0], "rate_percent": None}]  # an old store: from the amounts
    (line,) = [line for line in transforms.to_order(free, SETTINGS).lines if line.kind == "product"]
    assert line.vat_rate == Decimal("0.2500")


def test_a_variable_product_is_announced_and_read_with_its_variations():
    product = {"id": 15, "name": "T-shirt", "type": "variable", "date_modified_gmt": "2026-11-20T10:00:00",
               "variations": [16, 17], "sku": "TEE"}  # fmt: skip
    ((entity, announced),) = webhooks.records("product.updated", product)
    assert (entity, announced) == ("products", {"id": 15, "name": "T-shirt", "date_modified_gmt": "2026-11-20T10:00:00", PARTIAL: True})  # fmt: skip
    assert transforms.to_products(product, SETTINGS) == []  # the parent's own SKU is no product to sell


@responses.activate
def test_stock_goes_only_to_the_exact_sku_and_never_through_a_redirect():
    responses.get(f"{API}/products", json=[{"id": 30, "parent_id": 0, "sku": "LOCK", "manage_stock": True}])
    (answer,) = WooCommerceClient(FakeModule()).set_stock([StockLevel("LOCK,U", 3)])
    assert answer["skipped"] == "No product or variation with this SKU in WooCommerce"  # "LOCK,U" finds LOCK
    responses.reset()
    responses.put(f"{API}/products/11", status=301, headers={"Location": "https://www.nordic-bikes.dk/wp-json/wc/v3/products/11"})  # fmt: skip
    responses.put("https://www.nordic-bikes.dk/wp-json/wc/v3/products/11", json={"id": 11, "manage_stock": True, "stock_quantity": 9})  # fmt: skip
    with pytest.raises(
        http.PermanentError, match=re.escape("sends IEX on to https://www.nordic-bikes.dk: enter that")
    ):
        WooCommerceClient(FakeModule()).set_stock([StockLevel("LOCK-U", 3, item_ref="products/11")])


@responses.activate
def test_orders_from_before_the_time_asked_are_left_out_and_plain_permalinks_said():
    old, new = {"id": 1, "date_modified_gmt": "2026-10-01T00:00:00"}, {"id": 2, "date_modified_gmt": "2026-11-02T00:00:00"}  # fmt: skip
    responses.get(f"{API}/orders", json=[old, new], headers={"X-WP-TotalPages": "1"})
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert [o["id"] for o in WooCommerceClient(FakeModule()).orders_since(since)] == [
        2
    ]  # an old store ignores the filter
    responses.replace(
        responses.GET, f"{API}/orders", status=404, body="<html>Not Found</html>", content_type="text/html"
    )
    with pytest.raises(http.PermanentError, match="turn on pretty permalinks"):
        list(WooCommerceClient(FakeModule()).orders_since(since))
