"""Issue 21's whole setup in a browser, as a new merchant: sign up, then follow only what the screens say: Home's
checklist, Shopify's install page and e-conomic's request-access page (the sandbox's, as on `make run`), the
agreement's own layouts and groups to choose from, a start date, the orders connection switched on, Run now, and the
first transfer in the Log. The same without JavaScript. Each step's screenshot is kept under
var/screenshots/onboarding/<js|no-js>-<step>.png."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from iex.models import Integration
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_team import sign_up


def next_step(page, name: str) -> None:
    """Home's checklist: the step to do now is marked, and its button leads there."""
    page.get_by_role("navigation").get_by_role("link", name="Home").click()
    step = page.locator(".step-next")
    expect(step).to_contain_text(name)
    step.get_by_role("link").click()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_new_merchant_reaches_the_first_transfer_by_what_the_screens_say(
    javascript, browser, site, sandbox, settings, transactional_db
):
    settings.DEBUG, settings.SANDBOX_URL = True, sandbox.url  # `make run`: a system added points at the sandbox
    # An order paid ten days ago: the start date the merchant picks decides whether it is imported.
    with time_machine.travel(timezone.now() - timedelta(days=10)):
        order = sandbox.create_order({"financial_status": "paid", "country": "DK"})
    (SCREENSHOTS / "onboarding").mkdir(parents=True, exist_ok=True)
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    shots = iter(range(1, 100))

    def shot(name: str) -> None:
        page.screenshot(
            path=str(
                SCREENSHOTS / "onboarding" / f"{'js' if javascript else 'no-js'}-{next(shots):02}-{name}.png"
            ),
            full_page=True,
        )

    page.goto(site)
    page.get_by_role("link", name="sign up").click()
    sign_up(page, site, "founder@bikes.example")
    page.get_by_label("Name").fill("Nordic Bikes")
    page.get_by_role("button", name="Create integration").click()
    expect(page.get_by_role("heading", name="Set up your first transfer")).to_be_visible()
    expect(page.get_by_text("No failed transfers or warnings. Nice.")).to_have_count(0)
    shot("home-checklist")

    # 1. The shop: IEX's app installed on the shop's own page.
    next_step(page, "Add your shop")
    page.get_by_role("button", name="Add Shopify").click()
    page.get_by_label("Your shop's myshopify.com address").fill("sandbox")
    page.get_by_role("button", name="Install IEX in your Shopify shop").click()
    expect(page.get_by_role("heading", name="Install IEX on sandbox.myshopify.com?")).to_be_visible()
    shot("shopify-install-page")
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_text("Test connection succeeded: Connected to Sandbox Shop")).to_be_visible()
    shot("shopify-connected")

    # 2. The accounting system: IEX added to the agreement on e-conomic's request-access page.
    next_step(page, "Add your accounting system")
    page.get_by_role("button", name="Add e-conomic").click()
    page.get_by_role("button", name="Connect to e-conomic").click()
    expect(page.get_by_role("heading", name="Add IEX to Sandbox ApS?")).to_be_visible()
    shot("economic-request-access")
    page.get_by_role("button", name="Add app").click()
    expect(page.get_by_text("Test connection succeeded: Connected to agreement 654321")).to_be_visible()
    shot("economic-connected")

    # 3. The settings, chosen from the agreement's own lists by their names.
    next_step(page, "Check the accounting settings")
    layout = page.get_by_label("Layout", exact=True)
    expect(layout.locator("option")).to_contain_text([re.compile("Faktura")])
    group = page.get_by_label("Customer group for new customers")
    danish = next(text for text in group.locator("option").all_inner_texts() if "Danske kunder" in text)
    group.select_option(label=danish)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings of e-conomic saved.")).to_be_visible()
    shot("economic-settings")

    # 4. From which date orders are imported: the last 30 days takes the order of ten days ago.
    next_step(page, "Choose from which date orders are imported")
    expect(page.get_by_text("counts against the month's allowance").first).to_be_visible()
    page.get_by_role("radio", name="The last 30 days").check()
    page.get_by_role("button", name="Save start date").click()
    expect(page.get_by_text("imports orders placed or changed since")).to_be_visible()
    shot("start-date")

    # 5. The orders connection switched on.
    next_step(page, "Switch the orders connection on")
    orders = page.locator("tr", has_text="Shopify > e-conomic: orders")
    orders.get_by_role("button", name="Activate Shopify > e-conomic: orders").click()
    expect(page.locator("tr", has_text="Shopify > e-conomic: orders").locator(".badge")).to_have_text("Active")
    shot("connection-on")

    # 6. The first transfer: the checklist says what it waits for; Run now brings it (tasks run inline here).
    page.get_by_role("navigation").get_by_role("link", name="Home").click()
    expect(page.locator(".step-next")).to_contain_text("Nothing has been received from the shop yet")
    page.get_by_role("navigation").get_by_role("link", name="Schedule settings").click()
    row = page.locator("tr", has_text="Shopify > e-conomic: orders")
    row.get_by_role("button", name="Run now").click()
    expect(page.locator("tr", has_text="Shopify > e-conomic: orders").locator(".last-run")).to_contain_text(
        "1 created", timeout=15_000
    )
    shot("first-run")

    page.get_by_role("navigation").get_by_role("link", name="Home").click()
    expect(page.get_by_role("heading", name="Set up your first transfer")).to_have_count(0)
    shot("home-after")
    page.get_by_role("navigation").get_by_role("link", name="Log").click()
    line = page.locator(".log-row", has_text=order["name"]).first
    expect(line).to_contain_text("Created")
    shot("log")

    integration = Integration.objects.get()
    assert list(integration.transfers.values_list("reference", "status")) == [(order["name"], "created")]
    assert errors == []
    context.close()
