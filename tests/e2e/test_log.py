"""The Log in a browser: search an order number, fold out its line, see both formats, retry a failed transfer and
see its new attempt."""

from datetime import datetime

from playwright.sync_api import expect

from connections import pipeline
from tests.e2e.test_systems import sign_in
from transferlog.models import Transfer


def test_search_fold_out_and_retry(context, site, sandbox, sandboxed, screenshot, transactional_db):
    sandbox.configure(
        {
            "faults": [
                {
                    "path_contains": "/economic/invoices/drafts",
                    "status": 400,
                    "times": 2,
                    "body": '{"message": "Layout 19 does not exist"}',
                }
            ]
        }
    )
    orders = [sandbox.create_order({"financial_status": "paid", "country": "DK"}) for _ in range(3)]
    for order in orders:
        pipeline.receive(
            sandboxed, str(order["id"]), order["name"], datetime.fromisoformat(order["updated_at"]), order
        )
    order = orders[0]
    failed = Transfer.objects.get(reference=order["name"])
    assert failed.status == "failed"

    page = context()
    sign_in(page, site, "owner@shop.example")
    page.get_by_role("navigation").get_by_role("link", name="Log").click()
    page.get_by_label("Order number or reference").fill(order["name"])
    page.get_by_role("button", name="Search").click()
    rows = page.locator("details.log-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Layout 19 does not exist")

    rows.first.locator("summary").first.click()
    rows.first.get_by_text("Raw data: as received from Shopify").click()
    expect(rows.first.get_by_role("heading", name="As received from Shopify")).to_be_visible()
    expect(rows.first.get_by_role("heading", name="As sent to e-conomic")).to_be_visible()
    expect(rows.first.locator(".raw-data pre").first).to_contain_text(order["name"])
    screenshot(page, "20-log-fold-out")

    rows.first.get_by_role("button", name="Retry this transfer").click()
    expect(page.get_by_text(f"{order['name']} is queued again.")).to_be_visible()
    expect(page.locator("details.log-row").first).to_contain_text("Created")
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("created", 2)
    screenshot(page, "21-log-retried")


def test_on_a_phone_the_first_screen_shows_transfers_and_the_filters_fold(
    browser, context, site, connected, screenshot, transactional_db
):
    for n in range(1001, 1013):
        Transfer.objects.create(
            integration=connected.integration,
            connection=connected,
            connection_label=connected.label,
            entity=connected.entity,
            source_ref=str(n),
            reference=f"#{n}",
            status="created",
        )
    log = f"{site}/i/{connected.integration.number}/log/"
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = phone.new_page()
        sign_in(page, site, "owner@shop.example")
        page.goto(log)
        expect(page.locator("details.log-row").first).to_be_in_viewport(ratio=1)
        search = page.get_by_label("Order number or reference")
        expect(search).to_be_hidden()
        screenshot(page, "22-log-phone")
        page.locator(".filter-box summary").click()
        expect(search).to_be_visible()
    finally:
        phone.close()

    page = context()  # a desktop: the filters are open, with no button to press
    sign_in(page, site, "owner@shop.example")
    page.goto(log)
    expect(page.get_by_label("Order number or reference")).to_be_visible()
    expect(page.locator(".filter-box summary")).to_be_hidden()
    screenshot(page, "23-log-desktop")
