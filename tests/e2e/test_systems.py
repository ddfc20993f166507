"""A merchant adds Shopify and e-conomic (the sandbox), tests the connection, activates the orders connection,
and runs it from the Schedule settings page."""

from playwright.sync_api import expect

from iex.models import Integration
from tests.conftest import PASSWORD, make_user


def sign_in(page, site, email):
    page.goto(f"{site}/accounts/login/")
    page.locator("#id_login").fill(email)
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def test_connect_systems_and_activate_orders(context, site, sandbox, screenshot, transactional_db):
    owner = make_user("owner@shop.example")
    integration = Integration.create_for(owner, "Nordic Bikes")
    page = context()
    sign_in(page, site, "owner@shop.example")

    page.get_by_role("navigation").get_by_role("link", name="Systems").click()
    page.get_by_role("button", name="Add Shopify").click()
    page.get_by_text("Or enter Shopify's credentials by hand").click()  # a custom app's token
    page.get_by_label("Shop domain").fill("sandbox.myshopify.com")
    page.get_by_label("Access token").fill("shpat_sandbox")
    page.get_by_label("Webhook secret").fill("whsec_demo")
    page.get_by_label("API address (advanced)").fill(f"{sandbox.url}/shopify")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_text("Test connection succeeded: Connected to Sandbox Shop")).to_be_visible()
    screenshot(page, "10-shopify-connected")

    # A wrong token is caught by the test, with the system's own answer.
    page.get_by_label("Access token").fill("shpat_wrong")
    page.get_by_role("button", name="Save and test").click()
    expect(
        page.get_by_text("Test connection failed: Shopify refused the credentials (401): check them")
    ).to_be_visible()
    page.get_by_label("Access token").fill("shpat_sandbox")
    page.get_by_role("button", name="Save and test").click()
    expect(page.get_by_text("Test connection succeeded")).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name="Systems").click()
    page.get_by_role("button", name="Add e-conomic").click()
    page.get_by_text("Or enter e-conomic's credentials by hand").click()
    page.get_by_label("App secret token").fill("sandbox-app-secret")
    page.get_by_label("Agreement grant token").fill("sandbox-grant")
    page.get_by_label("API address (advanced)").fill(f"{sandbox.url}/economic")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(
        page.get_by_text("Test connection succeeded: Connected to agreement 654321 (Sandbox ApS)")
    ).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name="Connections").click()
    page.get_by_role("button", name="Activate Shopify > e-conomic: orders").click()
    expect(page.get_by_text("Shopify > e-conomic: orders: active, schedule-driven.")).to_be_visible()
    screenshot(page, "11-connections")
    assert integration.connections.get(flow="orders").active

    sandbox.create_order({"financial_status": "paid", "country": "DK"})
    page.get_by_role("navigation").get_by_role("link", name="Schedule settings").click()
    row = page.locator("tr", has_text="Shopify > e-conomic: orders")
    row.get_by_role("button", name="Run now").click()
    # The row updates by itself (htmx) once the worker has run the job.
    expect(row.locator(".last-run")).to_contain_text("1 fetched: 1 new", timeout=15_000)
    screenshot(page, "12-schedule")
