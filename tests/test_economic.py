"""The e-conomic connector: documents an accountant books, from the common format. e-conomic is faked at the HTTP
boundary in its documented shapes (tests/fake_economic.py); tests/test_flow_sandbox.py runs the same against the
strict sandbox."""

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from hypothesis import example, given
from hypothesis import strategies as st

from connections.common import ZERO, CreditNote, OrderLine, Outcome, money, unit_and_discount
from connections.systems.economic import forms, transforms
from connections.systems.economic.client import EconomicClient
from connections.systems.shopify import forms as shopify_forms
from connections.systems.shopify import transforms as shopify
from tests import fake_economic
from tests.fake_economic import API

PAYLOADS = Path(__file__).parent / "payloads"
DATA = json.loads((PAYLOADS / "shopify_order.json").read_text())
ORDER = shopify.to_order(DATA, shopify_forms.DEFAULT_SETTINGS)
EXAMPLE = json.loads((PAYLOADS / "shopify_order_450789469.json").read_text())  # Shopify's documented #1001
PRODUCTS = {"BIKE-RED": 1, "HELMET-M": 1, "BOOK-GUIDE": 2, "SHIPPING": 1}


class FakeModule:
    pk = 1
    base_url = ""
    gate = None  # no rate budget or circuit: the HTTP is faked
    connected = True

    def __init__(self, **settings):
        self.settings = settings

    def get_credentials(self):
        return {"app_secret_token": "app-secret", "agreement_grant_token": "grant"}

    def settings_values(self):
        return {**forms.DEFAULT_SETTINGS, **self.settings}


class Mapping:
    def __init__(self, target_ref="", target_state=""):
        self.target_ref, self.target_state, self.data = target_ref, target_state, None


def client(**settings):
    return EconomicClient(FakeModule(**settings))


def send(order=ORDER, mapping=None, **settings):
    return client(**settings).send_order(order, mapping or Mapping(), lambda *a: None, lambda key: Mapping())


def order_api(gross="4496.00", vat="869.20", *, customers=(), products=PRODUCTS):
    """e-conomic answering the calls of one order: its VAT chart, the customer lookup, products, no existing
    document, one draft."""
    fake_economic.chart()
    responses.get(f"{API}/customers", json=fake_economic.collection(list(customers)))
    responses.post(f"{API}/customers", json={"customerNumber": 5, "name": "Kari Nordmann"}, status=201)
    fake_economic.products(products)
    responses.post(f"{API}/products", json={"productNumber": "x"}, status=201)
    responses.get(f"{API}/invoices/drafts", json=fake_economic.collection([]))
    responses.get(f"{API}/invoices/booked", json=fake_economic.collection([]))
    document = {"draftInvoiceNumber": 31, "grossAmount": float(gross), "vatAmount": float(vat)}
    responses.post(f"{API}/invoices/drafts", json=document, status=201)


def calls(method, path):
    return [c for c in responses.calls if c.request.method == method and urlsplit(c.request.url).path == path]


def sent_lines(method="POST", path="/invoices/drafts", index=0):
    return json.loads(calls(method, path)[index].request.body)["lines"]


# --- the rules of e-conomic's API ------------------------------------------------------------------------------


def test_filter_values_are_escaped_as_documented():
    assert transforms.escape_filter("a$b(c)*d,e[f]") == "a$$b$(c$)$*d$,e$[f$]"


def test_ids_in_urls_use_the_self_link_encoding_one_character_at_a_time():
    assert transforms.url_id("A B/C_1.5") == "A_9_B_6_C_8_1_11_5"
    assert transforms.url_id("50%+#x?") == "50_3__13__12_x_10_"
    assert transforms.url_id("Ø-1") == "%C3%98-1"


@responses.activate
def test_every_request_says_it_speaks_json_and_lists_follow_next_page():
    first = fake_economic.collection([{"productNumber": "A", "inventory": {"available": 2}}])
    first["pagination"]["nextPage"] = f"{API}/products?skippages=1&pagesize=1000"
    responses.get(
        f"{API}/products", json=first, match=[responses.matchers.query_param_matcher({"pagesize": "1000"})]
    )
    second = fake_economic.collection(
        [{"productNumber": "B", "inventory": {"available": 5}}, {"productNumber": "C"}]
    )
    responses.get(f"{API}/products", json=second, match=[responses.matchers.query_param_matcher({"skippages": "1", "pagesize": "1000"})])  # fmt: skip
    levels = client().stock_levels()
    assert [(level.sku, level.available) for level in levels] == [("A", 2), ("B", 5)]
    assert all(call.request.headers["Content-Type"] == "application/json" for call in responses.calls)


def test_a_product_number_longer_than_25_characters_is_refused_with_the_reason():
    long = {**DATA, "line_items": [{**DATA["line_items"][0], "sku": "BIKE-RED-WITH-A-VERY-LONG-SKU"}]}
    order = shopify.to_order(long, shopify_forms.DEFAULT_SETTINGS)
    planned = transforms.plan(order.lines, "DK", fake_chart(), forms.DEFAULT_SETTINGS, {})
    assert planned.refused == [
        "Product number 'BIKE-RED-WITH-A-VERY-LONG-SKU' is longer than e-conomic's 25 characters: give it a shorter "
        "SKU in the shop"
    ]


# --- two decimals, the shop's amounts to the cent ----------------------------------------------------------


@given(
    quantity=st.integers(min_value=1, max_value=9).map(Decimal),
    cents=st.integers(min_value=1, max_value=2_000_000),
    rate=st.sampled_from(["0", "0.06", "0.12", "0.19", "0.25"]).map(Decimal),
    percent_paid=st.integers(min_value=40, max_value=100),
)
@example(quantity=Decimal(7), cents=7718, rate=Decimal("0.25"), percent_paid=82)  # found beyond ±0.10 %
def test_a_line_is_two_decimals_and_comes_to_the_shops_net(quantity, cents, rate, percent_paid):
    """Any list price (with VAT taken out: many decimals) and discount: the line net of a system that takes two
    decimals (e-conomic, Dinero) is the shop's to the cent, from a unit price and a discount of two decimals each."""
    unit_price = Decimal(cents) / 100 / (1 + rate)
    net = money(quantity * unit_price * percent_paid / 100)
    unit, discount = unit_and_discount(quantity, unit_price, net)
    assert unit == money(unit) and discount == money(discount)
    assert 0 <= discount < 100 or (discount == 100 and net == 0)  # given away
    gap = abs(money(quantity * unit * (1 - discount / 100)) - net)
    assert gap == 0


def net(line):
    """What e-conomic makes of a line: quantity x unit price less the discount, to the cent."""
    return money(line.quantity * line.unit_price * (1 - line.discount / 100))


def fake_chart():
    return transforms.Chart(
        zones=dict(fake_economic.ZONES),
        groups={n: name for n, (name, _) in fake_economic.GROUPS.items()},
        rates={
            n: {zone: Decimal("0.25") if code else Decimal(0) for zone, code in codes.items()}
            for n, (_, codes) in fake_economic.GROUPS.items()
        },
    )


def test_discounts_show_as_a_percentage_on_the_list_price_with_the_code():
    example = shopify.to_order(EXAMPLE, shopify_forms.DEFAULT_SETTINGS)
    settings = {**forms.DEFAULT_SETTINGS, "sales_tax_group": 3}
    planned = transforms.plan(example.lines, example.country_code, fake_chart(), settings, {})
    assert [(line.product, line.unit_price, line.discount, net(line)) for line in planned.lines] == [
        ("IPOD2008GREEN", Decimal("199.00"), Decimal("1.68"), Decimal("195.66")),
        # 1.67 % of 199.00 leaves 195.68, 1.68 % 195.66: the unit price moves a cent to come out to the shop's.
        ("IPOD2008RED", Decimal("198.99"), Decimal("1.67"), Decimal("195.67")),
        ("IPOD2008BLACK", Decimal("198.99"), Decimal("1.67"), Decimal("195.67")),
        ("SALESTAX", Decimal("11.94"), Decimal("0"), Decimal("11.94")),
    ]
    assert planned.lines[0].description.endswith("(TENOFF)")
    assert planned.zone == 3 and planned.vat == 0


def test_discounts_as_lines_keep_the_list_price_and_add_a_discount_line_per_vat():
    settings = {**forms.DEFAULT_SETTINGS, "discounts": "lines"}
    planned = transforms.plan(ORDER.lines, "DK", fake_chart(), settings, {})
    assert [(line.product, line.quantity, line.unit_price, line.discount) for line in planned.lines] == [
        ("BIKE-RED", 1, Decimal("3199.20"), 0),
        ("HELMET-M", 2, Decimal("159.20"), 0),
        ("BOOK-GUIDE", 1, Decimal("150.00"), 0),
        ("SHIPPING", 1, Decimal("39.20"), 0),
        ("DISCOUNT", 1, Decimal("-80.00"), 0),
    ]
    assert sum(net(line) for line in planned.lines) == sum(line.net for line in ORDER.lines)


# --- VAT: the shop's tax booked as e-conomic books it ------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "taxed", "zone"),
    [("DK", True, 1), ("", True, 1), ("SE", True, 1), ("SE", False, 2), ("NO", False, 3), ("US", True, 3)],
)
def test_the_vat_zone_follows_where_the_goods_go(country, taxed, zone):
    assert transforms.zone_for(country, taxed, forms.DEFAULT_SETTINGS)[1] == zone


def test_a_rate_no_product_group_books_is_held_naming_the_rate_and_the_country():
    german = shopify.to_order(
        {
            **DATA,
            "shipping_address": {**DATA["shipping_address"], "country_code": "DE"},
            "line_items": [
                {**DATA["line_items"][0], "tax_lines": [{"rate": 0.19, "price": "622.54", "title": "MwSt."}]}
            ],
            "shipping_lines": [],
        },
        shopify_forms.DEFAULT_SETTINGS,
    )
    planned = transforms.plan(german.lines, german.country_code, fake_chart(), forms.DEFAULT_SETTINGS, PRODUCTS)
    (problem,) = planned.problems
    assert problem == (
        "19 % tax on BIKE-RED to DE: product group Varer m/moms (no. 1) books 25 % in VAT zone Domestic; set up a "
        "product group for 19 % in e-conomic, or change the VAT zones"
    )


@responses.activate
def test_a_foreign_sales_tax_without_its_product_group_holds_the_order():
    fake_economic.chart()
    responses.get(f"{API}/invoices/drafts", json=fake_economic.collection([]))
    responses.get(f"{API}/invoices/booked", json=fake_economic.collection([]))
    fake_economic.products({"IPOD2008GREEN": 1, "IPOD2008RED": 1, "IPOD2008BLACK": 1})
    outcome = send(shopify.to_order(EXAMPLE, shopify_forms.DEFAULT_SETTINGS))
    assert outcome.status == "held"
    assert outcome.reason == (
        "6 % tax on IPOD2008GREEN, IPOD2008RED and IPOD2008BLACK to US: a sales tax no VAT code books: choose the "
        "product group for foreign sales tax. Then save the settings (Systems > e-conomic > Settings, VAT)"
    )
    assert not calls("POST", "/invoices/drafts") and not calls("POST", "/customers")


@responses.activate
def test_the_documented_example_order_is_booked_with_its_sales_tax_on_its_own_line():
    """Shopify's #1001: 587.00 after the TENOFF code, 11.94 of US sales tax, 598.94 in all, to the cent."""
    order_api(gross="598.94", vat="0", products={"IPOD2008GREEN": 1, "IPOD2008RED": 1, "IPOD2008BLACK": 1})
    example = shopify.to_order(EXAMPLE, shopify_forms.DEFAULT_SETTINGS)
    outcome = send(example, sales_tax_group=3)
    assert outcome == Outcome("created", "", "created", "31")
    body = json.loads(calls("POST", "/invoices/drafts")[0].request.body)
    assert body["recipient"]["vatZone"] == {"vatZoneNumber": 3}
    assert [(line["product"]["productNumber"], line["unitNetPrice"]) for line in body["lines"]][-1] == (
        "SALESTAX",
        11.94,
    )
    (made,) = [json.loads(c.request.body) for c in calls("POST", "/products")]
    assert (made["productNumber"], made["productGroup"]) == ("SALESTAX", {"productGroupNumber": 3})
    assert not calls("PUT", "/invoices/drafts/31")  # the total is the shop's: no correction


# --- orders --------------------------------------------------------------------------------------------------


@responses.activate
def test_new_order_becomes_a_draft_and_the_customer_is_created():
    order_api()
    states = []
    claims = []
    mapping = Mapping()
    outcome = client().send_order(
        ORDER, mapping, lambda *a: states.append(a), lambda key: claims.append(key) or Mapping()
    )
    assert outcome == Outcome("created", "", "created", "31")
    assert (mapping.target_ref, mapping.target_state) == ("31", "draft")
    lookups = calls("GET", "/customers")
    assert parse_qs(urlsplit(lookups[0].request.url).query)["filter"] == ["email$eq:kari.nordmann@example.com"]
    assert claims == ["customer email kari.nordmann@example.com"]  # made once, even by two orders at once
    (create,) = calls("POST", "/customers")
    assert json.loads(create.request.body)["vatZone"] == {"vatZoneNumber": 1}
    assert lookups[0].request.headers["X-AppSecretToken"] == "app-secret"
    assert [kind for kind, *_ in states] == ["looked up", "sent", "answer", "sent", "answer", "document"]
    lines = sent_lines()
    assert all(Decimal(str(line["unitNetPrice"])) == money(line["unitNetPrice"]) for line in lines)
    assert lines[0]["description"] == "City bike - Red"


@responses.activate
def test_a_customer_another_order_made_meanwhile_is_used():
    order_api()
    # Not there at first; once this transfer has the claim on the key (another one held it and made customer 77
    # meanwhile), found.
    responses.get(f"{API}/customers", json=fake_economic.collection([{"customerNumber": 77}]))
    client().send_order(ORDER, Mapping(), lambda *a: None, lambda key: Mapping())
    assert not calls("POST", "/customers")
    assert json.loads(calls("POST", "/invoices/drafts")[0].request.body)["customer"] == {"customerNumber": 77}


@responses.activate
def test_existing_customer_is_used():
    order_api(customers=[{"customerNumber": 9}])
    send()
    assert not calls("POST", "/customers")
    assert json.loads(calls("POST", "/invoices/drafts")[0].request.body)["customer"] == {"customerNumber": 9}


@responses.activate
def test_unknown_customer_with_creation_off_fails_with_the_reason():
    order_api()
    outcome = send(allow_customer_create=False)
    assert outcome.status == "failed"
    assert "No customer in e-conomic with email kari.nordmann@example.com" in outcome.reason
    assert not calls("POST", "/invoices/drafts")


@responses.activate
def test_missing_products_are_made_with_their_list_price_in_the_group_of_their_vat():
    order_api(products={"BIKE-RED": 1, "SHIPPING": 1})
    send()
    made = [json.loads(c.request.body) for c in calls("POST", "/products")]
    assert sorted(
        (p["productNumber"], p["productGroup"]["productGroupNumber"], p["salesPrice"]) for p in made
    ) == [
        ("BOOK-GUIDE", 2, 150.0),  # 0 %: the group without VAT
        ("HELMET-M", 1, 159.2),  # its list price without VAT, not what it was sold for
    ]
    responses.calls.reset()
    outcome = send(auto_create_products=False)
    assert outcome.status == "failed"
    assert outcome.reason.endswith("BOOK-GUIDE, HELMET-M")


@responses.activate
def test_difference_above_the_threshold_is_an_error_in_totals_validation():
    order_api(gross="4496.50")
    outcome = send()
    assert outcome.status == "warning"
    assert outcome.reason.startswith("Error in totals validation")
    assert "by 0.50" in outcome.reason
    assert not calls("POST", "/invoices/booked")


@responses.activate
def test_difference_within_the_threshold_adds_a_correction_line():
    order_api(gross="4496.04")
    responses.put(f"{API}/invoices/drafts/31", json={"draftInvoiceNumber": 31, "grossAmount": 4496.0})
    outcome = send()
    assert outcome.status == "created"
    last = json.loads(calls("PUT", "/invoices/drafts/31")[0].request.body)["lines"][-1]
    assert (last["product"]["productNumber"], last["unitNetPrice"]) == ("ROUNDING", -0.04)
    (made,) = [json.loads(c.request.body) for c in calls("POST", "/products")]
    assert made["productGroup"] == {"productGroupNumber": 2}  # a correction carries no VAT


@responses.activate
def test_booked_document_type_books_the_draft():
    order_api()
    responses.post(
        f"{API}/invoices/booked", json={"bookedInvoiceNumber": 10001, "grossAmount": 4496.0}, status=201
    )
    mapping = Mapping()
    outcome = send(mapping=mapping, document_type="booked")
    assert outcome == Outcome("created", "", "created", "10001")
    assert json.loads(calls("POST", "/invoices/booked")[0].request.body) == {
        "draftInvoice": {"draftInvoiceNumber": 31}
    }
    assert (mapping.target_ref, mapping.target_state) == ("10001", "booked")


@responses.activate
def test_a_booked_invoice_is_never_changed():
    outcome = send(mapping=Mapping("10001", "booked"))
    assert outcome.status == "skipped"
    assert outcome.reason.startswith(
        "Booked in e-conomic as invoice 10001: changes to the order are no longer sent"
    )
    assert not responses.calls


@responses.activate
def test_a_draft_the_accountant_booked_is_found_and_left_alone():
    """PUT on the draft answers 404: it was booked. The booked invoice is found by its reference, and from now on
    the order's changes are not sent."""
    order_api(customers=[{"customerNumber": 9}])
    responses.put(
        f"{API}/invoices/drafts/31",
        status=404,
        json={"message": "Draft invoice not found.", "errorCode": "E06000"},
    )
    responses.replace(
        responses.GET, f"{API}/invoices/booked", json=fake_economic.collection([{"bookedInvoiceNumber": 10007}])
    )
    mapping = Mapping("31", "draft")
    outcome = send(mapping=mapping)
    assert outcome == Outcome(
        "skipped",
        "Booked in e-conomic as invoice 10007: changes to the order are no longer sent (refunds become credit notes)",
    )
    assert (mapping.target_ref, mapping.target_state) == ("10007", "booked")


@responses.activate
def test_a_draft_lost_from_our_records_is_found_by_reference_and_updated():
    order_api(customers=[{"customerNumber": 9}])
    responses.replace(
        responses.GET, f"{API}/invoices/drafts", json=fake_economic.collection([{"draftInvoiceNumber": 31}])
    )
    responses.put(
        f"{API}/invoices/drafts/31", json={"draftInvoiceNumber": 31, "grossAmount": 4496.0, "vatAmount": 869.2}
    )
    outcome = send()
    # Made by an attempt that died before recording it: this record's first document, so a create.
    assert outcome == Outcome("created", "", "created", "31")
    assert not calls("POST", "/invoices/drafts")
    lookup = calls("GET", "/invoices/drafts")[0]
    assert parse_qs(urlsplit(lookup.request.url).query)["filter"] == ["references.other$eq:iex:5500000000001042"]


@responses.activate
def test_foreign_currency_order_keeps_its_currency_and_the_customers_zone():
    data = {**DATA, "currency": "EUR", "presentment_currency": "EUR"}
    data["shipping_address"] = {**data["shipping_address"], "country": "Sweden", "country_code": "SE"}
    order = shopify.to_order(data, shopify_forms.DEFAULT_SETTINGS)
    order_api()
    send(order)
    body = json.loads(calls("POST", "/invoices/drafts")[0].request.body)
    assert body["currency"] == "EUR"
    assert body["recipient"]["vatZone"] == {"vatZoneNumber": 1}  # an EU consumer charged Danish VAT


# --- cancellations and credit notes --------------------------------------------------------------------------


@responses.activate
def test_a_cancelled_order_never_transferred_is_skipped():
    responses.get(f"{API}/invoices/drafts", json=fake_economic.collection([]))
    responses.get(f"{API}/invoices/booked", json=fake_economic.collection([]))
    outcome = send(
        shopify.to_order({**DATA, "cancelled_at": "2026-11-21T10:00:00+01:00"}, shopify_forms.DEFAULT_SETTINGS)
    )
    assert outcome == Outcome("skipped", "Cancelled in the shop before it was transferred")


@responses.activate
def test_cancelling_withdraws_the_draft():
    responses.delete(f"{API}/invoices/drafts/31", json={"message": "Deleted invoice.", "deletedCount": 1})
    mapping = Mapping("31", "draft")
    outcome = send(
        shopify.to_order({**DATA, "cancelled_at": "2026-11-21T10:00:00+01:00"}, shopify_forms.DEFAULT_SETTINGS),
        mapping,
    )
    assert outcome == Outcome("updated", "Cancelled in the shop: draft 31 deleted in e-conomic", "updated", "31")
    assert mapping.target_state == "deleted"


@responses.activate
def test_an_order_deleted_in_the_shop_leaves_its_booked_invoice_and_comes_back_on_a_new_document():
    deleted = replace(ORDER, cancelled=True, deleted=True)  # WooCommerce's trash
    outcome = send(deleted, Mapping("10001", "booked"))
    assert outcome.status == "skipped" and "booked invoice 10001 in e-conomic is left as it is" in outcome.reason
    assert not responses.calls
    order_api(customers=[{"customerNumber": 9}])
    withdrawn = Mapping("31", "deleted")
    outcome = send(ORDER, withdrawn)  # restored: a sale again, on a document of its own
    assert (outcome.status, withdrawn.target_state) == ("created", "draft")
    assert calls("POST", "/invoices/drafts")


@responses.activate
def test_cancelling_a_booked_invoice_credits_what_refunds_did_not():
    order_api(gross="-4496.00", vat="-869.20", customers=[{"customerNumber": 9}])
    cancelled = shopify.to_order(
        {**DATA, "cancelled_at": "2026-11-21T10:00:00+01:00"}, shopify_forms.DEFAULT_SETTINGS
    )
    mapping = Mapping("10001", "booked")
    outcome = send(cancelled, mapping)
    assert outcome == Outcome(
        "updated", "Cancelled in the shop: credit note 31 for invoice 10001", "updated", "10001"
    )
    body = json.loads(calls("POST", "/invoices/drafts")[0].request.body)
    assert [line["quantity"] for line in body["lines"]] == [-1.0, -2.0, -1.0, -1.0]
    assert body["notes"]["heading"].startswith("Credit note for order #1042, invoice 10001")
    assert (mapping.target_state, mapping.data) == ("credited", {"credit_note": "31", "refunds": []})


@responses.activate
def test_a_refund_becomes_a_credit_note_with_negative_quantities_for_the_invoice():
    refund = json.loads((PAYLOADS / "shopify_refund_450789469.json").read_text())
    credit = shopify.to_credit_note(refund, EXAMPLE, shopify_forms.DEFAULT_SETTINGS)
    order_api(
        gross="-399.29",
        vat="0",
        products={"IPOD2008GREEN": 1, "IPOD2008RED": 1, "IPOD2008BLACK": 1, "SALESTAX": 3},
    )
    mapping = Mapping()
    outcome = client(sales_tax_group=3).send_credit_note(
        credit, Mapping("10001", "booked"), mapping, lambda *a: None, lambda key: Mapping()
    )
    assert outcome == Outcome("created", "Credit note for invoice 10001", "created", "31")
    body = json.loads(calls("POST", "/invoices/drafts")[0].request.body)
    assert [(line["product"]["productNumber"], line["quantity"]) for line in body["lines"]] == [
        ("IPOD2008BLACK", -1.0), ("IPOD2008GREEN", -1.0), ("SALESTAX", -1.0),
    ]  # fmt: skip
    assert body["references"] == {"other": "iex:refund:509562969"}
    assert mapping.target_ref == "31"


def test_credit_note_documents_refer_to_their_invoice():
    credit = CreditNote(
        "7", "#1 refund 1", "1", "#1", None, "DKK", Decimal(10), ORDER.customer, [], note="damaged"
    )
    payload = transforms.credit_note_document(credit, "10001", 9, transforms.Plan(1), forms.DEFAULT_SETTINGS)
    assert payload["notes"] == {"heading": "Credit note for order #1, invoice 10001: damaged"}


def credit_api(*, drafts=(), booked=(), gross="-399.29"):
    """e-conomic for the documented refund of #1001: no credit note made before unless `drafts`/`booked` hold
    one."""
    order_api(
        gross=gross, vat="0", products={"IPOD2008GREEN": 1, "IPOD2008RED": 1, "IPOD2008BLACK": 1, "SALESTAX": 3}
    )
    responses.replace(responses.GET, f"{API}/invoices/drafts", json=fake_economic.collection(list(drafts)))
    responses.replace(responses.GET, f"{API}/invoices/booked", json=fake_economic.collection(list(booked)))
    responses.post(f"{API}/invoices/booked", json={"bookedInvoiceNumber": 10002}, status=201)


def send_credit(invoice, mapping=None, refund_id=None, **settings):
    refund = json.loads((PAYLOADS / "shopify_refund_450789469.json").read_text())
    if refund_id:
        refund["id"] = refund_id
    credit = shopify.to_credit_note(refund, EXAMPLE, shopify_forms.DEFAULT_SETTINGS)
    return client(sales_tax_group=3, **settings).send_credit_note(
        credit, invoice, mapping or Mapping(), lambda *a: None, lambda key: Mapping()
    )


@responses.activate
def test_a_refund_of_an_order_cancelled_before_booking_credits_nothing():
    outcome = send_credit(Mapping("31", "deleted"))
    assert outcome == Outcome(
        "skipped", "The order was cancelled before it was booked: its draft 31 was deleted, so nothing is credited"
    )
    assert not responses.calls


@responses.activate
def test_after_a_cancellation_credited_the_rest_only_refunds_made_before_it_are_credited():
    credited = Mapping("10001", "credited")
    credited.data = {"credit_note": "40", "refunds": ["509562969"]}
    later = send_credit(credited, refund_id=777)
    assert later == Outcome(
        "skipped", "The order's cancellation credited what was left of invoice 10001 (credit note 40)"
    )
    credit_api()
    before = send_credit(credited)  # made before the cancellation, which left it out of what it credited
    assert before.status == "created" and calls("POST", "/invoices/drafts")


@responses.activate
def test_a_credit_note_is_booked_only_once_its_invoice_is():
    credit_api()
    held_back = send_credit(Mapping("31", "draft"), document_type="booked")  # the invoice kept a totals warning
    assert held_back.status == "created" and not calls("POST", "/invoices/booked")
    responses.calls.reset()
    booked = send_credit(Mapping("10001", "booked"), document_type="booked")
    assert booked == Outcome("created", "Credit note for invoice 10001", "created", "10002")


@responses.activate
def test_a_credit_note_made_and_booked_by_an_attempt_that_died_is_found_not_made_twice():
    credit_api(booked=[{"bookedInvoiceNumber": 10009}])
    mapping = Mapping()
    outcome = send_credit(Mapping("10001", "booked"), mapping)
    assert outcome == Outcome("created", "", "created", "10009")
    assert (mapping.target_ref, mapping.target_state) == ("10009", "booked")
    assert not calls("POST", "/invoices/drafts")
    lookup = calls("GET", "/invoices/booked")[0]
    assert parse_qs(urlsplit(lookup.request.url).query)["filter"] == ["references.other$eq:iex:refund:509562969"]


@responses.activate
def test_cancelling_a_draft_deletes_the_draft_credit_notes_of_its_refunds():
    refund = json.loads((PAYLOADS / "shopify_refund_450789469.json").read_text())
    cancelled = shopify.to_order(
        {**EXAMPLE, "cancelled_at": "2026-11-21T10:00:00+01:00", "refunds": [refund]},
        shopify_forms.DEFAULT_SETTINGS,
    )
    responses.get(f"{API}/invoices/drafts", json=fake_economic.collection([{"draftInvoiceNumber": 32}]))
    responses.delete(f"{API}/invoices/drafts/31", json={})
    responses.delete(f"{API}/invoices/drafts/32", json={})
    mapping = Mapping("31", "draft")
    outcome = send(cancelled, mapping)
    assert outcome.reason == (
        "Cancelled in the shop: draft 31 deleted in e-conomic, and the draft credit note 32 of its refund"
    )
    assert mapping.target_state == "deleted" and len(calls("DELETE", "/invoices/drafts/32")) == 1


def test_discount_lines_book_the_vat_of_the_lines_they_discount():
    """A discount on a line with VAT goes on the discount product with VAT, one on a line without on the one without;
    a rate neither discount product books (6 % here) keeps its discount on the line, as a percentage."""
    chart = fake_chart()
    chart.rates[5] = {1: Decimal("0.06"), 2: ZERO, 3: ZERO, 4: ZERO}
    settings = {**forms.DEFAULT_SETTINGS, "discounts": "lines"}
    lines = [
        OrderLine(
            "product", "Bike", Decimal(1), Decimal(100), Decimal(90), Decimal("22.50"), Decimal("0.25"), "B"
        ),
        OrderLine("product", "Book", Decimal(1), Decimal(50), Decimal(45), ZERO, ZERO, "G", taxable=False),
        OrderLine("product", "Paper", Decimal(1), Decimal(20), Decimal(18), Decimal("1.08"), Decimal("0.06"), "P"),
    ]
    planned = transforms.plan(lines, "DK", chart, settings, {"B": 1, "G": 2, "P": 5})
    assert [(line.product, line.unit_price, line.discount) for line in planned.lines] == [
        ("B", Decimal("100.00"), 0),
        ("G", Decimal("50.00"), 0),
        ("P", Decimal("20.00"), Decimal("10.00")),
        ("DISCOUNT", Decimal("-10.00"), 0),
        ("DISCOUNT-NOVAT", Decimal("-5.00"), 0),
    ]
    assert [line.group for line in planned.lines[-2:]] == [1, 2]
    assert sum(net(line) for line in planned.lines) == sum(line.net for line in lines)


def test_an_item_given_away_is_a_full_discount_and_products_are_named_without_the_code():
    given_away = OrderLine("product", "Bell", Decimal(2), Decimal("47.60"), ZERO, ZERO, Decimal("0.25"), "BELL",
                           discount_codes=["FREEBELL"])  # fmt: skip
    (line,) = transforms.plan([given_away], "DK", fake_chart(), forms.DEFAULT_SETTINGS, {}).lines
    assert (line.unit_price, line.discount, net(line)) == (Decimal("47.60"), 100, 0)
    assert (line.description, line.name, line.price) == ("Bell (FREEBELL)", "Bell", Decimal("47.60"))


@responses.activate
def test_a_rounding_line_is_refused_on_a_product_with_vat_or_when_products_may_not_be_made():
    order_api(gross="4496.04", products={**PRODUCTS, "ROUNDING": 1})
    outcome = send()
    assert outcome.status == "warning"
    assert outcome.reason.endswith("the rounding product ROUNDING is in a product group with VAT in this VAT zone")
    assert not calls("PUT", "/invoices/drafts/31")
    responses.reset()
    order_api(gross="4496.04")
    outcome = send(auto_create_products=False)
    assert outcome.reason.endswith("a rounding line needs product ROUNDING, and creating products is off")
    assert not calls("POST", "/products")
    responses.reset()
    order_api(gross="4496.04", products={**PRODUCTS, "ROUNDING": 2})
    responses.put(f"{API}/invoices/drafts/31", json={"draftInvoiceNumber": 31, "grossAmount": 4496.02})
    outcome = send()
    assert outcome.reason.endswith("(still 0.02 after a rounding line)")


@responses.activate
def test_a_vat_code_whose_rate_cannot_be_read_books_nothing():
    fake_economic.chart()
    responses.replace(responses.GET, f"{API}/vat-accounts", json=fake_economic.collection([]))
    chart = client().read_chart()
    assert chart.rate(1, 1) is None and chart.rate(1, 2) == 0
