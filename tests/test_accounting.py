"""The contract every accounting connector passes, run alike for each against the sandbox's copy of its system: the
credentials tested in words; an order from each webshop becomes one document of the shop's total and VAT, sent again
it is updated, never made twice (also when IEX's own record of it was lost); a refund credits the invoice; a
cancelled order withdraws its draft; a draft the accountant booked is left alone; a rate nothing books holds the
order with a reason; products by SKU. A new accounting system adds a driver below."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connections import pipeline
from connections.common import Product
from connections.models import Connection, Mapping, Module
from connections.systems import accounting
from iex.lib import http
from tests.test_webshops import Shopify, WooCommerce, run_pending
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


class Economic:
    kind = "economic"
    credentials = {"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"}
    wrong = {"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "wrong"}
    connected = "Connected to agreement"

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def books(self):
        return self.sandbox.summary()["economic"]

    def document(self, ref):
        """(gross, VAT) of a draft or booked document, as positive amounts (credit notes are negative here)."""
        for table, field in (("drafts", "draftInvoiceNumber"), ("booked", "bookedInvoiceNumber")):
            for doc in self.books()[table]:
                if str(doc[field]) == ref:
                    return abs(Decimal(str(doc["grossAmount"]))), abs(Decimal(str(doc["vatAmount"])))
        return None

    def count(self):
        return len(self.books()["drafts"]) + len(self.books()["booked"])

    def book(self, ref):
        self.sandbox.book_draft(int(ref))

    def product(self, sku):
        return next((p for p in self.books()["products"] if p["productNumber"] == sku), None)


class Dinero:
    kind = "dinero"
    credentials = {"api_key": "dinero-sandbox-key"}
    wrong = {"api_key": "not-a-key"}
    connected = "Connected to organisation 123456"

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def books(self):
        return self.sandbox.summary()["dinero"]["organizations"]["123456"]

    def document(self, ref):
        for doc in self.books()["invoices"] + self.books()["creditnotes"]:
            if doc["Guid"] == ref:
                return Decimal(str(doc["TotalInclVat"])), Decimal(str(doc["TotalVat"]))
        return None

    def count(self):
        return len(self.books()["invoices"]) + len(self.books()["creditnotes"])

    def book(self, ref):
        self.sandbox.dinero_book(ref)

    def product(self, sku):
        return next((p for p in self.books()["products"] if p["ProductNumber"] == sku), None)


@pytest.fixture(params=[Economic, Dinero], ids=lambda driver: driver.kind)
def books(request, sandbox):
    return request.param(sandbox)


def connect(integration, sandbox, shop, books):
    source = Module(integration=integration, kind=shop.kind, base_url=f"{sandbox.url}/{shop.kind}")
    source.set_credentials({**shop.credentials, "webhook_secret": "whsec"})
    source.save()
    target = Module(integration=integration, kind=books.kind, base_url=f"{sandbox.url}/{books.kind}")
    target.set_credentials(books.credentials)
    target.save()
    Connection.ensure_for(integration)
    integration.connections.filter(flow__in=["orders", "credit_notes", "products"]).update(active=True)
    return source, target


@pytest.fixture
def shopify(sandbox):
    return Shopify(sandbox)


@pytest.fixture
def linked(books, shopify, sandbox, personas):
    return connect(personas.integration, sandbox, shopify, books)


def send(order_or_refund, flow="orders"):
    """Run what the schedule finds now on the flow; the transfers made."""
    connection = Connection.objects.get(flow=flow)
    pipeline.sync(connection, datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    return Transfer.objects.filter(connection=connection).order_by("id")


def test_credentials_are_tested_and_a_refusal_said_in_words(books, linked):
    target = linked[1]
    assert accounting(books.kind).client(target).test().startswith(books.connected)
    target.set_credentials(books.wrong)
    target.save()
    with pytest.raises(http.PermanentError) as refused:
        accounting(books.kind).client(target).test()
    assert "401" in str(refused.value) or "refused" in str(refused.value)


@pytest.mark.parametrize("shop_driver", [Shopify, WooCommerce], ids=lambda driver: driver.kind)
def test_every_shop_makes_one_document_of_its_total_and_vat(books, shop_driver, sandbox, personas):
    shop = shop_driver(sandbox)
    connect(personas.integration, sandbox, shop, books)
    orders = [shop.order(**shop.of([(shop.stocked, n)])) for n in (1, 2, 3)]
    drawn = [shop.order() for _ in range(5)]  # the generator's mix: discounts, shipping, fees, reduced rates
    transfers = send(None)
    for order in orders + drawn:  # Danish customers, VAT at home
        transfer = transfers.get(source_ref=str(order["id"]))
        if order in drawn and transfer.status == "held":
            assert "12.5 %" in transfer.reason  # the store's reduced rate on books, which neither system books
            continue
        assert transfer.status == "created", transfer.reason
        mapping = Mapping.objects.get(connection=transfer.connection, source_ref=str(order["id"]))
        assert books.document(mapping.target_ref) == shop.total(order)
    before = books.count()
    Mapping.objects.all().update(target_ref="", target_state="")  # IEX's record lost: found again by reference
    Transfer.objects.all().delete()
    send(None)
    assert books.count() == before


def test_a_refund_credits_the_invoice_to_what_the_shop_has_left(books, linked, shopify):
    order = shopify.order(**shopify.of([(shopify.stocked, 2)]))
    (sold,) = send(order)
    assert sold.status == "created", sold.reason
    refund = shopify.refund_one(order)
    credited = send(refund, "credit_notes").get(source_ref=str(refund["id"]))
    assert credited.status == "created", credited.reason
    invoice = Mapping.objects.get(connection__flow="orders", source_ref=str(order["id"]))
    note = Mapping.objects.get(connection__flow="credit_notes", source_ref=str(refund["id"]))
    assert books.document(invoice.target_ref)[0] - books.document(note.target_ref)[0] == shopify.left(order)


def test_a_cancelled_orders_draft_is_withdrawn(books, linked, shopify, sandbox):
    order = shopify.order()
    send(order)
    mapping = Mapping.objects.get(connection__flow="orders", source_ref=str(order["id"]))
    assert books.document(mapping.target_ref)
    sandbox.cancel_order(order["id"])
    send(order)
    mapping.refresh_from_db()
    assert mapping.target_state == "deleted" and books.document(mapping.target_ref) is None


def test_a_draft_the_accountant_booked_is_not_changed(books, linked, shopify, sandbox):
    order = shopify.order()
    send(order)
    mapping = Mapping.objects.get(connection__flow="orders", source_ref=str(order["id"]))
    books.book(mapping.target_ref)
    sandbox.update_order(order["id"], {"note": "gift wrap"})
    last = send(order).last()
    assert last.status == "skipped" and "Booked in" in last.reason


def test_a_rate_nothing_books_holds_the_order_with_the_reason(books, linked, shopify):
    order = shopify.order(country="DE")  # 19 % German VAT: the sandbox books 25 % and none
    (held,) = send(order)
    assert held.status == "held" and "19 %" in held.reason, held.reason
    assert books.count() == 0


def test_a_product_is_made_then_updated_by_its_sku(books, linked):
    client = accounting(books.kind).client(linked[1])
    mapping = Mapping(connection=Connection.objects.get(flow="products"), source_ref="p1")
    made = client.send_product(
        Product("MUG-RED", "Mug, red", Decimal("79.20"), Decimal("0.25")), mapping, lambda *a: None
    )
    again = client.send_product(
        Product("MUG-RED", "Mug, red (new)", Decimal("80.00"), Decimal("0.25")), mapping, lambda *a: None
    )
    assert (made.action, again.action) == ("created", "updated")
    assert books.product("MUG-RED") is not None
