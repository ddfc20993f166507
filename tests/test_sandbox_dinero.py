"""The fake Dinero refuses what the real one refuses and offers what it offers (see sandbox/dinero.py's docstring for
the rules): tokens of each grant, organisations with and without Dinero Pro, contacts, products, invoices and credit
notes with their Timestamps, the totals, and the rate limit. A sandbox per test on a free port, over real HTTP,
driven with `requests`; the sandbox's clock is set by hand where time matters. No database needed."""

import re
from decimal import Decimal

import pytest
import requests

from sandbox.dinero import CLIENT_ID, CLIENT_SECRET, OAUTH_SCOPE

KEY, FREE_KEY = "dinero-sandbox-key", "dinero-free-key"
ORG, FREE_ORG = 123456, 654321
CLIENT = (CLIENT_ID, CLIENT_SECRET)
CALLBACK = "https://iex.example/connections/dinero/callback"
DENIED = {"errorCode": 401, "errorMessage": "Authorization has been denied for this request."}
ERROR_KEYS = {"errorCode", "errorMessage", "validationErrors", "languageSpecificMessages"}


class Clock:
    """The sandbox's Dinero clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(sandbox):
    clock = Clock()
    sandbox.state.dinero.clock = clock
    return clock


@pytest.fixture
def base(sandbox, clock):
    """The API's base; the clock is set first, so every token lives on it."""
    return f"{sandbox.url}/dinero"


def token_request(base, auth=CLIENT, **form):
    return requests.post(f"{base}/connect/token", data=form, auth=auth, timeout=5)


def password_token(base, key=KEY):
    response = token_request(base, grant_type="password", username=key, password=key, scope="read write")
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def token(base):
    return password_token(base)


@pytest.fixture
def api(base, token):
    """Call the API of organisation 123456 (or an absolute path under /dinero/ when it starts with /)."""

    def call(method, path, body=None, bearer=None, **params):
        url = f"{base}{path}" if path.startswith("/") else f"{base}/v1/{ORG}/{path}"
        headers = {"Authorization": f"Bearer {bearer or token}"}
        return requests.request(method, url, json=body, headers=headers, params=params, timeout=5)

    return call


@pytest.fixture
def contact(api):
    def create(**fields):
        response = api(
            "POST", "contacts", {"Name": "Nordic Bikes ApS", "CountryKey": "DK", "IsPerson": False, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()["ContactGuid"]

    return create


def line(**fields):
    return {
        "Description": "City Bike, Red",
        "Quantity": 1,
        "AccountNumber": 1000,
        "Unit": "parts",
        "BaseAmountValue": 100,
        **fields,
    }


def invoice(*lines, **fields):
    return {
        "Date": "2025-03-01",
        "PaymentConditionType": "Netto",
        "PaymentConditionNumberOfDays": 8,
        "ProductLines": list(lines) or [line()],
        **fields,
    }


@pytest.fixture
def create(api):
    """Create an invoice (or a credit note) and return its Guid and TimeStamp."""

    def make(body=None, path="invoices"):
        response = api("POST", path, body or invoice())
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == {"Guid", "TimeStamp"}
        return created["Guid"], created["TimeStamp"]

    return make


def assert_invalid(response, *properties):
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert sorted(body["validationErrors"]) == sorted(properties), body
    assert body["languageSpecificMessages"][0]["property"] == ""


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["errorCode"] == code


# --- tokens -----------------------------------------------------------------------------------------------------------


def test_password_grant_gives_an_access_token_without_refresh_token(base):
    response = token_request(base, grant_type="password", username=KEY, password=KEY, scope="read write")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)

    for username, password in ((KEY, FREE_KEY), ("nope", "nope")):
        refused = token_request(base, grant_type="password", username=username, password=password)
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "invalid_grant",
            "error_description": "The user name or password is incorrect.",
        }


def test_the_client_must_authenticate(base):
    form = {"grant_type": "password", "username": KEY, "password": KEY}
    for auth in ((CLIENT_ID, "wrong"), ("other", CLIENT_SECRET), None):
        refused = token_request(base, auth=auth, **form)
        assert (refused.status_code, refused.json()) == (401, {"error": "invalid_client"})
    in_the_form = token_request(base, auth=None, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **form)
    assert in_the_form.status_code == 200
    assert token_request(base, grant_type="client_credentials").json() == {"error": "unsupported_grant_type"}
    as_json = requests.post(f"{base}/connect/token", json=form, auth=CLIENT, timeout=5)
    assert as_json.status_code == 400


def authorize(base, **params):
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": OAUTH_SCOPE,
        "state": "s<t>ate",
        "response_mode": "form_post",
        **params,
    }
    return requests.get(f"{base}/connect/authorize", params=query, timeout=5)


def test_authorization_code_and_refresh_token_rotation(base):
    page = authorize(base)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<script" not in page.text
    assert f'<form method="POST" action="{CALLBACK}">' in page.text
    assert '<input type="hidden" name="state" value="s&lt;t&gt;ate">' in page.text
    assert ">Allow</button>" in page.text
    code = re.search(r'name="code" value="([^"]+)"', page.text).group(1)

    wrong_uri = token_request(base, grant_type="authorization_code", code=code, redirect_uri=f"{CALLBACK}/x")
    assert wrong_uri.json() == {"error": "invalid_grant"}
    granted = token_request(base, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert granted.status_code == 200
    tokens = granted.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert tokens["scope"] == "dineropublicapi:read dineropublicapi:write offline_access"
    again = token_request(base, grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})

    refreshed = token_request(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    reused = token_request(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})
    organisations = requests.get(
        f"{base}/v1/organizations",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        timeout=5,
    )
    assert [each["Id"] for each in organisations.json()] == [ORG]


@pytest.mark.parametrize(
    "params", [{"client_id": "other"}, {"response_type": "token"}, {"scope": "openid"}, {"redirect_uri": ""}]
)
def test_authorize_refuses_bad_requests(base, params):
    refused = authorize(base, **params)
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/plain")


def test_expired_and_revoked_tokens_are_refused(sandbox, base, api, clock, control):
    assert api("GET", "contacts").status_code == 200
    clock.now += 3600
    expired = api("GET", "contacts")
    assert (expired.status_code, expired.json()) == (401, DENIED)
    assert api("GET", "/v1/organizations").status_code == 401
    assert api("GET", "contacts", bearer="made-up").status_code == 401

    control("config", {"dinero_token_seconds": 0})
    response = token_request(base, grant_type="password", username=KEY, password=KEY)
    assert response.json()["expires_in"] == 0
    assert api("GET", "contacts", bearer=response.json()["access_token"]).status_code == 401

    control("config", {"dinero_token_seconds": 3600})
    fresh = password_token(base)
    assert api("GET", "contacts", bearer=fresh).status_code == 200
    assert control("dinero/revoke-tokens") == {"revoked": 3}
    assert api("GET", "contacts", bearer=fresh).status_code == 401
    assert sandbox.dinero_revoke_tokens() == 0


def test_organizations_and_access(base, api):
    organisations = api("GET", "/v1/organizations")
    assert organisations.json() == [{"Id": ORG, "Name": "Sandbox Dinero ApS", "IsPro": True, "IsPayingPro": True}]
    chosen = api("GET", "/v1/organizations", fields="Name,Id,IsPro")
    assert chosen.json() == [{"Name": "Sandbox Dinero ApS", "Id": ORG, "IsPro": True}]
    assert_error(api("GET", "/v1/organizations", fields="Name,Secret"), 400, 400)

    other = api("GET", f"/v1/{FREE_ORG}/contacts")
    assert_error(other, 403, 403)
    assert other.json()["errorMessage"] == "You do not have access to this organization"

    free = password_token(base, FREE_KEY)
    assert api("GET", "/v1/organizations", bearer=free).json()[0]["IsPro"] is False
    no_pro = api("GET", f"/v1/{FREE_ORG}/contacts", bearer=free)
    assert_error(no_pro, 403, 48)
    assert no_pro.json()["errorMessage"] == (
        "The organization does not have a Dinero Pro subscription, which is needed to use the API"
    )
    assert_error(api("POST", f"/v1/{FREE_ORG}/invoices", invoice(), bearer=free), 403, 48)


def test_unknown_paths_wrong_methods_and_media_types(base, token, api):
    assert_error(api("GET", "nothing-here"), 404, 404)
    assert_error(api("GET", "/v2/things"), 404, 404)
    assert_error(api("DELETE", "contacts"), 405, 405)
    assert_error(api("PUT", "invoices/0b7e1d43-0000-0000-0000-000000000000", invoice()), 405, 405)
    as_text = requests.post(
        f"{base}/v1/{ORG}/contacts",
        data="Name=x",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        timeout=5,
    )
    assert_error(as_text, 415, 415)


# --- the chart, contacts and products ---------------------------------------------------------------------------------


def test_accounts_and_vat_types(api):
    accounts = {each["AccountNumber"]: each for each in api("GET", "accounts/entry").json()}
    assert accounts[1000] == {
        "AccountNumber": 1000,
        "Name": "Salg af varer/ydelser m/moms",
        "VatCode": "U25",
        "IsHidden": False,
    }
    assert {number: accounts[number]["VatCode"] for number in (1100, 1200, 1210, 1250, 1300, 2000, 55000)} == {
        1100: "none",
        1200: "UEUV",
        1210: "UEUY",
        1250: "UVY",
        1300: "U25",
        2000: "I25",
        55000: "none",
    }
    rates = {each["VatCode"]: each["VatRate"] for each in api("GET", "vatTypes").json()}
    assert rates == {"U25": 0.25, "I25": 0.25, "none": 0, "UEUV": 0, "UEUY": 0, "UVY": 0}


def test_contacts_are_created_found_and_paged(api, contact):
    first = contact(Email="indkob@nordicbikes.dk", VatNumber="DK12345678")
    contact(Name="O'Brien Cykler", Email="ob@example.ie", CountryKey="IE")
    contact(Name="Jens Hansen", IsPerson=True)

    shown = api("GET", f"contacts/{first}").json()
    assert (shown["ContactGuid"], shown["Name"], shown["CountryKey"], shown["IsPerson"]) == (
        first,
        "Nordic Bikes ApS",
        "DK",
        False,
    )

    found = api(
        "GET",
        "contacts",
        queryFilter="Email eq 'INDKOB@nordicbikes.dk' or Name eq 'O''Brien Cykler'",
        fields="ContactGuid,Name,Email,VatNumber",
    ).json()
    assert [each["Name"] for each in found["Collection"]] == ["Nordic Bikes ApS", "O'Brien Cykler"]
    assert found["Collection"][0] == {
        "ContactGuid": first,
        "Name": "Nordic Bikes ApS",
        "Email": "indkob@nordicbikes.dk",
        "VatNumber": "DK12345678",
    }
    assert found["Pagination"] == {
        "MaxPageSizeAllowed": 1000,
        "PageSize": 100,
        "Result": 2,
        "ResultWithoutFilter": 3,
        "Page": 0,
    }
    both = api("GET", "contacts", queryFilter="Name eq 'Jens Hansen' and Email eq 'x@y.dk'").json()
    assert both["Collection"] == []

    second_page = api("GET", "contacts", page=1, pageSize=2).json()
    assert set(second_page["Collection"][0]) == {"ContactGuid", "Name"}  # the default fields
    assert second_page["Pagination"]["Page"] == 1 and len(second_page["Collection"]) == 1

    assert_error(api("GET", "contacts", pageSize=1001), 400, 400)
    assert_error(api("GET", "contacts", fields="Name,Balance"), 400, 400)
    for bad in ("Phone eq '1'", "Name ne 'x'", "Name eq x", "Name eq 'x' xor Email eq 'y'", "Name eq 'x"):
        refused = api("GET", "contacts", queryFilter=bad)
        assert_error(refused, 400, 400)
        assert refused.json()["errorMessage"] == "Invalid query filter"
    assert_error(api("GET", "contacts/5c0c1b1e-0000-0000-0000-000000000000"), 404, 404)


def test_contacts_need_name_country_and_is_person(api):
    # Unknown properties are ignored, so camelCase leaves the PascalCase ones missing.
    refused = api("POST", "contacts", {"name": "Nordic Bikes ApS", "countryKey": "DK", "isPerson": False})
    assert_invalid(refused, "Name", "CountryKey", "IsPerson")
    assert_invalid(
        api("POST", "contacts", {"Name": "X", "CountryKey": "Denmark", "IsPerson": False}), "CountryKey"
    )


def test_products_are_unique_by_number_and_replaced_whole(api):
    body = {
        "ProductNumber": "BIKE-RED",
        "Name": "City Bike, Red",
        "BaseAmountValue": 3999.2,
        "Quantity": 1,
        "AccountNumber": 1000,
        "Unit": "parts",
    }
    created = api("POST", "products", body)
    assert created.status_code == 201
    guid = created.json()["ProductGuid"]
    assert_invalid(api("POST", "products", body), "ProductNumber")

    found = api(
        "GET",
        "products",
        queryFilter="ProductNumber eq 'BIKE-RED'",
        fields="ProductGuid,ProductNumber,Name,BaseAmountValue,AccountNumber,Unit",
    ).json()["Collection"]
    assert found == [
        {
            "ProductGuid": guid,
            "ProductNumber": "BIKE-RED",
            "Name": "City Bike, Red",
            "BaseAmountValue": 3999.2,
            "AccountNumber": 1000,
            "Unit": "parts",
        }
    ]
    replaced = api("PUT", f"products/{guid}", {**body, "Name": "City Bike", "BaseAmountValue": 4000})
    assert (replaced.status_code, replaced.json()) == (200, {})
    shown = api("GET", f"products/{guid}").json()
    assert (shown["Name"], shown["BaseAmountValue"], shown["BaseAmountValueInclVat"]) == ("City Bike", 4000, 5000)
    assert not {"Stock", "QuantityOnHand", "Inventory"} & set(shown)  # Dinero keeps no stock
    assert api("PUT", f"products/{guid}", body).status_code == 200  # its own number is no clash

    assert_invalid(
        api("POST", "products", {**body, "ProductNumber": "P2", "Unit": "pcs", "AccountNumber": 2000}),
        "Unit",
        "AccountNumber",
    )
    assert_invalid(
        api("POST", "products", {"Name": "Gebyr"}), "BaseAmountValue", "Quantity", "AccountNumber", "Unit"
    )
    assert_invalid(
        api("POST", "products", {**body, "ProductNumber": "P3", "BaseAmountValue": 1.005}), "BaseAmountValue"
    )


# --- invoices ------------------------------------------------------------------------------------------------------------


def test_an_invoice_is_created_updated_with_its_timestamp_booked_and_not_deleted(sandbox, api, contact, create):
    guid, stamp = create(invoice(ExternalReference="shopify:#1001"))
    draft = api("GET", f"invoices/{guid}").json()
    assert (draft["Guid"], draft["Number"], draft["Status"], draft["TimeStamp"]) == (guid, None, "Draft", stamp)
    assert (draft["Currency"], draft["Language"], draft["ContactGuid"]) == ("DKK", "da-DK", None)

    put = f"/v1.2/{ORG}/invoices/{guid}"
    customer = contact()
    stale = api("PUT", put, {**invoice(ContactGuid=customer), "Timestamp": "0000000000000000"})
    assert_error(stale, 400, 58)
    assert stale.json()["errorMessage"] == (
        "The entity has been updated since you last read it. Get the entity again and retry."
    )
    assert_invalid(api("PUT", put, invoice(ContactGuid=customer)), "Timestamp")

    no_contact = api("POST", f"invoices/{guid}/book", {"Timestamp": stamp})
    assert_invalid(no_contact, "ContactGuid")
    assert no_contact.json()["validationErrors"]["ContactGuid"] == "A contact is required to book an invoice"

    updated = api("PUT", put, {**invoice(ContactGuid=customer, Description="Ordre 1001"), "Timestamp": stamp})
    assert updated.status_code == 200
    assert updated.json()["Guid"] == guid and updated.json()["TimeStamp"] != stamp
    stamp = updated.json()["TimeStamp"]
    draft = api("GET", f"invoices/{guid}").json()
    assert (draft["ContactName"], draft["Description"], draft["TimeStamp"]) == (
        "Nordic Bikes ApS",
        "Ordre 1001",
        stamp,
    )

    booked = api("POST", f"invoices/{guid}/book", {"Timestamp": stamp})
    assert booked.status_code == 200
    assert booked.json()["Number"] == 1 and booked.json()["Guid"] == guid
    stamp = booked.json()["TimeStamp"]
    assert api("GET", f"invoices/{guid}").json()["Status"] == "Booked"
    assert_error(api("POST", f"invoices/{guid}/book", {"Timestamp": stamp}), 400, 52)
    not_draft = api("PUT", put, {**invoice(ContactGuid=customer), "Timestamp": stamp})
    assert_error(not_draft, 400, 52)
    assert not_draft.json()["errorMessage"] == "Only draft invoices can be updated"
    assert_error(api("DELETE", f"invoices/{guid}", {"Timestamp": stamp}), 400, 52)

    second, second_stamp = create(invoice(ContactGuid=customer))
    numbered = api("POST", f"invoices/{second}/book", {"Timestamp": second_stamp, "Number": 1})
    assert_invalid(numbered, "Number")
    assert api("POST", f"invoices/{second}/book", {"Timestamp": second_stamp, "Number": 7}).json()["Number"] == 7


def test_a_draft_is_deleted_with_its_current_timestamp(api, create):
    guid, stamp = create()
    assert_error(api("DELETE", f"invoices/{guid}", {"Timestamp": "stale"}), 400, 58)
    deleted = api("DELETE", f"invoices/{guid}", {"Timestamp": stamp})
    assert deleted.status_code == 204
    assert_error(api("GET", f"invoices/{guid}"), 404, 404)
    assert_error(api("DELETE", f"invoices/{guid}", {"Timestamp": stamp}), 404, 404)


def test_totals_follow_the_documented_rounding(api, create):
    guid, _ = create(
        invoice(
            line(Quantity=3, BaseAmountValue=33.33, Discount=10),  # 89.991 -> 89.99, VAT 22.4975 -> 22.50
            line(Quantity=1, BaseAmountValue=39.2, AccountNumber=1300),  # shipping: 39.20 + 9.80
            line(Quantity=2, BaseAmountValue=199, AccountNumber=1100),  # no VAT
            {"LineType": "Text", "Description": "Tak for din ordre"},
        )
    )
    shown = api("GET", f"invoices/{guid}").json()
    lines = shown["ProductLines"]
    assert [(each["TotalAmount"], each["TotalAmountInclVat"]) for each in lines] == [
        (89.99, 112.49),
        (39.2, 49.0),
        (398.0, 398.0),
        (0, 0),
    ]
    assert (shown["TotalExclVat"], shown["TotalVat"], shown["TotalInclVat"]) == (527.19, 32.3, 559.49)
    assert lines[0]["Unit"] == "parts" and lines[0]["Discount"] == 10 and lines[3]["LineType"] == "Text"

    incl, _ = create(
        invoice(
            line(Quantity=3, BaseAmountValue=49.95),  # 149.85 incl.: VAT 29.97, excl. 119.88
            line(Quantity=1, BaseAmountValue=100, Discount=12.5),  # 87.50 incl.: VAT 17.50, excl. 70.00
            ShowLinesInclVat=True,
        )
    )
    shown = api("GET", f"invoices/{incl}").json()
    assert [(each["TotalAmount"], each["TotalAmountInclVat"]) for each in shown["ProductLines"]] == [
        (119.88, 149.85),
        (70.0, 87.5),
    ]
    assert (shown["TotalExclVat"], shown["TotalVat"], shown["TotalInclVat"]) == (189.88, 47.47, 237.35)
    assert sum(Decimal(str(each["TotalAmountInclVat"])) for each in shown["ProductLines"]) == Decimal("237.35")


@pytest.mark.parametrize(
    ("body", "properties"),
    [
        (invoice(line(Unit=None)), ["ProductLines[0].Unit"]),
        (invoice(line(Unit="pcs")), ["ProductLines[0].Unit"]),
        (invoice(line(), line(AccountNumber=2000)), ["ProductLines[1].AccountNumber"]),
        (invoice(line(AccountNumber=4242)), ["ProductLines[0].AccountNumber"]),
        (invoice(line(BaseAmountValue=10.005)), ["ProductLines[0].BaseAmountValue"]),
        (invoice(line(BaseAmountValue=1e13)), ["ProductLines[0].BaseAmountValue"]),
        (invoice(line(Description="")), ["ProductLines[0].Description"]),
        (invoice(line(Discount=101)), ["ProductLines[0].Discount"]),
        (invoice(line(Quantity="1")), ["ProductLines[0].Quantity"]),
        (invoice(line(LineType="Discount")), ["ProductLines[0].LineType"]),
        (
            invoice({"LineType": "Text", "Description": "Fragt", "BaseAmountValue": 49}),
            ["ProductLines[0].BaseAmountValue"],
        ),
        (invoice(line(ProductGuid="0e3c9f4e-0000-0000-0000-000000000000")), ["ProductLines[0].ProductGuid"]),
        (invoice(Language="de-DE"), ["Language"]),
        (invoice(PaymentConditionType="Net"), ["PaymentConditionType"]),
        (invoice(PaymentConditionNumberOfDays=None), ["PaymentConditionNumberOfDays"]),
        (
            invoice(PaymentConditionType="CurrentMonthOut", PaymentConditionNumberOfDays=-1),
            ["PaymentConditionNumberOfDays"],
        ),
        (invoice(PaymentConditionType="Paid"), ["PaymentConditionNumberOfDays"]),
        (invoice(PaymentConditionType="NettoCash"), ["PaymentConditionNumberOfDays"]),
        (invoice(Currency="kr"), ["Currency"]),
        (invoice(ExternalReference="x" * 129), ["ExternalReference"]),
        (invoice(ContactGuid="4b0c2d1e-0000-0000-0000-000000000000"), ["ContactGuid"]),
        (invoice(Date="01-03-2025"), ["Date"]),
        ({**invoice(), "ProductLines": []}, ["ProductLines"]),
        (
            {"date": "2025-03-01", "productLines": [line()]},
            ["Date", "PaymentConditionNumberOfDays", "ProductLines"],
        ),
    ],
)
def test_invoices_are_refused_as_dinero_refuses_them(api, body, properties):
    # A null is as good as absent to Dinero (Unit=None sends "Unit": null).
    assert_invalid(api("POST", "invoices", body), *properties)


def test_payment_conditions_that_take_no_days(api, create):
    guid, _ = create(invoice(PaymentConditionType="Paid", PaymentConditionNumberOfDays=None))
    shown = api("GET", f"invoices/{guid}").json()
    assert (shown["PaymentConditionType"], shown["PaymentConditionNumberOfDays"]) == ("Paid", None)
    assert api("POST", "invoices", invoice(PaymentConditionType="NettoCash", PaymentConditionNumberOfDays=0)).ok


def test_invoices_are_listed_by_free_text_status_and_date(api, contact, create):
    customer = contact(Name="Cykelhuset")
    first, stamp = create(invoice(ExternalReference="shopify:#1001", ContactGuid=customer))
    create(invoice(ExternalReference="shopify:#1002", Date="2025-04-01"))
    api("POST", f"invoices/{first}/book", {"Timestamp": stamp})

    fields = "Guid,Number,Status,ExternalReference,TimeStamp,TotalInclVat"
    found = api("GET", "invoices", freeTextSearch="SHOPIFY:#1001", fields=fields).json()["Collection"]
    assert [(each["Guid"], each["Number"], each["Status"], each["TotalInclVat"]) for each in found] == [
        (first, 1, "Booked", 125.0)
    ]
    assert set(found[0]) == set(fields.split(","))
    assert len(api("GET", "invoices", freeTextSearch="cykelhus").json()["Collection"]) == 1
    assert len(api("GET", "invoices", statusFilter="Draft,Booked").json()["Collection"]) == 2
    drafts = api("GET", "invoices", statusFilter="Draft", fields="ExternalReference").json()["Collection"]
    assert drafts == [{"ExternalReference": "shopify:#1002"}]
    april = api("GET", "invoices", startDate="2025-03-15", endDate="2025-04-30", fields="Date").json()
    assert april["Collection"] == [{"Date": "2025-04-01"}]
    assert april["Pagination"]["ResultWithoutFilter"] == 2
    assert_error(api("GET", "invoices", statusFilter="Sent"), 400, 400)
    assert_error(api("GET", "invoices", fields="Guid,Lines"), 400, 400)


def test_credit_notes_credit_an_invoice_and_have_their_own_numbers(api, contact, create):
    customer = contact()
    invoiced, stamp = create(invoice(ContactGuid=customer))
    api("POST", f"invoices/{invoiced}/book", {"Timestamp": stamp})

    unknown = api("POST", "sales/creditnotes", invoice(CreditNoteFor="7a0b0c0d-0000-0000-0000-000000000000"))
    assert_invalid(unknown, "CreditNoteFor")
    assert_invalid(api("POST", "sales/creditnotes", invoice(line(Quantity=-1))), "ProductLines[0].Quantity")

    credit, stamp = create(
        invoice(line(Quantity=1, BaseAmountValue=40), CreditNoteFor=invoiced, ContactGuid=customer),
        path="sales/creditnotes",
    )
    shown = api("GET", f"sales/creditnotes/{credit}").json()
    assert (shown["CreditNoteFor"], shown["Status"], shown["TotalInclVat"]) == (invoiced, "Draft", 50.0)
    assert_error(api("PUT", f"/v1.2/{ORG}/sales/creditnotes/{credit}", {**invoice(), "Timestamp": "x"}), 400, 58)
    updated = api(
        "PUT",
        f"/v1.2/{ORG}/sales/creditnotes/{credit}",
        {**invoice(line(BaseAmountValue=80), CreditNoteFor=invoiced, ContactGuid=customer), "Timestamp": stamp},
    )
    assert updated.status_code == 200
    booked = api("POST", f"sales/creditnotes/{credit}/book", {"Timestamp": updated.json()["TimeStamp"]})
    assert booked.json()["Number"] == 1  # the invoices' numbers are apart
    listed = api("GET", "sales/creditnotes", freeTextSearch="nordic", fields="Guid,Number,CreditNoteFor").json()
    assert listed["Collection"] == [{"Guid": credit, "Number": 1, "CreditNoteFor": invoiced}]
    assert_error(api("DELETE", f"sales/creditnotes/{credit}", {"Timestamp": booked.json()["TimeStamp"]}), 400, 52)

    draft, draft_stamp = create(invoice(), path="sales/creditnotes")
    assert api("DELETE", f"sales/creditnotes/{draft}", {"Timestamp": draft_stamp}).status_code == 204


# --- the sandbox's control ------------------------------------------------------------------------------------------------


def test_the_accountant_touches_and_books_drafts(sandbox, api, contact, create, control):
    guid, stamp = create(invoice(ContactGuid=contact()))
    touched = sandbox.dinero_touch(guid)
    assert touched["TimeStamp"] != stamp and touched["Status"] == "Draft"
    assert_error(api("POST", f"invoices/{guid}/book", {"Timestamp": stamp}), 400, 58)

    booked = control(f"dinero/invoices/{guid}/book")
    assert (booked["Status"], booked["Number"]) == ("Booked", 1)
    assert booked["TimeStamp"] != touched["TimeStamp"]
    refused = requests.post(f"{sandbox.url}/_sandbox/dinero/invoices/{guid}/book", timeout=5)
    assert refused.status_code == 400
    assert requests.post(f"{sandbox.url}/_sandbox/dinero/invoices/nope/touch", timeout=5).status_code == 404

    no_contact, _ = create()
    with pytest.raises(ValueError, match="contact is required"):
        sandbox.dinero_book(no_contact)

    books = sandbox.summary()["dinero"]["organizations"][str(ORG)]
    assert [(each["Guid"], each["Status"], each["TotalInclVat"]) for each in books["invoices"]] == [
        (guid, "Booked", 125.0),
        (no_contact, "Draft", 125.0),
    ]
    assert books["invoices"][0]["ProductLines"][0]["TotalAmount"] == 100.0
    assert len(books["contacts"]) == 1


def test_the_rate_limit_refuses_with_retry_after_then_recovers(sandbox, base, api, clock, control):
    control("config", {"dinero_rate_limit": 5, "dinero_rate_window": 1})
    for _ in range(5):
        assert api("GET", "contacts").status_code == 200
        clock.now += 0.125  # binary fractions: the window's edges are exact
    assert api("GET", "/v1/organizations").status_code == 200  # not counted, nor are tokens
    password_token(base)
    throttled = api("GET", "contacts")
    assert throttled.status_code == 429
    assert throttled.headers["Content-Type"].startswith("text/plain")
    assert throttled.text == "API calls quota exceeded! maximum admitted 5 per 1s."
    assert throttled.headers["Retry-After"] == "1"  # the first call leaves the window in 0.375 s
    clock.now += 0.375
    assert api("GET", "contacts").status_code == 200

    summary = sandbox.summary()["dinero"]
    assert summary["most_calls_in_a_minute"] == {str(ORG): 7}  # the refused call counts too
    assert (summary["refused_429"], summary["calls"]) == (1, {str(ORG): 7})

    control("config", {"dinero_rate_limit": 100, "dinero_rate_window": 60})
    clock.now += 60
    for _ in range(100):
        clock.now += 0.25
        assert api("GET", "vatTypes").status_code == 200
    full = api("GET", "vatTypes")
    assert full.text == "API calls quota exceeded! maximum admitted 100 per 1m."
    assert full.headers["Retry-After"] == "36"  # the first of the 100 was 24.75 s ago
    assert sandbox.summary()["dinero"]["most_calls_in_a_minute"] == {str(ORG): 101}


def test_faults_and_reset_apply_to_dinero(sandbox, api, contact, control):
    contact()
    control("config", {"faults": [{"path_contains": "/dinero/v1/", "status": 503}]})
    unavailable = api("GET", "contacts")
    assert_error(unavailable, 503, 503)
    assert api("GET", "contacts").status_code == 200

    state = control("reset")["dinero"]
    assert state["organizations"][str(ORG)]["contacts"] == []
    assert (state["calls"], state["refused_429"], state["access_tokens"]) == ({}, 0, 0)
    assert api("GET", "contacts").status_code == 401  # the tokens went with the reset
