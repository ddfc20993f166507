"""Dinero as a merchant's books, against the sandbox's Dinero: a WooCommerce order with a coupon, a fee and shipping
becomes one invoice of lines excluding VAT on the accounts of their VAT, of the order's total; changed in the shop
while a draft, it is updated, also when the accountant saved the draft in between (error 58: read again, try again);
its refund becomes a credit note for it; booked when the module says so; a key without Dinero Pro, a refused key and
a token run out are said or handled; stock is not offered, and the Connections page says why. A merchant connects
through Dinero's login (Visma Connect's authorization-code flow, answered by form_post): the refresh token is kept
and rotated, and a refused one tells the owner to connect again."""

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.cache import cache
from django.test import Client

from connections import pipeline
from connections.models import Connection, Mapping, Module
from connections.systems import accounting
from dashboard.notifications import send_error_digests
from iex.lib import http
from tests.test_accounting import Dinero, connect, run_pending
from tests.test_webshops import Shopify, WooCommerce
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def woo(sandbox, personas):
    shop = WooCommerce(sandbox)
    connect(personas.integration, sandbox, shop, Dinero(sandbox))
    return shop


def run(flow="orders"):
    pipeline.sync(Connection.objects.get(flow=flow), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()


def invoice_of(sandbox, order_id, flow="orders"):
    mapping = Mapping.objects.get(connection__flow=flow, source_ref=str(order_id))
    books = sandbox.summary()["dinero"]["organizations"]["123456"]
    return mapping, next(d for d in books["invoices"] + books["creditnotes"] if d["Guid"] == mapping.target_ref)


def test_an_order_becomes_an_invoice_of_net_lines_on_the_accounts_of_their_vat(woo, sandbox):
    order = sandbox.woocommerce_create_order({
        "status": "processing", "line_items": [{"sku": "COFFEE-500", "quantity": 3}, {"sku": "PAPER-KAFFE", "quantity": 1}],
        "coupon": {"code": "tiprocent", "discount_type": "percent", "amount": "10"},
        "fees": [{"name": "Gebyr", "total": "19.95", "taxable": True}], "shipping": True,
    })  # fmt: skip
    run()
    transfer = Transfer.objects.get()
    assert transfer.status == "created", transfer.reason
    _, invoice = invoice_of(sandbox, order["id"])
    assert (Decimal(str(invoice["TotalInclVat"])), Decimal(str(invoice["TotalVat"]))) == (
        Decimal(order["total"]), Decimal(order["total_tax"]),
    )  # fmt: skip
    # the order's number as people search for it, then IEX's own key: numbers of two shops may be the same
    assert invoice["ExternalReference"] == f"#{order['number']} iex:{order['id']}" and invoice["Status"] == "Draft"
    assert invoice["ShowLinesInclVat"] is False and invoice["ContactGuid"]
    lines = invoice["ProductLines"]
    accounts = {line["Comments"] or line["Description"]: line["AccountNumber"] for line in lines}
    # 25 % on coffee, shipping and the fee; newspapers are zero-rated in Denmark: the account without VAT
    assert accounts == {"SKU COFFEE-500": 1000, "SKU PAPER-KAFFE": 1100, "PostNord Pakke": 1000, "Gebyr": 1000,
                        **({"Rounding": 1100} if "Rounding" in accounts else {})}  # fmt: skip
    for rounding in [line for line in lines if line["Description"] == "Rounding"]:  # a cent the VAT moved
        assert rounding["AccountNumber"] == 1100 and abs(rounding["BaseAmountValue"]) <= 0.03
    assert all(Decimal(str(line["BaseAmountValue"])).as_tuple().exponent >= -2 for line in lines)
    coffee = next(line for line in lines if "tiprocent" in line["Description"])
    assert coffee["Unit"] == "parts" and coffee["Discount"] == 10.0


def test_an_update_while_a_draft_survives_the_accountant_saving_it_in_between(woo, sandbox):
    order = woo.order(**woo.of([(woo.stocked, 1)]))
    run()
    mapping, first = invoice_of(sandbox, order["id"])
    sandbox.dinero_touch(mapping.target_ref)  # the accountant saved the draft: IEX's Timestamp is stale
    sandbox.woocommerce_update_order(order["id"], {"customer_note": "Gaveindpakning"})
    real_put = http.request
    stale = []

    def once_stale(method, url, **kwargs):  # the draft saved again between IEX's read and its PUT
        if method == "PUT" and "/v1.2/" in url and not stale:
            stale.append(url)
            sandbox.dinero_touch(mapping.target_ref)
        return real_put(method, url, **kwargs)

    http.request, original = once_stale, http.request
    try:
        run()
    finally:
        http.request = original
    updated = Transfer.objects.order_by("id").last()
    assert (updated.status, updated.action) == ("updated", "updated"), updated.reason
    assert any("error 58" in state.note for state in updated.states.all())
    _, now = invoice_of(sandbox, order["id"])
    assert now["Guid"] == first["Guid"] and now["TimeStamp"] != first["TimeStamp"]
    assert len(sandbox.summary()["dinero"]["organizations"]["123456"]["invoices"]) == 1


def test_a_refund_credits_the_invoice_and_booking_follows_the_module(woo, sandbox):
    Module.objects.filter(kind="dinero").update(settings={"document_type": "booked"})
    order = woo.order(**woo.of([(woo.stocked, 2)]))
    run()
    mapping, invoice = invoice_of(sandbox, order["id"])
    assert (mapping.target_state, invoice["Status"], invoice["Number"]) == ("booked", "Booked", 1)
    refund = woo.refund_one(order)
    run("credit_notes")
    credited = Transfer.objects.get(entity="credit_notes")
    assert credited.status == "created" and "Booked credit note 1" in credited.reason, credited.reason
    _, note = invoice_of(sandbox, refund["id"], "credit_notes")
    assert note["CreditNoteFor"] == invoice["Guid"]
    assert Decimal(str(invoice["TotalInclVat"])) - Decimal(str(note["TotalInclVat"])) == woo.left(order)


def test_what_dinero_refuses_is_said_in_words(sandbox, personas):
    shop = Shopify(sandbox)
    _, books = connect(personas.integration, sandbox, shop, Dinero(sandbox))
    books.set_credentials({"api_key": "dinero-free-key"})
    books.save()
    with pytest.raises(http.PermanentError, match="no Dinero Pro"):
        accounting("dinero").client(books).test()
    books.set_credentials({"api_key": "dinero-sandbox-key", "organization_id": 999})
    books.save()
    with pytest.raises(http.PermanentError, match="does not open organisation 999: it opens 123456"):
        accounting("dinero").client(books).test()


def test_a_token_that_ran_out_is_asked_for_again(sandbox, personas):
    shop = Shopify(sandbox)
    connect(personas.integration, sandbox, shop, Dinero(sandbox))
    shop.order()
    run()
    sandbox.dinero_revoke_tokens()
    order = shop.order()
    run()
    assert Transfer.objects.get(source_ref=str(order["id"])).status == "created"


def test_stock_is_not_offered_and_the_connections_page_says_why(sandbox, personas, client):
    connect(personas.integration, sandbox, Shopify(sandbox), Dinero(sandbox))
    assert set(personas.integration.connections.values_list("flow", flat=True)) == {
        "orders",
        "credit_notes",
        "products",
    }
    client.force_login(personas.owner)
    page = client.get(f"/i/{personas.integration.number}/connections/").content.decode()
    assert "Not offered" in page and "Dinero keeps no stock levels" in page


def test_a_cancelled_order_takes_its_draft_and_its_refunds_draft_credit_notes_away(woo, sandbox):
    order = woo.order(**woo.of([(woo.stocked, 2)]))
    run()
    woo.refund_one(order)
    run("credit_notes")
    assert len(sandbox.summary()["dinero"]["organizations"]["123456"]["creditnotes"]) == 1
    sandbox.woocommerce_update_order(order["id"], {"status": "cancelled"})
    run()
    cancelled = Transfer.objects.filter(entity="orders").order_by("id").last()
    assert cancelled.status == "updated" and "and the draft credit note" in cancelled.reason, cancelled.reason
    books = sandbox.summary()["dinero"]["organizations"]["123456"]
    assert books["invoices"] == [] and books["creditnotes"] == []


# --- connecting through Dinero's login ---------------------------------------------------------------------------


def log_in_at_dinero(client, module, deny=False):
    """The owner presses "Connect with Dinero", approves IEX on Visma Connect's page (the sandbox's), and the page
    POSTs the answer back to IEX from Visma's site: without IEX's session cookie. The answer's address, which the
    browser is sent on to."""
    number = module.integration.number
    sent = client.post(f"/i/{number}/systems/{module.code}/login/")
    assert sent.status_code == 302
    page_url = sent["Location"]
    query = parse_qs(urlsplit(page_url).query)
    assert page_url.startswith(f"{module.base_url}/connect/authorize?")
    assert query["response_mode"] == ["form_post"] and query["response_type"] == ["code"]
    assert query["scope"] == ["dineropublicapi:read dineropublicapi:write offline_access"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/connect/dinero/return/"]
    page = requests.get(page_url, timeout=5).text
    forms = re.findall(r'<form method="POST" action="([^"]+)">(.*?)</form>', page, re.S)
    action, fields = forms[1 if deny else 0]
    posted = dict(re.findall(r'name="(\w+)" value="([^"]*)"', fields))
    assert urlsplit(action).path == "/connect/dinero/return/"
    posted = {k: html.unescape(v) for k, v in posted.items()}
    answered = Client().post("/connect/dinero/return/", posted)
    assert answered.status_code == 302 and answered["Location"].startswith("/connect/dinero/return/?answer=")
    log_in_at_dinero.posted = posted  # to post it again
    return answered["Location"]


@pytest.fixture
def by_login(sandbox, personas):
    """Shopify and a Dinero module not connected yet, pointed at the sandbox."""
    shop = Shopify(sandbox)
    connect(personas.integration, sandbox, shop, Dinero(sandbox))
    books = Module.objects.get(kind="dinero")
    books.credentials = ""
    books.save()
    return shop, books


def test_connecting_through_dinero_login_keeps_a_rotating_refresh_token(by_login, personas, sandbox):
    shop, books = by_login
    owner = personas.client(personas.owner)
    page = owner.get(books.get_absolute_url()).content.decode()
    assert "Connect with Dinero" in page
    back = log_in_at_dinero(owner, books)
    assert personas.client(personas.admin).get(back).status_code == 400  # another member's browser: not theirs
    done = owner.get(back, follow=True)
    page = done.content.decode()
    assert "Dinero let IEX in through your login" in page
    assert "Test connection succeeded: Connected to organisation 123456 (Sandbox Dinero ApS)" in page
    assert "Connected through your Dinero login" in page
    books.refresh_from_db()
    credentials = books.get_credentials()
    assert set(credentials) == {"refresh_token", "organization_id"} and credentials["organization_id"] == "123456"
    assert owner.get(back).status_code == 400  # an answer is taken once
    replayed = Client().post("/connect/dinero/return/", log_in_at_dinero.posted)
    assert owner.get(replayed["Location"]).status_code == 400  # and its state, however often it is posted
    assert Client().post("/connect/dinero/return/", {"code": "x", "state": "forged"}).status_code == 400

    cache.clear()  # the access token is gone: the next call refreshes, and Visma Connect rotates the refresh token
    order = shop.order()
    run()
    assert Transfer.objects.get(source_ref=str(order["id"])).status == "created"
    books.refresh_from_db()
    rotated = books.get_credentials()["refresh_token"]
    assert rotated != credentials["refresh_token"]
    assert books.connected_at and books.credentials_failed_at is None


def test_a_merchant_who_denies_access_changes_nothing(by_login, personas):
    _, books = by_login
    owner = personas.client(personas.owner)
    done = owner.get(log_in_at_dinero(owner, books, deny=True), follow=True).content.decode()
    assert "Dinero did not let IEX in (access_denied): nothing changed." in done
    books.refresh_from_db()
    assert not books.connected


def test_connecting_through_the_login_is_for_writers_and_members_only(by_login, personas):
    _, books = by_login
    login = f"/i/{personas.integration.number}/systems/{books.code}/login/"
    assert personas.client(personas.viewer).post(login).status_code == 403
    assert personas.client(personas.outsider).post(login).status_code == 404
    # the answer's GET needs the browser's session: anonymous, it is sent to sign in first
    assert Client().get("/connect/dinero/return/?answer=x")["Location"].startswith("/accounts/login/")
    assert Client().post("/connect/woocommerce/return/", {"code": "x"}).status_code == 404  # no login flow there


def test_a_refused_refresh_tells_the_owner_to_connect_again(by_login, personas, sandbox, mailoutbox):
    shop, books = by_login
    owner = personas.client(personas.owner)
    owner.get(log_in_at_dinero(owner, books))
    sandbox.dinero_revoke_tokens(refresh_tokens=True)  # the merchant took IEX's access away in Dinero
    cache.clear()
    order = shop.order()
    run()
    transfer = Transfer.objects.get(source_ref=str(order["id"]))
    assert transfer.status == "held" and "Dinero no longer lets IEX in" in transfer.reason  # kept, not failed
    books.refresh_from_db()
    assert books.credentials_failed_at is not None
    home = owner.get(f"/i/{personas.integration.number}/").content.decode()
    assert "Dinero no longer lets IEX in" in home and "Connect Dinero again" in home
    send_error_digests(datetime.now(UTC) + timedelta(minutes=2))  # a minute settles first
    (email,) = [m for m in mailoutbox if "owner@shop.example" in m.to]
    assert "Dinero no longer lets IEX in" in email.body
    later = shop.order()
    run()
    assert Transfer.objects.get(source_ref=str(later["id"])).status == "held"  # Dinero is not asked meanwhile
    page = owner.get(log_in_at_dinero(owner, books), follow=True).content.decode()  # the owner connects again
    assert "2 held transfers queued again." in page
    run_pending()
    assert set(Transfer.objects.values_list("status", flat=True)) == {"created"}
