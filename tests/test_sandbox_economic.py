"""The fake e-conomic refuses what the real one refuses and offers what it offers (see sandbox/economic.py's
docstring for the rules and the documentation they come from). A sandbox per test on a free port, over real
HTTP, driven with `requests`. No database needed."""

import json
import re
import uuid
from datetime import datetime

import pytest
import requests

from sandbox.economic import decode_id, encode_id

TOKENS = {"X-AppSecretToken": "sandbox-app-secret", "X-AgreementGrantToken": "sandbox-grant"}
DEMO = {"X-AppSecretToken": "demo", "X-AgreementGrantToken": "demo"}
ERROR_KEYS = {"message", "errorCode", "developerHint", "logId", "httpStatusCode", "logTime"}


@pytest.fixture
def base(sandbox):
    return f"{sandbox.url}/economic"


@pytest.fixture
def api(base):
    """Call the e-conomic API with the sandbox's own tokens (or `headers`); a path or an absolute URL."""

    def call(method, path, body=None, headers=None, **params):
        url = path if path.startswith("http") else f"{base}/{path}"
        return requests.request(
            method, url, headers=TOKENS if headers is None else headers, json=body, params=params, timeout=5
        )

    return call


@pytest.fixture
def customer(api):
    """A new customer's number (a domestic one unless told)."""

    def create(**fields):
        body = {
            "name": "Nordic Bikes ApS",
            "currency": "DKK",
            "customerGroup": {"customerGroupNumber": 1},
            "paymentTerms": {"paymentTermsNumber": 1},
            "vatZone": {"vatZoneNumber": 1},
            **fields,
        }
        response = api("POST", "customers", body)
        assert response.status_code == 201, response.text
        return response.json()["customerNumber"]

    return create


def line(product="BIKE-RED", quantity=1, price=100, **fields):
    return {
        "product": {"productNumber": product},
        "description": product,
        "quantity": quantity,
        "unitNetPrice": price,
        **fields,
    }


def draft(customer_number, zone=1, lines=None, **fields):
    return {
        "date": "2025-01-31",
        "currency": "DKK",
        "customer": {"customerNumber": customer_number},
        "recipient": {"name": "Nordic Bikes ApS", "vatZone": {"vatZoneNumber": zone}},
        "paymentTerms": {"paymentTermsNumber": 1},
        "layout": {"layoutNumber": 19},
        "references": {"other": "shopify:#1001"},
        "lines": [line()] if lines is None else lines,
        **fields,
    }


def totals(document):
    return document["netAmount"], document["vatAmount"], document["grossAmount"]


def errors_at(response, *path):
    """The error entries at a path of the `errors` tree (ints pick the item with that arrayIndex)."""
    assert response.status_code == 400, response.text
    node = response.json()["errors"]
    for part in path:
        node = next(item for item in node if item["arrayIndex"] == part) if isinstance(part, int) else node[part]
    return node["errors"]


def assert_error_body(response, status, code=None):
    body = response.json()
    assert response.status_code == status, response.text
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"errors"}
    assert body["httpStatusCode"] == status
    assert uuid.UUID(body["logId"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", body["logTime"])
    datetime.fromisoformat(body["logTime"])
    if code:
        assert body["errorCode"] == code
    return body


# --- credentials -----------------------------------------------------------------------------------------------------


def test_the_sandbox_tokens_write_and_wrong_tokens_are_401(api, customer):
    assert customer() == 1
    for headers in ({**TOKENS, "X-AgreementGrantToken": "nope"}, {"X-AppSecretToken": "sandbox-app-secret"}, {}):
        refused = api("GET", "customers", headers=headers)
        assert assert_error_body(refused, 401, "E04010")["message"] == "Unauthorized"


def test_the_demo_tokens_read_but_never_write(api, customer):
    number = customer()
    assert api("GET", "self", headers=DEMO).status_code == 200
    assert api("GET", f"customers/{number}", headers=DEMO).json()["name"] == "Nordic Bikes ApS"
    for method, path, body in (
        ("POST", "customers", {"name": "X"}),
        ("PUT", f"customers/{number}", {"name": "X"}),
        ("DELETE", f"customers/{number}", None),
        ("POST", "invoices/drafts", draft(number)),
    ):
        refused = api(method, path, body, headers=DEMO)
        message = assert_error_body(refused, 403, "E04030")["message"]
        assert "read-only" in message and "GET only" in message
    assert api("GET", "customers").json()["pagination"]["results"] == 1


# --- the error body ----------------------------------------------------------------------------------------------------


def test_validation_errors_mirror_the_request_like_the_documented_example(api, base, customer):
    """The example of the docs' "Annotated errors", as the sandbox answers it (the docs put the quantity error at
    the invoice level; the sandbox puts it on its line, see test_a_line_with_a_product_needs_quantity...)."""
    customer()
    body = draft(
        987987987,
        currency="ZUL",
        lines=[
            line(unit={"unitNumber": 10}, price=10.12345),
            {"product": {}, "description": "Handlebar", "quantity": 1, "unitNetPrice": 10},
        ],
    )
    refused = api("POST", "invoices/drafts", body)
    answer = assert_error_body(refused, 400)
    assert (answer["message"], answer["developerHint"]) == (
        "Validation error.",
        "Inspect validation errors and correct your request.",
    )
    assert answer["errors"] == {
        "currency": {
            "errors": [
                {
                    "errorCode": "E06000",
                    "message": "currency does not exist.",
                    "value": "ZUL",
                    "developerHint": f"Find a list of currencies at {base}/currencies.",
                }
            ]
        },
        "customer": {
            "errors": [
                {
                    "errorCode": "E06000",
                    "message": "customer does not exist.",
                    "value": 987987987,
                    "developerHint": f"Find a list of resources at {base}/customers.",
                }
            ]
        },
        "lines": [
            {
                "arrayIndex": 0,
                "unit": {
                    "errors": [
                        {
                            "errorCode": "E06000",
                            "message": "unit does not exist.",
                            "value": 10,
                            "developerHint": f"Find a list of units at {base}/units.",
                        }
                    ]
                },
                "unitNetPrice": {
                    "errors": [
                        {
                            "errorCode": "E04740",
                            "message": "unitNetPrice scale cannot be greater then two decimal places.",
                            "value": 10.12345,
                            "developerHint": "Please check the format of your data.",
                        }
                    ]
                },
            },
            {
                "arrayIndex": 1,
                "product": {
                    "errors": [
                        {
                            "errorCode": "E04500",
                            "message": "No identifiers present on product. "
                            "Please include either a self link or a productNumber.",
                            "developerHint": f"Find a list of resources at {base}/products.",
                        }
                    ]
                },
            },
        ],
    }


def test_every_error_has_the_documented_body(api, sandbox):
    assert_error_body(api("GET", "nowhere"), 404, "E04040")
    assert_error_body(api("GET", "customers/1"), 404, "E04040")
    missing = assert_error_body(api("POST", "customers", {"name": "X"}), 400, "E04300")
    assert set(missing["errors"]) == {"currency", "customerGroup", "paymentTerms", "vatZone"}
    assert missing["errors"]["vatZone"] == {
        "errors": [
            {
                "errorCode": "E04300",
                "message": "Property vatZone is required.",
                "developerHint": "Please check your request data.",
            }
        ]
    }
    requests.post(
        f"{sandbox.url}/_sandbox/config", json={"faults": [{"path_contains": "/self", "status": 503}]}, timeout=5
    )
    assert_error_body(api("GET", "self"), 503, "E05030")


# --- two decimals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unitNetPrice", "quantity", "discountPercentage"])
def test_line_numbers_have_at_most_two_decimals(api, customer, name):
    number = customer()
    for fine in (10, 10.1, 10.25):
        created = api("POST", "invoices/drafts", draft(number, lines=[line(**{name: fine})]))
        assert created.status_code == 201, created.text
    body = draft(number, lines=[line(), line(**{name: 10.123})])
    (error,) = errors_at(api("POST", "invoices/drafts", body), "lines", 1, name)
    assert error == {
        "errorCode": "E04740",
        "message": f"{name} scale cannot be greater then two decimal places.",
        "value": 10.123,
        "developerHint": "Please check the format of your data.",
    }
    # A binary float that is not what it prints as two decimals: 0.1 + 0.2 = 0.30000000000000004.
    refused = api("POST", "invoices/drafts", draft(number, lines=[line(**{name: 0.1 + 0.2})]))
    assert errors_at(refused, "lines", 0, name)[0]["errorCode"] == "E04740"


@pytest.mark.parametrize("name", ["salesPrice", "costPrice", "recommendedPrice"])
def test_product_prices_have_at_most_two_decimals(api, name):
    body = {"productNumber": "BELL", "name": "Bell", "productGroup": {"productGroupNumber": 1}}
    (error,) = errors_at(api("POST", "products", {**body, name: 47.601}), name)
    assert (error["errorCode"], error["message"]) == (
        "E04740",
        f"{name} scale cannot be greater then two decimal places.",
    )
    assert api("POST", "products", {**body, name: 47.6}).status_code == 201


# --- verbs, media types, Location --------------------------------------------------------------------------------------


def test_every_create_answers_201_with_location(api, customer):
    number = customer()
    again = {
        key: value for key, value in api("GET", f"customers/{number}").json().items() if key != "customerNumber"
    }
    product = {"productNumber": "BELL", "name": "Bell", "productGroup": {"productGroupNumber": 1}}
    for path, body in (
        ("customers", again),
        ("products", product),
        ("invoices/drafts", draft(number)),
        ("orders/drafts", draft(number)),
        ("invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}}),
    ):
        created = api("POST", path, body)
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        assert location == created.json()["self"]
        assert api("GET", location).json() == created.json()


def test_unsupported_methods_are_405(api, customer):
    number = customer()
    api("POST", "invoices/drafts", draft(number))
    for method, path in (
        ("PATCH", f"customers/{number}"),
        ("PATCH", "invoices/drafts/1"),
        ("PUT", "customers"),
        ("PUT", "invoices/drafts"),
        ("DELETE", "customers"),
        ("DELETE", "products"),
        ("POST", "self"),
        ("POST", "vat-zones"),
        ("DELETE", "invoices/booked"),
    ):
        refused = api(method, path, {"name": "X"})
        body = assert_error_body(refused, 405, "E04050")
        assert method in body["message"]
        assert method not in refused.headers["Allow"]
    assert api("GET", "invoices/drafts/1").status_code == 200  # untouched


def test_bodies_must_be_sent_as_json(api, base, customer):
    number = customer()
    text = '{"name": "X"}'
    for headers in (
        TOKENS,
        {**TOKENS, "Content-Type": "text/plain"},
        {**TOKENS, "Content-Type": "application/xml"},
    ):
        refused = requests.post(f"{base}/customers", data=text, headers=headers, timeout=5)
        assert_error_body(refused, 415, "E04150")
        refused = requests.put(f"{base}/customers/{number}", data=text, headers=headers, timeout=5)
        assert_error_body(refused, 415)
    body = {
        "name": "X",
        "currency": "DKK",
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
    }
    with_charset = {**TOKENS, "Content-Type": "application/json; charset=UTF-8"}
    created = requests.post(f"{base}/customers", data=json.dumps(body), headers=with_charset, timeout=5)
    assert created.status_code == 201


def test_false_booleans_are_left_out_and_nulls_are_refused(api, customer):
    body = {"productNumber": "BELL", "name": "Bell", "productGroup": {"productGroupNumber": 1}, "barred": False}
    created = api("POST", "products", body).json()
    assert "barred" not in created
    assert api("PUT", "products/BELL", {**body, "barred": True}).json()["barred"] is True
    zones = {zone["vatZoneNumber"]: zone for zone in api("GET", "vat-zones").json()["collection"]}
    assert zones[1]["enabledForSupplier"] is True
    assert "enabledForSupplier" not in zones[4]

    number = customer()
    body = draft(number, lines=[line(), line(description=None)])
    refused = api("POST", "invoices/drafts", body)
    assert refused.json()["message"] == "Null values are not allowed: lines[1].description"
    assert errors_at(refused, "lines", 1, "description")[0]["errorCode"] == "E04300"


# --- ids in URLs -------------------------------------------------------------------------------------------------------


def test_self_link_encoding_follows_the_docs():
    assert encode_id("My Awesome Product_Discount5%") == "My_9_Awesome_9_Product_8_Discount5_3_"  # §1.6 example
    assert encode_id("<>*%:&/\\_ ?.#+") == "".join(f"_{n}_" for n in range(14))
    assert encode_id("Blå-1~") == "Bl%C3%A5-1~"
    for text in ("A B/C_1.5", "_8_", "x__y", "50% off!", "<tag>", "Blå"):
        assert decode_id(encode_id(text)) == text
    assert decode_id("A_9_B") == "A B"
    for raw in ("A%20B", "A_B", "C%2FD", "x_99_y", "1.5", "50%25"):
        assert decode_id(raw) is None


def test_a_product_number_round_trips_through_its_self_link(api, base):
    number = "A B/C_1.5"
    body = {"productNumber": number, "name": "Odd", "productGroup": {"productGroupNumber": 1}, "salesPrice": 10}
    created = api("POST", "products", body)
    assert created.headers["Location"] == f"{base}/products/A_9_B_6_C_8_1_11_5"
    assert created.json()["productNumber"] == number  # raw inside JSON
    assert api("GET", created.headers["Location"]).json()["productNumber"] == number
    assert api("PUT", created.headers["Location"], {**body, "name": "Odder"}).json()["name"] == "Odder"
    # As a client that percent-encodes (or sends raw underscores) would ask: nothing there.
    for path in ("products/A%20B%2FC_1.5", "products/A_9_B_6_C_1_11_5", "products/A_9_B_6_C_8_1.5"):
        assert api("GET", path).status_code == 404
    # The self link also works as a reference, and the number as a filter value (where only $ ( ) * , [ ] are
    # escaped).
    customer_body = {
        "name": "X",
        "currency": "DKK",
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
    }
    api("POST", "customers", customer_body)
    by_link = draft(1, lines=[{**line(), "product": {"self": created.headers["Location"]}}])
    assert api("POST", "invoices/drafts", by_link).json()["lines"][0]["product"]["productNumber"] == number
    found = api("GET", "products", filter=f"productNumber$eq:{number}").json()["collection"]
    assert [product["self"] for product in found] == [created.headers["Location"]]


# --- collections -------------------------------------------------------------------------------------------------------


def test_pages_link_to_the_next_until_the_last(api, base):
    first = api("GET", "products", pagesize=4, filter="productGroup.productGroupNumber$eq:1").json()
    assert first["pagination"] == {
        "maxPageSizeAllowed": 1000,
        "skipPages": 0,
        "pageSize": 4,
        "results": 9,
        "resultsWithoutFilter": 10,
        "firstPage": f"{base}/products?skippages=0&pagesize=4&filter=productGroup.productGroupNumber%24eq%3A1",
        "nextPage": f"{base}/products?skippages=1&pagesize=4&filter=productGroup.productGroupNumber%24eq%3A1",
        "lastPage": f"{base}/products?skippages=2&pagesize=4&filter=productGroup.productGroupNumber%24eq%3A1",
    }
    seen, page = [], first
    while True:
        seen += [product["productNumber"] for product in page["collection"]]
        if "nextPage" not in page["pagination"]:
            break
        page = api("GET", page["pagination"]["nextPage"]).json()
    assert len(seen) == len(set(seen)) == 9 and "BOOK-GUIDE" not in seen
    assert api("GET", "products").json()["pagination"]["pageSize"] == 20
    assert "nextPage" not in api("GET", "products").json()["pagination"]
    assert api("GET", "products", pagesize=1000).status_code == 200
    for params in ({"pagesize": 1001}, {"pagesize": 0}, {"skippages": -1}, {"pagesize": "many"}):
        assert_error_body(api("GET", "products", **params), 400)


def test_filters_follow_the_documented_grammar(api, customer):
    tricky = "Smith $ Sons (Nordic), *the* [best]"
    numbers = {
        "plain": customer(name="Plain", email="plain@example.com", city="Aarhus"),
        "tricky": customer(name=tricky, email="Tricky@Example.com", city="Odense"),
        "ten": customer(customerNumber=10, name="Ten", city="Aarhus", currency="EUR"),
        "nine": customer(customerNumber=9, name="Nine", city="Vejle", email="nine@example.com"),
    }
    escaped = "".join("$" + ch if ch in "$()*,[]" else ch for ch in tricky)

    def found(text):
        response = api("GET", "customers", filter=text)
        assert response.status_code == 200, response.text
        return sorted(each["customerNumber"] for each in response.json()["collection"])

    plain, tricky_, ten, nine = numbers.values()
    assert found(f"name$eq:{escaped}") == [tricky_]
    assert found("email$eq:TRICKY@example.com") == [tricky_]  # case-insensitive
    assert found("name$ne:plain") == sorted([tricky_, ten, nine])
    assert found("customerNumber$gt:9") == [ten]  # numbers as numbers: 10 > 9
    assert found("customerNumber$lte:9") == sorted([plain, tricky_, nine])
    assert found("name$eq:Plain$or:name$eq:Ten") == sorted([plain, ten])
    assert found("city$eq:aarhus$and:(currency$eq:EUR$or:name$eq:Plain)") == sorted([plain, ten])
    assert found("(city$eq:aarhus$and:currency$eq:EUR)$or:name$eq:Nine") == sorted([ten, nine])
    assert found("city$eq:Vejle$or:city$eq:Odense$and:name$eq:Nine") == [nine]  # $and: binds tighter
    assert found("name$like:*e*") == sorted([tricky_, ten, nine])
    assert found("name$like:n*") == [nine]
    assert found("name$like:LAI") == [plain]  # no wildcard: contains
    assert found("name$like:$*the$*") == [tricky_]  # an escaped star is a star
    assert found("customerNumber$in:[1,9,10]") == sorted([plain, nine, ten])
    assert found("customerNumber$nin:[1,9,10]") == [tricky_]
    assert found("email$eq:$null:") == [ten]
    assert found("email$ne:$null:$and:customerNumber$in:[9,$null:]") == [nine]

    def refused(text):
        return assert_error_body(api("GET", "customers", filter=text), 400, "E04300")["message"]

    assert "mobilePhone" in refused("mobilePhone$eq:1")  # not filterable
    refused(f"name$eq:{tricky}")  # not escaped
    refused("name$eq:a*b")  # a star outside $like:
    refused("name$in:[a,b]")  # $in: on a string property
    refused("customerNumber$in:[" + ",".join(str(n) for n in range(201)) + "]")
    assert found("customerNumber$in:[" + ",".join(str(n) for n in range(200)) + "]") == sorted(numbers.values())
    refused("customerNumber$eq:ten")
    refused("(name$eq:Ten")
    refused("name$eq:Ten)")
    refused("name$foo:Ten")
    refused("name$gt:$null:")


def test_documents_are_filtered_by_their_documented_properties(api, customer):
    number = customer()
    api("POST", "invoices/drafts", draft(number, references={"other": "iex:1"}))
    api("POST", "invoices/drafts", draft(number, currency="EUR", references={"other": "iex:2"}))
    api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}})

    def found(path, text):
        response = api("GET", path, filter=text)
        assert response.status_code == 200, response.text
        return [each["references"]["other"] for each in response.json()["collection"]]

    assert found("invoices/drafts", "references.other$eq:iex:2") == ["iex:2"]
    assert found("invoices/drafts", f"customer.customerNumber$eq:{number}$and:currency$eq:eur") == ["iex:2"]
    assert found("invoices/drafts", "draftInvoiceNumber$in:[1,2]$and:date$gte:2025-01-01") == ["iex:2"]
    assert found("invoices/booked", "bookedInvoiceNumber$eq:10001") == ["iex:1"]
    assert found("invoices/booked", "recipient.vatZone.vatZoneNumber$eq:1") == ["iex:1"]
    expensive = api("GET", "products", filter="salesPrice$gt:3000$and:barred$eq:false").json()["collection"]
    assert [product["productNumber"] for product in expensive] == ["BIKE-RED", "BIKE-BLUE"]
    assert api("GET", "products", filter="barred$eq:true").json()["collection"] == []
    assert api("GET", "invoices/booked", filter="draftInvoiceNumber$eq:1").status_code == 400
    assert api("GET", "products", filter="inventory.available$gt:1").status_code == 400


# --- the chart -----------------------------------------------------------------------------------------------------------


def test_the_chart_of_a_danish_agreement_is_readable(api):
    me = api("GET", "self").json()
    assert me["settings"] == {"baseCurrency": "DKK"}
    assert me["agreementType"]["name"] == "denmark"

    def collection(path):
        body = api("GET", path).json()
        assert body["pagination"]["results"] == len(body["collection"])
        for each in body["collection"]:  # every entity's self link answers it
            assert api("GET", each["self"]).json() == each
        return body["collection"]

    assert [(z["vatZoneNumber"], z["name"]) for z in collection("vat-zones")] == [
        (1, "Domestic"),
        (2, "EU"),
        (3, "Abroad"),
        (4, "Domestic exempt"),
    ]
    assert all(zone["enabledForCustomer"] for zone in collection("vat-zones"))
    u25 = api("GET", "vat-accounts/U25").json()
    assert (u25["name"], u25["ratePercentage"], u25["vatType"]["name"]) == ("Udgående moms", 25, "Salgsmoms")
    assert api("GET", u25["account"]["self"]).json()["accountType"] == "status"
    accounts = {a["accountNumber"]: a for a in collection("accounts")}
    assert accounts[1010]["name"] == "Salg af varer/ydelser m/moms"
    assert accounts[1010]["vatAccount"]["vatCode"] == "U25"
    assert api("GET", accounts[1010]["vatAccount"]["self"]).json()["ratePercentage"] == 25
    assert "vatAccount" not in accounts[1020]
    assert (accounts[7300]["name"], accounts[7300]["accountType"]) == ("Skyldig salgsskat", "status")
    assert {a["accountType"] for a in accounts.values()} <= {
        "profitAndLoss",
        "status",
        "totalFrom",
        "heading",
        "headingStart",
        "sumInterval",
        "sumAlpha",
    }
    assert {a["debitCredit"] for a in accounts.values()} == {"debit", "credit"}
    assert api("GET", "accounts", filter="accountType$eq:status").json()["pagination"]["results"] == 4

    expected = {
        (1, "Varer m/moms"): [1010, 1030, 1040, 1020],
        (2, "Varer u/moms"): [1020, 1030, 1040, 1020],
        (3, "Salgsskat (udenlandsk)"): [7300, 7300, 7300, 7300],
        (4, "Ydelser"): [1010, 1030, 1050, 1020],
    }
    groups = collection("product-groups")
    assert [(g["productGroupNumber"], g["name"]) for g in groups] == list(expected)
    for group, accounts_by_zone in zip(groups, expected.values(), strict=True):
        entries = collection(group["salesAccounts"])
        assert [e["vatZone"]["vatZoneNumber"] for e in entries] == [1, 2, 3, 4]
        assert [e["salesAccount"]["accountNumber"] for e in entries] == accounts_by_zone
        for entry in entries:
            has_vat = entry["salesAccount"]["accountNumber"] == 1010
            assert ("vatAccount" in entry["salesAccount"]) == has_vat
    assert len(collection(groups[1]["products"])) == 1  # the book
    assert [(layout["layoutNumber"], layout["name"]) for layout in collection("layouts")] == [(19, "Faktura")]
    (terms,) = collection("payment-terms")
    assert (terms["paymentTermsNumber"], terms["name"], terms["paymentTermsType"], terms["daysOfCredit"]) == (
        1,
        "Netto 8 dage",
        "net",
        8,
    )
    assert [g["name"] for g in collection("customer-groups")] == ["Danske kunder", "Udenlandske kunder"]
    assert [(u["unitNumber"], u["name"]) for u in collection("units")] == [(1, "stk.")]
    assert [c["code"] for c in collection("currencies")] == ["DKK", "EUR", "USD", "SEK", "NOK", "GBP"]


# --- VAT, currencies, credit notes ------------------------------------------------------------------------------------


@pytest.fixture
def products(api):
    """A service (group 4) and a foreign sales tax product (group 3), next to the seeded BIKE-RED (group 1, 25 %
    at home) and BOOK-GUIDE (group 2, no VAT)."""
    for number, group in (("SERVICE", 4), ("SALES-TAX", 3)):
        body = {"productNumber": number, "name": number, "productGroup": {"productGroupNumber": group}}
        assert api("POST", "products", body).status_code == 201


@pytest.mark.parametrize(
    ("zone", "vat"),
    [
        (1, 25.0 + 12.5),  # domestic: goods and services with VAT (1010 -> U25), the book without (1020)
        (2, 0.0),  # EU: 1030, no VAT account
        (3, 0.0),  # abroad: 1040 and 1050
        (4, 0.0),  # domestic exempt: 1020
    ],
)
def test_vat_follows_the_recipients_zone_through_the_sales_accounts(api, customer, products, zone, vat):
    number = customer(vatZone={"vatZoneNumber": zone})
    lines = [
        line("BIKE-RED", 1, 100),
        line("BOOK-GUIDE", 2, 25),
        line("SERVICE", 1, 50),
        line("SALES-TAX", 1, 7.5),
    ]
    created = api("POST", "invoices/drafts", draft(number, zone, lines))
    assert created.status_code == 201, created.text
    assert totals(created.json()) == (207.5, vat, 207.5 + vat)
    booked = api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}}).json()
    assert totals(booked) == totals(created.json())
    rates = [25.0, 0.0, 25.0, 0.0] if zone == 1 else [0.0] * 4
    assert [(each["totalNetAmount"], each["vatRate"]) for each in booked["lines"]] == list(
        zip([100.0, 50.0, 50.0, 7.5], rates, strict=True)
    )
    assert sum(each["vatAmount"] for each in booked["lines"]) == vat


def test_line_amounts_are_rounded_per_line(api, customer):
    number = customer()
    # 0.50 each at 25 % is 0.125 of VAT: 0.13 per line, 0.26 for both (not 0.25 from the total).
    # 3 at 33.33 less 12.5 % is 87.49125 -> 87.49.
    lines = [line(price=0.5), line(price=0.5), line("BOOK-GUIDE", 3, 33.33, discountPercentage=12.5)]
    document = api("POST", "invoices/drafts", draft(number, lines=lines)).json()
    assert totals(document) == (88.49, 0.26, 88.75)
    assert (document["roundingAmount"], document["exchangeRate"]) == (0.0, 100.0)
    assert (document["netAmountInBaseCurrency"], document["grossAmountInBaseCurrency"]) == (88.49, 88.75)


def test_a_credit_note_is_an_invoice_with_negative_quantities(api, customer, sandbox):
    number = customer()
    lines = [line("BIKE-RED", -1, 3999.2), line("BOOK-GUIDE", -3, 199, discountPercentage=12.5)]
    credit = api("POST", "invoices/drafts", draft(number, lines=lines)).json()
    assert totals(credit) == (-4521.58, -999.8, -5521.38)
    assert credit["grossAmountInBaseCurrency"] == -5521.38
    booked = sandbox.book_draft(credit["draftInvoiceNumber"])
    assert totals(booked) == totals(credit)
    assert [(each["totalNetAmount"], each["vatAmount"]) for each in booked["lines"]] == [
        (-3999.2, -999.8),
        (-522.38, 0.0),
    ]
    assert booked["remainder"] == -5521.38


def test_currencies_and_exchange_rates(api, customer):
    number = customer(currency="EUR", vatZone={"vatZoneNumber": 2})
    daily = api("POST", "invoices/drafts", draft(number, currency="EUR", lines=[line(price=100)])).json()
    assert (daily["currency"], daily["exchangeRate"]) == ("EUR", 746.0)
    assert (daily["netAmountInBaseCurrency"], daily["grossAmountInBaseCurrency"]) == (746.0, 932.5)
    given = api("POST", "invoices/drafts", draft(number, 2, currency="EUR", exchangeRate=745.5)).json()
    assert (given["exchangeRate"], given["vatAmount"], given["netAmountInBaseCurrency"]) == (745.5, 0.0, 745.5)
    for code, rate in (("USD", 690.0), ("SEK", 64.0), ("NOK", 63.0), ("GBP", 870.0), ("DKK", 100.0)):
        assert api("POST", "invoices/drafts", draft(number, currency=code)).json()["exchangeRate"] == rate
    # Without a price, a line takes the product's sales price (in DKK) in the document's currency.
    priced = api("POST", "invoices/drafts", draft(number, currency="EUR", lines=[line(price=None)]))
    assert priced.status_code == 400  # a null, of course
    body = draft(number, currency="EUR", lines=[{k: v for k, v in line().items() if k != "unitNetPrice"}])
    assert api("POST", "invoices/drafts", body).json()["lines"][0]["unitNetPrice"] == 536.09  # 3999.20 / 7.46
    assert (
        errors_at(api("POST", "invoices/drafts", draft(number, currency="XXX")), "currency")[0]["value"] == "XXX"
    )
    assert errors_at(api("POST", "invoices/drafts", draft(number, exchangeRate=0)), "exchangeRate")
    assert errors_at(api("POST", "customers", {"currency": "eur"}), "currency")[0]["errorCode"] == "E06000"


# --- drafts, booking -------------------------------------------------------------------------------------------------------


def test_drafts_need_the_documented_properties_within_their_limits(api, customer):
    number = customer()
    refused = api("POST", "invoices/drafts", {"lines": []})
    assert set(refused.json()["errors"]) == {"currency", "customer", "date", "layout", "paymentTerms", "recipient"}
    refused = api("POST", "invoices/drafts", {**draft(number), "recipient": {"address": "Vej 1"}})
    assert set(refused.json()["errors"]["recipient"]) == {"name", "vatZone"}
    for fields, path in (
        ({"references": {"other": "x" * 251}}, ("references", "other")),
        ({"notes": {"heading": "x" * 251}}, ("notes", "heading")),
        ({"notes": {"textLine1": "x" * 1001}}, ("notes", "textLine1")),
        ({"recipient": {"name": "x" * 251, "vatZone": {"vatZoneNumber": 1}}}, ("recipient", "name")),
        ({"lines": [line(description="x" * 2501)]}, ("lines", 0, "description")),
        ({"lines": [line("X" * 26)]}, ("lines", 0, "product", "productNumber")),
        ({"date": "31-01-2025"}, ("date",)),
        ({"customer": {"customerNumber": "1"}}, ("customer", "customerNumber")),
        ({"recipient": "Jane"}, ("recipient",)),
        ({"lines": {"product": "BIKE-RED"}}, ("lines",)),
    ):
        assert (
            errors_at(api("POST", "invoices/drafts", draft(number, **fields)), *path)[0]["errorCode"] == "E04300"
        )
    assert api("POST", "invoices/drafts", draft(number, references={"other": "x" * 250})).status_code == 201
    assert api("POST", "invoices/drafts", draft(number, lines=[])).status_code == 201


def test_unknown_references_are_e06000_at_their_place(api, customer):
    number = customer()
    for fields, path, value in (
        ({"customer": {"customerNumber": 99}}, ("customer",), 99),
        ({"layout": {"layoutNumber": 5}}, ("layout",), 5),
        ({"paymentTerms": {"paymentTermsNumber": 2}}, ("paymentTerms",), 2),
        ({"recipient": {"name": "X", "vatZone": {"vatZoneNumber": 9}}}, ("recipient", "vatZone"), 9),
        ({"lines": [line(), line("NOPE")]}, ("lines", 1, "product"), "NOPE"),
        ({"lines": [line(unit={"unitNumber": 2})]}, ("lines", 0, "unit"), 2),
        ({"currency": "ZUL"}, ("currency",), "ZUL"),
    ):
        (error,) = errors_at(api("POST", "invoices/drafts", draft(number, **fields)), *path)
        assert (error["errorCode"], error["message"], error["value"]) == (
            "E06000",
            f"{path[-1]} does not exist.",
            value,
        )
    # A reference may be its self link instead of its id.
    by_link = draft(number, customer={"self": api("GET", f"customers/{number}").json()["self"]})
    assert api("POST", "invoices/drafts", by_link).json()["customer"]["customerNumber"] == number


def test_a_line_with_a_product_needs_quantity_and_description(api, customer):
    number = customer()
    bare = {"product": {"productNumber": "BIKE-RED"}, "unitNetPrice": 10}
    refused = api("POST", "invoices/drafts", draft(number, lines=[line(), bare]))
    (quantity,) = errors_at(refused, "lines", 1, "quantity")
    assert (quantity["errorCode"], quantity["message"]) == (
        "E04730",
        "Property quantity must have a value when product is set.",
    )
    assert errors_at(refused, "lines", 1, "description")
    assert [item["arrayIndex"] for item in refused.json()["errors"]["lines"]] == [1]


def test_put_replaces_the_whole_draft(api, customer):
    number = customer()
    created = api("POST", "invoices/drafts", draft(number, notes={"heading": "Order 1"})).json()
    replacement = draft(number, lines=[line("BOOK-GUIDE", 2, 10)])
    replacement.pop("references")
    replaced = api("PUT", "invoices/drafts/1", replacement)
    assert replaced.status_code == 200
    document = replaced.json()
    assert "notes" not in document and "references" not in document
    assert [each["product"]["productNumber"] for each in document["lines"]] == ["BOOK-GUIDE"]
    assert (document["draftInvoiceNumber"], totals(document)) == (1, (20.0, 0.0, 20.0))
    # Read-only fields sent back (as after GET, change, PUT) are ignored.
    again = api("PUT", created["self"], {**api("GET", created["self"]).json(), "netAmount": 1})
    assert again.json() == document
    assert errors_at(api("PUT", "invoices/drafts/1", {"lines": []}), "recipient")
    assert api("PUT", "invoices/drafts/2", replacement).status_code == 404


def test_deleting_drafts_answers_the_documented_body(api, base, customer):
    number = customer()
    for reference in ("a", "b", "c"):
        api("POST", "invoices/drafts", draft(number, references={"other": reference}))
    assert api("DELETE", "invoices/drafts/2").json() == {
        "message": "Deleted invoice.",
        "deletedCount": 1,
        "deletedItems": [{"draftInvoiceNumber": 2, "self": f"{base}/invoices/drafts/2"}],
    }
    assert api("DELETE", "invoices/drafts/2").status_code == 404
    everything = api("DELETE", "invoices/drafts")
    assert (everything.status_code, everything.json()["message"], everything.json()["deletedCount"]) == (
        200,
        "Deleted 2 invoices.",
        2,
    )
    assert api("GET", "invoices/drafts").json()["collection"] == []


def test_booking_a_draft(api, base, customer):
    number = customer()
    for _ in range(3):
        api("POST", "invoices/drafts", draft(number))
    booked = api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}})
    assert (booked.status_code, booked.headers["Location"]) == (201, f"{base}/invoices/booked/10001")
    invoice = booked.json()
    assert invoice["bookedInvoiceNumber"] == 10001 and "draftInvoiceNumber" not in invoice
    assert invoice["references"] == {"other": "shopify:#1001"}
    assert invoice["lines"][0] | {"product": None} == {
        "lineNumber": 1,
        "sortKey": 1,
        "product": None,
        "description": "BIKE-RED",
        "quantity": 1,
        "unitNetPrice": 100,
        "totalNetAmount": 100.0,
        "vatRate": 25.0,
        "vatAmount": 25.0,
    }
    assert (invoice["remainder"], invoice["dueDate"]) == (125.0, "2025-02-08")
    assert api("GET", "invoices/drafts/1").status_code == 404
    assert api("PUT", "invoices/drafts/1", draft(number)).status_code == 404
    twice = api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}})
    assert errors_at(twice, "draftInvoice")[0]["message"] == "draftInvoice does not exist."

    by_link = {"draftInvoice": {"self": f"{base}/invoices/drafts/2"}, "bookWithNumber": 7}
    assert api("POST", "invoices/booked", by_link).json()["bookedInvoiceNumber"] == 7
    taken = api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 3}, "bookWithNumber": 7})
    assert errors_at(taken, "bookWithNumber")[0]["value"] == 7
    assert api("PUT", "invoices/booked/20", {"draftInvoice": {"draftInvoiceNumber": 3}}).status_code == 201
    assert [each["bookedInvoiceNumber"] for each in api("GET", "invoices/booked").json()["collection"]] == [
        10001,
        7,
        20,
    ]
    assert errors_at(api("POST", "invoices/booked", {}), "draftInvoice")[0]["message"] == (
        "Property draftInvoice is required."
    )


def test_what_cannot_be_booked(api, customer):
    number = customer()
    api("POST", "invoices/drafts", draft(number, lines=[]))
    assert errors_at(api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 1}}), "draftInvoice")
    bell = {"productNumber": "BELL", "name": "Bell", "productGroup": {"productGroupNumber": 1}}
    api("POST", "products", bell)
    api("POST", "invoices/drafts", draft(number, lines=[line("BELL")]))
    api("PUT", "products/BELL", {**bell, "barred": True})
    refused = api("POST", "invoices/booked", {"draftInvoice": {"draftInvoiceNumber": 2}})
    assert "barred" in errors_at(refused, "draftInvoice")[0]["message"]
    assert api("GET", "invoices/drafts/2").status_code == 200


def test_the_accountant_books_a_draft_through_the_control_api(api, sandbox, customer):
    number = customer()
    api("POST", "invoices/drafts", draft(number))
    booked = requests.post(f"{sandbox.url}/_sandbox/economic/drafts/1/book", timeout=5)
    assert booked.status_code == 201
    assert booked.json()["bookedInvoiceNumber"] == 10001
    assert booked.json()["self"] == f"{sandbox.url}/economic/invoices/booked/10001"
    assert api("GET", "invoices/booked/10001").json() == booked.json()
    assert requests.post(f"{sandbox.url}/_sandbox/economic/drafts/1/book", timeout=5).status_code == 404
    assert sandbox.book_draft(1) is None
    api("POST", "invoices/drafts", draft(number, lines=[]))
    assert requests.post(f"{sandbox.url}/_sandbox/economic/drafts/2/book", timeout=5).status_code == 400
    with pytest.raises(ValueError, match="no lines"):
        sandbox.book_draft(2)
    assert len(requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["economic"]["booked"]) == 1


def test_orders_are_validated_like_drafts(api, customer):
    number = customer()
    refused = api("POST", "orders/drafts", draft(number, lines=[line(price=9.999)]))
    assert errors_at(refused, "lines", 0, "unitNetPrice")[0]["errorCode"] == "E04740"
    order = api("POST", "orders/drafts", draft(number))
    assert (order.status_code, order.json()["orderNumber"], order.json()["grossAmount"]) == (201, 1, 125.0)
    assert api("PUT", "orders/drafts/1", draft(number, 3)).json()["vatAmount"] == 0.0
    assert api("DELETE", "orders/drafts/1").status_code == 204
    assert api("DELETE", "orders/drafts/1").status_code == 404


# --- customers and products ----------------------------------------------------------------------------------------------


def test_customers(api, customer):
    assert customer() == 1
    assert customer(customerNumber=500) == 500
    assert customer() == 501
    taken = api("POST", "customers", {**api("GET", "customers/1").json(), "customerNumber": 500})
    assert errors_at(taken, "customerNumber")[0]["value"] == 500
    unknown = api(
        "POST", "customers", {"name": "X", "currency": "DKK", "customerGroup": {"customerGroupNumber": 3}}
    )
    assert errors_at(unknown, "customerGroup")[0]["message"] == "customerGroup does not exist."
    assert errors_at(api("POST", "customers", {"name": "", "currency": "DKK"}), "name")

    full = api("GET", "customers/1").json()
    replaced = api("PUT", "customers/1", {**full, "email": "a@example.com", "name": "Renamed"}).json()
    assert (replaced["name"], replaced["email"], replaced["customerNumber"]) == ("Renamed", "a@example.com", 1)
    without_email = {key: value for key, value in replaced.items() if key != "email"}
    assert "email" not in api("PUT", "customers/1", without_email).json()  # PUT replaces the whole customer
    assert errors_at(api("PUT", "customers/1", {**full, "customerNumber": 2}), "customerNumber")
    assert api("PUT", "customers/2", full).status_code == 404

    api("POST", "invoices/drafts", draft(1))
    assert api("DELETE", "customers/1").status_code == 400  # it has an invoice
    assert api("DELETE", "customers/500").status_code == 204
    assert api("GET", "customers/500").status_code == 404


def test_products(api):
    required = api("POST", "products", {"salesPrice": 10})
    assert set(required.json()["errors"]) == {"name", "productGroup", "productNumber"}
    body = {"productNumber": "BELL", "name": "Bell", "productGroup": {"productGroupNumber": 1}, "salesPrice": 47.6}
    for number in ("", "X" * 26):
        assert errors_at(api("POST", "products", {**body, "productNumber": number}), "productNumber")
    assert api("POST", "products", {**body, "productNumber": "X" * 25}).status_code == 201
    assert errors_at(api("POST", "products", {**body, "productGroup": {"productGroupNumber": 9}}), "productGroup")
    created = api("POST", "products", body).json()
    assert created["inventory"] == {"available": 0, "inStock": 0}
    assert created["productGroup"]["name"] == "Varer m/moms"
    assert errors_at(api("POST", "products", body), "productNumber")[0]["message"] == (
        "Product number BELL is already in use."
    )

    stocked = api("GET", "products/BIKE-RED").json()
    assert stocked["inventory"] == {"available": 8, "inStock": 8}
    changed = {**stocked, "salesPrice": 3000, "inventory": {"available": 999}}
    changed.pop("unit")
    replaced = api("PUT", "products/BIKE-RED", changed).json()
    assert (replaced["salesPrice"], replaced["inventory"]) == (3000, {"available": 8, "inStock": 8})
    assert "unit" not in replaced
    assert errors_at(api("PUT", "products/BIKE-RED", {**changed, "productNumber": "OTHER"}), "productNumber")

    customer_body = {
        "name": "X",
        "currency": "DKK",
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
    }
    api("POST", "customers", customer_body)
    api("POST", "invoices/drafts", draft(1, lines=[line("BELL")]))
    assert api("DELETE", "products/BELL").status_code == 400  # in use
    assert api("DELETE", "products/FEE").status_code == 204


def test_stock_and_state_stay_json(api, sandbox, customer):
    number = customer()
    api("POST", "invoices/drafts", draft(number, lines=[line(price=10.1)]))
    assert requests.post(f"{sandbox.url}/_sandbox/economic/products/BIKE-RED", json={"available": 3}, timeout=5).ok
    assert api("GET", "products/BIKE-RED").json()["inventory"] == {"available": 3, "inStock": 3}
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["economic"]
    assert state["drafts"][0]["grossAmount"] == 12.63  # 10.10 + 2.525 -> 2.53 VAT
    assert {"customers", "products", "drafts", "booked", "orders"} == set(state)
