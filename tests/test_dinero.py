"""Dinero as a merchant's books, against the sandbox's Dinero: a WooCommerce order with a coupon, a fee and shipping
becomes one invoice of lines excluding VAT on the accounts of their VAT, of the order's total; changed in the shop
while a draft, it is updated, also when the accountant saved the draft in between (error 58: read again, try again);
its refund becomes a credit note for it; booked when the module says so; a key without Dinero Pro, a refused key and
a token run out are said or handled; stock is not offered, and the Connections page says why."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connections import pipeline
from connections.models import Connection, Mapping, Module
from connections.systems import accounting
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
