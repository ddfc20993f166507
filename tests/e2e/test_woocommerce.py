"""A merchant connects WooCommerce (the sandbox's store) and e-conomic in a browser, runs the orders connection,
and finds the WooCommerce order in the Log as it was received and as it was sent."""

import re

from playwright.sync_api import expect

from iex.models import Integration
from tests.conftest import make_user
from tests.e2e.test_systems import sign_in


def test_connect_woocommerce_and_see_its_order_in_the_log(context, site, sandbox, screenshot, transactional_db):
    owner = make_user("owner@shop.example")
    Integration.create_for(owner, "Nordic Bikes")
    page = context()
    sign_in(page, site, "owner@shop.example")

    page.get_by_role("navigation").get_by_role("link", name="Systems").click()
    expect(page.locator(".catalogue")).to_contain_text("REST API key (Read/Write)")
    page.get_by_role("button", name="Add WooCommerce").click()
    page.get_by_label("Site address").fill("http://sandbox-shop.example")
    page.get_by_label("Consumer key").fill("ck_sandbox")
    page.get_by_label("Consumer secret").fill("cs_sandbox")
    page.get_by_label("API address (advanced)").fill(f"{sandbox.url}/woocommerce")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_text("over HTTPS only")).to_be_visible()  # what WooCommerce refuses, said before trying

    page.get_by_label("Site address").fill("https://sandbox-shop.example")
    page.get_by_label("Consumer key").fill("ck_sandbox")
    page.get_by_label("Consumer secret").fill("cs_wrong")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_text(re.compile("Test connection failed: .*401"))).to_be_visible()
    page.get_by_label("Consumer secret").fill("cs_sandbox")
    page.get_by_role("button", name="Save and test").click()
    expect(
        page.get_by_text("Test connection succeeded: Connected to https://sandbox-shop.example")
    ).to_be_visible()
    expect(page.get_by_text("never sends a missed one again")).to_be_visible()  # the webhook help
    screenshot(page, "13-woocommerce-connected")

    page.get_by_role("navigation").get_by_role("link", name="Systems").click()
    page.get_by_role("button", name="Add e-conomic").click()
    page.get_by_text("Or enter e-conomic's credentials by hand").click()
    page.get_by_label("App secret token").fill("sandbox-app-secret")
    page.get_by_label("Agreement grant token").fill("sandbox-grant")
    page.get_by_label("API address (advanced)").fill(f"{sandbox.url}/economic")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_text("Test connection succeeded")).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name="Connections").click()
    page.get_by_role("button", name="Activate WooCommerce > e-conomic: orders").click()
    expect(page.get_by_text("WooCommerce > e-conomic: orders: active, schedule-driven.")).to_be_visible()

    order = sandbox.woocommerce_create_order({"status": "processing"})
    page.get_by_role("navigation").get_by_role("link", name="Schedule settings").click()
    row = page.locator("tr", has_text="WooCommerce > e-conomic: orders")
    row.get_by_role("button", name="Run now").click()
    expect(row.locator(".last-run")).to_contain_text("1 fetched: 1 new", timeout=15_000)

    page.get_by_role("navigation").get_by_role("link", name="Log").click()
    page.get_by_label("Order number or reference").fill(order["number"])
    page.get_by_role("button", name="Search").click()
    rows = page.locator("details.log-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Created")
    rows.first.locator("summary").first.click()
    rows.first.get_by_text("Raw data: as received from WooCommerce").click()
    expect(rows.first.get_by_role("heading", name="As received from WooCommerce")).to_be_visible()
    expect(rows.first.get_by_role("heading", name="As sent to e-conomic")).to_be_visible()
    expect(rows.first.locator(".raw-data pre").first).to_contain_text('"prices_include_tax"')
    screenshot(page, "22-log-woocommerce")
