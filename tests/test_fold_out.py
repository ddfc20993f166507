"""The Log's fold-out as a merchant reads it: the shop's order beside the document made of it (lines with quantity,
price, discount and VAT, shipping, totals, the difference), each state named by what it was with its data behind a
labelled toggle, a failure or warning marked handled (off Home), and the transfer's page for a Log without
JavaScript."""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from connections.common import money, to_data, two_decimal_net
from connections.models import Connection
from connections.systems.dinero import client as dinero
from connections.systems.dinero.transforms import Chart
from connections.systems.economic import client as economic
from dashboard.home import latest_failures
from scheduling.models import Job
from scheduling.tasks import run_job
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


def run(connection, capture):
    connection.active = True
    connection.save(update_fields=["active"])
    job = Job.ensure_for(connection)
    with capture(execute=True):
        run_job(job.pk)


def fold(personas, transfer, user=None):
    url = reverse("transfer_detail", args=[personas.integration.number, transfer.code])
    response = personas.client(user or personas.viewer).get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def sides(body):
    """Each side of the summary as text: (heading, its table's rows as lists of cell texts)."""
    found = []
    for section in re.findall(r'<section class="side".*?</section>', body, re.S):
        heading = " ".join(
            unescape(re.sub(r"<[^>]+>", " ", re.search(r"<h3>(.*?)</h3>", section, re.S)[1])).split()
        )
        rows = [
            [" ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.S)
        ]  # fmt: skip
        found.append((heading, rows))
    return found


def total_of(rows, label):
    (row,) = [row for row in rows if row[0].startswith(label)]
    return Decimal(row[-1].replace(",", ""))


@pytest.fixture
def sold_and_refunded(sandboxed, sandbox, eager, django_capture_on_commit_callbacks):
    """A Danish order with a discount code and shipping, its invoice draft, and a refund of one bike: its credit note."""
    order = sandbox.create_order(
        {"country": "DK", "financial_status": "paid",
         "line_items": [{"sku": "BIKE-RED", "quantity": 2}, {"sku": "BOOK-GUIDE", "quantity": 1}],
         "discount_codes": [{"code": "SPRING", "amount": "100.00"}],
         "shipping_lines": [{"price": "49.00", "title": "GLS"}]}
    )  # fmt: skip
    run(sandboxed, django_capture_on_commit_callbacks)
    bike = next(line for line in order["line_items"] if line["sku"] == "BIKE-RED")
    sandbox.refund_order(order["id"], {"refund_line_items": [{"line_item_id": bike["id"], "quantity": 1}]})
    run(
        Connection.objects.get(integration=sandboxed.integration, flow="credit_notes"),
        django_capture_on_commit_callbacks,
    )
    invoice = Transfer.objects.get(entity="orders")
    credit = Transfer.objects.get(entity="credit_notes")
    assert (invoice.status, credit.status) == ("created", "created"), (invoice.reason, credit.reason)
    return order, invoice, credit


def test_an_order_with_a_discount_and_shipping_reads_beside_its_invoice_draft(personas, sold_and_refunded):
    order, invoice, _ = sold_and_refunded
    body = fold(personas, invoice)
    (shop_heading, shop), (books_heading, books) = sides(body)
    assert shop_heading == f"Shopify: Order {order['name']}"
    assert books_heading == f"e-conomic: Invoice draft {invoice.target_ref}"
    bike = next(row for row in shop if row[0] == "City Bike, Red")
    assert bike[1] == "2" and Decimal(bike[3].replace(",", "")) > 0  # its share of the SPRING code
    assert any(row[0] == "Shipping: GLS" for row in shop)
    assert any("SPRING" in row[0] and row[3] for row in books)  # the same discount, on e-conomic's line
    # Each line's VAT and rate, as the shop charged it and as e-conomic books it (the book: none).
    assert [row[4] for row in shop[1:-3]] == [row[4] for row in books[1:-3]]
    assert bike[4].endswith("(25 %)") and shop[2][4] == "0.00 (0 %)"
    assert total_of(shop, "Total DKK") == Decimal(order["total_price"]) == total_of(books, "Total DKK")
    assert total_of(shop, "VAT") == total_of(books, "VAT") == Decimal(order["total_tax"])
    assert "The totals agree." in body
    # The document's link: e-conomic's web app, where the draft is, by its number.
    assert 'href="https://secure.e-conomic.com/sales/invoicing/invoices"' in body


def test_its_refund_reads_beside_its_credit_note(personas, sold_and_refunded):
    order, _, credit = sold_and_refunded
    body = fold(personas, credit)
    (shop_heading, shop), (books_heading, books) = sides(body)
    assert shop_heading == f"Shopify: {order['name']} refund 1"
    assert books_heading == f"e-conomic: Credit note draft {credit.target_ref}"
    # As the merchant reads a refund: one bike, positive, the same on both sides.
    assert [row[1] for row in shop if row[0].startswith("City Bike")] == ["1"]
    assert [row[1] for row in books if row[0].startswith("City Bike")] == ["1"]
    assert total_of(shop, "Total DKK") == total_of(books, "Total DKK") > 0


def test_each_state_is_named_by_what_it_was_and_the_raw_data_is_the_invoice(personas, sold_and_refunded):
    _, invoice, _ = sold_and_refunded
    body = unescape(fold(personas, invoice))
    names = re.findall(r"<strong>(.*?)</strong>", body)
    assert names[:2] == ["As received from Shopify", "In IEX's common format"]
    assert names[2].startswith("Customer looked up by email: ")
    assert "New customer sent" in names and any(n.startswith("Customer created in e-conomic") for n in names)
    assert "Invoice draft sent" in names
    assert f"e-conomic's answer: Invoice draft {invoice.target_ref} saved" in names
    toggles = re.findall(r"<summary>(.*?)</summary>", body)
    assert (
        "As sent to e-conomic: POST /customers" in toggles
        and "As sent to e-conomic: POST /invoices/drafts" in toggles
    )
    assert "Data" not in toggles
    # Side by side, as received and as sent: the invoice draft, not the customer made before it.
    raw = body.split('<details class="raw-data">')[1]
    assert '"heading": "Order #' in raw and '"customerGroup"' not in raw


def test_a_warning_is_marked_handled_leaves_home_and_can_be_undone(personas, connected):
    transfer = Transfer.objects.create(
        integration=personas.integration, connection=connected, connection_label=connected.label, entity="orders",
        source_ref="77", reference="#77", status="warning", reason="Error in totals validation",
    )  # fmt: skip
    assert latest_failures(personas.integration) == [transfer]
    url = reverse("mark_handled", args=[personas.integration.number, transfer.code])
    owner = personas.client(personas.owner)
    assert owner.post(url).status_code == 302
    transfer.refresh_from_db()
    assert transfer.handled_by == "owner@shop.example" and transfer.handled_at is not None
    assert latest_failures(personas.integration) == []
    assert "Marked handled by owner@shop.example on" in fold(personas, transfer)
    page = owner.get(
        reverse("transfer_detail", args=[personas.integration.number, transfer.code])
    ).content.decode()
    assert "(handled)" in page and "Marked handled by owner@shop.example" in page
    again = owner.post(url)  # twice: the first who and when stay
    assert again.status_code == 302
    assert Transfer.objects.get(pk=transfer.pk).handled_at == transfer.handled_at
    owner.post(reverse("unmark_handled", args=[personas.integration.number, transfer.code]))
    assert latest_failures(personas.integration) == [transfer]


def test_handled_needs_a_member_who_may_change_and_a_post(personas, connected):
    transfer = Transfer.objects.create(
        integration=personas.integration, connection=connected, connection_label=connected.label, entity="orders",
        source_ref="78", reference="#78", status="failed", reason="e-conomic answered 400",
    )  # fmt: skip
    for name in ("mark_handled", "unmark_handled"):
        url = reverse(name, args=[personas.integration.number, transfer.code])
        assert personas.client(personas.viewer).post(url).status_code == 403
        assert personas.client(personas.outsider).post(url).status_code == 404
        assert personas.client(personas.owner).get(url).status_code == 405
    assert Transfer.objects.get(pk=transfer.pk).handled_at is None
    assert "Mark as handled" not in fold(personas, transfer)  # a viewer is not offered it
    assert "Mark as handled" in fold(personas, transfer, personas.admin)


def test_only_a_failure_or_warning_is_marked_handled_and_a_retry_looks_at_it_anew(
    personas, connected, monkeypatch
):
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    done = Transfer.objects.create(
        integration=personas.integration, connection=connected, connection_label=connected.label, entity="orders",
        source_ref="79", reference="#79", status="created",
    )  # fmt: skip
    owner = personas.client(personas.owner)
    owner.post(reverse("mark_handled", args=[personas.integration.number, done.code]))
    assert Transfer.objects.get(pk=done.pk).handled_at is None
    Transfer.objects.filter(pk=done.pk).update(status="failed")
    owner.post(reverse("mark_handled", args=[personas.integration.number, done.code]))
    assert Transfer.objects.get(pk=done.pk).handled_at is not None
    assert Transfer.objects.get(pk=done.pk).retry(by="owner@shop.example")
    assert Transfer.objects.get(pk=done.pk).handled_at is None  # whatever the new attempt ends in is new


def test_without_javascript_a_log_line_opens_the_transfers_page(personas, connected):
    transfer = Transfer.objects.create(
        integration=personas.integration, connection=connected, connection_label=connected.label, entity="orders",
        source_ref="80", reference="#80", status="created", source_data={"id": 80},
    )  # fmt: skip
    log = personas.client(personas.viewer).get(reverse("log", args=[personas.integration.number])).content.decode()
    url = reverse("transfer_detail", args=[personas.integration.number, transfer.code])
    assert f'<a href="{url}">Open this transfer\'s page</a>' in unescape(log)
    page = personas.client(personas.viewer).get(url).content.decode()
    assert "<html" in page and "Every state" in page


def test_dinero_reads_its_invoice_in_the_same_words():
    document = {
        "Guid": "9d1f", "Number": None, "Currency": "DKK", "ContactName": "Kari Nordmann",
        "ProductLines": [
            {"Description": "City bike", "Quantity": 2, "BaseAmountValue": 3196.0, "Discount": 5.0,
             "AccountNumber": 1000, "TotalAmount": 6072.4, "TotalAmountInclVat": 7590.5, "LineType": "Product"},
            {"Description": "Note", "LineType": "Text", "TotalAmount": 0, "TotalAmountInclVat": 0},
        ],
        "TotalExclVat": 6072.4, "TotalVat": 1518.1, "TotalInclVat": 7590.5,
    }  # fmt: skip
    made = dinero.read_document(
        document, dinero.INVOICES, "4711", Chart({1000: ("Sales", "U25")}, {"U25": Decimal("0.25")})
    )
    assert (made.title, made.url, made.customer) == (
        "Invoice draft",
        "https://app.dinero.dk/4711/sales/9d1f",
        "Kari Nordmann",
    )
    (line,) = made.lines
    assert (line.quantity, line.unit_price, line.discount, line.net, line.vat, line.vat_rate) == (
        2, Decimal("3196.00"), 5, Decimal("6072.40"), Decimal("1518.10"), Decimal("0.25")
    )  # fmt: skip
    assert (made.net, made.vat, made.total) == (Decimal("6072.40"), Decimal("1518.10"), Decimal("7590.50"))


lines = st.lists(
    st.tuples(
        st.integers(1, 50),
        st.decimals(Decimal("0.01"), Decimal("9999.99"), places=2),
        st.decimals(Decimal("0"), Decimal("99.99"), places=2),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(lines=lines, credit=st.booleans())
def test_an_economic_document_reads_to_its_lines_to_the_cent_and_a_credit_note_as_positive(lines, credit):
    sign = -1 if credit else 1
    nets = [two_decimal_net(Decimal(q), unit, discount) for q, unit, discount in lines]
    vat = sum((money(net * Decimal("0.25")) for net in nets), Decimal(0))
    document = {
        "draftInvoiceNumber": 17, "currency": "DKK", "customer": {"customerNumber": 5}, "recipient": {"name": "Kari"},
        "lines": [{"product": {"productNumber": "BIKE"}, "description": "Bike", "quantity": float(sign * q),
                   "unitNetPrice": float(unit), "discountPercentage": float(discount)} for q, unit, discount in lines],
        "netAmount": float(sign * sum(nets)), "vatAmount": float(sign * vat), "grossAmount": float(sign * (sum(nets) + vat)),
    }  # fmt: skip
    made = economic.read_document(document, "invoices/drafts", {"BIKE": Decimal("0.25")})
    assert made.title == ("Credit note draft 17" if credit else "Invoice draft 17")
    assert [line.net for line in made.lines] == nets  # positive either way, as the merchant reads them
    assert sum((line.vat for line in made.lines), Decimal(0)) == vat == made.vat
    assert made.total == sum(nets) + vat and made.customer == "Kari (customer 5)"
    assert to_data(made)["lines"][0]["net"] == str(nets[0])


def test_a_document_that_cannot_be_read_for_the_log_does_not_fail_the_transfer_that_made_it():
    """Noting the document is for the fold-out only: the document exists, and failing here would make it again."""
    from connections.common import note_document
    from connections.systems.economic.client import read_document

    noted = []
    answer = {"draftInvoiceNumber": 17, "grossAmount": 125, "lines": [{"quantity": 1, "vatRate": None}]}
    made = note_document(
        lambda *a: noted.append(a), read_document, answer, "invoices/drafts", {}, how="as e-conomic made it"
    )
    assert made is None and noted == []
