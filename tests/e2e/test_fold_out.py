"""The fold-out in a browser: an order with a discount, shipping and a refund, each folded out beside the document
e-conomic made of it (its lines and totals next to the shop's), and the transfer's page without JavaScript."""

from decimal import Decimal

from playwright.sync_api import expect

from connections.models import Connection
from scheduling.models import Job
from scheduling.tasks import run_job
from tests.e2e.test_systems import sign_in
from transferlog.models import Transfer


def run(connection):
    connection.active = True
    connection.save(update_fields=["active"])
    run_job(Job.ensure_for(connection).pk)


def money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def test_an_order_and_its_refund_fold_out_beside_their_documents(
    context, site, sandbox, sandboxed, screenshot, transactional_db
):
    order = sandbox.create_order(
        {"country": "DK", "financial_status": "paid",
         "line_items": [{"sku": "BIKE-RED", "quantity": 2}, {"sku": "BOOK-GUIDE", "quantity": 1}],
         "discount_codes": [{"code": "SPRING", "amount": "100.00"}],
         "shipping_lines": [{"price": "49.00", "title": "GLS"}]}
    )  # fmt: skip
    run(sandboxed)
    bike = next(line for line in order["line_items"] if line["sku"] == "BIKE-RED")
    sandbox.refund_order(order["id"], {"refund_line_items": [{"line_item_id": bike["id"], "quantity": 1}]})
    run(Connection.objects.get(integration=sandboxed.integration, flow="credit_notes"))
    invoice, credit = Transfer.objects.get(entity="orders"), Transfer.objects.get(entity="credit_notes")
    assert (invoice.status, credit.status) == ("created", "created"), (invoice.reason, credit.reason)

    page = context()
    sign_in(page, site, "owner@shop.example")
    page.get_by_role("navigation").get_by_role("link", name="Log").click()

    row = page.locator(f"#t-{invoice.code}")
    row.locator("summary").first.click()
    shop, books = row.get_by_role("region", name="Shopify"), row.get_by_role("region", name="e-conomic")
    expect(shop.get_by_role("heading")).to_have_text(f"Shopify: Order {order['name']}")
    expect(books.get_by_role("heading")).to_have_text(f"e-conomic: Invoice draft {invoice.target_ref}")
    # Side by side: the document's lines and totals next to the shop's.
    shop_box, books_box = shop.bounding_box(), books.bounding_box()
    assert shop_box and books_box and books_box["x"] > shop_box["x"] + shop_box["width"] / 2
    assert abs(books_box["y"] - shop_box["y"]) < 5
    for side in (shop, books):
        expect(side.get_by_role("row").filter(has_text="City Bike, Red")).to_contain_text("2")
        expect(side.get_by_role("row").filter(has_text="GLS")).to_have_count(1)
        total = side.get_by_role("row").filter(has_text="Total DKK").get_by_role("cell").last.inner_text()
        assert money(total) == Decimal(order["total_price"])
    expect(books.get_by_role("row").filter(has_text="SPRING").first).to_be_visible()  # the discount, on its lines
    expect(row.get_by_text("The totals agree.")).to_be_visible()
    expect(books.get_by_role("link", name="Open it in e-conomic")).to_have_attribute(
        "href", "https://secure.e-conomic.com/sales/invoicing/invoices"
    )
    expect(row.get_by_text("Invoice draft sent", exact=True)).to_be_visible()
    screenshot(page, "fold-out-invoice")

    refund = page.locator(f"#t-{credit.code}")
    refund.locator("summary").first.click()
    shop, books = refund.get_by_role("region", name="Shopify"), refund.get_by_role("region", name="e-conomic")
    expect(books.get_by_role("heading")).to_have_text(f"e-conomic: Credit note draft {credit.target_ref}")
    for side in (shop, books):
        expect(side.get_by_role("row").filter(has_text="City Bike, Red").get_by_role("cell").nth(1)).to_have_text(
            "1"
        )
    totals = [
        money(side.get_by_role("row").filter(has_text="Total DKK").get_by_role("cell").last.inner_text())
        for side in (shop, books)
    ]
    assert totals[0] == totals[1] > 0
    screenshot(page, "fold-out-refund")


def test_without_javascript_a_line_opens_the_transfers_page(browser, site, sandboxed, transactional_db):
    transfer = Transfer.objects.create(
        integration=sandboxed.integration, connection=sandboxed, connection_label=sandboxed.label, entity="orders",
        source_ref="80", reference="#80", status="warning", reason="Error in totals validation",
    )  # fmt: skip
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        sign_in(page, site, "owner@shop.example")
        page.goto(f"{site}/i/{sandboxed.integration.number}/log/")
        page.locator(f"#t-{transfer.code} summary").click()
        page.get_by_role("link", name="Open this transfer's page").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("#80")
        page.get_by_role("button", name="Mark as handled").click()
        expect(page.get_by_text("#80 is marked handled")).to_be_visible()
        transfer.refresh_from_db()
        assert transfer.handled_by == "owner@shop.example"
    finally:
        ctx.close()
