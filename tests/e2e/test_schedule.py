"""Connections and Schedule settings in a browser, without JavaScript and with it: the start date, a trigger, an
interval and Run now all work either way, and a run's summary adds up."""

from datetime import timedelta

import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.test_systems import sign_in


def paid_order(sandbox, days_ago=0):
    with time_machine.travel(timezone.now() - timedelta(days=days_ago)):
        return sandbox.create_order({"financial_status": "paid", "country": "DK"})


def test_start_date_trigger_interval_and_run_now_without_and_with_javascript(
    browser, context, site, sandbox, sandboxed, screenshot, transactional_db
):
    old, recent = paid_order(sandbox, 40), paid_order(sandbox, 10)
    plain = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 860})
    plain.set_default_timeout(10_000)
    page = plain.new_page()
    sign_in(page, site, "owner@shop.example")

    page.get_by_role("navigation").get_by_role("link", name="Connections").click()
    page.get_by_role("radio", name="The last 30 days").check()
    page.get_by_role("button", name="Save start date").click()
    expect(page.get_by_text("Shopify > e-conomic: orders imports orders placed or changed since")).to_be_visible()

    products = page.locator("tr", has_text="Shopify > e-conomic: products")
    products.get_by_label("Trigger of Shopify > e-conomic: products").select_option("webhook")
    products.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Shopify > e-conomic: products: inactive, webhook-driven.")).to_be_visible()
    expect(page.get_by_role("heading", name="Webhooks to register")).to_be_visible()
    stock = page.get_by_label("Trigger of e-conomic > Shopify: stock")
    expect(stock.locator("option")).to_have_text(["Schedule"])  # e-conomic posts no webhooks
    screenshot(page, "13-connections-start-date")

    page.get_by_role("navigation").get_by_role("link", name="Schedule settings").click()
    orders = page.locator("tr", has_text="Shopify > e-conomic: orders")
    orders.get_by_label("Interval of Shopify > e-conomic: orders").select_option("600")
    orders.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Shopify > e-conomic: orders now runs every 10 minutes.")).to_be_visible()
    orders.get_by_role("button", name="Run now").click()
    expect(page.get_by_text("Shopify > e-conomic: orders is queued: it runs in a moment.")).to_be_visible()
    # Background tasks run inline here: the run and its transfer are done by the time the page is back.
    expect(orders.locator(".last-run")).to_contain_text(
        "1 fetched: 1 new, 0 already known. Of the new: 1 created."
    )
    references = set(sandboxed.transfers.values_list("reference", flat=True))
    assert references == {recent["name"]} and old["name"] not in references
    plain.close()

    page = context()
    sign_in(page, site, "owner@shop.example")
    page.get_by_role("navigation").get_by_role("link", name="Schedule settings").click()
    orders = page.locator("tr", has_text="Shopify > e-conomic: orders")
    expect(orders.get_by_role("button", name="Save")).to_have_count(0)  # the select saves itself
    paid_order(sandbox)
    orders.get_by_role("button", name="Run now").click()
    expect(orders.locator(".last-run")).to_contain_text(
        "1 fetched: 1 new, 0 already known. Of the new: 1 created."
    )
    screenshot(page, "14-schedule-run-summary")
